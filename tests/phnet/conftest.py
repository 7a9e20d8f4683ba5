"""Shared fixtures for the core-library tests: a tiny PHNet that builds and runs in milliseconds."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from phnet import PHNet, PHNetConfig

torch.set_num_threads(1)


@pytest.fixture()
def tiny_config() -> PHNetConfig:
    """A full PHNet architecture (7 widths, 3 PN blocks), only a few channels wide, 64 px working size."""
    return PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)


@pytest.fixture()
def tiny_model(tiny_config) -> PHNet:
    """The tiny PHNet with seeded random weights, in eval mode (same weights in every test)."""
    torch.manual_seed(0)
    return PHNet(tiny_config).eval()


@pytest.fixture()
def tiny_folder(tiny_model, tmp_path) -> Path:
    """``tiny_model`` saved with save_pretrained: a folder with config.json + model.safetensors."""
    from phnet.weights import save_pretrained

    return save_pretrained(tiny_model, tmp_path / "tiny-phnet")


@pytest.fixture()
def harmonizer(tiny_model):
    """A Harmonizer on ``tiny_model`` on the CPU in fp32: exact, for tests that compare with fp32 formulas."""
    from phnet import Harmonizer

    return Harmonizer(tiny_model, device="cpu", dtype="fp32")


@pytest.fixture()
def offline_hub(tmp_path, monkeypatch):
    """HF offline (env + the constant read at import), no sockets, cwd away from any owner/name folder."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)()  # the function: hub 1.x

    attempts = []

    def no_network(*args, **kwargs):  # recorded, since huggingface_hub would swallow a raised error
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)
    yield tmp_path / "hf-cache"
    assert not attempts, "the offline Hub test tried to reach the network"
