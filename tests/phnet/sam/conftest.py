"""Fixtures for the SAM tests: the tiny random SAM from tests/helpers/tiny_sam.py (64 px, dim 32)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.tiny_sam import save_tiny_sam  # first: it skips these tests where segment-anything is missing
from phnet.sam import SamSegmenter  # noqa: I001


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.safetensors")


@pytest.fixture(scope="module")
def seg(tiny_path):
    return SamSegmenter.from_pretrained(tiny_path, device="cpu")


@pytest.fixture
def image():
    rng = np.random.RandomState(0)
    return (rng.rand(48, 80, 3) * 255).astype(np.uint8)

