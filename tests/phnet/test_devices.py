"""Choosing a device: the best one here, spelt as tensors on it report theirs."""
from __future__ import annotations

import re

import pytest
import torch

from phnet import Harmonizer


def test_the_gpu_chosen_carries_its_index_as_tensors_on_it_do(monkeypatch):
    """Pictures already on "cuda:0" were taken for pictures still to be copied to "cuda" (no index), and went
    through the network in smaller batches."""
    from phnet.devices import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda:1") == torch.device("cuda", 1) and pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("device, words", [("tpu", "not a device name torch knows; use cpu, cuda (or cuda:N) or mps"),
                                           ("meta", "the meta device holds no data, so nothing could be computed or "
                                                    "given back; use cpu or cuda"),
                                           ("vulkan", "torch cannot place tensors on it here (NotImplementedError); "
                                                      "use cpu, cuda (or cuda:N) or mps"),
                                           ("cuda", "no CUDA GPU is visible to torch here; use cpu"),
                                           ("cuda:2", "torch sees 1 CUDA GPU(s), numbered from 0; use cuda:0"),
                                           ("mps", "MPS (Apple GPU) is not available to torch here; use cpu")])
def test_a_device_this_machine_lacks_is_refused_naming_the_fix(tiny_model, monkeypatch, device, words):
    """The library, the CLI's --device and the trainer's train.device read devices with one rule."""
    from phnet.devices import device_problem

    gpus = 1 if device == "cuda:2" else 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_problem(device) == words
    with pytest.raises(ValueError, match=f"device '{device}': " + re.escape(words)):
        Harmonizer(tiny_model, device=device)
    assert device_problem("cpu") is None
