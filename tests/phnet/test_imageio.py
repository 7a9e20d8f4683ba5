"""phnet.imageio: the one input boundary. Each rule of its docstring is tested here, once, through every
entry point that applies it (library tensors, single-image arrays, the B×H×W×C host layout, files)."""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import imageio as io_


def _mask_entry_points():
    """Every function that turns a numpy mask into numbers, as f(mask) -> float array H×W (first of the batch)."""
    return {
        "mask_to_tensor": lambda m: io_.mask_to_tensor(m, 1, 4, 6)[0, 0].numpy(),
        "mask_to_array": lambda m: io_.mask_to_array(m),
        "mask_to_bhw": lambda m: io_.mask_to_bhw(torch.from_numpy(m))[0].numpy(),
    }


MASK_FNS = list(_mask_entry_points().items())


# ----------------------------------------------------------------------------------------------------
# mask values


@pytest.mark.parametrize("name,fn", MASK_FNS, ids=[n for n, _ in MASK_FNS])
def test_uint8_mask_holding_0_and_1_is_binary(name, fn):
    m = np.zeros((4, 6), np.uint8)
    m[1:3, 2:4] = 1
    out = fn(m)
    assert out.max() == 1.0 and set(np.unique(out)) == {0.0, 1.0}
    # the same as a 0/255 mask
    np.testing.assert_array_equal(out, fn(m * 255))


def test_pil_mask_holding_0_and_1_is_binary():
    m = np.zeros((4, 6), np.uint8)
    m[1:3, 2:4] = 1
    out = io_.mask_to_array(Image.fromarray(m, "L"))
    assert out.max() == 1.0


@pytest.mark.parametrize("name,fn", MASK_FNS, ids=[n for n, _ in MASK_FNS])
def test_uint16_half_is_half_everywhere(name, fn):
    m = np.zeros((4, 6), np.uint16)
    m[0, 0] = 32768
    m[0, 1] = 65535
    out = fn(m)
    assert out[0, 0] == pytest.approx(0.5, abs=1e-4) and out[0, 1] == 1.0


def test_uint16_mask_file_reads_half(tmp_path):
    m = np.zeros((4, 6), np.uint16)
    m[0, 0] = 32768
    Image.fromarray(m).save(tmp_path / "m.png")
    assert io_.read_mask(tmp_path / "m.png")[0, 0] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("high, expected", [(1, False), (200, True)])
def test_a_16bit_alpha_s_levels_are_read_at_16_bits(tmp_path, high, expected):
    """PIL's alpha band of a 16-bit RGBA PNG holds the high byte: levels up to 255 of 65535 read as 0, so a clip
    of such frames was read as 0/1 masks."""
    cv2 = pytest.importorskip("cv2")
    from phnet.imageio.masks import integer_levels_above_one

    pixels = np.zeros((8, 8, 4), np.uint16)
    pixels[2:6, 2:6, 3] = high
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    assert integer_levels_above_one(tmp_path / "a.png", alpha=True) is expected


@pytest.mark.parametrize("name,fn", MASK_FNS, ids=[n for n, _ in MASK_FNS])
@pytest.mark.parametrize("value", [1.5, -0.2, 255.0, np.nan])
def test_float_mask_outside_0_1_is_an_error_everywhere(name, fn, value):
    m = np.zeros((4, 6), np.float32)
    m[0, 0] = value
    with pytest.raises(ValueError, match="0..1|NaN"):
        fn(m)


def test_float_mask_rounding_slack_is_clamped_and_soft_values_kept():
    m = np.full((4, 6), 0.25, np.float32)
    m[0, 0] = 1.0004
    m[0, 1] = -0.0004
    out = io_.mask_to_array(m)
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0 and out[1, 1] == 0.25


def test_other_integer_masks_must_be_0_1():
    assert io_.mask_to_array(np.eye(4, dtype=np.int64)).max() == 1.0
    with pytest.raises(ValueError, match="0/1, uint8 0..255"):
        io_.mask_to_array(np.full((4, 4), 200, np.int64))
    assert io_.mask_to_array(np.eye(4, dtype=bool)).sum() == 4


# ----------------------------------------------------------------------------------------------------
# mask layouts and alpha


@pytest.mark.parametrize("shape", [(4, 6), (1, 4, 6), (4, 6, 1), (1, 1, 4, 6), (1, 4, 6, 1)])
def test_mask_layouts(shape):
    assert io_.mask_to_tensor(np.ones(shape, np.float32), 2, 4, 6).shape == (2, 1, 4, 6)
    assert io_.mask_to_array(np.ones(shape, np.float32)).shape == (4, 6)


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_mask_is_named_as_such(channels):
    m = np.zeros((64, 48, channels), np.uint8)
    for call in (lambda: io_.mask_to_tensor(m, 1, 64, 48), lambda: io_.mask_to_array(m)):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert f"H×W×{channels}" in msg and "one channel" in msg and "W×H" not in msg


def test_batch_of_masks_is_not_read_as_a_colour_picture():
    # three masks 4 pixels wide... and the image is 4 wide: B×H×W wins when it matches the image
    m = np.ones((3, 5, 4), np.float32)
    assert io_.mask_to_tensor(m, 3, 5, 4).shape == (3, 1, 5, 4)


def test_mask_size_and_count_messages():
    with pytest.raises(ValueError, match=r"mask is 32×16 \(W×H\) but the image is 32×32; resize the mask"):
        io_.mask_to_tensor(np.ones((16, 32)), 1, 32, 32)
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        io_.mask_to_tensor(np.ones((3, 8, 8)), 2, 8, 8)
    with pytest.raises(ValueError, match="give one mask"):
        io_.mask_to_array(np.ones((2, 8, 8)))


@pytest.mark.parametrize("batch,bad,words", [(2, 1, r"batch index 1 \(of 2"), (1, 0, "the mask is empty")])
def test_empty_mask_names_its_batch_index(batch, bad, words):
    masks = torch.zeros(batch, 1, 8, 8)
    masks[:, :, 2:4, 2:4] = 1
    masks[bad] = 0
    with pytest.raises(ValueError, match=words):
        io_.check_mask_coverage(masks)
    masks[bad] = 1
    with pytest.raises(ValueError, match="covers the whole image"):
        io_.check_mask_coverage(masks)


def test_a_whole_mask_in_a_clip_or_batch_is_passed_on_unless_every_mask_is_whole_or_empty():
    """A subject that fills one frame (walking into the camera) is not a mistake in a clip: the Harmonizer leaves
    that frame as it was, for too little background; a single picture so masked, or all of them, is refused."""
    masks = torch.zeros(3, 1, 8, 8)
    masks[:, :, 2:4, 2:4] = 1
    masks[1] = 1
    io_.check_mask_coverage(masks, allow_empty=True, unit="frame")
    masks[0] = 0
    masks[2] = 1
    with pytest.raises(ValueError, match=r"batch index 1, 2 \(of 3, counting from 0\) covers the whole image"):
        io_.check_mask_coverage(masks, allow_empty=True, unit="frame")


@pytest.mark.parametrize("level, peak", [(0.3, 1.0), (77, 255)])
def test_a_flat_grey_mask_is_refused(level, peak):
    """One grey level everywhere (a grey picture given as the mask) made every pixel a little subject, silently."""
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, 2:4, 2:4] = peak
    masks[1] = level
    with pytest.raises(ValueError, match=r"batch index 1 \(of 2, counting from 0\) is one flat grey \(30% of full\)"):
        io_.check_mask_coverage(masks, peak, allow_empty=True)
    io_.check_mask_coverage(masks[:1], peak)  # a subject and its background


def test_pil_alpha_is_the_mask_unless_opaque():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 3] = 0
    rgba[1:3, 1:3, 3] = 255
    assert io_.mask_to_array(Image.fromarray(rgba, "RGBA")).sum() == 4
    # an opaque alpha carries no mask: the picture's luminance is the mask
    rgba[..., 3] = 255
    rgba[..., :3] = 0
    rgba[0, 0, :3] = 255
    assert io_.mask_to_array(Image.fromarray(rgba, "RGBA")).sum() == 1
    la = Image.fromarray(rgba[..., :2].copy(), "LA")
    assert io_.mask_to_array(la).sum() == 1


def test_pil_mask_modes():
    m = np.zeros((4, 6), np.uint8)
    m[1, 1] = 255
    for mode in ("L", "1", "RGB", "P"):
        assert io_.mask_to_array(Image.fromarray(m).convert(mode)).sum() == 1, mode


def test_bhw_host_masks_stay_on_their_tensor_and_refuse_images():
    m = torch.rand(2, 8, 8)
    assert torch.equal(io_.mask_to_bhw(m), m)
    assert io_.mask_to_bhw(m[:, None]).shape == (2, 8, 8)
    with pytest.raises(ValueError, match="H×W×3|B×H×W×3"):
        io_.mask_to_bhw(torch.rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match="mask tensor"):
        io_.mask_to_bhw(np.zeros((8, 8)))


# ----------------------------------------------------------------------------------------------------
# images


def _all_image_entry_points():
    return {
        "image_to_tensor": lambda x: io_.image_to_tensor(x)[0],
        "image_to_array": lambda x: io_.image_to_array(x)[0],
        "image_to_bhwc": lambda x: io_.image_to_bhwc(torch.as_tensor(x)),
        "image_to_uint8": lambda x: io_.image_to_uint8(x),
    }


IMAGE_FNS = list(_all_image_entry_points().items())


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_float_image_in_0_255_is_refused_with_the_fix(name, fn):
    img = np.full((4, 6, 3), 200.0, np.float32)
    with pytest.raises(ValueError) as e:
        fn(img)
    msg = str(e.value)
    assert "0..1" in msg and "divide" in msg and "255" in msg


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_nan_image_is_refused(name, fn):
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((4, 6, 3), np.nan, np.float32))


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_integer_ranges(name, fn):
    u8 = np.full((4, 6, 3), 255, np.uint8)
    u16 = np.full((4, 6, 3), 32768, np.uint16)
    out8, out16 = (np.asarray(fn(x), np.float64) for x in (u8, u16))
    if name == "image_to_uint8":
        assert out8.max() == 255 and out16.max() == 128
    else:
        assert out8.max() == 1.0 and out16.max() == pytest.approx(0.5, abs=1e-4)


def test_image_channels_and_alpha():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 3] = 128
    rgb, alpha = io_.image_to_array(rgba)
    assert rgb.shape == (4, 6, 3) and alpha[0, 0] == pytest.approx(128 / 255)
    grey_alpha = np.zeros((4, 6, 2), np.float32)
    grey_alpha[..., 0] = 0.5
    rgb, alpha = io_.image_to_array(grey_alpha)
    assert np.all(rgb == 0.5) and alpha is not None
    _, a, form = io_.image_to_tensor(rgba)
    assert a.shape == (1, 1, 4, 6) and form.channels == 4
    with pytest.raises(ValueError, match="channels"):
        io_.image_to_tensor(np.zeros((4, 6, 2), np.uint8))
    assert io_.image_to_bhwc(torch.rand(2, 4, 6, 4)).shape == (2, 4, 6, 3)
    assert io_.image_to_bhwc(torch.rand(4, 6, 1)).shape == (1, 4, 6, 3)
    with pytest.raises(ValueError, match="channels-first"):
        io_.image_to_bhwc(torch.rand(1, 3, 8, 8))


def test_one_image_helpers_refuse_batches():
    with pytest.raises(ValueError, match="background must be one image"):
        io_.image_to_array(np.zeros((3, 4, 6, 3)), "background")


def test_one_image_helpers_read_a_channels_first_tensor_as_the_harmonizer_does():
    """SamSegmenter and paste_subject refused the C×H×W tensor a Harmonizer takes; a C×H×W array is refused naming
    the transpose."""
    pixels = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    expected = io_.image_to_array(pixels)[0]
    chw = torch.from_numpy(pixels).permute(2, 0, 1)
    assert np.array_equal(io_.image_to_array(chw)[0], expected)
    assert np.array_equal(io_.image_to_array(chw[None])[0], expected)
    assert np.array_equal(io_.image_to_uint8(chw.float() / 255), pixels)
    with pytest.raises(ValueError, match=re.escape("channels-first: pass array.transpose(1, 2, 0)")):
        io_.image_to_array(pixels.transpose(2, 0, 1))


# ----------------------------------------------------------------------------------------------------
# 16 bits and EXIF


def test_16bit_grey_file_decodes_at_16_bits(tmp_path):
    grey = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2000)  # up to 46000: far beyond 8 bits
    Image.fromarray(grey).save(tmp_path / "g16.png")
    arr = io_.read_image(tmp_path / "g16.png")
    assert arr.dtype == np.uint16 and np.array_equal(arr, grey)
    with Image.open(tmp_path / "g16.png") as g16:
        rgb, _ = io_.image_to_array(g16)
    np.testing.assert_allclose(rgb[..., 0], grey / 65535, atol=1e-6)  # not white
    assert rgb.max() < 0.71
    # a PIL 16-bit grey image cannot come back as PIL RGB: refused, pointing at an array
    with pytest.raises(ValueError, match="16/32-bit") as e, Image.open(tmp_path / "g16.png") as g16:
        io_.image_to_tensor(g16)
    assert "read_image" in str(e.value) and "convert('L')" not in str(e.value)


def test_a_16bit_grey_tiff_whose_zero_is_white_reads_the_right_way_up(tmp_path):
    """PIL inverts an 8-bit MinIsWhite TIFF and not a 16-bit one: such a mask swapped subject and background."""
    grey = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2000)
    Image.fromarray(65535 - grey).save(tmp_path / "w16.tif", tiffinfo={262: 0})  # stored with 0 as white
    assert np.array_equal(io_.read_image(tmp_path / "w16.tif"), grey)
    np.testing.assert_allclose(io_.read_mask(tmp_path / "w16.tif"), grey / 65535, atol=1e-6)


def test_32bit_integer_grey_in_16_bit_range():
    pil = Image.fromarray(np.full((4, 6), 40000, np.int32), "I")
    rgb, _ = io_.image_to_array(pil)
    assert rgb.max() == pytest.approx(40000 / 65535, abs=1e-6)


def _exif_rotated(array: np.ndarray, orientation: int) -> Image.Image:
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif)
    buf.seek(0)
    return Image.open(buf)


def test_exif_orientation_is_honoured(tmp_path):
    raw = np.zeros((4, 6, 3), np.uint8)  # stored 6 wide, 4 high
    raw[0, 0] = 255
    img = _exif_rotated(raw, 6)  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rot.png", exif=img.getexif())
    arr = io_.read_image(tmp_path / "rot.png")
    assert arr.shape == (6, 4, 3) and arr[0, -1].max() == 255  # top-left moved to top-right
    rgb, _ = io_.image_to_array(_exif_rotated(raw, 6))
    assert rgb.shape == (6, 4, 3)
    rgb_t, _, _ = io_.image_to_tensor(_exif_rotated(raw, 6))
    assert rgb_t.shape == (1, 3, 6, 4)
    m = np.zeros((4, 6), np.uint8)
    m[0, 0] = 255
    mask_img = _exif_rotated(m, 6)
    mask_img.save(tmp_path / "m.png", exif=mask_img.getexif())
    mask = io_.read_mask(tmp_path / "m.png")
    assert mask.shape == (6, 4) and mask[0, -1] == 1.0


def _exif_cut_short(data: bytes, keep: int, chunk: bytes = b"\xff\xe1") -> bytes:
    """A JPEG (or, ``chunk`` b"eXIf", a PNG) whose EXIF block is cut ``keep`` bytes into its TIFF header and
    directory, the pictures still whole: an upload or a tool that cut the block off."""
    import struct
    import zlib

    if chunk == b"eXIf":
        start = data.index(b"eXIf") - 4
        body = data[start + 8:start + 8 + struct.unpack(">I", data[start:start + 4])[0]]
        cut = body[:keep]
        new = struct.pack(">I", len(cut)) + b"eXIf" + cut + struct.pack(">I", zlib.crc32(b"eXIf" + cut))
        return data[:start] + new + data[start + 12 + len(body):]
    start = data.index(chunk + b"\x00")  # (its length's high byte: the block is short)
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    payload = data[start + 4:start + 2 + length]
    assert payload.startswith(b"Exif\x00\x00")
    cut = payload[:6 + keep]
    return data[:start] + chunk + struct.pack(">H", len(cut) + 2) + cut + data[start + 2 + length:]


def _phone_photo(turn: int, suffix: str = ".jpg", orientation_first: bool = False) -> bytes:
    """A photo stored 60 wide and 40 high whose EXIF turns it by ``turn``; the orientation after the camera's
    make and model, as Pillow writes tags in order, or ``orientation_first``, before a make stored past the
    directory."""
    exif = Image.Exif()
    if not orientation_first:
        exif[0x010F], exif[0x0110] = "PhoneMaker", "Model X"
    exif[0x0112] = turn
    exif[0x0131] = "a camera app of some length"
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buffer, "PNG" if suffix == ".png" else "JPEG", exif=exif)
    return buffer.getvalue()


_PILLOW_EXIF_WORDS = re.compile(r"Corrupt EXIF|Truncated File Read|Expecting to read")
_READ_AS_STORED = r"EXIF of .*{} is damaged, so its orientation cannot be read and it is read as stored.*image editor"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("turn, keep", [(6, 14), (6, 20), (6, 30), (8, 20), (3, 30), (6, 8)])
def test_a_photo_whose_exif_is_cut_short_is_read_as_stored_and_the_user_told_once(tmp_path, suffix, turn, keep):
    """A phone photo whose EXIF block was cut short lost its orientation without a word of ours: it was read
    sideways, with only Pillow's raw "Corrupt EXIF data. Expecting to read 12 bytes but only got 6" to show for
    it (twice, where the block was read again to carry it)."""
    path = tmp_path / f"phone{suffix}"
    path.write_bytes(_exif_cut_short(_phone_photo(turn, suffix), keep, b"eXIf" if suffix == ".png" else b"\xff\xe1"))
    told = _READ_AS_STORED.format(re.escape(path.name))
    sizes = {  # each reading's height and width
        "read_image": lambda: io_.read_image(path).shape[:2],
        "read_picture": lambda: io_.read_picture(path)[0].shape[:2],
        "read_mask": lambda: io_.read_mask(path).shape,
        "image_to_array": lambda: io_.image_to_array(opened())[0].shape[:2],
        "image_to_tensor": lambda: io_.image_to_tensor(opened())[0].shape[-2:],
    }

    def opened():  # a caller's own PIL image: Pillow warns the caller as it opens it
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Corrupt EXIF|Truncated File Read", UserWarning)
            return Image.open(path)

    for name, size in sizes.items():
        with pytest.warns(UserWarning, match={"read_mask": "EXIF of mask .*phone.* is damaged", "image_to_array":
                                              "EXIF of image is damaged", "image_to_tensor": "EXIF of image is damaged"
                                              }.get(name, told)) as seen:
            assert tuple(size()) == (40, 60), name  # as stored
        assert len(seen) == 1, [str(w.message) for w in seen]  # once, and not Pillow's words as well
        assert not _PILLOW_EXIF_WORDS.search(str(seen[0].message))
    with pytest.warns(UserWarning, match=told):
        _, kept = io_.read_picture(path)
    assert "orientation" not in kept
    if "exif" in kept:  # what could be read of the block, carried in a sound one
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            carried = Image.Exif()
            carried.load(kept["exif"])
            assert carried.get(0x0112, 1) == 1 and carried.tobytes()


def test_a_photo_whose_orientation_survives_damage_to_its_exif_is_turned_without_a_word(tmp_path):
    """The block cut past its orientation (in the camera app's name), or its directory's count of tags wrong:
    turned upright, and Pillow's warnings about the rest, twice a read, kept back."""
    import struct

    data = _phone_photo(6, orientation_first=True)
    directory = data.index(b"Exif\x00\x00") + 6
    cut = _exif_cut_short(data, 8 + 2 + 2 * 12 + 6)  # the header, the count, orientation and app name's entries
    wrong_count = bytearray(data)
    order = "<" if data[directory:directory + 2] == b"II" else ">"
    first = directory + struct.unpack(order + "I", data[directory + 4:directory + 8])[0]
    wrong_count[first:first + 2] = struct.pack(order + "H", 0xFFFF)
    for name, damaged in (("cut.jpg", cut), ("count.jpg", bytes(wrong_count))):
        (tmp_path / name).write_bytes(damaged)
        with warnings.catch_warnings():  # a caller's own PIL image: Pillow warns the caller as it opens it
            warnings.filterwarnings("ignore", "Corrupt EXIF|Truncated File Read", UserWarning)
            opened = Image.open(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert io_.read_image(tmp_path / name).shape == (60, 40, 3), name
            pixels, kept = io_.read_picture(tmp_path / name)
            assert pixels.shape == (60, 40, 3) and kept["orientation"] == (6, "EXIF"), name
            assert io_.image_to_array(opened)[0].shape == (60, 40, 3), name


def test_a_photo_whose_exif_header_is_no_tiff_one_is_read_as_stored_with_a_word(tmp_path):
    """Pillow could not read the block at all and said nothing: the photo was read sideways in silence."""
    data = bytearray(_phone_photo(6))
    directory = data.index(b"Exif\x00\x00") + 6
    data[directory:directory + 2] = b"XX"
    (tmp_path / "phone.jpg").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format("phone.jpg")):
        assert io_.read_image(tmp_path / "phone.jpg").shape == (40, 60, 3)


def test_a_picture_without_exif_or_with_sound_exif_reads_without_a_word(tmp_path):
    for name, data in (("plain.jpg", None), ("sound.jpg", _phone_photo(6)), ("sound.png", _phone_photo(8, ".png"))):
        if data is None:
            Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            shape = io_.read_image(tmp_path / name).shape
        assert shape == ((40, 60, 3) if data is None else (60, 40, 3)), name


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        io_.read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        io_.read_mask(tmp_path / "missing.png")


def test_tensors_handed_to_the_library_directly_meet_the_same_range_check(tiny_model):
    """A host that converts its own tensors (a 0..255 IMAGE from some node) still gets the boundary's check,
    not a white background."""
    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    masks = torch.zeros(1, 1, 16, 16)
    masks[..., 4:8, 4:8] = 1
    with pytest.raises(ValueError, match="divide 0..255 images by 255"):
        h.harmonize_tensor(torch.rand(1, 3, 16, 16) * 255, masks)
    with pytest.raises(ValueError, match="0..1"):
        h.harmonize_tensor(torch.rand(1, 3, 16, 16), masks * 2)
    with pytest.raises(ValueError, match="NaN"):
        h.harmonize_tensor(torch.full((1, 3, 16, 16), float("nan")), masks)


def test_uint8_for_sam_is_exact():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(io_.image_to_uint8(rgb), rgb)
    assert np.array_equal(io_.image_to_uint8(Image.fromarray(rgb)), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], -1)
    assert np.array_equal(io_.image_to_uint8(Image.fromarray(rgba)), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(io_.image_to_uint8(grey), np.repeat(grey[..., None], 3, -1))
    assert np.array_equal(io_.image_to_uint8(rgb.astype(np.float32) / 255), rgb)
    with pytest.raises(ValueError, match="one image"):
        io_.image_to_uint8(np.zeros((5, 7, 5), np.uint8))


def test_sam_mask_helpers_follow_the_same_rules():
    """SAM's mask helpers used to read a 0/1 uint8 mask as 1/255 (no box) and clip floats outside 0..1."""
    from phnet.mask_tools import mask_bbox, refine_mask

    m = np.zeros((8, 8), np.uint8)
    m[2:5, 3:6] = 1
    assert mask_bbox(m) == (3, 2, 6, 5)
    with pytest.raises(ValueError, match="0..1"):
        refine_mask(np.full((8, 8), 1.5, np.float32))
    grey16 = Image.fromarray(np.full((8, 8), 16384, np.uint16))  # a quarter: not white, not a mask
    assert mask_bbox(grey16) is None and mask_bbox(grey16, threshold=0.2) == (0, 0, 8, 8)


@pytest.mark.parametrize("scale, words", [(255.0, "looks like a 0..255 image"), (1.05, "clamp the image to 0..1"),
                                          (40.0, "looks like a 0..255 image"), (1000.0, "give images in 0..1")])
def test_an_out_of_range_float_image_is_told_the_fix_that_fits_it(tiny_model, scale, words):
    """1.05 is an unclamped 0..1 image, not a 0..255 one: dividing it by 255 would be the wrong fix."""
    from phnet import Harmonizer

    masks = torch.zeros(1, 1, 16, 16)
    masks[..., 4:8, 4:8] = 1
    image = torch.linspace(0, 1, 16 * 16 * 3).reshape(1, 3, 16, 16) * scale
    with pytest.raises(ValueError, match=words):
        Harmonizer(tiny_model, device="cpu").harmonize_tensor(image, masks)


# ----------------------------------------------------------------------------------------------------
# files: camera JPEGs, multi-page TIFFs, what a result carries, mask files


def test_camera_jpeg_with_a_preview_is_its_main_picture_and_a_multipage_tiff_is_named(tmp_path):
    import warnings

    main = np.full((16, 24, 3), (200, 60, 30), np.uint8)
    Image.fromarray(main).save(tmp_path / "phone.jpg", format="MPO", save_all=True, quality=95,
                               append_images=[Image.new("RGB", (6, 4), "white")])  # a preview after the picture
    with Image.open(tmp_path / "phone.jpg") as phone:
        assert phone.format == "MPO"
    decoded = io_.read_image(tmp_path / "phone.jpg")
    assert decoded.shape == (16, 24, 3) and np.abs(decoded.astype(int) - main).max() <= 4
    Image.fromarray(main).save(tmp_path / "pages.tif", save_all=True, append_images=[Image.new("RGB", (6, 4))])
    with pytest.raises(ValueError, match="multi-page TIFF.*save the page you want as its own file") as e:
        io_.read_image(tmp_path / "pages.tif")
    assert "animated" not in str(e.value)
    # a TIFF cut short in its second page: counting the pages raised a SyntaxError that stopped a folder run
    page = Image.fromarray(np.tile(main, (3, 3, 1)))
    page.save(tmp_path / "pages.tif", save_all=True, append_images=[page])
    data = (tmp_path / "pages.tif").read_bytes()
    for cut in (len(data) // 2, len(data) // 2 + 40):  # a TypeError, a SyntaxError
        (tmp_path / "cut.tif").write_bytes(data[:cut])
        # the refusal alone: Pillow's warning about the cut page called its tags "Corrupt EXIF data"
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            with pytest.raises(ValueError, match=r"cannot read .*cut.tif as an image"):
                io_.read_image(tmp_path / "cut.tif")


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


def test_read_picture_gives_the_profile_and_exif_upright(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = _exif_rotated(np.zeros((4, 6, 3), np.uint8), 6)
    exif = img.getexif()
    exif[0x010F] = "Maker"
    img.save(tmp_path / "rot.png", exif=exif, icc_profile=srgb)
    pixels, keep = io_.read_picture(tmp_path / "rot.png")
    assert pixels.shape == (6, 4, 3) and keep["icc_profile"] == srgb
    carried = Image.Exif()
    carried.load(keep["exif"])
    assert carried[0x0112] == 1 and carried[0x010F] == "Maker"
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert io_.read_picture(tmp_path / "plain.png")[1] == {}


def test_read_picture_finds_a_jpeg_s_and_a_tiff_s_xmp_on_every_pillow(tmp_path):
    """Pillow 9 puts neither in ``info``: the XMP of a JPEG or TIFF composite was dropped without a note."""
    xmp = b"<x:xmpmeta><rdf:Description><dc:rights>Jane</dc:rights></rdf:Description></x:xmpmeta>"
    segment = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg", extra=app1)
    Image.new("RGB", (4, 4)).save(tmp_path / "x.tif", tiffinfo={700: xmp})
    for name in ("x.jpg", "x.tif"):
        assert io_.read_picture(tmp_path / name)[1]["xmp"] == xmp, name


def test_a_decompression_bomb_names_its_size_and_the_fix(tmp_path, monkeypatch):
    Image.new("L", (1000, 1000)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)
    with pytest.raises(ValueError, match=r"big.png holds 1 megapixels, more than the 0.4 megapixels.*resize it"):
        io_.read_image(tmp_path / "big.png")


def _subject(size: int = 100) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[30:70, 35:65] = 255
    return m


def test_a_colour_mask_file_is_refused_but_a_grey_jpeg_one_is_read(tmp_path):
    m = _subject()
    red = np.zeros((100, 100, 3), np.uint8)
    red[m > 0] = (255, 0, 0)
    Image.fromarray(red).save(tmp_path / "red.png")
    with pytest.raises(ValueError, match=r"red.png is a colour picture; save it as black and white \(white = subj"):
        io_.read_mask(tmp_path / "red.png")
    Image.fromarray(np.dstack([m] * 3)).save(tmp_path / "grey.jpg", quality=90)  # RGB JPEG: noise between channels
    assert np.abs(io_.read_mask(tmp_path / "grey.jpg") - m / 255).max() < 0.1
    # the library's in-memory masks keep their rules: a colour PIL mask is read as luminance
    assert io_.mask_to_array(Image.fromarray(red)).max() == pytest.approx(76 / 255)


def test_mask_files_with_transparent_pixels(tmp_path):
    """A cut-out's alpha is its mask; a black-and-white mask with a transparent border is its painted grey;
    a black-and-white painting on a large transparent area could be either, and is refused."""
    m = _subject()
    cutout = np.dstack([np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8), m])
    border = np.dstack([m, m, m, np.full_like(m, 255)])
    border[:2, :, 3] = border[-2:, :, 3] = border[:, :2, 3] = border[:, -2:, 3] = 0
    silhouette = np.dstack([np.zeros((100, 100, 3), np.uint8), m])  # black, the alpha drawn
    ambiguous = border.copy()
    ambiguous[:, :50, 3] = 0
    for name, rgba in (("cutout", cutout), ("border", border), ("silhouette", silhouette), ("ambiguous", ambiguous)):
        Image.fromarray(rgba).save(tmp_path / f"{name}.png")
    for name in ("cutout", "border", "silhouette"):
        assert np.array_equal(io_.read_mask(tmp_path / f"{name}.png"), m / 255), name
    with pytest.raises(ValueError, match="save it without alpha.*or as a cut-out"):
        io_.read_mask(tmp_path / "ambiguous.png")
    # in memory, the library reads a real alpha as the mask, as before
    assert io_.mask_to_array(Image.fromarray(border)).mean() > 0.9


def test_a_pil_i_picture_of_8bit_values_is_refused_naming_convert_l():
    """ImageMath returns mode 'I': read as 16 bits, a 0/255 mask was 0.4 % subject, and nothing changed."""
    from PIL import Image

    from phnet.imageio import mask_to_array

    values = np.zeros((8, 8), np.int32)
    values[2:6, 2:6] = 255
    with pytest.raises(ValueError, match=r"\.convert\('L'\)"):
        mask_to_array(Image.fromarray(values, "I"))
    sixteen = Image.fromarray(values * 257, "I")  # a real 16-bit mask in the 32-bit mode
    assert mask_to_array(sixteen).max() == pytest.approx(1.0)


def test_a_channels_first_array_read_as_channels_last_is_told_its_layout():
    with pytest.raises(ValueError, match=r"looks channels-first: pass layout='CHW'"):
        io_.image_to_tensor(np.zeros((3, 40, 56), np.uint8))
    with pytest.raises(ValueError, match=r"looks channels-first: pass layout='BCHW'"):
        io_.image_to_tensor(np.zeros((2, 3, 40, 56), np.uint8))


def test_a_grey_batch_array_read_as_one_picture_is_told_layout_bhw():
    """A numpy B×H×W is read as H×W×C: its width was called its channels with no hint, which a tensor gets."""
    with pytest.raises(ValueError, match=r"got 50 \(layout HWC, shape \(2, 40, 50\)\); pass layout='BHW' if it is a "
                                         r"grey batch of 2$"):
        io_.image_to_tensor(np.zeros((2, 40, 50), np.uint8))
    for n in (3, 4):
        with pytest.raises(ValueError, match=rf"looks channels-first: pass layout='CHW' \(one picture\), or 'BHW' if "
                                             rf"it is a grey batch of {n}$"):
            io_.image_to_tensor(np.zeros((n, 40, 50), np.uint8))
    with pytest.raises(ValueError, match=r"got 2 \(layout HWC, shape \(40, 50, 2\)\)$"):  # grey and alpha
        io_.image_to_tensor(np.zeros((40, 50, 2), np.uint8))
    assert io_.image_to_tensor(np.zeros((2, 40, 50), np.uint8), layout="BHW")[0].shape == (2, 3, 40, 50)


@pytest.mark.parametrize("image, layout, message", [
    (torch.full((4, 64, 3), 0.5), None, "pass layout='HWC' or 'CHW' \\(one picture\\), 'BHW' \\(a grey batch\\)"),
    (np.zeros((1, 2, 3, 4, 5)), None, "an image of 5 dimensions .* is no picture"),
    (torch.rand(40, 48, 3), "XYZ", "an image needs a layout of 'HWC', .* got 'XYZ'"),
])
def test_layout_messages_name_a_layout_that_fits(image, layout, message):
    """A 3-D tensor was told to pass 'BHWC' or 'BCHW', which then failed; 5-D data 'does not match layout None'."""
    from phnet.imageio import image_to_tensor

    with pytest.raises(ValueError, match=message):
        image_to_tensor(image, layout=layout)


def test_a_mask_turned_by_90_degrees_is_named_so():
    """A photo with an EXIF rotation is read upright; its mask, drawn on the stored pixels, was told to be
    resized."""
    from phnet.imageio import mask_to_tensor

    with pytest.raises(ValueError, match="turned by 90°. A photo whose EXIF or XMP orientation .*exif_transpose"):
        mask_to_tensor(np.zeros((40, 30), np.uint8), 1, 30, 40)
    with pytest.raises(ValueError, match="resize the mask"):
        mask_to_tensor(np.zeros((20, 30), np.uint8), 1, 30, 40)


def test_big_endian_16_bit_masks_and_images_read_as_little_endian_ones():
    """numpy's array of a PIL I;16B picture is >u2: refused as 'use uint16 0..65535', which it is."""
    from phnet.imageio import image_to_array, mask_to_array

    mask = np.zeros((8, 8), "<u2")
    mask[2:6, 2:6] = 65535
    picture = np.random.default_rng(0).integers(0, 65536, (8, 8, 3)).astype("<u2")
    assert np.array_equal(mask_to_array(mask.astype(">u2")), mask_to_array(mask))
    assert np.array_equal(image_to_array(picture.astype(">u2"))[0], image_to_array(picture)[0])
    # and come back from the tensors as the native arrays of the same values
    from phnet.imageio.images import image_to_tensor, tensor_to_image

    for big in (picture.astype(">u2"), (picture / 65535).astype(">f4")):
        rgb, alpha, form = image_to_tensor(big)
        back = tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 8, 8, dtype=torch.bool))
        assert back.dtype == big.dtype.newbyteorder("=") and np.array_equal(back, big)


def test_8_and_16_bit_results_round_to_the_same_levels_as_one_float64_product_did(monkeypatch):
    """tensor_to_image rounds an integer result in bands of rows, not through whole-picture float64 copies: the
    levels are those of the whole picture's float64 product, at halves too (float32 products round some of them
    otherwise) and past 0..1 (clamped)."""
    from phnet import tiling
    from phnet.imageio.images import ImageForm, _from_unit, tensor_to_image

    monkeypatch.setattr(tiling, "TILE_PIXELS", 100)  # bands of 3 rows over 37: the last one short
    rng = np.random.default_rng(0)
    for peak, dtype in ((255.0, np.uint8), (65535.0, np.uint16)):
        halves = ((np.arange(int(peak)) + 0.5) / peak).astype(np.float32)
        ties = np.concatenate([np.nextafter(halves, -1), halves, np.nextafter(halves, 2)])
        values = np.concatenate([rng.random(2 * 3 * 37 * 33 * 40, np.float32), ties, np.float32([0, 1])])
        t = torch.from_numpy(np.resize(values, (len(values) // (37 * 33) + 1) * 37 * 33).reshape(-1, 1, 37, 33))
        expected = torch.round(t.double() * peak).numpy().astype(dtype)  # the old formula, on the whole picture
        assert np.array_equal(_from_unit(t, peak, np.dtype(dtype)).numpy(), expected), dtype
        rgb = torch.from_numpy(rng.uniform(-0.3, 1.3, (2, 3, 37, 33)).astype(np.float32))
        rgb[0, 0, 0, :4] = torch.tensor([-0.0, 1.0, 0.5 / peak, 1 + 1e-7])
        form = ImageForm("numpy", "BHWC", np.dtype(dtype), 3, np.zeros((2, 37, 33, 3), dtype))
        out = tensor_to_image(rgb, None, form, torch.zeros(2, 1, 37, 33, dtype=torch.bool))
        expected = torch.round(rgb.clamp(0, 1).double() * peak).numpy().astype(dtype).transpose(0, 2, 3, 1)
        assert out.dtype == dtype and np.array_equal(out, expected), dtype


def test_an_integer_result_is_rounded_without_a_whole_picture_float64_copy():
    """Two float64 copies of the whole picture (8K: 1.6 GB), for 8-bit pixels; the largest float64 tensor made now
    is one band of rows."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from phnet.imageio.images import image_to_tensor, tensor_to_image
    from phnet.tiling import TILE_PIXELS

    class Largest(TorchDispatchMode):
        doubles = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                    Largest.doubles = max(Largest.doubles, t.numel())
            return out

    picture = np.random.default_rng(0).integers(0, 256, (600, 500, 3), dtype=np.uint8)
    rgb, alpha, form = image_to_tensor(picture)
    with Largest():
        out = tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 600, 500, dtype=torch.bool))
    assert np.array_equal(out, picture)
    assert Largest.doubles <= 3 * TILE_PIXELS


def test_pictures_read_with_the_plain_tuple_tiles_of_pillow_before_11():
    """Pillow made tiles named tuples in 11.0: before it, reading any file failed on tile.args (9.5 is the floor)."""
    from phnet.imageio.decode import _low_byte_tile, _rawmode

    named = ("raw", (0, 0, 4, 4), 0, ("RGB;16B", 0, 1))
    assert _rawmode(named) == "RGB;16B" and _low_byte_tile(named) == ("raw", (0, 0, 4, 4), 0, ("RGB;16L", 0, 1))
    assert _rawmode(("raw", (0, 0, 4, 4), 0, "RGB;16B")) == "RGB;16B"


def test_a_refused_or_read_picture_file_is_closed_and_a_large_one_is_no_bomb_warning(tmp_path, monkeypatch):
    """A refused file stayed open while its error was kept (a notebook keeps the last one; Windows then cannot
    replace the file), an MPO was never closed, and PIL's 'decompression bomb DOS attack' note met every photo
    over 89 megapixels."""
    import gc
    import os
    import warnings

    from PIL import Image as PILImage

    from phnet.imageio import read_image

    frames = [PILImage.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    PILImage.new("RGB", (40, 30), "grey").save(tmp_path / "plain.png")
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    kept = []
    for _ in range(10):
        with pytest.raises(ValueError, match=r"anim\.gif is animated \(2 frames\)") as caught:
            read_image(tmp_path / "anim.gif")
        kept.append(caught.value)
    gc.collect()
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds
    from tests.helpers.tiff16 import write_tiff16

    write_tiff16(tmp_path / "deep.tif", np.full((30, 40, 3), 40000, np.uint16))  # its low bytes read again
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # the picture is "large" now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "plain.png").shape == (30, 40, 3)
        assert read_image(tmp_path / "deep.tif").dtype == np.uint16


def test_a_mask_with_a_white_key_colour_is_read_by_its_grey_not_its_key(tmp_path):
    """Reading the key colour as transparency turned a white-on-black mask inside out."""
    from phnet.imageio import read_mask

    mask = np.zeros((20, 20, 3), np.uint8)
    mask[5:15, 5:15] = 255
    Image.fromarray(mask).save(tmp_path / "m.png", transparency=(255, 255, 255))
    read = read_mask(tmp_path / "m.png")
    assert read[10, 10] == 1.0 and read[0, 0] == 0.0


def test_quiet_opens_from_many_threads_leave_the_warning_filters_as_they_were(tmp_path):
    """catch_warnings from several threads at once left an 'ignore' filter installed for the whole process."""
    import threading
    import warnings

    from phnet.imageio.decode import quiet_open

    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    before = list(warnings.filters)

    def read():
        for _ in range(30):
            quiet_open(tmp_path / "p.png").close()

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before


def test_a_picture_read_while_another_thread_converts_an_array_leaves_the_warning_filters_as_they_were(monkeypatch):
    """Opening a picture and turning a read-only array into a tensor each swapped the process's warning filters
    unguarded: interleaved in two threads (a host's server threads), the ignore filters stayed for good."""
    import warnings

    from tests.helpers.overlap import ReadOverlap
    from phnet.imageio import image_to_tensor, images

    overlap = ReadOverlap()
    native = images.native

    def slow_native(array):  # the conversion, held inside its block until the reader has left its own
        overlap.hold()
        return native(array)

    monkeypatch.setattr(images, "native", slow_native)
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels.flags.writeable = False
    before = list(warnings.filters)
    overlap.run(lambda: image_to_tensor(pixels))
    assert warnings.filters == before


def test_a_read_only_array_after_a_read_only_slice_raises_no_warning():
    """A read-only slice is copied before torch sees it, so torch had not warned yet; the next read-only array was
    taken as if it had, and torch's warning showed (in a fresh process: torch warns once per process)."""
    import subprocess
    import sys

    code = ("import warnings, numpy as np\n"
            "from phnet.imageio import image_to_tensor\n"
            "warnings.simplefilter('error')\n"
            "pixels = np.zeros((4, 6, 3), np.uint8)\n"
            "pixels.flags.writeable = False\n"
            "image_to_tensor(pixels[:, :3])\n"
            "image_to_tensor(pixels)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_pillow_heif_is_registered_where_it_is_installed(monkeypatch):
    """The CLI advised `pip install pillow-heif`, which changed nothing: no one registered its opener."""
    import sys
    import types

    from phnet.imageio import decode

    calls = []
    fake = types.ModuleType("pillow_heif")
    fake.register_heif_opener = lambda: calls.append(1)
    monkeypatch.setitem(sys.modules, "pillow_heif", fake)
    decode.register_plugins.cache_clear()
    try:
        decode.readable_suffixes()
        decode.readable_suffixes()
        assert calls == [1]
    finally:
        decode.register_plugins.cache_clear()


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_an_uncompressed_tiff_turned_by_its_orientation_is_read_upright(tmp_path, mode):
    """Pillow 13 mapped such a file at its turned size: the rows came out scrambled (or a mask 'of another
    size' was refused)."""
    from PIL import Image

    from phnet.imageio import read_image, read_mask

    upright = np.random.default_rng(0).integers(0, 256, (37, 45, 4) if mode == "RGBA" else (37, 45), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90° clockwise to show
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)), mode).save(tmp_path / "turned.tif", exif=exif)
    if mode == "RGBA":
        assert np.array_equal(read_image(tmp_path / "turned.tif"), upright)
    else:
        assert read_mask(tmp_path / "turned.tif").shape == (37, 45)


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_an_opened_uncompressed_tiff_turned_by_its_orientation_is_read_upright(tmp_path, tiny_model, mode,
                                                                               orientation):
    """Opened from its path and handed over as a PIL picture or mask, Pillow 13 mapped such a file as stored and
    dropped its orientation: an upright mask was refused as turned by 90°, and the result came back unturned."""
    from phnet import Harmonizer
    from phnet.imageio import read_image, read_mask

    upright = np.random.default_rng(orientation).integers(0, 256, (37, 45), dtype=np.uint8)
    stored = np.ascontiguousarray(np.rot90(upright, 1 if orientation == 6 else -1))
    if mode == "I;16":
        picture = Image.fromarray(stored.astype(np.uint16) * 257)
    else:
        picture = Image.frombytes(mode, (stored.shape[1], stored.shape[0]), stored.tobytes())
    if mode == "P":
        picture.putpalette([255 - i // 3 for i in range(768)])  # greys, reversed
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.tif"
    picture.save(path, exif=exif)
    pixels = read_image(path)
    assert pixels.shape[:2] == (37, 45)
    with Image.open(path) as opened:
        assert np.array_equal(io_.image_to_array(opened)[0], io_.image_to_array(pixels)[0])
    with Image.open(path) as opened:
        assert np.array_equal(io_.mask_to_array(opened), read_mask(path))
    if mode != "I;16":  # (a PIL 16-bit grey picture has no RGB result to come back as: refused by name)
        with Image.open(path) as opened:
            assert torch.equal(io_.image_to_tensor(opened)[0], io_.image_to_tensor(pixels)[0])
        mask = np.zeros((37, 45), np.uint8)
        mask[10:30, 5:25] = 255
        harmonizer = Harmonizer(tiny_model, device="cpu")
        with Image.open(path) as opened:
            assert np.array_equal(np.asarray(harmonizer(opened, mask)), harmonizer(pixels, mask))


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_tiff_is_turned_by_each_orientation_once(tmp_path, compression):
    """Pillow 9 turns a TIFF as it loads and leaves its orientation tag: turned again, one flipped or turned
    180° came out as stored, and one turned 90° upside down."""
    from phnet.imageio import read_image

    stored = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for orientation in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(tmp_path / "t.tif", exif=exif, compression=compression)
        Image.fromarray(stored).save(tmp_path / "t.png", exif=exif)
        upright = read_image(tmp_path / "t.png")
        assert np.array_equal(read_image(tmp_path / "t.tif"), upright), orientation
        with Image.open(tmp_path / "t.tif") as opened:  # a PIL image not loaded yet
            assert np.allclose(io_.image_to_array(opened)[0], upright / 255.0, atol=1e-6), orientation


def test_a_16_bit_tiff_s_padding_is_no_alpha(tmp_path):
    """Pillow 9 opens RGB with a fourth sample of no stated meaning as RGBX: the padding became the alpha of an
    RGBA result."""
    from phnet.imageio import read_picture
    from tests.helpers.tiff16 import write_tiff16

    rgbx = np.random.default_rng(3).integers(0, 65536, (8, 8, 4), dtype=np.uint16)
    write_tiff16(tmp_path / "padded.tif", rgbx)
    pixels, kept = read_picture(tmp_path / "padded.tif")
    assert np.array_equal(pixels, rgbx[..., :3]) and "read_at_8_bits" not in kept


def test_a_tiff_of_premultiplied_grey_and_alpha_is_read_as_picture_and_as_mask(tmp_path):
    """PIL opens it as mode La, which it converts to LA only: both readers stopped with PIL's words alone."""
    from PIL import Image

    from phnet.imageio import read_image, read_mask

    grey_alpha = np.zeros((20, 24, 2), np.uint8)
    grey_alpha[..., 0], grey_alpha[5:15, 6:18, 1] = 100, 255
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.tif")
    data = bytearray((tmp_path / "la.tif").read_bytes())
    extra = data.find(b"\x52\x01\x03\x00\x01\x00\x00\x00")  # ExtraSamples, one SHORT: 2 (unassociated alpha)
    data[extra + 8 : extra + 10] = b"\x01\x00"  # 1: associated (premultiplied)
    (tmp_path / "la.tif").write_bytes(bytes(data))
    try:
        with Image.open(tmp_path / "la.tif") as la:
            assert la.mode == "La"
    except Image.UnidentifiedImageError:  # Pillow before 13 opens no such TIFF: read_image names the file
        with pytest.raises(ValueError, match="cannot read .*la.tif as an image"):
            read_image(tmp_path / "la.tif")
        return
    assert read_image(tmp_path / "la.tif").shape == (20, 24, 4)
    mask = read_mask(tmp_path / "la.tif")
    assert mask[10, 10] == 1 and mask[0, 0] == 0


def test_a_32bit_grey_mask_of_8bit_values_is_named_with_a_fix_for_its_kind(tmp_path):
    """A mask file was called 'mask' and told to call .convert('L'), which a command-line user cannot."""
    from PIL import Image

    from phnet.imageio import read_mask
    from phnet.imageio.decode import pil_mask_pixels

    values = np.zeros((20, 24), np.int32)
    values[5:15, 6:18] = 255
    Image.fromarray(values, "I").save(tmp_path / "mask32.tif")
    with pytest.raises(ValueError, match=r"mask32.tif is a 32-bit grey picture .*save it as an 8-bit grey picture"):
        read_mask(tmp_path / "mask32.tif")
    with pytest.raises(ValueError, match=r"convert it first: .convert\('L'\)"):
        pil_mask_pixels(Image.fromarray(values, "I"))


def test_a_16bit_grey_png_of_8bit_values_is_read_at_16_bits_on_every_pillow(tmp_path):
    """Pillow 9 opens a 16-bit grey PNG in its 32-bit mode I: it was named 'a 32-bit grey picture', not the
    16-bit mask on the wrong scale it is."""
    from phnet.imageio import read_image

    values = np.zeros((20, 24), np.uint16)
    values[5:15, 6:18] = 255
    Image.fromarray(values).save(tmp_path / "mask16.png")
    pixels = read_image(tmp_path / "mask16.png")
    assert pixels.dtype == np.uint16 and np.array_equal(pixels, values)


def test_a_grey_and_alpha_mask_is_named_as_such():
    """np.asarray of a PIL "LA" mask was read as H masks of W×2 pixels: 'resize the mask'."""
    with pytest.raises(ValueError, match=r"H×W×2 .*grey and alpha, but a mask has one channel"):
        io_.mask_to_tensor(np.zeros((20, 30, 2), np.uint8), 1, 20, 30)


def _layered_psd(path, flattened: np.ndarray, layers: int = 2) -> None:
    """A Photoshop file of ``layers`` full-size RGB layers (all 50 grey) with ``flattened`` (H×W×3 uint8) as its
    merged picture, raw everywhere: the shape of a composite saved from Photoshop (PIL cannot write one)."""
    import struct

    height, width = flattened.shape[:2]
    plane = np.full((height, width), 50, np.uint8).tobytes()
    records, planes = b"", b""
    for _ in range(layers):
        name = b"\x05layer\x00\x00"  # a Pascal string padded to 4 bytes
        extra = struct.pack(">II", 0, 0) + name  # no layer mask, no blending ranges
        records += struct.pack(">iiiiH", 0, 0, height, width, 3)
        records += b"".join(struct.pack(">hI", channel, 2 + len(plane)) for channel in range(3))
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        planes += (struct.pack(">H", 0) + plane) * 3  # each channel raw
    info = struct.pack(">h", layers) + records + planes
    info += b"\x00" * (len(info) % 2)
    section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    merged = b"".join(np.ascontiguousarray(flattened[..., c]).tobytes() for c in range(3))
    path.write_bytes(b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3) + struct.pack(">II", 0, 0)
                     + struct.pack(">I", len(section)) + section + struct.pack(">H", 0) + merged)


def test_a_layered_photoshop_file_is_its_flattened_picture_not_an_animation(tmp_path):
    """PIL counts a PSD's layers as frames: a composite of two layers was refused as 'animated (2 frames)'."""
    flattened = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    _layered_psd(tmp_path / "composite.psd", flattened)
    assert np.array_equal(io_.read_image(tmp_path / "composite.psd"), flattened)


def test_a_16_bit_a_pixel_bmp_is_not_said_to_hold_16_bits_a_channel(tmp_path):
    """A 5-6-5 BMP (PIL's BGR;16, 16 bits a pixel) was flagged as 16-bit samples read at 8 bits."""
    import struct

    from phnet.imageio.decode import read_picture

    width, height = 8, 4
    pixels = b"".join(struct.pack("<H", (31 << 11) | (i << 5)) for i in range(width)) * height
    # a 40-byte header with its colour masks after it (bit fields), which Pillow 9 reads too
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 3, len(pixels), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    offset = 14 + len(header) + len(masks)
    (tmp_path / "p565.bmp").write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header
                                       + masks + pixels)
    pixels, kept = read_picture(tmp_path / "p565.bmp")
    assert pixels.dtype == np.uint8 and "read_at_8_bits" not in kept


def _low_bit_grey_png(path, rows, bits, key):
    """A grey PNG of 1, 2 or 4 bits a pixel with a tRNS key, written by hand (PIL writes none such)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packed = b""
    for row in rows:
        line = "".join(format(v, f"0{bits}b") for v in row)
        line += "0" * (-len(line) % 8)
        packed += b"\0" + bytes(int(line[i : i + 8], 2) for i in range(0, len(line), 8))
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", struct.pack(">H", key))
                     + chunk(b"IDAT", zlib.compress(packed)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("bits, row, key, alpha", [(2, [0, 1, 2, 3], 3, [255, 255, 255, 0]),
                                                   (4, [0, 5, 15, 5], 5, [255, 0, 255, 0]),
                                                   (1, [0, 1, 0, 1], 0, [0, 255, 0, 255]),
                                                   (1, [0, 1, 0, 1], 1, [255, 0, 255, 0])])
def test_a_low_bit_grey_png_s_key_colour_is_its_transparency(tmp_path, bits, row, key, alpha):
    """PIL keeps a 2- or 4-bit key as stored (3) but scales the pixels (3 -> 255): all came out opaque; a 1-bit
    picture (PIL's mode '1') lost its transparency."""
    _low_bit_grey_png(tmp_path / "keyed.png", [row, row], bits, key)
    pixels = io_.read_image(tmp_path / "keyed.png")
    assert pixels.shape == (2, 4, 4) and pixels[..., 3].tolist() == [alpha, alpha]
    assert pixels[0, :, 0].tolist() == [v * 255 // (2**bits - 1) for v in row]


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_a_picture_turned_by_its_orientation_keeps_its_resolution_turned_too(tmp_path, suffix):
    """A 300x150 dpi photo turned upright (orientation 6) kept 300x150: the result was printed stretched."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A], exif[0x011B], exif[0x0128] = 6, 300.0, 150.0, 2
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / f"turned{suffix}", dpi=(300, 150), exif=exif)
    pixels, kept = io_.read_picture(tmp_path / f"turned{suffix}")
    assert pixels.shape == (60, 40, 3) and kept["dpi"] == (150, 300)
    carried = Image.Exif()
    carried.load(kept["exif"])
    assert (carried[0x011A], carried[0x011B]) == (150, 300)


def test_a_dark_16_bit_pgm_is_read_at_16_bits(tmp_path):
    """PIL opens a PGM of maxval 65535 as mode I: one holding no value over 255 (a dark frame) was refused as
    a 32-bit picture of 8-bit values."""
    grey = np.array([[0, 10, 200], [255, 3, 7]], np.uint16)
    (tmp_path / "dark.pgm").write_bytes(b"P5\n3 2\n65535\n" + grey.astype(">u2").tobytes())
    pixels = io_.read_image(tmp_path / "dark.pgm")
    assert pixels.dtype == np.uint16 and np.array_equal(pixels, grey)


def test_a_ppm_of_more_than_8_bits_a_channel_is_said_to_be_read_at_8(tmp_path):
    """PIL scales a P6 or P3 colour PPM of maxval over 255 to 8 bits: it was harmonized at 8 bits without a word."""
    rgb = np.random.default_rng(0).integers(0, 65536, (2, 3, 3), dtype=np.uint16)
    (tmp_path / "deep.ppm").write_bytes(b"P6\n3 2\n65535\n" + rgb.astype(">u2").tobytes())
    (tmp_path / "plain.ppm").write_bytes(b"P3\n3 2\n1000\n" + " ".join(map(str, rgb.ravel() % 1001)).encode())
    (tmp_path / "eight.ppm").write_bytes(b"P6\n3 2\n255\n" + (rgb >> 8).astype(np.uint8).tobytes())
    for name in ("deep.ppm", "plain.ppm"):
        pixels, kept = io_.read_picture(tmp_path / name)
        assert pixels.dtype == np.uint8 and kept.get("read_at_8_bits") is True
    assert "read_at_8_bits" not in io_.read_picture(tmp_path / "eight.ppm")[1]


def test_a_16_bit_tiff_pil_cannot_open_is_named_with_the_fix(tmp_path):
    """A grey+alpha 16-bit TIFF was 'cannot identify image file', as if it were damaged."""
    from tests.helpers.tiff16 import write_tiff16

    write_tiff16(tmp_path / "la16.tif", np.full((4, 6, 2), 40000, np.uint16), extra_sample=2)
    try:
        Image.open(tmp_path / "la16.tif").close()
    except Image.UnidentifiedImageError:
        with pytest.raises(ValueError, match=r"la16.tif as an image .*16-bit TIFF layout .*save it as a 16-bit PNG"):
            io_.read_image(tmp_path / "la16.tif")
    else:  # a Pillow that opens it reads it
        assert io_.read_image(tmp_path / "la16.tif").shape == (4, 6, 4)
    (tmp_path / "damaged.tif").write_bytes(b"II*\0" + bytes(40))
    with pytest.raises(ValueError, match="cannot read .*damaged.tif as an image") as refused:
        io_.read_image(tmp_path / "damaged.tif")
    assert "16-bit" not in str(refused.value)


def test_an_empty_file_is_named_as_one(tmp_path):
    """A 0-byte file (an interrupted download) was 'cannot identify image file', as if it were damaged."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for read in (io_.read_image, io_.read_picture, io_.read_mask):
        with pytest.raises(ValueError, match=r"empty.png is empty \(0 bytes\): an interrupted download or copy\? "
                                             "save it again"):
            read(empty)


def test_a_jpeg_s_exif_resolution_is_read_across_and_down(tmp_path):
    """A camera JPEG (no JFIF unit) whose EXIF states 300 across and 150 down was read as 300x300 (PIL reads
    XResolution alone), in inches and in centimetres."""
    for unit, expected in ((2, (300.0, 150.0)), (3, (762.0, 381.0)), (1, None)):
        exif = Image.Exif()
        exif[0x011A], exif[0x011B], exif[0x0128] = 300.0, 150.0, unit
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "camera.jpg", exif=exif)
        with Image.open(tmp_path / "camera.jpg") as camera:
            assert camera.info.get("jfif_unit") == 0
        assert io_.read_picture(tmp_path / "camera.jpg")[1].get("dpi") == (
            pytest.approx(expected) if expected else None), unit


def test_a_turned_picture_s_xmp_resolution_is_turned_with_its_exif(tmp_path):
    """Its XMP kept 300 across and 150 down beside an EXIF and a dpi of 150x300, and an orientation reset to 1."""
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6" tiff:XResolution="300/1"'
           b' tiff:YResolution="150/1"><tiff:ResolutionUnit>2</tiff:ResolutionUnit></rdf:Description></rdf:RDF>'
           b'</x:xmpmeta>')
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(
        tmp_path / "turned.tif", tiffinfo={274: 6, 282: 300.0, 283: 150.0, 296: 2, 700: xmp})
    pixels, kept = io_.read_picture(tmp_path / "turned.tif")
    assert pixels.shape == (60, 40, 3) and kept["dpi"] == (150, 300)
    assert b'tiff:XResolution="150/1" tiff:YResolution="300/1"' in kept["xmp"]
    assert b'tiff:Orientation="6"' not in kept["xmp"]  # (reset to 1, or left out as newer Pillows do)
    assert io_.metadata._xmp_resolution_swapped(b"<tiff:XResolution>7/1</tiff:XResolution>") == (
        b"<tiff:XResolution>7/1</tiff:XResolution>")  # one of them alone is left as it was


def test_a_jpeg_s_resolution_per_centimetre_is_read_on_every_pillow(tmp_path):
    """Pillow 9 gives no dpi for a JFIF unit of dots per cm: the result lost its resolution, or got 72 dpi."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buffer, "JPEG", dpi=(118, 59))
    data = bytearray(buffer.getvalue())
    assert data[6:11] == b"JFIF\0"
    data[13] = 2  # the JFIF unit: dots per cm
    (tmp_path / "cm.jpg").write_bytes(bytes(data))
    assert io_.read_picture(tmp_path / "cm.jpg")[1]["dpi"] == pytest.approx((299.72, 149.86))


def test_a_lone_exif_xresolution_stays_when_the_picture_is_turned(tmp_path):
    """A lone XResolution (square pixels) became a lone YResolution: readers then found no resolution."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A], exif[0x0128] = 6, 300.0, 2
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "turned.jpg", exif=exif)
    pixels, kept = io_.read_picture(tmp_path / "turned.jpg")
    carried = Image.Exif()
    carried.load(kept["exif"])
    assert pixels.shape == (60, 40, 3) and carried.get(0x011A) == 300 and 0x011B not in carried


def test_a_tiff_s_lone_xresolution_is_square(tmp_path):
    """PIL gives a missing YResolution as 1: a TIFF stating 300 across alone came out at 300x1 dpi."""
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "x.tif", tiffinfo={282: 300.0, 296: 2})
    assert io_.read_picture(tmp_path / "x.tif")[1]["dpi"] == (300, 300)


def test_an_orientation_given_in_xmp_alone_is_applied_on_every_pillow(tmp_path):
    """Pillow 13 turns a picture by its XMP's tiff:Orientation where its EXIF has none; Pillow 9 did so for a PNG
    only: a JPEG, WebP or TIFF was read as stored there, 60×40 instead of 40×60, its XMP saying "upright"."""
    from PIL import PngImagePlugin

    from phnet.imageio.fast import image_pixels

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)  # a red corner, top left as stored: top right once turned
    picture = Image.fromarray(stored)
    segment = io_.metadata.JPEG_XMP + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment  # (Pillow 9 writes no xmp= for a JPEG)
    picture.save(tmp_path / "x.jpg", quality=95, dpi=(300, 150), extra=app1)
    picture.save(tmp_path / "x.webp", lossless=True, xmp=xmp)
    picture.save(tmp_path / "x.tif", tiffinfo={700: xmp, 282: 300.0, 283: 150.0, 296: 2})
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "x.png", pnginfo=text)  # (Pillow 9 turned this one: not twice now)
    upright = np.rot90(stored, -1)
    for name in ("x.jpg", "x.webp", "x.tif", "x.png"):
        pixels, kept = io_.read_picture(tmp_path / name)
        assert pixels.shape == (60, 40, 3) and np.abs(pixels.astype(int) - upright).mean() < 2, name
        assert b'tiff:Orientation="6"' not in kept["xmp"], name  # (reset to 1, or left out as newer Pillows do)
        assert kept.get("dpi") in (None, (150, 300)), name  # turned with the pixels
        with Image.open(tmp_path / name) as in_memory:
            assert image_pixels(in_memory)[0].shape == (1, 60, 40, 3), name  # the fast path turns it too
            assert io_.image_to_tensor(in_memory)[0].shape == (1, 3, 60, 40), name
    assert io_.read_picture(tmp_path / "x.tif")[1]["dpi"] == (150, 300)
    exif = Image.Exif()
    exif[0x0112] = 1
    picture.save(tmp_path / "exif1.jpg", exif=exif, extra=app1)
    assert io_.read_image(tmp_path / "exif1.jpg").shape == (40, 60, 3)  # an EXIF orientation rules over the XMP's


def test_an_orientation_s_source_is_its_exif_unless_only_its_xmp_gives_one(tmp_path):
    """Pillow 13 shows an XMP's tiff:Orientation in the EXIF too: messages blamed an EXIF tag the file did not have."""
    from PIL import PngImagePlugin

    from phnet.imageio.orientation import orientation_source

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    segment = io_.metadata.JPEG_XMP + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment
    picture = Image.new("RGB", (30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(tmp_path / "xmp.jpg", extra=app1)
    picture.save(tmp_path / "xmp.webp", xmp=xmp)
    picture.save(tmp_path / "xmp.tif", tiffinfo={700: xmp})
    picture.save(tmp_path / "both.jpg", exif=exif, extra=app1)
    picture.save(tmp_path / "both.webp", exif=exif, xmp=xmp)
    picture.save(tmp_path / "both.tif", tiffinfo={700: xmp, 0x0112: 6})
    picture.save(tmp_path / "exif.png", exif=exif)
    picture.save(tmp_path / "plain.png")
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "both.png", pnginfo=text, exif=exif)
    png = (tmp_path / "both.png").read_bytes()
    start = png.index(b"eXIf") - 4
    chunk = png[start:start + 12 + int.from_bytes(png[start:start + 4], "big")]
    late = png.replace(chunk, b"")
    (tmp_path / "late.png").write_bytes(late.replace(b"\0\0\0\0IEND", chunk + b"\0\0\0\0IEND"))  # read with the pixels
    for name, source in [("xmp.jpg", "XMP"), ("xmp.webp", "XMP"), ("xmp.tif", "XMP"), ("both.jpg", "EXIF"),
                         ("both.webp", "EXIF"), ("both.tif", "EXIF"), ("exif.png", "EXIF"), ("plain.png", "EXIF"),
                         ("both.png", "EXIF"), ("late.png", "EXIF")]:
        with Image.open(tmp_path / name) as opened:
            assert orientation_source(opened) == source, name


def test_a_copy_is_turned_by_its_xmp_once(tmp_path):
    """A copy (convert, exif_transpose) has no format: Pillow 9 read a WebP's as stored, its XMP alone turning it;
    one that exif_transpose turned by its EXIF keeps the XMP's orientation on Pillow 9, and is not turned again."""
    from PIL import ImageOps, PngImagePlugin

    from phnet.imageio.fast import image_pixels

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)
    picture = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(tmp_path / "xmp.webp", lossless=True, xmp=xmp)
    picture.save(tmp_path / "both.webp", lossless=True, xmp=xmp, exif=exif)
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "xmp.png", pnginfo=text)
    upright = np.rot90(stored, -1)
    for name in ("xmp.webp", "both.webp", "xmp.png"):
        for copy in (lambda image: image.convert("RGB"), ImageOps.exif_transpose,
                     lambda image: ImageOps.exif_transpose(image).convert("RGB")):
            with Image.open(tmp_path / name) as opened:
                pixels = copy(opened)
                assert image_pixels(pixels)[0].shape == (1, 60, 40, 3), name  # the fast path turns it too
                tensor = io_.image_to_tensor(pixels)[0]
            assert tensor.shape == (1, 3, 60, 40), name
            assert np.abs(tensor[0].permute(1, 2, 0).numpy() * 255 - upright).mean() < 2, name


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


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage:UserWarning")
def test_complex_sparse_and_nested_inputs_are_refused_by_name():
    """A complex mask was read as its real part; a sparse or nested tensor ended in a raw torch error."""
    from phnet.imageio import image_to_tensor, mask_to_tensor

    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1
    with pytest.raises(ValueError, match="mask has dtype complex64: use 0/1"):
        mask_to_tensor(mask.numpy().astype(np.complex64) + 0.7j, 1, 8, 8)
    with pytest.raises(ValueError, match=r"mask: a sparse tensor \(torch.sparse_coo\); pass mask.to_dense\(\)"):
        mask_to_tensor(mask.to_sparse(), 1, 8, 8)
    with pytest.raises(ValueError, match=r"image: a sparse tensor .*; pass image.to_dense\(\)"):
        image_to_tensor(torch.rand(8, 8, 3).to_sparse())
    for layout in (torch.strided, torch.jagged):  # (torch warns that the strided one is a prototype)
        nested = torch.nested.nested_tensor([torch.rand(8, 8, 3), torch.rand(4, 8, 3)], layout=layout)
        with pytest.raises(ValueError, match="image: a nested tensor; pass pictures of one size as one tensor"):
            image_to_tensor(nested)


def test_a_0_d_mask_is_named_by_its_own_shape():
    """np.array(1) as a mask was refused as 'got shape (1,)'."""
    from phnet.imageio import mask_to_tensor

    with pytest.raises(ValueError, match=r"got shape \(\)$"):
        mask_to_tensor(np.array(1, np.uint8), 1, 8, 8)


def test_a_folder_that_tells_names_apart_by_case_is_told_without_writing_there(tmp_path):
    import os

    from phnet.imageio.decode import folds_names

    (tmp_path / "Masks").mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert folds_names(tmp_path / "Masks") == (tmp_path / "MASKS").exists()  # False on Linux, True on Windows/macOS
    assert folds_names(tmp_path / "Masks" / "new" / "out") == folds_names(tmp_path / "Masks")  # one -o will make
    (tmp_path / "masks").mkdir(exist_ok=True)  # another folder where case tells names apart: still False
    assert folds_names(tmp_path / "Masks") == os.path.samefile(tmp_path / "Masks", tmp_path / "masks")
    assert sorted(tmp_path.rglob("*")) == sorted({*before, tmp_path / "masks"})


@pytest.mark.parametrize("turn", range(2, 9))
def test_a_picture_is_turned_by_each_orientation_where_pillow_cannot_rewrite_its_exif(monkeypatch, turn):
    """Where ImageOps.exif_transpose stops at a wrongly typed tag, the pixels alone are turned, each orientation as
    exif_transpose turns it."""
    from PIL import ImageOps

    from phnet.imageio import decode

    raw = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    expected = np.asarray(ImageOps.exif_transpose(_exif_rotated(raw, turn)))

    def refuses(image, *args, **kwargs):
        raise TypeError("a wrongly typed tag")

    monkeypatch.setattr(ImageOps, "exif_transpose", refuses)
    np.testing.assert_array_equal(np.asarray(decode._upright(_exif_rotated(raw, turn))), expected)


def test_a_two_level_picture_is_a_mask_whatever_its_levels():
    """0/1 (a binary mask saved as it is), 0/255 and 16-bit 0/65535 pictures are masks; a flat-coloured photo of
    two greys that are neither black nor white is read by its levels too."""
    from phnet.imageio.masks import looks_like_a_mask

    binary = np.zeros((8, 8), np.uint8)
    binary[2:6, 2:6] = 1
    assert looks_like_a_mask(binary)
    assert looks_like_a_mask(np.repeat(binary[..., None], 3, -1))
    assert looks_like_a_mask(binary * 255) and looks_like_a_mask(binary.astype(np.uint16) * 65535)
    assert looks_like_a_mask(binary * 100 + 50)  # two flat greys: two levels
    assert not looks_like_a_mask(binary * 100 + np.arange(8, dtype=np.uint8)[None])  # many levels, all grey


@pytest.mark.parametrize("black_and_white, looks", [(0.8, True), (0.7, False)])
def test_a_painted_mask_with_soft_edges_is_a_mask_where_three_quarters_are_black_or_white(black_and_white, looks):
    from phnet.imageio.masks import looks_like_a_mask

    grey = np.full(100, 128, np.uint8)  # the soft edge
    grey[: int(100 * black_and_white) // 2] = 0
    grey[50 : 50 + int(100 * black_and_white) // 2] = 255
    assert looks_like_a_mask(grey.reshape(10, 10)) is looks


@pytest.mark.parametrize("dark, black_and_white", [(32, True), (33, False)])
def test_black_in_a_painted_mask_is_up_to_32(dark, black_and_white):
    from phnet.imageio.masks import is_black_and_white

    grey = np.array([dark] * 4 + [255] * 4, np.uint8)
    assert is_black_and_white(grey, np.zeros(8, bool)) is black_and_white


@pytest.mark.parametrize("colour", [(0, 0, 255), (0, 255, 0), (255, 0, 0)])
def test_a_mask_file_coloured_in_any_one_channel_is_refused(tmp_path, colour):
    """Each of the three channels counts in telling a colour picture from a grey mask (blue as much as red)."""
    picture = np.zeros((8, 8, 3), np.uint8)
    picture[2:6, 2:6] = colour
    Image.fromarray(picture).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match="is a colour picture; save it as black and white"):
        io_.read_mask(tmp_path / "m.png")


@pytest.mark.parametrize("turn, dpi", [(4, (300, 150)), (5, (150, 300)), (8, (150, 300))])
def test_a_picture_s_resolution_is_turned_with_it_only_by_an_orientation_of_5_to_8(tmp_path, turn, dpi):
    """Orientations 5 to 8 swap width and height, so the resolution's across and down; 2 to 4 only flip."""
    exif = Image.Exif()
    exif[0x0112] = turn
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "t.jpg", dpi=(300, 150), exif=exif)
    pixels, kept = io_.read_picture(tmp_path / "t.jpg")
    assert pixels.shape == ((40, 60, 3) if turn < 5 else (60, 40, 3)) and kept["dpi"] == dpi


def test_a_32_bit_grey_pil_mask_of_0_and_1_is_binary():
    """PIL's mode 'I' (ImageMath's result) holding 0 and 1 is a 0/1 mask as an integer array is; one holding
    8-bit values above 1 is refused by name."""
    binary = np.zeros((4, 6), np.int32)
    binary[1:3, 2:5] = 1
    np.testing.assert_array_equal(io_.mask_to_array(Image.fromarray(binary, "I")), binary.astype(np.float32))
    with pytest.raises(ValueError, match=r"PIL mode 'I'\) holding only values up to 255"):
        io_.mask_to_array(Image.fromarray(binary * 255, "I"))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_a_single_channels_first_picture_is_told_how_to_turn_it(channels):
    with pytest.raises(ValueError, match=r"looks channels-first: pass array.transpose\(1, 2, 0\)"):
        io_.image_to_array(np.zeros((channels, 8, 10), np.uint8))


def test_a_picture_wider_than_a_band_s_pixels_is_converted_a_row_at_a_time(monkeypatch):
    """The conversion back to integers runs in bands of rows holding at most tiling.TILE_PIXELS pixels; a row longer
    than that is a band of its own."""
    from phnet import tiling

    monkeypatch.setattr(tiling, "TILE_PIXELS", 4)
    pixels = np.arange(3 * 7 * 3, dtype=np.uint8).reshape(3, 7, 3)
    rgb, alpha, form = io_.image_to_tensor(pixels)
    out = io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 3, 7, dtype=torch.bool))
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 5)])
def test_a_picture_with_no_rows_or_no_columns_is_named_empty(shape):
    with pytest.raises(ValueError, match=r"image is empty \(shape"):
        io_.image_to_array(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("top, words", [(255.0, "this looks like a 0..255 image"), (256.0, "give images in 0..1")])
def test_a_float_picture_is_said_to_be_on_the_255_scale_only_up_to_255(top, words):
    with pytest.raises(ValueError, match=words):
        io_.image_to_tensor(np.linspace(0, top, 4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3))


def test_a_batch_of_rgba_masks_is_refused_as_colour_pictures():
    with pytest.raises(ValueError, match=r"B×H×W×4 \(2, 8, 8, 4\): colour pictures, but a mask has one channel"):
        io_.mask_to_tensor(np.zeros((2, 8, 8, 4), np.uint8), 2, 8, 8)


def test_two_empty_masks_of_a_batch_that_may_hold_empty_ones_are_named_as_every_one():
    from phnet.imageio import check_mask_coverage

    with pytest.raises(ValueError, match="every frame's mask is empty"):
        check_mask_coverage(torch.zeros(2, 1, 4, 4), allow_empty=True, unit="frame")
    one_empty = torch.zeros(2, 1, 4, 4)
    one_empty[1, :, :2] = 1
    check_mask_coverage(one_empty, allow_empty=True)  # the other has a subject and a background


@pytest.mark.parametrize("strongest, refused", [(1 / 64, False), (1 / 64 - 1e-4, True)])
def test_a_mask_is_on_the_wrong_scale_below_a_64th_of_full(strongest, refused):
    from phnet.imageio import check_mask_coverage

    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = strongest
    if refused:
        with pytest.raises(ValueError, match="marks no subject"):
            check_mask_coverage(mask)
    else:
        check_mask_coverage(mask)


@pytest.mark.parametrize("strongest, bar", [(1.0, 1 / 64), (48 / 255, 1.5 / 255), (255.0, 255 / 64)])
def test_a_mask_s_trace_is_a_64th_of_its_strongest_value_and_at_least_one_and_a_half_levels(strongest, bar):
    from phnet.imageio.masks import trace_bar

    peak = 255.0 if strongest > 1 else 1.0
    assert trace_bar(strongest, peak) == pytest.approx(bar)
    assert float(trace_bar(torch.tensor(strongest), peak)) == pytest.approx(bar)


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


def test_a_four_channel_result_without_its_alpha_says_to_pass_it_back():
    """An RGBA picture's result given back without the alpha image_to_tensor returned failed on None."""
    rgb, alpha, form = io_.image_to_tensor(np.zeros((4, 4, 4), np.uint8))
    assert alpha is not None
    with pytest.raises(ValueError, match="alpha"):
        io_.tensor_to_image(rgb, None, form, torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 4, 4, dtype=torch.bool)).shape == (4, 4, 4)


def test_a_four_channel_result_gets_its_own_alpha_back_as_its_last_channel():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    rgb, alpha, form = io_.image_to_tensor(pixels)
    assert np.array_equal(io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 4, 5, dtype=torch.bool)), pixels)
