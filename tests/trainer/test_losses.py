"""trainer.losses: each term's value on pictures whose answer is known, and how the objective weighs them."""
from __future__ import annotations

import pytest
import torch

from trainer.losses import HarmonizationLoss, fn_mse, masked_gradient_l1, masked_l1, psnr_loss


def _half_mask(shape=(1, 1, 4, 6)) -> torch.Tensor:
    mask = torch.zeros(shape)
    mask[..., :, : shape[-1] // 2] = 1
    return mask


def test_masked_l1_is_the_mean_absolute_error_inside_the_mask():
    real = torch.zeros(1, 3, 4, 6)
    mask = _half_mask()
    pred = real + 0.2 * mask + 0.5 * (1 - mask)  # the error outside the mask does not count
    assert float(masked_l1(pred, real, mask)) == pytest.approx(0.2)
    assert float(masked_l1(pred, real, mask * 0.5)) == pytest.approx(0.2)  # a soft mask weighs, it does not scale
    assert float(masked_l1(pred, real, torch.zeros_like(mask))) == 0.0  # an empty mask: 0, not NaN


def test_the_gradient_term_is_half_the_sum_of_the_mean_differences_along_each_axis():
    """A ramp along the width (6 columns: 5 differences, the last column 0) and one along the height (4 rows)."""
    real = torch.zeros(1, 3, 4, 6)
    ones = torch.ones(1, 1, 4, 6)
    across = torch.arange(6.0).expand(1, 3, 4, 6) * 0.01
    down = torch.arange(4.0)[:, None].expand(1, 3, 4, 6) * 0.01
    assert float(masked_gradient_l1(across, real, ones)) == pytest.approx(0.5 * 0.01 * 5 / 6)
    assert float(masked_gradient_l1(down, real, ones)) == pytest.approx(0.5 * 0.01 * 3 / 4)
    assert float(masked_gradient_l1(real, across, ones)) == pytest.approx(0.5 * 0.01 * 5 / 6)
    # the prediction is masked before the differences: a flat error inside the mask has only its edge
    flat = real + 0.3
    mask = _half_mask()
    assert float(masked_gradient_l1(flat, real, mask)) == pytest.approx(0.5 * 0.3 * 4 / 24)


def test_fn_mse_divides_by_the_area_once_it_is_over_the_minimum():
    real = torch.rand(2, 3, 16, 16)
    pred = real + 0.1
    mask = torch.ones(2, 1, 16, 16)
    assert float(fn_mse(pred, real, mask)) == pytest.approx(0.01, rel=1e-4)  # 256 px over the floor of 100
    assert float(fn_mse(pred, real, mask, min_area=512)) == pytest.approx(0.005, rel=1e-4)
    mask[1] = 0  # the batch mean of each sample's figure; an empty mask is divided by the floor
    assert float(fn_mse(pred, real, mask)) == pytest.approx((0.01 + 0.01 * 256 / 100) / 2, rel=1e-4)


def test_psnr_loss_takes_the_mse_over_the_whole_batch():
    real = torch.zeros(2, 3, 4, 4)
    pred = real.clone()
    pred[0] = 0.1 * 2 ** 0.5  # MSE 0.02 and 0 -> 0.01 over the batch, PSNR 20 dB
    assert float(psnr_loss(pred, real)) == pytest.approx(100 / 20.0, rel=1e-4)
    assert float(psnr_loss(real, real)) == pytest.approx(100 / 100.0, rel=1e-4)  # MSE floored at 1e-10: 100 dB


def test_the_objective_is_the_weighted_sum_of_every_term_it_names():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 8, 8)
    pred = (real + 0.05 * torch.randn_like(real)).clamp(0, 1)
    mask = _half_mask((2, 1, 8, 8))
    weights = {"psnr": 0.2, "fnmse": 0.03, "gradient": 0.5, "mse": 2.0, "l1": 3.0}
    loss = HarmonizationLoss(**weights, fnmse_min_area=10, fnmse_scale=255)
    total, parts = loss(pred.half(), real, mask)  # any precision is scored in float32
    expected = {"psnr": psnr_loss(pred.half().float(), real), "fnmse": fn_mse(pred.half().float(), real, mask, 10, 255),
                "gradient": masked_gradient_l1(pred.half().float(), real, mask),
                "mse": torch.mean((pred.half().float() - real) ** 2), "l1": masked_l1(pred.half().float(), real, mask)}
    assert set(parts) == set(weights)
    for k, v in expected.items():
        assert float(parts[k]) == pytest.approx(float(v), rel=1e-6), k
        assert not parts[k].requires_grad
    assert float(total) == pytest.approx(sum(weights[k] * float(v) for k, v in expected.items()), rel=1e-6)
    only_l1, parts = HarmonizationLoss.from_config({"psnr": 0, "fnmse": 0, "gradient": 0, "l1": 1})(pred, real, mask)
    assert set(parts) == {"l1"} and float(only_l1) == pytest.approx(float(masked_l1(pred, real, mask)))


def test_the_default_objective_is_the_default_config_s():
    """Both say the official HEAD objective: 0.2 PSNR + 0.01 FnMSE (floor 100 px, [0, 1] units) + 0.01 gradient."""
    from trainer.config import load_config

    plain, configured = HarmonizationLoss(), HarmonizationLoss.from_config(load_config(None)["loss"])
    assert plain.weights == configured.weights == {"psnr": 0.2, "fnmse": 0.01, "gradient": 0.01, "mse": 0.0,
                                                   "l1": 0.0}
    assert (plain.min_area, plain.fnmse_scale) == (configured.min_area, configured.fnmse_scale) == (100.0, 1.0)
