"""The trainer never trains on other data than it was given without saying so.

Configured folders must exist, a mask folder must hold the photos' masks, and pictures are decoded by
``phnet.imageio`` (EXIF orientation, 16-bit grey at full precision) like everywhere else in the library.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from procedural_portraits import portrait
from trainer.data import build_dataset
from trainer.data.common import load_mask, load_rgb, load_rgb_and_alpha


def fit_main(capsys, *args: str) -> tuple[int, str]:
    from trainer.fit import main

    rc = main(["--config", "tiny_cpu", "--no-progress", "--steps", "1", "--set", "train.val_every=0", *args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("key", ["mask_dir", "val_root", "val_mask_dir", "ffhq_root", "root"])
def test_a_configured_folder_that_does_not_exist_stops_the_start(photos, tmp_path, capsys, key):
    img_dir, _ = photos
    missing = tmp_path / "no-such-folder"
    out = tmp_path / "run"
    data = ["--data", str(missing if key == "root" else img_dir)]
    sets = [] if key == "root" else ["--set", f'data.{key}="{missing}"']
    rc, err = fit_main(capsys, *data, "--out", str(out), *sets)
    assert rc == 2
    assert err.splitlines()[-1] == (f"error: data.{key}: the folder {missing} does not exist; correct data.{key}"
                                    + (" (--data)" if key == "root" else " or leave it empty"))
    assert not out.exists()  # refused before the run folder is made


def test_a_mask_folder_must_hold_the_photos_masks(photos, tmp_path):
    img_dir, mask_dir = photos
    with pytest.raises(FileNotFoundError, match="data.mask_dir: the folder .*typo does not exist"):
        build_dataset({"root": str(img_dir), "mask_dir": str(tmp_path / "typo"), "image_size": 32}, "train")
    elsewhere = tmp_path / "other-masks"
    elsewhere.mkdir()
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(elsewhere / "unrelated.png")
    data = {"root": str(img_dir), "mask_dir": str(elsewhere), "image_size": 32}
    with pytest.raises(FileNotFoundError, match="data.mask_dir: no photo under .* has a mask in .*other-masks"):
        build_dataset(data, "train")
    # some masks missing: the photos without one are counted in a warning, the others use their masks
    some = tmp_path / "some-masks"
    some.mkdir()
    names = sorted(p.name for p in mask_dir.iterdir())
    for name in names[:-3]:
        (some / name).write_bytes((mask_dir / name).read_bytes())
    with pytest.warns(UserWarning, match=f"data.mask_dir: 3 of {len(names)} photos .* have no mask"):
        ds = build_dataset({**data, "mask_dir": str(some), "val_fraction": 0.0}, "train")
    assert sum(r.mask is not None for r in ds.records) == len(names) - 3


def test_16_bit_grey_photos_keep_their_values(tmp_path):
    ramp = np.linspace(1000, 60000, 40 * 48).reshape(40, 48).astype(np.uint16)
    ramp[0, :2] = (1000, 1001)  # one step of 16 bits: lost at 8 bits
    folder = tmp_path / "grey16"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(ramp).save(folder / name)
    with Image.open(folder / "a.png") as sixteen:
        assert sixteen.mode.startswith("I")
    rgb = load_rgb(folder / "a.png")
    assert rgb.shape == (40, 48, 3) and rgb.dtype == np.float32
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])  # grey
    np.testing.assert_allclose(rgb[..., 0], ramp / 65535.0, rtol=0, atol=1e-6)
    assert rgb[0, 1, 0] > rgb[0, 0, 0]
    # the colour reference of a synthesised composite is read the same way (not white either)
    ds = build_dataset({"root": str(folder), "image_size": 32, "val_fraction": 0.0}, "train")
    ref = ds.reference_for(0, np.random.default_rng(0))
    assert ref is not None and 0.05 < ref.mean() < 0.95 and ref.max() < 0.95


def test_an_exif_rotated_jpeg_loads_upright(tmp_path):
    upright = np.zeros((40, 24, 3), np.uint8)  # portrait: red top half, blue bottom half
    upright[:20, :, 0] = 230
    upright[20:, :, 2] = 230
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    stored.getchannel("R").save(tmp_path / "mask.jpg", exif=exif, quality=95)  # white on the top half
    rgb = load_rgb(tmp_path / "photo.jpg")
    assert rgb.shape == (40, 24, 3)
    assert rgb[:20, :, 0].mean() > 0.8 and rgb[:20, :, 2].mean() < 0.1
    assert rgb[20:, :, 2].mean() > 0.8 and rgb[20:, :, 0].mean() < 0.1
    mask = load_mask(tmp_path / "mask.jpg")
    assert mask.shape == (40, 24) and mask[:20].mean() > 0.9 and mask[20:].mean() < 0.1


def test_8_bit_photos_and_masks_load_as_before(tmp_path):
    img, mask = portrait(np.random.default_rng(3), 40, 48)
    alpha = mask.copy()
    alpha[:5] = 100  # below half: background
    Image.fromarray(img).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([img, alpha])).save(tmp_path / "rgba.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    expected = np.asarray(img, dtype=np.float32) / 255.0
    rgb, no_alpha = load_rgb_and_alpha(tmp_path / "rgb.png")
    assert no_alpha is None and np.array_equal(rgb, expected)
    rgb, cut = load_rgb_and_alpha(tmp_path / "rgba.png")
    assert np.array_equal(rgb, expected) and np.array_equal(cut, (alpha >= 128).astype(np.float32))
    assert np.array_equal(load_mask(tmp_path / "mask.png"), (mask >= 128).astype(np.float32))
