"""Which precision to compute in, for inference and for training: one policy, decided at run time.

:func:`native_low_precision` says which low precision the hardware computes natively: bf16 on CPUs
with AMX (bf16 matrix units), bf16 on GPUs of compute capability 8 and later, fp16 on 7.x, none
elsewhere (bf16 is emulated on other CPUs, and with AVX512-BF16 alone it ran at 0.8× fp32 at 512²
on this project's AMX machine with oneDNN held to that instruction set).

Whether it pays is measured per device and per use:

- **Inference** (``resolve_dtype("auto", device)``, what ``Harmonizer(dtype="auto")`` runs under):
  on the CPU the native low precision, about twice as fast as fp32 with the 8-bit output within
  1/255 of it where the do-no-harm threshold holds a correction back, and up to 6/255 for one applied
  whole. On CUDA fp32: on an H200 a call is host- and launch-bound (512² 27.0 ms fp32 vs
  27.6 ms bf16, 8K 247 vs 237 ms, the bare network 6.6 vs 6.1 ms per image), so bf16 gained nothing
  and moved the 8-bit output by 3/255. Anything else (MPS, XPU, ...): fp32, not measured.
- **Training** (:func:`training_dtype`): the native low precision wherever there is one. A batch
  of crops keeps the convolutions busy, which is where low precision pays; fp16 needs a
  ``GradScaler`` (:func:`needs_grad_scaling`), bf16 does not.

The normalization statistics run in fp32 under every choice (``modeling.patches.full_precision``).
"""

from __future__ import annotations

from typing import Any

import torch

from .choices import PRECISIONS as CHOICES
from .compat import autocast_available, cpu_autocast_takes_fp16

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


def native_low_precision(device: str | torch.device) -> torch.dtype | None:
    """The low precision ``device`` computes natively (bf16 or fp16), or None."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if device.type == "cuda":
        dtype = cuda_fast_dtype(device)
        return None if dtype == torch.float32 else dtype
    return None


def auto_dtype(device: str | torch.device) -> torch.dtype:
    """Inference: the fastest precision measured to pay on ``device`` with the 8-bit output close to fp32's
    (within 1/255 for a correction the threshold holds back, 6/255 for one applied whole: see the module
    docstring): the CPU's native low precision, fp32 on GPUs and elsewhere."""
    device = torch.device(device)
    if device.type == "cpu":
        return native_low_precision(device) or torch.float32
    return torch.float32


def training_dtype(device: str | torch.device) -> torch.dtype:
    """Training: the native low precision of ``device`` under autocast, else fp32."""
    return native_low_precision(device) or torch.float32


def needs_grad_scaling(dtype: torch.dtype) -> bool:
    """fp16 gradients underflow without a GradScaler; bf16 has fp32's range and needs none."""
    return dtype == torch.float16


# fp16 at twice the fp32 rate before tensor cores: P100 (6.0), Jetson TX2 (6.2), Jetson Nano and TX1 (5.3)
FAST_FP16_BEFORE_7 = {(5, 3), (6, 0), (6, 2)}


def slow_on(dtype: torch.dtype, device: str | torch.device) -> str | None:
    """Why ``dtype`` asked for by name is slower than fp32 on ``device``, or None. bf16 on a GPU before
    compute capability 8 (T4, V100, RTX 20xx), and fp16 before 7 (GTX 10xx; not P100 or Jetson), have no fast
    kernels, and convolutions fall back to slow ones; on a CPU without AMX bf16 is emulated (20-27x slower than
    fp32 measured with AVX2 alone), and fp16 has no fast convolutions on any CPU."""
    device = torch.device(device)
    if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        return ("bf16 on this CPU (no AMX bf16 units) is emulated and runs many times slower than fp32: choose "
                "dtype 'fp32' or 'auto'")
    if device.type == "cpu" and dtype == torch.float16:
        return "fp16 on the CPU has no fast convolutions and runs slower than fp32: choose dtype 'fp32' or 'auto'"
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        fast_fp16 = major >= 7 or (major, minor) in FAST_FP16_BEFORE_7
        if (dtype == torch.bfloat16 and major < 8) or (dtype == torch.float16 and not fast_fp16):
            name, other = ("bf16", "'fp16' or 'auto'" if fast_fp16 else "'fp32' or 'auto'") if (
                dtype == torch.bfloat16) else ("fp16", "'fp32' or 'auto'")
            return (f"{name} on {torch.cuda.get_device_name(index)} (compute capability {major}.{minor}) has no "
                    f"native kernels and runs slower than fp32: choose dtype {other}")
    return None


def _short_name(name: str) -> str:
    """"bfloat16" → "bf16", "float32" → "fp32": a precision's name as :data:`DTYPES` keys it."""
    return name.replace("bfloat", "bf").replace("float", "fp")


def names_a_precision(value: Any) -> bool:
    """Whether ``value`` names a precision (a torch.dtype, "auto", "fp16", "bfloat16"...) rather than a device; fp64
    too, so that :func:`resolve_dtype` refuses it as a precision."""
    return isinstance(value, torch.dtype) or (
        isinstance(value, str) and (value == "auto" or _short_name(value) in (*DTYPES, "fp64")))


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """``"auto"``/None → :func:`auto_dtype` for ``device``; "fp32"/"float32"/torch.float32 etc. as given."""
    if dtype is None or dtype == "auto":
        return auto_dtype(device)
    if isinstance(dtype, str):
        try:
            dtype = DTYPES[_short_name(dtype)]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(CHOICES)}") from None
    if dtype not in DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}; choose one of {list(CHOICES)}")
    if dtype == torch.float16 and torch.device(device).type == "cpu" and not cpu_autocast_takes_fp16():
        choices = "bf16, fp32 or auto" if cpu_has_fast_bf16() else "fp32 or auto"  # (bf16 is emulated without AMX)
        raise ValueError(f"fp16 on the CPU needs a newer torch than {torch.__version__}: choose {choices}")
    kind = torch.device(device).type
    if dtype != torch.float32 and not autocast_available(kind):
        name = next(key for key, value in DTYPES.items() if value == dtype)
        raise ValueError(f"{name} runs under autocast, which torch {torch.__version__} "
                         f"does not have for {kind}: choose fp32 or auto (or a newer torch)")
    return dtype
