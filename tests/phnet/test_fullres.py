"""The full-resolution step in tiles and in the caller's dtype: the same result as the whole-image
float formulas, the background bit-identical, and no full-size float copy."""

from pathlib import Path

import numpy as np
import pytest
import torch

from phnet import Harmonizer, PHNet
from phnet.fullres import (
    RowUpsampler,
    apply_full_resolution,
    apply_in_tiles,
    bounding_box,
    downscale,
    downscale_in_bands,
    fill_outside,
    lift,
    lift_change,
    resize,
    subject_coverage,
    working_shape,
)


def photo(h, w, seed=0, channels=3, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    low = rng.random((-(-h // 8), -(-w // 8), channels))
    image = np.kron(low, np.ones((8, 8, 1)))[:h, :w] * 0.9 + rng.random((h, w, channels)) * 0.1
    if dtype == np.uint8:
        return (image * 255).round().astype(np.uint8)
    if dtype == np.uint16:
        return (image * 65535).round().astype(np.uint16)
    return image.astype(dtype)


def soft_mask(h, w):
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt(((xx - w / 2) / (0.3 * w)) ** 2 + ((yy - h / 2) / (0.35 * h)) ** 2)
    return (np.clip((1.1 - d) * 5, 0, 1) * 255).round().astype(np.uint8)  # soft edge, zero outside


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("low, full, columns", [((24, 40), (300, 500), (37, 411)), ((64, 64), (40, 100), (3, 50)),
                                                ((5, 7), (5, 9), (0, 9))])
def test_row_upsampler_is_the_resize(low, full, columns, mode):
    values = torch.rand(*low, 3)
    expected = resize(values.permute(2, 0, 1)[None], full, mode)[0].permute(1, 2, 0)[:, columns[0] : columns[1]]
    up = RowUpsampler(values, full, columns, mode)
    got = torch.cat([up.rows(r, min(r + 17, full[0])) for r in range(0, full[0], 17)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_upscaling_is_done_in_bands_for_every_method():
    """Method "resize" upscales bicubically: a whole 8K float map of it cost 480 MB and most of the time."""
    for mode in ("bilinear", "bicubic"):
        assert RowUpsampler(torch.rand(24, 40, 3), (300, 500), (0, 500), mode).banded


def test_downscale_small_is_exact_and_large_is_8bit_close():
    small = torch.from_numpy(photo(60, 90, dtype=np.float32))
    shape = working_shape(60, 90, 64)
    exact = resize(small.permute(2, 0, 1)[None], shape)
    assert torch.equal(downscale(small, 1.0, shape), exact)
    large = torch.from_numpy(photo(600, 900))
    shape = working_shape(600, 900, 64)
    reference = resize(large.permute(2, 0, 1)[None].float() / 255, shape)
    assert (downscale(large, 255.0, shape) - reference).abs().max() <= 1.5 / 255
    mask = torch.from_numpy(soft_mask(600, 900))
    coverage = resize(mask[None, None].float() / 255, shape)
    assert (downscale(mask[..., None], 255.0, shape) - coverage).abs().max() < 0.05


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 1])
def test_downscale_never_rounds_a_deeper_picture_to_8_bits(tiny_model, dtype, channels):
    """Over 4× the working area a 16-bit or float picture was rounded to 8 bits for the network's input: a
    backdrop whose gradient spans under one 8-bit level was one flat colour at 1200² and a scene at 500²."""
    pixels = torch.from_numpy(photo(600, 900, channels=channels, dtype=dtype))
    peak = 65535.0 if dtype == np.uint16 else 1.0
    shape = working_shape(600, 900, 64)
    exact = resize(pixels.permute(2, 0, 1)[None].float() / peak, shape)
    torch.testing.assert_close(downscale(pixels, peak, shape), exact, rtol=0, atol=1e-6)
    if channels == 1:
        return
    h, w = 400, 400  # ~40× the working area
    image = np.repeat((29960 + 218 * np.arange(w) / w).round().astype(np.uint16)[None, :, None], h, 0)
    image = np.repeat(image, 3, -1) if dtype == np.uint16 else np.repeat(image, 3, -1).astype(dtype) / 65535
    mask = np.zeros((h, w), np.uint8)
    mask[100:300, 100:300] = 255
    image[mask > 0] = np.array([12000, 20000, 40000]) / (1 if dtype == np.uint16 else 65535)
    result = Harmonizer(tiny_model, device="cpu", dtype="fp32").harmonize(image, mask, threshold=0)
    assert not result.corrections[0].unchanged, result.corrections[0].describe()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("full, band", [((600, 900), 9000), ((601, 899), 1), ((90, 1000), 10**6)])
def test_downscale_in_bands_is_the_whole_float_resize(dtype, full, band):
    pixels = torch.from_numpy(photo(*full, dtype=dtype))
    peak = 255.0 if dtype == np.uint8 else 1.0
    shape = working_shape(*full, 64)
    whole = resize(pixels.permute(2, 0, 1)[None].float() / peak, shape)
    torch.testing.assert_close(downscale_in_bands(pixels, peak, shape, band), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("pixels_per_tile", [1, 5000, 10**7])
def test_any_tile_size_gives_the_same_pixels(pixels_per_tile):
    h, w = 200, 300
    pixels, mask = torch.from_numpy(photo(h, w)), torch.from_numpy(soft_mask(h, w))
    box = bounding_box(mask)
    shift = lambda x, r0, r1: x * 0.9 + 12.0  # noqa: E731
    default, tiled = pixels.clone(), pixels.clone()
    apply_in_tiles(pixels, default, mask, 1 / 255, 255.0, shift, box)
    apply_in_tiles(pixels, tiled, mask, 1 / 255, 255.0, shift, box, pixels_per_tile=pixels_per_tile)
    assert torch.equal(default, tiled)


@pytest.mark.parametrize("method", ["correction", "guided", "resize"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_tiles_match_the_whole_image_formula(method, dtype):
    h, w = 300, 500
    peak = 255.0 if dtype == np.uint8 else 1.0
    pixels = torch.from_numpy(photo(h, w, dtype=dtype))
    mask = torch.from_numpy(soft_mask(h, w))
    full = pixels.permute(2, 0, 1)[None].float() / peak
    m = mask[None, None].float() / 255
    shape = working_shape(h, w, 64)
    low = resize(full, shape)
    m_low = (resize(m, shape) >= 0.5).float()
    pred_low = (low + 0.2 * torch.rand_like(low) - 0.1).clamp(0, 1) * m_low + low * (1 - m_low)
    harmonized = apply_full_resolution(full, m, low, pred_low, m_low, method).clamp(0, 1)
    expected = (full + 0.7 * m * (harmonized - full)).clamp(0, 1)
    out, box = pixels.clone(), bounding_box(mask)
    apply_in_tiles(pixels, out, mask, 0.7 / 255, peak, lift(method, low, pred_low, m_low, (h, w), box, peak), box)
    got = out.permute(2, 0, 1)[None].float() / peak
    tolerance = 0.5 / 255 + 1e-4 if dtype == np.uint8 else 1e-4  # 8-bit: rounding; float: upsampling's rounding
    assert (got - expected).abs().max() <= tolerance
    assert torch.equal(out[mask == 0], pixels[mask == 0])


@pytest.fixture()
def transform_harmonizer(tiny_config):
    import dataclasses

    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output="transform")).eval()
    with torch.no_grad():
        model.decoder[5][0].weight.normal_(0, 0.05)
        model.decoder[5][0].bias.normal_(0, 0.1)
    return Harmonizer(model, device="cpu", dtype="fp32")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 4])
def test_background_and_alpha_are_bit_identical(tiny_model, transform_harmonizer, dtype, channels):
    image = photo(200, 320, channels=channels, dtype=dtype)
    mask = soft_mask(200, 320)
    for h in (Harmonizer(tiny_model, device="cpu", dtype="fp32"), transform_harmonizer):
        out = h(image, mask)
        assert out.dtype == image.dtype and out.shape == image.shape
        assert np.array_equal(out[mask == 0], image[mask == 0])
        assert not np.array_equal(out[mask == 255], image[mask == 255])
        if channels == 4:
            assert np.array_equal(out[..., 3], image[..., 3])


def test_transform_is_applied_to_every_subject_pixel(transform_harmonizer):
    image = photo(240, 400)
    mask = soft_mask(240, 400)
    out = transform_harmonizer(image, mask, strength=0.6)
    h = transform_harmonizer
    shape = working_shape(240, 400, h.config.image_size)
    pixels = torch.from_numpy(image)
    low = downscale(pixels, 255.0, shape)
    m_low = (downscale(torch.from_numpy(mask)[..., None], 255.0, shape) >= 0.5).float()
    with torch.no_grad():
        coefficients = h._net.predict_transform(low, m_low)
    from phnet.modeling.transform import apply_colour_transform

    full = pixels.permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(mask)[None, None].float() / 255
    expected = full + 0.6 * m * (apply_colour_transform(full, coefficients).clamp(0, 1) - full)
    got = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255
    assert (got - expected).abs().max() <= 0.5 / 255 + 1e-5


def test_batched_tensor_api_uses_the_same_step(tiny_model):
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    images = torch.from_numpy(np.stack([photo(120, 200, seed=s, dtype=np.float32) for s in (0, 1)]))
    mask = torch.from_numpy(soft_mask(120, 200)).float() / 255
    bhwc = h(images, mask)  # B×H×W×3 float, as ComfyUI passes them
    bchw = h.harmonize_tensor(images.permute(0, 3, 1, 2).contiguous(), mask[None, None].expand(2, 1, -1, -1))
    torch.testing.assert_close(bhwc.permute(0, 3, 1, 2), bchw, rtol=0, atol=1e-6)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
@pytest.mark.parametrize("call", ["plain", "temporal", "reference", "grey"])
def test_a_large_8bit_image_needs_no_full_size_float_copy(tiny_model, call):
    """Single pictures, clips, reference-guided calls and grey pictures take the same tiled full-resolution
    step."""
    from benchmarks.pipeline_speed import peak_rss_mb, photo as bench_photo, portrait_mask, reset_peak_rss

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image, mask = bench_photo(2160, 3840), portrait_mask(2160, 3840)
    if call == "grey":
        image = np.ascontiguousarray(image[..., 1])
    options = {"plain": {}, "grey": {}, "temporal": {"temporal": True},
               "reference": {"reference_mask": np.pad(np.ones((200, 200), np.uint8) * 255, ((0, 1960), (0, 3640)))}}
    h(image, mask, **options[call])  # warm-up: kernels and allocator caches
    grown = []
    for _ in range(2):  # the smaller of two: the allocator now and then holds a few tens of MB more (150 once)
        if not reset_peak_rss():
            pytest.skip("cannot reset the peak RSS count here")
        before = peak_rss_mb()
        out = h(image, mask, **options[call])
        grown.append(peak_rss_mb() - before)
    grown = min(grown)
    # the 8-bit result itself is 25 MB; one float32 copy of the image would be 100 MB (a reference mask is
    # read in its own dtype, 8 MB, and once more without the subject)
    assert grown < 70, f"peak RSS grew by {grown:.0f} MB during a 4K {call} call"
    rgb = np.repeat(image[..., None], 3, -1) if call == "grey" else image
    assert np.array_equal(out[mask == 0], rgb[mask == 0])


def test_a_reference_mask_is_read_in_its_own_dtype(tiny_model, monkeypatch):
    """An 8K uint8 reference mask as float32 was 130 MB, and a second full-size float without the subject."""
    import phnet.frames as frames

    seen = []
    original = frames.reference_at
    monkeypatch.setattr(frames, "reference_at", lambda reference, *a: seen.append(reference.dtype) or
                        original(reference, *a))
    image, mask = photo(120, 200), soft_mask(120, 200)
    reference = np.zeros((120, 200), np.uint8)
    reference[:, 170:] = 255
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    out = h(image, mask, reference_mask=reference)
    assert seen == [torch.uint8]
    float_reference = h(image, mask, reference_mask=reference.astype(np.float32) / 255)
    assert np.array_equal(out, float_reference)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
def test_the_official_pipeline_on_an_8bit_picture_makes_one_float_copy_its_result(tiny_model):
    """As in the official tester, only the bicubic result is float at full size (100 MB at 4K); the picture
    went through float copies and a float64 rounding (704 MB)."""
    from benchmarks.pipeline_speed import peak_rss_mb, photo as bench_photo, portrait_mask, reset_peak_rss

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image, mask = bench_photo(2160, 3840), portrait_mask(2160, 3840)
    h(image, mask, mode="official")
    if not reset_peak_rss():
        pytest.skip("cannot reset the peak RSS count here")
    before = peak_rss_mb()
    h(image, mask, mode="official")
    grown = peak_rss_mb() - before
    assert grown < 200, f"peak RSS grew by {grown:.0f} MB during a 4K official call"


def test_a_clip_with_no_smoothing_is_frame_by_frame_harmonization(tiny_model):
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (3, 90, 130, 3), dtype=np.uint8)
    mask = soft_mask(90, 130)
    assert np.array_equal(h(frames, mask, temporal=0), h(frames, mask))


def nonzero_box(mask):
    rows, cols = np.nonzero(mask.numpy().any(axis=1))[0], np.nonzero(mask.numpy().any(axis=0))[0]
    return None if rows.size == 0 else (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_the_bounding_box_of_any_mask(dtype):
    rng = np.random.default_rng(3)
    masks = [np.zeros((9, 13)), np.ones((9, 13)), np.eye(9, 13)]
    for r, c in [(0, 0), (8, 12), (0, 12), (4, 6)]:  # single pixels, corners included
        one = np.zeros((9, 13))
        one[r, c] = 1
        masks.append(one)
    masks += [rng.random((9, 13)) > 0.9 for _ in range(20)]
    for mask in masks:
        mask = torch.from_numpy(np.asarray(mask)).to(dtype)
        assert bounding_box(mask) == nonzero_box(mask)


def _coverage_as_defined(mask, peak, shape):
    """subject_coverage written out: where the mask holds more than 1/64 of its strongest value and more than 1.5
    8-bit levels, resized."""
    bar = max(float(mask.amax()) / 64, 1.5 / 255 * peak)
    return downscale(torch.gt(mask.double(), bar).view(torch.uint8).mul(255)[..., None], 255.0, shape)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_the_subjects_coverage_is_the_same_however_it_is_computed(dtype):
    """A uint8 mask is thresholded without torch.gt (slow on uint8), and a mask of 0 and 255 alone takes its own
    working-size coverage as it is (one full-size resize fewer): bit for bit what the definition gives."""
    h, w = 240, 368
    shape = working_shape(h, w, 64)
    rng = np.random.default_rng(5)
    hard = soft_mask(h, w) > 128
    weak = soft_mask(h, w) // 5
    weak[50:60, 50:60] = 1  # a floor of 1/255 beside values of 1..51
    masks = {"hard": hard * 255.0, "random": rng.integers(0, 256, (h, w)), "soft": hard * 102.0,
             "feathered": soft_mask(h, w), "weak": weak, "empty": np.zeros((h, w)),
             "speck": np.where(hard, 3, 0) + (np.arange(h * w).reshape(h, w) == 9000) * 252}
    for name, values in masks.items():
        mask = torch.from_numpy(np.asarray(values, np.float64)).to(dtype)
        if dtype == torch.float32:
            mask /= 255
        peak = 255.0 if dtype == torch.uint8 else 1.0
        own = downscale(mask[..., None], peak, shape)
        pair = torch.stack([mask, mask], -1)[..., 0]  # the same values, not contiguous
        for given in (mask, pair):
            coverage = subject_coverage(given, peak, shape, own)
            assert torch.equal(coverage, _coverage_as_defined(given, peak, shape)), name
    hard = torch.from_numpy(hard.astype(np.uint8) * 255)
    own = downscale(hard[..., None], 255.0, shape)
    assert subject_coverage(hard, 255.0, shape, own) is own


def test_the_filled_change_lifts_as_the_correction_method():
    h, w = 90, 140
    pixels = torch.from_numpy(photo(h, w))
    mask = torch.from_numpy(soft_mask(h, w))
    shape = working_shape(h, w, 48)
    low = resize(pixels.permute(2, 0, 1)[None].float() / 255, shape)
    m_low = (resize(mask[None, None].float() / 255, shape) >= 0.5).float()
    pred_low = (low + 0.1) * m_low + low * (1 - m_low)
    box = bounding_box(mask)
    by_lift, by_change = pixels.clone(), pixels.clone()
    apply_in_tiles(pixels, by_lift, mask, 1 / 255, 255.0, lift("correction", low, pred_low, m_low, (h, w), box, 255.0),
                   box)
    change = lift_change(fill_outside(pred_low - low, m_low), (h, w), box, 255.0)
    apply_in_tiles(pixels, by_change, mask, 1 / 255, 255.0, change, box)
    assert torch.equal(by_lift, by_change)


def test_the_result_can_be_written_into_the_box_alone():
    h, w = 120, 170
    pixels, mask = torch.from_numpy(photo(h, w, channels=4)), torch.from_numpy(soft_mask(h, w))
    r0, r1, c0, c1 = box = bounding_box(mask)
    shift = lambda x, a, b: x * 0.8 + 20.0  # noqa: E731
    whole, alone = pixels.clone(), pixels[r0:r1, c0:c1].clone()
    apply_in_tiles(pixels[..., :3], whole[..., :3], mask, 1 / 255, 255.0, shift, box, pixels_per_tile=999)
    apply_in_tiles(pixels[..., :3], alone[..., :3], mask, 1 / 255, 255.0, shift, box, pixels_per_tile=999,
                   origin=(r0, c0))
    assert torch.equal(alone, whole[r0:r1, c0:c1])


def test_maps_shrunk_to_one_pixel_wide_keep_their_rows():
    """torch's antialiased resize gives every row the first row's value when the output is one pixel wide."""
    from phnet.fullres import resize

    bar = torch.zeros(1, 1, 16, 8)
    bar[..., 4:12, :] = 1
    column = resize(bar, (4, 1)).flatten()
    row = resize(bar.mT, (1, 4)).flatten()
    torch.testing.assert_close(column, row)
    assert column[1] > 0.8 > 0.2 > column[0]


@pytest.mark.parametrize("method", ["correction", "guided", "resize"])
def test_a_picture_eight_pixels_wide_changes_its_subject_only_and_a_thinner_one_is_refused(tiny_model, method):
    """A one-pixel strip is stretched to the working size row by row: an untouched 94×1 strip came back
    changed by RMS 117 with the bundled weights."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32", method=method)
    image = np.random.default_rng(3).integers(0, 256, (400, 8, 3), dtype=np.uint8)
    mask = np.zeros((400, 8), np.float32)
    mask[100:300] = 1
    out = h(image, mask, threshold=0)
    changed = (out != image).any(-1)
    assert not changed[mask == 0].any() and changed[100:300].mean() > 0.5
    assert len(np.unique(out[100:300].reshape(-1, 3), axis=0)) > 20  # not one flat colour
    with pytest.raises(ValueError, match="the picture is 1×400 pixels: PHNet needs at least 8 on each side"):
        h(image[:, :1], mask[:, :1], threshold=0)


@pytest.mark.parametrize("shape", [(56, 72), (72, 56), (384, 680), (1, 9), (64, 64)])
def test_filling_a_constant_gives_that_constant_on_any_grid(shape):
    """On a non-square grid the pyramid stopped at a row of cells, and one without subject was filled with 0,
    which spread down: 45 % of a 1080p picture's grid got under 0.9 of the change (a fade at the rim)."""
    from phnet.fullres import fill_outside

    h, w = shape
    weight = torch.zeros(1, 1, h, w)
    weight[..., h // 5 : max(h // 5 + 1, 3 * h // 5), w // 4 : max(w // 4 + 1, 3 * w // 4)] = 1
    filled = fill_outside(torch.full((1, 1, h, w), 0.1), weight)
    torch.testing.assert_close(filled, torch.full_like(filled, 0.1))


def test_guided_keeps_a_subject_of_a_few_working_pixels_its_colours():
    """A 3-px wire at full resolution is a pixel or two at the working size: the fit there had no spread of colours,
    gave it gain 0 and painted the whole wire one mixed colour, for a correction of under one level."""
    from phnet.fullres import GUIDED_MIN_PIXELS, apply_full_resolution, guided_fit

    rng = torch.Generator().manual_seed(0)
    composite_low = torch.rand(1, 3, 32, 32, generator=rng)
    mask_low = torch.zeros(1, 1, 32, 32)
    mask_low[..., 10, 10] = 1
    prediction_low = composite_low + 0.01
    composite = torch.rand(1, 3, 128, 128, generator=rng)
    out = apply_full_resolution(composite, torch.ones(1, 1, 128, 128), composite_low, prediction_low, mask_low,
                                "guided")
    assert (out - composite - 0.01).abs().max() < 1e-5
    mask_low[..., 4:20, 4:20] = 1  # a subject of its own colours: the fit as it was
    from phnet.fullres import fill_outside, local_affine

    a, b = local_affine(composite_low, prediction_low, mask_low, 1)
    assert mask_low.sum() >= GUIDED_MIN_PIXELS
    assert all(torch.equal(x, y) for x, y in zip(guided_fit(composite_low, prediction_low, mask_low),
                                                 (fill_outside(a, mask_low), fill_outside(b, mask_low))))


def test_guided_carries_a_uniform_change_up_whatever_detail_the_working_size_cannot_see(tiny_model):
    """The fit pulled the gain toward 0: where the subject looked flat at the working size it was painted its
    working pixel's colour, so a 2-px check lost its contrast (std 30 → 1.7) and a 1-px wire took the
    background's colour, for a correction of under one level."""
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    image = (np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 37 + yy / 23)], -1) * 255).round().astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[50:190, 70:230] = 255
    image[mask > 0] = np.where((xx // 2 + yy // 2) % 2 == 0, 90, 150).astype(np.uint8)[mask > 0, None]
    mask[:, 280] = 255  # and a wire
    image[:, 280] //= 2
    pixels = torch.from_numpy(image)
    full = pixels.permute(2, 0, 1)[None].float() / 255
    shape = working_shape(h, w, 64)
    low = resize(full, shape)
    m_low = (resize(torch.from_numpy(mask)[None, None].float() / 255, shape) > 0).float()
    pred_low = low + 0.05 * m_low
    harmonized = apply_full_resolution(full, torch.from_numpy(mask)[None, None] / 255, low, pred_low, m_low, "guided")
    subject = torch.from_numpy(mask > 0)
    torch.testing.assert_close(harmonized[0, :, subject], full[0, :, subject] + 0.05, rtol=0, atol=1e-3)
    out, box = pixels.clone(), bounding_box(torch.from_numpy(mask))
    apply_in_tiles(pixels, out, torch.from_numpy(mask), 1 / 255, 255.0, lift("guided", low, pred_low, m_low, (h, w),
                                                                               box, 255.0), box)
    assert ((out[subject].int() - pixels[subject]) - 13).abs().max() <= 1  # 0.05 of 255: 12.75
    check = Harmonizer(tiny_model, device="cpu", dtype="fp32", method="guided")(image, mask, threshold=0)
    assert check[50:190, 70:230].std() > 0.8 * image[50:190, 70:230].std()


def test_to_uint8_converts_every_row_of_a_picture_taller_than_a_tile_and_a_float_one_on_the_255_scale():
    from phnet.fullres import to_uint8
    from phnet.tiling import TILE_PIXELS

    tall = torch.randint(0, 65536, (TILE_PIXELS // 2 + 5, 2, 3), dtype=torch.int32,
                         generator=torch.Generator().manual_seed(1))  # 16-bit values: 2 tiles of rows and a bit
    want = (tall.double() * 255 / 65535).round().to(torch.uint8)
    assert torch.equal(to_uint8(tall, 65535), want)
    floats = torch.tensor([[[0.0, 127.6, 255.0]]])
    out = to_uint8(floats, 255)
    assert out.dtype == torch.uint8 and out.tolist() == [[[0, 128, 255]]]


def test_aspect_ratio_is_kept_at_working_resolution():
    assert working_shape(512, 512, 512) == (512, 512)
    h, w = working_shape(2160, 3840, 512)
    assert h % 8 == 0 and w % 8 == 0 and abs(w / h - 3840 / 2160) < 0.03
    assert abs(h * w - 512 * 512) / (512 * 512) < 0.05


def _oracle(tiny_model, monkeypatch, method, truth):
    """A Harmonizer whose network plays an oracle: it gives back ``truth`` (H×W×3, 0..255) at working size 64."""
    from phnet.fullres import downscale

    harmonizer = Harmonizer(tiny_model, device="cpu", dtype="fp32", method=method)
    low = downscale(torch.from_numpy(truth.round().astype(np.uint8)), 255.0, working_shape(*truth.shape[:2], 64))
    monkeypatch.setattr(harmonizer._net, "estimate", lambda x, m, *a, **k: (low.expand_as(x).clone(),
                                                                            torch.full((len(x),), 30.0),
                                                                            torch.ones(len(x))))
    return harmonizer


def _gradient(h, w):
    """A smooth background for the oracle tests."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([60 + 120 * xx / w, 80 + 100 * yy / h, 200 - 80 * xx / w], -1)


@pytest.mark.parametrize("method, clip", [("correction", False), ("correction", True), ("guided", False),
                                          ("guided", True)])
def test_a_thin_subject_and_a_subjects_rim_get_the_whole_change(tiny_model, monkeypatch, method, clip):
    """The network played by an oracle (the ground truth at the working size). A working pixel the subject covers
    in part mixes it with the background, and its change is that part of the subject's: carried up as it was, a
    bar narrower than a working pixel got a quarter of its change and a disc's rim 85 %. A mask weaker
    everywhere (0.4) keeps its weight: 0.4 of the change, up to the edge."""
    h, w = 600, 900  # working size 64: 56×80, a working pixel ~11 px wide
    yy, xx = np.mgrid[:h, :w]
    truth = _gradient(h, w)
    bar = np.zeros((h, w), bool)
    bar[150:450, 400:404] = True
    disc = (yy - 300) ** 2 / 200**2 + (xx - 450) ** 2 / 300**2 <= 1
    inside = torch.nn.functional.max_pool2d(torch.from_numpy(~disc).float()[None], 5, 1, 2)[0].numpy() == 0
    harmonizer = _oracle(tiny_model, monkeypatch, method, truth)
    for subject, where in ((bar, bar), (disc, disc & ~inside)):  # the bar, the disc's outer 2 px
        composite = np.clip(truth + np.where(subject[..., None], [40, -30, -50], 0), 0, 255).round().astype(np.uint8)
        need = truth.round() - composite
        for level in (1.0, 0.4):
            mask = (subject * level * 255).round().astype(np.uint8)
            frames, masks = (np.stack([composite] * 2), np.stack([mask] * 2)) if clip else (composite, mask)
            out = harmonizer.harmonize(frames, masks, threshold=0.0, working_size=64, temporal=0 if clip else None)
            change = (out.image[0] if clip else out.image).astype(float) - composite
            assert np.median(change[where] / need[where]) == pytest.approx(level, rel=0.1)


@pytest.mark.parametrize("method", ["correction", "guided"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_weak_subject_on_a_mattes_faint_floor_gets_its_rims_change(tiny_model, monkeypatch, method, dtype):
    """The network played by an oracle. A matte often holds 1/255 everywhere; beside a subject of 48/255, 1/64 of the
    strongest value is under one 8-bit level, so the floor counted as subject in every working pixel and the rim got
    0.8 of what it gets without the floor. The floor is a trace: the rim gets the same with it as without."""
    h, w = 600, 900
    yy, xx = np.mgrid[:h, :w]
    truth = _gradient(h, w)
    disc = (yy - 300) ** 2 / 200**2 + (xx - 450) ** 2 / 300**2 <= 1
    inside = torch.nn.functional.max_pool2d(torch.from_numpy(~disc).float()[None], 5, 1, 2)[0].numpy() == 0
    harmonizer = _oracle(tiny_model, monkeypatch, method, truth)
    composite = np.clip(truth + np.where(disc[..., None], [40, -30, -50], 0), 0, 255).round().astype(np.uint8)
    need = truth.round() - composite
    rim = disc & ~inside
    shares = []
    for floor in (0, 1):
        mask = np.where(disc, 48, floor).astype(dtype)
        mask = mask / np.float32(255) if dtype == np.float32 else mask
        out = harmonizer(composite, mask, threshold=0.0, working_size=64)
        shares.append(np.median((out.astype(float) - composite)[rim] / need[rim]))
    assert shares[1] == pytest.approx(shares[0], rel=0.03)


@pytest.mark.parametrize("method", ["correction", "guided"])
def test_a_feathered_mask_and_a_faint_mask_with_one_full_speck_blend_as_they_say(tiny_model, monkeypatch, method):
    """The subject's coverage of a working pixel was read off the mask's soft values: a feather's inner half got the
    whole change (mask 0.7: 1.0), and one full pixel in a mask of 0.4 gave the whole subject the whole change
    (2.5 times what the report said). Each pixel of the subject gets what its mask says."""
    from phnet.mask_tools import refine_mask

    h, w = 480, 640
    yy, xx = np.mgrid[:h, :w]
    truth = _gradient(h, w)
    harmonizer = _oracle(tiny_model, monkeypatch, method, truth)
    rect = np.zeros((h, w), np.float32)
    rect[120:360, 160:480] = 1
    composite = np.clip(truth + np.where(rect[..., None] > 0, [40, -30, -50], 0), 0, 255).round().astype(np.uint8)
    need = truth.round() - composite

    def share_of(out):  # what each subject pixel got of the change it needs (outside the subject it needs none)
        share = np.full((h, w), np.nan)
        share[rect > 0] = (out.astype(float) - composite)[..., 0][rect > 0] / need[..., 0][rect > 0]
        return share

    feathered = refine_mask(rect, feather=30)
    speck = rect * 0.4
    speck[240, 320] = 1.0
    trace = rect * 0.01  # all of it under 1/64 of the speck: traces, whose change was multiplied by 4
    trace[240, 320] = 1.0
    out = harmonizer(composite, trace, threshold=0.0, working_size=64)
    away = (rect > 0) & (np.abs(yy - 240) + np.abs(xx - 320) > 40)
    assert np.median(share_of(out)[away]) < 0.02
    for mask in (feathered, speck):
        out = harmonizer(composite, mask, threshold=0.0, working_size=64)
        share = share_of(out)
        for level in (0.5, 0.7, 0.9):  # where the feather holds about that
            where = (np.abs(mask - level) < 0.03) & (rect > 0)
            if where.any():
                assert np.median(share[where]) == pytest.approx(level, abs=0.08), level
        if mask is speck:
            assert np.median(share[away]) == pytest.approx(0.4, abs=0.05)


@pytest.mark.parametrize("method, clip", [("correction", False), ("correction", True), ("guided", False)])
def test_a_subject_pasted_with_its_mask_as_alpha_gets_its_whole_change_in_its_soft_edge(tiny_model, monkeypatch,
                                                                                        method, clip):
    """The network played by an oracle (the ground truth at the working size). Pasted with the mask as its alpha,
    a soft edge's colours are part background, and so is the network's change there: read as a feather, the edge
    got about 0.8 of its change. With mask_is_alpha it gets all of it; False is the default reading, pixel for pixel."""
    h, w = 480, 640  # working size 64: a working pixel 10 px wide, the soft edge 24 px
    yy, xx = np.mgrid[:h, :w]
    background = _gradient(h, w)
    subject = np.stack([200 - 60 * yy / h, 140 + 0 * xx, 60 + 60 * xx / w], -1)
    d = np.sqrt(((xx - w / 2) / 160) ** 2 + ((yy - h / 2) / 170) ** 2)
    alpha = np.clip((1 - d) * 160 / 24 + 0.5, 0, 1)[..., None]
    mask = (alpha[..., 0] * 255).round().astype(np.uint8)
    composite = (alpha * subject + (1 - alpha) * background).round().astype(np.uint8)
    truth = (alpha * (subject + [-35, 25, 45]) + (1 - alpha) * background).round()
    harmonizer = _oracle(tiny_model, monkeypatch, method, truth)
    frames, masks = (np.stack([composite] * 2), np.stack([mask] * 2)) if clip else (composite, mask)
    options = {"threshold": 0.0, "working_size": 64, "temporal": 0 if clip else None}
    need = truth - composite
    edge = (mask > 25) & (mask < 230)

    def share(out):
        change = out.astype(float) - composite
        return (change[edge] * need[edge]).sum() / (need[edge] ** 2).sum()

    plain = harmonizer(frames, masks, **options)
    pasted = harmonizer(frames, masks, **options, mask_is_alpha=True)
    assert np.array_equal(harmonizer(frames, masks, **options, mask_is_alpha=False), plain)
    feather, matte = (share(out[0] if clip else out) for out in (plain, pasted))
    assert feather < 0.85 and matte == pytest.approx(1.0, abs=0.03)
    if not clip:  # the tensor API reads it too
        images = torch.from_numpy(composite).permute(2, 0, 1)[None].float() / 255
        out = harmonizer.harmonize_tensor(images, torch.from_numpy(mask)[None, None] / 255, working_size=64,
                                          mask_is_alpha=True)
        assert share(out[0].permute(1, 2, 0).numpy() * 255) == pytest.approx(1.0, abs=0.03)
