"""Fixtures for the ComfyUI node tests.

The pack is imported the way ComfyUI imports it: the repository folder (reached through a
``custom_nodes/comfyui-phnet`` symlink) is loaded with ``importlib.util.spec_from_file_location`` on
its ``__init__.py`` under a module name derived from its path (dashes included), with stand-ins for
``folder_paths``, ``comfy.model_management`` and ``comfy.utils`` installed in ``sys.modules`` first.
Models are tiny and randomly initialised, saved to disk and found through the model folders.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _load_file(name: str, path: Path) -> types.ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


from workflows import comfy_standins as stubs  # noqa: E402  (ComfyUI's host modules, shared with the builder)

core_nodes = _load_file("phnet_nodes_test_core_nodes", HERE / "core_nodes.py")
workflow_exec = _load_file("phnet_nodes_test_workflow_exec", HERE / "workflow_exec.py")

TINY_PHNET = "tiny-phnet"
TINY_SAM_FILE = "sam-vit-base.safetensors"  # the name the example workflows use
_HOST_MODULES = ("folder_paths", "comfy", "comfy.model_management", "comfy.utils")


def load_pack(custom_nodes_dir: Path, folder: str = "comfyui-phnet") -> types.ModuleType:
    """Import ``custom_nodes_dir/folder`` exactly like ComfyUI's ``nodes.load_custom_node``."""
    module_path = str(custom_nodes_dir / folder)
    sys_module_name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(sys_module_name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[sys_module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def comfy_env():
    import torch

    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp(prefix="phnet-comfy-"))
    saved = {k: sys.modules.get(k) for k in _HOST_MODULES}
    calls: list = []
    mods = stubs.install(str(base), calls)
    (base / "custom_nodes").mkdir()
    os.symlink(REPO, base / "custom_nodes" / "comfyui-phnet")
    env = types.SimpleNamespace(base=base, fp=mods["folder_paths"], mm=mods["comfy.model_management"],
                                utils=mods["comfy.utils"], calls=calls)
    yield env
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pack(comfy_env):
    module = load_pack(comfy_env.base / "custom_nodes")
    yield module
    for name in [n for n in sys.modules if n == module.__name__ or n.startswith(module.__name__ + ".")]:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def tiny_phnet(comfy_env):
    """Saves a tiny random PHNet to models/phnet/tiny-phnet/ and returns its list entry."""
    import torch
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained

    cfg = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    torch.manual_seed(0)
    save_pretrained(PHNet(cfg).eval(), comfy_env.base / "models" / "phnet" / TINY_PHNET)
    return f"{TINY_PHNET}/model.safetensors"


@pytest.fixture(scope="session")
def tiny_sam(comfy_env):
    from tests.helpers.tiny_sam import save_tiny_sam

    save_tiny_sam(comfy_env.base / "models" / "sams" / TINY_SAM_FILE)
    return TINY_SAM_FILE


@pytest.fixture(scope="session")
def nodes(pack):
    return {k: cls() for k, cls in pack.NODE_CLASS_MAPPINGS.items()}


@pytest.fixture(scope="session")
def phnet_model(nodes, tiny_phnet):
    return nodes["PHNetModelLoader"].load(tiny_phnet, "", "auto", "auto")[0]


@pytest.fixture(scope="session")
def sam_model(nodes, tiny_sam):
    return nodes["PHNetSAMLoader"].load(tiny_sam, "", "", "auto", "auto")[0]


@pytest.fixture(scope="session")
def helpers():
    """Shared helpers as a fixture (test modules never ``import conftest``: with several conftest.py in
    the repo that name is ambiguous)."""
    return types.SimpleNamespace(portrait=portrait, core_nodes=core_nodes, workflow_exec=workflow_exec, repo=REPO)


def portrait(b: int = 1, h: int = 48, w: int = 64, seed: int = 0):
    """A small synthetic scene: a smooth background with a bright ellipse 'subject'."""
    import torch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    bg = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx], -1)
    subject = ((xx - 0.5) / 0.2) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
    img = torch.where(subject[..., None], torch.tensor([0.9, 0.6, 0.4]), bg)
    img = img[None].repeat(b, 1, 1, 1) + 0.02 * torch.rand(b, h, w, 3, generator=g)
    return img.clamp(0, 1).float(), subject.float()[None].repeat(b, 1, 1)
