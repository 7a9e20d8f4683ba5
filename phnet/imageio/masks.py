"""Masks: PIL / numpy / torch in any one-channel layout → float in 0..1, and the checks on their content.

The rules are in :mod:`phnet.imageio`'s docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .decode import _GREY_16, _upright, is_pil, open_picture, picture_pixels, pil_mask_pixels, unpremultiplied
from .images import _tensor_view, check_strided, check_unit_range, integer_peak, unsupported_kind

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
else:  # PIL loads on first use, not with the package: at run time (typing.get_type_hints) the hints read Any
    PILImage = Any


def mask_to_tensor(mask: Any, batch: int, height: int, width: int, name: str = "mask",
                   one_scale: bool = False) -> torch.Tensor:
    """→ B×1×H×W float32 in [0, 1] for a batch of ``batch`` images of ``height``×``width``.

    One mask broadcasts over the batch; any other size or count is an error naming both. ``one_scale``: an
    integer batch is read on one scale (a clip's frames), not mask by mask (see :func:`_mask_unit`).
    """
    t = _mask_bhw(mask, name, height, width, one_scale)
    if tuple(t.shape[-2:]) != (height, width):
        raise ValueError(_size_message(name, t.shape[-1], t.shape[-2], width, height, "image"))
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{t.shape[0]} masks for {batch} image{'s' if batch != 1 else ''}: give one {name}, or one "
                         f"per image")
    return t[:, None].cpu().expand(batch, -1, -1, -1)


def mask_to_array(
    mask: Any, name: str = "mask", size: tuple[int, int] | None = None, against: str = "image",
    levels: bool = False,
) -> np.ndarray:
    """One mask → float32 H×W in [0, 1]. ``size`` = (H, W) it must have (the ``against`` picture's).
    ``levels``: an integer mask on its dtype's scale even where its values stop at 1 (a frame of a clip
    whose other masks go higher), not read as a 0/1 mask."""
    height, width = size or (None, None)
    t = _mask_bhw(mask, name, height, width, levels=levels)
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


FAINT = 1 / 64  # a mask whose strongest value is below this (of full) is on the wrong scale
TRACE = 1 / 64  # of a mask's own strongest value: where it holds no more, it holds a trace of its subject
TRACE_FLOOR = 1.5 / 255  # of full: a matte's floor of one 8-bit level is a trace, whatever the subject's strength


def trace_bar(strongest: Any, peak: float = 1.0) -> Any:
    """The most a mask holds where it holds only a trace of its subject: 1/64 (``TRACE``) of its ``strongest``
    value, and at least ``TRACE_FLOOR`` of ``peak`` (full). Beside a weak subject (48/255), 1/64 of it is under
    one 8-bit level, and a matting model's or a JPEG mask's floor of 1/255 would be subject everywhere.
    ``strongest``: a number, or a tensor of one value or one per mask (the bar of a float one is in its dtype, of
    a whole-number one in float32)."""
    if isinstance(strongest, torch.Tensor):
        return (strongest * TRACE).clamp(min=TRACE_FLOOR * peak)
    return max(strongest * TRACE, TRACE_FLOOR * peak)


def check_mask_coverage(masks: torch.Tensor, peak: float = 1.0, *, allow_empty: bool = False,
                        unit: str = "picture", one_of_more: bool = False) -> None:
    """B×1×H×W (or B×H×W) masks: each must have a subject (a pixel > 0) and some background (a pixel below half
    of ``peak``, the value meaning "fully subject": 1 for unit masks, 255 for uint8), unless ``allow_empty``:
    then a frame of a clip or a picture of a batch may lack either (the Harmonizer leaves it as it was and says
    why), though not every one of them. ``unit``: what one mask belongs to, for the message ("frame" in a clip).
    ``one_of_more``: these masks are part of a longer clip read a frame at a time, whose caller judges the clip
    as a whole: only what is wrong whatever the other frames hold is refused here (a flat grey mask).

    The message names the batch index (0-based) of every mask that fails.
    """
    flat = masks.flatten(1)
    tops = flat.amax(dim=1)  # each mask's strongest value
    lows = flat.amin(dim=1)
    flat_grey = ((lows == tops) & (tops > 0) & (lows < 0.5 * peak)).nonzero().flatten().tolist()
    if flat_grey:  # a grey picture, or a slider's value, given as the mask: every pixel a little subject
        level = float(tops[flat_grey[0]]) / peak
        raise ValueError(
            f"{_which(flat_grey, masks.shape[0])} is one flat grey ({level:.0%} of full) everywhere: it tells no "
            "subject from the background; give a mask that is white on the subject and black elsewhere")
    if one_of_more:
        return
    empty = (tops <= 0).nonzero().flatten().tolist()
    every = len(empty) == masks.shape[0]
    if allow_empty and every and len(empty) > 1:
        raise ValueError(f"every {unit}'s mask is empty (all zero): nothing to harmonize; paint the subject white in "
                         "the masks")
    if empty and (every or not allow_empty):
        raise ValueError(
            f"{_which(empty, masks.shape[0])} is empty (all zero): nothing to harmonize; paint the subject white "
            "in the mask"
        )
    strongest = float(tops.amax()) / peak
    if 0 < strongest < FAINT:  # the whole batch: a frame may rightly hold only the edge of a subject leaving it
        raise ValueError(
            f"the mask's strongest value is {strongest:.2%} of full, so it marks no subject (the result would be the "
            "composite as it was): a 16-bit mask holding 0..255 values, or one divided by 255 twice? Give 8-bit "
            "masks as uint8, 16-bit ones scaled to 0..65535 (x257), float ones in 0..1")
    full = (lows >= 0.5 * peak).nonzero().flatten().tolist()
    if full and (len(full) + len(empty) == masks.shape[0] or not allow_empty):
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
    if (mw, mh) == (h, w):  # the usual cause: a photo turned upright by its orientation, the mask not
        return (f"the {name} is {mw}×{mh} (W×H) but the {against} is {w}×{h}: turned by 90°. A photo whose EXIF "
                f"or XMP orientation says it is rotated is read upright; turn the mask the same way "
                f"(np.rot90; or PIL.ImageOps.exif_transpose on the photo it was drawn on, where the turn is in its "
                f"EXIF: Pillow 9 reads an XMP orientation in a PNG only)")
    return (
        f"the {name} is {mw}×{mh} (W×H) but the {against} is {w}×{h}; resize the mask to the same size as the "
        f"{against}"
    )


def _mask_bhw(mask: Any, name: str, height: int | None = None, width: int | None = None,
              one_scale: bool = False, levels: bool = False) -> torch.Tensor:
    """Any mask kind and layout → float32 B×H×W in [0, 1] (the rules in the module docstring)."""
    dtype: np.dtype | torch.dtype  # the caller's own, for the scale and the messages
    if is_pil(mask):
        array = pil_mask_pixels(mask)
        t, dtype = _tensor_view(array), array.dtype
    elif isinstance(mask, np.ndarray):
        t, dtype = _tensor_view(mask), mask.dtype
    elif isinstance(mask, torch.Tensor):
        t, dtype = check_strided(mask, name).detach(), mask.dtype
    else:
        raise unsupported_kind(mask, name, "a PIL image, numpy array or tensor", reader="read_mask")
    t = _mask_layout(t, name, height, width)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    return _mask_unit(t, dtype, name, one_scale, levels)


def _mask_layout(t: torch.Tensor, name: str, height: int | None, width: int | None) -> torch.Tensor:
    shape = tuple(t.shape)
    image_hw = (height, width) if height is not None else None
    if t.ndim == 2:
        return t[None]
    if t.ndim == 3:
        if image_hw is not None and shape[1:] == image_hw:
            return t  # B×H×W
        if shape[-1] in (2, 3, 4) and (image_hw is None or shape[:2] == image_hw):
            what = "grey and alpha" if shape[-1] == 2 else "a colour picture"
            raise ValueError(
                f"the {name} is H×W×{shape[-1]} ({shape[0]}×{shape[1]}×{shape[2]}): {what}, but a mask has one "
                "channel; pass one channel (e.g. the alpha or the grey level)"
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


def _mask_unit(t: torch.Tensor, dtype: np.dtype | torch.dtype, name: str, one_scale: bool = False,
               levels: bool = False) -> torch.Tensor:
    """``one_scale``: a batch's integer masks on one scale (0/1 only where none goes higher); ``levels``: on
    the dtype's scale whatever their values."""
    if t.dtype == torch.bool:
        return t.to(torch.float32)
    if t.is_complex():  # (its imaginary part would be dropped)
        raise ValueError(f"{name} has dtype {dtype}: use 0/1, uint8 0..255, uint16 0..65535 or float 0..1")
    if not t.is_floating_point():
        f = t.to(torch.float32)
        highs = f.reshape(f.shape[0], -1).amax(dim=1)
        lo, hi = f.min().item(), highs.max().item()
        if lo < 0:
            raise ValueError(f"{name} values must not be negative, got {lo:g}..{hi:g}")
        if hi <= 1 and not (levels and integer_peak(dtype) is not None):  # 0/1 integer masks are binary,
            return f  # whatever the dtype
        peak = integer_peak(dtype)
        if peak is None:
            raise ValueError(
                f"{name} has dtype {dtype} with values {lo:g}..{hi:g}: use 0/1, uint8 0..255, uint16 0..65535 or "
                "float 0..1"
            )
        if one_scale or levels:  # a clip's frames: a matte's level or two once the subject went is 1/255
            return f.div_(peak)  # (in place: ``f`` is this call's own copy, a full-size one)
        # each mask of a batch on its own scale: a 0/1 one beside 0..255 ones is binary, not 1/255
        scale = torch.where(highs <= 1, torch.ones_like(highs), torch.full_like(highs, peak))
        return f.div_(scale.reshape(-1, *[1] * (f.ndim - 1)))
    f = t.to(torch.float32)
    check_unit_range(f, name, "mask")
    return f.clamp(0, 1)


_NOISE = 8  # levels a grey pixel's channels may differ by (JPEG)


def is_black_and_white(grey: np.ndarray, colour: np.ndarray, share: float = 0.75) -> bool:
    """Whether 8-bit grey pixels are a black-and-white painting (a mask): grey (``colour``, where a pixel's channels
    differ by more than a JPEG's noise, on at most 1 % of them), mostly black or white (``share`` of them: three
    quarters), both present."""
    dark, light = grey <= 32, grey >= 223
    return bool(grey.size and colour.mean() <= 0.01 and (dark | light).mean() >= share and dark.any()
                and light.any())


def looks_like_a_mask(image: np.ndarray, share: float = 0.75) -> bool:
    """Whether a picture (H×W or H×W×C, any dtype) is a mask: two levels only (0/1, 0/255), or a black-and-white
    painting as a mask file is read (:func:`is_black_and_white`; ``share``: how much of it must be black or
    white)."""
    colour = image[..., :3] if image.ndim == 3 else image[..., None]
    if colour.dtype.kind in "ui":
        levels = colour // ((np.iinfo(colour.dtype).max + 1) // 256) if colour.dtype.itemsize > 1 else colour
    else:
        levels = np.round(np.clip(colour, 0, 1) * 255)
    levels = levels.astype(np.int16)
    grey, spread = levels[..., 0], np.ptp(levels, axis=-1)
    if not (spread > _NOISE).any() and len(np.unique(colour[..., 0])) == 2:
        return True
    return is_black_and_white(grey, spread > _NOISE, share)


class ColourMaskError(ValueError):
    """A mask file that is a colour picture (a photo given where its mask was expected, perhaps)."""


def file_mask_pixels(image: PILImage, name: str, white: str = "subject") -> np.ndarray:
    """A mask file's one channel (``white``: what its white marks, for the messages). In-memory PIL masks keep
    :func:`pil_mask_pixels`' rules; a file, more likely a picture made for another purpose, is held to stricter
    ones:

    - Opaque (or no alpha): the grey level is the mask; a colour picture (channels more than 8 levels
      apart on over 1 % of the pixels) is refused.
    - With transparent pixels, two readings: the alpha (a cut-out: the subject opaque, in any colours, on a
      transparent background) or the painted grey, transparent pixels counting as 0 (a black-and-white
      mask with a transparent border, e.g. after cropping). Where they agree (white on transparent) either
      is taken. The painted grey when the opaque pixels are a black-and-white painting (grey, mostly black
      or white, both present) and at most 10 % of the picture is transparent; the alpha when they are not
      (colours, greys, all black) and more than 10 % is transparent; any other file is refused.
    """
    from PIL import Image

    if image.mode in _GREY_16 or image.mode in ("L", "1", "F"):
        return pil_mask_pixels(image, name)
    image = unpremultiplied(_upright(image, name))
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    rgb = np.array(image.convert("RGBA" if has_alpha else "RGB"))
    alpha = rgb[..., 3] if has_alpha else None
    rgb = np.ascontiguousarray(rgb[..., :3])
    grey = np.array(Image.fromarray(rgb).convert("L"))
    colour = (rgb.max(-1).astype(np.int16) - rgb.min(-1)) > _NOISE
    if alpha is None or alpha.min() == 255:
        if colour.mean() > 0.01:
            raise ColourMaskError(f"{name} is a colour picture; save it as black and white (white = {white})")
        return grey
    if alpha.max() == 0 and grey.max() > _NOISE:
        raise ValueError(f"{name} is transparent everywhere, so as a cut-out it marks nothing, though a grey is "
                         f"painted under its alpha; save it without alpha, white = {white} on black")
    painted = np.round(grey * (alpha / 255.0)).astype(np.uint8)
    if (np.abs(painted.astype(np.int16) - alpha) > _NOISE).mean() <= 0.01:
        return alpha
    opaque = alpha == 255
    black_and_white = is_black_and_white(grey[opaque], colour[opaque])
    few_transparent = 1 - opaque.mean() <= 0.1
    if black_and_white and few_transparent:
        return painted
    if not black_and_white and not few_transparent:
        return alpha
    raise ValueError(
        f"{name} has transparent pixels, and it cannot be told whether its alpha (a cut-out) or its painted "
        f"grey (a black-and-white mask) is the mask; save it without alpha, white = {white} on black, or as a "
        f"cut-out: {'the subject' if white == 'subject' else white} opaque on a transparent background"
    )


def read_mask(path: str | Path, kind: str = "mask", white: str = "subject", levels: bool = False) -> np.ndarray:
    """Decode a mask file → float32 H×W in [0, 1], upright by EXIF (the mask rules, and
    :func:`file_mask_pixels`' for colour and transparency). ``kind`` and ``white`` name
    the mask and what its white marks in the messages (a "reference mask" marks "the region to match").
    ``levels``: as for :func:`mask_to_array`."""
    name = f"{kind} {path}"
    with open_picture(path) as picture:
        return mask_to_array(file_mask_pixels(picture, name, white), name=name, levels=levels)


def integer_levels_above_one(path: str | Path, alpha: bool = False) -> bool:
    """Whether a mask file (``alpha``: a picture's alpha channel) holds integer values above 1 (a 0..255 or
    0..65535 mask, not a 0/1 one); False for a file that cannot be read (its frame's run names it)."""
    try:
        with open_picture(path) as picture:
            if alpha:  # as the run reads it: a 16-bit picture's alpha at 16 bits (PIL's own band holds its high byte)
                pixels = picture_pixels(path, picture)
                if pixels.ndim != 3 or pixels.shape[-1] != 4:
                    return False
                values = pixels[..., 3]
            else:
                values = file_mask_pixels(picture, f"mask {path}")  # (named as read_mask names it)
    except (ValueError, OSError):
        return False
    return values.dtype.kind in "ui" and values.size > 0 and int(values.max()) > 1
