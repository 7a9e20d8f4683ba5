"""trainer.data.workers, in process: the start method's refusal and defaults, what a forkserver imports, its start
with Ctrl-C held, and a worker's copy of the server's "alive" pipe. Real runs of these: test_loop.py's, slower."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import types

import pytest

needs_a_forkserver = pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                                        reason="no forkserver")


def test_a_start_method_the_platform_lacks_is_refused_naming_every_method_it_has(monkeypatch):
    """A POSIX platform that cannot pass file descriptors has fork and spawn, and no forkserver."""
    from trainer.data.workers import worker_start_method

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["fork", "spawn"])
    monkeypatch.setattr("trainer.data.workers.start_forkserver", lambda: pytest.fail("no server where none exists"))
    with pytest.raises(ValueError, match='data.start_method "forkserver" does not exist on this platform, which '
                                         'starts processes by fork or spawn: set "auto" or one of those'):
        worker_start_method({"start_method": "forkserver"})


@needs_a_forkserver
def test_the_trainers_workers_server_imports_the_trainer_unless_told_another_command(monkeypatch):
    """trainer.fit names no module: its server imports what the trainer runs, not the evaluation's."""
    from trainer.data.workers import worker_start_method

    imports = []
    monkeypatch.setattr(multiprocessing, "set_forkserver_preload", lambda names: imports.append(names))
    monkeypatch.setattr("trainer.data.workers.start_forkserver", lambda: None)
    monkeypatch.setattr("trainer.data.workers.server_preload", lambda module: [f"imports of {module}"])
    assert worker_start_method({"start_method": "forkserver"}) == "forkserver"
    assert worker_start_method({"start_method": "forkserver"}, True) == "forkserver"
    assert imports == [["imports of trainer.fit"]] * 2


def test_a_program_run_with_m_is_found_as_main_though_its_own_name_is_not_loaded(monkeypatch):
    """python -m trainer.fit loads the trainer as __main__ alone, not under its name: its server still imports what
    it imports, not trainer.fit (each worker warned that it 'may result in unpredictable behaviour')."""
    import shlex

    from trainer.data.workers import server_preload

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="trainer.fit")
    main.shlex = shlex
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.delitem(sys.modules, "trainer.fit", raising=False)
    assert server_preload("trainer.fit") == ["shlex"]


@needs_a_forkserver
def test_the_workers_server_starts_with_ctrl_c_held_though_the_resource_tracker_starts_first(monkeypatch):
    """Python's server start starts the resource tracker first where none runs, and that start unblocks Ctrl-C
    (having blocked it for its own child): in the server's start, it let a Ctrl-C end the server as it imported."""
    from multiprocessing import resource_tracker

    tracker, held = [], []

    def start_tracker():  # as Python's: once, and Ctrl-C unblocked after
        if not tracker:
            tracker.append("started")
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def start_server():
        resource_tracker.ensure_running()
        held.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))

    from trainer.data.workers import start_forkserver

    monkeypatch.setattr(resource_tracker, "ensure_running", start_tracker)
    monkeypatch.setattr("multiprocessing.forkserver.ensure_running", start_server)
    start_forkserver()
    assert tracker == ["started"] and held == [True]


@needs_a_forkserver
def test_ctrl_c_held_before_the_workers_server_starts_is_still_held_after(monkeypatch):
    """The mask is put back as it was, not Ctrl-C unblocked (a resource tracker's start, Python's own, does that)."""
    from trainer.data.workers import start_forkserver

    monkeypatch.setattr("multiprocessing.resource_tracker.ensure_running", lambda: None)  # one runs already
    monkeypatch.setattr("multiprocessing.forkserver.ensure_running", lambda: None)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        start_forkserver()
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before | {signal.SIGINT}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class ServerState:
    """multiprocessing.forkserver's state in a process: the fds a forkserver passed it (None where no forkserver
    started it) and the write end of the server's "alive" pipe (a worker's, or its starter's)."""

    def __init__(self, inherited, alive):
        self._inherited_fds, self._forkserver_alive_fd = inherited, alive

    def get_inherited_fds(self):
        return self._inherited_fds


@pytest.fixture()
def alive_pipe():
    """(read end, write end): the read end is the server's, which ends once no process holds the write end."""
    fds = os.pipe()
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:  # closed by the test
            pass


def ended(server_end: int) -> bool:
    """Whether the server would see its "alive" pipe's end: no process holds its write end."""
    os.set_blocking(server_end, False)
    try:
        return os.read(server_end, 1) == b""
    except BlockingIOError:  # a write end still open
        return False


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@needs_a_forkserver
def test_a_forkservers_worker_lets_go_of_the_servers_alive_pipe_once(monkeypatch, alive_pipe):
    """A forkserver ends once no process holds its "alive" pipe: a worker that kept its copy kept the server, its
    parent, running when the loader's process was killed, and the server kept the worker. A second call leaves alone
    whatever file has the pipe's old number by then."""
    from trainer.data.workers import end_with_the_loaders_process

    server_end, alive = alive_pipe
    state = ServerState([], alive)
    monkeypatch.setattr("multiprocessing.forkserver._forkserver", state)
    end_with_the_loaders_process(0)
    assert ended(server_end)
    assert state._forkserver_alive_fd is None
    os.dup2(server_end, alive)  # another file, by the same number
    end_with_the_loaders_process(0)
    assert is_open(alive)


@needs_a_forkserver
def test_a_process_no_forkserver_started_keeps_the_alive_pipe_of_the_server_it_started(monkeypatch, alive_pipe):
    """The loader's own process (or one forked from it) holds the pipe that keeps its server running: closed
    there, the server would end under loaders still starting workers from it."""
    from trainer.data.workers import end_with_the_loaders_process

    monkeypatch.setattr("multiprocessing.forkserver._forkserver", ServerState(None, alive_pipe[1]))
    end_with_the_loaders_process(0)
    assert is_open(alive_pipe[1])
    monkeypatch.setattr("multiprocessing.forkserver._forkserver", ServerState(None, None))
    end_with_the_loaders_process(0)  # no server at all


@needs_a_forkserver
def test_a_training_worker_ends_with_the_trainer_and_leaves_it_ctrl_c(monkeypatch, alive_pipe):
    """Both starts: the pipe let go (above), and Ctrl-C left to the trainer (test_loop.py tests that start itself)."""
    from trainer.data import workers

    started = []
    monkeypatch.setattr("multiprocessing.forkserver._forkserver", ServerState([], alive_pipe[1]))
    monkeypatch.setattr(workers, "ignore_stop_signals", started.append)
    workers.start_training_worker(1)
    assert started == [1] and ended(alive_pipe[0])
