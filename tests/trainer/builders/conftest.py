"""Synthetic pictures and a temporary reserved-picture table for the held-out tests."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from trainer.builders import held_out


def colour_picture(seed: int, size: int = 96) -> np.ndarray:
    """A smooth, colourful picture: a 4x4 random colour grid upsampled (dHash-stable under re-encoding)."""
    grid = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))


def encode(rgb: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture()
def picture():
    """colour_picture(seed, size)."""
    return colour_picture


@pytest.fixture()
def encoded():
    """encode(rgb, fmt="PNG", **save_options)."""
    return encode


@pytest.fixture()
def reserved(tmp_path, monkeypatch) -> bytes:
    """The file of one "reserved" picture, listed in a temporary table that replaces the real one."""
    data = encode(colour_picture(seed=7))
    table = tmp_path / "held_out.tsv"
    table.write_text("# test table\n# md5, dHash, name\nmd5\tdhash64\tname\n"
                     f"{hashlib.md5(data).hexdigest()}\t{held_out.dhash64(data):016x}\treserved.png\n")
    monkeypatch.setattr(held_out, "default_table", lambda: held_out.read_table(table))
    return data
