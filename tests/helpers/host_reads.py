"""Counting the reads of tensor values back to the host (``.item()``, ``float(t)``, ``bool(t)``,
``.tolist()``, ``nonzero``, ...).

On a GPU each such read makes the host wait for the queued work, and none may happen while a CUDA graph
is captured. On the CPU they cost nothing, so tests count them instead: scalar reads go through
``aten::_local_scalar_dense`` (``bool(t)`` through ``aten::is_nonzero``), operations whose output size
depends on the values (``nonzero``) read the count, and ``Tensor.tolist`` (which bypasses the dispatcher on
the CPU) is counted where it is called. So is a value built on the host and sent to a device
(``torch.tensor(..., device=...)``): on a GPU that copy waits for the queued work too.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default, torch.ops.aten.is_nonzero.default,
         torch.ops.aten.nonzero.default, torch.ops.aten.masked_select.default)


class HostReads(TorchDispatchMode):
    """``with HostReads() as reads: ...`` then ``reads.count``."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._tolist = self._tensor = None

    def __enter__(self):
        self._tolist, self._tensor = torch.Tensor.tolist, torch.tensor
        reads, tolist, tensor = self, self._tolist, self._tensor

        def counted(t, *args, **kwargs):
            reads.count += 1
            return tolist(t, *args, **kwargs)

        def sent(data, *args, **kwargs):
            if kwargs.get("device") is not None:
                reads.count += 1
            return tensor(data, *args, **kwargs)

        torch.Tensor.tolist, torch.tensor = counted, sent
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist, torch.tensor = self._tolist, self._tensor
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READS:
            self.count += 1
        return func(*args, **(kwargs or {}))
