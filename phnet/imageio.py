"""Conversions between what callers hand us (PIL, numpy, torch) and B×C×H×W float tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

LAYOUTS = ("HWC", "BHWC", "CHW", "BCHW", "HW", "BHW")


@dataclass
class ImageForm:
    """How an input image was given, so the result goes back in the same form."""

    kind: str  # "pil" | "numpy" | "torch"
    layout: str  # one of LAYOUTS
    dtype: Any  # numpy / torch dtype of the input pixels
    channels: int  # 1 (grey), 3 or 4 (alpha kept aside and put back untouched)
    original: Any  # the input's pixels (array or tensor): outside the mask they are copied verbatim
    device: Any = None


def _integer_peak(dtype) -> float | None:
    if dtype in (np.uint8, torch.uint8):
        return 255.0
    if dtype in (np.uint16, torch.uint16):
        return 65535.0
    return None


def image_to_tensor(image: Any, layout: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None, ImageForm]:
    """→ (B×3×H×W float32 RGB in [0, 1], B×1×H×W alpha or None, form)."""
    if _is_pil(image):
        data: Any = _pil_to_array(image)
        form_kind, layout = "pil", "HWC" if data.ndim == 3 else "HW"
    elif isinstance(image, np.ndarray):
        form_kind, data = "numpy", image
        layout = layout or {2: "HW", 3: "HWC", 4: "BHWC"}.get(image.ndim)
    elif isinstance(image, torch.Tensor):
        form_kind, data = "torch", image
        layout = layout or _guess_torch_layout(image)
    else:
        raise TypeError(
            f"unsupported image type {type(image).__name__}: pass a PIL image, a numpy array (HWC/BHWC) or a "
            "torch tensor (BHWC/BCHW)"
        )
    if layout not in LAYOUTS or data.ndim != len(layout):
        raise ValueError(f"an image of shape {tuple(data.shape)} does not match layout {layout!r}")

    dtype = data.dtype
    t = torch.from_numpy(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
    device = t.device
    t = _to_bchw(t, layout)
    channels = t.shape[1]
    if channels not in (1, 3, 4):
        raise ValueError(f"an image needs 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels} (layout {layout})")
    if t.shape[-1] < 1 or t.shape[-2] < 1 or t.shape[0] < 1:
        raise ValueError(f"empty image of shape {tuple(data.shape)}")
    t = _to_unit_float(t, dtype)
    alpha = t[:, 3:4] if channels == 4 else None
    rgb = t[:, :3] if channels >= 3 else t.expand(-1, 3, -1, -1)
    form = ImageForm(form_kind, layout, dtype, channels, data, device)
    return rgb.contiguous(), alpha, form


def tensor_to_image(rgb: torch.Tensor, alpha: torch.Tensor | None, form: ImageForm, keep: torch.Tensor) -> Any:
    """Inverse of image_to_tensor. Where ``keep`` (B×1×H×W bool) is set, the input's own pixels are returned."""
    rgb = rgb.clamp(0, 1)
    if form.channels == 4:
        rgb = torch.cat([rgb, alpha], dim=1)
    peak = _integer_peak(form.dtype)
    if form.kind == "torch":
        out = _from_unit(rgb, peak, form.dtype).to(form.device)
        orig = form.original
    else:  # numpy, or the array a PIL image was read into
        out = _from_unit(rgb.cpu(), peak, np.dtype(form.dtype))
        orig = torch.from_numpy(np.ascontiguousarray(form.original))
    orig = _to_bchw(orig, form.layout)
    if form.channels == 1:
        orig = orig.expand(-1, 3, -1, -1)
    out = torch.where(keep.to(out.device), orig.to(out.device), out)
    out_layout = form.layout.replace("HW", "HWC") if form.layout in ("HW", "BHW") else form.layout
    out = _from_bchw(out, out_layout)
    if form.kind == "torch":
        return out
    if form.kind == "pil":
        from PIL import Image

        return Image.fromarray(out.numpy(), "RGBA" if form.channels == 4 else "RGB")
    return out.numpy()


def mask_to_tensor(mask: Any, batch: int, height: int, width: int) -> torch.Tensor:
    """→ B×1×H×W float32 in [0, 1]; one mask broadcasts over a batch."""
    if _is_pil(mask):
        if mask.mode in ("RGBA", "LA", "PA"):
            mask = mask.getchannel("A")
        elif mask.mode not in ("1", "L", "I", "I;16", "F"):
            mask = mask.convert("L")
        array = np.array(mask)
        t = torch.from_numpy(np.ascontiguousarray(array))
        dtype: Any = array.dtype
    elif isinstance(mask, np.ndarray):
        t, dtype = torch.from_numpy(np.ascontiguousarray(mask)), mask.dtype
    elif isinstance(mask, torch.Tensor):
        t, dtype = mask, mask.dtype
    else:
        raise TypeError(f"unsupported mask type {type(mask).__name__}: pass a PIL image, numpy array or tensor")
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
        dtype = "bool"
    t = t.detach().cpu()
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None] if t.shape[-1] not in (1,) or t.shape[0] == 1 else t.permute(2, 0, 1)[None]
    elif t.ndim == 4 and t.shape[1] != 1 and t.shape[-1] == 1:
        t = t.permute(0, 3, 1, 2)
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(
            f"a mask must be H×W, B×H×W or B×1×H×W with one channel, got shape {tuple(mask.shape)}"
        )
    t = t.float() / (1.0 if dtype == "bool" else (_integer_peak(dtype) or 1.0))
    if torch.isnan(t).any():
        raise ValueError("the mask contains NaN values; fix the mask (e.g. torch.nan_to_num)")
    if t.min() < 0 or t.max() > 1:
        raise ValueError(
            f"mask values must be in 0..1 (float) or 0..255 (uint8), got {t.min().item():g}..{t.max().item():g}"
        )
    if t.shape[-2:] != (height, width):
        raise ValueError(
            f"the mask is {t.shape[-1]}×{t.shape[-2]} (W×H) but the image is {width}×{height}; resize the mask "
            "to the image size"
        )
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{t.shape[0]} masks for {batch} images: give one mask, or one per image")
    return t.expand(batch, -1, -1, -1)


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _pil_to_array(image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise ValueError(
            f"PIL mode {mode!r} (16/32-bit grey) has no RGB counterpart in PIL; pass np.asarray(image) to get a "
            "16-bit result, or image.convert('L') for 8 bits"
        )
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("LA", "PA"):
        image = image.convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    return np.array(image)


def _guess_torch_layout(t: torch.Tensor) -> str:
    chans = (1, 3, 4)
    if t.ndim == 2:
        return "HW"
    if t.ndim in (3, 4):
        first, last = t.shape[-3] in chans, t.shape[-1] in chans
        if first != last:
            return ("CHW" if first else "HWC") if t.ndim == 3 else ("BCHW" if first else "BHWC")
    raise ValueError(
        f"cannot tell the layout of a tensor of shape {tuple(t.shape)}; pass layout='BHWC' (ComfyUI) or 'BCHW'"
    )


def _to_bchw(t: torch.Tensor, layout: str) -> torch.Tensor:
    if "C" not in layout:
        t = t.unsqueeze(-1)
        layout += "C"
    if "B" not in layout:
        t = t.unsqueeze(0)
        layout = "B" + layout
    return t.permute(0, 3, 1, 2) if layout == "BHWC" else t


def _from_bchw(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout in ("BHWC", "HWC"):
        t = t.permute(0, 2, 3, 1)
    return t[0] if "B" not in layout else t


def _to_unit_float(t: torch.Tensor, dtype) -> torch.Tensor:
    peak = _integer_peak(dtype)
    if peak is not None:
        return t.to(torch.float32) / peak
    if t.dtype == torch.bool or not t.is_floating_point():
        raise ValueError(f"unsupported image dtype {dtype}: use uint8, uint16 or float in 0..1")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError("the image contains NaN or infinite values; fix the input (e.g. torch.nan_to_num)")
    lo, hi = t.min().item(), t.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"float images must be in 0..1, got values in {lo:g}..{hi:g}; divide 0..255 images by 255"
        )
    return t.clamp(0, 1)


def _from_unit(t: torch.Tensor, peak: float | None, dtype) -> torch.Tensor:
    if peak is None:
        if isinstance(dtype, np.dtype):
            dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
        return t.to(dtype)
    scaled = torch.round(t.detach().cpu().double() * peak).numpy()
    return torch.from_numpy(scaled.astype(_np_dtype(dtype)))


def _np_dtype(dtype) -> np.dtype:
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, torch.dtype):
        return {torch.uint8: np.dtype(np.uint8), torch.uint16: np.dtype(np.uint16)}[dtype]
    return np.dtype(dtype)


# --------------------------------------------------------------------------------------------------
# Native-dtype fast path (Harmonizer.__call__). It takes the caller's pixels as they are, without a
# full-size float copy, when they plainly follow the rules above; for anything else it returns None
# and the caller goes through image_to_tensor / mask_to_tensor, which own the rules and the errors.
# --------------------------------------------------------------------------------------------------

_NATIVE_DTYPES = (torch.uint8, torch.uint16, torch.float16, torch.bfloat16, torch.float32, torch.float64)


def image_pixels(image: Any, layout: str | None = None) -> tuple[torch.Tensor, float, ImageForm] | None:
    """→ (B×H×W×C view of the caller's RGB/RGBA pixels in their own dtype, full-intensity value, form).

    None where the fast path does not apply (grey, unusual dtypes, values that image_to_tensor
    would reject): use image_to_tensor then.
    """
    if _is_pil(image):
        if image.mode not in ("RGB", "RGBA"):
            return None
        data: Any = np.array(image)
        kind, layout = "pil", "HWC"
    elif isinstance(image, np.ndarray):
        kind, data = "numpy", image
        layout = layout or {3: "HWC", 4: "BHWC"}.get(image.ndim)
    elif isinstance(image, torch.Tensor):
        kind, data = "torch", image
        try:
            layout = layout or _guess_torch_layout(image)
        except ValueError:
            return None
    else:
        return None
    if layout not in LAYOUTS or "C" not in layout or data.ndim != len(layout) or min(data.shape, default=0) < 1:
        return None
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "uf":
            return None
        try:
            t = torch.from_numpy(np.ascontiguousarray(data))
        except TypeError:
            return None
    else:
        t = data.detach()
    if t.dtype not in _NATIVE_DTYPES:
        return None
    pixels = _to_bchw(t, layout).permute(0, 2, 3, 1)
    if pixels.shape[-1] not in (3, 4):
        return None
    peak = _integer_peak(t.dtype)
    if peak is None:  # floats: finite and in 0..1 (the same tolerance as _to_unit_float)
        lo, hi = torch.aminmax(pixels[..., :3])
        lo, hi = lo.item(), hi.item()
        if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also False for NaN
            return None
        peak = 1.0
    return pixels, peak, ImageForm(kind, layout, data.dtype, pixels.shape[-1], data, t.device)


def image_from_pixels(pixels: torch.Tensor, form: ImageForm) -> Any:
    """B×H×W×C pixels in the input's dtype (C as in the input) → the input's kind and layout."""
    out = _from_bchw(pixels.permute(0, 3, 1, 2), form.layout)
    if form.kind == "torch":
        return out.to(form.device)
    array = out.cpu().numpy()
    if form.kind == "pil":
        from PIL import Image

        return Image.fromarray(array, "RGBA" if form.channels == 4 else "RGB")
    return array


def mask_pixels(mask: Any, batch: int, height: int, width: int) -> tuple[torch.Tensor, float] | None:
    """→ (B×H×W mask in its own dtype, the value meaning "fully subject"); None: use mask_to_tensor."""
    if _is_pil(mask):
        if mask.mode not in ("L", "1"):
            return None
        mask = np.array(mask)
    if isinstance(mask, np.ndarray):
        try:
            t = torch.from_numpy(np.ascontiguousarray(mask))
        except TypeError:
            return None
    elif isinstance(mask, torch.Tensor):
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
        t, peak = t.to(torch.uint8) * 255, 255.0
    elif t.dtype == torch.uint8:
        peak = 255.0
    elif t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        lo, hi = torch.aminmax(t)
        if not (lo.item() >= 0 and hi.item() <= 1):  # also False for NaN
            return None
        peak = 1.0
    else:
        return None
    return t.expand(batch, -1, -1), peak
