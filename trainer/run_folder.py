"""A run's output folder: who may write in it (a lock), whether a start may replace what is there,
which checkpoint a resume continues from, and the recorded trainer config.

Layout::

    run_config.json        the trainer config this run uses (runs before it wrote config.json)
    log.jsonl, curves.png  trainer.run_log
    checkpoints/step-N/    trainer.checkpoint (resumable), latest (the newest one's name)
    best/                  the weights with the lowest validation fMSE
    superseded/after-step-N/  what a resume from an older step N set aside: the later checkpoints, the
                           best/ of those steps and the log as it was
    trainer.lock           held while a trainer runs here: pid, host, start time

A run folder is not a model folder: load ``<run>/best`` or ``<run>/checkpoints/step-N``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from phnet.atomic import write_atomic_text
from trainer import checkpoint as ckpt
from trainer.config import LEGACY_RUN_CONFIG_NAME, RUN_CONFIG_NAME, run_config_path, to_json

if sys.platform == "win32":  # no fcntl: the lock falls back to "is the recorded pid alive"
    fcntl = None
else:
    import fcntl


def shell_word(path: Path | str, windows: bool = os.name == "nt") -> str:
    """``path`` as one word of a command the user can paste (quoted where a shell would split or read it)."""
    import re
    import shlex

    text = str(path)
    if windows:  # cmd and PowerShell: double quotes (a Windows path holds none)
        return f'"{text}"' if re.search(r"[\s&%^|<>()'`;,$]", text) else text
    return shlex.quote(text)


LOCK_NAME = "trainer.lock"
RUN_FILES = ("log.jsonl", "curves.png", "latest", RUN_CONFIG_NAME)
RUN_DIRS = ("checkpoints", "best", "superseded")


def _windows_pid_alive(pid: int) -> bool:
    """Whether the process ``pid`` of this Windows machine still runs (one that cannot be asked is taken as running)."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]  # a Windows-only name
    kernel32.OpenProcess.argtypes = (ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        error = ctypes.get_last_error()  # type: ignore[attr-defined]  # a Windows-only name
        return error != 87  # ERROR_INVALID_PARAMETER: no such process
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


class RunFolderError(RuntimeError):
    """The folder cannot be used as asked (another trainer holds it, or it holds a run to keep)."""


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root).expanduser()
        self.lock_path = self.root / LOCK_NAME
        self._lock_fd: int | None = None
        self._pending: list[Callable[[], None]] = []  # what prepare() decided, done by commit()

    # ------------------------------------------------------------------ lock
    def acquire_lock(self) -> None:
        """Hold ``trainer.lock`` until :meth:`release_lock`; refuse if a live trainer holds it.

        With ``fcntl`` the kernel holds the lock and drops it when the process dies, so a lock
        file left by a killed trainer is recognised as stale and taken over. Without it (Windows)
        the recorded pid is checked instead.
        """
        self.make_root()
        previous = self.lock_holder()
        for _ in range(100):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            with self._guard():  # a stale file is read and removed, and a taken one gets its pid, one at a time
                locked = False
                try:
                    locked = self._lock(fd, previous)
                finally:  # (closed on a refusal, and on an error or a Ctrl-C while it was taken)
                    if not locked:
                        os.close(fd)
                if locked:
                    break
                holder = self.lock_holder()
                stale = holder is not None and fcntl is not None and not self._alive(holder)
                if stale:
                    # the trainer is gone but a child it forked (a data-loader worker) still holds the file:
                    # a new file is a new lock
                    self.lock_path.unlink(missing_ok=True)
            if stale:
                continue
            if holder is not None or fcntl is None:
                self._refuse(holder)
            time.sleep(0.01)  # locked, its holder has not written its pid yet
        else:
            self._refuse(None)
        self._lock_fd = fd
        if previous and previous.get("pid") != os.getpid():
            running = previous.get("host") == socket.gethostname() and self._alive(previous)
            whose = ("another folder's trainer, which still runs (this folder was copied while it ran)" if running
                     else "a trainer that is gone")
            print(f"[trainer] {self.lock_path} was left by {whose} (pid {previous.get('pid')}); taking the folder "
                  "over", file=sys.stderr)

    def make_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise RunFolderError(f"{self.root} is a file, not a folder: give --out (train.out_dir) a folder for "
                                 f"the run")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {self.root} ({exc.strerror}); choose another --out "
                                 f"(train.out_dir)") from None

    def _lock(self, fd: int, previous: dict | None) -> bool:
        """Take the lock on the file open as ``fd`` and write this trainer's pid into it at once."""
        if fcntl is None:  # a lock file is taken when it is new or its pid is gone
            if previous is not None and self._alive(previous):
                return False
            if os.fstat(fd).st_size and previous is None:
                return False
            self._write_holder(fd)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self._write_holder(fd)
        try:  # another trainer may have deleted the file (as stale) between our open and our pid's write
            return os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _write_holder(fd: int) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """The run folder itself locked (with fcntl, where its file system allows it), so that a trainer reading
        the lock file's pid as gone and deleting the file cannot do so between another's lock and its pid."""
        fd = None
        if fcntl is not None:
            try:
                fd = os.open(self.root, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a file system that locks no folders (NFS): the pid written at once must do
                if fd is not None:
                    os.close(fd)
                fd = None
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)

    @staticmethod
    def _alive(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return True  # another machine's process cannot be checked
        try:
            pid = int(holder.get("pid", -1))
        except (TypeError, ValueError):
            return True
        if os.name == "nt":  # where os.kill(pid, 0) sends the process a Ctrl-C, or ends it
            return not 0 < pid < 1 << 32 or _windows_pid_alive(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    def _refuse(self, holder: dict | None):
        who = "another trainer"
        if holder:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
            who += f" (pid {holder.get('pid')} on {holder.get('host')}, since {since})"
        raise RunFolderError(
            f"{self.root} is in use by {who}; two trainers cannot share a run folder. Wait for it, stop it, "
            f"or choose another --out. If no trainer runs there, delete {self.lock_path}.")

    def lock_holder(self) -> dict | None:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def release_lock(self) -> None:
        if self._lock_fd is None:
            return
        if fcntl is None:  # Windows removes no file that is open
            os.close(self._lock_fd)
            self.lock_path.unlink(missing_ok=True)
        else:  # unlocked only once it is gone: a trainer starting meanwhile locks a new file
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
        self._lock_fd = None

    # ------------------------------------------------------------------ what is there
    def previous_run(self) -> list[str]:
        """What a run left here that is worth keeping: checkpoints, best/, a log of training (empty: nothing).

        A config and an empty log alone (a start that failed before its first step) are not a run.
        """
        found = [n + "/" for n in RUN_DIRS if (self.root / n).is_dir() and any((self.root / n).iterdir())]
        log = self.root / "log.jsonl"
        if log.is_file() and any('"type": "train"' in line or '"type": "val"' in line
                                 for line in log.read_text(encoding="utf-8", errors="replace").splitlines()):
            found.append(log.name)
        return found

    def remove_previous_run(self) -> None:
        legacy = run_config_path(self.root) == self.root / LEGACY_RUN_CONFIG_NAME
        for n in RUN_DIRS:
            shutil.rmtree(self.root / n, ignore_errors=True)
        for n in RUN_FILES + ((LEGACY_RUN_CONFIG_NAME,) if legacy else ()):
            (self.root / n).unlink(missing_ok=True)

    def prepare(self, resume: str | bool, overwrite: bool, steps: int | None = None) -> Path | None:
        """Decide how this start uses the folder (call with the lock held); return the checkpoint to resume.
        ``steps``: the run's train.steps; a checkpoint already there is refused before anything is moved.
        Nothing is deleted or moved until :meth:`commit`: a start refused later (a changed config, weights or
        data that are not there) leaves the folder as it was."""
        if resume and overwrite:
            raise RunFolderError("--resume continues the run and --overwrite deletes it: choose one")
        ckpt.clean_temporaries(self.root)
        if resume:
            found = Path(resume).expanduser() if isinstance(resume, str) else ckpt.latest_checkpoint(self.root)
            if found is None:
                previous = self.previous_run()
                if previous:
                    raise RunFolderError(
                        f"--resume: {self.root} holds a run ({', '.join(previous)}) but no complete checkpoint to "
                        f"continue from; start over with --overwrite instead, or choose another --out.")
                print(f"[trainer] --resume: no checkpoint in {self.root / 'checkpoints'}, starting fresh",
                      file=sys.stderr)
            else:
                self.check_resumable(found)
                done = int(ckpt.read_info(found)["step"])
                if steps is not None and done >= steps:  # it trained nothing and printed a result as if new
                    raise RunFolderError(f"--resume {found}: the run already reached step {done} of train.steps="
                                         f"{steps}; raise --steps to train further")
                own = found.resolve().parent == (self.root / "checkpoints").resolve()
                previous = [] if own else self.previous_run()
                if previous:  # its log and curves would go on from another run's history
                    raise RunFolderError(
                        f"--resume {found} is not a checkpoint of the run in {self.root} ({', '.join(previous)}): "
                        "continue it in an empty --out, or resume one of this run's own checkpoints")
                self._pending.append(lambda: self.set_aside_later_than(found))
            return found
        previous = self.previous_run()
        if previous and not overwrite:
            raise RunFolderError(
                f"{self.root} already holds a training run ({', '.join(previous)}). Pass --resume to continue "
                f"it, --overwrite to delete it and start over, or choose another --out.")
        if previous:
            self._pending.append(self._overwrite)
        return None

    def commit(self) -> None:
        """Do what :meth:`prepare` decided (delete the run --overwrite replaces, set aside a resumed run's later
        steps), once the start has passed every check: just before the run writes into the folder."""
        pending, self._pending = self._pending, []
        for action in pending:
            action()

    def _overwrite(self) -> None:
        self.remove_previous_run()
        print(f"[trainer] --overwrite: deleted the previous run in {self.root}", file=sys.stderr)

    def set_aside_later_than(self, checkpoint: Path) -> None:
        """Resuming from an older step starts a new branch: the old one's later checkpoints, its best/ and its
        log move to ``superseded/after-step-N`` (kept, but no longer what ``--resume`` or ``best/`` means)."""
        step = int(ckpt.read_info(checkpoint)["step"])
        later = [p for s, p in ckpt.step_checkpoints(self.root) if s > step]
        best = self.root / "best"
        # a best/ whose step cannot be read goes with the later checkpoints, if any: it cannot be told to be older
        if best.is_dir() and ckpt.is_complete(best) and _step_of(best, default=step + bool(later)) > step:
            later.append(best)
        if not later:
            return
        aside = self.root / "superseded" / f"after-step-{step:08d}"
        n = 1
        while aside.exists():
            n += 1
            aside = aside.with_name(f"after-step-{step:08d}-{n}")
        aside.mkdir(parents=True)
        if (self.root / "log.jsonl").is_file():
            shutil.copy2(self.root / "log.jsonl", aside / "log.jsonl")  # the resume cuts the run's own copy
        for p in later:
            os.rename(p, aside / p.name)
        latest = self.root / "latest"
        if checkpoint.resolve().parent == (self.root / "checkpoints").resolve():
            write_atomic_text(latest, checkpoint.name + "\n")
        else:
            latest.unlink(missing_ok=True)
        print(f"[trainer] --resume {checkpoint}: this run had gone on from step {step}; its later "
              f"{', '.join(p.name for p in later)} and log moved to {aside}", file=sys.stderr)

    def check_resumable(self, checkpoint: Path) -> None:
        """Refuse a missing or damaged checkpoint, naming the intact ones to resume from instead."""
        if not checkpoint.is_dir():
            raise FileNotFoundError(
                f"--resume {checkpoint}: no such checkpoint folder; give a <run>/checkpoints/step-N folder, or "
                f"--resume alone to continue from the newest checkpoint in --out")
        step_like = checkpoint.parent.name == "checkpoints" and checkpoint.name.startswith("step-")
        if not step_like and not (checkpoint / ckpt.STATE_FILE).exists():
            what = ("a run folder" if (checkpoint / "checkpoints").is_dir() else
                    "a model folder (weights only, as best/ is)" if (checkpoint / "model.safetensors").exists()
                    else "not a checkpoint")
            raise RunFolderError(
                f"--resume {checkpoint}: {what}, not a step checkpoint; give a <run>/checkpoints/step-N folder, or "
                "--resume alone (with --out the run) to continue from its newest checkpoint. To start a new run "
                "from weights, use --init-from")
        problem = ckpt.damage(checkpoint)
        if problem is None:
            return
        own_run = checkpoint.parent.parent if step_like else self.root  # a fork's checkpoint is another run's
        intact = [p for _, p in reversed(ckpt.step_checkpoints(own_run))
                  if p.resolve() != checkpoint.resolve() and ckpt.damage(p) is None]
        if intact:
            fix = "resume from an intact one instead: " + " or ".join(f"--resume {shell_word(p)}" for p in intact)
        else:
            fix = self._start_again(checkpoint, own_run)
        raise RunFolderError(f"the checkpoint {checkpoint} is damaged ({problem}); {fix}")

    def _start_again(self, checkpoint: Path, own_run: Path) -> str:
        """How to go on when ``own_run`` holds no checkpoint to resume: from its intact weights, if any."""
        def intact(p: Path) -> bool:
            return p.is_dir() and ckpt.damage(p, model_only=True) is None

        steps = [checkpoint] + [p for _, p in reversed(ckpt.step_checkpoints(own_run)) if p != checkpoint]
        newest = next((p for p in steps if intact(p)), None)  # (each one read is a whole model loaded)
        best = own_run / "best" if intact(own_run / "best") else None
        weights = [p for p in (newest, best) if p is not None]
        init_from = f"--init-from {shell_word(weights[0])}" if weights else ""
        if newest is not None and best is not None:
            init_from += f" (or --init-from {shell_word(best)})"
        if own_run.resolve() != self.root.resolve():
            return f"its run {own_run} holds no other intact checkpoint: start this run " + (
                f"from the weights with {init_from}" if weights else "afresh, or from weights with --init-from")
        if weights:
            return (f"{self.root} holds no intact checkpoint to resume, but its weights are intact: start a new run "
                    f"from them with {init_from} and another --out (--overwrite would delete them)")
        return f"{self.root} holds no intact checkpoint: start over with --overwrite"

    # ------------------------------------------------------------------ recorded config
    def recorded_config(self, checkpoint: Path | None) -> dict | None:
        """The config a resumed checkpoint was trained with (its own copy, else the run's)."""
        candidates = []
        if checkpoint is not None:
            candidates.append(Path(checkpoint) / ckpt.TRAIN_CONFIG_FILE)
        path = run_config_path(self.root)
        if path is not None:
            candidates.append(path)
        for p in candidates:
            if p.is_file():
                try:
                    return json.loads(p.read_text(encoding="utf-8"))
                except ValueError as e:
                    if p != candidates[-1] and candidates[-1].is_file():  # a checkpoint's copy: the run's record
                        print(f"[trainer] {p} is damaged ({e}): the run's {candidates[-1].name} is read instead",
                              file=sys.stderr)
                        continue
                    raise ValueError(f"{p} is damaged ({e}): restore it, or start the run again with "
                                     "--overwrite") from None
        return None

    def write_config(self, cfg: dict) -> None:
        """Record ``cfg`` as ``run_config.json`` (and retire an old run's ``config.json``)."""
        legacy = run_config_path(self.root) == self.root / LEGACY_RUN_CONFIG_NAME
        write_atomic_text(self.root / RUN_CONFIG_NAME, to_json(cfg))
        if legacy:
            (self.root / LEGACY_RUN_CONFIG_NAME).unlink(missing_ok=True)


def _step_of(folder: Path, default: int) -> int:
    """The step a checkpoint folder was saved at; ``default`` where its record is damaged."""
    try:
        return int(ckpt.read_info(folder).get("step", 0))
    except (ValueError, TypeError, AttributeError, OSError):
        return default
