"""Box and point prompts, checked against the image size before anything is encoded.

Coordinates are pixels of the image being segmented: boxes ``(x0, y0, x1, y1)``, points ``(x, y)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ..imageio import mask_to_array
from ..imageio.masks import FAINT
from ..mask_tools import mask_bbox


@dataclasses.dataclass(frozen=True)
class SamPrompt:
    """A prompt that fits an image of ``size`` (H, W); arrays are what ``SamPredictor.predict`` takes."""

    size: tuple[int, int]
    box: np.ndarray | None = None  # (4,) float32, corners sorted and clipped to the image
    points: np.ndarray | None = None  # (N, 2) float32
    labels: np.ndarray | None = None  # (N,) int64, 1 = subject, 0 = background


def _box_from_mask(mask_prompt: Any, height: int, width: int) -> tuple[int, int, int, int]:
    box = mask_bbox(mask_to_array(mask_prompt, "mask_prompt", size=(height, width)))
    if box is None:
        raise ValueError("mask_prompt is empty (no pixel above 0.5): nothing to segment")
    return box


def _floats(values: Any) -> np.ndarray | None:
    """``values`` as float64 numbers, or None where they are no numbers (a string, a dict)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _checked_box(box: Sequence[float], height: int, width: int) -> np.ndarray:
    b = _floats(box)
    b = b.reshape(-1) if b is not None else np.full(1, np.nan)
    if b.size != 4 or not np.all(np.isfinite(b)):
        raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, x1 = np.clip(sorted((b[0], b[2])), 0, width)
    y0, y1 = np.clip(sorted((b[1], b[3])), 0, height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValueError(
            f"box {tuple(float(v) for v in b)} has no area inside the {width}x{height} image "
            "(after clipping); boxes are (x0, y0, x1, y1) in pixels"
        )
    return np.array([x0, y0, x1, y1], dtype=np.float32)


def _checked_points(
    points: Sequence[Sequence[float]], point_labels: Sequence[int] | None, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    coords = _floats(points)
    coords = coords if coords is not None else np.full(1, np.nan)
    if coords.ndim == 1 and coords.size == 2:
        coords = coords[None]
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.all(np.isfinite(coords)):
        raise ValueError(f"points must be a list of (x, y) pairs, got {points!r}")
    if point_labels is None:
        labels = np.ones(len(coords), dtype=np.int64)
    else:
        try:
            given = np.asarray(point_labels, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            given = np.array([np.nan])
        if given.shape[0] != coords.shape[0] and not np.isnan(given).any():
            raise ValueError(f"{coords.shape[0]} points but {given.shape[0]} point_labels; give one label per point")
        if not np.isin(given, (0, 1)).all():  # checked before any rounding: 0.9 is no background point
            raise ValueError("point_labels must be 1 (on the subject) or 0 (background)")
        labels = given.astype(np.int64)
    outside = (coords[:, 0] < 0) | (coords[:, 0] > width) | (coords[:, 1] < 0) | (coords[:, 1] > height)
    if outside.any():
        bad = tuple(float(v) for v in coords[np.argmax(outside)])
        raise ValueError(f"point {bad} lies outside the {width}x{height} image; points are (x, y) in pixels")
    return coords.astype(np.float32), labels


def make_prompt(
    size: tuple[int, int],
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    point_labels: Sequence[int] | None = None,
    mask_prompt: Any = None,
) -> SamPrompt:
    """Check a prompt against an image of ``size`` (H, W) and return it ready for SAM.

    box: (x0, y0, x1, y1), corners in any order, clipped to the image; no area inside it is an error.
    points: [(x, y), ...] inside the image, with point_labels 1 = subject, 0 = not (default all 1); at least one 1
        unless a box or mask_prompt is given (background points alone do not say where the subject is).
    mask_prompt: a mask of the image whose bounding box becomes the box.
    """
    height, width = (int(v) for v in size)
    if mask_prompt is not None:
        if box is not None:
            raise ValueError("give either box or mask_prompt, not both (mask_prompt is turned into a box)")
        box = _box_from_mask(mask_prompt, height, width)
    checked_box = _checked_box(box, height, width) if box is not None else None
    coords = labels = None
    if points is not None and len(points) > 0:
        coords, labels = _checked_points(points, point_labels, height, width)
    elif point_labels is not None and np.size(point_labels) > 0:
        raise ValueError("point_labels given without points")
    if checked_box is None:
        if labels is None:  # no points either: they come with their labels
            raise ValueError("empty prompt: give a box, points or a mask_prompt")
        if not (labels == 1).any():
            raise ValueError("background points alone (label 0) say where the subject is not: add a point on the "
                             "subject (label 1), a box or a mask_prompt")
    return SamPrompt((height, width), checked_box, coords, labels)


def guide_boxes(guides: Any) -> list[tuple[int, int, int, int] | None]:
    """The box prompt of each of a batch's guide masks (B x H x W, 0..1, numpy or torch): the box of the pixels at
    least half as strong as that guide's own strongest, so a faint guide (drawn at 50 % opacity, feathered) marks its
    region. None where a guide is empty, or under ``FAINT`` of the batch's strongest guide: a detector's "nobody
    here", whose box would be its noise's."""
    strongest = [float(g.max()) for g in guides]
    top = max(strongest, default=0.0)
    return [None if s <= 0 or s < FAINT * top else mask_bbox(g, threshold=0.5 * s) for g, s in zip(guides, strongest)]
