"""Metrics against hand-computed values (0–255 units, fMSE = fg SSE / (3·N_fg), PSNR peak = max(gt)²)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from phnet import metrics


def _pair(dtype=torch.float64):
    """2×2 image pair with known errors (0–255 units).

    gt is 100 everywhere except red at pixel (0,0) = 200 (so the PSNR peak is 200).
    pred = gt + 10 on all three channels of pixel (0,1) + 20 on the red channel of pixel (1,1).
    Foreground = pixels (0,1) and (1,0).
    """
    gt = torch.full((1, 3, 2, 2), 100.0, dtype=torch.float64)
    gt[0, 0, 0, 0] = 200.0
    pred = gt.clone()
    pred[0, :, 0, 1] += 10.0
    pred[0, 0, 1, 1] += 20.0
    mask = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    mask[0, 0, 0, 1] = 1.0
    mask[0, 0, 1, 0] = 1.0
    return (pred / 255).to(dtype), (gt / 255).to(dtype), mask.to(dtype)


# SSE = 3·10² + 20² = 700 over 12 values; fg SSE = 300 over 2 pixels (the code adds tiny epsilons).
MSE = 700 / 12
FMSE = 300 / (3 * 2)
PSNR = 10 * math.log10(200**2 / MSE)
FPSNR = 10 * math.log10(200**2 / FMSE)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_hand_computed_values(dtype, tol):
    pred, gt, mask = _pair(dtype)
    assert metrics.mse(pred, gt).item() == pytest.approx(MSE, rel=tol)
    assert metrics.fmse(pred, gt, mask).item() == pytest.approx(FMSE, rel=tol)
    assert metrics.psnr(pred, gt).item() == pytest.approx(PSNR, rel=tol)
    assert metrics.fpsnr(pred, gt, mask).item() == pytest.approx(FPSNR, rel=tol)
    everything = metrics.all_metrics(pred, gt, mask)
    assert set(everything) == {"MSE", "fMSE", "PSNR", "fPSNR"}
    assert everything["fMSE"].item() == pytest.approx(FMSE, rel=tol)


def test_values_are_per_image_in_a_batch():
    pred, gt, mask = _pair()
    pred2 = torch.cat([pred, gt])  # second image is predicted perfectly
    gt2, mask2 = torch.cat([gt, gt]), torch.cat([mask, mask])
    m = metrics.mse(pred2, gt2)
    assert m.shape == (2,)
    assert m[0].item() == pytest.approx(MSE) and m[1].item() == 0.0
    f = metrics.fmse(pred2, gt2, mask2)
    assert f[0].item() == pytest.approx(FMSE) and f[1].item() == 0.0
    # A perfect prediction has a large but finite PSNR (epsilon in the denominator).
    p = metrics.psnr(pred2, gt2)
    assert p[0].item() == pytest.approx(PSNR) and math.isfinite(p[1].item()) and p[1].item() > 90


def test_psnr_peak_is_the_ground_truth_maximum():
    pred, gt, _ = _pair()
    darker = gt * 0.5  # peak 100 instead of 200, same error → PSNR lower by 20·log10(2)
    pred_dark = darker + (pred - gt)
    assert metrics.psnr(pred_dark, darker).item() == pytest.approx(PSNR - 20 * math.log10(2))


def test_a_ground_truth_black_everywhere_is_refused_naming_the_picture():
    """Its peak max(gt) is 0: PSNR -inf even for a perfect prediction, and so the mean of any set holding it."""
    pred, gt, mask = _pair()
    black = torch.zeros_like(gt)
    for score in (lambda: metrics.psnr(black, black), lambda: metrics.fpsnr(black, black, mask),
                  lambda: metrics.psnr_of(torch.zeros(1, dtype=torch.float64), black),
                  lambda: metrics.MetricTracker().update(black, black, mask)):
        with pytest.raises(ValueError, match=r"^the ground truth is black everywhere: PSNR with its own peak is "
                                             r"undefined; score it with the fixed peak 255"):
            score()
    with pytest.raises(ValueError, match=r"^the ground truth of picture 1 is black everywhere"):
        metrics.psnr(torch.cat([pred, black]), torch.cat([gt, black]))
    with pytest.raises(ValueError, match=r"^the ground truths of pictures 0, 2 are black everywhere"):
        metrics.psnr(torch.cat([black, pred, black]), torch.cat([black, gt, black]))


def test_soft_mask_is_thresholded_at_one_half():
    pred, gt, mask = _pair()
    soft = mask * 0.5  # 0.5 still counts as foreground
    assert metrics.fmse(pred, gt, soft).item() == pytest.approx(FMSE)


def test_a_mask_with_no_subject_pixel_is_refused_naming_the_picture():
    """An empty mask, or a faint matte that never reaches 0.5, scored fMSE 0 (no error over 3·0 + 1e-6 pixels), an
    fPSNR of over 100 dB and the 0-5% bucket: a perfect score for a picture visibly wrong, without a word."""
    pred, gt, mask = _pair()
    for faint in (mask * 0.49, torch.zeros_like(mask)):
        for score in (lambda: metrics.fmse(pred, gt, faint), lambda: metrics.fpsnr(pred, gt, faint),
                      lambda: metrics.fg_bucket(faint), lambda: metrics.MetricTracker().update(pred, gt, faint)):
            with pytest.raises(ValueError, match=r"^the mask has no subject pixel \(none >= 0.5\): .* is undefined; "
                                                 r"give a binary mask, or cut a soft one at a lower level"):
                score()
    batch = torch.cat([mask, mask * 0.49, mask, torch.zeros_like(mask)])
    tracker = metrics.MetricTracker()
    with pytest.raises(ValueError, match=r"^the masks of pictures 1, 3 have no subject pixel .*: fMSE is undefined"):
        tracker.update(pred.expand(4, -1, -1, -1), gt.expand(4, -1, -1, -1), batch)
    assert tracker.summary() == {}
    with pytest.raises(ValueError, match=r"^the mask of picture 1 has no subject pixel"):
        metrics.fmse(pred.expand(2, -1, -1, -1), gt.expand(2, -1, -1, -1), batch[:2])


def test_shape_mismatch_is_refused():
    pred, gt, _ = _pair()
    with pytest.raises(ValueError, match="B×3×H×W"):
        metrics.mse(pred, gt[:, :, :1])
    with pytest.raises(ValueError, match=r"B×3×H×W, got \(3, "):
        metrics.mse(pred[0], gt[0])


def test_pictures_with_other_than_three_channels_are_refused():
    """RGBA pictures were measured with their alpha as a fourth colour: MSE and PSNR came out wrong."""
    pred, gt, mask = _pair()
    alpha = torch.ones(1, 1, 2, 2, dtype=pred.dtype)
    with pytest.raises(ValueError, match=r"pred and gt must both be B×3×H×W, got \(1, 4, 2, 2\).*drop the alpha"):
        metrics.mse(torch.cat([pred, alpha], 1), torch.cat([gt, alpha], 1))
    with pytest.raises(ValueError, match="B×3×H×W"):
        metrics.fmse(pred[:, :1], gt[:, :1], mask)


def _mask_with(n_fg: int, total: int = 1000) -> torch.Tensor:
    m = torch.zeros(1, 1, 10, total // 10)
    m.view(-1)[:n_fg] = 1.0
    return m


@pytest.mark.parametrize(
    "n_fg,bucket",
    [(1, "0-5%"), (49, "0-5%"), (50, "5-15%"), (149, "5-15%"), (150, "15-100%"), (999, "15-100%")],
)
def test_fg_bucket_boundaries(n_fg, bucket):
    assert metrics.fg_bucket(_mask_with(n_fg)[0, 0]) == bucket
    assert metrics.fg_bucket(_mask_with(n_fg)) == [bucket]  # a batch of one


def test_fg_bucket_of_a_batch_is_a_list():
    batch = torch.cat([_mask_with(49), _mask_with(50), _mask_with(150)])
    assert metrics.fg_bucket(batch) == ["0-5%", "5-15%", "15-100%"]
    assert metrics.fg_bucket(batch[:, 0]) == ["0-5%", "5-15%", "15-100%"]  # B x H x W, as masks come
    assert metrics.fg_ratio(batch).tolist() == pytest.approx([0.049, 0.05, 0.15])


def test_fg_bucket_of_a_batch_of_one_is_a_list():
    """A batch of one came back as a bare string, and each caller had to wrap it."""
    assert metrics.fg_bucket(_mask_with(50)) == ["5-15%"]
    assert metrics.fg_bucket(_mask_with(50)[:, 0]) == ["5-15%"]
    with pytest.raises(ValueError, match=r"the mask must be H×W, B×H×W or B×1×H×W, got \(1000,\)"):
        metrics.fg_bucket(_mask_with(50).flatten())


def test_blend():
    pred, comp = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.25, 0.0]]]])
    out = metrics.blend(pred, comp, mask)
    assert out[0, :, 0, 0].tolist() == [1, 1, 1] and out[0, :, 0, 1].tolist() == [0, 0, 0]
    assert out[0, 0, 1, 0].item() == 0.25


def test_blend_refuses_a_mask_of_another_shape_as_fmse_does():
    """A B×H×W mask paired mask k with channel k of every picture, without a word (or a raw torch error)."""
    pred, comp = torch.ones(3, 3, 4, 4), torch.zeros(3, 3, 4, 4)
    masks = torch.zeros(3, 4, 4)
    masks[0] = 1
    with pytest.raises(ValueError, match=r"must be B×1×H×W .*a B×H×W mask would pair mask k with channel k"):
        metrics.blend(pred, comp, masks)
    with pytest.raises(ValueError, match="pred and gt must both be B×3×H×W"):
        metrics.blend(pred, comp[:1], masks[:, None])
    out = metrics.blend(pred, comp, masks[:, None])
    assert out.mean(dim=(1, 2, 3)).tolist() == [1, 0, 0]


def test_a_mask_on_the_0_255_scale_is_refused_by_name_and_a_bool_one_is_read_as_0_and_1():
    """An 8-bit mask counted every level from 1 up as subject (fMSE 157 became 2393); blend wrapped 1 - mask
    around in uint8 and then blamed the pictures."""
    torch.manual_seed(0)
    gt = torch.rand(1, 3, 16, 16)
    pred = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1)
    matte = torch.linspace(0, 1, 256).reshape(1, 1, 16, 16)
    for wrong in (matte.mul(255).round().to(torch.uint8), matte.mul(255).round().long()):
        for call in (lambda m: metrics.fmse(pred, gt, m), metrics.fg_bucket, lambda m: metrics.blend(pred, gt, m)):
            with pytest.raises(ValueError, match=r"the mask must be a float mask in 0..1 .*divide an 8-bit one by 255"):
                call(wrong)
    with pytest.raises(ValueError, match="the mask must be in 0..1, got values up to 255: divide a 0..255 one by 255"):
        metrics.fmse(pred, gt, matte * 255)
    hard = matte >= 0.5
    assert metrics.fmse(pred, gt, hard).item() == pytest.approx(metrics.fmse(pred, gt, hard.float()).item())
    assert torch.equal(metrics.blend(pred, gt, hard), metrics.blend(pred, gt, hard.float()))
    assert metrics.fg_ratio(hard).item() == 0.5


def _tracked():
    """Three images: two in group A (fg 5 % and 15 %), one in group B (fg 5 %)."""
    torch.manual_seed(0)
    gt = torch.rand(3, 3, 10, 100, dtype=torch.float64)
    pred = (gt + 0.02 * torch.randn_like(gt)).clamp(0, 1)
    comp = (gt + 0.1).clamp(0, 1)
    masks = torch.cat([_mask_with(50), _mask_with(150), _mask_with(60)]).double()
    pred, comp = metrics.blend(pred, gt, masks), metrics.blend(comp, gt, masks)
    tracker = metrics.MetricTracker()
    first = tracker.update(pred[:2], gt[:2], masks[:2], composite=comp[:2], group="A")
    tracker.update(pred[2:], gt[2:], masks[2:], composite=comp[2:], group=["B"])
    return tracker, first, (pred, gt, masks, comp)


def test_metric_tracker_groups_buckets_and_baseline():
    tracker, first, (pred, gt, masks, comp) = _tracked()
    assert first["MSE"].shape == (2,)
    s = tracker.summary()
    assert set(s) == {"model", "composite"}
    for method, images in (("model", pred), ("composite", comp)):
        entry = s[method]
        per = metrics.all_metrics(images, gt, masks)
        assert entry["all"]["count"] == 3
        assert entry["all"]["MSE"] == pytest.approx(per["MSE"].mean().item())
        assert entry["all"]["fPSNR"] == pytest.approx(per["fPSNR"].mean().item())
        assert {g: v["count"] for g, v in entry["groups"].items()} == {"A": 2, "B": 1}
        assert entry["groups"]["A"]["fMSE"] == pytest.approx(per["fMSE"][:2].mean().item())
        assert entry["groups"]["B"]["PSNR"] == pytest.approx(per["PSNR"][2].item())
        assert {b: v["count"] for b, v in entry["buckets"].items()} == {"5-15%": 2, "15-100%": 1}
        assert entry["buckets"]["5-15%"]["MSE"] == pytest.approx(per["MSE"][[0, 2]].mean().item())
    # The baseline (composite) is worse than the near-perfect prediction.
    assert s["composite"]["all"]["MSE"] > s["model"]["all"]["MSE"]
    assert json.loads(tracker.to_json())["model"]["all"]["count"] == 3


def test_metric_tracker_without_group_or_composite():
    pred, gt, mask = _pair()
    tracker = metrics.MetricTracker()
    tracker.update(pred, gt, mask)
    s = tracker.summary()
    assert set(s) == {"model"}
    assert s["model"]["all"]["count"] == 1
    assert s["model"]["all"]["MSE"] == pytest.approx(MSE)
    assert s["model"]["groups"] == {}  # no group → only the overall entry
    assert set(s["model"]["buckets"]) == {"15-100%"}  # 2 of 4 pixels


def test_metric_tracker_markdown():
    tracker, _, (pred, gt, masks, _) = _tracked()
    md = tracker.to_markdown()
    lines = md.strip().splitlines()
    assert lines[0] == "| method | split | n | MSE | fMSE | PSNR | fPSNR |"
    mse_all = metrics.mse(pred, gt).mean().item()
    assert any(line.startswith(f"| model | all | 3 | {mse_all:.2f} |") for line in lines)
    for row in ("| model | A | 2 |", "| model | B | 1 |", "| model | fg 5-15% | 2 |",
                "| model | fg 15-100% | 1 |", "| composite | all | 3 |", "| composite | fg 15-100% | 1 |"):
        assert any(line.startswith(row) for line in lines), row
    # header + separator + (all, 2 groups, 2 buckets) × 2 methods
    assert len(lines) == 2 + 5 * 2
    assert not any("0-5%" in line for line in lines)  # empty buckets are left out


def test_a_mask_without_its_channel_axis_is_refused():
    """A B×H×W mask (ComfyUI's MASK layout) broadcast mask k onto channel k when B was 3: wrong numbers."""
    from phnet import metrics

    pred, gt = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    mask = torch.ones(3, 8, 8)
    with pytest.raises(ValueError, match=r"B×1×H×W .*mask\[:, None\]"):
        metrics.fmse(pred, gt, mask)
    assert metrics.fmse(pred, gt, mask[:, None]).shape == (3,)


@pytest.mark.parametrize("mask, fix", [
    (torch.ones(2, 1, 8, 6), "its size 8×6 is not the pictures' 8×8: resize it"),
    (torch.ones(1, 1, 8, 8), "give one mask per picture, not 1 for 2 pictures"),
    (torch.ones(2, 8, 8, 1), r"put its channel axis second \(mask.permute\(0, 3, 1, 2\)\)"),
    (torch.ones(2, 3, 8, 8), "give it one channel, not 3"),
    (torch.ones(8, 8), r"add the batch and channel axes \(mask\[None, None\] for one picture\)"),
])
def test_a_mask_of_the_wrong_shape_is_told_what_is_wrong_with_it(mask, fix):
    """Every wrong shape was told to add the channel axis, the mask already had one."""
    pred = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=rf"the mask must be B×1×H×W for pictures of \(2, 3, 8, 8\), .*; {fix}$"):
        metrics.fmse(pred, pred, mask)


def test_rms_change_weighs_the_subject_by_the_soft_mask_and_reads_the_background_where_it_holds_a_trace_at_most():
    """Soft pixels counted as part background: a faint mask reported a background change where none was."""
    from phnet.metrics import rms_change

    rng = np.random.default_rng(0)
    before = torch.from_numpy(rng.integers(0, 256, (9, 11, 4), dtype=np.uint8))
    after = torch.from_numpy(rng.integers(0, 256, (9, 11, 4), dtype=np.uint8))
    mask = torch.from_numpy(rng.integers(0, 256, (9, 11), dtype=np.uint8))
    mask[:, :3] = 0
    err = ((after[..., :3].double() - before[..., :3].double()) ** 2).sum(-1)
    w = mask.double() / 255
    out = (w <= w.max() / 64).double()  # 0, and the faintest trace
    expected = ((err * w).sum() / (3 * w.sum())).sqrt(), ((err * out).sum() / (3 * out.sum())).sqrt()
    got = rms_change(before, after, mask, 255, 255)
    assert got == pytest.approx(tuple(float(e) for e in expected), rel=1e-9)
    assert rms_change(before, before, torch.full((9, 11), 255, dtype=torch.uint8), 255, 255) == (0.0, 0.0)
    grid = rms_change(before, after, mask, 255, 255, max_pixels=30)  # every 2nd row and column of a larger one
    w, out, e = w[::2, ::2], out[::2, ::2], err[::2, ::2]
    assert grid == pytest.approx((float(((e * w).sum() / (3 * w.sum())).sqrt()),
                                  float(((e * out).sum() / (3 * out.sum())).sqrt())), rel=1e-9)
    faint = torch.full((9, 11), 153, dtype=torch.uint8)  # a faint mask, the change within it alone
    assert rms_change(before, after, faint, 255, 255)[1] == 0.0
    floored = torch.where(mask > 128, mask, 1).to(torch.uint8)  # a matting model's floor of 1/255: background
    assert rms_change(before, after, floored, 255, 255)[1] > 0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_rms_change_reads_a_mattes_floor_beside_a_weak_subject_as_background(dtype):
    """Beside a subject of 48/255, 1/64 of its strongest value is under one 8-bit level: a matte's floor of 1/255
    counted as subject everywhere, and a changed background was reported as unchanged (0.0)."""
    from phnet.metrics import rms_change

    before = torch.full((40, 50, 3), 100, dtype=torch.uint8)
    after = before.clone()
    after[..., 0] += 12
    disc = torch.zeros(40, 50, dtype=torch.bool)
    disc[10:30, 15:35] = True
    full = 255 if dtype == torch.uint8 else 1
    got = []
    for floor in (0, 1):
        mask = torch.where(disc, 48, floor).to(dtype)
        mask = mask if dtype == torch.uint8 else mask / 255
        got.append(rms_change(before, after, mask, 255, full))
    assert got[1][1] == pytest.approx(12 / math.sqrt(3))
    assert got[1] == pytest.approx(got[0])


def test_blend_weight_is_the_rms_of_what_a_mask_lets_through():
    from phnet.metrics import blend_weight

    hard = torch.zeros(40, 40)
    hard[10:30, 10:30] = 1
    half_edge = hard.clone()
    half_edge[10] = 0.5 * hard[10]
    weights = blend_weight(torch.stack([hard, hard * 0.3, half_edge, torch.zeros(40, 40)]))
    assert weights[:2] == pytest.approx([1.0, 0.3]) and 0.9 < weights[2] < 1 and weights[3] == 1.0
    assert blend_weight((hard * 255).to(torch.uint8)[None], mask_peak=255.0) == pytest.approx([1.0])


def test_a_thin_subject_the_grid_misses_is_read_on_its_own_pixels():
    """A 2-px diagonal wire over a big picture fell between the grid's rows and columns: "changed by RMS 0.0" when
    its pixels had changed, and a faint thin strip let through "1.0"."""
    from phnet.metrics import blend_weight, rms_change

    size = 1024
    before = torch.zeros(size, size, 3)
    i = torch.arange(size - 1)
    wire = torch.zeros(size, size)
    wire[i, i + 1] = wire[i + 1, i] = 1.0
    after = before + wire[..., None] * (10 / 255)
    subject, background = rms_change(before, after, wire, max_pixels=1 << 14)
    assert subject == pytest.approx(10, rel=1e-4) and background == 0
    strip = torch.zeros(2, size, size)
    strip[:, 100:900, 501:504] = 0.3
    strip[1, 100:900, 200:240] = 0.3  # wide enough for the grid
    assert blend_weight(strip, max_pixels=1 << 14) == pytest.approx([0.3, 0.3])


def test_8_bit_pictures_and_a_mask_without_its_channel_axis_are_refused_by_name():
    """uint8 pictures gave 65025 times the MSE without a word; the tracker met a B×H×W mask with a reshape error."""
    from phnet.metrics import MetricTracker, mse

    pictures = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match="float pictures in 0..1, got torch.uint8.*divide 8-bit ones by 255"):
        mse(pictures, pictures)
    floats = pictures.float() / 255
    with pytest.raises(ValueError, match=r"add the channel axis \(mask\[:, None\]\)"):
        MetricTracker().update(floats, floats, torch.ones(1, 16, 16))


def test_float_pictures_on_the_0_255_scale_and_a_short_group_list_are_refused_by_name():
    """0..255 floats gave 65025 times the (f)MSE with a normal-looking PSNR; a short group list dropped pictures."""
    from phnet.metrics import MetricTracker, all_metrics

    photo, mask = torch.rand(4, 3, 16, 16), torch.ones(4, 1, 16, 16)
    with pytest.raises(ValueError, match="got values up to .*divide 0..255 ones by 255"):
        all_metrics(photo * 255, photo * 255, mask)
    assert all_metrics(photo * 1.2, photo, mask)["MSE"].shape == (4,)  # an unclamped prediction may overshoot
    with pytest.raises(ValueError, match="got 2 group names for a batch of 4 pictures"):
        MetricTracker().update(photo, photo, mask, group=["a", "b"])


def test_pictures_in_minus_1_to_1_and_non_finite_values_are_refused_by_name():
    """-1..1 pictures (a GAN pipeline's) gave 4 times the MSE and a PSNR 6 dB low without a word: only the largest
    values were checked. A NaN prediction still scores NaN, which the trainer's validation records."""
    from phnet.metrics import all_metrics, mse

    photo, mask = torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"got values down to .*map -1..1 pictures with \(x \+ 1\) / 2"):
        all_metrics(photo * 2 - 1, photo * 2 - 1, mask)
    assert mse(photo * float("nan"), photo).isnan().all()  # a diverged model's: the trainer records NaN
    with pytest.raises(ValueError, match=r"got infinite values in pred: find where they come from"):
        mse(photo / 0, photo)
    half_nan = photo * 255
    half_nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"values up to 25\d.*divide 0..255 ones by 255"):  # the rest is checked
        mse(half_nan, photo)
    with pytest.raises(ValueError, match="NaN or infinite values in gt"):
        mse(photo, photo / 0)
    assert all_metrics(photo - 0.2, photo, mask)["MSE"].shape == (2,)  # an unclamped prediction may undershoot


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs Apple's GPU (MPS), which has no float64")
def test_metrics_and_report_figures_run_on_apple_s_gpu():
    """Every metric cast the device's tensors to float64, which MPS refuses: training crashed at its first
    validation, harmonize() on MPS tensors at its report."""
    from phnet.metrics import all_metrics, blend_weight, rms_change

    photo, mask = torch.rand(2, 3, 16, 16, device="mps"), torch.ones(2, 1, 16, 16, device="mps")
    assert all_metrics(photo, photo, mask)["MSE"].tolist() == [0.0, 0.0]
    assert blend_weight(mask[:, 0]) == [1.0, 1.0]
    assert rms_change(photo[0].permute(1, 2, 0), photo[0].permute(1, 2, 0), mask[0, 0]) == (0.0, 0.0)


def test_metrics_stay_on_their_device_where_it_has_float64():
    from phnet.metrics import mse, wide

    photo = torch.rand(1, 3, 4, 4)
    assert wide(photo).dtype == torch.float64 and wide(photo).device == photo.device
    assert mse(photo, photo).device == photo.device


def test_blend_weighs_a_coloured_composite_by_what_the_mask_leaves_of_it():
    pred, comp = torch.full((1, 3, 1, 3), 0.8), torch.full((1, 3, 1, 3), 0.4)
    out = metrics.blend(pred, comp, torch.tensor([[[[1.0, 0.25, 0.0]]]]))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.8, 0.8 * 0.25 + 0.4 * 0.75, 0.4]))


def test_a_ground_truth_past_1_is_refused_though_a_prediction_may_overshoot_there():
    """A photo holds no values past full; a prediction not yet clamped may."""
    photo = torch.rand(1, 3, 8, 8) * 0.5 + 0.5
    assert metrics.mse(photo * 1.5, photo).shape == (1,)
    with pytest.raises(ValueError, match="got values up to"):
        metrics.mse(photo, photo * 1.5)
