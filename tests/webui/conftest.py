"""Fixtures for the SD-WebUI extension tests.

The extension script is imported the way the WebUI imports it (by file path, with
``modules.*`` and ``gradio`` already importable), but against the small stand-ins in
``webui_stubs.py``. Models are tiny, random, and saved under a temporary ``models`` folder.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.webui import webui_stubs  # noqa: E402

SCRIPT = REPO / "scripts" / "phnet_webui.py"
TINY_PHNET = dict(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)


@pytest.fixture(scope="session")
def tiny_phnet_dir(tmp_path_factory):
    """A tiny random PHNet saved as a model folder (config.json + model.safetensors)."""
    import torch

    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained

    torch.manual_seed(0)
    model = PHNet(PHNetConfig(**TINY_PHNET)).eval()
    folder = tmp_path_factory.mktemp("phnet") / "tiny-phnet"
    save_pretrained(model, folder)
    return folder


@pytest.fixture
def models_path(tmp_path, tiny_phnet_dir):
    """A WebUI ``models`` folder holding models/PHNet/tiny-phnet and models/sam/tiny_sam.safetensors."""
    from tests.helpers.tiny_sam import save_tiny_sam

    root = tmp_path / "models"
    shutil.copytree(tiny_phnet_dir, root / "PHNet" / "tiny-phnet")
    save_tiny_sam(root / "sam" / "tiny_sam.safetensors")
    return root


@pytest.fixture
def webui(tmp_path, models_path, monkeypatch):
    """The extension script loaded against fake ``modules``/``gradio``; fresh for every test."""
    from phnet import integrations

    fakes = webui_stubs.install(monkeypatch, models_path, tmp_path)
    integrations.clear_cache()
    spec = importlib.util.spec_from_file_location("phnet_webui_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    fakes["gradio"].reset()
    yield SimpleNamespace(
        script_module=module,
        modules=fakes,
        gradio=fakes["gradio"],
        scripts=fakes["modules.scripts"],
        processing=fakes["modules.processing"],
        models_path=models_path,
    )
    integrations.clear_cache()
