"""Optimizers (Lion, AdamW) and the warm-up + cosine learning-rate schedule."""
from __future__ import annotations

import math
import warnings

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class Lion(Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

    update = sign(beta1 * m + (1 - beta1) * g); p <- p * (1 - lr * wd) - lr * update;
    m <- beta2 * m + (1 - beta2) * g. One state tensor per parameter.
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Lion lr must be > 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                if wd:
                    p.mul_(1 - lr * wd)
                p.add_(torch.sign(m * b1 + p.grad * (1 - b1)), alpha=-lr)
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


def config_betas(train: dict) -> tuple[float, float]:
    """``train.betas`` as the optimizers take them: two floats (the config's check makes sure there are two)."""
    first, second = (float(b) for b in train.get("betas", (0.9, 0.99)))
    return first, second


def build_optimizer(params, train: dict) -> Optimizer:
    name = train["optimizer"]
    betas = config_betas(train)
    if name == "lion":
        return Lion(params, lr=float(train["lr"]), betas=betas, weight_decay=float(train["weight_decay"]))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=float(train["lr"]), betas=betas,
                                 weight_decay=float(train["weight_decay"]))
    raise ValueError(f"unknown optimizer {name!r} (lion or adamw)")


def lr_factor(step: int, total: int, warmup: int, schedule: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: Optimizer, train: dict) -> LambdaLR:
    total, warmup = int(train["steps"]), int(train.get("warmup_steps", 0))
    if warmup > total > 0:
        warnings.warn(f"train.warmup_steps ({warmup}) is over train.steps ({total}): the learning rate never "
                      f"reaches train.lr; set a shorter warm-up (e.g. --set train.warmup_steps={total // 10})",
                      stacklevel=2)
    schedule, floor = train.get("schedule", "cosine"), float(train.get("min_lr_ratio", 0.0))
    return LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, schedule, floor))
