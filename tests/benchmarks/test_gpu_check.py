"""The one-call GPU check, rehearsed on the CPU: every step's command line still runs, so that a renamed
option or a broken import shows in CI and not on a borrowed GPU's clock."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict:
    """This environment without the check's own settings: a caller's STEPS or DEADLINE (the suite run by the
    check itself) would reach the rehearsal, which then ran the suite again, and a caller's REHEARSE or PYTHON
    would turn a test of the GPU mode into a rehearsal or run it with another Python."""
    own = ("STEPS", "DEADLINE", "WHEELS", "REHEARSE", "PYTHON", "CUDA_INIT_TIMEOUT")
    return {k: v for k, v in os.environ.items() if k not in own}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check itself runs, not its rehearsal")
def test_the_gpu_check_rehearses_every_step_on_the_cpu(tmp_path):
    env = {**_clean_env(), "OUT": str(tmp_path), "REHEARSE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=1200)  # beyond the rehearsal's DEADLINE
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in summary] == ["cuda-tests", "bench", "training", "synthesis"]
    assert all(": exit 0 after" in line for line in summary), "\n".join(summary)
    assert "no CUDA device" in (tmp_path / "machine.txt").read_text()
    assert "speed vs official" in (tmp_path / "bench.txt").read_text()
    assert "composites/s" in (tmp_path / "training.txt").read_text()
    assert "composites/s" in (tmp_path / "synthesis.txt").read_text()


def test_a_python_without_torch_is_named_before_any_step(tmp_path):
    """Without the README's venv on PATH it took the system python3: every step failed, and it exited 0."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("python3", "python", "no-torch"):
        (fake / name).write_text("#!/bin/sh\nexit 1\n")
        (fake / name).chmod(0o755)
    repo = tmp_path / "repo"  # a checkout without .venv, so only the Pythons above are tried
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_check.sh").write_text((REPO / "benchmarks" / "gpu_check.sh").read_text())
    env = {"PATH": f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin", "OUT": str(tmp_path / "out"), "REHEARSE": "1",
           "PYTHON": str(fake / "no-torch")}
    done = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "no Python here can import torch" in done.stderr
    assert not (tmp_path / "out" / "summary.txt").exists()


def test_a_step_left_unrun_for_lack_of_time_is_no_success(tmp_path):
    env = {**_clean_env(), "OUT": str(tmp_path), "REHEARSE": "1", "DEADLINE": "10", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "not run" in (tmp_path / "summary.txt").read_text()


def test_a_step_left_unrun_shows_no_earlier_calls_output_as_its_own(tmp_path):
    (tmp_path / "synthesis.txt").write_text("composites/s from an earlier call\n")
    env = {**_clean_env(), "OUT": str(tmp_path), "REHEARSE": "1", "DEADLINE": "10", "PYTHON": sys.executable,
           "STEPS": "synthesis"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "earlier call" not in done.stdout and not (tmp_path / "synthesis.txt").exists()


def test_a_misspelt_step_is_refused_before_anything_runs(tmp_path):
    """STEPS="bnech" ran nothing and exited 0: a rerun on the GPU's clock reported success."""
    env = {**_clean_env(), "OUT": str(tmp_path / "out"), "REHEARSE": "1", "PYTHON": sys.executable,
           "STEPS": "bench suit"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "unknown step 'suit' in STEPS" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's torch sees a GPU")
def test_a_python_whose_torch_sees_no_gpu_stops_the_check_at_once(tmp_path):
    """A CPU-only torch ran every step on the CPU: the cuda tests skipped and said "exit 0", the benchmarks failed,
    and the GPU call's minutes were spent."""
    env = {**_clean_env(), "OUT": str(tmp_path), "PYTHON": sys.executable, "STEPS": "cuda-tests"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "torch sees no CUDA GPU" in done.stderr
    assert (tmp_path / "machine.txt").is_file() and not (tmp_path / "cuda-tests.txt").exists()


def test_a_cuda_initialisation_that_hangs_stops_the_check_in_its_time(tmp_path):
    """Only nvidia-smi had a time limit: torch's first CUDA calls, hung on a wedged driver, took the whole call and
    left summary.txt empty."""
    python = tmp_path / "python"  # imports torch, then hangs in whatever else it is asked
    python.write_text('#!/bin/sh\n[ "$1" = -c ] && [ "$2" = "import torch" ] && exit 0\nexec sleep 60\n')
    python.chmod(0o755)
    env = {**_clean_env(), "OUT": str(tmp_path / "out"), "PYTHON": str(python), "CUDA_INIT_TIMEOUT": "2",
           "STEPS": "cuda-tests"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "CUDA initialisation hung after 2 s" in done.stderr
    assert "CUDA initialisation hung after 2 s" in (tmp_path / "out" / "summary.txt").read_text()
    assert not (tmp_path / "out" / "cuda-tests.txt").exists()


@pytest.mark.parametrize("rehearse", ["1", ""])
def test_a_rehearsal_has_the_time_its_doubled_caps_add_up_to(tmp_path, rehearse):
    """A rehearsal doubled each step's cap but kept the GPU call's 540 s for all: on a busy CPU its last steps
    were stopped or not run, and it failed."""
    python = tmp_path / "python"  # imports torch, sees a GPU, and every step passes at once
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    env = {**_clean_env(), "OUT": str(tmp_path / "out"), "PYTHON": str(python), "STEPS": "synthesis",
           "REHEARSE": rehearse}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = "DEADLINE=1080 s for all steps, each step's cap x2" if rehearse else "DEADLINE=540 s"
    assert expected in (tmp_path / "out" / "machine.txt").read_text()


@pytest.mark.parametrize("where", ["under a file", "summary.txt a folder"])
def test_an_out_that_cannot_be_written_is_named_before_any_step(tmp_path, where):
    """OUT under a regular file gave mkdir's error and 'rc: unbound variable', and exit 1 as if a step had failed."""
    python = tmp_path / "python"  # imports torch, sees a GPU, and notes each call
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\nexit 0\n')
    python.chmod(0o755)
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "out" if where == "under a file" else tmp_path / "out"
    if where == "summary.txt a folder":
        (out / "summary.txt").mkdir(parents=True)
    env = {**_clean_env(), "OUT": str(out), "PYTHON": str(python), "STEPS": "synthesis"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"error: cannot write to OUT={out}: give a writable folder\n"
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    assert "synthesis_speed" not in calls
    if where == "under a file":
        assert not calls  # not even torch imported


@pytest.mark.parametrize("wheels, why", [("nowhere", "no such folder"), ("empty", "the folder holds no .whl file"),
                                         ("broken", "machine.txt says why")])
def test_wheels_not_installed_are_named_and_no_success(tmp_path, wheels, why):
    """WHEELS that pip could not install left the SAM, node and WebUI tests skipped, and the check exited 0."""
    python = tmp_path / "python"  # imports torch, sees a GPU, passes every step; its pip fails
    python.write_text('#!/bin/sh\n[ "$2" = pip ] && { echo "ERROR: not a valid wheel"; exit 1; }\nexit 0\n')
    python.chmod(0o755)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x-1.0-py3-none-any.whl").write_text("")
    env = {**_clean_env(), "OUT": str(tmp_path / "out"), "PYTHON": str(python), "STEPS": "synthesis",
           "WHEELS": str(tmp_path / wheels)}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    line = f"wheels from {tmp_path / wheels}: not installed ({why})"
    assert line in (tmp_path / "out" / "summary.txt").read_text().splitlines()
    assert line in (tmp_path / "out" / "machine.txt").read_text()
    assert "synthesis: exit 0" in (tmp_path / "out" / "summary.txt").read_text()


def test_a_relative_out_and_wheels_are_the_callers(tmp_path):
    """The script's cd to the checkout came first: OUT=relout, called from elsewhere, wrote into the checkout."""
    repo = tmp_path / "repo"  # a copy, so that the check without the fix does not write into this checkout
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_check.sh").write_text((REPO / "benchmarks" / "gpu_check.sh").read_text())
    python = tmp_path / "python"  # imports torch, sees a GPU, passes every step, and notes each call
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\nexit 0\n')
    python.chmod(0o755)
    caller = tmp_path / "caller"
    (caller / "wheels").mkdir(parents=True)
    (caller / "wheels" / "x-1.0-py3-none-any.whl").write_text("")
    env = {**_clean_env(), "OUT": "relout", "WHEELS": "wheels", "PYTHON": str(python), "STEPS": "synthesis"}
    done = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60, cwd=caller)
    assert done.returncode == 0, done.stderr
    assert "synthesis: exit 0" in (caller / "relout" / "summary.txt").read_text()
    assert not (repo / "relout").exists()
    assert f"--find-links {caller / 'wheels'} {caller / 'wheels' / 'x-1.0-py3-none-any.whl'}" in (
        tmp_path / "calls").read_text()
