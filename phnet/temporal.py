"""Frames of a clip harmonized with a colour correction that is steady over time.

Harmonizing each frame on its own lets the subject's colour jump whenever the network's estimate
wobbles. Here the correction is estimated per frame, averaged over neighbouring frames, and only
then applied:

* ``output="transform"`` models predict 12 colour-transform coefficients per frame; the average of
  those is again a colour transform, so the smoothing is exact and costs nothing.
* "residual" and "image" models give a picture; what is averaged is the low-resolution correction
  (prediction − composite at the working resolution, filled outward from the subject as the
  full-resolution step does), so a frame gets the mean change of its neighbours. The maps are
  averaged pixel for pixel: right for a subject that stays roughly in place, and smeared in
  proportion to how far the subject moves within the window.

**Scene cuts.** A new shot must not inherit the correction of the last one. Each frame's background
is summarised by the mean colour of a 4×4 grid of cells at the working resolution (subject pixels
left out); when the mean absolute change of those cells from the previous frame exceeds
``cut_threshold`` (0–255 units), the frame starts a new shot. Slow pans and lighting drift move
the cells little from one frame to the next, a cut moves them a lot (docs/video-and-reference.md
measures both). A change of frame size is always a cut, and ``cuts`` adds shot starts by hand.
Averages never cross a shot boundary: the first frame of a shot uses only frames of its own shot.

The averaging streams (``Smoother``): a frame is final once the frames of its window after it are
in, so a clip of any length holds only a window of low-resolution corrections.

This module only smooths. Estimating a frame's correction and applying the smoothed one are the
steps of :mod:`phnet.frames` (``estimate_frame`` / ``apply_frame``), the same that harmonize a
single picture, with the same tiled full-resolution step and the optional reference mask.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .corrections import Correction
from .mask_tools import finite_real
from .modeling.patches import partition
from .pipeline import LowResolution

SIGNATURE_GRID = 4


@dataclass(frozen=True)
class Temporal:
    """How the per-frame corrections of a batch are averaged over time.

    ``window``: the spread of the average in frames (the σ of a Gaussian over neighbouring frames,
    or the time constant of the exponential average); 0 turns smoothing off (cut detection still
    runs, but has nothing to protect). ``causal``: average past frames only (an exponential
    average, what a live stream can do); by default the window is centred, so the correction does
    not lag behind a change. ``cut_threshold``: the background change (0–255 units) that starts a
    new shot; ``cuts``: frame indices that start a new shot whatever the detector says.
    """

    window: float = 3.0
    causal: bool = False
    cut_threshold: float = 20.0
    cuts: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        window = self.window
        if not finite_real(window) or not (window == 0 or MIN_WINDOW <= window <= MAX_WINDOW):
            raise ValueError(f"temporal window must be 0 (off) or a number of frames from {MIN_WINDOW} to "
                             f"{MAX_WINDOW}, got {window!r}")
        if not finite_real(self.cut_threshold) or not self.cut_threshold > 0:
            raise ValueError(f"cut_threshold must be a number > 0 (0–255 units), got {self.cut_threshold!r}")
        if not isinstance(self.causal, (bool, np.bool_)):
            raise ValueError(f"causal must be True or False, got {self.causal!r}")
        cuts = self.cuts.item() if isinstance(self.cuts, np.ndarray) and self.cuts.ndim == 0 else self.cuts
        cuts = () if cuts is None else (cuts,) if isinstance(cuts, numbers.Real) else cuts
        if not isinstance(cuts, (str, bytes)) and isinstance(cuts, Iterable):
            cuts = tuple(cuts)  # once: a generator's checked items would be gone
        if not isinstance(cuts, tuple) or not all(finite_real(c) and float(c).is_integer() for c in cuts):
            shown = cuts if isinstance(self.cuts, Iterator) else self.cuts
            raise ValueError(f"cuts must be frame indices (whole numbers), got {shown!r}")
        if any(c < 0 for c in cuts):  # (-1 would be kept as a frame index and never met)
            raise ValueError(f"cuts must be frame indices from 0 (the first frame of each new shot), got "
                             f"{int(min(cuts))}")
        object.__setattr__(self, "window", float(window))
        object.__setattr__(self, "causal", bool(self.causal))
        object.__setattr__(self, "cuts", tuple(int(c) for c in cuts))


MIN_WINDOW, MAX_WINDOW = 0.01, 10_000.0  # below, the weights underflow; above, the kernel outgrows any clip


def as_temporal(value: Temporal | bool | float | None) -> Temporal | None:
    """``None``/``False``: no smoothing; ``True``: the defaults; a number: that window in frames."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):  # a numpy flag too
        return Temporal() if value else None
    if isinstance(value, Temporal):
        return value
    if isinstance(value, numbers.Real):  # numpy numbers too
        return Temporal(window=value)
    raise TypeError(f"temporal must be None, a bool, a number of frames or a phnet.temporal.Temporal, got {value!r}")


@dataclass
class FrameEstimate:
    """One frame's correction: 12 coefficients (transform models) or a 1×3×h×w low-resolution map."""

    correction: torch.Tensor
    signature: torch.Tensor  # 1×3×G×G background cell means, NaN where a cell has no background
    shape: tuple[int, int]  # the working shape the correction belongs to
    report: Correction | None = None  # the network's proposal and the do-no-harm threshold's verdict
    low: LowResolution | None = None  # the frame as the network saw it, kept until it is applied
    size: tuple[int, int] | None = None  # the frame's own size: frames of other sizes may share a working shape


def signature(image_low: torch.Tensor, mask_low: torch.Tensor) -> torch.Tensor:
    """The background's mean colour in each cell of a ``SIGNATURE_GRID`` square grid over a working-size frame
    (``image_low`` 1×3×h×w in 0..1, ``mask_low`` 1×1×h×w): 1×3×G×G, NaN where a cell has no background.
    :func:`background_change` compares two of them to find cuts."""
    cells = partition(image_low, SIGNATURE_GRID)
    background = 1 - mask_low
    count = cells.sums(background)
    return torch.where(count > 0, cells.sums(image_low * background) / count.clamp(min=1e-6), float("nan"))


def background_change(a: FrameEstimate, b: FrameEstimate) -> float:
    """Mean absolute change (0–255) of the background cells two frames both have; inf if sizes differ."""
    if a.shape != b.shape or a.size != b.size:
        return math.inf
    diff = (a.signature - b.signature).abs()
    valid = ~torch.isnan(diff)
    return 255.0 * float(diff[valid].mean()) if valid.any() else 0.0


def _starts_shot(index: int, previous: FrameEstimate | None, current: FrameEstimate, temporal: Temporal) -> bool:
    if previous is None or index in temporal.cuts:
        return True
    return background_change(previous, current) > temporal.cut_threshold


def shot_starts(estimates: Sequence[FrameEstimate], temporal: Temporal) -> list[int]:
    """Indices of the frames that begin a shot, as the smoothing finds them (the first frame it smooths, then
    each cut; a frame it holds out, a flat black one say, is measured against no neighbour)."""
    smoother = Smoother(temporal)
    for estimate in estimates:
        smoother.push(estimate)
    return smoother.starts


class Smoother:
    """Averages the corrections of frames pushed in time order, holding only a window of them.

    ``push(estimate)`` returns the (frame index, smoothed correction) pairs that have become final:
    with the centred window a frame is final once the frames up to 3σ after it are in (or its shot
    has ended), with the causal average at once. ``finish()`` returns the rest. The Gaussian is cut
    at 3σ (the tails beyond hold 0.3 % of its weight), so memory stays at 6σ + 1 corrections
    whatever the length of the clip; the causal average is kept as a running mean and needs none.
    """

    def __init__(self, temporal: Temporal) -> None:
        self.temporal = temporal
        self._held_out: set[int] = set()  # frames counted in time but kept out of every average
        self._cut_pending = False  # a cut given by hand on a held-out frame: the next frame starts the shot
        self.radius = 0 if temporal.causal or temporal.window == 0 else math.ceil(3 * temporal.window)
        self.decay = math.exp(-1.0 / temporal.window) if temporal.causal and temporal.window > 0 else 0.0
        self.count = 0
        self.starts: list[int] = []
        self._previous: FrameEstimate | None = None
        self._window: list[tuple[int, torch.Tensor]] = []  # this shot's corrections still needed
        self._next = 0  # the first frame not yet returned
        self._mean: torch.Tensor | None = None
        self._weight = 0.0
        self._last = 0  # the causal average's last frame: it decays with the time since, held-out frames too

    def push(self, estimate: FrameEstimate) -> list[tuple[int, torch.Tensor]]:
        """Add the next frame's estimate; returns the (frame index, smoothed correction) pairs that became final:
        none, one or several (see the class docstring for when)."""
        index, ready = self.count, []
        self.count += 1
        if held_out(estimate):  # no scene to match: its own (zero) correction, and no pull on its neighbours
            self._cut_pending = self._cut_pending or index in self.temporal.cuts
            if self.radius:  # frames it completes the window of are final now, not at the next frame
                while self._window and self._skip_held_out() <= min(index - self.radius, self._window[-1][0]):
                    ready.append(self._centred(self._next))
                self._held_out.add(index)
            return ready + [(index, estimate.correction)]
        if _starts_shot(index, self._previous, estimate, self.temporal) or self._cut_pending:
            self._cut_pending = False
            ready += self.finish()  # the last shot's frames need nothing from this one
            self.starts.append(index)
            self._mean, self._weight = None, 0.0
        self._previous = estimate
        x = estimate.correction
        if self.temporal.window == 0:
            self._next = index + 1
            return ready + [(index, x)]
        if self.temporal.causal:  # Σ e^(−lag/τ)·x over the shot so far, normalised, kept as a running mean
            fade = self.decay ** (index - self._last)
            self._weight = self._weight * fade + 1.0
            # a step towards x, not a sum over a weight: equal corrections give back x exactly
            self._mean = x.clone() if self._mean is None else self._mean + (x - self._mean) / self._weight
            self._next, self._last = index + 1, index
            return ready + [(index, self._mean)]
        self._window.append((index, x))
        while self._skip_held_out() <= index - self.radius:
            ready.append(self._centred(self._next))
        return ready

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The frames still held back: the end of the clip (or of a shot) has been reached."""
        ready = []
        while self._window and self._skip_held_out() <= self._window[-1][0]:
            ready.append(self._centred(self._next))
        self._window = []
        return ready

    def _skip_held_out(self) -> int:
        while self._next in self._held_out:
            self._held_out.discard(self._next)
            self._next += 1
        return self._next

    def _centred(self, index: int) -> tuple[int, torch.Tensor]:
        sigma = self.temporal.window
        own = next(x for k, x in self._window if k == index)
        # the neighbours' mean difference from this frame's own correction: equal corrections give it back exactly
        total: torch.Tensor | float = 0.0
        weights = 0.0
        for k, x in self._window:
            if k != index and abs(k - index) <= self.radius:
                w = math.exp(-0.5 * ((k - index) / sigma) ** 2)
                total = total + (x - own) * w
                weights += w
        weights += 1.0  # this frame's own weight, e^0
        self._next = index + 1
        self._window = [(k, x) for k, x in self._window if k >= self._next - self.radius]
        return index, own + total / weights


def held_out(estimate: FrameEstimate) -> bool:
    """A frame the smoothing leaves out: the network call left it as it was, its background one flat colour or
    too small a share of it (its zero correction would pull its neighbours' down). It keeps its place in time."""
    report = estimate.report
    return report is not None and (report.flat is not None or report.background is not None)


def smooth(estimates: Sequence[FrameEstimate], temporal: Temporal) -> list[torch.Tensor]:
    """Each frame's correction averaged with its shot's neighbours (all at once; see ``Smoother``)."""
    smoother = Smoother(temporal)
    ready = [pair for e in estimates for pair in smoother.push(e)] + smoother.finish()
    return [x for _, x in sorted(ready, key=lambda pair: pair[0])]
