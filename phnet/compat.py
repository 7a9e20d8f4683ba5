"""What older torch lacks that the library uses: host programs bring their own torch, 2.1 and 2.3 among them,
ComfyUI 2.4 and later. Each name is the newer API where torch has it, and its nearest equivalent where not."""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from typing import Iterator

import torch

_VERSION = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
# torch 2.3 has uint16 but no arithmetic on it (no type promotion): before 2.4, 16-bit pictures are refused
UINT16 = getattr(torch, "uint16", None) if _VERSION >= (2, 4) else None


def autocast_available(device_type: str) -> bool:
    """``torch.amp.is_autocast_available`` (torch 2.4); before it autocast knew the CPU and CUDA."""
    check = getattr(torch.amp, "is_autocast_available", None)
    return check(device_type) if check is not None else device_type in ("cpu", "cuda")


def autocast_enabled(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)`` (torch 2.4); before it one function per device. False on a
    device this torch has no autocast for (MPS before torch 2.5: asking raised)."""
    if not autocast_available(device_type):
        return False
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no argument, CUDA's; the CPU had its own
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def need_uint16(what: str) -> None:
    """A ``ValueError`` naming the fix where this torch has no 16-bit unsigned integers."""
    if UINT16 is None:
        raise ValueError(f"{what} holds 16-bit pixels, which need torch 2.4 or later (this is torch "
                         f"{torch.__version__}): upgrade torch, or convert the picture to 8 bits")


def widened(t: "torch.Tensor") -> "torch.Tensor":
    """``t`` in a dtype torch has max, comparisons and where for on the CPU in every version we support: an
    unsigned integer over 8 bits (uint16, uint32, uint64) as the signed one that holds its values."""
    if t.is_floating_point() or t.dtype.is_signed or t.dtype in (torch.uint8, torch.bool):
        return t
    return t.to(torch.int32 if t.element_size() <= 2 else torch.int64)


def aminmax(t: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """``torch.aminmax``; torch before 2.2 has no fp16 kernel for it on the CPU (a half IMAGE from a host)."""
    try:
        return torch.aminmax(t)
    except RuntimeError:
        if t.dtype != torch.float16:
            raise
        return t.min(), t.max()


_WARNINGS = threading.RLock()


@contextlib.contextmanager
def catching_warnings() -> Iterator[None]:
    """``warnings.catch_warnings()`` one block at a time: it swaps process-wide state, so two blocks interleaving in
    a host's threads left the filters of one in place for good. The library's blocks around one call go through here."""
    with _WARNINGS, warnings.catch_warnings():
        yield


@functools.lru_cache(maxsize=None)
def cpu_autocast_takes_fp16() -> bool:
    """Whether CPU autocast runs in fp16: torch 2.1 allows bf16 only (it warns, and turns autocast off)."""
    with catching_warnings():
        warnings.simplefilter("error")
        try:
            with torch.autocast("cpu", dtype=torch.float16):
                return True
        except (RuntimeError, UserWarning):
            return False
