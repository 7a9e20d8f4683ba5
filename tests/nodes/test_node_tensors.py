"""ComfyUI IMAGE/MASK conventions: normalisation, broadcast, resize warnings, clear errors."""

from __future__ import annotations

import importlib
import logging

import pytest
import torch


@pytest.fixture(scope="module")
def T(pack):
    return importlib.import_module(pack.__name__ + ".nodes.tensors")


def test_as_image(T):
    x = torch.rand(2, 8, 12, 3)
    assert T.as_image(x) is not None and T.as_image(x).shape == (2, 8, 12, 3)
    assert T.as_image(torch.rand(8, 12, 3)).shape == (1, 8, 12, 3)
    rgba = torch.rand(1, 8, 12, 4)
    assert torch.equal(T.as_image(rgba), rgba[..., :3])
    assert T.as_image(torch.rand(1, 8, 12, 1)).shape == (1, 8, 12, 3)
    with pytest.raises(ValueError, match="channels"):
        T.as_image(torch.rand(1, 3, 8, 12))
    with pytest.raises(ValueError, match="IMAGE"):
        T.as_image(torch.rand(8, 12))
    with pytest.raises(ValueError, match="IMAGE"):
        T.as_image("not a tensor")


@pytest.mark.parametrize("shape", [(8, 12), (1, 8, 12), (1, 1, 8, 12), (1, 8, 12, 1)])
def test_as_mask_shapes(T, shape):
    assert T.as_mask(torch.rand(shape)).shape == (1, 8, 12)


def test_as_mask_errors(T):
    with pytest.raises(ValueError, match="IMAGE connected to a MASK"):
        T.as_mask(torch.rand(1, 8, 12, 3))
    with pytest.raises(ValueError, match="MASK"):
        T.as_mask(torch.rand(8))


def test_mask_for_image_broadcast_and_resize(T, caplog):
    img = torch.rand(3, 32, 48, 3)
    m = torch.zeros(1, 32, 48)
    m[:, 8:24, 12:36] = 1
    out = T.mask_for_image(m, img)
    assert out.shape == (3, 32, 48) and torch.equal(out[2], m[0])
    with caplog.at_level(logging.WARNING):
        small = T.mask_for_image(torch.zeros(64, 64), img)  # LoadImage's stub mask for a picture without alpha
    assert small.shape == (3, 32, 48)
    assert "resized" in caplog.text and "64x64" in caplog.text
    with pytest.raises(ValueError, match="batch of 2"):
        T.mask_for_image(torch.zeros(2, 32, 48), img)


def test_broadcast_pair(T):
    a, b = T.broadcast_pair(torch.rand(1, 4, 4, 3), torch.rand(3, 5, 5, 3), "background", "subject")
    assert a.shape[0] == b.shape[0] == 3
    with pytest.raises(ValueError, match="must match"):
        T.broadcast_pair(torch.rand(2, 4, 4, 3), torch.rand(3, 4, 4, 3), "a", "b")
