"""The native-dtype fast path of ``Harmonizer.__call__``.

It takes the caller's pixels as they are, without a full-size float copy, when they plainly follow
the rules in :mod:`phnet.imageio`; for anything else it returns None and the caller goes through
``image_to_tensor`` / ``mask_to_tensor``, which own the rules and the error messages.
"""

from __future__ import annotations


from typing import Any

import numpy as np
import torch

from ..compat import UINT16, aminmax
from .decode import _GREY_16, frame_count, is_pil, pil_image_pixels
from .images import (LAYOUTS, ImageForm, _from_bchw, _guess_torch_layout, _tensor_view, _to_bchw, integer_peak,
                     is_strided, pil_info, pil_result)
from .orientation import orientation, orientation_lost

_NATIVE_DTYPES = tuple(t for t in (torch.uint8, UINT16, torch.float16, torch.bfloat16, torch.float32, torch.float64)
                       if t is not None)


def image_pixels(image: Any, layout: str | None = None) -> tuple[torch.Tensor, float, ImageForm] | None:
    """→ (B×H×W×C view of the caller's RGB/RGBA pixels in their own dtype, full-intensity value, form).

    Grey pictures are seen as RGB through a view (no copy) and come back RGB, as from image_to_tensor. A PIL
    picture is read as image_to_tensor reads it: turned upright, a palette or grey with alpha made RGB or RGBA.
    None where the fast path does not apply (unusual dtypes, values that image_to_tensor would reject):
    use image_to_tensor then.
    """
    if is_pil(image):
        if image.mode in (*_GREY_16, "F") or _several_frames(image):
            return None  # (16/32-bit grey and animations: image_to_tensor refuses them by name)
        data: Any = pil_image_pixels(image, "image", allow_16bit=False)  # upright, RGB(A) or grey as it reads them
        kind, layout = "pil", "HWC" if data.ndim == 3 else "HW"
    elif isinstance(image, np.ndarray):
        kind, data = "numpy", image
        layout = layout or {2: "HW", 3: "HWC", 4: "BHWC"}.get(image.ndim)
    elif isinstance(image, torch.Tensor):
        if not is_strided(image):
            return None
        kind, data = "torch", image
        try:
            layout = layout or _guess_torch_layout(image)
        except ValueError:
            return None
    else:
        return None
    if layout not in LAYOUTS or data.ndim != len(layout) or min(data.shape, default=0) < 1:
        return None
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "uf":
            return None
        try:
            t = _tensor_view(data)
        except (TypeError, ValueError):  # a dtype torch has not
            return None
    else:
        t = data.detach()
    if t.dtype not in _NATIVE_DTYPES:
        return None
    pixels = _to_bchw(t, layout).permute(0, 2, 3, 1)
    if pixels.shape[-1] == 1:  # grey: the result is RGB, in the layout with channels
        pixels = pixels.expand(-1, -1, -1, 3)
        layout = layout if "C" in layout else layout.replace("HW", "HWC")
    if pixels.shape[-1] not in (3, 4):
        return None
    peak = integer_peak(t.dtype)
    if peak is None:  # floats, alpha included: finite and in 0..1 (the same tolerance as _to_unit_float)
        low, high = aminmax(t)  # the caller's own tensor: the same values, read in its order (a permuted view of a
        # B×C×H×W one took six times as long)
        lo, hi = low.item(), high.item()
        if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also False for NaN
            return None
        peak = 1.0
    info = pil_info(image) if kind == "pil" else None
    return pixels, peak, ImageForm(kind, layout, data.dtype, pixels.shape[-1], data, t.device, info)


def image_from_pixels(pixels: torch.Tensor, form: ImageForm) -> Any:
    """B×H×W×C pixels in the input's dtype (C as in the input) → the input's kind and layout."""
    out = _from_bchw(pixels.permute(0, 3, 1, 2), form.layout)
    if form.kind == "torch":
        return out.to(form.device)
    array = out.cpu().numpy()
    if form.kind == "pil":
        return pil_result(array, form)
    return array


def mask_pixels(mask: Any, batch: int, height: int, width: int,
                one_scale: bool = False) -> tuple[torch.Tensor, float] | None:
    """→ (B×H×W mask in its own dtype, the value meaning "fully subject"); None: use mask_to_tensor.
    ``one_scale``: as for mask_to_tensor (a clip's frames)."""
    if is_pil(mask):
        if mask.mode not in ("L", "1") or _has_orientation(mask) or _several_frames(mask):
            return None
        mask = np.array(mask)
    if isinstance(mask, np.ndarray):
        try:
            t = _tensor_view(mask)
        except (TypeError, ValueError):
            return None
    elif isinstance(mask, torch.Tensor):
        if not is_strided(mask):
            return None
        t = mask.detach()
    else:
        return None
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    elif t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or tuple(t.shape[1:]) != (height, width) or t.shape[0] not in (1, batch):
        return None
    if t.dtype == torch.bool:
        t, peak = t.to(torch.uint8), 1.0
    elif t.dtype == torch.uint8:
        highs = t.reshape(t.shape[0], -1).amax(dim=1)
        peak = 1.0 if int(highs.max()) <= 1 else 255.0  # a 0/1 mask is binary, as mask_to_tensor reads it
        if peak > 1 and not one_scale and bool((highs == 1).any()):
            return None  # 0/1 masks beside 0..255 ones: mask_to_tensor reads each on its own scale
    elif t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        lo, hi = aminmax(t)
        if not (lo.item() >= 0 and hi.item() <= 1):  # also False for NaN
            return None
        peak = 1.0
    else:
        return None
    return t.expand(batch, -1, -1), peak


def _has_orientation(image) -> bool:
    """A PIL image whose EXIF (or XMP) asks for a rotation, or whose orientation damaged EXIF lost: the slow path
    turns it upright, or says it cannot."""
    try:
        return orientation(image) != 1 or orientation_lost(image)
    except Exception:  # unreadable EXIF: let the slow path decide
        return True


def _several_frames(image) -> bool:
    """An animation or a multi-page TIFF (its pages not walked): the slow path refuses it by name."""
    try:
        return frame_count(image) > 1
    except Exception:  # a damaged page: the slow path names it
        return True
