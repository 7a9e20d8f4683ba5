"""The full-resolution benchmark's photos and masks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def test_a_mask_of_another_size_than_its_photo_is_refused_naming_both(tmp_path):
    """It ended in the library's 'mask shape ... does not match image' traceback, naming no file."""
    from benchmarks.fullres_methods import load_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((200, 160, 3), np.uint8)).save(tmp_path / "images" / "p.png")
    mask = np.zeros((160, 240), np.uint8)
    mask[40:120, 60:180] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "p.png")
    with pytest.raises(SystemExit, match=r"masks.p\.png is 240×160 px and its photo .*images.p\.png is 160×200 px"):
        list(load_pairs(tmp_path, 4))
