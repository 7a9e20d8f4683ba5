"""benchmarks.pairs: the photos and masks the full-resolution and video benchmarks read."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.mark.parametrize("reader", ["fullres_methods", "video_and_reference"])
def test_a_mask_of_another_size_than_its_photo_is_refused_naming_both(tmp_path, reader):
    """The video benchmark stretched the photo to the mask's shape without a word; the full-resolution one ended
    in the library's 'mask shape ... does not match image' traceback, naming no file."""
    from benchmarks import fullres_methods, video_and_reference

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((200, 160, 3), np.uint8)).save(tmp_path / "images" / "p.png")
    mask = np.zeros((160, 240), np.uint8)
    mask[40:120, 60:180] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "p.png")
    read = {"fullres_methods": lambda: list(fullres_methods.load_pairs(tmp_path, 4)),
            "video_and_reference": lambda: video_and_reference.load(tmp_path, 4)}[reader]
    with pytest.raises(SystemExit, match=r"masks.p\.png is 240×160 px and its photo .*images.p\.png is 160×200 px"):
        read()
