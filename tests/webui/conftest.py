"""Fixtures for the SD-WebUI extension tests: the script is loaded the way the WebUI loads it.

``webui_root`` builds a WebUI folder in a temporary directory: the stand-in ``modules`` package
(``standin/webui/modules``, mirroring A1111 v1.10.1), ``extensions/comfyui-phnet`` pointing at this
repository, and ``models/`` holding a tiny random PHNet and SAM. ``webui`` then does what the WebUI
does at start-up: working directory = the WebUI root, the root first on ``sys.path``, the stand-in
gradio importable, and ``modules.scripts.load_scripts()`` executes ``scripts/phnet_webui.py`` through
``modules.script_loading.load_module``, which does not register it in ``sys.modules``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.webui.harness import FAKE_SITE, HOST_PACKAGES, SCRIPT, TINY_PHNET, build_webui_root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """models/PHNet/tiny-phnet (config.json + model.safetensors) and models/sam/tiny_sam.safetensors."""
    import torch

    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from tests.helpers.tiny_sam import save_tiny_sam

    torch.manual_seed(0)
    models = tmp_path_factory.mktemp("models")
    save_pretrained(PHNet(PHNetConfig(**TINY_PHNET)).eval(), models / "PHNet" / "tiny-phnet")
    save_tiny_sam(models / "sam" / "tiny_sam.safetensors")
    return models


@pytest.fixture
def webui_root(tmp_path, tiny_models):
    return build_webui_root(tmp_path / "webui", tiny_models)


def _host_module_names():
    return [n for n in sys.modules if n.split(".")[0] in HOST_PACKAGES]


@pytest.fixture
def webui_env(webui_root, monkeypatch):
    """The WebUI process before scripts load: its working directory, ``sys.path`` and ``modules``."""
    saved = {name: sys.modules.pop(name) for name in _host_module_names()}
    monkeypatch.chdir(webui_root)
    # launch.py runs from the WebUI root, so the root comes first; gradio is an installed package
    monkeypatch.setattr(sys, "path", [str(webui_root), str(FAKE_SITE)] + sys.path)
    env = SimpleNamespace(
        root=webui_root,
        models_path=webui_root / "models",
        scripts=importlib.import_module("modules.scripts"),
        errors=importlib.import_module("modules.errors"),
        script_loading=importlib.import_module("modules.script_loading"),
        processing=importlib.import_module("modules.processing"),
        gradio=importlib.import_module("gradio"),
    )
    yield env
    for name in _host_module_names():
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture
def webui(webui_env):
    """``webui_env`` after ``load_scripts()``, with ``script_module`` = the executed PHNet script."""
    webui_env.scripts.load_scripts()
    loaded = [d for d in webui_env.scripts.scripts_data if Path(d.path).name == SCRIPT.name]
    if not loaded:
        pytest.fail(f"the WebUI could not load {SCRIPT.name}: {webui_env.errors.exception_records}")
    webui_env.script_module = loaded[0].module
    yield webui_env
    webui_env.script_module.clear_loaded_models()
