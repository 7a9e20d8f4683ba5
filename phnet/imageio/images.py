"""Images: PIL / numpy / torch in any layout → float tensors or arrays in 0..1, and back.

The rules are in :mod:`phnet.imageio`'s docstring.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import tiling
from ..compat import UINT16, aminmax, catching_warnings, need_uint16, widened
from .decode import is_pil, native, pil_image_pixels

LAYOUTS = ("HWC", "BHWC", "CHW", "BCHW", "HW", "BHW")
UNIT_SLACK = 1e-3  # float rounding noise tolerated (and clamped) at either end of 0..1


@dataclass
class ImageForm:
    """How an input image was given, so the result goes back in the same form."""

    kind: str  # "pil" | "numpy" | "torch"
    layout: str  # one of LAYOUTS
    dtype: Any  # numpy / torch dtype of the input pixels
    channels: int  # 1 (grey), 3 or 4 (alpha kept aside and put back untouched)
    original: Any  # the input's pixels (array or tensor): outside the mask they are copied verbatim
    device: Any = None
    info: dict[str, Any] | None = None  # a PIL input's ICC profile, for the RGB result's ``info`` (see pil_info)


def pil_info(image: Any) -> dict[str, Any]:
    """What of a PIL picture's ``info`` its RGB result carries: its ICC profile where that describes RGB
    colours (PIL's PNG writer embeds it from there; other writers take ``info["icc_profile"]`` when given)."""
    profile = image.info.get("icc_profile")
    return {"icc_profile": profile} if profile and profile[16:20] == b"RGB " else {}


def pil_result(array: np.ndarray, form: ImageForm) -> Any:
    """An H×W×3/4 uint8 result as a PIL picture, with its input's :func:`pil_info`."""
    from PIL import Image

    picture = Image.fromarray(array, "RGBA" if form.channels == 4 else "RGB")
    picture.info.update(form.info or {})
    return picture



def image_to_tensor(
    image: Any, layout: str | None = None, name: str = "image"
) -> tuple[torch.Tensor, torch.Tensor | None, ImageForm]:
    """→ (B×3×H×W float32 RGB in [0, 1], B×1×H×W alpha or None, form for :func:`tensor_to_image`)."""
    if is_pil(image):
        data: Any = pil_image_pixels(image, name, allow_16bit=False)
        kind, layout = "pil", "HWC" if data.ndim == 3 else "HW"
    elif isinstance(image, np.ndarray):
        kind, data = "numpy", image
        layout = layout or {2: "HW", 3: "HWC", 4: "BHWC"}.get(image.ndim)
    elif isinstance(image, torch.Tensor):
        kind, data = "torch", check_strided(image, name)
        layout = layout or _guess_torch_layout(image, name)
    else:
        raise unsupported_kind(image, name, "a PIL image, a numpy array (HWC/BHWC) or a torch tensor (BHWC/BCHW)")
    if layout not in LAYOUTS:
        raise ValueError(f"an {name} needs a layout of {', '.join(map(repr, LAYOUTS))}, got {layout!r}"
                         if layout is not None else
                         f"an {name} of {data.ndim} dimensions (shape {tuple(data.shape)}) is no picture: give "
                         "H×W, H×W×C or B×H×W×C pixels")
    if data.ndim != len(layout):
        raise ValueError(f"an {name} of shape {tuple(data.shape)} does not match layout {layout!r}")

    dtype = data.dtype
    t = _tensor_view(data) if isinstance(data, np.ndarray) else data
    device = t.device
    t = _to_bchw(t, layout)
    channels = t.shape[1]
    if channels not in (1, 3, 4):
        first = layout.replace("C", "").replace("HW", "CHW")  # the same pictures, channels first
        from ..options import MIN_SIDE

        # a grey batch read as one picture (a 3-D array is HWC unless told): its width is taken for channels (a
        # width under MIN_SIDE, which would be refused, is no picture's)
        batch = layout == "HWC" and channels >= MIN_SIDE
        grey = f"'BHW' if it is a grey batch of {data.shape[0]}" if batch else ""
        if layout.endswith("C") and data.shape[layout.index("H")] in (1, 3, 4):
            hint = f"; it looks channels-first: pass layout={first!r}" + (f" (one picture), or {grey}" if grey else "")
        else:
            hint = f"; pass layout={grey}" if grey else ""
        raise ValueError(
            f"an {name} needs 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels} (layout {layout}, "
            f"shape {tuple(data.shape)}){hint}"
        )
    if t.shape[-1] < 1 or t.shape[-2] < 1 or t.shape[0] < 1:
        raise ValueError(f"empty {name} of shape {tuple(data.shape)}")
    t = _image_unit(t, dtype, name)
    alpha = t[:, 3:4] if channels == 4 else None
    rgb = t[:, :3] if channels >= 3 else t.expand(-1, 3, -1, -1)
    form = ImageForm(kind, layout, dtype, channels, data, device, pil_info(image) if kind == "pil" else None)
    return rgb.contiguous(), alpha, form


def _where(condition: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where`` for every dtype we return: uint16 (and uint32, uint64) go through a signed integer, since
    torch.where has no kernel for them in the torch versions many hosts run (2.11 and older)."""
    wide = widened(a)
    if wide.dtype != a.dtype:
        return torch.where(condition, wide, widened(b)).to(a.dtype)
    return torch.where(condition, a, b)


def tensor_to_image(rgb: torch.Tensor, alpha: torch.Tensor | None, form: ImageForm, keep: torch.Tensor) -> Any:
    """Inverse of image_to_tensor. Where ``keep`` (B×1×H×W bool) is set, the input's own pixels are returned."""
    rgb = rgb.clamp(0, 1)
    if form.channels == 4:
        if alpha is None:
            raise ValueError("a 4-channel image's result needs its alpha channel: pass back the alpha that "
                             "image_to_tensor returned")
        rgb = torch.cat([rgb, alpha.to(rgb.device)], dim=1)  # alpha stayed where the caller's pixels are
    peak = integer_peak(form.dtype)
    if form.kind == "torch":
        out = _from_unit(rgb, peak, form.dtype).to(form.device)
        orig = form.original
    else:  # numpy, or the array a PIL image was read into
        out = _from_unit(rgb.cpu(), peak, np.dtype(form.dtype))
        orig = _tensor_view(form.original)
    orig = _to_bchw(orig, form.layout)
    if form.channels == 1:
        orig = orig.expand(-1, 3, -1, -1)
    out = _where(keep.to(out.device), orig.to(out.device), out)
    out_layout = form.layout.replace("HW", "HWC") if form.layout in ("HW", "BHW") else form.layout
    out = _from_bchw(out, out_layout)
    if form.kind == "torch":
        return out
    if form.kind == "pil":
        return pil_result(out.numpy(), form)
    return out.numpy()


def as_returned(rgb: torch.Tensor, form: ImageForm) -> torch.Tensor:
    """B×C×H×W float pixels in 0..1 as :func:`tensor_to_image` hands them back, read as floats again: clamped,
    and rounded to the caller's integer levels or float precision (a report measures what the caller gets)."""
    rgb = rgb.clamp(0, 1)
    peak = integer_peak(form.dtype)
    if peak is not None:
        return rgb.mul(peak).round_().div_(peak)
    return _from_unit(rgb, None, form.dtype).to(rgb.dtype)


def image_to_array(image: Any, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """One image → (float32 H×W×3 RGB in [0, 1], float32 H×W alpha or None).

    Takes H×W, H×W×C (C = 1, 2, 3, 4), a batch of one, PIL (16-bit grey read at 16 bits) or a torch
    tensor in the same layouts; a tensor may also be channels first (C×H×W, 1×C×H×W) where its last axis cannot be
    channels, as the Harmonizer reads tensors.
    """
    if is_pil(image):
        arr: Any = pil_image_pixels(image, name, allow_16bit=True)
    elif isinstance(image, torch.Tensor):
        arr = check_strided(image, name).detach().cpu()
        if arr.ndim in (3, 4) and arr.shape[-3] in (1, 2, 3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
            arr = arr.movedim(-3, -1)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise unsupported_kind(image, name, "a PIL image, numpy array or tensor")
    shape = tuple(arr.shape)
    if arr.ndim == 4 and shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        first = arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4)
        raise ValueError(
            f"{name} must be one image, H x W or H x W x C with C = 1, 2, 3 or 4 channels (channels last), "
            f"got shape {shape}" + ("; it looks channels-first: pass array.transpose(1, 2, 0)" if first else "")
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {shape})")
    dtype = arr.dtype
    t = _tensor_view(arr) if isinstance(arr, np.ndarray) else arr
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
    pixels = pil_image_pixels(image, name, allow_16bit=True) if is_pil(image) else image
    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim in (2, 3):
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.shape[-1] in (1, 2, 3, 4) and pixels.shape[0] and pixels.shape[1]:  # 8 bits stay exact, no floats
            grey = pixels.shape[-1] < 3
            return native(np.repeat(pixels[..., :1], 3, -1) if grey else pixels[..., :3])
    rgb, _ = image_to_array(pixels, name)
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
# layouts and value ranges


def integer_peak(dtype: np.dtype | torch.dtype) -> float | None:
    """The value of full for an integer picture's dtype (255.0 for uint8, 65535.0 for uint16, numpy's or torch's);
    None for others (float pictures hold 0..1)."""
    if isinstance(dtype, np.dtype):
        dtype = dtype.newbyteorder("=")  # a big-endian uint16 (PIL's I;16B read by numpy) is one too
    if dtype in (np.uint8, torch.uint8):
        return 255.0
    if dtype == np.uint16 or (UINT16 is not None and dtype == UINT16):
        return 65535.0
    return None


def is_strided(t: torch.Tensor) -> bool:
    """Whether ``t`` holds its values in rows (not sparse, not nested)."""
    return t.layout == torch.strided and not t.is_nested


def check_strided(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` itself where it holds its values in rows; a ``ValueError`` naming ``name`` and the fix for a nested or
    sparse tensor."""
    if t.is_nested:
        raise ValueError(f"{name}: a nested tensor; pass pictures of one size as one tensor, or one at a time")
    if t.layout != torch.strided:
        raise ValueError(f"{name}: a sparse tensor ({t.layout}); pass {name}.to_dense()")
    return t


def unsupported_kind(value: Any, name: str, kinds: str, reader: str = "read_image") -> TypeError:
    """The refusal of a ``value`` that holds no pixels; a file's path is named as one, with the function that reads
    it (``reader``, in this package); bytes no path holds (a NUL, or more than a path's 4096) are a file's contents."""
    if isinstance(value, (bytes, bytearray)) and (b"\0" in value or len(value) > 4096 or isinstance(value, bytearray)):
        return TypeError(f"the {name} is given as {len(value)} bytes (a file's contents?), not pixels: decode them "
                         f"with PIL.Image.open(io.BytesIO(data)), or pass {kinds}")
    if isinstance(value, (str, bytes, os.PathLike)):
        return TypeError(f"the {name} is given as a file path ({value!r}), not pixels: read it with "
                         f"phnet.imageio.{reader}(path), or pass {kinds}")
    return TypeError(f"unsupported {name} type {type(value).__name__}: pass {kinds}")


def _guess_torch_layout(t: torch.Tensor, name: str = "image") -> str:
    chans = (1, 3, 4)
    if t.ndim == 2:
        return "HW"
    if t.ndim in (3, 4):
        first, last = t.shape[-3] in chans, t.shape[-1] in chans
        if first != last:
            return ("CHW" if first else "HWC") if t.ndim == 3 else ("BCHW" if first else "BHWC")
    choices = {3: "'HWC' or 'CHW' (one picture), 'BHW' (a grey batch)", 4: "'BHWC' (ComfyUI) or 'BCHW'"}
    raise ValueError(f"cannot tell the layout of an {name} tensor of shape {tuple(t.shape)}; pass layout="
                     + choices.get(t.ndim, f"one of {', '.join(map(repr, LAYOUTS))}"))


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
    peak = integer_peak(dtype)
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
    lo, hi = (float(v) for v in aminmax(t.detach()))  # NaN and infinities reach these two (no full-size mask)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"the {name} contains NaN or infinite values; replace them with numbers in 0..1")
    if lo < -UNIT_SLACK or hi > 1 + UNIT_SLACK:
        if 2 < hi <= 255 and lo >= -UNIT_SLACK:  # a 0..255 picture whose brightest value is under 2 is black
            fix = f" (this looks like a 0..255 {kind}); divide 0..255 {kind}s by 255"
        elif hi <= 2 and lo >= -1:
            fix = (f" (outside 0..1, as an operation that does not clamp leaves it); clamp the {kind} to 0..1, e.g. "
                   f"x.clamp(0, 1) or numpy.clip(x, 0, 1)")
        else:
            fix = f"; give {kind}s in 0..1 (divide 0..255 {kind}s by 255)"
        raise ValueError(f"the {name} must hold float values in 0..1, got {lo:g}..{hi:g}{fix}")


def _from_unit(t: torch.Tensor, peak: float | None, dtype) -> torch.Tensor:
    if peak is None:
        if isinstance(dtype, np.dtype):
            dtype = torch.from_numpy(np.zeros(0, dtype=_np_dtype(dtype))).dtype
        return t.to(dtype)
    t = t.detach().cpu()
    out = np.empty(t.shape, _np_dtype(dtype))
    # in bands: the whole picture's float64 copies took 1.6 GB at 8K
    rows = max(1, tiling.TILE_PIXELS // max(1, t.shape[-1]))
    with tiling.one_thread(t.device):
        for r0 in range(0, t.shape[-2], rows):  # (float64: a float32 product rounds some values to the other level)
            out[..., r0:r0 + rows, :] = torch.round(t[..., r0:r0 + rows, :].double() * peak).numpy()
    return torch.from_numpy(out)


def _np_dtype(dtype) -> np.dtype:
    """The numpy dtype, in this machine's byte order (torch reads no other; a big-endian input comes back native)."""
    if isinstance(dtype, np.dtype):
        return dtype.newbyteorder("=")
    if isinstance(dtype, torch.dtype):
        numpy_of: dict[torch.dtype | None, np.dtype] = {torch.uint8: np.dtype(np.uint8), UINT16: np.dtype(np.uint16)}
        return numpy_of[dtype]
    return np.dtype(dtype)


_read_only_warned = False  # torch warns of a read-only array once per process


def _tensor_view(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory, only ever read. torch warns when the array is read-only
    (``np.asarray`` of a PIL image is); nothing here writes through the view, so no copy is made."""
    import warnings

    global _read_only_warned
    if array.dtype == np.uint16:
        need_uint16("the picture")
    try:
        # torch warns of the first read-only array only: after it, as for a writable one, the filters stay as they
        # are (leaving a block that swapped them makes the host's once-only warnings show again)
        if array.flags.writeable or _read_only_warned:
            return torch.from_numpy(native(array))
        with catching_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            pixels = native(array)  # (a copy where the array was not contiguous: writable, so torch is silent)
            view = torch.from_numpy(pixels)
        _read_only_warned = not pixels.flags.writeable
        return view
    except TypeError:  # object, string, datetime arrays...
        raise ValueError(f"a numpy array of dtype {array.dtype} holds no pixels: give uint8, uint16 or float "
                         "values (np.asarray(x, dtype=np.float32) for numbers stored as objects)") from None
