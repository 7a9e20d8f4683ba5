"""Harmonizer: every input kind round-trips, the background is untouched, bad input is named."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer
from phnet.corrections import summary
from phnet.frames import estimate_frame
from phnet.fullres import working_shape
from tests.helpers.pictures import photo, subject_mask


def test_numpy_uint8_keeps_size_type_and_background(harmonizer):
    img, m = photo(70, 130), subject_mask(70, 130)
    out = harmonizer(img, (m * 255).astype(np.uint8))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[m == 0], img[m == 0])
    assert not np.array_equal(out[m == 1], img[m == 1])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_pil_modes(harmonizer, mode):
    base = Image.fromarray(photo(48, 40))
    img = base.convert(mode) if mode != "RGBA" else Image.fromarray(photo(48, 40, channels=4))
    m = Image.fromarray((subject_mask(48, 40) * 255).astype(np.uint8))
    out = harmonizer(img, m)
    assert isinstance(out, Image.Image) and out.size == img.size
    assert out.mode == ("RGBA" if mode == "RGBA" else "RGB")
    keep = subject_mask(48, 40) == 0
    ref = np.asarray(img.convert(out.mode))
    assert np.array_equal(np.asarray(out)[keep], ref[keep])
    if mode == "RGBA":  # alpha is carried through untouched
        assert np.array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


@pytest.mark.parametrize("mode", ["RGB", "P", "L"])
def test_a_pil_result_carries_its_inputs_rgb_colour_profile(harmonizer, tmp_path, mode):
    """The result's info had no ICC profile: saved as PNG, a Display P3 or Adobe RGB portrait lost its colours."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    profile = srgb if mode != "L" else srgb[:16] + b"GRAY" + srgb[20:]
    img = Image.fromarray(photo(48, 40)).convert(mode)
    img.info["icc_profile"] = profile
    m = Image.fromarray((subject_mask(48, 40) * 255).astype(np.uint8))
    out = harmonizer(img, m)
    assert out.info.get("icc_profile") == (profile if mode != "L" else None)  # a grey one does not describe RGB
    out.save(tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as saved:
        assert saved.info.get("icc_profile") == out.info.get("icc_profile")


def test_mask_as_pil_mode_1_and_rgba_alpha(harmonizer):
    img = Image.fromarray(photo(32, 48))
    m = Image.fromarray(subject_mask(32, 48) > 0).convert("1")
    a = harmonizer(img, m)
    rgba = Image.new("RGBA", (48, 32))
    rgba.putalpha(Image.fromarray((subject_mask(32, 48) * 255).astype(np.uint8)))
    b = harmonizer(img, rgba)
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_numpy_dtypes_round_trip(harmonizer, dtype):
    img = photo(40, 56).astype(np.float64) / 255
    if dtype == np.uint8:
        img = (img * 255).round().astype(dtype)
    elif dtype == np.uint16:
        img = (img * 65535).round().astype(dtype)
    else:
        img = img.astype(dtype)
    m = subject_mask(40, 56)
    out = harmonizer(img, m)
    assert out.dtype == img.dtype and out.shape == img.shape
    assert np.array_equal(out[m == 0], img[m == 0])


def test_grey_numpy_becomes_rgb(harmonizer):
    grey = photo(40, 40)[..., 0]
    out = harmonizer(grey, subject_mask(40, 40))
    assert out.shape == (40, 40, 3)
    keep = subject_mask(40, 40) == 0
    assert np.array_equal(out[keep], np.repeat(grey[..., None], 3, -1)[keep])


def test_grey_in_any_form_is_harmonized_as_its_rgb(harmonizer):
    """Grey pictures take the caller's pixels through a view: the same result as the RGB picture they show."""
    grey = photo(40, 56)[..., 1]
    m = subject_mask(40, 56)
    rgb = harmonizer(np.repeat(grey[..., None], 3, -1), m)
    assert np.array_equal(harmonizer(grey, m), rgb)
    assert np.array_equal(harmonizer(grey[..., None], m), rgb)
    assert np.array_equal(harmonizer(grey[None], m, layout="BHW")[0], rgb)
    assert np.array_equal(np.asarray(harmonizer(Image.fromarray(grey), m)), rgb)
    batch = torch.from_numpy(grey)[None, None].float() / 255  # B×1×H×W float
    out = harmonizer(batch, m)
    rgb_float = harmonizer(batch.expand(-1, 3, -1, -1).contiguous(), m)
    assert out.shape == (1, 3, 40, 56) and torch.equal(out, rgb_float)


def test_torch_layouts_and_batches(harmonizer):
    bhwc = torch.rand(3, 40, 64, 3)
    m = torch.from_numpy(subject_mask(40, 64))
    out = harmonizer(bhwc, m)  # one mask broadcasts over the batch
    assert out.shape == bhwc.shape and out.dtype == bhwc.dtype
    keep = (m == 0)[None, :, :, None].expand_as(bhwc)
    assert torch.equal(out[keep], bhwc[keep])
    bchw = bhwc.permute(0, 3, 1, 2).contiguous()
    out2 = harmonizer(bchw, m[None, None].expand(3, 1, -1, -1))
    torch.testing.assert_close(out2.permute(0, 2, 3, 1), out)
    chw = harmonizer(bchw[0], m)
    torch.testing.assert_close(chw, out2[0])


def test_explicit_layout_resolves_ambiguity(harmonizer):
    from phnet.imageio import image_to_tensor

    t = torch.rand(1, 3, 3, 3)  # pictures this small are refused, but only once their layout is known
    with pytest.raises(ValueError, match="layout"):
        harmonizer(t, torch.ones(3, 3))
    with pytest.raises(ValueError, match="the picture is 3×3 pixels: PHNet needs at least 8"):
        harmonizer(t, torch.eye(3), layout="BCHW")
    assert image_to_tensor(t, layout="BCHW")[0].shape == (1, 3, 3, 3)
    assert image_to_tensor(t, layout="BHWC")[0].shape == (1, 3, 3, 3)


def test_batched_results_equal_single_ones(harmonizer):
    imgs = torch.rand(2, 3, 48, 48)
    m = torch.from_numpy(subject_mask(48, 48))[None, None].expand(2, 1, -1, -1)
    both = harmonizer.harmonize_tensor(imgs, m)
    one = harmonizer.harmonize_tensor(imgs[1:], m[1:])
    torch.testing.assert_close(both[1:], one)


def test_soft_mask_blends_and_strength_scales(harmonizer):
    img = torch.rand(1, 3, 64, 64)
    m = torch.from_numpy(subject_mask(64, 64, soft=True))[None, None]
    full = harmonizer.harmonize_tensor(img, m)
    half = harmonizer.harmonize_tensor(img, m, strength=0.5)
    none = harmonizer.harmonize_tensor(img, m, strength=0.0)
    assert torch.equal(none, img)
    torch.testing.assert_close(half - img, (full - img) / 2, atol=1e-6, rtol=0)


def test_large_image_runs_at_working_resolution(harmonizer, monkeypatch):
    seen = []
    estimate = harmonizer._net.estimate
    monkeypatch.setattr(harmonizer._net, "estimate",
                        lambda x, m, *a, **k: seen.append(tuple(x.shape[-2:])) or estimate(x, m, *a, **k))
    img = np.zeros((1500, 2000, 3), np.uint8)
    out = harmonizer(img, subject_mask(1500, 2000))
    assert out.shape == img.shape and seen == [working_shape(1500, 2000, 64)]


def test_progress_is_reported_per_image(harmonizer):
    calls = []
    harmonizer.harmonize_tensor(torch.rand(3, 3, 32, 32), torch.ones(3, 1, 32, 32).tril(),
                                progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_low_precision_runs(tiny_model, dtype):
    h = Harmonizer(tiny_model, device="cpu", dtype=dtype)
    img = torch.rand(1, 3, 32, 32)
    m = torch.from_numpy(subject_mask(32, 32))[None, None]
    ref = Harmonizer(tiny_model, device="cpu", dtype="fp32").harmonize_tensor(img, m)
    assert (h.harmonize_tensor(img, m) - ref).abs().max() < 0.05


@pytest.mark.parametrize("mode", ["full", "official"])
def test_a_picture_of_a_batch_without_a_subject_stays_as_it_was(harmonizer, mode):
    """A detector that found nobody in one picture of a batch: that picture is left, the others are done."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    masks = np.zeros((3, 40, 56), np.float32)
    masks[0, 10:30, 15:40] = 1
    masks[2, 5:20, 5:30] = 1
    got = harmonizer.harmonize(images, masks, mode=mode, threshold=0)
    assert np.array_equal(got.image[1], images[1]) and got.corrections[1].empty_mask
    alone = harmonizer.harmonize(images[[0, 2]], masks[[0, 2]], mode=mode, threshold=0)
    assert np.array_equal(got.image[[0, 2]], alone.image) and not np.array_equal(got.image[0], images[0])
    assert "1 with an empty mask" in summary(got.corrections)
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    out = harmonizer.harmonize_tensor(floats, torch.from_numpy(masks)[:, None], mode=mode)
    assert torch.equal(out[1], floats[1])
    with pytest.raises(ValueError, match="is empty"):  # a single picture with no subject is a mistake
        harmonizer.harmonize(images[1], masks[1], mode=mode)


@pytest.mark.parametrize("graphs", [False, True])
def test_a_low_precision_call_that_gives_nan_is_run_again_in_fp32(tiny_model, caplog, graphs):
    """oneDNN's bf16 convolutions sometimes return NaN on maps 2 px wide (a 20000×8 picture): the subject came
    back black, or the report said "changed by RMS nan". A replayed CUDA graph runs no Python: the check is
    made on what the call gives back, with the batch's one read."""
    from phnet.graphs import GraphCache
    from tests.phnet.test_graphs import capture_like_a_graph

    h = Harmonizer(tiny_model, device="cpu", dtype="bf16")
    if graphs:
        h._graphs = GraphCache(h._estimate, capture=capture_like_a_graph)
    exact = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    network = h._net.estimate

    def broken_in_bf16(x, m, *args, **kwargs):
        out = network(x, m, *args, **kwargs)
        in_bf16 = torch.nn.functional.linear(torch.ones(1, 1), torch.ones(1, 1)).dtype == torch.bfloat16
        return tuple(t * float("nan") for t in out) if in_bf16 else out

    h._net.estimate = broken_in_bf16
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    mask = subject_mask(48, 40)
    got = h.harmonize(image, mask, threshold=0)
    assert np.isfinite(got.corrections[0].size) and "ran it again in fp32" in caplog.text
    want = exact.harmonize(image, mask, threshold=0)
    assert np.array_equal(got.image, want.image) and got.corrections == want.corrections


@pytest.mark.parametrize("cast", [torch.float16, torch.bfloat16, torch.float64])
def test_a_model_cast_to_another_precision_runs_in_the_harmonizers_own(tiny_config, cast):
    """A model cast with .half() failed on the first picture with torch's 'Input type (float) and bias type'."""
    import copy

    from phnet import PHNet

    torch.manual_seed(0)
    model = PHNet(tiny_config).eval()
    img, m = photo(32, 32), subject_mask(32, 32)
    expected = Harmonizer(copy.deepcopy(model).to(cast).float(), device="cpu", dtype="fp32")(img, m)  # its weights
    assert np.array_equal(Harmonizer(model.to(cast), device="cpu", dtype="fp32")(img, m), expected)


def test_fp32_stays_fp32_inside_a_callers_autocast(tiny_model):
    """A host program may run its whole graph under autocast: the fp32 network is not cast by it."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    img = torch.rand(1, 3, 32, 32)
    m = torch.from_numpy(subject_mask(32, 32))[None, None]
    ref = h.harmonize_tensor(img, m)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(h.harmonize_tensor(img, m), ref)
    # and the frame-by-frame steps a clip too long to hold runs through (the CLI's --temporal)
    pixels, mask = img[0].permute(1, 2, 0).contiguous(), m[0, 0]
    plain = estimate_frame(h, pixels, 1.0, mask, 1.0, 32, threshold=0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = estimate_frame(h, pixels, 1.0, mask, 1.0, 32, threshold=0.0)
    assert under.report == plain.report


@pytest.mark.parametrize(
    "image, mask, words",
    [
        (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32)), "empty"),
        (np.zeros((32, 32, 3), np.uint8), np.ones((32, 32)), "whole image"),
        (np.zeros((32, 32, 3), np.uint8), np.ones((16, 32)), "resize the mask"),
        (np.full((32, 32, 3), np.nan, np.float32), np.eye(32), "NaN"),
        (np.full((32, 32, 3), 200.0, np.float32), np.eye(32), "divide 0..255"),
        (np.zeros((32, 32, 2), np.uint8), np.eye(32), "channels"),
        (np.zeros((32, 32, 3), np.int64), np.eye(32), "dtype"),
        (np.zeros((1, 1, 3), np.uint8), np.ones((1, 1)), "at least 8 on each side"),
        (np.zeros((32, 32, 3), np.uint8), np.full((32, 32), 2.0), "0..1"),
        (np.zeros((32, 32, 3), np.uint8), np.full((32, 32), np.nan), "NaN"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.stack([np.eye(32)] * 3), "one per image"),
    ],
)
def test_bad_input_gets_one_clear_error(harmonizer, image, mask, words):
    with pytest.raises(ValueError, match=words):
        harmonizer(image, mask)


def test_bad_options(harmonizer):
    img, m = photo(32, 32), subject_mask(32, 32)
    with pytest.raises(ValueError, match="strength"):
        harmonizer(img, m, strength=2)
    with pytest.raises(ValueError, match="mode"):
        harmonizer(img, m, mode="fast")
    with pytest.raises(ValueError, match="multiple of 8"):
        harmonizer(img, m, working_size=100)
    with pytest.raises(ValueError, match="multiple of 8 from 16"):
        harmonizer(img, m, working_size=8)  # an 8x8 call leaves one pixel at the bottleneck: torch's error
    with pytest.raises(TypeError, match="PIL image"):
        harmonizer([[1, 2]], m)
    with pytest.raises(ValueError, match="16/32-bit"):
        harmonizer(Image.new("I;16", (32, 32)), m)
    with pytest.raises(ValueError, match="dtype"):
        Harmonizer(harmonizer.model, dtype="int8")


@pytest.mark.parametrize(
    "mask_shape, words",
    [((2, 32, 40), r"a channel axis \(masks\[:, None\]"), ((1, 1, 32, 40), r"one mask per image \(2"),
     ((2, 1, 16, 40), "resize the mask to the image")],
)
def test_harmonize_tensor_names_what_is_wrong_with_the_masks(harmonizer, mask_shape, words):
    with pytest.raises(ValueError, match=words):
        harmonizer.harmonize_tensor(torch.rand(2, 3, 32, 40), torch.ones(mask_shape))


def test_harmonize_reports_each_correction_and_the_threshold_override(tiny_model, caplog):
    import dataclasses
    import logging

    from phnet import PHNet

    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual", correction_threshold=255.0))
    residual.load_state_dict(tiny_model.state_dict())
    h = Harmonizer(residual, device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
    mask = subject_mask(40, 48)
    with caplog.at_level(logging.INFO, logger="phnet"):
        kept, corrections = h.harmonize(image, mask)
    assert np.array_equal(kept, image) and [c.kept for c in corrections] == [0.0, 0.0]
    assert all(c.threshold == 255 and c.size > 0 and c.unchanged for c in corrections)
    assert "do-no-harm threshold" in caplog.text and caplog.records[-1].levelname == "WARNING"
    raw, corrections = h.harmonize(image, mask, threshold=0)
    assert not np.array_equal(raw, image) and [c.kept for c in corrections] == [1.0, 1.0]
    assert "changed by RMS" in corrections[0].describe()
    half = h.harmonize(image, mask, threshold=corrections[0].size / 2).corrections[0]
    assert half.kept == pytest.approx(0.5, abs=1e-4) and "held back by the do-no-harm threshold" in half.describe()
    frames = h.harmonize(image, mask, temporal=True).corrections
    assert len(frames) == 2 and all(c.unchanged for c in frames)
    with pytest.raises(ValueError, match="threshold must be a number from 0 to 255"):
        h.harmonize(image, mask, threshold=-1)


def test_pictures_sharing_a_network_call_come_out_as_one_at_a_time(tiny_model):
    """network_batch: pictures of a batch go through the network together; each keeps its own threshold
    decision, its own correction report and its own progress step."""
    import dataclasses

    from phnet import PHNet

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 40, 56, 3), dtype=np.uint8)
    masks = np.stack([subject_mask(40, 56)] * 7)
    images[2] = 128  # a flat picture: a small correction, left alone under the threshold below
    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual"))
    residual.load_state_dict(tiny_model.state_dict())
    one = Harmonizer(residual, device="cpu", dtype="fp32", network_batch=1)
    sizes = [c.size for c in one.harmonize(images, masks, threshold=0).corrections]
    threshold = float(np.mean(sorted(sizes)[3:5]))  # between two sizes: no picture sits on it
    expected = one.harmonize(images, masks, threshold=threshold)
    assert 0 < sum(c.unchanged for c in expected.corrections) < 7
    for batch in (3, 7, 16):
        calls, steps = [], []
        shared = Harmonizer(residual, device="cpu", dtype="fp32", network_batch=batch)
        shared._estimate = lambda *a, _run=shared._estimate, **k: calls.append(a[0].shape[0]) or _run(*a, **k)
        got = shared.harmonize(images, masks, threshold=threshold, progress=lambda d, t: steps.append(d))
        assert calls == [min(batch, 7 - s) for s in range(0, 7, batch)]
        assert steps == list(range(1, 8))
        assert np.abs(got.image.astype(int) - expected.image.astype(int)).max() <= 1
        assert [c.unchanged for c in got.corrections] == [c.unchanged for c in expected.corrections]
        assert [c.size for c in got.corrections] == pytest.approx([c.size for c in expected.corrections], rel=1e-4)


def _residual_batch(tiny_model):
    """A residual tiny model, four pictures of one size and a threshold between their corrections: two are held
    back to the floor, two changed whole (the mix a batch of real pictures holds)."""
    import dataclasses

    from phnet import PHNet

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)
    images[1] = images[1] // 4 + 96  # a flatter picture: another correction
    images[3] = images[3] // 2 + 64
    masks = np.stack([subject_mask(40, 56), subject_mask(40, 56, soft=True)] * 2)
    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual"))
    residual.load_state_dict(tiny_model.state_dict())
    sizes = sorted(c.size for c in Harmonizer(residual, device="cpu", dtype="fp32")
                   .harmonize(images, masks, threshold=0).corrections)
    config = dataclasses.replace(residual.config, correction_threshold=float(np.mean(sizes[1:3])),
                                 correction_ramp=0.0, correction_floor=0.2)  # a fifth below it, all above
    model = PHNet(config)
    model.load_state_dict(residual.state_dict())
    return model.eval(), images, masks


@pytest.mark.parametrize("network_batch", [1, 8])
def test_a_picture_comes_out_of_a_batch_as_it_does_alone_in_any_place(tiny_model, network_batch):
    """Nothing of the other pictures of a call (its neighbours' corrections above or below the threshold, its
    place in the batch) reaches a picture's result or report: exactly so one picture a network call, to a
    convolution's rounding (one 8-bit level at most, the same threshold decision) where they share one."""
    model, images, masks = _residual_batch(tiny_model)
    alone = [Harmonizer(model, device="cpu", dtype="fp32").harmonize(images[i], masks[i]) for i in range(4)]
    assert sorted(a.corrections[0].kept for a in alone) == pytest.approx([0.2, 0.2, 1, 1])
    h = Harmonizer(model, device="cpu", dtype="fp32", network_batch=network_batch)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 2, 1, 3, 1, 0, 3]):
        batch = h.harmonize(images[order], masks[order])
        for place, i in enumerate(order):
            got, want = batch.corrections[place], alone[i].corrections[0]
            if network_batch == 1:
                assert np.array_equal(batch.image[place], alone[i].image) and got == want
            else:
                assert np.abs(batch.image[place].astype(int) - alone[i].image.astype(int)).max() <= 1
                assert got.kept == want.kept and got.size == pytest.approx(want.size, rel=1e-4)


def test_a_call_gives_what_a_fresh_harmonizer_gives_whatever_ran_before(tiny_model):
    """No state is left by calls on other sizes or kinds of picture, by a round trip through another precision,
    by a call stopped part way through its batch, or by the options' defaults spelled out."""
    import copy

    model, images, masks = _residual_batch(tiny_model)
    image, mask = images[0], masks[0]
    fresh = Harmonizer(copy.deepcopy(model), device="cpu", dtype="fp32").harmonize(image, mask)
    h = Harmonizer(model, device="cpu", dtype="fp32")
    h.harmonize(photo(64, 48), subject_mask(64, 48))
    h.harmonize(photo(30, 90).astype(np.float32) / 255, subject_mask(30, 90))
    h.harmonize(photo(40, 56).astype(np.uint16) * 257, subject_mask(40, 56))
    h.to("fp16").harmonize(image, mask)
    h.to("fp32")

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        h.harmonize(images, masks, progress=stop)
    for options in ({}, {"strength": 1.0, "threshold": model.config.correction_threshold}):
        got = h.harmonize(image, mask, **options)
        assert np.array_equal(got.image, fresh.image) and got.corrections == fresh.corrections
    frame = h.harmonize(image[None], mask[None], temporal=True)  # a clip of one frame: nothing to smooth
    assert np.array_equal(frame.image[0], fresh.image)
    assert frame.corrections[0].applied == pytest.approx(fresh.corrections[0].applied, abs=1e-6)


def test_a_picture_gives_the_same_result_in_every_form_it_comes_in(tiny_model):
    """PIL, numpy and torch, 8-bit, 16-bit (×257) and float, channels last or first: one picture, one result (to
    the last 8-bit level where its levels are finer) and one correction."""
    model, images, masks = _residual_batch(tiny_model)
    h = Harmonizer(model, device="cpu", dtype="fp32")
    image, mask = images[2], masks[2]
    want = h.harmonize(image, mask)
    t, m = torch.from_numpy(image), torch.from_numpy(mask)
    forms = [
        (Image.fromarray(image), Image.fromarray((mask * 255).round().astype(np.uint8)), np.asarray, 0),
        (t[None], m[None], lambda o: o[0].numpy(), 0),
        (image.astype(np.float32) / 255, mask, lambda o: o * 255, 1),
        (t.permute(2, 0, 1)[None].float() / 255, m[None, None], lambda o: o[0].permute(1, 2, 0).numpy() * 255, 1),
        (image.astype(np.uint16) * 257, (mask * 65535).round().astype(np.uint16), lambda o: o / 257, 1),
    ]
    for picture, its_mask, as_8_bit, levels in forms:
        got = h.harmonize(picture, its_mask)
        assert np.abs(np.round(as_8_bit(got.image)).astype(int) - want.image.astype(int)).max() <= levels
        assert got.corrections[0].size == pytest.approx(want.corrections[0].size, rel=1e-5)
        assert got.corrections[0].kept == pytest.approx(want.corrections[0].kept, rel=1e-5)


@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("options", [{}, {"temporal": True}, {"reference_mask": "left"}])
def test_the_callers_pictures_and_masks_are_never_written(harmonizer, kind, options):
    """A ComfyUI MASK is a cached node output: scaling it in place by the strength would dim it for every
    later node and run."""
    images = np.stack([photo(60, 90, seed) for seed in range(2)]).astype(np.float32) / 255
    masks = np.stack([subject_mask(60, 90, soft=True)] * 2) * 0.9  # a peak under 1 is scaled too
    if options.get("reference_mask") == "left":
        options = {"reference_mask": np.tile(np.linspace(1, 0, 90, dtype=np.float32), (2, 60, 1))}
    if kind == "torch":
        images, masks = torch.from_numpy(images), torch.from_numpy(masks)
        options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    given = [x for x in (images, masks, *options.values()) if not isinstance(x, bool)]
    copies = [x.copy() if isinstance(x, np.ndarray) else x.clone() for x in given]
    first = harmonizer(images, masks, strength=0.6, threshold=0, **options)
    for before, now in zip(copies, given):
        assert np.array_equal(np.asarray(before), np.asarray(now))
    again = harmonizer(images, masks, strength=0.6, threshold=0, **options)
    assert np.array_equal(np.asarray(first), np.asarray(again))


def test_a_check_stops_a_network_call_between_its_stages(harmonizer):
    """A host's Cancel (ComfyUI) reaches inside a call, not only between pictures."""
    img, m = photo(32, 40), subject_mask(32, 40)
    calls = []

    def cancel_at_the_third_stage():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("cancelled")

    with harmonizer.interruptible(cancel_at_the_third_stage), pytest.raises(KeyboardInterrupt, match="cancelled"):
        harmonizer(img, m)
    assert len(calls) == 3
    with harmonizer.interruptible(lambda: calls.append(1)):
        checked = harmonizer(img, m)
    assert len(calls) > 3 + 10  # every stage of the call
    assert np.array_equal(checked, harmonizer(img, m))  # and nothing else changes, inside the block or after it


def test_big_endian_arrays_are_read_as_their_values(harmonizer):
    """torch refuses a non-native byte order ("conversion between byte orders is not supported")."""
    img, m = (photo(32, 40).astype(np.uint16) * 257), subject_mask(32, 40)
    want = harmonizer(img, m)
    got = harmonizer(img.astype(">u2"), m.astype(">f4"))
    assert np.array_equal(got, want) and got.dtype.isnative


@pytest.mark.parametrize("output", ["image", "residual", "transform"])
def test_a_subject_with_almost_no_background_around_it_is_left_as_it_was(tiny_config, output):
    """Under 3 % of background the network's background statistics are noise (an untouched photo with a
    16 px strip of background came back changed by RMS 83): the subject stays, and the report says why,
    also at threshold 0, which asks for the raw correction and not for this."""
    import dataclasses

    from phnet import PHNet, corrections

    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output=output)).eval()
    h = Harmonizer(model, device="cpu", dtype="fp32")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    cramped, roomy = np.ones((200, 300), np.float32), np.ones((200, 300), np.float32)
    cramped[:, -6:] = 0  # 2 % background
    roomy[:, -30:] = 0  # 10 %
    for threshold in (None, 0):
        out, (report,) = h.harmonize(image, cramped, threshold=threshold)
        assert np.array_equal(out, image) and report.unchanged and report.background == pytest.approx(0.02, abs=0.01)
        assert "of the picture is background, too little to match the subject to (at least 3%)" in report.describe()
    out, (report,) = h.harmonize(image, roomy, threshold=0)
    assert report.background is None
    if output == "image":  # the others propose no change at initialisation
        assert not np.array_equal(out, image)
        _, reports = h.harmonize(np.stack([image, image]), np.stack([cramped, roomy]), threshold=0)
        line = corrections.report(reports, "threshold 0", None)
        assert "1 of 2 images changed" in line and "1 with under 3% background" in line
        assert "threshold 0 applies" not in line


def test_a_refused_move_leaves_the_harmonizer_as_it_was(tiny_model):
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image, mask = np.full((40, 56, 3), 120, np.uint8), np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    before = h(image, mask, threshold=0)
    with pytest.raises(ValueError, match="unknown dtype"):
        h.to(dtype="fp64")
    with pytest.raises(ValueError, match=r"^device 'cuda:7': .*; use c"):  # no GPU, or fewer than eight
        h.to("cuda:7")
    assert h.device == torch.device("cpu") and h.requested_dtype == "fp32"
    assert np.array_equal(h.to("cpu")(image, mask, threshold=0), before)


def test_a_cancel_check_stops_only_the_thread_that_opened_it(tiny_model):
    import threading

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image, mask = np.full((40, 56, 3), 120, np.uint8), np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    results = []

    def cancelled():
        raise InterruptedError("this thread's Cancel")

    with h.interruptible(cancelled):
        other = threading.Thread(target=lambda: results.append(h(image, mask)))
        other.start()
        other.join()
        with pytest.raises(InterruptedError):
            h(image, mask)
    assert len(results) == 1


def test_weights_loaded_into_the_model_afterwards_are_the_ones_used(tiny_config):
    from phnet import PHNet

    torch.manual_seed(0)
    first = PHNet(tiny_config).eval()
    torch.manual_seed(1)
    second = PHNet(tiny_config).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    h = Harmonizer(first, device="cpu", dtype="fp32")
    h(image, mask, threshold=0)
    h.model.load_state_dict(second.state_dict())
    fresh = Harmonizer(second, device="cpu", dtype="fp32")
    assert np.array_equal(h(image, mask, threshold=0), fresh(image, mask, threshold=0))


def test_a_model_put_in_place_is_the_one_used(tiny_config):
    """harmonizer.model = other kept running the old model's folded weights while its config was the new one's;
    weights changed under torch.inference_mode (as ComfyUI runs) keep no version count, and assigning the model
    again is how to say so."""
    from phnet import PHNet

    torch.manual_seed(1)
    second = PHNet(tiny_config).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    expected = Harmonizer(second, device="cpu", dtype="fp32")(image, mask, threshold=0)
    h = Harmonizer(PHNet(tiny_config), device="cpu", dtype="fp32")
    h(image, mask, threshold=0)
    h.model = second
    assert np.array_equal(h(image, mask, threshold=0), expected)
    with torch.inference_mode():
        h = Harmonizer(PHNet(tiny_config), device="cpu", dtype="fp32")
        h(image, mask, threshold=0)
        h.model.load_state_dict(second.state_dict())
        h.model = h.model
        assert np.array_equal(h(image, mask, threshold=0), expected)


def test_a_model_that_is_no_phnet_is_refused_and_the_one_there_stays(tiny_model):
    """A wrapped model (DDP's .module) raised a bare AttributeError, and the Harmonizer was broken after it."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    before = h(image, mask, threshold=0)

    class Wrapped(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    for other, hint in ((Wrapped(tiny_model), r"\(its .module is one: give that\)"), (None, "got NoneType")):
        with pytest.raises(ValueError, match=rf"model must be a phnet.PHNet, .*{hint}"):
            h.model = other
        assert np.array_equal(h(image, mask, threshold=0), before)


@pytest.mark.parametrize("cast", ["half", "double"])
def test_a_model_cast_in_place_is_taken_again(tiny_model, cast):
    """harmonizer.model.half() put new tensors in place, which the folded network did not see: the next call
    failed in torch ('Input type (float) and bias type (c10::Half) should be the same')."""
    import copy

    h = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    getattr(h.model, cast)()
    cast_back = Harmonizer(getattr(copy.deepcopy(tiny_model), cast)(), device="cpu", dtype="fp32")
    assert np.array_equal(h(image, mask, threshold=0), cast_back(image, mask, threshold=0))


def test_a_model_cast_in_place_is_taken_again_in_official_mode_and_by_a_move(tiny_model):
    """Mode "official" runs the model itself, and .to() recorded the half weights as taken: both failed in torch
    ('Input type (float) and bias type (c10::Half) should be the same')."""
    import copy

    h = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    cast_back = Harmonizer(copy.deepcopy(tiny_model).half(), device="cpu", dtype="fp32")
    h.model.half()
    assert np.array_equal(h(image, mask, threshold=0, mode="official"),
                          cast_back(image, mask, threshold=0, mode="official"))
    h.model.half()
    img, m = torch.rand(1, 3, 32, 32), torch.from_numpy(subject_mask(32, 32))[None, None]
    assert torch.equal(h.harmonize_tensor(img, m, mode="official"), cast_back.harmonize_tensor(img, m, mode="official"))
    h.model.half()
    h.to("cpu")
    assert next(h.model.parameters()).dtype == torch.float32
    assert np.array_equal(h(image, mask, threshold=0), cast_back(image, mask, threshold=0))


def test_a_model_switched_to_training_runs_in_eval_mode_and_keeps_its_statistics(tiny_model):
    """Mode "official" ran the model as the caller left it: after .train() its batch norm used the picture's
    statistics and rewrote its running ones."""
    import copy

    h = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    before = {mode: h.harmonize(image, mask, threshold=0, mode=mode) for mode in ("official", "full")}
    statistics = {k: v.clone() for k, v in h.model.state_dict().items()}
    h.model.train()
    for mode in ("official", "full"):
        got = h.harmonize(image, mask, threshold=0, mode=mode)
        assert np.array_equal(got.image, before[mode].image) and got.corrections == before[mode].corrections
    assert all(torch.equal(v, statistics[k]) for k, v in h.model.state_dict().items())


def test_read_only_inputs_raise_no_warning(tiny_model):
    """np.asarray of a PIL image is read-only: torch warns about such arrays unless told they are only read."""
    import warnings

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image = np.full((40, 56, 3), 120, np.uint8)
    mask = np.pad(np.ones((20, 20), np.uint8) * 255, ((10, 10), (18, 18)))
    image.flags.writeable = mask.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h(image, mask)
        h(image, mask, reference_mask=np.asarray(mask)[::-1])  # the slow path's masks, too


@pytest.mark.filterwarnings("default:the host's own notice:UserWarning")  # Python's own filter, as in a host
def test_the_hosts_once_only_warnings_stay_once_only_over_calls_on_read_only_arrays(tiny_model):
    """Every call on a read-only array swapped the warning filters to hide torch's warning, and leaving that block
    reset Python's record of the warnings already shown: a host's once-only warning came back after every call."""
    import warnings

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    image = np.full((40, 56, 3), 120, np.uint8)
    mask = np.pad(np.ones((20, 20), np.uint8) * 255, ((10, 10), (18, 18)))
    image.flags.writeable = mask.flags.writeable = False
    h(image, mask)  # torch's own warning, once per process, is behind us

    def host_step():
        warnings.warn("the host's own notice", UserWarning)

    shown = []
    keep_showing = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        for _ in range(3):
            host_step()
            h(image, mask)
    finally:
        warnings.showwarning = keep_showing
    assert shown == ["the host's own notice"]


def test_a_model_made_under_inference_mode_runs(tiny_config):
    """ComfyUI runs every node under torch.inference_mode, so its loader makes inference tensors, which keep
    no version count (reading it raised 'Inference tensors do not track version counter')."""
    from phnet import PHNet

    with torch.inference_mode():
        torch.manual_seed(0)
        h = Harmonizer(PHNet(tiny_config).eval(), device="cpu", dtype="fp32")
        image = np.full((40, 56, 3), 120, np.uint8)
        h(image, np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18))))


@pytest.mark.parametrize("mode, method", [("official", "correction"), ("full", "resize"), ("full", "guided")])
def test_a_result_that_went_through_the_working_size_reports_the_change_measured_in_it(tiny_model, mode, method):
    """The official square pipeline and method "resize" lose the subject's fine detail (and the official one the
    background's): the network's correction alone said 1.4 where the file differed by 6.3."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32", method=method)
    image, mask = photo(96, 72, seed=3), subject_mask(96, 72)
    out, (correction,) = h.harmonize(image, mask, mode=mode, working_size=32)
    diff = out.astype(float) - image.astype(float)
    inside = mask > 0
    subject, background = (np.sqrt((diff[where] ** 2).mean()) for where in (inside, ~inside))
    assert correction.resampled == pytest.approx((subject, background), rel=1e-6)
    assert subject > correction.applied + 1  # a noisy photo loses far more detail than the correction is
    assert (background > 1) == (mode == "official")
    assert f"the subject differs by RMS {subject:.1f}" in correction.describe()
    _, (unmeasured,) = h.harmonize(image, mask, mode=mode, working_size=32, measure=False)  # as a call does
    assert unmeasured.resampled is None and unmeasured.size == correction.size


def test_the_default_method_reports_no_resampling(harmonizer):
    _, (correction,) = harmonizer.harmonize(photo(96, 72), subject_mask(96, 72), working_size=32)
    assert correction.resampled is None


@pytest.mark.parametrize("mode", ["full", "official"])
def test_harmonize_tensor_gives_back_a_tensor_the_caller_can_use_as_any_other(harmonizer, mode):
    """It came back an inference tensor: an in-place change or autograd on it raised."""
    img = torch.rand(1, 3, 40, 48)
    m = torch.from_numpy(subject_mask(40, 48))[None, None]
    out = harmonizer.harmonize_tensor(img, m, mode=mode)
    assert not out.is_inference()
    out.mul_(0.5)
    (out * torch.ones(1, requires_grad=True)).sum().backward()


@pytest.mark.parametrize("method", ["guided", "resize"])
def test_a_correction_of_exactly_0_leaves_the_subject_as_it_was_whatever_the_method(tiny_model, method):
    """Guided and resize re-made the subject from its own low-resolution picture: up to 28 levels of change for
    a correction reported as 0."""
    import dataclasses

    from phnet import PHNet

    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual"))
    residual.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        for p in residual.decoder[5].parameters():
            p.zero_()  # a head that proposes no change at all
    h = Harmonizer(residual, device="cpu", dtype="fp32", method=method)
    image = photo(48, 40, seed=2)
    out, (correction,) = h.harmonize(image, subject_mask(48, 40), threshold=0)
    assert correction.size == 0 and np.array_equal(out, image)


def test_the_report_of_a_faint_mask_is_the_change_it_let_through(harmonizer):
    """A mask of 0.3 is read as the subject's region but blends in 0.3 of the change: the report said the
    whole correction was applied, over three times what the picture shows."""
    from phnet.metrics import rms_change

    img, m = photo(64, 96), subject_mask(64, 96)
    applied, measured = [], []
    for level in (1.0, 0.3):
        result = harmonizer.harmonize(img, m * level, threshold=0)
        (report,) = result.corrections
        applied.append(report.applied)
        measured.append(rms_change(torch.from_numpy(img), torch.from_numpy(result.image), torch.from_numpy(m),
                                   peak=255.0)[0])
        assert report.weight == pytest.approx(level)
        assert ("through a faint mask (weight 0.30)" in report.describe()) == (level < 1)
    assert applied[1] / applied[0] == pytest.approx(measured[1] / measured[0], rel=0.05)


def test_strength_0_reports_what_strength_1_would_apply_through_a_faint_mask(harmonizer):
    img = photo(64, 96)
    mask = subject_mask(64, 96) * 0.3
    at_0, at_1 = (harmonizer.harmonize(img, mask, strength=s, threshold=0.0).corrections[0] for s in (0.0, 1.0))
    assert at_0.weight == pytest.approx(at_1.weight) and at_1.weight < 0.5  # it was 1 at strength 0


def test_the_report_says_what_the_pixels_show_when_a_correction_pushes_past_255(tiny_config):
    """Measured before the clip to 0..255, a saturated subject was reported changed by up to 1.8 times what its
    pixels show."""
    import dataclasses

    from phnet import PHNet
    from phnet.metrics import rms_change

    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output="residual")).eval()
    with torch.no_grad():  # a residual model starts at no change: some of one
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    harmonizer = Harmonizer(model, device="cpu", dtype="fp32")
    img, m = photo(64, 96), subject_mask(64, 96)
    img[m == 1] = (np.random.default_rng(1).random((int(m.sum()), 3)) < 0.5) * 255  # 0 or 255: any change clips
    result = harmonizer.harmonize(img, m, threshold=0)
    (report,) = result.corrections
    shown = rms_change(torch.from_numpy(img), torch.from_numpy(result.image), torch.from_numpy(m), peak=255.0)[0]
    assert report.applied == pytest.approx(shown) and report.applied < 0.9 * report.size
    assert f"changed by RMS {shown:.1f} of 255" in report.describe()


def test_harmonize_tensor_refuses_a_picture_under_8_pixels_a_side_as_every_input_is(harmonizer):
    """A 94×1 strip went through harmonize_tensor: an untouched one came back changed by up to RMS 70."""
    strip = torch.rand(1, 3, 94, 1)
    with pytest.raises(ValueError, match="the picture is 1×94 pixels: PHNet needs at least 8 on each side"):
        harmonizer.harmonize_tensor(strip, torch.ones(1, 1, 94, 1))


def test_harmonize_tensor_names_a_sparse_tensor_and_a_flag_that_is_no_flag(harmonizer):
    """A sparse tensor ended in torch's 'aminmax ... SparseCPU backend'; mask_is_alpha="no" ran as True."""
    images, masks = torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"images: a sparse tensor .*; pass images.to_dense\(\)"):
        harmonizer.harmonize_tensor(images.to_sparse(), masks)
    with pytest.raises(ValueError, match=r"masks: a sparse tensor .*; pass masks.to_dense\(\)"):
        harmonizer.harmonize_tensor(images, masks.to_sparse())
    with pytest.raises(ValueError, match="mask_is_alpha must be True or False, got 'no'"):
        harmonizer.harmonize_tensor(images, masks, mask_is_alpha="no")
    with pytest.raises(ValueError, match="mask_is_alpha must be True or False, got 'no'"):
        harmonizer.harmonize(images.permute(0, 2, 3, 1), masks[:, 0], mask_is_alpha="no")


@pytest.mark.parametrize("which", ["image", "mask", "reference_mask"])
def test_a_tensor_on_the_meta_device_is_named(harmonizer, which):
    pictures = {"image": torch.rand(1, 64, 64, 3), "mask": torch.from_numpy(subject_mask(64, 64))[None],
                "reference_mask": None}
    if which == "reference_mask":
        pictures["reference_mask"] = torch.ones(1, 64, 64)
    pictures[which] = pictures[which].to("meta")
    with pytest.raises(ValueError, match=f"the {which.replace('_', ' ')} is on the meta device: the meta device "
                                         "holds no data"):
        harmonizer.harmonize(pictures["image"], pictures["mask"], reference_mask=pictures["reference_mask"])


def test_a_thin_subject_of_a_large_picture_is_measured_in_its_own_box(tiny_config):
    """Read on a grid over the picture, a subject 7 px wide in 4096 was never sampled: 'changed by RMS 0.0'."""
    import dataclasses

    from phnet import PHNet

    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output="residual")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    harmonizer = Harmonizer(model, device="cpu", dtype="fp32")
    img = photo(2048, 2048)
    m = np.zeros((2048, 2048), np.float32)
    m[200:1800, 1001:1004] = 1
    (report,) = harmonizer.harmonize(img, m, threshold=0).corrections
    assert report.shown > 0.5 and "changed by RMS 0.0" not in report.describe()


def test_a_call_without_a_report_logs_the_figure_through_the_mask_as_a_report_does(tiny_model, caplog):
    """harmonizer(image, mask) logged the full correction for a faint mask; harmonize() its share (weight 0.30)."""
    import logging

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    img, faint = photo(64, 96), subject_mask(64, 96) * 0.3
    with caplog.at_level(logging.INFO, logger="phnet"):
        h(img, faint, threshold=0)
        h.harmonize(img, faint, threshold=0)
    called, reported = [r.getMessage() for r in caplog.records if r.getMessage().startswith("PHNet:")]
    assert "through a faint mask (weight 0.30)" in called and "through a faint mask (weight 0.30)" in reported


def test_a_converted_input_reports_the_change_in_the_pixels_it_gets_back(tiny_model):
    """A palette (or EXIF-rotated) PIL picture went through the converting path, whose report measured the float
    result before it was rounded to 8 bits: 'changed by RMS 0.1' where no pixel had changed."""
    import dataclasses

    from phnet import PHNet

    residual = PHNet(dataclasses.replace(tiny_model.config, output="residual", correction_threshold=4.0))
    residual.load_state_dict(tiny_model.state_dict())
    h = Harmonizer(residual, device="cpu", dtype="fp32")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P")
    plain = np.asarray(palette.convert("RGB"))
    mask = subject_mask(40, 48)
    for options in ({"strength": 1.0}, {"strength": 0.2}, {"strength": 1.0, "threshold": 4.8},
                    {"strength": 0.5, "temporal": True}):
        (converted,), (plain_report,) = h.harmonize(palette, mask, **options)[1], h.harmonize(plain, mask, **options)[1]
        assert converted.applied == pytest.approx(plain_report.applied, abs=1e-6), options
        assert converted.describe() == plain_report.describe(), options


def test_a_faint_mask_in_a_batch_guided_by_a_reference_is_a_faint_subject_as_without_one(tiny_model):
    """The reference sent the batch down the clip path, whose trace rule left a 0.01 mask unchanged, 'left out of
    the smoothing' that was never asked for."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    images, masks = np.stack([image, image]), np.stack([mask, mask * 0.01])
    for reference in (None, 1.0 - mask):
        _, corrections = h.harmonize(images, masks, threshold=0, reference_mask=reference)
        assert not corrections[1].trace and "smoothing" not in corrections[1].describe()


def test_harmonize_tensor_says_what_it_left_unchanged(tiny_model, caplog):
    """Every call logs a line, a warning when a subject was left unchanged: this one logged nothing."""
    import logging

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    images = torch.zeros(1, 3, 40, 56)  # one flat colour around the subject: left unchanged
    images[..., 10:30, 18:38] = 0.8
    masks = torch.zeros(1, 1, 40, 56)
    masks[..., 10:30, 18:38] = 1
    with caplog.at_level(logging.INFO, logger="phnet"):
        h.harmonize_tensor(images, masks)
    assert any(r.levelno == logging.WARNING and "unchanged" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("which", ["images", "masks"])
def test_harmonize_tensor_refuses_a_16_bit_tensor_with_the_fix(tiny_model, which):
    """A uint16 image or mask ended in torch's NotImplementedError ("aminmax_cpu" not implemented for 'UInt16')."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    images = torch.rand(1, 3, 40, 56)
    masks = torch.zeros(1, 1, 40, 56)
    masks[..., 10:30, 18:38] = 1
    deep = {"images": images, "masks": masks}[which].mul(65535).to(torch.int32).to(torch.uint16)
    pair = (deep, masks) if which == "images" else (images, deep)
    with pytest.raises(ValueError, match=rf"harmonize_tensor takes float {which} .*got torch.uint16: divide them by "
                                         rf"65535 \({which}.float\(\) / 65535\) or call harmonizer\(image, mask\)"):
        h.harmonize_tensor(*pair)
    out = h(*pair)  # as the fix says: read as they are
    assert out.shape == images.shape and out.dtype == (torch.uint16 if which == "images" else torch.float32)
    with pytest.raises(ValueError, match="got torch.int32: convert them to float in 0..1"):
        h.harmonize_tensor(images.to(torch.int32), masks)
    assert h.harmonize_tensor(images, masks.to(torch.int64)).shape == images.shape  # 0/1 integer masks, as before


@pytest.mark.parametrize("output, method, mode, unused", [
    ("image", "correction", "full", False), ("image", "guided", "full", False), ("image", "resize", "full", True),
    ("image", "correction", "official", True), ("transform", "correction", "full", True)])
def test_mask_is_alpha_that_changes_nothing_says_so(tiny_config, caplog, output, method, mode, unused):
    """A colour-transform model, method resize and the official pipeline carry no change up to a soft edge:
    mask_is_alpha gave the same pixels as without it, in silence."""
    import dataclasses

    from phnet import PHNet
    from phnet.corrections import MATTE_UNUSED

    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output=output)).eval()
    harmonizer = Harmonizer(model, device="cpu", dtype="fp32", method=method)
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    (report,) = harmonizer.harmonize(image, mask, mode=mode, threshold=0.0, mask_is_alpha=True).corrections
    assert (MATTE_UNUSED in report.notes) == unused
    (report,) = harmonizer.harmonize(image, mask, mode=mode, threshold=0.0).corrections
    assert MATTE_UNUSED not in report.notes
    caplog.clear()
    with caplog.at_level("INFO", logger="phnet"):
        harmonizer.harmonize_tensor(torch.from_numpy(image).permute(2, 0, 1)[None] / 255.0,
                                    torch.from_numpy(mask)[None, None] / 255.0, mode=mode, mask_is_alpha=True)
    assert (MATTE_UNUSED in caplog.text) == unused


@pytest.mark.parametrize("precision", [torch.float32, "fp32", "float32", "auto"])
def test_to_takes_a_precision_alone_as_torch_modules_do(tiny_model, precision):
    """h.to(torch.float32), as nn.Module.to reads it, was refused as "device 'torch.float32': not a device name"."""
    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    assert h.to(precision) is h
    assert h.device == torch.device("cpu") and h.requested_dtype == precision
    with pytest.raises(ValueError, match="unknown dtype|unsupported dtype"):
        h.to(torch.float64)
    assert h.requested_dtype == precision


def test_every_option_of_a_harmonizer_and_of_a_call_is_described_in_its_docstring():
    """help(Harmonizer.harmonize) described 4 of its 12 options; the class's docstring left out ``method``."""
    import inspect

    for function, doc in ((Harmonizer.__init__, Harmonizer.__doc__),
                          (Harmonizer.harmonize, Harmonizer.harmonize.__doc__)):
        options = [name for name in inspect.signature(function).parameters if name != "self"]
        assert [name for name in options if f"``{name}``" not in doc and f"``{name}=" not in doc] == []


def test_a_file_path_for_a_picture_is_refused_naming_the_function_that_reads_it(harmonizer, tmp_path):
    """A path gave "unsupported image type str", as a list does, with nothing to say that files are read first."""
    from pathlib import Path

    img, m = photo(40, 56), (subject_mask(40, 56) * 255).astype(np.uint8)
    with pytest.raises(TypeError, match=re.escape("not pixels: read it with phnet.imageio.read_image(path)")):
        harmonizer(str(tmp_path / "composite.png"), m)
    with pytest.raises(TypeError, match=re.escape("phnet.imageio.read_mask(path)")):
        harmonizer(img, Path(tmp_path / "mask.png"))
    with pytest.raises(TypeError, match=re.escape("phnet.imageio.read_mask(path)")):
        harmonizer(img, m, reference_mask=str(tmp_path / "lit.png"))
    with pytest.raises(TypeError, match="unsupported image type list"):
        harmonizer([[1, 2]], m)


def _in_time(work, seconds=30):
    """``work()``'s result, run in a thread of its own: a call or move that waits for ever fails the test instead of
    hanging the run."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed back to the test's thread as it was raised
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.mark.parametrize("change", ["model", "dtype"])
def test_a_change_from_another_thread_waits_for_the_call_running(tiny_config, change):
    """Another thread's .to(dtype=...) or model put in place took effect in the middle of a clip: its later frames
    ran on the new setting, and the result was neither setting's (27 of 30 such calls)."""
    import threading

    from phnet import PHNet

    torch.manual_seed(0)
    first = PHNet(tiny_config).eval()
    torch.manual_seed(1)
    second = PHNet(tiny_config).eval()
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)
    masks = np.pad(np.ones((4, 20, 20), np.float32), ((0, 0), (10, 10), (18, 18)))
    h = Harmonizer(first, device="cpu", dtype="fp32")
    expected = h(clip, masks, temporal=True, threshold=0)
    changed = threading.Event()

    def move():
        if change == "model":
            h.model = second
        else:
            h.to(dtype="bf16")
        changed.set()

    mover = threading.Thread(target=move, daemon=True)

    def progress(done, total):
        if done == 1:  # the first frame estimated: the change is asked for now, and given time to land
            mover.start()
            changed.wait(1)

    out = h(clip, masks, temporal=True, threshold=0, progress=progress)
    mover.join(30)
    assert not mover.is_alive(), "the change still waits after the call returned"
    assert np.array_equal(out, expected)
    assert h.model is second if change == "model" else h.dtype == torch.bfloat16


def test_a_move_from_within_a_call_of_the_same_harmonizer_is_refused(harmonizer):
    """It would wait for the call it is made in."""
    image, mask = np.full((40, 56, 3), 120, np.uint8), np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))

    def progress(done, total):
        harmonizer.to("cpu")

    with pytest.raises(RuntimeError, match="after the call returns"):
        _in_time(lambda: harmonizer(image, mask, progress=progress))

    def within_a_block():
        with harmonizer.interruptible(lambda: None):
            harmonizer.model = harmonizer.model

    with pytest.raises(RuntimeError, match="after the call returns"):
        _in_time(within_a_block)
    _in_time(lambda: harmonizer.to("cpu"))  # and after it, it goes through
    assert harmonizer(image, mask).shape == image.shape


def test_a_harmonizer_pickles_and_copies_with_a_record_of_calls_of_its_own(harmonizer):
    import copy
    import pickle

    image, mask = np.full((40, 56, 3), 120, np.uint8), np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    for twin in (copy.deepcopy(harmonizer), pickle.loads(pickle.dumps(harmonizer))):
        assert twin._calls is not harmonizer._calls
        assert np.array_equal(twin.to("cpu")(image, mask), harmonizer(image, mask))


def test_a_pickled_harmonizer_holds_its_model_s_weights_once(harmonizer):
    """The inference network folds some of the model's weights into new ones: a pickle that kept it held them
    twice, though the copy makes its own network from the model."""
    import pickle

    assert len(pickle.dumps(harmonizer)) < len(pickle.dumps(harmonizer.model)) + 4096


def test_a_move_cut_short_while_it_waits_for_a_call_holds_no_call_off(harmonizer, monkeypatch):
    """Ctrl-C while .to() waited for another thread's call left the Harmonizer marked as changing: every later
    call then waited for ever."""
    import threading

    image, mask = np.full((40, 56, 3), 120, np.uint8), np.pad(np.ones((20, 20), np.float32), ((10, 10), (18, 18)))
    inside, release = threading.Event(), threading.Event()

    def progress(done, total):
        inside.set()
        release.wait(10)

    worker = threading.Thread(target=lambda: harmonizer(image, mask, progress=progress))
    worker.start()
    assert inside.wait(10)

    def interrupted(*_):  # the user's Ctrl-C arrives while it waits
        raise KeyboardInterrupt

    monkeypatch.setattr(harmonizer._calls._cond, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harmonizer.to("cpu")
    monkeypatch.undo()
    release.set()
    worker.join(10)
    done = []
    later = threading.Thread(target=lambda: done.append(harmonizer(image, mask)), daemon=True)
    later.start()
    later.join(10)
    assert len(done) == 1 and _in_time(lambda: harmonizer.to("cpu")) is harmonizer


def test_an_interruptible_block_left_by_another_thread_is_counted_off_for_the_thread_that_opened_it(harmonizer):
    """A block held in a generator that a pool of threads resumes is left by another thread: that thread's count
    went back, and the opening thread's stayed open, so it could never move the Harmonizer again and its calls no
    longer waited for another thread's change."""
    import threading

    def held():
        with harmonizer.interruptible(lambda: None):
            yield

    def opened_here_left_there():  # (in a thread of its own: a move that waited for ever would hang the run)
        block = held()
        next(block)
        resumer = threading.Thread(target=lambda: next(block, None))
        resumer.start()
        resumer.join(10)
        return harmonizer.to("cpu")

    assert _in_time(opened_here_left_there) is harmonizer
    assert not harmonizer._calls._running
