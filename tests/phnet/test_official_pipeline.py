"""Mode "official" step by step (phnet.official_pipeline): the picture as the official tester reads it."""

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer
from phnet.official_pipeline import as_official_tester_reads, dithered
from tests.helpers.pictures import photo, subject_mask


def test_a_palette_picture_is_read_as_rgb_and_with_transparency_as_rgba(harmonizer):
    """The tester's convert("RGB"): a palette picture gains an alpha channel only where it has transparency."""
    palette = Image.fromarray(photo(48, 64)).convert("P")
    assert as_official_tester_reads(palette).mode == "RGB"
    assert harmonizer(palette, subject_mask(48, 64), mode="official", threshold=0).mode == "RGB"
    palette.info["transparency"] = 0
    assert as_official_tester_reads(palette).mode == "RGBA"
    assert as_official_tester_reads(Image.new("LA", (8, 8))).mode == "RGBA"
    assert as_official_tester_reads(Image.new("CMYK", (8, 8))).mode == "RGB"


def test_a_soft_mask_is_dithered_from_its_nearest_8_bit_levels_as_the_tester_reads_it():
    """A float mask's values are rounded to 8-bit levels before PIL's Floyd-Steinberg, not cut down to them:
    a mask at 76.7/255 is read as level 77."""
    levels = np.arange(255, dtype=np.uint8).repeat(16).reshape(60, 68)
    mask = torch.from_numpy((levels.astype(np.float32) + 0.7) / 255)[None, None]
    expected = np.asarray(Image.fromarray(levels + 1).convert("1"), dtype=np.float32)
    assert np.array_equal(dithered(mask)[0, 0].numpy(), expected)


def test_official_mode_and_ours_coincide_on_a_square_at_working_size(harmonizer):
    size = harmonizer.config.image_size
    img = torch.rand(1, 3, size, size)
    m = torch.from_numpy(subject_mask(size, size))[None, None]
    ours = harmonizer.harmonize_tensor(img, m)
    official = harmonizer.harmonize_tensor(img, m, mode="official")
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)


@pytest.mark.parametrize("height, width", [(50, 90), (40, 48)])  # partly above, wholly below the working size
def test_official_mode_resamples_everything_as_the_official_pipeline(harmonizer, tiny_model, height, width):
    """PIL's antialiased bilinear down to the square; back up with the official tester's torchvision 0.15 tensor
    resize, bicubic without antialiasing (it was antialiased where the picture is smaller than the square)."""
    import torch.nn.functional as F

    img = torch.rand(1, 3, height, width)
    m = torch.from_numpy(subject_mask(height, width))[None, None]
    out = harmonizer.harmonize_tensor(img, m, mode="official")
    s = harmonizer.config.image_size
    shrink = height > s or width > s
    sq = F.interpolate(img, size=(s, s), mode="bilinear", align_corners=False, antialias=shrink)
    msq = (F.interpolate(m, size=(s, s), mode="nearest-exact") >= 0.5).float()
    with torch.no_grad():
        pred = tiny_model(sq, msq)
    back = F.interpolate(pred * msq + sq * (1 - msq), size=(height, width), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, back.clamp(0, 1), rtol=0, atol=1e-5)
    assert not torch.equal(out[m.expand_as(out) == 0], img[m.expand_as(img) == 0])  # background resampled


def authors_official(model, rgb: np.ndarray, mask: np.ndarray, size: int | None = None) -> np.ndarray:
    """The official tester's steps on an 8-bit picture: PIL's bilinear resize to the square, the mask read as
    1 bit and resized nearest, the network, the blend, torch's bicubic resize back, x255."""
    import torch.nn.functional as F

    s = size or model.config.image_size
    square = torch.from_numpy(np.array(Image.fromarray(rgb).resize((s, s), Image.BILINEAR))).permute(2, 0, 1)
    bits = Image.fromarray((mask * 255).astype(np.uint8)).convert("1").resize((s, s), Image.NEAREST)
    m = torch.from_numpy(np.asarray(bits, dtype=np.float32))[None, None]
    x = square[None].float() / 255
    with torch.no_grad():
        pred = model(x, m)
    back = F.interpolate(pred * m + x * (1 - m), size=rgb.shape[:2], mode="bicubic", align_corners=False)
    return (back[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("size", [240, 336])
def test_official_mode_samples_the_mask_as_pil_s_nearest_at_any_working_size(harmonizer, tiny_model, size):
    """torch's nearest-exact takes a source row that PIL's nearest rounds down where the position lands on a whole
    number (row 7 of 384 → 240: 12.0, PIL 11): at such a size whole rows of the subject's edge moved by one."""
    from phnet.official_pipeline import official_mask_square

    y, x = np.mgrid[:384, :384]
    mask = (((y - 200) / 150) ** 2 + ((x - 190) / 110) ** 2 <= 1).astype(np.float32)  # an edge on every row
    bits = Image.fromarray((mask * 255).astype(np.uint8)).convert("1").resize((size, size), Image.NEAREST)
    square = official_mask_square(torch.from_numpy(mask >= 0.5)[None, None].to(torch.uint8), size)
    assert torch.equal(square[0, 0], torch.from_numpy(np.asarray(bits, dtype=np.float32)))
    rgb = photo(384, 384)
    out = harmonizer(rgb, mask, mode="official", working_size=size)
    assert np.abs(out.astype(int) - authors_official(tiny_model, rgb, mask, size)).max() <= 1


@pytest.mark.parametrize("height, width", [(3 * 64, 5 * 64), (41, 300), (700, 90)])
@pytest.mark.parametrize("channels", [3, 4])
def test_official_mode_on_8bit_pictures_is_the_official_testers_steps(harmonizer, tiny_model, channels, height,
                                                                       width):
    """8-bit pictures go through the official pipeline as the official tester reads them: PIL's resize to the
    square (torch's own 8-bit kernel differs by a level in a fifth of the values, which real weights turned into
    3/255), and only the bicubic result float at full size."""
    rgb = photo(height, width)
    image = np.dstack([rgb, np.full((height, width), 77, np.uint8)]) if channels == 4 else rgb
    mask = subject_mask(height, width)
    out = harmonizer(image, mask, mode="official")
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out[..., :3].astype(int) - authors_official(tiny_model, rgb, mask)).max() <= 1
    if channels == 4:
        assert (out[..., 3] == 77).all()
    half = harmonizer(image, mask, mode="official", strength=0.5)
    midway = (image[..., :3].astype(np.float32) + out[..., :3]) / 2
    assert np.abs(half[..., :3] - midway).max() <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint16])
def test_official_mode_on_other_pictures_is_the_float_pipeline(harmonizer, dtype):
    """Pictures that are not 8-bit are resized as floats, as harmonize_tensor does: they were rounded to 8 bits
    first above four times the square's area, 2.4/255 away from it."""
    from phnet.compat import UINT16

    if dtype == np.uint16 and UINT16 is None:
        pytest.skip("16-bit pictures need torch 2.4 (refused by name before it: test_compat)")
    height, width = 3 * 64, 5 * 64
    unit = photo(height, width).astype(np.float64) / 255
    image = (unit * 65535).round().astype(np.uint16) if dtype == np.uint16 else unit.astype(dtype)
    exact = image.astype(np.float64) / (65535 if dtype == np.uint16 else 1)
    mask = subject_mask(height, width)
    out = harmonizer(image, mask, mode="official").astype(np.float64) / (65535 if dtype == np.uint16 else 1)
    as_float = torch.from_numpy(exact).permute(2, 0, 1)[None].float()
    expected = harmonizer.harmonize_tensor(as_float, torch.from_numpy(mask)[None, None], mode="official")
    assert np.abs(out - expected[0].permute(1, 2, 0).numpy()).max() * 255 <= 1


def test_official_mode_dithers_a_soft_mask_as_the_official_tester_reads_it(harmonizer):
    """The official tester opens the mask with PIL and calls convert("1"): Floyd-Steinberg dithering, not a
    threshold at 0.5 (where alpha is 0.39, 37 % of the pixels are subject there, none here before)."""
    img = torch.rand(1, 3, 48, 60)
    levels = np.zeros((48, 60), np.uint8)
    levels[8:40, 10:50] = 100
    levels[16:32, 20:40] = 200
    soft = torch.from_numpy(levels / 255.0).float()[None, None]
    dithered = torch.from_numpy(np.asarray(Image.fromarray(levels).convert("1"), dtype=np.float32))[None, None]
    assert 0 < dithered[soft == 100 / 255].mean() < 1  # really dithered, not thresholded
    out = harmonizer.harmonize_tensor(img, soft, mode="official")
    assert torch.equal(out, harmonizer.harmonize_tensor(img, dithered, mode="official"))


def test_official_mode_applies_strength(tiny_model):
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    mask = subject_mask(40, 48)
    assert np.array_equal(h(image, mask, mode="official", strength=0.0), image)


def _held_back(tiny_model, **options):
    import dataclasses

    from phnet import PHNet

    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual", correction_threshold=255.0))
    residual.load_state_dict(tiny_model.state_dict())
    return Harmonizer(residual, device="cpu", dtype="fp32", **options)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_official_mode_leaves_a_picture_it_does_not_change_as_it_was(tiny_model, as_tensor):
    """A correction below the threshold was reported "unchanged" while the whole picture was still squashed to
    the square and back (RMS 4 over the background of a 384×300 crop)."""
    h = _held_back(tiny_model)
    image, mask = photo(40, 56), subject_mask(40, 56)
    if as_tensor:
        image = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        mask = torch.from_numpy(mask)[None, None]
    out, (correction,) = h.harmonize(image, mask, mode="official")
    assert correction.unchanged and correction.resampled is None
    assert (torch.equal(out, image) if as_tensor else np.array_equal(out, image))


def test_official_mode_reads_a_soft_mask_as_one_bit_and_reports_no_faint_mask(harmonizer):
    """The official pipeline dithers a soft mask: each pixel gets all of the change or none of it, and the report
    scaled the change by the soft weight and called the mask faint."""
    img, m = photo(64, 64), subject_mask(64, 64)
    (report,) = harmonizer.harmonize(img, m * 0.6, threshold=0, mode="official", working_size=64).corrections
    assert report.weight == 1.0 and "faint" not in report.describe()


def test_official_mode_runs_the_network_in_fp32_unless_a_precision_is_named(tiny_model):
    """On a CPU with AMX, "auto" is bf16, and the official reproduction moved a level on 4 % of the subject."""
    img, m = photo(60, 84), subject_mask(60, 84)
    exact = Harmonizer(tiny_model, device="cpu", dtype="fp32")(img, m, mode="official", threshold=0)
    auto = Harmonizer(tiny_model, device="cpu", dtype="auto")
    auto.dtype = torch.bfloat16  # what "auto" resolves to where bf16 pays
    assert np.array_equal(auto(img, m, mode="official", threshold=0), exact)
    named = Harmonizer(tiny_model, device="cpu", dtype="bf16")
    assert not np.array_equal(named(img, m, mode="official", threshold=0), exact)


@pytest.mark.parametrize("convert", ["P", "LA", "CMYK"])
def test_official_mode_reads_a_pil_picture_of_another_mode_as_the_official_tester_does(harmonizer, convert):
    """The tester opens a picture and converts it to RGB; such a picture went through floats here and came back
    a level or two apart from the same picture given as RGB."""
    rgb = Image.fromarray(photo(48, 64)).convert(convert).convert("RGB")  # the tester's own picture
    m = subject_mask(48, 64)
    other = Image.fromarray(photo(48, 64)).convert(convert)
    got = np.asarray(harmonizer(other, m, mode="official", threshold=0).convert("RGB"))
    assert np.array_equal(got, np.asarray(harmonizer(rgb, m, mode="official", threshold=0)))


def test_the_official_mode_reads_a_premultiplied_grey_picture(tiny_model):
    from PIL import Image

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    grey = np.random.default_rng(0).integers(0, 256, (40, 56), dtype=np.uint8)
    la = Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA")
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    assert h(la.convert("La"), mask, mode="official").size == h(la, mask, mode="official").size
