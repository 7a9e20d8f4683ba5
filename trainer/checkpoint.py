"""Atomic checkpoints that load with ``phnet.Harmonizer.from_pretrained`` and resume training.

A checkpoint is a folder::

    config.json, model.safetensors   phnet.weights.save_pretrained (the model, loadable anywhere)
    training_state.pt                 optimizer, scheduler, scaler, step, RNG states (weights_only-safe)
    checkpoint.json                   step, epoch, best validation fMSE (human-readable)
    training_config.json              the full trainer config used

It is written into ``.tmp-<name>-<pid>`` next to its final place, flushed, and
renamed into place, so a killed process leaves either the previous checkpoint or
the new one, never half a folder. Leftover ``.tmp-<name>-<pid>`` folders are
ignored and cleaned up on the next start.
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # for readers and checkers; the model's package loads when a checkpoint is written
    from phnet.modeling import PHNet

STATE_FILE = "training_state.pt"
INFO_FILE = "checkpoint.json"
TRAIN_CONFIG_FILE = "training_config.json"
STEP_DIR = re.compile(r"^step-(\d+)$")
# save_checkpoint's temporaries: .tmp-<name>-<pid> and, while it replaces a folder, .tmp-old-<name>-<pid>
_TMP_BEST = re.compile(r"^\.tmp-(old-)?(best)-\d+$")
_TMP_STEP = re.compile(r"^\.tmp-(old-)?(step-\d+)-\d+$")
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no space left, or the quota is used up
# and the other ways a write is refused: a file size limit (ulimit -f), an I/O error (a network disk)
WRITE_FAILED = (*DISK_FULL, errno.EFBIG, errno.EIO)
_TORCH_WRITE_FAILED = re.compile(r"inline_container|PytorchStreamWriter|cannot be opened")  # torch.save's words


class DiskFullError(OSError):
    """A checkpoint could not be written (a full disk, a quota, a file size limit); the message says which one is
    intact."""


# --------------------------------------------------------------------------- RNG states
# torch.load(weights_only=True) accepts tensors, dicts, lists, tuples and primitives
# only, so the numpy and python RNG states are converted to tensors.

def capture_rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)  # the global generator's, always MT19937
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "cached_gaussian": float(np_state["gauss"])},
        "python": {"version": int(py_version), "state": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):
            pass  # a different number of GPUs: keep the fresh CUDA seeds


# --------------------------------------------------------------------------- writing

def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _nearly_full(folder: Path) -> bool:
    """Less than 1 MiB left on the disk holding ``folder``."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def save_checkpoint(folder: Path, model: PHNet, state: dict | None, info: dict,
                    train_config: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (replacing an existing one of the same name)."""
    from phnet.weights import save_pretrained

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_pretrained(model, tmp)
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        (tmp / INFO_FILE).write_text(json.dumps({**info, "saved_at": time.time()}, indent=2) + "\n")
        if train_config is not None:
            (tmp / TRAIN_CONFIG_FILE).write_text(json.dumps(train_config, indent=2, default=str) + "\n")
        _fsync_tree(tmp)
    except BaseException as exc:
        full = not isinstance(exc, OSError) and _nearly_full(tmp)  # before the half-written files go
        shutil.rmtree(tmp, ignore_errors=True)  # half a checkpoint is no use, and its space may be needed
        if full:  # torch.save and safetensors report a full disk as their own errors, not as an OSError
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
        if isinstance(exc, RuntimeError) and _TORCH_WRITE_FAILED.search(str(exc)):  # a quota, a file size limit
            raise OSError(errno.EIO, f"torch could not write {STATE_FILE}: a full disk, a quota or a file size "
                                     "limit?") from exc
        raise
    if folder.exists():  # directories cannot be replaced in one step: swap via a side name
        old = folder.with_name(f".tmp-old-{folder.name}-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, folder)
    _fsync_dir(folder.parent)
    return folder


def clean_temporaries(root: Path) -> None:
    """Remove the half-written folders a killed run's :func:`save_checkpoint` left (and restore a swapped-out
    one); other ``.tmp-*`` names there are not the trainer's and are kept."""
    root = Path(root)
    for sub, pattern in ((root, _TMP_BEST), (root / "checkpoints", _TMP_STEP)):
        if not sub.is_dir():
            continue
        for p in sorted(sub.iterdir()):
            m = pattern.match(p.name)
            if not m or not p.is_dir() or p.is_symlink():
                continue
            if m.group(1) and not (sub / m.group(2)).exists() and is_complete(p):
                os.rename(p, sub / m.group(2))  # killed between the two renames: keep the old copy
            else:
                shutil.rmtree(p, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    folder = Path(folder)
    return all((folder / f).is_file() for f in ("config.json", "model.safetensors", INFO_FILE))


def damage(folder: Path, model_only: bool = False) -> str | None:
    """Why ``folder`` cannot be resumed from (a file missing, truncated or unreadable), or None if it can.
    ``model_only``: why its weights (config.json + model.safetensors) cannot be loaded, or None if they can."""
    from safetensors.torch import load_file

    from phnet.state_dicts import load_failure

    folder = Path(folder)
    files = ("config.json", "model.safetensors") + (() if model_only else (INFO_FILE, STATE_FILE))
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        return f"no {', '.join(missing)}"
    try:
        json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if not model_only:
            read_info(folder)
        load_file(folder / "model.safetensors")
    except Exception as exc:  # whatever the reader's complaint, the checkpoint cannot be used
        reason = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {reason[0]}" if reason else type(exc).__name__
    if not model_only:
        try:
            load_training_state(folder)
        except Exception as exc:  # (torch's words advise weights_only=False, which runs whatever the file holds)
            return f"{type(exc).__name__}: {load_failure(exc)}"
    return None


def read_info(folder: Path) -> dict:
    return json.loads((Path(folder) / INFO_FILE).read_text())


def step_checkpoints(root: Path) -> list[tuple[int, Path]]:
    ck = Path(root) / "checkpoints"
    if not ck.is_dir():
        return []
    out = []
    for p in ck.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and is_complete(p) and (p / STATE_FILE).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(root: Path) -> Path | None:
    found = step_checkpoints(root)
    return found[-1][1] if found else None


def prune_checkpoints(root: Path, keep_last: int) -> None:
    if keep_last <= 0:
        return
    for _, p in step_checkpoints(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)


def load_training_state(folder: Path, map_location="cpu") -> dict:
    from phnet.state_dicts import weights_only_load

    return weights_only_load(Path(folder) / STATE_FILE, map_location=map_location)


# --------------------------------------------------------------------------- Hub

def push_to_hub(folder: Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None) -> str:
    """Upload a model folder (config.json + model.safetensors: a checkpoint, or what ``trainer.calibrate``
    or ``phnet convert`` wrote) to a Hub model repo, with a model card; a checkpoint's training state is not
    uploaded. ``private``: see ``phnet.weights.push_to_hub``. Goes through huggingface_hub's HfApi; returns
    the repo URL.
    """
    from phnet.weights import load_model, push_to_hub as _push

    folder = Path(folder)
    if not all((folder / f).is_file() for f in ("config.json", "model.safetensors")):
        raise FileNotFoundError(f"{folder} holds no model (config.json + model.safetensors): give a checkpoint "
                                "folder (e.g. runs/x/best) or a folder of weights")
    step = read_info(folder).get("step") if (folder / INFO_FILE).is_file() else None
    message = commit_message or f"Upload PHNet weights ({folder.name}{f', step {step}' if step is not None else ''})"
    return _push(load_model(folder), repo_id, private=private, token=token, commit_message=message)
