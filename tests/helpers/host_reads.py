"""Counting the reads of tensor values back to the host (``.item()``, ``float(t)``, ``bool(t)``, ...).

On a GPU each such read makes the host wait for the queued work, and none may happen while a CUDA graph
is captured. On the CPU they cost nothing, so tests count them instead: every read goes through
``aten::_local_scalar_dense``.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default)


class HostReads(TorchDispatchMode):
    """``with HostReads() as reads: ...`` then ``reads.count``."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READS:
            self.count += 1
        return func(*args, **(kwargs or {}))
