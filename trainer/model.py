"""The network a run trains: built from ``[model]``, from ``model.init_from`` weights, or from a checkpoint.

Whatever the source, the model's config carries the run's working size
(:func:`trainer.config.model_config`), so every checkpoint records the resolution it
was trained at.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from trainer.config import model_config

UNGATED = {"correction_threshold": 0.0, "correction_ramp": None, "correction_floor": 0.0}


def build_model(cfg: dict, resume_from: Path | None = None):
    """A fresh PHNet, the ``init_from`` weights (their architecture), or the checkpoint being resumed.

    The network trains without a do-no-harm rule: a threshold would scale the correction, and with it
    the gradient, down (to nothing below the threshold when the floor is 0). Weights that carry one
    (the bundled default, a calibrated run) lose it here; ``trainer.calibrate`` chooses one afterwards.
    """
    from phnet import PHNet
    from phnet.weights import load_model

    wanted = ungated(model_config(cfg), "the [model] table")
    source = resume_from or cfg["model"].get("init_from") or None
    if not source:
        return PHNet(wanted)
    model = load_model(str(source))
    loaded = model.config
    if resume_from is None:
        arch = ("enc_sizes", "grid_counts", "pfe_grid", "se_reduction")
        diffs = [k for k in arch if getattr(loaded, k) != getattr(wanted, k)]
        preset = cfg["model"].get("preset", "") != ""  # else the fields left out are PHNetConfig()'s defaults
        if diffs and preset:
            print(f"[trainer] init_from {source}: using its architecture (differs in {diffs})", file=sys.stderr)
        if loaded.output != wanted.output and (preset or "output" in cfg["model"]):
            print(f"[trainer] init_from {source}: keeping its output mapping {loaded.output!r} "
                  f"(the config asks for {wanted.output!r}; the weights only make sense with their own)",
                  file=sys.stderr)
    # the working size is the run's (a resumed run checked that its config did not change it); weights trained
    # further are no longer those they started from: an official name would hide the official-weights hint and
    # drop their authors' terms from a model card
    name = loaded.name if resume_from is not None or loaded.name.startswith(FINETUNED) else FINETUNED + loaded.name
    new = dataclasses.replace(ungated(loaded, str(source)), image_size=wanted.image_size, name=name)
    if new != loaded:
        fresh = PHNet(new)
        fresh.load_state_dict(model.state_dict())
        model = fresh
    return model


FINETUNED = "finetuned-"  # the name's prefix for weights trained on from init_from


def ungated(config, source: str):
    """``config`` without its do-no-harm rule, saying so when it had one."""
    if config.correction_threshold:
            print(f"[trainer] {source}: training without its do-no-harm threshold "
              f"({config.correction_threshold:g}; it would shrink the gradient of every correction below it); "
              f"choose one for the trained weights with python -m trainer.calibrate", file=sys.stderr)
    return dataclasses.replace(config, **UNGATED)


def freeze_dead_parameters(model: torch.nn.Module, size: int, device: torch.device) -> list[str]:
    """Find parameters that never receive a gradient and stop training them.

    The official architecture keeps modules that never run (the last PN block and
    ``skip.6``) so that its weights load; DDP would otherwise need
    ``find_unused_parameters=True`` on every step. One probe forward/backward in
    eval mode (so BatchNorm statistics are untouched) finds them.
    """
    was_training = model.training
    model.eval()
    s = max(16, size // 8 * 8)
    probe = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device)  # global RNG untouched
    mask = torch.zeros(1, 1, s, s, device=device)
    mask[..., s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    model.zero_grad(set_to_none=True)
    model(probe, mask).float().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        p.grad = None
        if name in dead:
            p.requires_grad_(False)
    model.train(was_training)
    return dead


def unwrap(model):
    """The plain PHNet inside a DDP and/or ``torch.compile`` wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
