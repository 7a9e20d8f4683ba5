"""Markers that hold for the whole suite: ``cuda`` tests run where a CUDA GPU is present, and are
skipped (with the reason shown) everywhere else, CI included."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    if not any("cuda" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def hub_login(monkeypatch):
    """Online and logged in, as far as a check before an upload can tell (tests fake the Hub's API itself)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
