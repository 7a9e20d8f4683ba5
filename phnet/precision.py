"""Which low-precision arithmetic is fast on this machine (decided at run time, never assumed)."""

from __future__ import annotations

import torch


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix units (AMX): there bf16 autocast runs the convolutions
    about twice as fast as fp32. Elsewhere bf16 is emulated and slower than fp32.

    ``torch.backends.cpu.get_cpu_capability()`` does not tell (it says "AVX512" on AMX machines),
    so the AMX tile support is asked directly.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False
