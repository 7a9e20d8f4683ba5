"""What a call's options and tensors may be, checked before any work: one set of rules for the Harmonizer, the
``phnet`` command and the hosts, each a ``ValueError`` in one sentence that names the fix."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .choices import MODES
from .config import MAX_WORKING_SIZE, MIN_WORKING_SIZE, PHNetConfig
from .devices import device_problem
from .imageio import check_mask_coverage, check_unit_range
from .imageio.images import check_strided, integer_peak
from .mask_tools import checked_number

FULL_RESOLUTION_ON = ("auto", "model", "input")
MIN_SIDE = 8  # pixels: a thinner picture is stretched to the working size row by row; an untouched 94×1 strip
# came back changed by RMS 117
_INTEGER_MASKS = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)  # read as 0/1 masks


def check_picture_size(height: int, width: int) -> None:
    """A picture under ``MIN_SIDE`` pixels on a side is refused."""
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"the picture is {width}×{height} pixels: PHNet needs at least {MIN_SIDE} on each side to "
                         "tell the subject's colours from the scene's; give a larger picture")


def as_number(value: Any, name: str, rule: str = "a number") -> float:
    """A plain finite float from a Python or numpy number or a one-element tensor; a ``ValueError`` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    return checked_number(value, f"{name} must be {rule}")


def check_options(config: PHNetConfig, strength: float, mode: str, working_size: int | None,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """The working size a call with these options uses with weights of this ``config``; a ``ValueError`` naming
    the bad option otherwise."""
    if progress is not None and not callable(progress):  # it failed after the first picture was computed
        raise ValueError(f"progress must be a function progress(done, total) or None, got {progress!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if not 0.0 <= as_number(strength, "strength") <= 1.0:
        raise ValueError(f"strength must be in 0..1, got {strength}")
    size = config.image_size if working_size is None else working_size
    # any whole number: 256.0 from a UI's number field, numpy's int64 or float32, a one-element tensor too
    if isinstance(size, torch.Tensor) and size.numel() == 1 and size.dtype != torch.bool:
        size = size.item()
    rule = f"a multiple of 8 from {MIN_WORKING_SIZE} to {MAX_WORKING_SIZE}"
    whole = as_number(size, "working_size", rule).is_integer()
    if not whole or not MIN_WORKING_SIZE <= size <= MAX_WORKING_SIZE or size % 8:
        raise ValueError(f"working_size must be {rule}, got {size!r}")
    return int(size)


def check_threshold(threshold: float | None) -> float | None:
    """A do-no-harm threshold given for a call, as a plain float (None: the weights' own)."""
    rule = "a number from 0 to 255 (RMS, 0-255 units), as a config's is, or None for the weights' own"
    if threshold is None:
        return None
    value = as_number(threshold, "threshold", rule)
    if not math.isfinite(value) or not 0 <= value <= 255:
        raise ValueError(f"threshold must be {rule}, got {threshold!r}")
    return value


def threshold_for(config: PHNetConfig, threshold: float | None = None) -> float:
    """The do-no-harm threshold a call uses: ``threshold`` when given, else the weights' own (``config``'s)."""
    return config.correction_threshold if threshold is None else float(threshold)


def carries_soft_edges(mode: str, method: str, output: str = "image") -> bool:
    """Whether ``mask_is_alpha`` changes anything: only methods "correction" and "guided" of mode "full", with
    a model whose output is a picture, carry the working-size change up to a soft edge. A host may ask before the
    weights load."""
    return mode == "full" and method != "resize" and output != "transform"


def check_flag(value: Any, name: str) -> None:
    """True or False (numpy's too): a string from a config file is no flag ("no" is truthy)."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool", "bool_"):  # numpy 1 and 2
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_devices(**tensors: Any) -> None:
    """A tensor on a device that holds no data (meta) is named, not met with torch's words mid-call."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            raise ValueError(f"the {name.replace('_', ' ')} is on the meta device: {device_problem(t.device)}")


def check_pair(images: torch.Tensor, masks: torch.Tensor, allow_empty: bool = False) -> None:
    """What ``Harmonizer.harmonize_tensor`` takes: B×3×H×W float images in 0..1 and B×1×H×W masks (float, or
    0/1 integer or bool), on a device that holds data, with a subject (unless ``allow_empty``)."""
    check_strided(images, "images")
    check_strided(masks, "masks")
    check_devices(images=images, masks=masks)
    for name, t in (("images", images), ("masks", masks)):
        if t.is_floating_point() or (name == "masks" and t.dtype in _INTEGER_MASKS):
            continue
        peak = integer_peak(t.dtype)
        takes = f"harmonize_tensor takes float {name} in 0..1{' (or 0/1 integer ones)' * (name == 'masks')}"
        if peak is None:
            raise ValueError(f"{takes}, got {t.dtype}: convert them to float in 0..1")
        raise ValueError(f"{takes}, got {t.dtype}: divide them by {peak:g} ({name}.float() / {peak:g}) or call "
                         f"harmonizer(image, mask), which reads {8 if peak == 255 else 16}-bit {name} as they are")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B×3×H×W, got {tuple(images.shape)}")
    check_picture_size(*images.shape[-2:])
    wanted = (images.shape[0], 1, *images.shape[-2:])
    if masks.shape != wanted:
        if masks.ndim != 4 or masks.shape[1] != 1:
            fix = "give them a channel axis (masks[:, None] for B×H×W)"
        elif masks.shape[-2:] != images.shape[-2:]:
            fix = "resize the mask to the image"
        else:
            fix = (f"give one mask per image ({images.shape[0]}; masks.expand({', '.join(map(str, wanted))}) "
                   "repeats one)")
        raise ValueError(f"masks must be B×1×H×W matching the images {tuple(images.shape)}, got "
                         f"{tuple(masks.shape)}: {fix}")
    check_unit_range(images, "images")  # tensors handed in directly meet the same range check as any input
    check_unit_range(masks, "masks", "mask")
    check_mask_coverage(masks, allow_empty=allow_empty)
