"""Small training sets, configs and log readers shared by the training tests (a module, not conftest,
so that test files can import it by a unique name)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from procedural_portraits import REPO, portrait


def write_shift_set(root: Path, n: int = 40, n_val: int = 8, seed: int = 5) -> Path:
    """FFHQH layout; every composite's subject has the same strong colour cast (learnable in ~100 steps)."""
    rng = np.random.default_rng(seed)
    for d in ("comp", "alpha", "real"):
        (root / d).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        img, mask = portrait(rng, 32, 32)
        f, m = img / 255.0, (mask > 0)[..., None]
        comp = np.where(m, np.clip(f * np.array([0.55, 0.75, 1.25]) + 0.02, 0, 1), f)
        name = f"{i:05d}.png"
        Image.fromarray((comp * 255).round().astype(np.uint8)).save(root / "comp" / name)
        Image.fromarray(mask).save(root / "alpha" / name)
        Image.fromarray(img).save(root / "real" / name)
        names.append(name)
    (root / "train_split.txt").write_text("\n".join(names[:-n_val]) + "\n")
    (root / "val_split.txt").write_text("\n".join(names[-n_val:]) + "\n")
    (root / "test_split.txt").write_text("\n".join(names[-n_val:]) + "\n")
    return root


def tiny_cfg(data: Path, out: Path, **train) -> dict:
    """tiny_cpu's config for a run of ``train``'s settings; a run shorter than its warm-up has none unless it names
    one (the trainer warns of a warm-up over the run, which one test asserts)."""
    from trainer.config import load_config

    over = {"data": {"root": str(data), "num_workers": 0},
            "train": {"out_dir": str(out), "log_every": 10, **train}}
    cfg = load_config("tiny_cpu", overrides=over)
    if "warmup_steps" not in train and cfg["train"]["warmup_steps"] > cfg["train"]["steps"]:
        cfg["train"]["warmup_steps"] = 0
    return cfg


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def fit_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainer.fit", "--config", "tiny_cpu", "--data", str(data), "--out", str(out),
            "--no-progress", "--set", "data.num_workers=0", "--set", "train.log_every=5", *extra]


def wait_for(path: Path, proc, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc {proc.returncode}) before {path} appeared:\n"
                                 + proc.stderr.read().decode(errors="replace")[-3000:])
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def process_group(pgid: int) -> list[str]:
    """The command lines (their first 100 characters) of the processes in process group ``pgid``, read from /proc
    (Linux): a command started with ``start_new_session`` and the processes it starts, which stay in its group."""
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == pgid:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:100].decode())
        except OSError:  # a process that ended meanwhile
            continue
    return found


def kill_leaving_none(proc, timeout: float = 30) -> list[str]:
    """SIGKILL to ``proc`` alone (started with ``start_new_session``), as the out-of-memory killer sends it; returns
    what of its process group is still running ``timeout`` s later (torch's data workers check for their parent
    every 5 s), then kills those."""
    import os
    import signal

    proc.kill()
    proc.wait()
    deadline = time.time() + timeout
    while process_group(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    left = process_group(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # none left
        pass
    return left


__all__ = ["REPO", "write_shift_set", "tiny_cfg", "read_log", "fit_cmd", "wait_for", "process_group",
           "kill_leaving_none"]


def run_torchrun(cmd: list[str], timeout: float = 300, **kw):
    """``subprocess.run`` for a torchrun: on timeout the whole process group goes (its ranks too), so a hung
    rank is not left running after the test has failed."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{err[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
