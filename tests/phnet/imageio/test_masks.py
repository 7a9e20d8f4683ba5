"""phnet.imageio.masks: masks from PIL, numpy and torch in every one-channel layout, the checks on their content,
and mask files (grey, or a cut-out's alpha; a colour picture refused). Each rule of the package docstring is tested
once, through every entry point that applies it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import imageio as io_
from tests.helpers.pictures import photo, subject_mask


def _mask_entry_points():
    """Every function that turns a numpy mask into numbers, as f(mask) -> float array H×W (first of the batch)."""
    return {
        "mask_to_tensor": lambda m: io_.mask_to_tensor(m, 1, 4, 6)[0, 0].numpy(),
        "mask_to_array": lambda m: io_.mask_to_array(m),
        "mask_to_bhw": lambda m: io_.mask_to_bhw(torch.from_numpy(m))[0].numpy(),
    }


MASK_FNS = list(_mask_entry_points().items())


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


def test_a_1bit_mask_file_holds_0_and_1_not_levels_above_one(tmp_path):
    """A 1-bit file is a 0/1 mask: a clip of them beside 0/1 8-bit masks reads these as 0/1 too, not as 1/255."""
    from phnet.imageio.masks import integer_levels_above_one

    Image.fromarray(_subject() > 0).save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as saved:
        assert saved.mode == "1"
    assert not integer_levels_above_one(tmp_path / "m.png")
    assert np.array_equal(io_.read_mask(tmp_path / "m.png"), _subject() / 255)


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
    with pytest.raises(ValueError, match="save it without alpha.*or as a cut-out: the subject opaque on a transparent "
                                         "background$"):
        io_.read_mask(tmp_path / "ambiguous.png")
    # in memory, the library reads a real alpha as the mask, as before
    assert io_.mask_to_array(Image.fromarray(border)).mean() > 0.9


def test_a_mask_file_transparent_everywhere_over_a_painted_mask_is_refused_by_what_it_is(tmp_path):
    """A black-and-white mask saved with its layer's opacity at 0 was read as a cut-out whose alpha is 0: "the mask
    is empty (all zero): ... paint the subject white in the mask", which it was."""
    m = _subject()
    Image.fromarray(np.dstack([m, np.zeros_like(m)]), "LA").save(tmp_path / "hidden.png")
    with pytest.raises(ValueError) as refused:
        io_.read_mask(tmp_path / "hidden.png")
    assert str(refused.value) == (f"mask {tmp_path / 'hidden.png'} is transparent everywhere, so as a cut-out it marks "
                                  "nothing, though a grey is painted under its alpha; save it without alpha, white = "
                                  "subject on black")
    Image.fromarray(np.zeros((100, 100, 4), np.uint8)).save(tmp_path / "nothing.png")  # nothing painted: empty
    assert io_.read_mask(tmp_path / "nothing.png").max() == 0


@pytest.mark.parametrize("coloured", [1, 2])
def test_a_mask_file_may_hold_colour_on_one_pixel_in_a_hundred(tmp_path, coloured):
    picture = np.zeros((10, 10, 3), np.uint8)
    picture[3:7, 3:7] = 255
    picture[0, :coloured] = (0, 0, 255)
    Image.fromarray(picture).save(tmp_path / "m.png")
    if coloured == 1:
        assert io_.read_mask(tmp_path / "m.png")[5, 5] == 1.0
    else:
        with pytest.raises(ValueError, match="is a colour picture; save it as black and white"):
            io_.read_mask(tmp_path / "m.png")


def test_an_opaque_colour_picture_with_an_alpha_channel_is_refused_as_a_colour_picture(tmp_path):
    """Its alpha says nothing (255 everywhere): refused as any colour picture is, which the command line reads as
    a composite and its mask given the other way round, not as one whose reading cannot be told."""
    from phnet.imageio.masks import ColourMaskError

    Image.fromarray(np.dstack([photo(40, 40), np.full((40, 40), 255, np.uint8)])).save(tmp_path / "m.png")
    with pytest.raises(ColourMaskError, match="m.png is a colour picture; save it as black and white"):
        io_.read_mask(tmp_path / "m.png")


@pytest.mark.parametrize("subject", ["small", "most"])
def test_a_painted_mask_with_a_transparent_border_is_read_by_its_painted_grey(tmp_path, subject):
    """What a transparent pixel stores (any colours) is 0, and is no colour in the painting; a feathered pixel is its
    grey times its alpha to the nearest level. A subject covering most of the picture is read by its paint too,
    not by its alpha (255 wherever it is opaque, black or white)."""
    grey = np.zeros((100, 100), np.uint8)
    if subject == "small":
        grey[30:70, 35:65] = 255
    else:
        grey[:] = 255
        grey[40:60, 40:60] = 0  # 4 % of the picture, background
    grey[:, 34] = 130  # a soft edge
    alpha = np.full((100, 100), 255, np.uint8)
    alpha[:2] = alpha[-2:] = alpha[:, :2] = alpha[:, -2:] = 0
    alpha[2, 2:-2] = 200  # feathered
    rgba = np.dstack([grey, grey, grey, alpha])
    rgba[alpha == 0, :3] = np.random.default_rng(0).integers(0, 256, ((alpha == 0).sum(), 3), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "m.png")
    expected = np.where(alpha == 0, 0, grey)
    expected[2, 2:-2] = np.round(grey[2, 2:-2] * (200 / 255))
    assert expected[2, 34] == 102  # 130 × 200/255 = 101.96
    np.testing.assert_allclose(io_.read_mask(tmp_path / "m.png"), expected / 255, atol=1e-6)


@pytest.mark.parametrize("subject", ["small", "most"])
def test_a_white_mask_on_transparent_is_read_by_its_alpha(tmp_path, subject):
    """White painted on transparent reads the same either way: its alpha is the mask, however much of the picture
    its subject covers, and its subject is whole though its paint is a few levels off white."""
    alpha = _subject()
    if subject == "most":
        alpha[:] = 255
        alpha[40:60, 40:60] = 0
    Image.fromarray(np.dstack([np.full((100, 100, 3), 250, np.uint8), alpha])).save(tmp_path / "m.png")
    assert np.array_equal(io_.read_mask(tmp_path / "m.png"), alpha / 255)


@pytest.mark.parametrize("rows, read", [(10, True), (11, False)])
def test_a_painted_mask_may_be_a_tenth_transparent(tmp_path, rows, read):
    """Up to a tenth of a black-and-white painting transparent, its painted grey is the mask; more, and it could as
    well be a cut-out of a black-and-white subject: refused."""
    rgba = np.dstack([_subject()] * 3 + [np.full((100, 100), 255, np.uint8)])
    rgba[:rows, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "m.png")
    if read:
        assert np.array_equal(io_.read_mask(tmp_path / "m.png"), _subject() / 255)
    else:
        with pytest.raises(ValueError, match="cannot be told whether its alpha"):
            io_.read_mask(tmp_path / "m.png")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_palette_cut_out_is_read_by_its_alpha(tmp_path, suffix):
    """A PNG's palette with a transparent entry opens as P, a TIFF's palette with alpha as PA: both are cut-outs."""
    m = _subject(40)
    palette = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).quantize(16)
    if suffix == ".png":
        indices = np.array(palette)
        indices[m == 0] = 16  # an entry of its own, the transparent one
        keyed = Image.fromarray(indices, "P")
        keyed.putpalette(palette.getpalette()[:48] + [0, 0, 0])
        keyed.save(tmp_path / "m.png", transparency=16)
    else:
        palette.putalpha(Image.fromarray(m))
        palette.save(tmp_path / "m.tif")
    with Image.open(tmp_path / f"m{suffix}") as saved:
        assert saved.mode == {".png": "P", ".tif": "PA"}[suffix]
    assert np.array_equal(io_.read_mask(tmp_path / f"m{suffix}"), m / 255)


def test_a_cut_out_translucent_everywhere_is_read_by_its_alpha_without_a_word(tmp_path):
    """No opaque pixel to judge as a painting: the alpha is the mask, and numpy's "mean of empty slice" is not
    passed on to the user."""
    import warnings

    alpha = np.full((20, 20), 128, np.uint8)
    alpha[5:15, 5:15] = 250
    colours = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([colours, alpha])).save(tmp_path / "ghost.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(io_.read_mask(tmp_path / "ghost.png"), alpha / 255, atol=1e-6)


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


def test_a_mask_turned_by_90_degrees_is_named_so():
    """A photo with an EXIF rotation is read upright; its mask, drawn on the stored pixels, was told to be
    resized."""
    from phnet.imageio import mask_to_tensor

    with pytest.raises(ValueError, match="turned by 90°. A photo whose EXIF or XMP orientation .*exif_transpose"):
        mask_to_tensor(np.zeros((40, 30), np.uint8), 1, 30, 40)
    with pytest.raises(ValueError, match="resize the mask"):
        mask_to_tensor(np.zeros((20, 30), np.uint8), 1, 30, 40)


def test_a_mask_with_a_white_key_colour_is_read_by_its_grey_not_its_key(tmp_path):
    """Reading the key colour as transparency turned a white-on-black mask inside out."""
    from phnet.imageio import read_mask

    mask = np.zeros((20, 20, 3), np.uint8)
    mask[5:15, 5:15] = 255
    Image.fromarray(mask).save(tmp_path / "m.png", transparency=(255, 255, 255))
    read = read_mask(tmp_path / "m.png")
    assert read[10, 10] == 1.0 and read[0, 0] == 0.0


def test_a_grey_and_alpha_mask_is_named_as_such():
    """np.asarray of a PIL "LA" mask was read as H masks of W×2 pixels: 'resize the mask'."""
    with pytest.raises(ValueError, match=r"H×W×2 .*grey and alpha, but a mask has one channel"):
        io_.mask_to_tensor(np.zeros((20, 30, 2), np.uint8), 1, 20, 30)


def test_a_0_d_mask_is_named_by_its_own_shape():
    """np.array(1) as a mask was refused as 'got shape (1,)'."""
    from phnet.imageio import mask_to_tensor

    with pytest.raises(ValueError, match=r"got shape \(\)$"):
        mask_to_tensor(np.array(1, np.uint8), 1, 8, 8)


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


@pytest.mark.parametrize("level", [0, 255])
def test_a_picture_of_one_flat_level_is_no_mask(level):
    """All black or all white: no subject told from a background."""
    from phnet.imageio.masks import looks_like_a_mask

    assert not looks_like_a_mask(np.full((8, 8), level, np.uint8))


def test_a_picture_of_two_flat_colours_is_no_mask():
    """Two levels in each channel, but colours (red on blue): a picture, whatever one channel alone would show."""
    from phnet.imageio.masks import looks_like_a_mask

    picture = np.zeros((8, 8, 3), np.uint8)
    picture[..., 2] = 255
    picture[2:6, 2:6] = (255, 0, 0)
    assert not looks_like_a_mask(picture)


@pytest.mark.parametrize("black_and_white, looks", [(0.8, True), (0.7, False)])
def test_a_painted_mask_with_soft_edges_is_a_mask_where_three_quarters_are_black_or_white(black_and_white, looks):
    from phnet.imageio.masks import looks_like_a_mask

    grey = np.full(100, 128, np.uint8)  # the soft edge
    grey[: int(100 * black_and_white) // 2] = 0
    grey[50 : 50 + int(100 * black_and_white) // 2] = 255
    assert looks_like_a_mask(grey.reshape(10, 10)) is looks


def test_a_16_bit_painted_mask_is_judged_by_the_8_bit_levels_its_values_fall_in():
    """Every 16-bit value of 8-bit level 32 (32×256 to 32×256+255) is black, as 32 is in an 8-bit mask."""
    from phnet.imageio.masks import looks_like_a_mask

    grey = np.full(100, 128 * 256, np.uint16)  # the soft edge
    grey[:40] = 32 * 256 + 255
    grey[50:90] = 65535
    assert looks_like_a_mask(grey.reshape(10, 10))


@pytest.mark.parametrize("white, looks", [(222.6 / 255, True), (222.4 / 255, False)])
def test_a_float_painted_mask_is_judged_by_its_nearest_8_bit_levels(white, looks):
    from phnet.imageio.masks import looks_like_a_mask

    grey = np.full(100, 0.5, np.float32)  # the soft edge
    grey[:40] = 0
    grey[50:90] = white  # white from 8-bit level 223
    assert looks_like_a_mask(grey.reshape(10, 10)) is looks


@pytest.mark.parametrize("dark, black_and_white", [(32, True), (33, False)])
def test_black_in_a_painted_mask_is_up_to_32(dark, black_and_white):
    from phnet.imageio.masks import is_black_and_white

    grey = np.array([dark] * 4 + [255] * 4, np.uint8)
    assert is_black_and_white(grey, np.zeros(8, bool)) is black_and_white


@pytest.mark.parametrize("apart, looks", [(8, True), (9, False)])
def test_a_painted_mask_whose_channels_differ_by_a_jpegs_noise_is_a_mask(apart, looks):
    """Channels up to 8 levels apart are grey (a JPEG's noise); 9 apart, on a tenth of the pixels, a picture."""
    from phnet.imageio.masks import looks_like_a_mask

    picture = np.full((10, 10, 3), 128, np.uint8)  # the soft edge
    picture[:4], picture[5:9] = 0, 255
    picture[9, :, 2] += apart
    assert looks_like_a_mask(picture) is looks


@pytest.mark.parametrize("coloured, looks", [(1, True), (2, False)])
def test_a_painted_mask_may_hold_colour_on_one_pixel_in_a_hundred(coloured, looks):
    from phnet.imageio.masks import looks_like_a_mask

    picture = np.full((100, 3), 128, np.uint8)  # the soft edge
    picture[:40], picture[50:90] = 0, 255
    picture[90 : 90 + coloured] = (128, 0, 0)
    assert looks_like_a_mask(picture.reshape(10, 10, 3)) is looks


@pytest.mark.parametrize("soft, black_and_white", [(2, True), (3, False)])
def test_a_painted_mask_is_black_and_white_where_three_quarters_of_it_are(soft, black_and_white):
    from phnet.imageio.masks import is_black_and_white

    grey = np.array([0] * 3 + [255] * 3 + [128] * soft, np.uint8)
    assert is_black_and_white(grey, np.zeros(grey.size, bool)) is black_and_white


@pytest.mark.parametrize("colour", [(0, 0, 255), (0, 255, 0), (255, 0, 0)])
def test_a_mask_file_coloured_in_any_one_channel_is_refused(tmp_path, colour):
    """Each of the three channels counts in telling a colour picture from a grey mask (blue as much as red)."""
    picture = np.zeros((8, 8, 3), np.uint8)
    picture[2:6, 2:6] = colour
    Image.fromarray(picture).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match="is a colour picture; save it as black and white"):
        io_.read_mask(tmp_path / "m.png")


def test_a_32_bit_grey_pil_mask_of_0_and_1_is_binary():
    """PIL's mode 'I' (ImageMath's result) holding 0 and 1 is a 0/1 mask as an integer array is; one holding
    8-bit values above 1 is refused by name."""
    binary = np.zeros((4, 6), np.int32)
    binary[1:3, 2:5] = 1
    np.testing.assert_array_equal(io_.mask_to_array(Image.fromarray(binary, "I")), binary.astype(np.float32))
    with pytest.raises(ValueError, match=r"PIL mode 'I'\) holding only values up to 255"):
        io_.mask_to_array(Image.fromarray(binary * 255, "I"))


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


def test_a_mask_on_the_wrong_scale_is_refused_instead_of_changing_nothing(harmonizer):
    """A uint16 mask holding 0/255 is 0.4 % of full: the result was the composite as it was, 'changed by 0.0'."""
    mask = (subject_mask(32, 40) * 255).astype(np.uint16)
    with pytest.raises(ValueError, match=r"strongest value is 0.39% of full.*scaled to 0..65535"):
        harmonizer.harmonize(photo(32, 40), mask, threshold=0)
    with pytest.raises(ValueError, match=r"strongest value is 0.39% of full"):
        harmonizer.harmonize(photo(32, 40), subject_mask(32, 40) / 255)


def test_a_batch_of_uint8_masks_reads_each_on_its_own_scale(harmonizer):
    """A 0/1 mask beside a 0..255 one was read as 1/255: its picture was left as it was, reported changed."""
    img, m = photo(48, 64), subject_mask(48, 64)
    masks = np.stack([(m > 0).astype(np.uint8), (m * 255).astype(np.uint8)])
    out, reports = harmonizer.harmonize(np.stack([img, img]), masks, threshold=0)
    alone = harmonizer(img, (m * 255).astype(np.uint8), threshold=0)
    assert np.array_equal(out[0], alone) and np.array_equal(out[1], alone)
    assert reports[0].size == pytest.approx(reports[1].size)
