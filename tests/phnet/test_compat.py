"""phnet.compat: the library on the API of older torch (the SD-WebUI brings 2.1 or 2.3), checked here by taking
the newer names away from the torch this suite runs on. The library's tests were also run on torch 2.1.2 and 2.3.1:
there only the 16-bit tests (16-bit pictures are refused before 2.4, on purpose) and torch's own messages differ."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

OLD_TORCH = """
import torch
for owner, name in ((torch, "uint16"), (torch.amp, "is_autocast_available")):  # added in torch 2.3, 2.4
    if hasattr(owner, name):
        delattr(owner, name)
import numpy as np
from phnet import Harmonizer
from phnet.modeling import PHNet
from phnet.config import PHNetConfig

torch.manual_seed(0)
model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
h = Harmonizer(model, device="cpu", dtype="fp32")
image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
mask = np.zeros((40, 48), np.float32)
mask[10:30, 16:32] = 1
for mode in ("full", "official"):
    out, (correction,) = h.harmonize(image, mask, mode=mode, threshold=0)
    assert out.dtype == np.uint8 and out.shape == image.shape and correction.kept == 1
half = torch.from_numpy(image).float().div(255).half()[None]
assert h(half, torch.from_numpy(mask)[None], layout="BHWC").dtype == torch.float16
try:
    h((image.astype(np.uint16) * 257), mask)
except ValueError as e:
    assert "need torch 2.4 or later" in str(e), e
else:
    raise AssertionError("16-bit pixels were taken without torch's uint16")
print("ok")
"""


def test_8bit_pictures_are_harmonized_on_the_api_of_older_torch_and_16bit_ones_refused_by_name():
    """A1111's torch 2.1 has no torch.uint16 and Forge's 2.3 no torch.amp.is_autocast_available: the library
    failed to import ("cannot import name 'Harmonizer'") or failed on every call."""
    done = subprocess.run([sys.executable, "-c", OLD_TORCH], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_device_without_autocast_runs_the_network_and_refuses_low_precision(monkeypatch):
    """MPS before torch 2.5 has no autocast: asking whether it is on, or turning it off, raised, so every PN
    call failed on a Mac with the torch ComfyUI ships (2.4)."""
    import pytest
    import torch

    from phnet import compat, precision
    from phnet.modeling import patches
    from phnet.modeling.normalization import PatchNormalization
    from phnet.precision import resolve_dtype

    torch.manual_seed(0)
    block = PatchNormalization(channels=4, grid=2)
    x, m = torch.rand(1, 4, 16, 16), torch.ones(1, 1, 16, 16)
    expected = block(x, m)

    def refused(*args, **kwargs):
        raise RuntimeError("unknown device type for autocast")

    monkeypatch.setattr(compat, "autocast_available", lambda device_type: False)
    monkeypatch.setattr(patches, "autocast_available", lambda device_type: False)
    monkeypatch.setattr(precision, "autocast_available", lambda device_type: False)
    monkeypatch.setattr(torch, "autocast", refused)
    monkeypatch.setattr(torch, "is_autocast_enabled", refused)
    assert torch.equal(block(x, m), expected)
    with pytest.raises(ValueError, match="bf16 runs under autocast, which torch .* does not have for cpu"):
        resolve_dtype("bf16", "cpu")


def test_widened_gives_unsigned_integers_over_8_bits_a_signed_dtype_and_leaves_the_rest():
    """torch has no max, comparison or where for uint16, uint32 and uint64 on the CPU in the versions hosts run."""
    from phnet.compat import widened

    for dtype, wide in ((getattr(torch, "uint16", None), torch.int32), (getattr(torch, "uint32", None), torch.int64),
                        (getattr(torch, "uint64", None), torch.int64)):
        if dtype is not None:
            t = torch.tensor([0, 7], dtype=torch.int64).to(dtype)
            assert widened(t).dtype == wide and widened(t).tolist() == [0, 7]
    for t in (torch.ones(2, dtype=torch.uint8), torch.ones(2, dtype=torch.bool), torch.ones(2), torch.ones(2).long()):
        assert widened(t) is t


def test_the_fp16_autocast_probe_beside_a_picture_being_opened_leaves_the_warning_filters_as_they_were(monkeypatch):
    """The probe turned every warning into an error in a catch_warnings block of its own: interleaved with a picture
    being opened in another thread, "error" stayed the filter of the whole process."""
    import contextlib
    import warnings

    from tests.helpers.overlap import ReadOverlap
    from phnet.compat import cpu_autocast_takes_fp16

    overlap = ReadOverlap()

    @contextlib.contextmanager
    def slow_autocast(*args, **kwargs):  # the probe, held inside its block until the reader has left its own
        overlap.hold()
        yield

    monkeypatch.setattr(torch, "autocast", slow_autocast)
    before = list(warnings.filters)
    overlap.run(cpu_autocast_takes_fp16.__wrapped__)
    assert warnings.filters == before
