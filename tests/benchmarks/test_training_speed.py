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


def test_the_gpu_utilisation_is_read_over_the_windows_the_throughput_is(monkeypatch):
    """Averaged over the whole process (start-up, the last validation, checkpoints: an idle GPU), the GPU
    looked far less busy than it was while training."""
    from benchmarks.training_speed import throughput

    records = [{"type": "start", "time": 100.0}]
    records += [{"type": "train", "step": step, "samples_per_s": 1000.0 + step, "time": 130.0 + step}
                for step in range(5, 55, 5)]
    records += [{"type": "val", "step": 50, "time": 200.0}]
    samples = [(t / 2, 0.0) for t in range(200, 270)] + [(t / 2, 90.0) for t in range(270, 370)]
    samples += [(t / 2, 5.0) for t in range(370, 420)]  # the last validation, the checkpoints, the exit
    got = throughput(records, 50, samples)
    assert got == {"samples_per_s": 1000.0 + 32.5, "gpu_util": 90.0}
