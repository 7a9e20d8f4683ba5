"""How data-loader workers start: one rule for the trainer and the evaluation."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import types


def worker_start_method(d_cfg: dict, preloaded: bool = False, server_imports: str = "trainer.fit") -> str:
    """How the data workers start (``data.start_method``). "auto": where the platform's default is fork or
    forkserver (Linux; forkserver from Python 3.14), from a forkserver, unless the photos are ``preloaded``, which
    only forked workers share (each other worker gets a copy of them); elsewhere the platform's default (spawn). The
    trainer has threads when its workers start (torch's, a pin-memory thread, a process group's), and a worker forked
    from it inherits any lock one of them held at that moment. A forkserver imports ``server_imports`` (the calling
    command's module) before it forks any worker; it is started here (see :func:`start_forkserver`)."""
    method = d_cfg.get("start_method", "auto")
    if method == "auto":
        default = multiprocessing.get_all_start_methods()[0]
        method = ("fork" if preloaded else "forkserver") if default in ("fork", "forkserver") else default
    available = multiprocessing.get_all_start_methods()
    if method not in available:  # Windows has spawn alone
        raise ValueError(f'data.start_method "{method}" does not exist on this platform, which starts processes by '
                         f'{" or ".join(available)}: set "auto" or one of those')
    if method == "forkserver":
        # the server, one thread, imports what a worker runs once: each worker forks from it instead of importing
        # torch anew (seconds each, and memory of its own); a server already running keeps what it has
        multiprocessing.set_forkserver_preload(server_preload(server_imports))
        start_forkserver()
    return method


def server_preload(module: str) -> list[str]:
    """What a forkserver imports for ``module``'s workers: the module, or, where it is the program (python -m), the
    modules it imports. A worker runs a program started with -m again as its main (multiprocessing does), and where
    the server had imported that module, runpy warned in every worker that it "may result in unpredictable
    behaviour"."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != module:
        return [module]
    names = {value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
             for value in vars(main).values()}
    return sorted(name for name in names if isinstance(name, str) and name in sys.modules
                  and name not in ("__main__", module))


def start_forkserver() -> None:
    """Starts the forkserver (where none runs) with Ctrl-C blocked. A server ignores it only once its imports are
    done (torch: seconds), and a terminal sends Ctrl-C to the whole process group: pressed meanwhile, it ended the
    server with a traceback, and the run with another, its workers unable to start. A signal a thread blocks stays
    blocked in the programs it starts: the server's Ctrl-C waits until it ignores Ctrl-C, which drops it, and its
    workers' until their own start does. The trainer's own Ctrl-C meanwhile waits until the mask is put back, then
    stops the run as anywhere else; ignored instead (as it was), it was lost, and the run trained on to its end."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()  # its start unblocks SIGINT (having blocked it for its own child): first
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def ignore_stop_signals(worker_id: int) -> None:
    """A data worker's start: the trainer alone answers Ctrl-C, which a terminal sends to the whole process group
    (a spawned worker, as on macOS and Windows, died of it, and the trainer waiting on its batch with it). SIGTERM
    ends a worker as it did: the DataLoader's shutdown and Python's exit stop workers with it, and one ignoring it
    held the process at exit for good."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker's copy of the trainer's stop handler ignored it


def end_with_the_loaders_process(worker_id: int) -> None:
    """A data worker's start that lets it end when the process that made its loader is killed outright (SIGKILL, the
    kernel's out-of-memory killer), as a worker forked from it does. A forkserver gives each worker the write end of
    its "alive" pipe, and ends only once no process holds one: its workers kept it running, and it, their parent,
    kept them running (torch's worker ends when its parent changes), for good. Without the worker's copy, the server
    ends when that process does, and its workers with it (torch checks every 5 s)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    alive = getattr(server, "_forkserver_alive_fd", None)
    if server.get_inherited_fds() is not None and alive is not None:  # a worker of a forkserver
        os.close(alive)
        setattr(server, "_forkserver_alive_fd", None)  # (Python's own name; its type stubs leave it out)


def start_training_worker(worker_id: int) -> None:
    """A training data worker's start: Ctrl-C left to the trainer (:func:`ignore_stop_signals`), and an end with
    the trainer's, however it ends (:func:`end_with_the_loaders_process`)."""
    end_with_the_loaders_process(worker_id)
    ignore_stop_signals(worker_id)
