"""Work on large pictures in tiles of rows: how many pixels a tile holds on each device, and the rule that
runs many tile-sized CPU ops on one thread."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

TILE_PIXELS = 1 << 16  # per tile on the CPU: a few float copies of it stay in the core's L2 cache
DEVICE_TILE_PIXELS = 1 << 22  # per tile on a GPU: few launches, and an 8K picture's float copies stay bounded


def tile_pixels(device: torch.device) -> int:
    """How many pixels a tile holds on ``device``."""
    return TILE_PIXELS if device.type == "cpu" else DEVICE_TILE_PIXELS


@contextlib.contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Run many small CPU ops on one thread. Each multi-threaded op wakes the other threads and
    waits for them; over hundreds of tile-sized ops that cost 12× the work itself on a busy
    2-core machine (1.45 s against 0.12 s for a 4K image). Threads that share a Harmonizer may overlap
    here, and a thread that starts inside another's call reads its 1: each thread gets back the count the
    first of them saw. What this cannot mend: torch gives a thread the process's count at its first torch
    operation, so a thread whose first one falls inside another thread's block keeps 1 when it comes here
    after that block has closed (its results are the same, only slower); the README's library section names
    the remedy, a torch.set_num_threads in each worker before its first call."""
    if device.type != "cpu":
        yield
        return
    with _ONE_THREAD_LOCK:
        if _one_thread["callers"] == 0:
            _one_thread["threads"] = torch.get_num_threads()
        _one_thread["callers"] += 1
        threads = _one_thread["threads"]
    depth = getattr(_ONE_THREAD_DEPTH, "depth", 0)  # a call inside a call in this thread changes nothing
    _ONE_THREAD_DEPTH.depth = depth + 1
    if threads != 1 and depth == 0:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        _ONE_THREAD_DEPTH.depth = depth
        with _ONE_THREAD_LOCK:
            _one_thread["callers"] -= 1
        if threads != 1 and depth == 0:
            torch.set_num_threads(threads)


_ONE_THREAD_LOCK = threading.Lock()
_one_thread = {"callers": 0, "threads": 1}
_ONE_THREAD_DEPTH = threading.local()
