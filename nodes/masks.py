"""The mask mistakes ComfyUI users make, caught before they turn into a wrong picture.

Each check raises a ValueError whose text is what the user reads in the frontend's error dialog,
so it names the node to add or the picture to fix. Converting masks is not done here
(``phnet.imageio`` does that); this only looks at a MASK next to the IMAGE it belongs to.

Why a likely inverted mask is refused and not quietly inverted: a ComfyUI graph says what happens
to a picture, and users fix wiring by reading it; an automatic flip would make the same graph do
opposite things on different pictures, and would flip the rare mask that really is meant that way.
The refusal names the core InvertMask node, which is the one-click fix, and the node's mask_as_given input,
which uses such a mask as it is.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

# LoadImage outputs a 64x64 mask of zeros when the picture has no alpha channel.
NO_ALPHA_SIDE = 64
# How far outside 0..1 an IMAGE or MASK from a node that does not clamp its output may reach: a bicubic
# upscale (core Upscale Image, ImageScale) of a hard edge overshoots by up to about 0.2.
UNCLAMPED = 0.25
# The input that turns the inverted-mask check off; after every other input of its node, as a saved workflow
# holds its widgets' values by position.
MASK_AS_GIVEN = ("BOOLEAN", {
    "default": False,
    "tooltip": "Use a mask that looks inverted as it is, e.g. two subjects at the picture's sides with the scene "
               "between them (off: such a mask is refused, to be put through InvertMask).",
})


def _hw(t: torch.Tensor) -> tuple[int, int]:
    return int(t.shape[-2]), int(t.shape[-1])


def plain_mask(mask, image=None):
    """A MASK as ComfyUI's H×W or B×H×W, from the B×1×H×W and B×H×W×1 some nodes emit, and from an H×W×1 one
    of ``image``'s H×W (as the library reads it) or of its shape at another size (for :func:`fitted` to resize);
    any other B×H×1 stays a batch of H×1 masks; None if not a mask."""
    if not isinstance(mask, torch.Tensor):
        return None
    if mask.ndim == 4 and mask.shape[1] == 1:
        return mask[:, 0]
    if mask.ndim == 4 and mask.shape[-1] == 1:
        return mask[..., 0]
    if mask.ndim == 3 and mask.shape[-1] == 1 and isinstance(image, torch.Tensor) and image.ndim == 4:
        (mh, mw), (ih, iw) = mask.shape[:2], _image_hw(image)
        if (mh, mw) == (ih, iw) or ((mw, 1) != (ih, iw) and 0 not in (mh, mw) and _same_shape(mh, mw, ih, iw)):
            return mask[..., 0]
    return mask if mask.ndim in (2, 3) else None


def _image_hw(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[-3]), int(image.shape[-2])  # IMAGE is [B, H, W, C]


MIN_FITTED_SIDE = 16  # a smaller mask is no picture's mask scaled down: it would fit almost any shape


def _same_shape(mh: int, mw: int, ih: int, iw: int) -> bool:
    """Whether a mh×mw mask has the aspect ratio of an ih×iw picture, to within the rounding of a scale."""
    # an upscaler rounds each side on its own: the width it gives a mask's height may be off by the rounding
    # of both sides, at most half a pixel each, times the aspect ratio
    return abs(mw * ih / mh - iw) <= 1 + mw / mh and abs(mh * iw / mw - ih) <= 1 + mh / mw


def fitted(mask, image: torch.Tensor, name: str):
    """(mask, note): a MASK made for this picture before it was scaled (an upscaler, a hires fix, a downscale)
    resized to the picture, when its aspect ratio is the picture's to within the rounding of a scale; anything
    else as it was, for the checks to judge (the empty 64x64 mask of a picture without alpha, another picture's
    mask); a crop of a square picture to a smaller square keeps its shape, so the note of a mask made smaller
    names CropMask. Its values keep their meaning: a uint8 0..255 mask stays uint8, a float one is not clamped."""
    plain = plain_mask(mask, image)
    if (plain is None or plain.numel() == 0 or _unreadable(plain) or not isinstance(image, torch.Tensor)
            or image.ndim != 4):
        return mask, ""  # (check_mask_size names a mask whose values cannot be read)
    (mh, mw), (ih, iw) = _hw(plain), _image_hw(image)
    no_alpha = (mh, mw) == (NO_ALPHA_SIDE, NO_ALPHA_SIDE) and bool((plain == plain.flatten()[0]).all())
    if (mh, mw) == (ih, iw) or no_alpha or min(mh, mw) < MIN_FITTED_SIDE or not _same_shape(mh, mw, ih, iw):
        return mask, ""
    values = plain.reshape(-1, 1, mh, mw)
    resized = torch.nn.functional.interpolate(values.float(), size=(ih, iw), mode="bilinear", align_corners=False,
                                              antialias=ih < mh)
    resized = resized.reshape(*plain.shape[:-2], ih, iw)
    resized = resized.to(plain.dtype) if plain.is_floating_point() else resized.round_().to(plain.dtype)
    crop = " (if the image was cropped, crop the mask the same way with CropMask)" if ih < mh else ""
    return resized, f"; '{name}' was {mw}x{mh}, resized to the image's {iw}x{ih}{crop}"


def prepared(mask, image: torch.Tensor, name: str, check: Callable[[Any], None]):
    """(mask, note): a MASK made ready for ``image`` the same way in every node: resized when it was made
    before the picture was scaled (:func:`fitted`), judged by ``check``, an upscaler's overshoot clamped
    (:func:`clamped`); the note is for the report."""
    mask, resized = fitted(mask, image, name)
    check(mask)
    mask, clamp = clamped(mask, name)
    return mask, resized + clamp


def one_per_mask(image, mask):
    """One image and a batch of N masks (several subjects from SAM, a batch of masks): the image repeated, to be
    harmonized once per mask, as ComfyUI's core nodes repeat a batch of one. Masks are the image's size here
    (``prepared``), in any layout the library takes (B×H×W, B×1×H×W, B×H×W×1...): their count is their size
    over one picture's."""
    count = mask_count(mask, image)
    return image.expand(count, -1, -1, -1) if count and image.shape[0] == 1 and count > 1 else image


def mask_count(mask, image) -> int | None:
    """How many masks of ``image``'s size ``mask`` holds, in any layout; None when that cannot be told."""
    if not (isinstance(image, torch.Tensor) and isinstance(mask, torch.Tensor)) or image.ndim != 4:
        return None
    picture = image.shape[1] * image.shape[2]
    return mask.numel() // picture if picture and mask.numel() % picture == 0 else None


def check_image(image: torch.Tensor, node: str, name: str = "image") -> None:
    """An IMAGE is B×H×W×C with 3 or 4 channels and at least one picture; a tensor of another rank, or a
    channels-first one, from a custom node says so here, before its sizes are compared with the mask's."""
    if not isinstance(image, torch.Tensor):
        _not_a_tensor(image, node, name, "IMAGE", "B×H×W×C")
    _check_values(image, node, name, "picture")
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        raise ValueError(
            f"{node}: '{name}' is {tuple(image.shape)}, one picture (H×W×C) without the batch axis of a ComfyUI "
            "IMAGE (B×H×W×C). The node that made it returns a single picture (such as image[0]): it should return "
            "image[None] (image.unsqueeze(0)), or connect a node that returns a ComfyUI IMAGE")
    if image.ndim != 4:
        raise ValueError(
            f"{node}: '{name}' is {tuple(image.shape)}, a {image.ndim}-D tensor; a ComfyUI IMAGE is 4-D, B×H×W×C. "
            "The node that made it returns no ComfyUI IMAGE: connect a node that returns one")
    if image.shape[0] == 0:
        raise ValueError(f"{node}: '{name}' is an empty batch (0 images): the node before it produced no picture")
    if image.shape[-1] in (1, 3, 4) and 0 in image.shape[1:3]:
        raise ValueError(f"{node}: '{name}' is {image.shape[2]}x{image.shape[1]} pixels, an empty picture: the node "
                         "before it produced no picture (a crop of nothing?)")
    if image.shape[-1] in (3, 4):
        return
    if image.shape[1] in (1, 3, 4) and image.shape[-1] != 1:  # B×H×W×1, a few rows tall, is a grey IMAGE
        raise ValueError(
            f"{node}: '{name}' is {tuple(image.shape)}, channels first (B×C×H×W); ComfyUI IMAGEs are B×H×W×C. "
            "The node that made it returns the wrong layout: permute it to B×H×W×C (e.g. image.permute(0, 2, 3, 1)) "
            "or connect a node that returns a ComfyUI IMAGE"
        )


def _not_a_tensor(value, node: str, name: str, kind: str, layout: str) -> None:
    """A custom node's list of pictures (or a numpy array) in place of a ComfyUI IMAGE or MASK, which is one torch
    tensor: the checks that follow read its shape."""
    what = type(value).__name__
    if isinstance(value, (list, tuple)):
        what = f"{what} of {len(value)}" + (f" {type(value[0]).__name__}s" if value else "")
    raise ValueError(f"{node}: '{name}' is a {what}, not a ComfyUI {kind} (one torch tensor, {layout}): the node that "
                     f"made it returns the wrong type. Connect a node that returns a ComfyUI {kind}")


# the float types torch reads on every device; an fp8 tensor has no min, max or isfinite on the CPU
_READABLE_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _unreadable(t: torch.Tensor) -> bool:
    return t.is_meta or (t.is_floating_point() and t.dtype not in _READABLE_FLOATS)


def _check_values(t: torch.Tensor, node: str, name: str, what: str) -> None:
    """A tensor on the meta device (a shape without values) or of a float type torch cannot read (fp8): every
    check of its values would fail with a bare torch error, so it is named here."""
    if t.is_meta:
        raise ValueError(f"{node}: '{name}' is a tensor on the meta device, a shape without values, so it holds no "
                         f"{what}: the node that made it returns a placeholder. Connect a node that returns a real "
                         f"{what}")
    if t.is_floating_point() and t.dtype not in _READABLE_FLOATS:
        kind = "IMAGE" if what == "picture" else "MASK"
        raise ValueError(f"{node}: '{name}' holds {t.dtype} values; a ComfyUI {kind} is float32 in 0..1: the node "
                         "that made it returns the wrong type")


def check_mask_size(mask: torch.Tensor, image: torch.Tensor, name: str, node: str) -> None:
    """The size checks alone, for a mask that may rightly cover most of the picture (a reference region)."""
    check_image(image, node)
    if mask is not None and not isinstance(mask, torch.Tensor):
        _not_a_tensor(mask, node, name, "MASK", "H×W or B×H×W")
    mask = plain_mask(mask, image)
    if mask is None:
        return  # not a ComfyUI MASK: the library's own checks say what is wrong
    _check_values(mask, node, name, "mask")
    if mask.ndim == 3 and mask.shape[0] == 0:
        raise ValueError(f"{node}: '{name}' is an empty batch (0 masks): the node before it produced no mask")
    mh, mw = _hw(mask)
    ih, iw = _image_hw(image)
    if (mh, mw) == (NO_ALPHA_SIDE, NO_ALPHA_SIDE) != (ih, iw):
        m = mask.float()
        if bool((m == m.flatten()[0]).all()):
            inverted = " (inverted by InvertMask)" if float(m.flatten()[0]) > 0.5 else ""
            fix = ("it marks no region to match. Connect a mask of the region the subject should match, the "
                   "image's size, or leave reference_mask unconnected to match the whole background"
                   if name == "reference_mask" else
                   "it cannot tell the subject apart. Load a PNG whose subject is opaque and whose background is "
                   "transparent and connect its MASK through an InvertMask node (Load Image's MASK is 1 where the "
                   "PNG is transparent), or load a black-and-white subject mask with 'Load Image (as Mask)' and "
                   "connect that instead")
            raise ValueError(f"{node}: '{name}' is the empty 64x64 mask{inverted} that Load Image gives for a "
                             f"picture with no alpha channel, so {fix}")
    if (mh, mw) != (ih, iw) and 0 < min(mh, mw) < MIN_FITTED_SIDE and _same_shape(mh, mw, ih, iw):
        raise ValueError(
            f"{node}: '{name}' is {mw}x{mh} pixels but the image is {iw}x{ih}: the image's shape, but too small to "
            f"be resized to it (under {MIN_FITTED_SIDE} pixels a side, a mask fits almost any picture's shape). "
            f"Connect the mask made for this image at its size, or at least {MIN_FITTED_SIDE} pixels a side"
        )
    if (mh, mw) != (ih, iw):
        raise ValueError(
            f"{node}: '{name}' is {mw}x{mh} pixels but the image is {iw}x{ih}, another shape (a mask of the image's "
            "shape at another size is resized to it). Connect the mask that was made for this image, or crop it "
            "to the image first"
        )


def _unit(frames: torch.Tensor, name: str, node: str) -> torch.Tensor:
    """B×H×W integer masks on the 0..1 scale the library reads them on (each 0/1 or 0..its dtype's peak); float
    ones as they are (an upscaler's overshoot is clamped after these checks)."""
    if frames.is_floating_point():
        return frames
    from ..phnet.imageio import mask_to_tensor

    try:
        return mask_to_tensor(frames, *frames.shape, name)[:, 0]
    except ValueError as e:  # an int32 0..255 mask: the library knows neither the node nor the input
        raise ValueError(f"{node}: {e}") from None


def check_mask(mask: torch.Tensor, image: torch.Tensor, name: str, node: str, *, whole_ok: bool = False,
               clip: bool = False, as_given: bool = False) -> None:
    """Refuse a MASK that cannot be what the user meant for ``image`` (shapes as ComfyUI passes them).
    ``whole_ok``: a mask of the whole picture is meant (a subject cut out as its whole rectangle). A batch, or
    with ``clip`` a clip's frames, is judged as a whole: a subject may fill a picture or two (walking into the
    camera), which the library leaves as they were; it is refused when every mask is whole, or when one looks
    inverted (most, in a clip, where the subject may rightly fill much of a frame). ``as_given``: a mask that
    looks inverted is used all the same (the node's mask_as_given)."""
    from ..phnet.mask_tools import inverted_masks

    check_mask_size(mask, image, name, node)
    mask = plain_mask(mask, image)
    if mask is None:
        return  # not a ComfyUI MASK: the library's own checks say what is wrong
    mh, mw = _hw(mask)
    frames = _unit(mask.reshape(-1, mh, mw), name, node)
    if frames.is_floating_point() and not bool(torch.isfinite(frames).all()):
        return  # NaN reads as neither subject nor background: the library's check names it
    if not bool((frames > 0).any()):
        whose = f"every {'frame' if clip else 'picture'}'s mask" if len(frames) > 1 else f"'{name}'"
        raise ValueError(
            f"{node}: {whose} is empty (all 0), so nothing marks the subject. The usual causes: Load Image's "
            "MASK of a PNG with no transparent pixels (load a cut-out whose background is transparent, its MASK "
            "through InvertMask, or a black-and-white mask with 'Load Image (as Mask)'), or a detector or PHNet "
            "SAM Segment that found nothing (check its box or points)")
    whole = [i for i, m in enumerate(frames) if bool((m >= 0.5).all())]
    subjects = sum(bool(m.amax() > 0) for m in frames)
    several = len(frames) > 1
    item = "mask" if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] == 1 else "image"
    which = (lambda i: f" ({item} {i} of the batch)") if several and not clip else (lambda i: "")
    inverted = [] if as_given else inverted_masks(frames, clip)
    if inverted:
        i, area, border = inverted[0]
        share = (f"{len(inverted)} of the {len(frames)} frames' masks cover most of the picture and its border"
                 if clip and several else
                 f"'{name}'{which(i)} covers {area:.0%} of the picture and {border:.0%} of its border")
        raise ValueError(
            f"{node}: {share}, so {'they look' if clip and several else 'it looks'} inverted: 1 (white) must mark the "
            f"subject, 0 (black) the background. Put an InvertMask node in front of {node}, or, if "
            f"{'they are' if clip and several else 'it is'} right (subjects at the picture's sides with the scene "
            "between them), turn on mask_as_given. The usual causes: Load Image's MASK is 1 where a PNG is "
            "transparent (an RGBA cut-out), and a mask file painted with a black subject on white, loaded with Load "
            "Image (as Mask)"
        )
    if len(whole) == subjects and not whole_ok:  # inverting it would leave nothing
        every = (" in every frame" if clip else " in every picture of the batch") if several else ""
        if every and subjects < len(frames):
            every += " that has a subject (the other masks are empty)"
        raise ValueError(
            f"{node}: '{name}' covers the whole picture{every}, so no background is left to match the subject to: "
            "connect a mask that marks only the subject (1, white) and leaves the background 0 (black), e.g. from "
            "PHNet SAM Segment")


def clamped(t, name: str):
    """An IMAGE or MASK a little outside 0..1 (a node before this one does not clamp its output) is clamped,
    with a note for the report; further outside (a 0..255 image, NaN), the library's own check names the fix."""
    from ..phnet.compat import aminmax
    from ..phnet.imageio import UNIT_SLACK  # rounding noise, which the library tolerates as it is

    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
        return t, ""
    lo, hi = (float(v) for v in aminmax(t))
    a_little_outside = ((lo < -UNIT_SLACK or hi > 1 + UNIT_SLACK)
                        and -UNCLAMPED <= lo and hi <= 1 + UNCLAMPED)  # NaN: False
    if not a_little_outside:
        return t, ""
    return t.clamp(0, 1), (f"; the {name} held values from {lo:.3g} to {hi:.3g} (a node before this one does "
                           "not clamp its output): they were clamped to 0..1 first")
