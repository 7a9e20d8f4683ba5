"""Our network against the authors' own model code, where a checkout of it is at hand.

The official code (github.com/befozg/PHNet, ``tools/model.py``) is not part of this repository, so the
test runs only with ``PHNET_OFFICIAL_CODE`` set to a plain checkout of it or to its ``tools/`` folder. It loads
``model.py`` and ``normalizer.py`` alone, by file path, because the package's ``__init__`` imports the trainer and
with it TensorBoard, lpips and the rest of the training stack; those two files need only torch, torchvision and
opencv, which our environment has. Elsewhere the tests compare PN and PFE with per-patch loops
(``test_modeling.py``). Both architectures, square and non-square pictures, every parameter moved off its
initial value (0.05·randn) and the batch-norm statistics made non-trivial, so that every path counts.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from phnet import PHNet, PHNetConfig

CODE = os.environ.get("PHNET_OFFICIAL_CODE")
pytestmark = pytest.mark.skipif(not CODE, reason="set PHNET_OFFICIAL_CODE to a checkout of the official PHNet code")

ARGUMENTS = {"iharmony": {"enc_sizes": [3, 16, 32, 64, 128, 256, 512], "grid_count": [10, 5, 1]},
             "ffhqh": {"enc_sizes": [3, 16, 64, 128, 256, 512, 1024], "grid_count": [4, 3, 2, 1]}}


# A name of our own, so that no other ``tools`` package on the path is shadowed or picked up instead.
PACKAGE = "phnet_official_tools"


def official_tools_folder(code: str) -> Path:
    for folder in (Path(code), Path(code) / "tools"):
        if (folder / "model.py").is_file() and (folder / "normalizer.py").is_file():
            return folder
    pytest.fail(f"PHNET_OFFICIAL_CODE={code} holds no model.py and normalizer.py: point it at a checkout of "
                "github.com/befozg/PHNet or at its tools/ folder.")


@pytest.fixture(scope="module")
def official_model_class():
    folder = official_tools_folder(CODE)
    # An empty package object stands in for tools/, so that model.py's ``from .normalizer import ...`` resolves
    # without running tools/__init__.py, which imports the official trainer.
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder)]
    sys.modules[PACKAGE] = package
    try:
        for name in ("normalizer", "model"):
            spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            setattr(package, name, module)
        yield module.PHNet
    finally:
        for name in (PACKAGE, f"{PACKAGE}.normalizer", f"{PACKAGE}.model"):
            sys.modules.pop(name, None)


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1, generator=g)
    return model.eval()


@pytest.mark.parametrize("preset", ["iharmony", "ffhqh"])
@pytest.mark.parametrize("shape", [(128, 128), (96, 160)])
def test_our_network_computes_what_the_official_code_computes(official_model_class, preset, shape):
    torch.manual_seed(0)
    official = perturbed(official_model_class(skips=True, init_weights=[0.5, 0.5], init_value=0.8,
                                              **ARGUMENTS[preset]), seed=1)
    ours = PHNet(PHNetConfig.preset(preset)).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    h, w = shape
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, h, w, generator=g)
    mask = torch.zeros(2, 1, h, w)
    mask[0, :, h // 4 : 3 * h // 4, w // 5 : w // 2] = 1
    mask[1, :, 10 : h - 8, 30 : w - 20] = 1
    with torch.no_grad():
        theirs = official(image, mask)
        exact = copy.deepcopy(official).double()(image.double(), mask.double())  # the same weights in float64
        ours_out = ours(image, mask)
    float_error = (theirs.double() - exact).abs().max().item()  # how far fp32 itself is from the exact result
    assert float_error < 1e-3  # the same weights: only rounding apart
    assert (ours_out.double() - theirs.double()).abs().max().item() <= max(2 * float_error, 1e-6)
