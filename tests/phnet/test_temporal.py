"""Frames harmonized with a correction smoothed over time, cuts kept; the reference mask through the Harmonizer."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from phnet import Harmonizer, PHNet
from phnet.corrections import summary
from phnet.temporal import FrameEstimate, Smoother, Temporal, as_temporal, shot_starts, smooth


def _harmonizer(config, output: str) -> Harmonizer:
    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(config, output=output)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return Harmonizer(model, device="cpu")


def _clip(frames: int = 8, cut: int | None = None, size: int = 48):
    """A still subject in front of a background that drifts slowly; a different scene from ``cut`` on."""
    g = torch.Generator().manual_seed(5)
    base = torch.rand(1, 3, size, size, generator=g) * 0.3 + 0.3
    other = torch.rand(1, 3, size, size, generator=g) * 0.2 + torch.tensor([0.7, 0.2, 0.1]).reshape(1, 3, 1, 1)
    images = []
    for t in range(frames):
        scene = other if cut is not None and t >= cut else base
        images.append((scene + 0.002 * t).clamp(0, 1))
    images = torch.cat(images)
    masks = torch.zeros(frames, 1, size, size)
    masks[..., 12:40, 16:32] = 1
    subject = torch.tensor([0.2, 0.4, 0.8]).reshape(1, 3, 1, 1)
    images = images * (1 - masks) + subject * masks
    return images, masks


def _est(value: float, signature: float, shape=(8, 8)) -> FrameEstimate:
    return FrameEstimate(torch.full((1, 12), value), torch.full((1, 3, 4, 4), signature), shape)


def test_as_temporal():
    assert as_temporal(None) is None and as_temporal(False) is None
    assert as_temporal(True) == Temporal()
    assert as_temporal(np.bool_(True)) == Temporal() and as_temporal(np.bool_(False)) is None  # numpy flags
    assert Temporal(cuts=None).cuts == ()
    assert as_temporal(5).window == 5.0
    assert as_temporal(0).window == 0.0 and as_temporal(np.float32(2.5)).window == 2.5  # a window, not "off"
    with pytest.raises(ValueError, match=r"^temporal window must be 0 \(off\) or a number of frames .*, got -1$"):
        Temporal(window=-1)
    with pytest.raises(TypeError, match=r"^temporal must be None, a bool, a number of frames .*, got 'yes'$"):
        as_temporal("yes")


def test_cuts_are_detected_added_by_hand_and_at_size_changes():
    estimates = [_est(0, 0.5), _est(0, 0.51), _est(0, 0.9), _est(0, 0.9), _est(0, 0.9, (16, 8)), _est(0, 0.9, (16, 8))]
    assert shot_starts(estimates, Temporal()) == [0, 2, 4]
    assert shot_starts(estimates, Temporal(cuts=(1, 5, 99))) == [0, 1, 2, 4, 5]
    assert shot_starts(estimates, Temporal(cut_threshold=200)) == [0, 4]


def test_shot_starts_are_the_smoothings_own_a_flat_frame_is_no_cut():
    """A black frame in a shot was read as two cuts the smoothing never made."""
    import dataclasses

    from phnet.corrections import Correction

    flat = dataclasses.replace(_est(0, 0.12), report=dataclasses.replace(Correction.no_subject(10.0, 1.0),
                                                                          flat=(30, 30, 30)))
    estimates = [_est(0, 0.5), _est(0, 0.5), flat, _est(0, 0.5)]
    smoother = Smoother(Temporal())
    for e in estimates:
        smoother.push(e)
    assert shot_starts(estimates, Temporal()) == smoother.starts == [0]


def test_smoothing_stays_inside_a_shot():
    values = [0.0, 1.0, 0.0, 1.0, 10.0, 10.0, 10.0]
    signatures = [0.5] * 4 + [0.9] * 3
    estimates = [_est(v, s) for v, s in zip(values, signatures)]
    out = [float(c[0, 0]) for c in smooth(estimates, Temporal(window=2.0))]
    assert all(0.0 < v < 1.0 for v in out[:4])  # the wobble is averaged
    assert out[4:] == pytest.approx([10.0] * 3)  # the new shot takes nothing from the old one
    causal = [float(c[0, 0]) for c in smooth(estimates, Temporal(window=2.0, causal=True))]
    assert causal[0] == 0.0  # a causal average knows only the past
    assert smooth(estimates, Temporal(window=0))[1][0, 0] == 1.0


def test_the_smoother_holds_only_a_window_and_matches_the_gaussian():
    values = [float(v) for v in torch.randn(60, generator=torch.Generator().manual_seed(2))]
    estimates = [_est(v, 0.5) for v in values]
    smoother = Smoother(Temporal(window=2.0))
    held, ready = 0, []
    for e in estimates:
        ready += smoother.push(e)
        held = max(held, len(smoother._window))
    ready += smoother.finish()
    assert held <= 2 * smoother.radius + 1 == 13
    assert [i for i, _ in ready] == list(range(60))  # every frame once, in order
    t = torch.arange(60.0)
    weights = torch.exp(-0.5 * ((t[:, None] - t[None, :]) / 2.0) ** 2) * ((t[:, None] - t[None, :]).abs() <= 6)
    expected = (weights @ torch.tensor(values)) / weights.sum(dim=1)
    torch.testing.assert_close(torch.stack([c[0, 0] for _, c in ready]), expected)
    causal = Smoother(Temporal(window=2.0, causal=True))
    out = [c for e in estimates for _, c in causal.push(e)]
    lag = (t[:, None] - t[None, :]).clamp(min=0)
    w = torch.exp(-lag / 2.0) * (t[:, None] >= t[None, :])
    torch.testing.assert_close(torch.stack([c[0, 0] for c in out]), (w @ torch.tensor(values)) / w.sum(dim=1))


def test_a_constant_correction_is_unchanged_by_smoothing():
    estimates = [_est(0.25, 0.5 + 0.001 * t) for t in range(6)]
    for c in smooth(estimates, Temporal(window=3.0)):
        torch.testing.assert_close(c, torch.full((1, 12), 0.25))


@pytest.mark.parametrize("temporal", [Temporal(window=3.0), Temporal(window=2.0, causal=True)])
def test_equal_corrections_are_given_back_exactly_wherever_the_frame_sits_in_the_window(temporal):
    """Σw·x / Σw in float32 is not x for equal x, and differs with the frame's place in the window."""
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    estimates = [FrameEstimate(x.clone(), torch.full((1, 3, 4, 4), 0.5), (16, 16)) for _ in range(12)]
    assert all(torch.equal(c, x) for c in smooth(estimates, temporal))


@pytest.mark.parametrize("method", ["correction", "guided"])
@pytest.mark.parametrize("temporal", [3.0, Temporal(window=2.0, causal=True)])
def test_a_still_composite_repeated_as_a_clip_gives_equal_frames(tiny_config, method, temporal):
    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output="image")).eval()
    harmonizer = Harmonizer(model, device="cpu", method=method)
    images, masks = _clip(frames=1)
    images, masks = images.repeat(6, 1, 1, 1), masks.repeat(6, 1, 1, 1)
    out = harmonizer(images, masks, layout="BCHW", temporal=temporal)
    assert all(torch.equal(frame, out[0]) for frame in out)
    frames = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    out = harmonizer(frames, masks[:, 0].numpy(), temporal=temporal)
    assert out.dtype == np.uint8 and all((frame == out[0]).all() for frame in out)


@pytest.mark.parametrize("output", ["image", "residual", "transform"])
def test_batch_shape_background_and_no_smoothing_matches_per_frame(tiny_config, output):
    harmonizer = _harmonizer(tiny_config, output)
    images, masks = _clip(frames=4)
    per_frame = harmonizer.harmonize_tensor(images, masks)
    plain = harmonizer(images, masks, layout="BCHW")
    assert plain.shape == images.shape
    torch.testing.assert_close(plain, per_frame, atol=2e-5, rtol=0)
    smoothed = harmonizer(images, masks, layout="BCHW", temporal=2.0)
    assert smoothed.shape == images.shape
    assert torch.equal(smoothed * (1 - masks), images * (1 - masks))


@pytest.mark.parametrize("output", ["residual", "transform"])
def test_smoothing_steadies_the_subject_and_keeps_the_cut(tiny_config, output):
    harmonizer = _harmonizer(tiny_config, output)
    images, masks = _clip(frames=8, cut=4)
    g = torch.Generator().manual_seed(9)
    noisy = (images + (torch.rand(8, 3, 1, 1, generator=g) - 0.5) * 0.2 * (1 - masks)).clamp(0, 1)

    def subject_means(out):
        m = masks[: out.shape[0]]
        return (out * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3))

    plain = subject_means(harmonizer(noisy, masks, layout="BCHW"))
    smoothed = subject_means(harmonizer(noisy, masks, layout="BCHW", temporal=Temporal(window=2.0, cut_threshold=30)))
    jitter = lambda m: (m[1:4] - m[:3]).abs().mean() + (m[5:] - m[4:-1]).abs().mean()  # within each shot
    assert jitter(smoothed) < jitter(plain)
    alone = subject_means(harmonizer(noisy[4:], masks[4:], layout="BCHW", temporal=Temporal(window=2.0,
                                                                                               cut_threshold=30)))
    torch.testing.assert_close(smoothed[4:], alone, atol=1e-5, rtol=0)  # after the cut: as if the clip began there


def test_harmonizer_call_takes_temporal_and_reference(tiny_config):
    harmonizer = _harmonizer(tiny_config, "transform")
    images, masks = _clip(frames=3)
    frames = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    out = harmonizer(frames, masks[:, 0].numpy(), temporal=True)
    assert out.shape == frames.shape and out.dtype == np.uint8
    background = masks[:, 0].numpy() == 0
    assert (out[background] == frames[background]).all()
    reference = np.zeros(frames.shape[1:3], np.float32)
    reference[:, :10] = 1  # one reference mask shared by the batch
    guided = harmonizer(frames, masks[:, 0].numpy(), reference_mask=reference)
    assert guided.shape == frames.shape and not (guided == out).all()
    plain = harmonizer(frames, masks[:, 0].numpy())
    assert (harmonizer(frames, masks[:, 0].numpy(), reference_mask=None) == plain).all()
    with pytest.raises(ValueError, match="reference mask"):
        harmonizer(frames, masks[:, 0].numpy(), reference_mask=np.ones((5, 5), np.float32))
    with pytest.raises(ValueError, match="mode='full'"):
        harmonizer(frames, masks[:, 0].numpy(), temporal=True, mode="official")


@pytest.mark.parametrize("coverage", ["empty", "full"])
def test_empty_and_full_reference_masks(tiny_config, coverage):
    harmonizer = _harmonizer(tiny_config, "residual")
    images, masks = _clip(frames=2)
    reference = torch.zeros_like(masks) if coverage == "empty" else torch.ones_like(masks)
    guided = harmonizer(images, masks, layout="BCHW", reference_mask=reference)
    plain = harmonizer(images, masks, layout="BCHW")
    assert torch.equal(guided, plain)  # no background pixel, or all of them: the same as no reference


@pytest.mark.parametrize("output", ["residual", "transform"])
def test_frames_sharing_network_calls_come_out_as_one_at_a_time(tiny_config, output):
    """network_batch for frames: estimated several per call, smoothed and applied in order, each frame's
    reference and its 'reference ignored' note kept."""
    images, masks = _clip(frames=7, cut=4)
    reference = torch.zeros(7, 48, 48)
    reference[:, :, :10] = 1
    reference[2] = 0  # no background in this frame's reference: ignored, and said so
    options = dict(layout="BCHW", temporal=Temporal(window=2.0, cut_threshold=30), reference_mask=reference)
    one = _harmonizer(tiny_config, output)
    one.network_batch = 1
    expected = one.harmonize(images, masks, **options)
    for batch in (3, 8):
        shared = _harmonizer(tiny_config, output)
        shared.network_batch = batch
        steps = []
        got = shared.harmonize(images, masks, progress=lambda d, t: steps.append(d), **options)
        # a fortieth of a level: batched sums round apart
        torch.testing.assert_close(got.image, expected.image, atol=1e-4, rtol=0)
        assert [c.notes for c in got.corrections] == [c.notes for c in expected.corrections]
        assert sum(bool(c.notes) for c in got.corrections) == 1 and got.corrections[2].notes
        assert steps == list(range(1, 15))


@pytest.mark.parametrize("network_batch", [1, 3])
def test_a_frame_without_its_subject_stays_as_it_is_and_the_clip_goes_on(tiny_config, network_batch):
    """A subject that leaves the picture for a frame (an empty mask) is not an error in a clip: the frame comes
    back as it was, the report says so, and the others are smoothed across it as if it were not there."""
    harmonizer = _harmonizer(tiny_config, "residual")
    harmonizer.network_batch = network_batch
    images, masks = _clip(frames=6, cut=4)
    masks[2] = 0
    options = dict(layout="BCHW", temporal=Temporal(window=2.0, cut_threshold=30))
    steps = []
    got = harmonizer.harmonize(images, masks, progress=lambda d, t: steps.append((d, t)), **options)
    assert torch.equal(got.image[2], images[2])
    assert got.corrections[2].empty_mask and "mask is empty" in got.corrections[2].describe()
    assert [c.empty_mask for c in got.corrections] == [False, False, True, False, False, False]
    keep = [0, 1, 3, 4, 5]
    without = harmonizer.harmonize(images[keep], masks[keep], **options)
    torch.testing.assert_close(got.image[keep], without.image, atol=1e-6, rtol=0)
    assert steps[-1] == (12, 12) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    alone = harmonizer(images[keep], masks[keep], layout="BCHW",
                       temporal=Temporal(window=2.0, cut_threshold=255, cuts=(2,)))  # a cut before frame 3
    for cut in (2, 3):  # a cut given by hand at the empty frame moves to the next one
        by_hand = harmonizer(images, masks, layout="BCHW", temporal=Temporal(window=2.0, cut_threshold=255,
                                                                             cuts=(cut,)))
        torch.testing.assert_close(by_hand[keep], alone, atol=1e-6, rtol=0)
    pictures = harmonizer.harmonize(images, masks, layout="BCHW")  # not a clip: each picture on its own
    assert torch.equal(pictures.image[2], images[2]) and pictures.corrections[2].empty_mask
    with pytest.raises(ValueError, match="every picture's mask is empty"):
        harmonizer(images, torch.zeros_like(masks), layout="BCHW")
    with pytest.raises(ValueError, match="every frame's mask is empty"):
        harmonizer(images, torch.zeros_like(masks), **options)
    for window in (0, 0.0):  # a window of no frames is a clip still: its empty frame is passed through
        assert torch.equal(harmonizer(images, masks, layout="BCHW", temporal=window)[2], images[2])
    masks[2] = 1  # the subject fills the frame: no background to match it to, so it is left as it was
    filled = harmonizer.harmonize(images, masks, **options)
    torch.testing.assert_close(filled.image[keep], without.image, atol=1e-6, rtol=0)
    assert torch.equal(filled.image[2], images[2]) and filled.corrections[2].background == 0
    assert "1 with under 3% background" in summary(filled.corrections)


@pytest.mark.parametrize("method", ["guided", "resize"])
def test_a_frame_left_as_it_was_is_not_rewritten_by_guided_or_resize(tiny_model, method):
    """A zero correction is no change for "correction", but guided and resize re-make the subject from the
    working-size picture: a frame the report calls unchanged came back rewritten (up to 34/255)."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32", method=method)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    masks = np.ones((2, 120, 160), np.float32)
    masks[0, :, -40:] = 0  # 25 % background
    masks[1, :, -2:] = 0  # about 1 %: left as it was
    out, reports = h.harmonize(frames, masks, temporal=0, threshold=0)
    assert reports[1].background is not None and np.array_equal(out[1], frames[1])
    assert not np.array_equal(out[0], frames[0])


@pytest.mark.parametrize("options, message", [
    (dict(window=1e-300), "temporal window must be 0 \\(off\\) or a number of frames from 0.01"),
    (dict(window=1e308), "temporal window must be 0"),
    (dict(window="3"), "temporal window must be 0"),
    (dict(causal="no"), "causal must be True or False"),
    (dict(cuts=("a",)), "cuts must be frame indices"),
    (dict(cut_threshold="20"), "cut_threshold must be a number > 0"),
    (dict(cuts=(3, -1)), r"cuts must be frame indices from 0 \(the first frame of each new shot\), got -1$"),
])
def test_temporal_settings_are_checked_where_they_are_made(options, message):
    """Tiny and huge windows overflowed deep in the smoothing; causal="no" meant causal; a cut at -1 (the last
    frame, to a Python user) was kept and never met."""
    with pytest.raises(ValueError, match=message):
        Temporal(**options)
    assert Temporal(cuts=5).cuts == (5,) and Temporal(window=0).window == 0.0


def test_cuts_given_as_a_generator_or_a_0d_array_are_kept():
    """The check used up a generator, so every cut given by hand was dropped; np.array(3) ended in a TypeError."""
    assert Temporal(cuts=(c for c in [3, 5])).cuts == (3, 5)
    assert Temporal(cuts=iter(np.array([1, 4]))).cuts == (1, 4)
    assert Temporal(cuts=np.array(3)).cuts == (3,) == Temporal(cuts=3).cuts
    for bad in (np.array(2.5), object(), (c for c in ["a"])):
        with pytest.raises(ValueError, match="cuts must be frame indices"):
            Temporal(cuts=bad)


def test_cuts_outside_the_clip_and_a_progress_that_is_no_function_are_refused_before_any_work(tiny_model):
    import torch

    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    frames, masks = torch.rand(4, 3, 24, 32), torch.zeros(4, 1, 24, 32)
    masks[:, :, 6:18, 8:24] = 1
    with pytest.raises(ValueError, match=r"cuts \[100\] are not frames of this clip of 4: give indices from 0 to 3"):
        h(frames, masks, layout="BCHW", temporal=Temporal(cuts=(1, 100)))
    with pytest.raises(ValueError, match="progress must be a function"):
        h(frames, masks, layout="BCHW", temporal=2.0, progress=5)


def test_a_frame_with_too_little_background_stays_as_it_was_in_a_clip(tiny_model):
    """It was reported 'unchanged' and changed anyway by its neighbours' smoothed correction."""
    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[...] = (200, 120, 60)
    frames[:, 16:48, 16:48] = (40, 90, 200)
    frames[:] += np.random.default_rng(0).integers(0, 20, (64, 64, 3), dtype=np.uint8)  # a scene, not a backdrop
    masks = np.zeros((3, 64, 64), np.float32)
    masks[:, 16:48, 16:48] = 1
    masks[1] = 1
    masks[1, 0, :] = 0  # 1.6 % background
    out, reports = h.harmonize(frames, masks, temporal=True, threshold=0)
    assert reports[1].unchanged and reports[1].background is not None
    assert np.array_equal(out[1], frames[1]) and not np.array_equal(out[0], frames[0])


def test_a_frame_with_no_background_at_the_working_size_does_not_pull_its_neighbours_down(tiny_config):
    """Judged at full size, a whole mask with a soft 0.6 border (5.6 % background) went into the smoothing,
    where at the working size it has none: its zero correction pulled its neighbours' down by about 15 %."""
    h = _harmonizer(tiny_config, "transform")
    images, masks = _clip(frames=7, size=64)
    soft = torch.ones(64, 64)
    soft[:4] = soft[-4:] = 0.6
    soft[:, :4] = soft[:, -4:] = 0.6
    runs = {}
    for name, middle in (("soft border", soft), ("whole", torch.ones(64, 64))):
        m = masks.clone()
        m[3, 0] = middle
        out, reports = h.harmonize(images, m, temporal=3.0, threshold=0)
        assert reports[3].background is not None and torch.equal(out[3], images[3])
        runs[name] = out
    torch.testing.assert_close(runs["soft border"], runs["whole"], atol=0, rtol=0)


def test_each_frames_report_is_the_correction_it_got_after_smoothing(tiny_config):
    """A frame whose own correction the threshold dropped was reported 'left unchanged' while its shot's
    smoothed correction changed it."""
    h = _harmonizer(tiny_config, "transform")
    images, masks = _clip(frames=9)
    images[4] = images[4] * (1 - masks[4]) + 0.5 * masks[4]  # its grey subject's correction is the largest
    _, own = h.harmonize(images, masks, temporal=False, threshold=0)
    threshold = (own[4].size + max(c.size for i, c in enumerate(own) if i != 4)) / 2
    out, reports = h.harmonize(images, masks, temporal=3.0, threshold=threshold)
    for i, report in enumerate(reports):
        measured = float(((out[i] - images[i]) * masks[i]).pow(2).sum().div(3 * masks[i].sum()).sqrt()) * 255
        assert report.applied == pytest.approx(measured, rel=0.05, abs=0.01)  # (the filled change, at 64 px)
        assert not report.unchanged and report.smoothed is not None
    assert reports[3].kept == 0 and "after smoothing over its shot (its own correction: below" in reports[3].describe()
    assert "on their own, changed by their shot's smoothed correction" in summary(reports)


def test_a_frame_is_not_said_to_be_smoothed_where_nothing_was(tiny_config):
    """Its own correction was measured unclamped and the applied one clamped: frames were labelled "after
    smoothing over its shot" with smoothing off."""
    h = _harmonizer(tiny_config, "residual")
    images, masks = _clip(frames=2)
    images = images * (1 - masks) + 0.98 * masks  # a near-white subject: the change is clamped
    _, reports = h.harmonize(images, masks, temporal=0.0, threshold=0)
    assert all(r.smoothed is None for r in reports)


def test_a_black_frame_of_a_clip_stays_as_it_was_and_its_neighbours_are_harmonized(tiny_model):
    """A fade to black with the subject still masked: its background is one flat colour, no scene to match."""
    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    rng = np.random.default_rng(1)
    frames = rng.integers(60, 200, (3, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((3, 64, 64), np.float32)
    masks[:, 16:48, 16:48] = 1
    frames[1][masks[1] == 0] = 0
    out, reports = h.harmonize(frames, masks, temporal=True, threshold=0)
    assert reports[1].unchanged and reports[1].flat == (0, 0, 0) and np.array_equal(out[1], frames[1])
    assert not np.array_equal(out[0], frames[0]) and not np.array_equal(out[2], frames[2])


def test_a_flat_frame_of_a_clip_does_not_pull_its_neighbours_down(tiny_config):
    """A flat frame went into the smoothing: its zero pulled its neighbours' correction down (63.7 to 41.8), and
    its smoothed figure called it changed while its pixels were untouched."""
    h = _harmonizer(tiny_config, "residual")
    rng = np.random.default_rng(2)
    frames = np.full((3, 64, 64, 3), 128, np.uint8)
    frames[[0, 2]] += rng.integers(0, 3, (2, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((3, 64, 64), np.float32)
    masks[:, 16:48, 16:48] = 1
    frames[:, 16:48, 16:48] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out, reports = h.harmonize(frames, masks, temporal=Temporal(window=2.0), threshold=0)
    assert reports[1].flat == (128, 128, 128) and reports[1].unchanged and np.array_equal(out[1], frames[1])
    alone = [h.harmonize(frames[i], masks[i], threshold=0).corrections[0].size for i in (0, 2)]
    assert [reports[i].applied for i in (0, 2)] == pytest.approx(alone, rel=0.05)


def test_a_flat_frame_is_judged_by_the_network_call_itself_even_with_a_tiny_subject(tiny_config):
    """Judged apart, a subject smaller than a working pixel read as scene there and as nothing in the network
    call: the frame was smoothed, reported flat, and pulled its neighbours down."""
    h = _harmonizer(tiny_config, "residual")
    rng = np.random.default_rng(3)
    frames = np.full((3, 256, 256, 3), 128, np.uint8)
    frames[[0, 2]] += rng.integers(0, 3, (2, 256, 256, 3), dtype=np.uint8)
    masks = np.zeros((3, 256, 256), np.float32)
    masks[[0, 2], 64:192, 64:192] = 1
    frames[[0, 2], 64:192, 64:192] = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    masks[1, 100:102, 100:102] = 1  # a speck of a subject, under half a working pixel
    frames[1, 100:102, 100:102] = (250, 10, 10)
    out, reports = h.harmonize(frames, masks, temporal=Temporal(window=2.0), threshold=0)
    assert reports[1].flat is not None and reports[1].unchanged and np.array_equal(out[1], frames[1])
    alone = [h.harmonize(frames[i], masks[i], threshold=0).corrections[0].applied for i in (0, 2)]
    assert [reports[i].applied for i in (0, 2)] == pytest.approx(alone, rel=0.05)


def test_the_smoother_keeps_a_held_out_frame_in_time_and_out_of_its_averages():
    import dataclasses

    from phnet.corrections import Correction

    flat = dataclasses.replace(_est(0.0, 0.5), report=Correction(0.0, 0.0, 0.0, flat=(0, 0, 0)))
    with_it = smooth([_est(1.0, 0.5), flat, _est(1.0, 0.5)], Temporal(window=2.0))
    assert float(with_it[0].mean()) == pytest.approx(1.0) and float(with_it[2].mean()) == pytest.approx(1.0)
    assert float(with_it[1].mean()) == 0.0  # its own correction, which is never applied
    # a cut given by hand on it starts the shot at the next frame
    smoother = Smoother(Temporal(window=2.0, cuts=(2,)))
    for e in (_est(1.0, 0.5), _est(1.0, 0.5), flat, _est(3.0, 0.5)):
        smoother.push(e)
    smoother.finish()
    assert smoother.starts == [0, 3]


def test_held_out_frames_count_in_time_in_the_causal_average_and_release_the_frames_they_complete():
    import dataclasses

    from phnet.corrections import Correction

    flat = dataclasses.replace(_est(0.0, 0.5), report=Correction(0.0, 0.0, 0.0, flat=(0, 0, 0)))
    for k, expected in ((0, 0.3775), (1, 0.2689), (3, 0.1192)):  # e^(-gap/2) of 1.0 against the new 0.0
        causal = smooth([_est(1.0, 0.5), *[flat] * k, _est(0.0, 0.5)], Temporal(window=2.0, causal=True))
        assert float(causal[-1].mean()) == pytest.approx(expected, abs=1e-4)
    smoother = Smoother(Temporal(window=1.0))  # radius 3
    released = [k for e in [_est(1.0, 0.5)] * 4 + [flat] * 5 for k, _ in smoother.push(e)]
    # frame k is final once frame k + 3 is in, held-out or not: not kept back until the next frame with a scene
    assert released == [0, 1, 4, 2, 5, 3, 6, 7, 8] and smoother.finish() == []


def test_numpy_s_false_is_no_clip(tiny_config):
    """np.False_ (a host's checkbox read through numpy) counted as a clip: mode='official' refused it."""
    h = _harmonizer(tiny_config, "transform")
    images, masks = _clip(frames=2)
    plain = h(images, masks, layout="BCHW", mode="official", temporal=False)
    torch.testing.assert_close(h(images, masks, layout="BCHW", mode="official", temporal=np.False_), plain)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_a_frame_whose_matte_left_a_level_of_1_is_read_on_the_clips_scale_not_as_a_binary_mask(tiny_model, kind):
    """Each uint8 mask of a clip was read on its own scale: a frame the subject had left, with a few pixels of
    level 1 left by the matte, was a 0/1 mask, its specks recoloured at full strength."""
    import torch

    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    rng = np.random.default_rng(0)
    frames = (rng.random((5, 48, 64, 3)) * 255).astype(np.uint8)
    masks = np.zeros((5, 48, 64), np.uint8)
    masks[:, 12:36, 20:44] = 255
    masks[3] = 0
    specks = rng.random((48, 64)) < 0.05
    gone = masks.copy()
    masks[3][specks] = 1  # the subject has left frame 3; its matte left specks of level 1
    as_given = (lambda a: torch.from_numpy(a)) if kind == "torch" else (lambda a: a)
    out = np.asarray(h.harmonize(as_given(frames), as_given(masks), temporal=2.0, threshold=0).image)
    clean = np.asarray(h.harmonize(as_given(frames), as_given(gone), temporal=2.0, threshold=0).image)
    assert np.abs(out[3].astype(int) - frames[3]).max() <= 1  # 1/255 of a change, not all of it
    assert np.abs(out.astype(int) - clean).max() <= 2


def test_a_clips_log_line_counts_frames(tiny_model, caplog):
    import logging

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    frames = (np.random.default_rng(0).random((3, 32, 40, 3)) * 255).astype(np.uint8)
    masks = np.zeros((3, 32, 40), np.float32)
    masks[:, 8:24, 12:28] = 1
    with caplog.at_level(logging.INFO, logger="phnet"):
        h.harmonize(frames, masks, temporal=1.0, threshold=0)
    assert "of 3 frames" in caplog.records[-1].getMessage()


def test_a_trace_frame_is_reported_as_a_trace_not_as_an_empty_mask(tiny_model):
    from phnet.corrections import summary

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    frames = (np.random.default_rng(0).random((4, 32, 40, 3)) * 255).astype(np.uint8)
    masks = np.zeros((4, 32, 40), np.uint8)
    masks[:, 8:24, 12:28] = 255
    masks[2] = 0
    masks[2, 5:10, 5:10] = 2  # a matte's trace: 2/255
    masks[3] = 0  # empty
    reports = h.harmonize(frames, masks, temporal=2.0, threshold=0).corrections
    assert "only a trace of a subject" in reports[2].describe() and reports[2].label() == \
        "unchanged: only a trace in the mask"
    assert "its mask is empty" in reports[3].describe()
    line = summary(reports, "frames")
    assert "1 with an empty mask" in line and "1 whose mask holds only a trace of a subject" in line


def test_an_integer_past_any_float_is_refused_with_the_settings_own_message():
    """math.isfinite() and float() of it raised OverflowError ('int too large to convert to float')."""
    huge = 2**2000
    for make, words in ((lambda: Temporal(window=huge), "temporal window must be"),
                        (lambda: Temporal(cut_threshold=huge), "cut_threshold must be"),
                        (lambda: Temporal(cuts=(huge,)), "cuts must be frame indices"),
                        (lambda: as_temporal(huge), "temporal window must be")):
        with pytest.raises(ValueError, match=words):
            make()


def test_a_signature_is_the_background_s_own_colour_and_a_change_of_it_is_in_levels_of_255():
    """A subject covering half of each cell leaves its cells' colour to the background: a subject that changes
    colour starts no new shot."""
    from phnet.temporal import background_change, signature

    image = torch.full((1, 3, 8, 8), 0.2)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, ::2] = 1  # every other column: half of every cell
    image[..., :, ::2] = 0.9
    torch.testing.assert_close(signature(image, mask), torch.full((1, 3, 4, 4), 0.2))
    assert background_change(_est(0.0, 0.2), _est(0.0, 0.2 + 10 / 255)) == pytest.approx(10.0)


@pytest.mark.parametrize("window", [0.01, 10_000])
def test_the_window_s_limits_are_taken_and_just_past_them_refused(window):
    assert Temporal(window=window).window == window
    with pytest.raises(ValueError, match="a number of frames from 0.01 to 10000"):
        Temporal(window=window * 1.5 if window > 1 else window / 2)


def test_the_default_window_and_cut_threshold_are_the_ones_the_docs_give():
    """docs/video-and-reference.md quotes them (cuts found at 20, a window of 3), and the hosts take them from here."""
    repo = Path(__file__).resolve().parents[2]
    docs = " ".join((repo / "docs" / "video-and-reference.md").read_text(encoding="utf-8").split())
    assert (Temporal().window, Temporal().cut_threshold, Temporal().causal) == (3.0, 20.0, False)
    assert "(0–255 units, default 20)" in docs and "for the default window of 3" in docs


def test_a_frame_estimate_names_the_working_size_picture_it_keeps():
    """``FrameEstimate.low`` was typed Any: what a frame keeps until it is applied is a prepared picture."""
    import typing

    from phnet.pipeline import LowResolution

    assert typing.get_type_hints(FrameEstimate)["low"] == typing.Optional[LowResolution]
    assert _est(1.0, 0.5).low is None
