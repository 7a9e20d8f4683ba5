"""Reading a composite, its mask and its reference mask from files, with every refusal naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import UNIT_SLACK
from ..imageio.decode import quiet_open
from ..imageio.masks import looks_like_a_mask
from ..imageio.orientation import orientation, orientation_source
from .jobs import Job


def load_pair(composite: Path, mask: Path | None, levels: bool = False, clip: bool = False,
               as_given: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(image array as stored, float32 mask, what its results carry: see read_picture) for one job; ValueError
    naming the file when it cannot be used. ``levels``: an integer mask file on its dtype's scale even where
    its values stop at 1 (a frame of a clip whose other masks go higher). ``clip``: a frame of a clip, whose
    alpha may rightly mark no subject or the whole frame, over a flat colour (a fade to black): the clip is
    judged as a whole. ``as_given``: a mask file that looks inverted is used all the same (--mask-as-given)."""
    from ..imageio import mask_to_array, read_mask, read_picture
    from ..imageio.masks import ColourMaskError
    from ..mask_tools import looks_inverted

    image, keep = read_picture(composite)
    if image.dtype.kind == "f":  # (the library's own words tell a caller to divide by 255)
        colour = image[..., :3] if image.ndim == 3 else image
        if not np.isfinite(colour).all():
            raise ValueError(f"{composite} holds NaN or infinite values; save it with numbers in 0..1, or as an 8- "
                             "or 16-bit picture")
        top, low = float(colour.max()), float(colour.min())
        if top > 1.0 + UNIT_SLACK:
            raise ValueError(f"{composite} holds float values up to {top:.4g}, where a float picture holds 0..1 (a "
                             "0..255 or HDR one?); save it scaled to 0..1, or as an 8- or 16-bit picture")
        if low < -UNIT_SLACK:
            raise ValueError(f"{composite} holds float values down to {low:.4g}, where a float picture holds 0..1; "
                             "save it scaled to 0..1, or as an 8- or 16-bit picture")
    if mask is None:
        if image.ndim != 3 or image.shape[-1] != 4:
            raise ValueError(f"{composite} has no alpha channel; give its MASK as the second argument (for a folder "
                             "of composites, a folder of masks with the same names)")
        opaque = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
        if not clip and bool((image[..., 3] == opaque).all()):
            raise ValueError(f"{composite}'s alpha channel is opaque everywhere, so it marks no subject; give its "
                             "MASK as the second argument (for a folder of composites, a folder of masks)")
        if not clip:
            _refuse_cut_out(image, composite)
        return image[..., :3], mask_to_array(image[..., 3], f"alpha channel of {composite}", levels=levels), keep
    try:
        m = read_mask(mask, levels=levels)
    except ColourMaskError:
        if looks_like_a_mask(image):
            raise ValueError(f"the composite {composite} and the mask {mask} look swapped: give the composite first, "
                             "then its mask") from None
        raise
    _check_size("mask", mask, m.shape, composite, image.shape, "resize the mask to the composite")
    inverted = None if clip or as_given else looks_inverted(m)  # a clip is judged as a whole (refuse_inverted_clip)
    if inverted is not None:  # (subjects at both sides with the scene between them look the same: hence the flag)
        raise ValueError(inverted_words(mask, *inverted))
    return image, m, keep


def inverted_words(mask: Path, area: float, border: float) -> str:
    """The refusal of a ``mask`` file that looks inverted: it covers ``area`` of the picture and ``border`` of its
    border (shares of 1), with both fixes."""
    return (f"mask {mask} covers {area:.0%} of the picture and {border:.0%} of its border, so it looks inverted: "
            "white must mark the subject, black the background; invert it, or, if it is right (subjects at the "
            "picture's sides), add --mask-as-given")


def _check_size(kind: str, path: Path, found: tuple[int, ...], composite: Path, shape: tuple[int, ...],
                fix: str) -> None:
    """A mask file (``kind``: "mask", "reference mask") of another H×W than its composite's ``shape`` is named
    with it; one of the composite's size as stored, where its orientation turns it, is named as such."""
    if tuple(found) == tuple(shape[:2]):
        return
    if tuple(found) == tuple(shape[1::-1]):
        turn, source = _orientation(path)
        if turn in (5, 6, 7, 8):  # read upright, as a picture
            raise ValueError(
                f"{kind} {path} is turned to {found[1]}×{found[0]} by its own {_SOURCES[source]}; as stored it fits "
                f"{composite} ({shape[1]}×{shape[0]}): save the {kind} without that {_TAGS[source]}")
        turn, source = _orientation(composite)
        if turn in (5, 6, 7, 8):
            raise ValueError(
                f"{kind} {path} is {found[1]}×{found[0]}, the size of {composite} as stored, but the composite is "
                f"rotated by its {_SOURCES[source]} to {shape[1]}×{shape[0]}; draw the {kind} on the upright "
                "picture")
    raise ValueError(f"{kind} {path} is {found[1]}×{found[0]} but {composite} is {shape[1]}×{shape[0]}; {fix}")


def _refuse_cut_out(image: np.ndarray, composite: Path) -> None:
    """An RGBA picture whose alpha is the mask must hold a background under its transparent part: a cut-out's
    is one flat colour (black, mostly), which the subject would be matched to."""
    from ..compositing import cut_out_colour

    flat = cut_out_colour(image, image[..., 3] == 0)
    if flat is not None:
        colour = ", ".join(str(int(v)) for v in flat)
        raise ValueError(
            f"{composite} is a cut-out: under its transparent part is one flat colour ({colour}), not a scene for the "
            "subject to match; paste it onto its background first (phnet.compositing.paste_subject, or PHNet Paste "
            "Subject in ComfyUI) and give the composite with its mask")


_SOURCES = {"EXIF": "EXIF orientation", "XMP": "XMP tiff:Orientation"}
_TAGS = {"EXIF": "EXIF tag", "XMP": "XMP orientation"}
_TURNS = {2: "mirrored", 3: "turned by 180°", 4: "flipped upside down", 5: "turned by 90° and mirrored",
          6: "turned by 90°", 7: "turned by 90° and mirrored", 8: "turned by 90°"}


def orientation_note(job: Job, shape: tuple[int, int], keep: dict[str, Any]) -> str | None:
    """A note when the composite is turned upright by its orientation and its mask, stored as it is, fits
    both the upright and the stored picture: drawn on the stored one, it would mark the wrong pixels. ``keep``:
    what read_picture gave for the composite."""
    if job.mask is None:
        return None
    turn, source = keep.get("orientation", (1, "EXIF"))
    if turn not in _TURNS or (turn >= 5 and shape[0] != shape[1]) or _orientation(job.mask)[0] != 1:
        return None  # a turned mask fitting only the stored picture is refused by its size
    return (f"note: {job.composite.name} is {_TURNS[turn]} by its {_SOURCES[source]}, so it is read upright, and "
            f"{job.mask.name} is read as stored; if the mask was drawn on the picture as stored rather than as "
            "viewers show it, turn it the same way")


def _orientation(path: Path) -> tuple[int, str]:
    """A file's orientation and where it is given ("EXIF", "XMP")."""
    try:
        with quiet_open(path) as image:
            return orientation(image), orientation_source(image)
    except Exception:  # only words a message
        return 1, "EXIF"


def reference_for(job: Job, shape: tuple[int, ...]) -> np.ndarray | None:
    """The reference mask of one composite (planned by plan), decoded, of the composite's H×W ``shape``."""
    from ..imageio import read_mask

    if job.reference is None:
        return None
    reference = read_mask(job.reference, "reference mask", "the region to match")
    _check_size("reference mask", job.reference, reference.shape, job.composite, shape,
                "draw it on the composite, or resize it to it")
    return reference
