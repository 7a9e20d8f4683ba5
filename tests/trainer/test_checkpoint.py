"""trainer.checkpoint: what a killed save leaves is put right, what a resume may pick, and the RNG states."""
from __future__ import annotations

import json

import torch

from trainer import checkpoint as ckpt


def _complete(folder, step, state=True):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / ckpt.INFO_FILE).write_text(json.dumps({"step": step}))
    if state:
        (folder / ckpt.STATE_FILE).write_bytes(b"state")
    return folder


def test_a_save_killed_between_its_two_renames_gets_its_old_copy_back(tmp_path):
    """The old folder was renamed aside and the new one not yet into place: the old copy is the checkpoint."""
    ck = tmp_path / "checkpoints"
    _complete(ck / ".tmp-old-step-00000005-123", 5)
    _complete(tmp_path / ".tmp-old-best-123", 3)
    _complete(ck / "step-00000010", 10)
    _complete(ck / ".tmp-old-step-00000010-123", 9)  # the new copy made it: the old one goes
    ckpt.clean_temporaries(tmp_path)
    assert ckpt.read_info(ck / "step-00000005") == {"step": 5}
    assert ckpt.read_info(tmp_path / "best") == {"step": 3}
    assert ckpt.read_info(ck / "step-00000010") == {"step": 10}
    assert sorted(p.name for p in ck.iterdir()) == ["step-00000005", "step-00000010"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoints"]


def test_a_step_folder_is_resumed_from_only_when_whole_and_with_its_training_state(tmp_path):
    ck = tmp_path / "checkpoints"
    _complete(ck / "step-00000005", 5)
    _complete(ck / "step-00000007", 7, state=False)  # weights without the optimizer's state
    (ck / "step-00000009").mkdir()  # an empty folder of the right name
    (ck / "step-00000009" / ckpt.STATE_FILE).write_bytes(b"state")
    _complete(ck / "notes", 11)  # complete, but not a step folder
    (ck / "step-00000012").write_text("a file")
    assert ckpt.step_checkpoints(tmp_path) == [(5, ck / "step-00000005")]
    assert ckpt.latest_checkpoint(tmp_path) == ck / "step-00000005"
    assert ckpt.latest_checkpoint(tmp_path / "nowhere") is None


def test_restoring_rng_states_touches_the_gpus_only_where_both_the_state_and_the_machine_have_them(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: calls.append(states))
    state = ckpt.capture_rng_state()
    state.pop("cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ckpt.restore_rng_state(state)  # saved on a machine without a GPU
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ckpt.restore_rng_state({**state, "cuda": [torch.zeros(8, dtype=torch.uint8)]})  # resumed without a GPU
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ckpt.restore_rng_state({**state, "cuda": ["saved"]})
    assert calls == [["saved"]]


def test_a_gaussian_drawn_half_way_comes_back_with_the_rng_states(tmp_path):
    """numpy's legacy generator and Python's random draw Gaussians in pairs and keep the second for the next
    call: a resume restores that pending value too."""
    import random

    import numpy as np

    np.random.seed(2), random.seed(1)
    np.random.randn(), random.gauss(0, 1)  # each now holds the second of a pair
    torch.save({"rng": ckpt.capture_rng_state()}, tmp_path / "s.pt")
    expected = (np.random.randn(), random.gauss(0, 1), np.random.randn())
    np.random.seed(5), random.seed(5)
    ckpt.restore_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert (np.random.randn(), random.gauss(0, 1), np.random.randn()) == expected
