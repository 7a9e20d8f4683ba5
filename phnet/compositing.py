"""Paste a cut-out subject onto a background: the composite PHNet then harmonizes.

No ComfyUI / WebUI imports here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["paste_subject", "ANCHORS"]

# Where on the (scaled) subject the (x, y) point sits, as fractions of its width / height.
ANCHORS: dict[str, tuple[float, float]] = {
    "top-left": (0.0, 0.0),
    "center": (0.5, 0.5),
    "bottom-center": (0.5, 1.0),
}


def _as_float_array(x: Any, what: str) -> np.ndarray:
    """numpy / torch / PIL → float32 array in [0, 1] with a channel axis (H x W x C)."""
    try:
        from PIL import Image

        if isinstance(x, Image.Image):
            if x.mode in ("RGBA", "LA", "RGB", "L"):
                arr = np.asarray(x)
            elif "A" in x.getbands() or x.info.get("transparency") is not None:
                arr = np.asarray(x.convert("RGBA"))
            elif x.mode in ("1", "I", "I;16", "F"):
                arr = np.asarray(x.convert("L"))
            else:
                arr = np.asarray(x.convert("RGB"))
            x = arr
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float().numpy() if x.is_floating_point() else x.numpy()
    arr = np.asarray(x)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"{what} must be H x W, H x W x C (C = 1, 2, 3 or 4) or a PIL image; got shape {tuple(arr.shape)}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(arr.shape)}).")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"{what} has unsupported dtype {arr.dtype}: use uint8 (0..255) or float (0..1).")


def _split_rgb_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    c = arr.shape[-1]
    if c == 1:
        return np.repeat(arr, 3, axis=-1), None
    if c == 2:  # grey + alpha
        return np.repeat(arr[..., :1], 3, axis=-1), arr[..., 1]
    if c == 3:
        return arr, None
    return arr[..., :3], arr[..., 3]


def _as_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    try:
        from PIL import Image

        if isinstance(mask, Image.Image):
            mask = mask.getchannel("A") if mask.mode in ("RGBA", "LA") else mask.convert("L")
    except ImportError:  # pragma: no cover
        pass
    arr = _as_float_array(mask, "subject_mask")
    if arr.shape[-1] != 1:
        raise ValueError(f"subject_mask must have one channel (H x W), got shape {tuple(arr.shape)}.")
    arr = arr[..., 0]
    if arr.shape != shape:
        raise ValueError(
            f"subject_mask is {arr.shape[1]}x{arr.shape[0]} but the subject is {shape[1]}x{shape[0]}; "
            "they must be the same size."
        )
    return arr


def _resize(rgb: np.ndarray, alpha: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased resize of colour + alpha.

    Colour is resized premultiplied by alpha and divided back afterwards, so the (often
    garbage) colour of fully transparent pixels does not bleed into the subject's edge.
    """
    if size_hw == alpha.shape:
        return rgb, alpha
    t_rgb = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    t_a = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    both = torch.cat([t_rgb * t_a, t_a], dim=1)
    out = F.interpolate(both, size=size_hw, mode="bilinear", antialias=True, align_corners=False)
    a = out[:, 3:].clamp(0.0, 1.0)
    col = torch.where(a > 1e-6, out[:, :3] / a.clamp_min(1e-6), torch.zeros_like(out[:, :3])).clamp(0.0, 1.0)
    return col[0].permute(1, 2, 0).numpy(), a[0, 0].numpy()


def paste_subject(
    background: Any,
    subject: Any,
    subject_mask: Any = None,
    x: float = 0,
    y: float = 0,
    scale: float = 1.0,
    anchor: str = "top-left",
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite ``subject`` onto ``background``.

    background: H x W (x C) numpy uint8 / float 0..1, torch, or PIL. Alpha is ignored.
    subject: same kinds; an RGBA / LA subject's alpha is its mask unless ``subject_mask``
        is given; with neither, the whole subject rectangle is pasted.
    x, y: background pixel where the ``anchor`` point of the scaled subject lands.
    anchor: "top-left", "center" or "bottom-center" (feet on the floor).
    scale: resize factor for subject and mask (antialiased).

    Returns ``(composite, mask)``: float32 H x W x 3 in [0, 1] and float32 H x W in [0, 1]
    in background coordinates (soft alpha kept). Parts of the subject outside the
    background are clipped; a subject entirely outside raises ``ValueError``.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {list(ANCHORS)}, got {anchor!r}.")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"x and y must be finite numbers, got ({x!r}, {y!r}).")

    bg, _ = _split_rgb_alpha(_as_float_array(background, "background"))
    rgb, alpha = _split_rgb_alpha(_as_float_array(subject, "subject"))
    sh, sw = alpha.shape if alpha is not None else rgb.shape[:2]
    if subject_mask is not None:
        alpha = _as_mask(subject_mask, (sh, sw))
    elif alpha is None:
        alpha = np.ones((sh, sw), np.float32)

    new_h = max(1, int(round(sh * scale)))
    new_w = max(1, int(round(sw * scale)))
    rgb, alpha = _resize(rgb, alpha, (new_h, new_w))

    ax, ay = ANCHORS[anchor]
    left = int(math.floor(x - ax * new_w + 0.5))
    top = int(math.floor(y - ay * new_h + 0.5))

    bh, bw = bg.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + new_w, bw), min(top + new_h, bh)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"The subject ({new_w}x{new_h} px after scale {scale}) placed with its {anchor} at "
            f"({x}, {y}) lies entirely outside the {bw}x{bh} background; move x/y inside it."
        )

    comp = bg.copy()
    mask = np.zeros((bh, bw), np.float32)
    a = alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    s = rgb[y0 - top : y1 - top, x0 - left : x1 - left]
    region = comp[y0:y1, x0:x1]
    comp[y0:y1, x0:x1] = region * (1.0 - a[..., None]) + s * a[..., None]
    mask[y0:y1, x0:x1] = a
    return np.ascontiguousarray(comp, dtype=np.float32), mask
