"""The input boundary: every image and mask a caller, a file or a host hands to phnet is converted here.

The library (``Harmonizer``, ``paste_subject``, SAM), the CLI, the ComfyUI nodes, the WebUI script
and the trainer all convert through these functions, so one set of rules holds everywhere:

Images
    - Kinds: a PIL image, a numpy array or a torch tensor. Layouts: ``HW``, ``HWC``, ``BHWC``, ``CHW``,
      ``BCHW``, ``BHW``. numpy arrays are read as HW / HWC / BHWC; a tensor's layout is read off where
      its 1-, 3- or 4-sized axis sits, and ``layout=`` settles the ambiguous cases.
    - Channels: 1 (grey, used as RGB), 3 (RGB) or 4 (RGBA: the alpha is kept aside and given back
      untouched). The single-image helpers also take 2 (grey + alpha).
    - Values: uint8 is 0..255 and uint16 is 0..65535; floats must already be in 0..1 (a rounding slack
      of 0.001 is clamped). A float image holding 0..255 values is refused with "divide by 255";
      NaN / inf, bool and other integer types are refused.
    - PIL images are turned upright by their EXIF orientation. Palettes, CMYK and other modes become
      RGB (RGBA when they carry transparency). 16-bit grey PIL images are read at 16 bits where the
      result is an array; ``image_to_tensor`` refuses them because PIL has no 16-bit RGB mode to give
      the result back in.

Masks (white / 1 = the subject)
    - One channel: ``H×W``, ``B×H×W``, ``B×1×H×W``, ``B×H×W×1``, ``H×W×1`` or ``1×H×W``. A mask shaped
      ``H×W×3`` or ``H×W×4`` is a colour picture and is refused by name.
    - PIL masks: a real alpha channel (RGBA, LA, PA, a palette with transparency) is the mask, unless it
      is opaque everywhere, in which case the luminance is; every other mode is read as luminance.
    - Values: bool is 0/1. uint8 is 0..255 and uint16 0..65535 (so 32768 is 0.5). **An integer mask
      holding only 0 and 1 is binary** (1 = subject), not 1/255. Other integer types must hold only
      0 and 1. Floats must be in 0..1 (slack 0.001, clamped); NaN / inf are refused.
    - Soft values blend; nothing is thresholded here.

Files (``read_image``, ``read_mask``)
    - EXIF orientation is applied, 16-bit grey files decode to uint16 (not to white), palettes expand.

Every refusal is a ``ValueError`` (``TypeError`` for an unsupported kind) naming the input and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "LAYOUTS",
    "IMAGE_SUFFIXES",
    "ImageForm",
    "image_to_tensor",
    "tensor_to_image",
    "mask_to_tensor",
    "image_to_array",
    "image_to_uint8",
    "mask_to_array",
    "image_to_bhwc",
    "mask_to_bhw",
    "check_mask_coverage",
    "check_unit_range",
    "read_image",
    "read_mask",
]

LAYOUTS = ("HWC", "BHWC", "CHW", "BCHW", "HW", "BHW")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # files read_image is meant for
_SLACK = 1e-3  # float rounding noise tolerated (and clamped) at either end of 0..1


@dataclass
class ImageForm:
    """How an input image was given, so the result goes back in the same form."""

    kind: str  # "pil" | "numpy" | "torch"
    layout: str  # one of LAYOUTS
    dtype: Any  # numpy / torch dtype of the input pixels
    channels: int  # 1 (grey), 3 or 4 (alpha kept aside and put back untouched)
    original: Any  # the input's pixels (array or tensor): outside the mask they are copied verbatim
    device: Any = None


# ----------------------------------------------------------------------------------------------------
# images


def image_to_tensor(
    image: Any, layout: str | None = None, name: str = "image"
) -> tuple[torch.Tensor, torch.Tensor | None, ImageForm]:
    """→ (B×3×H×W float32 RGB in [0, 1], B×1×H×W alpha or None, form for :func:`tensor_to_image`)."""
    if _is_pil(image):
        data: Any = _pil_image_pixels(image, name, allow_16bit=False)
        kind, layout = "pil", "HWC" if data.ndim == 3 else "HW"
    elif isinstance(image, np.ndarray):
        kind, data = "numpy", image
        layout = layout or {2: "HW", 3: "HWC", 4: "BHWC"}.get(image.ndim)
    elif isinstance(image, torch.Tensor):
        kind, data = "torch", image
        layout = layout or _guess_torch_layout(image, name)
    else:
        raise TypeError(
            f"unsupported {name} type {type(image).__name__}: pass a PIL image, a numpy array (HWC/BHWC) or a "
            "torch tensor (BHWC/BCHW)"
        )
    if layout not in LAYOUTS or data.ndim != len(layout):
        raise ValueError(f"an {name} of shape {tuple(data.shape)} does not match layout {layout!r}")

    dtype = data.dtype
    t = torch.from_numpy(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
    device = t.device
    t = _to_bchw(t, layout)
    channels = t.shape[1]
    if channels not in (1, 3, 4):
        raise ValueError(
            f"an {name} needs 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels} (layout {layout}, "
            f"shape {tuple(data.shape)})"
        )
    if t.shape[-1] < 1 or t.shape[-2] < 1 or t.shape[0] < 1:
        raise ValueError(f"empty {name} of shape {tuple(data.shape)}")
    t = _image_unit(t, dtype, name)
    alpha = t[:, 3:4] if channels == 4 else None
    rgb = t[:, :3] if channels >= 3 else t.expand(-1, 3, -1, -1)
    form = ImageForm(kind, layout, dtype, channels, data, device)
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


def image_to_array(image: Any, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """One image → (float32 H×W×3 RGB in [0, 1], float32 H×W alpha or None).

    Takes H×W, H×W×C (C = 1, 2, 3, 4), a batch of one, PIL (16-bit grey read at 16 bits) or a torch
    tensor in the same layouts (channels last).
    """
    if _is_pil(image):
        arr: Any = _pil_image_pixels(image, name, allow_16bit=True)
    elif isinstance(image, torch.Tensor):
        arr = image.detach().cpu()
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(f"unsupported {name} type {type(image).__name__}: pass a PIL image, numpy array or tensor")
    shape = tuple(arr.shape)
    if arr.ndim == 4 and shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(
            f"{name} must be one image, H×W or H×W×C with C = 1, 2, 3 or 4 channels (channels last), "
            f"got shape {shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {shape})")
    dtype = arr.dtype
    t = torch.from_numpy(np.ascontiguousarray(arr)) if isinstance(arr, np.ndarray) else arr
    t = _image_unit(t, dtype, name)
    c = t.shape[-1]
    alpha = t[..., c - 1] if c in (2, 4) else None
    rgb = t[..., :3] if c >= 3 else t[..., :1].expand(-1, -1, 3)
    return (
        np.ascontiguousarray(rgb.numpy(), dtype=np.float32),
        None if alpha is None else np.ascontiguousarray(alpha.numpy(), dtype=np.float32),
    )


def image_to_uint8(image: Any, name: str = "image") -> np.ndarray:
    """One image → uint8 H×W×3 RGB (alpha dropped, grey expanded, 16-bit and float rounded)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return np.ascontiguousarray(image)
    rgb, _ = image_to_array(image, name)
    return np.round(rgb * 255.0).astype(np.uint8)


def image_to_bhwc(image: Any, name: str = "image") -> torch.Tensor:
    """A batch in the B×H×W×C float layout (ComfyUI's IMAGE) → float32 B×H×W×3 in [0, 1].

    H×W×C is taken as a batch of one; grey is expanded, an alpha channel dropped (check
    ``image.shape[-1] == 4`` first to warn about it). Values follow the image rules: a 0..255 float
    tensor is refused.
    """
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be an image tensor [B,H,W,C], got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"{name} must be an image tensor [B,H,W,C], got shape {tuple(image.shape)}")
    b, h, w, c = image.shape
    if b < 1 or h < 1 or w < 1:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")
    if c not in (1, 3, 4):
        raise ValueError(
            f"{name} must have 3 (RGB) channels in the last dimension, got shape {tuple(image.shape)}; "
            "is a mask or a channels-first tensor connected to an image input?"
        )
    t = _image_unit(image, image.dtype, name)
    if c == 4:
        t = t[..., :3]
    elif c == 1:
        t = t.expand(b, h, w, 3)
    return t


# ----------------------------------------------------------------------------------------------------
# masks


def mask_to_tensor(mask: Any, batch: int, height: int, width: int, name: str = "mask") -> torch.Tensor:
    """→ B×1×H×W float32 in [0, 1] for a batch of ``batch`` images of ``height``×``width``.

    One mask broadcasts over the batch; any other size or count is an error naming both.
    """
    t = _mask_bhw(mask, name, height, width)
    if tuple(t.shape[-2:]) != (height, width):
        raise ValueError(_size_message(name, t.shape[-1], t.shape[-2], width, height, "image"))
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{t.shape[0]} masks for {batch} images: give one {name}, or one per image")
    return t[:, None].cpu().expand(batch, -1, -1, -1)


def mask_to_array(
    mask: Any, name: str = "mask", size: tuple[int, int] | None = None, against: str = "image"
) -> np.ndarray:
    """One mask → float32 H×W in [0, 1]. ``size`` = (H, W) it must have (the ``against`` picture's)."""
    t = _mask_bhw(mask, name, *(size or (None, None)))
    if t.shape[0] != 1:
        raise ValueError(f"{name} is a batch of {t.shape[0]} masks (shape {tuple(t.shape)}); give one mask")
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        raise ValueError(_size_message(name, t.shape[-1], t.shape[-2], size[1], size[0], against))
    return np.ascontiguousarray(t[0].cpu().numpy(), dtype=np.float32)


def mask_to_bhw(mask: Any, name: str = "mask", height: int | None = None, width: int | None = None) -> torch.Tensor:
    """A mask batch (ComfyUI's MASK layout, B×H×W; H×W, B×1×H×W, B×H×W×1 too) → float32 B×H×W in [0, 1].

    ``height`` / ``width`` (the image's) only settle ambiguous layouts; sizes are not enforced, so a host
    may resize. Stays on the input's device.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a mask tensor [B,H,W], got {type(mask).__name__}")
    return _mask_bhw(mask, name, height, width)


def check_mask_coverage(masks: torch.Tensor) -> None:
    """B×1×H×W masks: each must have a subject (a pixel > 0) and some background (a pixel < 0.5).

    The message names the batch index (0-based) of every mask that fails.
    """
    flat = masks.flatten(1)
    empty = (flat.amax(dim=1) <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{_which(empty, masks.shape[0])} is empty (all zero): nothing to harmonize; paint the subject white "
            "in the mask"
        )
    full = (flat.amin(dim=1) >= 0.5).nonzero().flatten().tolist()
    if full:
        raise ValueError(
            f"{_which(full, masks.shape[0])} covers the whole image: there is no background to harmonize against; "
            "mask only the subject"
        )


def _which(idx: list[int], batch: int) -> str:
    if batch == 1:
        return "the mask"
    listed = ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")
    return f"the mask at batch index {listed} (of {batch}, counting from 0)"


def _size_message(name: str, mw: int, mh: int, w: int, h: int, against: str) -> str:
    return (
        f"the {name} is {mw}×{mh} (W×H) but the {against} is {w}×{h}; resize the mask to the same size as the "
        f"{against}"
    )


def _mask_bhw(mask: Any, name: str, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Any mask kind and layout → float32 B×H×W in [0, 1] (the rules in the module docstring)."""
    if _is_pil(mask):
        array = _pil_mask_pixels(mask)
        t, dtype = torch.from_numpy(np.ascontiguousarray(array)), array.dtype
    elif isinstance(mask, np.ndarray):
        t, dtype = torch.from_numpy(np.ascontiguousarray(mask)), mask.dtype
    elif isinstance(mask, torch.Tensor):
        t, dtype = mask.detach(), mask.dtype
    else:
        raise TypeError(f"unsupported {name} type {type(mask).__name__}: pass a PIL image, numpy array or tensor")
    t = _mask_layout(t, name, height, width)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    return _mask_unit(t, dtype, name)


def _mask_layout(t: torch.Tensor, name: str, height: int | None, width: int | None) -> torch.Tensor:
    shape = tuple(t.shape)
    image_hw = (height, width) if height is not None else None
    if t.ndim == 2:
        return t[None]
    if t.ndim == 3:
        if image_hw is not None and shape[1:] == image_hw:
            return t  # B×H×W
        if shape[-1] in (3, 4) and (image_hw is None or shape[:2] == image_hw):
            raise ValueError(
                f"the {name} is H×W×{shape[-1]} ({shape[0]}×{shape[1]}×{shape[2]}): a colour picture, but a mask "
                "has one channel; pass one channel (e.g. the alpha or the grey level)"
            )
        if shape[-1] == 1:
            return t[..., 0][None]  # H×W×1
        return t
    if t.ndim == 4:
        if shape[1] == 1:
            return t[:, 0]
        if shape[-1] == 1:
            return t[..., 0]
        if shape[-1] in (3, 4):
            raise ValueError(
                f"the {name} is B×H×W×{shape[-1]} {shape}: colour pictures, but a mask has one channel; pass one "
                "channel (e.g. the alpha or the grey level)"
            )
    raise ValueError(
        f"a {name} must be H×W, B×H×W, B×1×H×W or B×H×W×1 with one channel, got shape {shape}"
    )


def _mask_unit(t: torch.Tensor, dtype: Any, name: str) -> torch.Tensor:
    if t.dtype == torch.bool:
        return t.to(torch.float32)
    if not t.is_floating_point():
        f = t.to(torch.float32)
        lo, hi = f.min().item(), f.max().item()
        if lo < 0:
            raise ValueError(f"{name} values must not be negative, got {lo:g}..{hi:g}")
        if hi <= 1:  # 0/1 integer masks are binary, whatever the dtype
            return f
        peak = _integer_peak(dtype)
        if peak is None:
            raise ValueError(
                f"{name} has dtype {dtype} with values {lo:g}..{hi:g}: use 0/1, uint8 0..255, uint16 0..65535 or "
                "float 0..1"
            )
        return f / peak
    f = t.to(torch.float32)
    check_unit_range(f, name, "mask")
    return f.clamp(0, 1)


# ----------------------------------------------------------------------------------------------------
# files


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file: uint8 (or uint16 for 16-bit grey) H×W, H×W×3 or H×W×4, upright by EXIF."""
    return _pil_image_pixels(_open(path), str(path), allow_16bit=True)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask file → float32 H×W in [0, 1], upright by EXIF (the mask rules above)."""
    return mask_to_array(_open(path), name=f"mask {path}")


def _open(path: str | Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
    return image


# ----------------------------------------------------------------------------------------------------
# PIL


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _upright(image):
    """Apply the EXIF orientation (a no-op without one)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        return image
    if orientation in (None, 1):
        return image
    from PIL import ImageOps

    return ImageOps.exif_transpose(image)


_GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _grey_16(image, name: str) -> np.ndarray:
    """16/32-bit integer grey → uint16 (PIL opens 16-bit PNG/TIFF as I;16 or I)."""
    array = np.array(image)
    if array.dtype == np.uint16:
        return array.astype(np.uint16, copy=False)  # native byte order
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError(f"{name} is a 32-bit grey image with values beyond 16 bits; save it as 8 or 16 bits")
    return array.astype(np.uint16)


def _pil_image_pixels(image, name: str, allow_16bit: bool) -> np.ndarray:
    image = _upright(image)
    mode = image.mode
    if mode in _GREY_16 or mode == "F":
        if not allow_16bit:
            raise ValueError(
                f"the {name} is a PIL {mode!r} picture (16/32-bit grey), which has no RGB counterpart in PIL to "
                "return the result in; pass a numpy array instead, e.g. phnet.imageio.read_image(path) (uint16)"
            )
        return np.asarray(image, dtype=np.float32) if mode == "F" else _grey_16(image, name)
    if (mode == "P" and "transparency" in image.info) or mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    return np.array(image)


def _pil_mask_pixels(image) -> np.ndarray:
    image = _upright(image)
    mode = image.mode
    if mode in _GREY_16:
        return _grey_16(image, "mask")
    if mode in ("L", "1", "F"):
        return np.array(image)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA") if mode in ("P", "PA") else image
        alpha = np.array(rgba.getchannel("A"))
        if alpha.min() < 255:  # a real alpha; an opaque one carries no mask, the picture does
            return alpha
        return np.array(rgba.convert("RGB").convert("L"))
    return np.array(image.convert("L"))


# ----------------------------------------------------------------------------------------------------
# layouts and value ranges


def _integer_peak(dtype) -> float | None:
    if dtype in (np.uint8, torch.uint8):
        return 255.0
    if dtype in (np.uint16, torch.uint16):
        return 65535.0
    return None


def _guess_torch_layout(t: torch.Tensor, name: str = "image") -> str:
    chans = (1, 3, 4)
    if t.ndim == 2:
        return "HW"
    if t.ndim in (3, 4):
        first, last = t.shape[-3] in chans, t.shape[-1] in chans
        if first != last:
            return ("CHW" if first else "HWC") if t.ndim == 3 else ("BCHW" if first else "BHWC")
    raise ValueError(
        f"cannot tell the layout of an {name} tensor of shape {tuple(t.shape)}; pass layout='BHWC' (ComfyUI) or "
        "'BCHW'"
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


def _image_unit(t: torch.Tensor, dtype, name: str = "image") -> torch.Tensor:
    """Pixels of any layout → float32 in [0, 1] by the image rules."""
    peak = _integer_peak(dtype)
    if peak is not None:
        return t.to(torch.float32) / peak
    if t.dtype == torch.bool or not t.is_floating_point():
        raise ValueError(f"unsupported {name} dtype {dtype}: use uint8, uint16 or float in 0..1")
    t = t.to(torch.float32)
    check_unit_range(t, name)
    return t.clamp(0, 1)


def check_unit_range(t: torch.Tensor, name: str = "image", kind: str = "image") -> None:
    """A float tensor must be finite and within 0..1 (give or take the rounding slack); the check every host
    boundary shares. ``kind`` ("image" / "mask") only words the message."""
    if not torch.isfinite(t).all():
        raise ValueError(f"the {name} contains NaN or infinite values; fix the {kind} (e.g. torch.nan_to_num)")
    lo, hi = t.min().item(), t.max().item()
    if lo < -_SLACK or hi > 1 + _SLACK:
        hint = f" (this looks like a 0..255 {kind})" if hi <= 255 and lo >= -_SLACK else ""
        raise ValueError(
            f"the {name} must hold float values in 0..1, got {lo:g}..{hi:g}{hint}; divide 0..255 {kind}s by 255"
        )


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
