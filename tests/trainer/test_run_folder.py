"""trainer.run_folder: a run is never replaced by accident, one trainer per folder, run_config.json."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from training_runs import REPO, fit_cmd, read_log, tiny_cfg, wait_for


def test_a_fresh_run_refuses_a_folder_that_holds_a_run(shift_set, tmp_path, capsys):
    from trainer.fit import main, train
    from trainer.run_folder import RunFolderError

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=2, log_every=1, batch_size=4), progress=False)
    before = (out / "log.jsonl").read_text()
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(RunFolderError, match="--resume.*--overwrite"):
        train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4), progress=False)
    assert (out / "log.jsonl").read_text() == before
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == kept and (out / "best").is_dir()
    assert main(["--config", "tiny_cpu", "--data", str(shift_set), "--out", str(out), "--steps", "2",
                 "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # --overwrite: the old run goes, the new one starts from nothing
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4), overwrite=True,
          progress=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    assert [r["event"] for r in read_log(out) if r["type"] == "event"] == ["start", "end"]
    assert not (out / "trainer.lock").exists()  # released at the end


def test_another_runs_checkpoint_is_resumed_only_into_an_empty_folder(shift_set, tmp_path):
    """Resumed into a folder holding its own run, the log and curves went on from two histories."""
    from trainer.fit import train
    from trainer.run_folder import RunFolderError

    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4), progress=False)
    before = (second / "log.jsonl").read_text()
    other = first / "checkpoints" / "step-00000002"
    with pytest.raises(RunFolderError, match="is not a checkpoint of the run in .*continue it in an empty --out"):
        train(tiny_cfg(shift_set, second, steps=3, ckpt_every=3, val_every=0, batch_size=4), resume=str(other),
              progress=False)
    assert (second / "log.jsonl").read_text() == before
    fork = tmp_path / "fork"  # an empty folder: the other run goes on there
    train(tiny_cfg(shift_set, fork, steps=3, ckpt_every=3, val_every=0, batch_size=4), resume=str(other),
          progress=False)
    assert (fork / "checkpoints" / "step-00000003").is_dir()


def test_a_start_removes_only_the_trainer_s_own_temporaries(tmp_path):
    """Every .tmp-* name in --out went on each start, a user's notes with them."""
    from trainer.run_folder import RunFolder

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (tmp_path / ".tmp-notes").mkdir()
    (tmp_path / ".tmp-notes" / "plan.txt").write_text("keep")
    (tmp_path / ".tmp-draft.md").write_text("keep")
    (tmp_path / ".tmp-old-things").mkdir()
    (tmp_path / ".tmp-best-12").write_text("a file, not a checkpoint folder")
    left = [tmp_path / ".tmp-best-123", tmp_path / ".tmp-old-best-123", ck / ".tmp-step-00000010-123",
            ck / ".tmp-old-step-00000005-123"]
    for p in left:
        p.mkdir()
    assert RunFolder(tmp_path).prepare(resume=False, overwrite=False) is None
    assert not any(p.exists() for p in left)
    assert (tmp_path / ".tmp-notes" / "plan.txt").read_text() == "keep"
    assert (tmp_path / ".tmp-draft.md").read_text() == "keep"
    assert (tmp_path / ".tmp-old-things").is_dir() and (tmp_path / ".tmp-best-12").is_file()


def test_the_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    from trainer.run_folder import RunFolder, RunFolderError

    first = RunFolder(tmp_path)
    first.acquire_lock()
    assert json.loads((tmp_path / "trainer.lock").read_text())["pid"] == os.getpid()
    with pytest.raises(RunFolderError, match=f"in use by another trainer \\(pid {os.getpid()}"):
        RunFolder(tmp_path).acquire_lock()
    first.release_lock()
    # a lock file left by a process that is gone (killed: nobody holds it any more)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "trainer.lock").write_text(json.dumps({"pid": gone.pid, "host": "x", "started": 0}))
    second = RunFolder(tmp_path)
    second.acquire_lock()
    assert json.loads((tmp_path / "trainer.lock").read_text())["pid"] == os.getpid()
    second.release_lock()


def _open_on(path) -> list[str]:
    """This process's descriptors open on ``path`` (not a count of all of them: another thread, or the garbage
    collector closing a file some earlier test left open, may change that count meanwhile)."""
    target = os.path.realpath(path)
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                found.append(fd)
        except OSError:  # closed since it was listed (the listing's own, say)
            pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads this process's open files in /proc")
@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_a_lock_cut_short_while_taken_leaves_no_file_open(tmp_path, monkeypatch, stop):
    """A Ctrl-C or a failed write of the pid while the lock was taken kept its file open (and, with fcntl, the lock
    held by a file nobody would close) in a process that went on: a notebook, a test run."""
    from trainer.run_folder import LOCK_NAME, RunFolder

    def cut(self, fd, previous):
        assert _open_on(tmp_path / LOCK_NAME) == [str(fd)]  # (what the check below looks for is there to find)
        raise stop()

    monkeypatch.setattr(RunFolder, "_lock", cut)
    with pytest.raises(stop):
        RunFolder(tmp_path).acquire_lock()
    assert _open_on(tmp_path / LOCK_NAME) == []
    monkeypatch.undo()
    run = RunFolder(tmp_path)
    run.acquire_lock()  # the lock was let go with its file
    run.release_lock()


def test_a_lock_copied_with_its_folder_is_not_called_a_gone_trainer_s(tmp_path, capsys):
    """A folder copied while its trainer ran: the lock file names a live process, which holds another folder."""
    import socket

    from trainer.run_folder import RunFolder

    (tmp_path / "trainer.lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                       "started": 0}))
    copy = RunFolder(tmp_path)
    copy.acquire_lock()
    copy.release_lock()
    err = capsys.readouterr().err
    assert "another folder's trainer, which still runs (this folder was copied while it ran)" in err
    assert "gone" not in err


@pytest.mark.parametrize("gap", ["after its lock", "after its check"])
def test_a_gone_trainer_s_lock_is_taken_over_by_one_of_two_starting_at_once(tmp_path, monkeypatch, gap):
    """The second read the gone pid while the first had locked the file but not written its own pid yet, deleted
    the file as stale and took a new one: both ran in the folder."""
    import socket
    import threading
    import types

    from trainer import run_folder
    from trainer.run_folder import RunFolder, RunFolderError

    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = tmp_path / "trainer.lock"
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": 0}))
    first, second, outcome = RunFolder(tmp_path), RunFolder(tmp_path), {}
    main, started = threading.main_thread(), []

    def start(run, who):
        try:
            run.acquire_lock()
            outcome[who] = "holds"
        except RunFolderError:
            outcome[who] = "refused"

    def second_starts(point):  # between two steps of the first one's start (it may have to wait for the first)
        if point == gap and threading.current_thread() is main and not started:
            started.append(threading.Thread(target=start, args=(second, "second")))
            started[0].start()
            started[0].join(timeout=0.5)

    real_fcntl, real_stat = run_folder.fcntl, os.stat

    def flock(fd, how):
        real_fcntl.flock(fd, how)
        if how & real_fcntl.LOCK_NB:
            second_starts("after its lock")

    def stat(path, *args, **kwargs):
        found = real_stat(path, *args, **kwargs)
        if str(path) == str(lock):
            second_starts("after its check")
        return found

    monkeypatch.setattr(run_folder, "fcntl", types.SimpleNamespace(LOCK_EX=real_fcntl.LOCK_EX,
                                                                   LOCK_NB=real_fcntl.LOCK_NB, flock=flock))
    monkeypatch.setattr(os, "stat", stat)
    start(first, "first")
    started[0].join()
    monkeypatch.undo()
    assert sorted(outcome.values()) == ["holds", "refused"]
    holder = first if outcome["first"] == "holds" else second
    assert os.fstat(holder._lock_fd).st_ino == os.stat(lock).st_ino  # the file on disk is the holder's
    holder.release_lock()
    assert not lock.exists()


def test_on_windows_a_gone_trainer_s_lock_is_taken_over_and_a_run_s_is_removed(tmp_path, monkeypatch):
    """Windows (no fcntl): os.kill(pid, 0) sent the recorded trainer a Ctrl-C instead of asking whether it runs, and
    the lock file was removed while still open, which Windows refuses: every run ended with an error."""
    import socket
    from pathlib import Path

    from trainer import run_folder
    from trainer.run_folder import RunFolder

    lock = tmp_path / "trainer.lock"
    lock.write_text(json.dumps({"pid": 4321, "host": socket.gethostname(), "started": 0}))
    run, asked, open_fds = RunFolder(tmp_path), [], set()
    real_open, real_close, real_unlink = os.open, os.close, Path.unlink

    def kill(pid, sig):
        raise AssertionError(f"os.kill({pid}, {sig}) on Windows")

    def opened(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path) == str(lock):
            open_fds.add(fd)
        return fd

    def close(fd):
        open_fds.discard(fd)
        real_close(fd)

    def unlink(path, missing_ok=False):
        if path == lock and open_fds:
            raise PermissionError(32, "The process cannot access the file because it is being used by another "
                                      "process", str(path))
        real_unlink(path, missing_ok=missing_ok)

    with monkeypatch.context() as m:  # (undone before pytest reports a failure: it makes paths as os.name says)
        m.setattr(run_folder, "fcntl", None)
        m.setattr(run_folder, "_windows_pid_alive", lambda pid: asked.append(pid) or False, raising=False)
        m.setattr(os, "kill", kill)
        m.setattr(os, "open", opened)
        m.setattr(os, "close", close)
        m.setattr(Path, "unlink", unlink)
        m.setattr(os, "name", "nt")
        run.acquire_lock()
        assert 4321 in asked and json.loads(lock.read_text())["pid"] == os.getpid()
        run.release_lock()
    assert not lock.exists() and not open_fds


def test_windows_asks_the_system_whether_a_pid_runs(monkeypatch):
    import ctypes
    import sys
    import types

    from trainer.run_folder import _windows_pid_alive

    state = {"handle": 7, "error": 0, "code": 259}
    closed = []

    class Function:
        def __init__(self, call):
            self.call = call

        def __call__(self, *args):
            return self.call(*args)

    def exit_code(handle, code):
        code._obj.value = state["code"]
        return 1

    kernel32 = types.SimpleNamespace(OpenProcess=Function(lambda access, inherit, pid: state["handle"]),
                                     GetExitCodeProcess=Function(exit_code),
                                     CloseHandle=Function(closed.append))
    fake = types.SimpleNamespace(WinDLL=lambda name, use_last_error: kernel32, get_last_error=lambda: state["error"],
                                 c_ulong=ctypes.c_ulong, c_int=ctypes.c_int, c_void_p=ctypes.c_void_p,
                                 POINTER=ctypes.POINTER, byref=ctypes.byref)
    monkeypatch.setitem(sys.modules, "ctypes", fake)
    assert _windows_pid_alive(1234) and closed == [7]  # STILL_ACTIVE
    state["code"] = 0
    assert not _windows_pid_alive(1234)  # it exited
    state.update(handle=None, error=87)
    assert not _windows_pid_alive(1234)  # no such process
    state["error"] = 5
    assert _windows_pid_alive(1234)  # one this user may not ask about runs


def test_two_trainers_cannot_share_a_folder(shift_set, tmp_path, subprocess_env):
    from trainer.fit import train
    from trainer.run_folder import RunFolderError

    out = tmp_path / "shared"
    proc = subprocess.Popen(fit_cmd(shift_set, out, "--steps", "100000", "--set", "train.ckpt_every=0",
                                    "--set", "train.val_every=0"),
                            cwd=REPO, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(out / "log.jsonl", proc)
        for resume in (True, False):
            with pytest.raises(RunFolderError, match=f"pid {proc.pid}"):
                train(tiny_cfg(shift_set, out, steps=1, val_every=0, ckpt_every=0), resume=resume, progress=False)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert [r["event"] for r in read_log(out) if r["type"] == "event"] == ["start"]


def test_the_run_config_is_not_named_like_a_model_config(shift_set, tmp_path):
    from phnet import Harmonizer
    from trainer.config import read_config
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4), progress=False)
    assert (out / "run_config.json").is_file() and not (out / "config.json").exists()
    assert read_config(out)["train"]["steps"] == 2 and read_config(out / "run_config.json") == read_config(out)
    with pytest.raises(FileNotFoundError) as err:
        Harmonizer.from_pretrained(out)  # a run folder is not a model folder
    assert "newer" not in str(err.value) and "upgrade" not in str(err.value)
    # a run written before the rename (config.json at its root) still resumes, and is renamed on the way
    (out / "run_config.json").rename(out / "config.json")
    assert read_config(out)["train"]["steps"] == 2
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=0, batch_size=4), resume=True, progress=False)
    assert (out / "run_config.json").is_file() and not (out / "config.json").exists()
    assert read_config(out)["train"]["steps"] == 4
