"""Choosing a device: the best one here, spelt as tensors on it report theirs."""
from __future__ import annotations

import torch


def test_the_gpu_chosen_carries_its_index_as_tensors_on_it_do(monkeypatch):
    """Pictures already on "cuda:0" were taken for pictures still to be copied to "cuda" (no index), and went
    through the network in smaller batches."""
    from phnet.devices import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda:1") == torch.device("cuda", 1) and pick_device("cpu") == torch.device("cpu")
