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


def test_a_pair_is_read_as_the_trainer_reads_it(tmp_path):
    """Plain Pillow ignored a phone photo's EXIF orientation (its upright mask was refused as of another size),
    read a 16-bit grey photo as almost white and clipped a 16-bit mask's values."""
    from benchmarks.pairs import read_pair

    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:32] = 255  # the top half white, seen upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, to be turned 90° clockwise, as a phone saves it
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    mask = np.zeros((64, 48), np.uint8)
    mask[:32] = 255
    Image.fromarray(mask).save(tmp_path / "phone_mask.png")
    image, hard = read_pair(tmp_path / "phone.jpg", tmp_path / "phone_mask.png")
    assert image.shape == (64, 48, 3) and image[hard > 0].mean() > 0.95

    Image.fromarray(np.full((32, 32), 32768, np.uint16)).save(tmp_path / "grey16.png")
    mask16 = np.zeros((32, 32), np.uint16)
    mask16[8:24, 8:24] = 65535
    mask16[8:24, 4:8] = 20000  # under half of full: background
    Image.fromarray(mask16).save(tmp_path / "mask16.png")
    image, hard = read_pair(tmp_path / "grey16.png", tmp_path / "mask16.png")
    assert image.mean() == pytest.approx(0.5, abs=0.01)
    assert hard.sum() == 16 * 16


def test_an_unreadable_photo_ends_in_one_line_naming_it(tmp_path):
    from benchmarks.pairs import read_pair

    (tmp_path / "p.png").write_bytes(b"not a picture")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(SystemExit, match=r"^error: unreadable image .*p\.png") as caught:
        read_pair(tmp_path / "p.png", tmp_path / "m.png")
    assert "\n" not in str(caught.value)


def test_a_missing_photo_or_a_broken_link_is_named_with_a_fix_for_the_benchmark(tmp_path):
    """The trainer's words came through: set data.on_bad_sample, or resume with --resume, which a benchmark has
    not."""
    from benchmarks.pairs import read_pair

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    (tmp_path / "p.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(SystemExit, match=r"^error: .*p\.png is missing or a broken link: put it back, or take it "
                                         r"and its mask out of the folder$"):
        read_pair(tmp_path / "p.png", tmp_path / "m.png")
