"""Which low-precision arithmetic is fast on this machine (decided at run time, never assumed).

``resolve_dtype("auto", device)`` is what ``Harmonizer(dtype="auto")`` (the default) runs under:

- CPU with AMX (bf16 matrix units): bf16 autocast, about twice as fast as fp32 with outputs
  within 1/255 of it.
- CPU with AVX512-BF16 but no AMX: fp32. Measured on this project's AMX machine with oneDNN held
  to AVX512-BF16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``): bf16 was 0.8× the speed of fp32 at
  512², so there is nothing to gain.
- CPU without either: fp32 (bf16 is emulated there, several times slower).
- CUDA: bf16 where the GPU computes it natively (Ampere and later), fp16 on older GPUs with
  tensor cores (compute capability 7.x), fp32 before that.
- Anything else (MPS, XPU, ...): fp32; not measured.

The normalization statistics run in fp32 under every choice (``modeling.patches.full_precision``).
"""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHOICES = ("auto", *DTYPES)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix units (AMX): there bf16 autocast runs the convolutions
    about twice as fast as fp32. Elsewhere bf16 is emulated (or, with AVX512-BF16 alone, no faster).

    ``torch.backends.cpu.get_cpu_capability()`` does not tell (it says "AVX512" on AMX machines),
    so the AMX tile support is asked directly.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def cuda_fast_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that compute it natively, fp16 on tensor-core GPUs without it, else fp32."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, _ = torch.cuda.get_device_capability(index)
    if major >= 8:
        return torch.bfloat16
    if major == 7:
        return torch.float16
    return torch.float32


def auto_dtype(device: str | torch.device) -> torch.dtype:
    """The fastest precision that keeps the 8-bit output within 1/255 of fp32 on ``device``."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if device.type == "cuda":
        return cuda_fast_dtype(device)
    return torch.float32


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """``"auto"``/None → :func:`auto_dtype` for ``device``; "fp32"/"float32"/torch.float32 etc. as given."""
    if dtype is None or dtype == "auto":
        return auto_dtype(device)
    if isinstance(dtype, str):
        try:
            return DTYPES[dtype.replace("bfloat", "bf").replace("float", "fp")]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(CHOICES)}") from None
    if dtype not in DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}; choose one of {list(CHOICES)}")
    return dtype
