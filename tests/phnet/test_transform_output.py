"""The colour-transform output: identity at the start, exact at any size, the do-no-harm threshold."""

import dataclasses

import numpy as np
import pytest
import torch

from phnet import Harmonizer, PHNet, PHNetConfig
from phnet.modeling.inference import InferencePHNet
from phnet.modeling.transform import apply_colour_transform, correction_size, kept_fraction, subject_mean
from phnet.weights import load_model, save_pretrained


@pytest.fixture
def transform_model(tiny_config):
    torch.manual_seed(0)
    model = PHNet(dataclasses.replace(tiny_config, output="transform")).eval()
    torch.nn.init.normal_(model.decoder[5][0].weight, std=0.02)
    return model


def _pair(h=64, w=64, batch=2):
    torch.manual_seed(1)
    image = torch.rand(batch, 3, h, w)
    mask = torch.zeros(batch, 1, h, w)
    mask[..., h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    return image, mask


def test_untrained_transform_model_is_the_identity(tiny_config):
    model = PHNet(dataclasses.replace(tiny_config, output="transform")).eval()
    image, mask = _pair()
    assert torch.equal(model(image, mask), image)
    assert torch.equal(model.predict_transform(image, mask), torch.zeros(2, 12))


def test_forward_is_the_predicted_transform_applied(transform_model):
    image, mask = _pair()
    coefficients = transform_model.predict_transform(image, mask)
    assert coefficients.shape == (2, 12)
    expected = apply_colour_transform(image, coefficients).clamp(0, 1)
    torch.testing.assert_close(transform_model(image, mask), expected)


def test_colour_transform_formula():
    image = torch.rand(1, 3, 5, 7)
    coefficients = torch.randn(1, 12) * 0.1
    a, b = coefficients[0, :9].reshape(3, 3), coefficients[0, 9:]
    pixels = image[0].reshape(3, -1)
    expected = pixels + a @ (pixels - 0.5) + b[:, None]
    torch.testing.assert_close(apply_colour_transform(image, coefficients)[0].reshape(3, -1), expected)


def test_subject_mean_ignores_the_background():
    values = torch.zeros(1, 2, 4, 4)
    values[..., :2, :] = 3.0
    values[..., 2:, :] = 100.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    torch.testing.assert_close(subject_mean(values, mask), torch.full((1, 2), 3.0))


def test_threshold_is_a_soft_threshold_on_the_rms_change():
    mask = torch.ones(2, 1, 4, 4)
    change = torch.stack([torch.full((3, 4, 4), 2 / 255), torch.full((3, 4, 4), 10 / 255)])
    scale = kept_fraction(correction_size(change, mask), 4.0)
    torch.testing.assert_close(scale, torch.tensor([0.0, 0.6]))


def test_a_ramp_keeps_large_corrections_whole():
    sizes = torch.tensor([2.0, 4.0, 6.0, 8.0, 30.0])
    # firm: nothing up to the threshold, the applied size climbing to the whole correction at threshold + ramp
    firm = kept_fraction(sizes, 4.0, ramp=4.0)
    torch.testing.assert_close(firm * sizes, torch.tensor([0.0, 0.0, 4.0, 8.0, 30.0]))
    torch.testing.assert_close(kept_fraction(sizes, 4.0, ramp=0.0), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(kept_fraction(sizes, 4.0) * sizes, torch.tensor([0.0, 0.0, 2.0, 4.0, 26.0]))
    assert torch.equal(kept_fraction(sizes, 0.0, ramp=5.0, floor=0.3), torch.ones(5))  # threshold 0: the raw network
    # a floor: that share of the corrections below the threshold is still applied, the large ones stay whole
    torch.testing.assert_close(kept_fraction(sizes, 4.0, ramp=0.0, floor=0.25), torch.tensor([0.25, 0.25, 1, 1, 1.0]))


@torch.no_grad()
def test_the_config_ramp_reaches_the_output(transform_model):
    image, mask = _pair()
    _, size, _ = transform_model.estimate(image, mask)
    threshold = float(size[0]) * 0.5  # below the correction: soft shortens it, a ramp of 0 keeps it whole
    soft = PHNet(dataclasses.replace(transform_model.config, correction_threshold=threshold)).eval()
    firm = PHNet(dataclasses.replace(transform_model.config, correction_threshold=threshold, correction_ramp=0.0))
    soft.load_state_dict(transform_model.state_dict())
    firm.eval().load_state_dict(transform_model.state_dict())
    assert float(soft.estimate(image, mask)[2][0]) == pytest.approx(0.5, abs=1e-4)
    assert float(firm.estimate(image, mask)[2][0]) == 1.0
    torch.testing.assert_close(firm(image, mask), transform_model(image, mask))


def test_the_ramp_and_floor_are_stored_only_when_set():
    config = PHNetConfig.preset("small", correction_threshold=9.0)
    stored = config.to_dict()
    assert "correction_ramp" not in stored and "correction_floor" not in stored  # older readers load the file
    for ramped in (dataclasses.replace(config, correction_ramp=6.0, correction_floor=0.25),
                   dataclasses.replace(config, correction_ramp=0.0)):  # a hard cut is not "unset"
        assert PHNetConfig.from_json(ramped.to_json()) == ramped
    with pytest.raises(ValueError, match="correction_floor must be a share from 0 to 1"):
        dataclasses.replace(config, correction_floor=1.5)
    with pytest.raises(ValueError, match="'correction_ramp' must be a number or null"):
        PHNetConfig.from_dict({**config.to_dict(), "correction_ramp": "6"})
    with pytest.raises(ValueError, match="correction_ramp must be from 0 to 255"):
        dataclasses.replace(config, correction_ramp=-1.0)


def test_threshold_drops_small_corrections_and_shortens_large_ones(transform_model):
    image, mask = _pair()
    change = transform_model(image, mask) - image
    rms = float(255 * change.detach().pow(2).mean().sqrt())
    big = PHNet(dataclasses.replace(transform_model.config, correction_threshold=rms * 10)).eval()
    big.load_state_dict(transform_model.state_dict())
    assert torch.equal(big(image, mask), image)


def test_inference_form_matches(transform_model):
    image, mask = _pair()
    torch.testing.assert_close(InferencePHNet(transform_model).predict_transform(image, mask),
                               transform_model.predict_transform(image, mask), atol=1e-6, rtol=1e-5)


def test_harmonizer_applies_the_transform_at_full_resolution(transform_model):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    mask = np.zeros((90, 130), np.uint8)
    mask[20:70, 30:100] = 255
    out = Harmonizer(transform_model, dtype="fp32")(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert np.abs(out.astype(int) - image).max() > 0
    # the same coefficients as at the working size, applied to every full-size pixel
    h = Harmonizer(transform_model, dtype="fp32")
    from phnet.fullres import resize, working_shape

    full = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(mask)[None, None].float() / 255
    shape = working_shape(90, 130, transform_model.config.image_size)
    low, m_low = resize(full, shape).to(h.device), (resize(m, shape) >= 0.5).float().to(h.device)
    coefficients = h._net.predict_transform(low, m_low).cpu()  # on the model's device, whichever it is
    expected = apply_colour_transform(full, coefficients).clamp(0, 1)
    got = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255
    inside = m.expand_as(full) > 0
    assert (got[inside] - expected[inside]).abs().max() <= 0.5 / 255 + 1e-6


def test_config_round_trip_keeps_output_and_threshold(transform_model, tmp_path):
    model = PHNet(dataclasses.replace(transform_model.config, correction_threshold=2.5))
    model.load_state_dict(transform_model.state_dict())
    loaded = load_model(str(save_pretrained(model, tmp_path / "m")))
    assert loaded.config.output == "transform" and loaded.config.correction_threshold == 2.5
    image, mask = _pair()
    torch.testing.assert_close(loaded.eval()(image, mask), model.eval()(image, mask))


def test_a_threshold_is_a_range_and_holds_for_the_image_output_too():
    """The official mapping's change is the picture less the composite: its threshold, per call or in the
    config (a config.json beside official weights), is applied as any other output's."""
    from phnet import PHNet

    with pytest.raises(ValueError, match="correction_threshold"):
        PHNetConfig(output="residual", correction_threshold=-1.0)
    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), output="image",
                         correction_threshold=255.0)
    model = PHNet(config).eval()
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    with torch.no_grad():
        out, size, kept = model.estimate(x, m)
    assert float(kept) == 0 and torch.equal(out, x)


def test_gain_and_offset_is_the_same_map_in_any_pixel_range():
    from phnet.modeling.transform import gain_and_offset

    coefficients = torch.randn(1, 12) * 0.1
    image = torch.rand(1, 3, 4, 5)
    expected = apply_colour_transform(image, coefficients)[0].permute(1, 2, 0).reshape(-1, 3)
    for peak in (1.0, 255.0):
        gain, offset = gain_and_offset(coefficients[0], peak)
        rows = image[0].permute(1, 2, 0).reshape(-1, 3) * peak
        torch.testing.assert_close((rows @ gain + offset) / peak, expected)


def test_a_callers_autocast_leaves_the_full_resolution_map_in_fp32(transform_model):
    """A host running its graph under autocast: the network is ours to cast, the colour map at full size
    stays fp32 (it moved 8-bit results by up to 2 levels)."""
    rng = np.random.default_rng(0)
    image = rng.random((1, 90, 130, 3), dtype=np.float32)
    mask = np.zeros((1, 90, 130), np.float32)
    mask[:, 20:70, 30:100] = 1
    h = Harmonizer(transform_model, dtype="fp32")
    floats, masks = torch.from_numpy(image).permute(0, 3, 1, 2), torch.from_numpy(mask)[:, None]
    plain, plain_tensor = h(image, mask, layout="BHWC"), h.harmonize_tensor(floats, masks)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert np.array_equal(h(image, mask, layout="BHWC"), plain)
        assert torch.equal(h.harmonize_tensor(floats, masks), plain_tensor)


def test_a_ramp_under_one_level_is_still_a_ramp():
    """Only a ramp of 0 (or less) is a hard cut: half a level of ramp climbs from nothing to the whole correction."""
    sizes = torch.tensor([4.0, 4.25, 4.5, 5.0])
    torch.testing.assert_close(kept_fraction(sizes, 4.0, ramp=0.5) * sizes, torch.tensor([0.0, 2.25, 4.5, 5.0]))


def test_the_subject_mean_of_an_empty_subject_is_zero_not_nan():
    """An item whose mask is empty (the picture left as it was) gets zero coefficients, the identity."""
    values = torch.rand(2, 12, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[1, :, :2] = 1
    means = subject_mean(values, mask)
    assert torch.equal(means[0], torch.zeros(12))
    torch.testing.assert_close(means[1], values[1, :, :2].mean(dim=(1, 2)))
