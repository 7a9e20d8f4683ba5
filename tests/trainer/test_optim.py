"""trainer.optim: Lion's update with momentum and weight decay, the optimizers the config builds, and the
learning-rate schedule at its edges."""
from __future__ import annotations

import pytest
import torch

from trainer.optim import Lion, build_optimizer, build_scheduler, lr_factor


def test_lion_steps_by_the_sign_of_the_interpolated_momentum_and_decays_the_weights_first():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    idle = torch.nn.Parameter(torch.tensor([3.0]))  # no gradient: left alone, no state made
    opt = Lion([p, idle], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    p.grad = torch.tensor([0.5, -0.5, 0.5])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.85, -1.8, 0.375]))  # p * (1 - 0.1 * 0.5) - 0.1 * sign
    # against a momentum of 0.005: 0.9 * m + 0.1 * g keeps the momentum's sign for a small gradient (the
    # gradient's own sign would step back) and takes the gradient's for one over 0.045
    p.grad = torch.tensor([-0.01, 0.01, -0.05])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.85 * 0.95 - 0.1, -1.8 * 0.95 + 0.1, 0.375 * 0.95 + 0.1]))
    torch.testing.assert_close(opt.state[p]["exp_avg"],
                               torch.tensor([0.99 * 0.005 - 0.0001, -0.99 * 0.005 + 0.0001, 0.99 * 0.005 - 0.0005]))
    assert float(idle.detach()) == 3.0 and idle not in opt.state


def test_lion_returns_the_closure_s_loss_and_refuses_what_it_cannot_use():
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = Lion([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 2.0 and float(p.detach()) == pytest.approx(0.9)
    Lion([p], lr=1e-12, betas=(0.0, 0.0))  # the edges that are allowed
    for kwargs, told in (({"lr": 0.0}, r"Lion lr must be > 0, got 0\.0"),
                         ({"betas": (1.0, 0.99)}, r"Lion betas must be in \[0, 1\), got \(1\.0, 0\.99\)"),
                         ({"betas": (0.9, 1.0)}, r"Lion betas must be in \[0, 1\), got \(0\.9, 1\.0\)"),
                         ({"betas": (-0.1, 0.99)}, r"Lion betas must be in \[0, 1\), got \(-0\.1, 0\.99\)")):
        with pytest.raises(ValueError, match=told):
            Lion([p], **kwargs)


@pytest.mark.parametrize("name", ["lion", "adamw"])
def test_the_config_s_optimizer_gets_its_lr_betas_and_weight_decay(name):
    p = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([p], {"optimizer": name, "lr": "3e-4", "betas": [0.8, 0.95], "weight_decay": 0.25})
    assert isinstance(opt, Lion if name == "lion" else torch.optim.AdamW)
    group = opt.param_groups[0]
    assert (group["lr"], tuple(group["betas"]), group["weight_decay"]) == (3e-4, (0.8, 0.95), 0.25)
    default = build_optimizer([p], {"optimizer": name, "lr": 1e-4, "weight_decay": 0})
    assert tuple(default.param_groups[0]["betas"]) == (0.9, 0.99)
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer([p], {"optimizer": "sgd", "lr": 1e-4, "weight_decay": 0})


def test_the_schedule_at_its_edges():
    assert lr_factor(0, 100, 0) == 1.0  # no warm-up: the cosine starts at its top
    assert lr_factor(10, 100, 10) == 1.0  # the first step after the warm-up
    assert lr_factor(4, 100, 10, schedule="constant") == pytest.approx(0.5)  # a constant schedule warms up too
    assert lr_factor(150, 100, 10, min_ratio=0.1) == pytest.approx(0.1)  # past the end: the floor, not back up
    assert lr_factor(10 + 45, 100, 10, min_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert lr_factor(10 + 30, 100, 10) == pytest.approx(0.5 * (1 + 0.5))  # cos(pi / 3)
    assert lr_factor(10, 10, 10) == pytest.approx(1.0) and lr_factor(11, 10, 10) == pytest.approx(0.0)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=2.0)
    sch = build_scheduler(opt, {"steps": 4, "schedule": "cosine", "min_lr_ratio": 0.5})
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == pytest.approx([2.0 * lr_factor(s, 4, 0, "cosine", 0.5) for s in range(5)])
    assert lrs[0] == 2.0 and lrs[-1] == pytest.approx(1.0)


def test_a_warm_up_longer_than_the_run_is_told_at_the_caller_s_line():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.warns(UserWarning, match=r"warmup_steps \(2\) is over train.steps \(1\)") as record:
        build_scheduler(opt, {"steps": 1, "warmup_steps": 2})
    assert [w.filename for w in record] == [__file__]
