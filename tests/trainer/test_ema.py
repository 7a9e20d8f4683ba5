"""trainer.ema: torch's EMA of the weights, step for step, without reading the device back."""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from phnet import PHNet, PHNetConfig
from tests.helpers.host_reads import HostReads
from trainer.ema import WeightAverage


def trained_copies(steps: int):
    """A small PHNet (BatchNorm buffers included) moved by ``steps`` optimizer steps, after each of which
    both averages are updated."""
    torch.manual_seed(0)
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
    ours = WeightAverage(model, 0.9)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, m = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    reads = 0
    for _ in range(steps):
        opt.zero_grad()
        model(x, m).mean().backward()
        opt.step()
        with HostReads() as counted:
            ours.update_parameters(model)
        reads += counted.count
        torchs.update_parameters(model)
    return ours, torchs, reads


def test_the_same_average_and_state_dict_as_torchs_averaged_model():
    ours, torchs, _ = trained_copies(4)
    a, b = ours.state_dict(), torchs.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert int(a["n_averaged"]) == ours.updates == 4


def test_an_update_reads_nothing_back_from_the_device():
    _, _, reads = trained_copies(3)
    assert reads == 0


def test_a_resumed_average_goes_on_averaging():
    ours, torchs, _ = trained_copies(2)
    fresh = WeightAverage(PHNet(ours.module.config), 0.9)
    fresh.load_state_dict(torchs.state_dict())  # a checkpoint written by either class loads into this one
    assert fresh.updates == 2
    model = PHNet(ours.module.config)
    fresh.update_parameters(model)
    torchs.update_parameters(model)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, torchs.state_dict()[key], rtol=0, atol=0, msg=key)


def test_a_loaded_average_is_a_copy_and_refuses_another_model_s_state():
    """Loading copies into the average's own tensors (a checkpoint's, read onto the CPU, do not become the
    average's), and a state that misses a weight is refused rather than left at the fresh model's value."""
    ours, _, _ = trained_copies(2)
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    fresh = WeightAverage(PHNet(ours.module.config), 0.9)
    fresh.load_state_dict(state)
    for value in state.values():
        value.zero_()
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, ours.state_dict()[key], rtol=0, atol=0, msg=key)
    del state[next(k for k in state if k.startswith("module."))]
    try:
        fresh.load_state_dict(state)
    except RuntimeError as exc:
        assert "Missing key" in str(exc)
    else:
        raise AssertionError("a state missing a weight was loaded")
