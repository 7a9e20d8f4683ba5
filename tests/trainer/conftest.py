"""Fixtures for the trainer tests: tiny procedural "portraits" and subprocess settings."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procedural_portraits import REPO, write_photos  # noqa: E402

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread on a shared 2-core machine; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """(photo folder, mask folder): 24 procedural portraits with their masks."""
    root = tmp_path_factory.mktemp("photos")
    write_photos(root / "img", 24, seed=1, masks=root / "masks")
    return root / "img", root / "masks"


@pytest.fixture()
def subprocess_env(tmp_path) -> dict:
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)  # torchrun leaves a log folder behind in the temp dir on every start
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="session")
def shift_set(tmp_path_factory) -> Path:
    """A tiny FFHQH-layout set whose composites all carry the same colour cast (see training_runs.py)."""
    from training_runs import write_shift_set

    return write_shift_set(tmp_path_factory.mktemp("shift") / "set")
