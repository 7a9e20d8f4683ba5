"""dtype "auto": bf16 only where the CPU has AMX, and bf16 results within 1/255 of fp32."""

import numpy as np
import pytest
import torch

from phnet import Harmonizer, PHNet, PHNetConfig
from phnet import precision
from phnet.precision import auto_dtype, cpu_has_fast_bf16, resolve_dtype

fast_bf16 = pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no AMX: bf16 would be emulated")


@pytest.mark.parametrize("amx, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_picks_bf16_only_with_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: amx)
    assert auto_dtype("cpu") == expected
    assert resolve_dtype("auto", "cpu") == resolve_dtype(None, "cpu") == expected


def test_named_dtypes_and_errors():
    assert resolve_dtype("fp32", "cpu") == resolve_dtype("float32", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    assert resolve_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="auto"):
        resolve_dtype("int8", "cpu")
    with pytest.raises(ValueError, match="unsupported"):
        resolve_dtype(torch.int8, "cpu")


def test_harmonizer_defaults_to_auto_and_decides_again_on_a_move(tiny_model, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    h = Harmonizer(tiny_model, device="cpu")
    assert h.requested_dtype == "auto" and h.dtype == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert h.to("cpu").dtype == torch.float32  # "auto" is re-decided for the (new) device
    assert h.to(dtype="bf16").dtype == torch.bfloat16 and h.to("cpu").dtype == torch.bfloat16


def _photo(size):
    rng = np.random.default_rng(0)
    low = rng.integers(20, 235, (size // 16, size // 16, 3)).astype(np.uint8)
    image = low.repeat(16, 0).repeat(16, 1) + rng.integers(0, 8, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size] / size
    mask = (((xx - 0.5) / 0.3) ** 2 + ((yy - 0.55) / 0.4) ** 2 <= 1).astype(np.uint8) * 255
    return image, mask


def _max_difference(model, size, working_size=None):
    image, mask = _photo(size)
    a = Harmonizer(model, device="cpu", dtype="fp32")(image, mask, working_size=working_size)
    b = Harmonizer(model, device="cpu", dtype="bf16")(image, mask, working_size=working_size)
    assert np.array_equal(a[mask == 0], b[mask == 0])
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@fast_bf16
def test_bf16_matches_fp32_on_the_bundled_weights():
    from phnet.weights import load_model

    model = load_model(None)
    assert _max_difference(model, model.config.image_size) <= 1


@fast_bf16
@pytest.mark.parametrize("preset", ["iharmony", "ffhqh"])
def test_bf16_matches_fp32_on_the_official_architectures(preset):
    # On this picture, random weights, seeds 0 and 1, at 256² and 512²: at most 1/255 (mean 0.02–0.09).
    torch.manual_seed(0)
    model = PHNet(PHNetConfig.preset(preset)).eval()
    assert _max_difference(model, 256, working_size=256) <= 1


@pytest.mark.parametrize("capability, training", [((9, 0), torch.bfloat16), ((8, 6), torch.bfloat16),
                                                  ((7, 5), torch.float16), ((6, 1), torch.float32)])
def test_one_policy_for_gpus_inference_fp32_training_native(monkeypatch, capability, training):
    from phnet.precision import needs_grad_scaling, training_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert auto_dtype("cuda") == torch.float32  # measured on an H200: bf16 gained nothing, moved the output 3/255
    assert training_dtype("cuda") == training
    assert needs_grad_scaling(training) == (training == torch.float16)


@pytest.mark.parametrize("capability, slow", [((9, 0), False), ((8, 0), False), ((7, 5), True), ((6, 1), True),
                                              ((6, 0), True)])
def test_bf16_asked_for_on_a_gpu_without_it_is_named_as_slow(monkeypatch, capability, slow):
    from phnet.precision import slow_on

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    reason = slow_on(torch.bfloat16, "cuda")
    assert (reason is not None) == slow
    if slow:
        assert reason.startswith(f"bf16 on Tesla T4 (compute capability {capability[0]}.{capability[1]})")
        wanted = "'fp32' or 'auto'" if capability == (6, 1) else "'fp16' or 'auto'"  # fp16 was sent to a GTX 10xx
        assert f"choose dtype {wanted}" in reason
    fp16 = slow_on(torch.float16, "cuda")  # on a GTX 10xx neither is fast: fp16 was not named, bf16 sent there
    assert (fp16 is None) == (capability != (6, 1))  # a P100 (6.0) runs fp16 at twice fp32's rate
    if fp16 is not None:
        assert fp16.startswith("fp16 on Tesla T4 (compute capability 6.1)") and "choose dtype 'fp32' or 'auto'" in fp16


@pytest.mark.parametrize("amx", [True, False])
def test_bf16_on_a_cpu_without_amx_and_fp16_on_any_cpu_are_named_as_slow(monkeypatch, amx):
    """bf16 emulated on a CPU without AMX ran 20-27x slower than fp32 without a word."""
    from phnet import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: amx)
    assert (precision.slow_on(torch.bfloat16, "cpu") is None) == amx
    if not amx:
        assert "no AMX bf16 units" in precision.slow_on(torch.bfloat16, "cpu")
    assert "fp16 on the CPU has no fast convolutions" in precision.slow_on(torch.float16, "cpu")
    assert precision.slow_on(torch.float32, "cpu") is None


@pytest.mark.parametrize("amx", [True, False])
def test_fp16_refused_on_an_old_torch_offers_bf16_only_where_it_is_fast(monkeypatch, amx):
    """Without AMX the refusal sent the user to bf16, which then ran emulated, many times slower than fp32."""
    from phnet import precision

    monkeypatch.setattr(precision, "cpu_autocast_takes_fp16", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: amx)
    with pytest.raises(ValueError, match="needs a newer torch") as refused:
        precision.resolve_dtype("fp16", "cpu")
    assert str(refused.value).endswith("choose bf16, fp32 or auto" if amx else "choose fp32 or auto")


@pytest.mark.parametrize("capability, slow", [((5, 3), False), ((6, 2), False), ((6, 0), False), ((5, 2), True),
                                              ((6, 1), True), ((4, 3), True), ((5, 4), True)])
def test_fp16_is_fast_on_the_jetsons_and_the_p100_before_tensor_cores(monkeypatch, capability, slow):
    """Jetson Nano / TX1 (5.3), TX2 (6.2) and P100 (6.0) run fp16 at twice fp32's rate; a GTX 10xx (6.1) or a
    Maxwell desktop card (5.2) does not."""
    from phnet.precision import slow_on

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert (slow_on(torch.float16, "cuda") is not None) == slow
