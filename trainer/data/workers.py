"""How data-loader workers start: one rule for the trainer and the evaluation."""

from __future__ import annotations

import multiprocessing


def worker_start_method(d_cfg: dict, preloaded: bool = False, server_imports: str = "trainer.fit") -> str:
    """How the data workers start (``data.start_method``). "auto": where the platform's default is fork or
    forkserver (Linux; forkserver from Python 3.14), from a forkserver, unless the photos are ``preloaded``, which
    only forked workers share (each other worker gets a copy of them); elsewhere the platform's default (spawn). The
    trainer has threads when its workers start (torch's, a pin-memory thread, a process group's), and a worker forked
    from it inherits any lock one of them held at that moment. A forkserver imports ``server_imports`` (the calling
    command's module) before it forks any worker."""
    method = d_cfg.get("start_method", "auto")
    if method == "auto":
        default = multiprocessing.get_all_start_methods()[0]
        method = ("fork" if preloaded else "forkserver") if default in ("fork", "forkserver") else default
    if method == "forkserver":
        # the server, one thread, imports what a worker runs once: each worker forks from it instead of importing
        # torch anew (seconds each, and memory of its own); a server already running keeps what it has
        multiprocessing.set_forkserver_preload([server_imports])
    return method
