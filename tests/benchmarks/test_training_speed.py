"""benchmarks/training_speed.py reads the utilisation of the GPU it trains on."""
from __future__ import annotations

import types

import torch

from benchmarks.training_speed import smi_id


def test_the_gpu_watched_is_the_one_trained_on_named_by_its_uuid(monkeypatch):
    """nvidia-smi numbers every GPU by PCI bus, torch the visible ones fastest first: "-i 0" watched another card
    when training ran on cuda:1 or under CUDA_VISIBLE_DEVICES."""
    uuids = {0: "GPU-aaaa", 1: "5b0c-1111"}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid=uuids[i]))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert smi_id("cuda:1") == "GPU-5b0c-1111"
    assert smi_id("cuda") == "GPU-aaaa"
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace())
    assert smi_id("cuda:1") == "1"
