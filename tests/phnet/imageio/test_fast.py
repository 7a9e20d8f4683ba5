"""phnet.imageio.fast: the Harmonizer's path that takes a caller's pixels as they are, and leaves anything else to the
conversion that names it."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer
from tests.helpers.pictures import photo, subject_mask


def _tiff_of_pages(count: int) -> bytes:
    """A TIFF of ``count`` one-pixel grey pages, written directly (PIL's save_all takes seconds for thousands)."""
    import struct

    tags = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8), (277, 3, 1), (278, 3, 1),
            (279, 4, 1)]  # 1×1, 8 bits, uncompressed, black is zero, one strip of 1 byte (the pixel at 8), 1 sample
    size = 2 + 12 * len(tags) + 4
    out = [b"II*\0", struct.pack("<I", 12), b"\x80\0\0\0"]
    for page in range(count):
        following = 12 + (page + 1) * size if page + 1 < count else 0
        out.append(struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, kind, 1, value)
                                                           for tag, kind, value in tags)
                   + struct.pack("<I", following))
    return b"".join(out)


def test_a_pil_tiff_of_many_pages_is_refused_without_walking_them(tiny_model):
    """The fast path asked for n_frames, which walks every page (30 000 one-pixel pages: 40 s to the refusal)."""
    from phnet import Harmonizer
    from phnet.imageio.fast import image_pixels, mask_pixels

    data = io.BytesIO(_tiff_of_pages(3000))
    for use in ("image", "mask", "harmonize"):
        data.seek(0)
        tiff = Image.open(data)
        if use == "image":
            assert image_pixels(tiff) is None
        elif use == "mask":
            assert mask_pixels(tiff, 1, 1, 1) is None
        else:
            with pytest.raises(ValueError, match="multi-page TIFF; save the page you want as its own file"):
                Harmonizer(tiny_model, device="cpu").harmonize(tiff, np.ones((1, 1), np.uint8))
        assert tiff._n_frames is None, use  # not counted


def test_a_turned_or_palette_pil_picture_takes_the_native_path(tiny_model, monkeypatch):
    """A phone's portrait (EXIF orientation 6) and a PIL picture in mode P (with a key colour) or LA were converted
    to floats whole before the work and rounded back through float64 (8K: +3 GB and 5× the time of the same
    picture upright): they are read as image_to_tensor reads them, then taken as they are, and give what their
    upright or converted copy gives."""
    from PIL import ImageOps

    import phnet.harmonizer as harmonizer_module
    from phnet import Harmonizer

    harmonizer = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    rng = np.random.default_rng(0)
    stored = (rng.random((48, 64, 3)) * 60 + np.linspace(0, 180, 64)[None, :, None]).astype(np.uint8)
    stored[12:36, 20:44] = (200, 120, 90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = io.BytesIO()
    Image.fromarray(stored).save(data, "JPEG", quality=90, exif=exif.tobytes())
    turned = Image.open(io.BytesIO(data.getvalue()))
    palette = Image.fromarray(stored).convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    pictures = {"turned": (turned, ImageOps.exif_transpose(turned)), "P": (palette, palette.convert("RGBA")),
                "LA": (Image.fromarray(stored).convert("LA"), Image.fromarray(stored).convert("LA").convert("RGBA"))}
    converted = {}
    with monkeypatch.context() as patched:
        patched.setattr(harmonizer_module, "image_pixels", lambda *args, **kwargs: None)
        for name, (picture, copy) in pictures.items():
            mask = np.zeros(copy.size[::-1], np.uint8)  # (the turned picture's: 64 high, 48 wide)
            mask[mask.shape[0] // 4:3 * mask.shape[0] // 4, mask.shape[1] // 3:2 * mask.shape[1] // 3] = 255
            converted[name] = mask, harmonizer.harmonize(picture, mask, threshold=0)[0]
    monkeypatch.setattr(harmonizer_module, "image_to_tensor", lambda *args, **kwargs: pytest.fail("converted"))
    for name, (picture, copy) in pictures.items():
        mask, before = converted[name]
        out = harmonizer.harmonize(picture, mask, threshold=0)[0]
        assert (out.mode, out.size) == (before.mode, before.size) == (copy.mode, copy.size), name
        assert np.array_equal(np.asarray(out), np.asarray(harmonizer.harmonize(copy, mask, threshold=0)[0])), name
        assert np.abs(np.asarray(out, np.int16) - np.asarray(before)).max() <= 1, name  # (0 here: the same levels)


@pytest.mark.parametrize("pixels, layout, words", [
    (np.zeros((0, 16, 3), np.uint8), None, r"empty image of shape \(0, 16, 3\)"),
    (np.zeros((16, 16, 3), np.uint8), "BHWC", r"image of shape \(16, 16, 3\) does not match layout 'BHWC'"),
])
def test_the_native_path_leaves_an_empty_picture_or_a_wrong_layout_to_be_named(tiny_model, pixels, layout, words):
    """The Harmonizer's path that reads a caller's pixels as they are takes neither: the conversion names them."""
    from phnet import Harmonizer

    mask = np.zeros(pixels.shape[:2], np.uint8)
    with pytest.raises(ValueError, match=words):
        Harmonizer(tiny_model, device="cpu")(pixels, mask, layout=layout)


def test_a_0_1_uint8_or_bool_mask_is_the_0_255_mask_without_a_float_copy(tiny_model):
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    binary = np.zeros((2, 40, 56), np.uint8)
    binary[:, 10:30, 18:38] = 1
    expected = h(image, binary * 255, threshold=0)
    assert np.array_equal(h(image, binary, threshold=0), expected)
    assert np.array_equal(h(image, binary.astype(bool), threshold=0), expected)
    from phnet.imageio.fast import mask_pixels

    assert mask_pixels(binary, 2, 40, 56)[1] == 1.0  # the fast path: the caller's bytes, not a float copy


@pytest.mark.parametrize("bad", [float("nan"), 5.0])
def test_a_float_rgba_pictures_alpha_is_checked_like_its_colours(harmonizer, bad):
    """The fast path checked R, G and B only: a NaN or 5.0 alpha came back in the result as it went in."""
    image = torch.rand(32, 40, 4)
    image[..., 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite|outside 0..1|0..1"):
        harmonizer(image, torch.from_numpy(subject_mask(32, 40)))


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_an_animated_picture_or_mask_given_as_pil_is_refused_as_a_file_is(harmonizer, tmp_path, suffix):
    """An animated WebP or APNG went through the fast path: its first frame was harmonized without a word."""
    frames = [Image.fromarray(photo(40, 48, seed)) for seed in range(2)]
    frames[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:])
    mask = subject_mask(40, 48)
    with pytest.raises(ValueError, match=r"animated \(2 frames\)"), Image.open(tmp_path / f"anim{suffix}") as anim:
        harmonizer(anim, mask)
    masks = [Image.fromarray((mask * 255).astype(np.uint8)), Image.fromarray((255 - mask * 255).astype(np.uint8))]
    masks[0].save(tmp_path / f"masks{suffix}", save_all=True, append_images=masks[1:])
    with pytest.raises(ValueError, match=r"animated \(2 frames\)"), Image.open(tmp_path / f"masks{suffix}") as anim:
        harmonizer(frames[0], anim)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_pil_picture_with_a_transparent_key_colour_comes_back_with_its_alpha(harmonizer, tmp_path, mode):
    """The fast path took an RGB or grey PNG with a tRNS key as it stood, and gave it back without transparency."""
    rgb = np.random.default_rng(1).integers(5, 256, (40, 48, 3), dtype=np.uint8)
    rgb[:4] = (1, 2, 3)
    picture = Image.fromarray(rgb).convert(mode)
    key = (1, 2, 3) if mode == "RGB" else picture.getpixel((0, 0))
    picture.save(tmp_path / "keyed.png", transparency=key)
    with Image.open(tmp_path / "keyed.png") as keyed:
        out = harmonizer(keyed, subject_mask(40, 48))
    assert out.mode == "RGBA" and np.asarray(out)[:4, :, 3].max() == 0 and np.asarray(out)[20, 24, 3] == 255
