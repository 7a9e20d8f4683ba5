"""Reference-region guidance: background statistics taken from a chosen part of the background."""
from __future__ import annotations

import pytest
import torch

from phnet import PHNet, PHNetConfig
from phnet.modeling.features import PatchFeatureExtractor
from phnet.modeling.normalization import PatchNormalization


def _inputs(size: int = 64, batch: int = 2):
    g = torch.Generator().manual_seed(3)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = 1
    return image, mask


def _perturbed(config: PHNetConfig) -> PHNet:
    torch.manual_seed(0)
    model = PHNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # a non-zero last layer, so residual/transform models do something
            p.add_(torch.randn_like(p) * 0.02)
    return model


OUTPUTS = ("image", "residual", "transform")


@pytest.mark.parametrize("output", OUTPUTS)
def test_empty_reference_is_bit_identical_to_none(tiny_config, output):
    import dataclasses

    model = _perturbed(dataclasses.replace(tiny_config, output=output))
    image, mask = _inputs()
    with torch.no_grad():
        plain = model(image, mask)
        empty = model(image, mask, torch.zeros_like(mask))
        inside_subject_only = model(image, mask, mask.clone())  # no background pixel: same fallback
    assert torch.equal(plain, empty)
    assert torch.equal(plain, inside_subject_only)


def test_whole_background_reference_matches_none(tiny_config):
    model = _perturbed(tiny_config)
    image, mask = _inputs()
    with torch.no_grad():
        plain = model(image, mask)
        full = model(image, mask, torch.ones_like(mask))
    torch.testing.assert_close(full, plain, atol=1e-5, rtol=1e-4)


def test_reference_changes_the_result_and_keeps_the_shape(tiny_config):
    model = _perturbed(tiny_config)
    image, mask = _inputs(batch=3)
    reference = torch.zeros_like(mask)
    reference[..., :, : 64 // 4] = 1  # the left strip
    with torch.no_grad():
        plain = model(image, mask)
        guided = model(image, mask, reference)
    assert guided.shape == plain.shape
    assert not torch.allclose(guided, plain)


def test_reference_is_per_image_in_a_batch(tiny_config):
    model = _perturbed(tiny_config)
    image, mask = _inputs(batch=2)
    reference = torch.zeros_like(mask)
    reference[1, :, :, :16] = 1  # only the second image is guided
    with torch.no_grad():
        out = model(image, mask, reference)
        first_alone = model(image[:1], mask[:1])
        second_alone = model(image[1:], mask[1:], reference[1:])
    torch.testing.assert_close(out[:1], first_alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[1:], second_alone, atol=1e-6, rtol=1e-5)


def test_reference_shape_is_checked(tiny_model):
    image, mask = _inputs()
    with pytest.raises(ValueError, match="reference mask"):
        tiny_model(image, mask, torch.ones(2, 1, 32, 32))


def test_pn_targets_the_reference_statistics():
    """A PN block whose patch branch is off re-styles the foreground towards the reference's μ and σ."""
    block = PatchNormalization(channels=1, grid=2)
    with torch.no_grad():
        block.weights.copy_(torch.tensor([1.0, 0.0]))
        block.fg_var.fill_(1.0)
    x = torch.zeros(1, 1, 8, 8)
    x[..., :, :4] = 0.2  # left background
    x[..., :, 4:] = 0.8  # right background
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 3:5] = 1
    x = x + mask * torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)  # a varying subject
    reference = torch.zeros_like(mask)
    reference[..., :, 4:] = 1
    out = block(x, mask, reference)
    subject = out[mask.bool()]
    assert subject.mean().item() == pytest.approx(0.8, abs=1e-4)
    assert subject.std(unbiased=False).item() == pytest.approx(0.0, abs=1e-2)  # the right side is flat


def test_pn_patch_means_fall_back_where_a_patch_has_no_reference():
    block = PatchNormalization(channels=2, grid=2)
    x = torch.rand(1, 2, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 3:5, 3:5] = 1
    reference = torch.zeros_like(mask)
    reference[..., :4, :4] = 1  # the top-left patch only
    captured = {}

    import phnet.modeling.normalization as normalization

    original = normalization.restrict_to_reference

    def spy(*args, **kwargs):
        captured["out"] = original(*args, **kwargs)
        captured["background"] = args[3]
        return captured["out"]

    normalization.restrict_to_reference = spy
    try:
        block(x, mask, reference)
    finally:
        normalization.restrict_to_reference = original
    patch_means, background_patch_means = captured["out"][2], captured["background"][2]
    region = reference * (1 - mask)
    expected_top_left = (x[..., :4, :4] * region[..., :4, :4]).sum(dim=(2, 3)) / region[..., :4, :4].sum()
    torch.testing.assert_close(patch_means[..., 0, 0], expected_top_left)
    torch.testing.assert_close(patch_means[..., 0, 1], background_patch_means[..., 0, 1])
    torch.testing.assert_close(patch_means[..., 1, :], background_patch_means[..., 1, :])


def test_pfe_with_empty_reference_is_bit_identical():
    torch.manual_seed(0)
    pfe = PatchFeatureExtractor(grid=3)
    image, mask = _inputs(size=32)
    assert torch.equal(pfe(image, mask), pfe(image, mask, torch.zeros_like(mask)))
    left = torch.zeros_like(mask)
    left[..., :, :8] = 1
    assert not torch.equal(pfe(image, mask), pfe(image, mask, left))


def _harmonizer(tiny_config):
    from phnet import Harmonizer

    return Harmonizer(_perturbed(tiny_config), device="cpu", dtype="fp32")


def _picture(height: int, width: int):
    import numpy as np

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[:, : width // 2] //= 3  # a dark half and a bright half: where the reference lies matters
    mask = np.zeros((height, width), np.float32)
    mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1
    return image, mask


def test_a_soft_reference_is_its_region_not_nothing(tiny_config):
    import numpy as np

    h = _harmonizer(tiny_config)
    image, mask = _picture(48, 64)
    region = np.zeros_like(mask)
    region[:, :12] = 1.0
    plain = h(image, mask)
    binary = h(image, mask, reference_mask=region)
    soft = h(image, mask, reference_mask=0.4 * region)
    assert np.array_equal(soft, binary) and not np.array_equal(soft, plain)


def test_a_soft_reference_painted_over_the_subject_too_is_still_its_region():
    """Working-size pixels the subject only partly covers took the subject's full strength into the region
    (with the bundled weights: up to 4/255 on a real paste)."""
    import numpy as np

    from phnet.fullres import working_shape
    from phnet.regions import reference_at

    image, mask = _picture(301, 419)  # the subject's edges fall inside working-size pixels
    region = np.zeros_like(mask)
    region[:, :60] = 1.0
    shape = working_shape(301, 419, 64)
    soft = reference_at(torch.from_numpy(0.4 * region), shape, torch.from_numpy(mask))
    over = reference_at(torch.from_numpy(np.maximum(0.4 * region, mask)), shape, torch.from_numpy(mask))
    assert torch.equal(over, soft) and soft.sum() > 0
    from phnet.mask_tools import refine_mask

    feathered = torch.from_numpy(refine_mask(mask, feather=4.0))  # the region keeps its own strength's reading
    over = reference_at(torch.from_numpy(np.maximum(0.4 * region, feathered.numpy())), shape, feathered)
    columns = shape[1] * 60 // 419  # (the feather's outer half is background to the network, and painted over)
    assert torch.equal(over[..., :columns], soft[..., :columns]) and soft[..., :columns].sum() > 0


@pytest.mark.parametrize("uint8", [False, True])
def test_a_soft_reference_beside_a_weak_subject_on_a_mattes_floor_is_still_its_region(uint8):
    """Beside a subject of 48/255, 1/64 of its strongest value is under one 8-bit level: a matte's floor of 1/255
    counted as a trace of the subject everywhere, so the region's strength was read off what was painted over the
    subject's feather, and the region itself (0.4) was dropped."""
    import numpy as np

    from phnet.fullres import working_shape
    from phnet.regions import reference_at
    from phnet.mask_tools import refine_mask

    _, mask = _picture(301, 419)
    weak = refine_mask(mask, feather=12.0) * (48 / 255)
    region = np.zeros_like(mask)
    region[:, :60] = 0.4
    shape = working_shape(301, 419, 64)
    got = []
    for floor in (0, 1 / 255):
        subject = np.maximum(weak, floor)
        subject, peak = ((subject * 255).round().astype(np.uint8), 255.0) if uint8 else (subject, 1.0)
        over = np.maximum(region, weak > 4 / 255)  # painted over the subject's feather too, at full strength
        got.append(reference_at(torch.from_numpy(over), shape, torch.from_numpy(subject), peak))
    columns = shape[1] * 60 // 419
    assert torch.equal(got[1][..., :columns], got[0][..., :columns]) and got[0][..., :columns].sum() > 0


def test_a_faint_subject_with_a_stronger_speck_is_cut_from_the_reference_where_the_network_reads_it():
    """The reference was cut at half the subject's strongest pixel while the network reads a faint subject by its
    own strongest coverage: one speck left the whole faint subject inside the reference region."""
    from phnet.fullres import working_shape
    from phnet.regions import reference_at, working_mask

    subject = torch.zeros(256, 256)
    subject[64:192, 64:192] = 0.3
    subject[100, 100] = 0.9
    shape = working_shape(256, 256, 64)
    region = reference_at(torch.ones(256, 256), shape, subject)
    _, network_subject = working_mask(subject, 1.0, shape)
    assert network_subject.sum() > 100 and not (region.bool() & network_subject).any()


def test_a_subject_mask_with_a_faint_floor_leaves_the_reference_its_region(tiny_config):
    """Cut wherever the subject was above 0, a mask at 1/255 everywhere (a matting model's, a JPEG's) cut the
    whole reference away: it was reported ignored, though the network reads those pixels as background."""
    import numpy as np

    h = _harmonizer(tiny_config)
    image, mask = _picture(48, 64)
    region = np.zeros_like(mask)
    region[:, :12] = 1.0
    floored = np.maximum(mask, 1 / 255)
    result, (correction,) = h.harmonize(image, floored, reference_mask=region)
    assert correction.notes == () and not np.array_equal(result, h(image, floored))


def test_a_reference_drawn_in_a_wide_feather_of_the_subject_is_kept():
    """Cut wherever the subject held more than a trace, a band beside a subject feathered with sigma 12 (the
    network's background) was dropped whole, and the report said it lay under the subject."""
    import numpy as np

    from phnet.regions import reference_at
    from phnet.mask_tools import refine_mask

    subject = np.zeros((256, 256), np.float32)
    subject[64:192, 96:160] = 1
    feathered = torch.from_numpy(refine_mask(subject, feather=12))
    band = np.zeros((256, 256), np.float32)
    band[64:192, 165:180] = 1
    assert reference_at(torch.from_numpy(band), (64, 64), feathered).sum() > 0


def test_a_reference_too_small_for_the_working_size_still_counts(tiny_config):
    import numpy as np

    h = _harmonizer(tiny_config)  # works at 64 px: a 6×6 region of a 1500×2000 picture is far below one pixel
    image, mask = _picture(1500, 2000)
    region = np.zeros_like(mask)
    region[100:106, 100:106] = 1.0
    result, (correction,) = h.harmonize(image, mask, reference_mask=region)
    assert not np.array_equal(result, h(image, mask)) and correction.notes == ()


def test_a_reference_that_holds_no_background_is_reported_as_ignored(tiny_config):
    import numpy as np

    h = _harmonizer(tiny_config)
    image, mask = _picture(48, 64)
    for region in (np.zeros_like(mask), mask.copy()):  # all black, or only under the subject
        result, (correction,) = h.harmonize(image, mask, reference_mask=region)
        assert np.array_equal(result, h(image, mask))
        assert "reference mask was ignored" in correction.describe()


def test_pn_with_the_whole_background_as_reference_is_pn_without_one():
    """The same numbers, not a second computation of them that rounds differently (on any torch)."""
    torch.manual_seed(2)
    block = PatchNormalization(channels=4, grid=3)
    x = torch.rand(2, 4, 30, 42)
    mask = torch.zeros(2, 1, 30, 42)
    mask[..., 8:22, 10:30] = 1
    assert torch.equal(block(x, mask, 1 - mask), block(x, mask))
    assert torch.equal(block(x, mask, torch.ones_like(mask)), block(x, mask))


def test_a_soft_reference_painted_over_the_subject_at_full_strength_is_still_its_soft_region(tiny_config):
    """Its strength is read off the subject: a 0.4 region that also covers the subject at 1.0 (the union of a
    region and the subject mask) was cut to the few rim pixels of the subject, with no note."""
    import numpy as np

    h = _harmonizer(tiny_config)
    image, mask = _picture(48, 64)
    left = np.zeros_like(mask)
    left[:, :24] = 1
    soft = np.maximum(0.4 * left, mask)
    want, got = h.harmonize(image, mask, reference_mask=left), h.harmonize(image, mask, reference_mask=soft)
    assert np.array_equal(got.image, want.image) and got.corrections == want.corrections
    assert not np.array_equal(want.image, h(image, mask))  # the region matters here


@pytest.mark.parametrize("region", ["strip", "one pixel", "all but one pixel"])
@pytest.mark.parametrize("branch", ["global", "patch"])
def test_pn_re_styles_the_subject_to_the_reference_s_own_mean_spread_and_patch_means(region, branch):
    """The formula of the PN block with its target statistics taken over the reference: the subject's
    (x − μF)/σF·σR + μR (global branch), or ·σR + Σ W_ij·μR_ij (patch branch), μR_ij over the reference part of
    each patch. A reference of one pixel is a reference, and one leaving a single background pixel out of a patch
    is not the whole background there."""
    from phnet.modeling.oracle import bands, masked_stats

    torch.manual_seed(4)
    block = PatchNormalization(channels=2, grid=2, eps=1e-7)
    with torch.no_grad():
        block.weights.copy_(torch.tensor([1.0, 0.0] if branch == "global" else [0.0, 1.0]))
        block.grid_weights.copy_(torch.rand(1, 2, 2, 2))
    x = torch.rand(1, 2, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 3:6, 3:5] = 1
    reference = torch.zeros_like(mask)
    if region == "strip":
        reference[..., :, 5:] = 1
    elif region == "one pixel":
        reference[..., 1, 6] = 1
    else:
        reference = 1 - mask
        reference[..., 1, 1] = 0
    out = block(x, mask, reference)

    eps, target = block.eps, reference * (1 - mask)
    mu_f, sd_f = masked_stats(x, mask, eps)
    mu_r, sd_r = masked_stats(x, target, eps)
    if branch == "global":
        expected = (x - mu_f) / sd_f * sd_r + mu_r
    else:
        mix = torch.zeros_like(mu_r)
        for i, (r0, r1) in enumerate(bands(8, 2)):
            for j, (c0, c1) in enumerate(bands(8, 2)):
                inside = target[..., r0:r1, c0:c1]
                own = inside if inside.sum() > 0 else (1 - mask)[..., r0:r1, c0:c1]
                patch_mean, _ = masked_stats(x[..., r0:r1, c0:c1], own, eps)
                mix = mix + block.grid_weights[..., i : i + 1, j : j + 1] * patch_mean
        expected = (x - mu_f) / sd_f * sd_r + mix
    subject = mask.bool().expand_as(x)
    torch.testing.assert_close(out[subject], (expected * block.fg_var)[subject], rtol=1e-4, atol=1e-5)


def test_the_colour_transfer_s_patch_statistics_follow_a_reference_of_one_pixel_in_that_patch():
    """A patch holding a single reference pixel takes its background statistics from the reference (zeros
    elsewhere in the patch included, as the whole reference's are), not the patch's own background."""
    from phnet.modeling.features import PatchColorTransfer

    torch.manual_seed(6)
    transfer = PatchColorTransfer(2)
    with torch.no_grad():
        transfer.grid_weights.copy_(torch.tensor([1.0, 0.0]))  # the per-patch branch alone
    image, mask = torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    region = torch.zeros_like(mask)
    region[..., 0, 0] = 1  # one pixel, in the top-left patch
    fg, bg = image * mask, image * (1 - mask)
    plain, guided = transfer(fg, bg), transfer(fg, bg, image * region, region)
    assert not torch.equal(guided[..., :4, :4], plain[..., :4, :4])
    assert torch.equal(guided[..., 4:, :], plain[..., 4:, :])
    assert torch.equal(guided[..., :4, 4:], plain[..., :4, 4:])
    reference = image * region
    patch = reference[..., :4, :4]
    mu, sd = patch.mean(dim=(2, 3), keepdim=True), patch.std(dim=(2, 3), keepdim=True)
    f = fg[..., :4, :4]
    expected = (f - f.mean(dim=(2, 3), keepdim=True)) * (sd / (f.std(dim=(2, 3), keepdim=True) + 1e-8)) + mu
    torch.testing.assert_close(guided[..., :4, :4], expected)
