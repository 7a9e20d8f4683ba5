"""trainer.loop: no hang on data where every sample is bad, and a signal stops a run promptly."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from training_runs import REPO, fit_cmd, kill_leaving_none, process_group, read_log, run_torchrun, tiny_cfg, wait_for

from trainer.loop import READY_TO_STOP


def garbage_photos(folder):
    folder.mkdir(parents=True)
    for i in range(6):
        (folder / f"p{i}.png").write_bytes(b"not a picture " * (i + 1))
    return folder


def test_all_bad_samples_end_with_a_clear_error(tmp_path, subprocess_env):
    data = garbage_photos(tmp_path / "garbage")
    res = subprocess.run(fit_cmd(data, tmp_path / "run", "--steps", "5", "--set", 'data.on_bad_sample="skip"'),
                         cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 2, res.stderr[-3000:]
    err = res.stderr.splitlines()[-1]
    assert err.startswith("error: gave up: 10") and "bad samples in a row" in err and "max_bad_in_a_row" in err


def test_a_signal_stops_a_run_stuck_on_bad_data(tmp_path, subprocess_env):
    data = garbage_photos(tmp_path / "garbage")
    out = tmp_path / "run"
    proc = subprocess.Popen(fit_cmd(data, out, "--steps", "5", "--set", 'data.on_bad_sample="skip"',
                                    "--set", "data.max_bad_in_a_row=1000000000"),
                            cwd=REPO, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(out / "log.jsonl", proc)
        # the handler is in place once the run says so; from then on, every batch of bad samples checks
        # for a stop, so the signal needs no head start
        for line in iter(proc.stderr.readline, b""):
            if READY_TO_STOP.encode() in line:
                break
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert rc == 128 + signal.SIGTERM  # a script must not read a run cut short as done
    assert [r["event"] for r in read_log(out) if r["type"] == "event"] == ["start", "stopped by signal", "end"]
    assert not (out / "trainer.lock").exists()



def test_a_loss_that_stops_being_finite_ends_the_run_before_anything_is_saved(tmp_path, shift_set, monkeypatch):
    """The loss stays on the device between log records; the check comes before every log, validation and save."""
    import pytest

    from trainer.fit import train
    from trainer.losses import HarmonizationLoss

    calls = []
    finite_forward = HarmonizationLoss.forward

    def turns_nan_at_step_3(self, pred, real, mask):
        calls.append(1)
        total, parts = finite_forward(self, pred, real, mask)
        return (total * float("nan"), parts) if len(calls) >= 3 else (total, parts)

    monkeypatch.setattr(HarmonizationLoss, "forward", turns_nan_at_step_3)
    out = tmp_path / "run"
    cfg = tiny_cfg(shift_set, out, steps=10, log_every=5, val_every=5, ckpt_every=5)
    with pytest.raises(FloatingPointError, match=r"the training loss became nan within steps 1-5 .* lower train.lr"):
        train(cfg, progress=False)
    assert not list(out.glob("checkpoints/step-*")) and not (out / "best").exists()


def test_a_validation_split_with_no_readable_sample_stops_the_run_with_a_clear_error(tmp_path, photos):
    """It ended in a KeyError with the progress bar, and without it trained on with no validation and no best/."""
    import pytest

    from trainer.fit import train

    cfg = tiny_cfg(photos[0], tmp_path / "run", steps=4, val_every=2, batch_size=4)
    cfg["data"].update(kind="folder", val_root=str(garbage_photos(tmp_path / "garbage")), on_bad_sample="skip")
    for progress in (True, False):
        with pytest.warns(UserWarning, match="skipping bad sample") as said:
            with pytest.raises(ValueError, match="validation at step 2: none of the 6 samples of the validation split"):
                train(cfg, progress=progress, overwrite=True)
        assert sorted(str(w.message).split(": ")[0] for w in said) == [f"skipping bad sample #{i}" for i in range(6)]


def test_a_validation_folder_given_with_composite_data_is_named_as_unused(shift_set, tmp_path, capsys):
    from trainer.data import build_dataset

    build_dataset({"root": str(shift_set), "kind": "ffhqh", "val_root": str(tmp_path)}, "val", image_size=16)
    assert f"ffhqh data validate on their own split, not on {tmp_path}" in capsys.readouterr().err


def test_ctrl_c_in_a_terminal_is_answered_once_with_data_workers(tmp_path, shift_set, subprocess_env):
    """A terminal's Ctrl-C reaches the whole process group: the data workers, forked with the trainer's handler,
    each said "saving a checkpoint" too."""
    import os
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(fit_cmd(shift_set, out, "--steps", "100000", "--set", "data.num_workers=2"), cwd=REPO,
                            env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        for line in iter(proc.stderr.readline, b""):
            if READY_TO_STOP.encode() in line:
                break
        wait_for(out / "log.jsonl", proc)
        while '"type": "train"' not in (out / "log.jsonl").read_text():  # the workers are running
            assert proc.poll() is None
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert rc == 130, err[-3000:]  # as a shell reports a command Ctrl-C stopped
    assert err.count("saving a checkpoint and stopping") == 1, err[-3000:]
    assert "stopped at step" in err and "continue it with --resume" in err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the server among the run's processes in /proc")
def test_ctrl_c_while_the_workers_server_imports_the_trainer_ends_the_run_without_a_traceback(tmp_path, shift_set,
                                                                                              subprocess_env):
    """The forkserver the data workers start from imports the trainer (torch: seconds) before it ignores Ctrl-C: a
    terminal's Ctrl-C meanwhile ended the server with a KeyboardInterrupt traceback, and the trainer, whose worker
    could not start, with an EOFError's (exit status 1)."""
    import time
    from pathlib import Path

    proc = subprocess.Popen(fit_cmd(shift_set, tmp_path / "run", "--steps", "100000", "--set", "data.num_workers=2",
                                    "--set", 'data.start_method="forkserver"'), cwd=REPO, env=subprocess_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def server_loading_torch() -> bool:  # (pressed before Python runs, a signal ends any program without a word)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if b"multiprocessing.forkserver import" in Path(f"/proc/{pid}/cmdline").read_bytes() \
                        and os.getpgid(int(pid)) == proc.pid and "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                    return True
            except OSError:  # a process that ended meanwhile
                continue
        return False

    try:
        deadline = time.monotonic() + 180
        while not server_loading_torch():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode(errors="replace")
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.communicate(timeout=120)[1].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.rstrip().endswith("interrupted; the last complete checkpoint, if any, is kept (resume with --resume)"), \
        err[-3000:]


CTRL_C_AT_SERVER_START = """
import os, signal, sys
from multiprocessing import forkserver

start = forkserver._forkserver.ensure_running


def ensure_running():
    if not getattr(forkserver, "ctrl_c_sent", False):  # the first start, the trainer's own, before any worker's
        forkserver.ctrl_c_sent = True
        print("[test] Ctrl-C while the workers' server starts", file=sys.stderr, flush=True)
        os.killpg(0, signal.SIGINT)
    return start()


forkserver.ensure_running = forkserver._forkserver.ensure_running = ensure_running
"""


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no forkserver")
def test_ctrl_c_while_the_trainer_starts_the_workers_server_stops_the_run(tmp_path, shift_set, subprocess_env):
    """The trainer ignored Ctrl-C while it started the server, so that the server would: one pressed then was lost,
    and the run trained on to its end without a word."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CTRL_C_AT_SERVER_START)
    env = dict(subprocess_env, PYTHONPATH=str(site) + os.pathsep + subprocess_env["PYTHONPATH"])
    res = subprocess.run(fit_cmd(shift_set, tmp_path / "run", "--steps", "20", "--set", "data.num_workers=2",
                                 "--set", 'data.start_method="forkserver"'), cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300, start_new_session=True)
    assert "[test] Ctrl-C while the workers' server starts" in res.stderr, res.stderr[-3000:]
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.stderr.count("interrupted") == 1, res.stderr[-3000:]
    assert res.stderr.rstrip().endswith(
        "interrupted; the last complete checkpoint, if any, is kept (resume with --resume)"), res.stderr[-3000:]
    assert not (tmp_path / "run" / "log.jsonl").exists() or '"type": "train"' not in (
        tmp_path / "run" / "log.jsonl").read_text()


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no forkserver")
def test_the_workers_server_starts_with_ctrl_c_held_and_the_trainer_gets_its_own_back(monkeypatch):
    """The server, started by the calling thread, inherits its signal mask; the trainer's Ctrl-C is as it was after."""
    import threading

    from trainer.data.workers import start_forkserver

    held = []
    monkeypatch.setattr("multiprocessing.forkserver.ensure_running",
                        lambda: held.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    handler, mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    start_forkserver()
    assert held == [True]
    assert signal.getsignal(signal.SIGINT) is handler and signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    thread = threading.Thread(target=start_forkserver)  # (a handler only the main thread may set: a mask any may)
    thread.start()
    thread.join()
    assert held == [True, True]


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no forkserver")
def test_workers_from_a_forkserver_of_a_run_started_as_a_module_say_nothing(tmp_path, shift_set, subprocess_env):
    """python -m trainer.fit runs trainer.fit as __main__, which each worker runs again (as multiprocessing does):
    with trainer.fit imported in the server already, every worker warned "'trainer.fit' found in sys.modules after
    import of package 'trainer' ... this may result in unpredictable behaviour"."""
    res = subprocess.run(fit_cmd(shift_set, tmp_path / "run", "--steps", "2", "--set", "data.num_workers=2",
                                 "--set", 'data.start_method="forkserver"', "--set", "train.val_every=2",
                                 "--set", "train.warmup_steps=0"),
                         cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Warning" not in res.stderr, res.stderr[-3000:]


@pytest.mark.skipif(not os.path.isdir("/proc/self") or "forkserver" not in __import__("multiprocessing")
                    .get_all_start_methods(), reason="lists the run's processes in /proc; needs a forkserver")
def test_a_trainer_killed_outright_leaves_none_of_its_processes_running(tmp_path, shift_set, subprocess_env):
    """SIGKILL (kill -9, the out-of-memory killer) of the trainer alone left its workers' forkserver, both workers
    and the resource tracker running for good: each worker held the server's "alive" pipe open, and the server, their
    parent, kept torch's check in each worker (is my parent the same?) from ever firing."""
    import time

    out = tmp_path / "run"
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(fit_cmd(shift_set, out, "--steps", "100000", "--set", "data.num_workers=2",
                                        "--set", 'data.start_method="forkserver"', "--set", "train.log_every=1"),
                                cwd=REPO, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)

    try:
        wait_for(out / "log.jsonl", proc, timeout=240)
        while '"type": "train"' not in (out / "log.jsonl").read_text():  # a first step: the workers are running
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            time.sleep(0.05)
        assert len(process_group(proc.pid)) >= 4, process_group(proc.pid)  # the trainer, the server, two workers
        assert kill_leaving_none(proc) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_spawned_data_workers_leave_ctrl_c_to_the_trainer_and_end_on_sigterm(tmp_path, shift_set):
    """Spawned workers (macOS, Windows) started with Python's own handlers: a terminal's Ctrl-C ended each, and
    the trainer waiting on a batch failed with "DataLoader worker exited unexpectedly" instead of stopping. SIGTERM
    stays theirs: ignoring it, a persistent worker held the process at exit (multiprocessing ends them with it)."""
    from torch.utils.data import DataLoader

    from trainer.distributed import Dist
    from trainer.fit import build_data

    data = build_data(tiny_cfg(shift_set, tmp_path / "run"), Dist("cpu"), 32, 0, progress=False)
    for loader in (data.train_loader, data.val_loader):
        handlers = DataLoader([signal.SIGINT, signal.SIGTERM], batch_size=None, collate_fn=signal.getsignal,
                              num_workers=1, multiprocessing_context="spawn", worker_init_fn=loader.worker_init_fn)
        assert list(handlers) == [signal.SIG_IGN, signal.SIG_DFL]


def test_data_workers_start_from_a_server_not_by_forking_the_threaded_trainer(shift_set, tmp_path, recwarn):
    """The trainer has threads when its workers start (torch's, a pin-memory thread, a process group's), and a
    worker forked from it inherits any lock one of them held: from Python 3.12 on, each start warned "This process
    ... is multi-threaded, use of fork() may lead to deadlocks in the child". Where the platform's default is fork,
    the workers start from a forkserver (Python 3.14's default there); data.start_method names another."""
    import multiprocessing
    import sys
    import warnings

    from trainer.distributed import Dist
    from trainer.fit import build_data, train

    cfg = tiny_cfg(shift_set, tmp_path / "run", steps=2, batch_size=4, val_every=0, ckpt_every=0)
    cfg["data"]["num_workers"] = 2
    assert cfg["data"]["start_method"] == "auto"
    data = build_data(cfg, Dist("cpu"), 32, 0, progress=False)
    started = {loader.multiprocessing_context.get_start_method() for loader in (data.train_loader, data.val_loader)}
    default = multiprocessing.get_all_start_methods()[0]
    assert started == {"forkserver" if default in ("fork", "forkserver") else default}
    if sys.platform == "linux":
        assert started == {"forkserver"}
    warnings.simplefilter("always", DeprecationWarning)
    result = train(cfg, progress=False)
    assert result["step"] == 2
    assert not [w for w in recwarn if "fork()" in str(w.message)]
    cfg["data"]["start_method"] = "spawn"
    data = build_data(cfg, Dist("cpu"), 32, 0, progress=False)
    assert data.train_loader.multiprocessing_context.get_start_method() == "spawn"


def test_photos_held_in_memory_are_shared_with_forked_workers(photos, tmp_path):
    """Only forked workers share the photos data.preload holds: a forkserver's or spawn's worker gets a copy of its
    own, so "auto" forks them where it would start them from a forkserver."""
    import multiprocessing

    from trainer.distributed import Dist
    from trainer.fit import build_data

    cfg = tiny_cfg(photos[0], tmp_path / "run")
    cfg["data"].update(num_workers=2, preload=True, mask_dir=str(photos[1]))
    data = build_data(cfg, Dist("cpu"), 32, 0, progress=False)
    assert data.train_set.preloaded is not None
    default = multiprocessing.get_all_start_methods()[0]
    assert {loader.multiprocessing_context.get_start_method() for loader in (data.train_loader, data.val_loader)} \
        == {"fork" if default in ("fork", "forkserver") else default}
    cfg["data"]["start_method"] = "forkserver"
    assert build_data(cfg, Dist("cpu"), 32, 0, progress=False).train_loader.multiprocessing_context \
        .get_start_method() == "forkserver"


@pytest.mark.parametrize("platform_default, preloaded, started", [
    ("fork", False, "forkserver"), ("fork", True, "fork"),  # Linux up to Python 3.13
    ("forkserver", False, "forkserver"), ("forkserver", True, "fork"),  # Linux from Python 3.14
    ("spawn", False, "spawn"), ("spawn", True, "spawn"),  # macOS, Windows
])
def test_auto_starts_workers_by_the_platforms_default_and_the_preload(monkeypatch, platform_default, preloaded,
                                                                      started):
    import multiprocessing

    from trainer.data.workers import worker_start_method

    others = [m for m in ("fork", "spawn", "forkserver") if m != platform_default]
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: [platform_default, *others])
    monkeypatch.setattr("trainer.data.workers.start_forkserver", lambda: None)
    assert worker_start_method({"start_method": "auto"}, preloaded) == started
    assert worker_start_method({}, preloaded) == started
    assert worker_start_method({"start_method": "spawn"}, preloaded) == "spawn"


@pytest.mark.parametrize("method, server", [("fork", False), ("forkserver", True), ("spawn", False)])
def test_a_start_method_given_is_kept_and_a_forkserver_starts_with_the_commands_imports(monkeypatch, method,
                                                                                         server):
    import multiprocessing

    from trainer.data.workers import worker_start_method

    done = []
    monkeypatch.setattr(multiprocessing, "set_forkserver_preload", lambda names: done.append(names))
    monkeypatch.setattr("trainer.data.workers.start_forkserver", lambda: done.append("started"))
    monkeypatch.setattr("trainer.data.workers.server_preload", lambda module: [f"imports of {module}"])
    assert worker_start_method({"start_method": method}, False, "trainer.evaluate") == method
    assert done == ([["imports of trainer.evaluate"], "started"] if server else [])


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_start_method_the_platform_lacks_is_refused_naming_what_it_has(monkeypatch, method):
    """Windows starts processes by spawn alone: fork or forkserver given there is refused before any worker starts,
    not left to fail inside multiprocessing."""
    import multiprocessing

    from trainer.data.workers import worker_start_method

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr("trainer.data.workers.start_forkserver", lambda: pytest.fail("no server where none exists"))
    with pytest.raises(ValueError, match=f'data.start_method "{method}" does not exist on this platform, which '
                                         'starts processes by spawn: set "auto" or one of those'):
        worker_start_method({"start_method": method})
    assert worker_start_method({"start_method": "auto"}) == "spawn"


def test_a_forkserver_imports_the_command_or_what_the_program_run_as_it_imports(monkeypatch):
    """Run as the program (python -m), the module is not imported again in the server: the modules its names come
    from are, where they are loaded, leaving out the program itself."""
    import json
    import shlex
    import sys
    import types

    from trainer.data.workers import server_preload

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="trainer.fit")
    main.shlex, main.dumps = shlex, json.dumps  # a module, and a function of another
    main.fit = types.SimpleNamespace(__module__="trainer.fit")  # the program's own name, by its module's name
    main.gone = types.SimpleNamespace(__module__="a_module_not_loaded")
    main.number = 3  # names no module
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setitem(sys.modules, "trainer.fit", main)
    assert server_preload("trainer.fit") == ["json", "shlex"]
    assert server_preload("trainer.evaluate") == ["trainer.evaluate"]


def test_a_data_worker_ignores_ctrl_c_and_ends_on_sigterm():
    """A forked worker inherits the trainer's handlers: Ctrl-C is left to the trainer, and SIGTERM, which the
    trainer's stop handler catches, ends the worker again."""
    from trainer.data.workers import ignore_stop_signals

    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for number in previous:
            signal.signal(number, lambda *_: None)  # the trainer's stop handler
        ignore_stop_signals(0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_an_unknown_start_method_is_refused_by_its_key():
    from trainer.config import load_config

    with pytest.raises(ValueError, match='data.start_method must be one of "auto", "fork", "forkserver", "spawn"'):
        load_config("tiny_cpu", sets=["data.start_method=thread"])


def test_the_logged_rate_counts_the_wait_for_the_windows_last_steps(shift_set, tmp_path, monkeypatch):
    """On a GPU the loss read at a log step is where the loop waits for the steps still queued: that wait
    belongs to the window's time, or the rate reads too high."""
    import time

    from trainer.fit import train
    from trainer.loop import LossWindow

    read = LossWindow.read

    def slow_read(window):
        time.sleep(0.5)  # the queued steps finishing
        return read(window)

    monkeypatch.setattr(LossWindow, "read", slow_read)
    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=5, batch_size=8, log_every=5, val_every=0, ckpt_every=0), progress=False)
    rate = next(r["samples_per_s"] for r in read_log(out) if r["type"] == "train")
    assert rate <= 40 / 0.5  # 5 steps of 8 composites took at least the wait


def test_the_logged_rate_leaves_out_validation_and_checkpoints(shift_set, tmp_path, monkeypatch):
    """A window started before its step's validation and checkpoint counted their time as training: 36
    composites/s fell to 10 after a validation of 3 s."""
    import time

    from trainer import loop
    from trainer.fit import train

    validate = loop.TrainingLoop.validate
    monkeypatch.setattr(loop.TrainingLoop, "validate", lambda self: time.sleep(2.0) or validate(self))
    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, batch_size=8, log_every=2, val_every=2, ckpt_every=2), progress=False)
    first, second = (r["samples_per_s"] for r in read_log(out) if r["type"] == "train")
    assert second > 16 / 2.0  # 2 steps of 8 composites, without the 2 s spent validating before them


@pytest.mark.slow
def test_the_log_holds_the_losses_and_rate_of_every_process(shift_set, tmp_path, subprocess_env):
    """With two processes the loss, its parts and the rate came from process 0's window alone: half of the run's
    samples, and a rate that counted process 0's samples twice while process 1 had skipped bad ones."""
    import json
    import sys
    from pathlib import Path

    out, windows = tmp_path / "ddp-windows", tmp_path / "windows.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("one_process_fails.py")), "--config", "tiny_cpu", "--data", str(shift_set),
           "--out", str(out), "--steps", "4", "--no-progress", "--set", "train.log_every=2", "--set",
           "train.val_every=0", "--set", "train.ckpt_every=0", "--set", "data.num_workers=0", "--set",
           "train.batch_size=4", "--set", 'data.on_bad_sample="skip"', "--device", "cpu"]
    res = run_torchrun(cmd, cwd=REPO, env={**subprocess_env, "FAULT": "skip", "AT": "3", "WINDOWS": str(windows)})
    assert res.returncode == 0, res.stderr[-3000:]
    own = [json.loads(line) for line in windows.read_text().splitlines()]
    records = [r for r in read_log(out) if r["type"] == "train"]
    assert [r["step"] for r in records] == [2, 4]
    for rec in records:
        first, second = sorted((w for w in own if w["step"] == rec["step"]), key=lambda w: w["rank"])
        for key in set(first) - {"rank", "step", "n", "samples"}:  # the loss and its parts, summed in each window
            assert rec[key] == pytest.approx((first[key] + second[key]) / (first["n"] + second["n"]), rel=1e-6), key
        assert rec["samples_per_s"] == pytest.approx((first["samples"] + second["samples"]) / 10.0)
    assert [w["samples"] for w in own if w["step"] == 2] in ([8, 5], [5, 8])  # process 1 skipped 3


def test_one_process_logs_the_mean_loss_and_rate_of_its_window(shift_set, tmp_path, monkeypatch):
    import types

    from trainer import loop
    from trainer.fit import train

    windows = []
    log_window = loop.TrainingLoop.log_window

    def recorded(self):
        self.window.t = 0.0
        windows.append((self.window.read(), self.window.samples))
        return log_window(self)

    monkeypatch.setattr(loop.TrainingLoop, "log_window", recorded)
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: 10.0))  # ten seconds in every window
    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, batch_size=4, log_every=2, val_every=0, ckpt_every=0, warmup_steps=0),
          progress=False)
    records = [r for r in read_log(out) if r["type"] == "train"]
    assert len(records) == len(windows) == 2
    for rec, ((loss, parts), samples) in zip(records, windows):
        assert rec["loss"] == loss and all(rec[k] == v for k, v in parts.items())
        assert rec["samples_per_s"] == samples / 10.0


def test_each_record_logs_the_learning_rate_its_step_trained_with(shift_set, tmp_path, monkeypatch):
    """The rate logged was the schedule's next one: too high through the warm-up, the floor at the end."""
    from trainer import loop
    from trainer.fit import train

    used = {}
    step = loop.TrainingLoop.train_step

    def recorded(self):
        used[self.pos.step + 1] = self.optimizer.param_groups[0]["lr"]
        return step(self)

    monkeypatch.setattr(loop.TrainingLoop, "train_step", recorded)
    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=6, batch_size=4, log_every=1, val_every=0, ckpt_every=0, warmup_steps=3,
                   lr=1e-3), progress=False)
    logged = {r["step"]: r["lr"] for r in read_log(out) if r["type"] == "train"}
    assert logged == pytest.approx(used) and len(set(logged.values())) > 2


def test_a_stop_keeps_the_checkpoint_and_score_of_its_step_and_its_last_losses(tmp_path, shift_set, monkeypatch):
    """The stop saved the step's checkpoint again without its validation score; a run cut short by its time
    budget never logged the losses of its last steps."""
    import json
    import os

    from trainer.fit import train
    from trainer.loop import TrainingLoop

    scored = TrainingLoop.validate

    def validate_then_stop(self):
        result = scored(self)
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would, while the step's work goes on
        return result

    monkeypatch.setattr(TrainingLoop, "validate", validate_then_stop)
    out = tmp_path / "stopped"
    train(tiny_cfg(shift_set, out, steps=6, val_every=2, ckpt_every=2, log_every=1), progress=False)
    info = json.loads((out / "checkpoints" / "step-00000002" / "checkpoint.json").read_text())
    assert info["val"] is not None
    monkeypatch.setattr(TrainingLoop, "validate", scored)
    monkeypatch.setattr(TrainingLoop, "out_of_time", lambda self, started: self.pos.step >= 3)
    out = tmp_path / "budget"
    train(tiny_cfg(shift_set, out, steps=10, val_every=0, ckpt_every=0, log_every=2), progress=False)
    assert [r["step"] for r in read_log(out) if r["type"] == "train"][-1] == 3
    monkeypatch.setattr(TrainingLoop, "out_of_time", lambda self, started: False)
    stepped = TrainingLoop.train_step

    def step_then_stop(self):  # a signal after step 5, between two log records (every 4 steps)
        stepped(self)
        if self.pos.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TrainingLoop, "train_step", step_then_stop)
    out = tmp_path / "signalled"
    train(tiny_cfg(shift_set, out, steps=20, val_every=0, ckpt_every=0, log_every=4), progress=False)
    assert [r["step"] for r in read_log(out) if r["type"] == "train"] == [4, 5]


def test_a_second_stop_signal_ends_with_one_line_and_the_signals_code(monkeypatch, capsys):
    """It ended with a traceback out of the checkpoint writer, and the code of a SIGINT for a SIGTERM."""
    from trainer import fit
    from trainer.loop import StoppedAtOnce

    def stopped(args):
        raise StoppedAtOnce(signal.SIGTERM)

    monkeypatch.setattr(fit, "run_cli", stopped)
    assert fit.main(["--config", "tiny_cpu"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.startswith("error: stopped at once by a second signal 15") and "Traceback" not in err


def test_a_stop_between_micro_batches_leaves_no_trace_of_the_step(tmp_path, shift_set, monkeypatch):
    """With grad_accum 2, a stop while skipping bad data for the second micro-batch logged the first one's loss
    as a second record of the step before, and saved the batch-norm statistics it had moved."""
    import torch
    from safetensors.torch import load_file

    from trainer.fit import train
    from trainer.loop import TrainingLoop, _Stop

    fetched, stepped = TrainingLoop.next_batch, TrainingLoop.train_step
    calls, after_two = [], {}

    def stop_at_the_third_steps_second_micro_batch(self):
        calls.append(self.pos.step)
        if calls.count(2) == 2:
            self.stop.requested = True
            raise _Stop
        return fetched(self)

    def step_and_remember(self):
        stepped(self)
        if self.pos.step == 2:
            after_two.update({k: v.clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(TrainingLoop, "next_batch", stop_at_the_third_steps_second_micro_batch)
    monkeypatch.setattr(TrainingLoop, "train_step", step_and_remember)
    out = tmp_path / "stopped"
    train(tiny_cfg(shift_set, out, steps=6, grad_accum=2, batch_size=1, warmup_steps=0, val_every=0, ckpt_every=0,
                   log_every=1),
          progress=False)
    assert [r["step"] for r in read_log(out) if r["type"] == "train"] == [1, 2]
    saved = load_file(next((out / "checkpoints" / "step-00000002").glob("*.safetensors")))
    moved = [k for k, v in after_two.items() if k in saved and not torch.equal(saved[k], v)]
    assert not moved, moved


def test_a_validation_split_with_no_near_right_composite_says_so(shift_set, tmp_path, capsys):
    """Every composite of this set carries a strong cast: the progress line and the log gave a near-right fMSE of
    0.0 (a perfect score) over none."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=1, batch_size=4, val_every=1, ckpt_every=0, warmup_steps=0),
          progress=True)
    val = next(r for r in read_log(out) if r["type"] == "val")
    assert val["near_right_n"] == 0 and val["n"] > 0
    assert val["near_right_fmse"] is None and val["composite_near_right_fmse"] is None
    err = capsys.readouterr().err
    assert "near-right n/a (none in this split) untouched" in err and "near-right fMSE" not in err


def test_a_process_whose_persistent_data_workers_are_left_running_still_exits(tmp_path):
    """Workers that ignored SIGTERM outlived Python's exit, which ends them with it and then waits for them: the
    process (the test suite itself, once) never exited."""
    import sys
    from pathlib import Path

    script = tmp_path / "left_running.py"
    script.write_text(
        "from torch.utils.data import DataLoader\n"
        "from trainer.data.workers import ignore_stop_signals\n"
        "loader = DataLoader(list(range(8)), batch_size=2, num_workers=2, persistent_workers=True,\n"
        "                    multiprocessing_context='fork', worker_init_fn=ignore_stop_signals)\n"
        "batches = iter(loader)\n"
        "next(batches)\n"
        "print('left running', flush=True)\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "left running" in done.stdout, done.stderr[-2000:]


def test_a_run_ended_by_an_error_ends_its_data_workers(tmp_path, photos):
    """Its persistent workers lived on to Python's exit, which ended them with SIGTERM: after the run's one error
    line, torch printed 'Exception ignored in atexit callback ... DataLoader worker (pid N) is killed by signal'."""
    import multiprocessing
    import shutil

    import pytest

    from trainer.data.common import BadSampleError
    from trainer.fit import train

    data = tmp_path / "photos"
    shutil.copytree(photos[0], data)
    bad = sorted(data.iterdir())[3]
    bad.write_bytes(bad.read_bytes()[:300])  # truncated
    cfg = tiny_cfg(data, tmp_path / "run", steps=20, val_every=0, batch_size=4)
    cfg["data"]["num_workers"] = 2
    before = set(multiprocessing.active_children())
    with pytest.raises(BadSampleError, match=f"unreadable image {bad}"):
        train(cfg, progress=False)
    assert set(multiprocessing.active_children()) <= before


def test_a_step_backpropagates_its_micro_batches_mean_loss_and_clips_the_unscaled_gradient(shift_set, tmp_path,
                                                                                           monkeypatch):
    """grad_accum = 2 under a gradient scaler: the loss backpropagated over a step is the mean of its micro-batches'
    (the one logged), and the optimizer steps with the gradient clipped to train.grad_clip after unscaling. Adam
    hides a gradient's overall scale, so the weights alone would not tell a sum, or a clip of the scaled gradient."""
    import torch

    import trainer.fit as fit

    backpropagated, norms = [], []

    class Scaler(torch.amp.GradScaler):
        def scale(self, outputs):
            backpropagated.append(float(outputs.detach()))
            return super().scale(outputs)

    def norm_at_step(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    build_optimizer = fit.build_optimizer

    def hooked(params, t):
        opt = build_optimizer(params, t)
        opt.register_step_pre_hook(norm_at_step)
        return opt

    # a CPU scaler, and the run on the CPU with it: its unscaling takes gradients of its own device
    monkeypatch.setattr(fit.torch.amp, "GradScaler", lambda *a, **k: Scaler("cpu", init_scale=2.0 ** 10))
    monkeypatch.setattr(fit, "build_optimizer", hooked)
    out = tmp_path / "run"
    fit.train(tiny_cfg(shift_set, out, steps=3, batch_size=2, grad_accum=2, grad_clip=1e-3, log_every=1,
                       warmup_steps=0, val_every=0, ckpt_every=0, device="cpu"), progress=False)
    logged = [r["loss"] for r in read_log(out) if r["type"] == "train"]
    assert len(backpropagated) == 6 and len(norms) == 3
    assert [a + b for a, b in zip(backpropagated[::2], backpropagated[1::2])] == pytest.approx(logged, rel=1e-5)
    assert norms == pytest.approx([1e-3] * 3, rel=1e-4)  # the tiny model's gradients are far above it


def test_the_weight_average_takes_each_step_s_weights_once_after_the_step(shift_set, tmp_path, monkeypatch):
    """train.ema: the average starts as the first step's weights, then moves by (1 - decay) towards each later
    step's, one update per optimizer step."""
    import torch

    import trainer.fit as fit

    averages, weights = [], []

    class Recorded(fit.WeightAverage):
        def __init__(self, model, decay):
            super().__init__(model, decay)
            averages.append(self)

    def hooked(params, t):
        opt = build_optimizer(params, t)
        opt.register_step_post_hook(
            lambda o, a, k: weights.append([p.detach().clone() for g in o.param_groups for p in g["params"]]))
        return opt

    build_optimizer = fit.build_optimizer
    monkeypatch.setattr(fit, "WeightAverage", Recorded)
    monkeypatch.setattr(fit, "build_optimizer", hooked)
    fit.train(tiny_cfg(shift_set, tmp_path / "run", steps=3, batch_size=4, ema=0.5, val_every=0, ckpt_every=0,
                       warmup_steps=0),
              progress=False)
    assert len(weights) == 3
    expected = weights[0]
    for later in weights[1:]:
        expected = [0.5 * e + 0.5 * w for e, w in zip(expected, later)]
    trained = [p for p in averages[0].module.parameters() if p.requires_grad]
    assert len(trained) == len(expected)
    assert all(torch.allclose(a, e, atol=1e-7) for a, e in zip(trained, expected))


def test_a_checkpoint_of_a_step_not_validated_records_no_earlier_step_s_score(tmp_path, shift_set, monkeypatch):
    """Validated at step 2, saved at step 3 (by its interval, or by a stop after a signal): step 3's checkpoint holds
    other weights than those scored, so it records no score; the last step's records its own."""
    import json

    from trainer.fit import train
    from trainer.loop import TrainingLoop

    stepped = TrainingLoop.train_step

    def step_then_stop(self):
        stepped(self)
        if self.pos.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TrainingLoop, "train_step", step_then_stop)
    out = tmp_path / "run"
    result = train(tiny_cfg(shift_set, out, steps=8, batch_size=4, val_every=2, ckpt_every=0, warmup_steps=0),
                   progress=False)
    assert result["step"] == 3 and [r["step"] for r in read_log(out) if r["type"] == "val"] == [2]
    assert json.loads((out / "checkpoints" / "step-00000003" / "checkpoint.json").read_text())["val"] is None
    monkeypatch.setattr(TrainingLoop, "train_step", stepped)
    out = tmp_path / "intervals"
    train(tiny_cfg(shift_set, out, steps=4, batch_size=4, val_every=2, ckpt_every=3, warmup_steps=0),
          progress=False)
    infos = [json.loads((out / "checkpoints" / f"step-{s:08d}" / "checkpoint.json").read_text()) for s in (3, 4)]
    scored = [r["fmse"] for r in read_log(out) if r["type"] == "val"]
    assert infos[0]["val"] is None and infos[1]["val"]["fmse"] == scored[-1]


def test_a_run_that_reaches_its_last_step_as_the_time_budget_ends_is_not_said_to_be_cut_short(tmp_path, shift_set,
                                                                                                monkeypatch, capsys):
    from trainer.fit import train
    from trainer.loop import TrainingLoop

    monkeypatch.setattr(TrainingLoop, "out_of_time", lambda self, started: True)
    out = tmp_path / "run"
    result = train(tiny_cfg(shift_set, out, steps=1, batch_size=4, val_every=0, ckpt_every=0, warmup_steps=0),
                   progress=False)
    assert result["step"] == 1
    assert not [r for r in read_log(out) if r["type"] == "event" and "time budget" in r["event"]]
    assert "time budget" not in capsys.readouterr().err


def test_a_validation_score_equal_to_the_best_is_no_improvement(tmp_path, shift_set, monkeypatch):
    """A model that stopped changing (an lr decayed to 0) scores the same at every check: patience stops it, and
    best/ keeps the first weights that scored it."""
    import json

    import trainer.loop
    from trainer.fit import train

    monkeypatch.setattr(trainer.loop, "validate", lambda *a, **k: {"n": 4, "fmse": 500.0, "mse": 1.0})
    out = tmp_path / "run"
    result = train(tiny_cfg(shift_set, out, steps=100, batch_size=4, val_every=2, ckpt_every=0, patience=2,
                            warmup_steps=0), progress=False)
    assert result["step"] == 6 and result["best_val_fmse"] == 500.0
    assert json.loads((out / "best" / "checkpoint.json").read_text())["step"] == 2
