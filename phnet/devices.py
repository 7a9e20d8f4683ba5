"""Which device to run on: the best one here by default, and why a named one cannot be used, in words that
end with the fix."""

from __future__ import annotations

import torch


def device_problem(device: str | torch.device) -> str | None:
    """Why ``device`` cannot be used here, in words that end with the fix (a name torch does not know, a GPU
    this machine lacks, a kind torch cannot place tensors on, the meta device); None when it can."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return "not a device name torch knows; use cpu, cuda (or cuda:N) or mps"
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch here; use cpu"
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            return f"torch sees {torch.cuda.device_count()} CUDA GPU(s), numbered from 0; use cuda:0"
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "MPS (Apple GPU) is not available to torch here; use cpu"
    if chosen.type == "xpu" and not (getattr(torch, "xpu", None) and torch.xpu.is_available()):
        return "no Intel XPU is visible to torch here; use cpu"
    if chosen.type == "meta":
        return "the meta device holds no data, so nothing could be computed or given back; use cpu or cuda"
    if chosen.type not in ("cpu", "cuda", "mps", "xpu"):  # DirectML ("privateuseone"), NPUs...: if torch can
        try:
            torch.zeros(1, device=chosen)
        except Exception as exc:  # torch's own words differ by kind: module missing, unsupported scalar type...
            return f"torch cannot place tensors on it here ({type(exc).__name__}); use cpu, cuda (or cuda:N) or mps"
    return None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` (default: CUDA, else MPS, else the CPU), a GPU with its index: tensors report theirs
    ("cuda:0"), and a device compared with theirs must be spelt the same way. A ``ValueError`` naming the fix
    for a device this machine does not have (see :func:`device_problem`)."""
    if device is not None:
        problem = device_problem(device)
        if problem:
            raise ValueError(f"device {str(device)!r}: {problem}")
        chosen = torch.device(device)
    elif torch.cuda.is_available():
        chosen = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        chosen = torch.device("mps")
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda" and chosen.index is None and torch.cuda.is_available():
        chosen = torch.device("cuda", torch.cuda.current_device())
    return chosen
