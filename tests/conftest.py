"""Markers that hold for the whole suite: ``cuda`` tests run where a CUDA GPU is present, and are
skipped (with the reason shown) everywhere else, CI included. The suite runs offline, as CI runs it: the
Hugging Face client reads ``HF_HUB_OFFLINE`` once, when it is first imported, so it is set here, before any test
module imports it, and the client imported here (a test that sets it later changes only this project's own
checks)."""
from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
# read here, so that no test that unsets it (an upload's checks) is the first to import the client: run first, the
# trainer's tests left the client online for every test after them
import huggingface_hub.constants  # noqa: E402,F401


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


@pytest.fixture()
def no_hub_login(monkeypatch, tmp_path):
    """Not logged in to the Hub: no token in the environment, and no stored one (the client reads the token
    file's path once, at import, so setting HF_HOME in a test hides nothing)."""
    import huggingface_hub.constants as constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-login" / "stored_tokens"),
                        raising=False)


@pytest.fixture()
def own_hub_cache(monkeypatch, tmp_path):
    """A Hugging Face cache of this test's own, empty at first: the client reads its cache folder once, at import,
    so setting HF_HOME or HF_HUB_CACHE in a test would still read the user's own cache."""
    import importlib

    import huggingface_hub.constants as constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    # huggingface-hub before 0.24 copied the constant into file_download on import
    monkeypatch.setattr(importlib.import_module("huggingface_hub.file_download"), "HF_HUB_CACHE", str(cache),
                        raising=False)
    return cache
