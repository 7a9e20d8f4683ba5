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

The same path carries the optional reference mask (the part of the background the subject should
match, see ``PHNet``) for single images and batches alike.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .corrections import Correction
from .fullres import apply_full_resolution, fill_outside, resize, working_shape
from .modeling.patches import partition
from .modeling.transform import apply_colour_transform

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
        if not self.window >= 0 or math.isinf(self.window):
            raise ValueError(f"temporal window must be a finite number of frames >= 0, got {self.window}")
        if not self.cut_threshold > 0:
            raise ValueError(f"cut_threshold must be > 0 (0–255 units), got {self.cut_threshold}")
        object.__setattr__(self, "cuts", tuple(int(c) for c in self.cuts))


def as_temporal(value: "Temporal | bool | float | None") -> Temporal | None:
    """``None``/``False``: no smoothing; ``True``: the defaults; a number: that window in frames."""
    if value is None or value is False:
        return None
    if value is True:
        return Temporal()
    if isinstance(value, Temporal):
        return value
    if isinstance(value, (int, float)):
        return Temporal(window=float(value))
    raise TypeError(f"temporal must be None, a bool, a number of frames or a phnet.temporal.Temporal, got {value!r}")


@dataclass
class FrameEstimate:
    """One frame's correction: 12 coefficients (transform models) or a 1×3×h×w low-resolution map."""

    correction: torch.Tensor
    signature: torch.Tensor  # 1×3×G×G background cell means, NaN where a cell has no background
    shape: tuple[int, int]  # the working shape the correction belongs to
    report: Correction | None = None  # the network's proposal and the do-no-harm threshold's verdict


def _low_resolution(image: torch.Tensor, mask: torch.Tensor, size: int):
    """The frame at the working resolution and its binary mask, as the Harmonizer makes them."""
    low_shape = working_shape(*image.shape[-2:], size)
    image_low = resize(image, low_shape, "bilinear")
    coverage = resize(mask, low_shape, "bilinear")
    mask_low = (coverage >= 0.5).float()
    if mask_low.sum() == 0:  # the subject vanishes at working resolution: take its largest pixel
        mask_low.view(-1)[coverage.argmax()] = 1.0
    return image_low, mask_low


def estimate(harmonizer, image: torch.Tensor, mask: torch.Tensor, size: int,
             reference: torch.Tensor | None = None, threshold: float | None = None,
             strength: float = 1.0) -> FrameEstimate:
    """The correction the network proposes for one 1×3×H×W frame (float, on the harmonizer's device),
    the do-no-harm ``threshold`` (default: the weights' own) applied."""
    image_low, mask_low = _low_resolution(image, mask, size)
    ref_low = None if reference is None else reference_at(reference, tuple(image_low.shape[-2:]))
    output, report = harmonizer.estimate_low(image_low, mask_low, ref_low, threshold=threshold, strength=strength)
    if ref_low is not None and not bool((ref_low * (1 - mask_low)).any()):
        report = dataclasses.replace(report, notes=(*report.notes, IGNORED_REFERENCE))
    correction = output if harmonizer.config.output == "transform" else fill_outside(output - image_low, mask_low)
    return FrameEstimate(correction, _signature(image_low, mask_low), tuple(image_low.shape[-2:]), report)


IGNORED_REFERENCE = ("the reference mask was ignored: it holds no background (it is empty, or lies under the "
                     "subject), so the whole background was matched")


def reference_at(reference: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A 1×1×H×W reference mask as the binary region the network takes at the working ``shape``.

    Read relative to its own strongest value (pixels at least half as strong count), so a soft mask
    (0.4 everywhere in the region) is that region, and a region too small to survive the resize as a
    whole pixel still keeps its strongest one. An empty mask stays empty (and is reported as ignored).
    """
    weight = resize(reference, shape, "bilinear")
    peak = weight.max()
    return (weight >= 0.5 * peak).float() if peak > 0 else torch.zeros_like(weight)


def _signature(image_low: torch.Tensor, mask_low: torch.Tensor) -> torch.Tensor:
    cells = partition(image_low, SIGNATURE_GRID)
    background = 1 - mask_low
    count = cells.sums(background)
    return torch.where(count > 0, cells.sums(image_low * background) / count.clamp(min=1e-6), float("nan"))


def background_change(a: FrameEstimate, b: FrameEstimate) -> float:
    """Mean absolute change (0–255) of the background cells two frames both have; inf if sizes differ."""
    if a.shape != b.shape:
        return math.inf
    diff = (a.signature - b.signature).abs()
    valid = ~torch.isnan(diff)
    return 255.0 * float(diff[valid].mean()) if valid.any() else 0.0


def _starts_shot(index: int, previous: FrameEstimate | None, current: FrameEstimate, temporal: Temporal) -> bool:
    if previous is None or index in temporal.cuts:
        return True
    return background_change(previous, current) > temporal.cut_threshold


def shot_starts(estimates: Sequence[FrameEstimate], temporal: Temporal) -> list[int]:
    """Indices of the frames that begin a shot (always 0)."""
    return [i for i, e in enumerate(estimates) if _starts_shot(i, estimates[i - 1] if i else None, e, temporal)]


class Smoother:
    """Averages the corrections of frames pushed in time order, holding only a window of them.

    ``push(estimate)`` returns the (frame index, smoothed correction) pairs that have become final:
    with the centred window a frame is final once the frames up to 3σ after it are in (or its shot
    has ended), with the causal average at once. ``finish()`` returns the rest. The Gaussian is cut
    at 3σ (the tails beyond hold 0.3 % of its weight), so memory stays at 6σ + 1 corrections
    whatever the length of the clip; the causal average is kept as a running sum and needs none.
    """

    def __init__(self, temporal: Temporal) -> None:
        self.temporal = temporal
        self.radius = 0 if temporal.causal or temporal.window == 0 else math.ceil(3 * temporal.window)
        self.decay = math.exp(-1.0 / temporal.window) if temporal.causal and temporal.window > 0 else 0.0
        self.count = 0
        self.starts: list[int] = []
        self._previous: FrameEstimate | None = None
        self._window: list[tuple[int, torch.Tensor]] = []  # this shot's corrections still needed
        self._next = 0  # the first frame not yet returned
        self._sum: torch.Tensor | None = None
        self._weight = 0.0

    def push(self, estimate: FrameEstimate) -> list[tuple[int, torch.Tensor]]:
        index, ready = self.count, []
        self.count += 1
        if _starts_shot(index, self._previous, estimate, self.temporal):
            ready += self.finish()  # the last shot's frames need nothing from this one
            self.starts.append(index)
            self._sum, self._weight = None, 0.0
        self._previous = estimate
        x = estimate.correction
        if self.temporal.window == 0:
            self._next = index + 1
            return ready + [(index, x)]
        if self.temporal.causal:  # Σ e^(−lag/τ)·x over the shot so far, normalised
            self._sum = x.clone() if self._sum is None else self._sum * self.decay + x
            self._weight = self._weight * self.decay + 1.0
            self._next = index + 1
            return ready + [(index, self._sum / self._weight)]
        self._window.append((index, x))
        while self._next <= index - self.radius:
            ready.append(self._centred(self._next))
        return ready

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """The frames still held back: the end of the clip (or of a shot) has been reached."""
        ready = []
        while self._window and self._next <= self._window[-1][0]:
            ready.append(self._centred(self._next))
        self._window = []
        return ready

    def _centred(self, index: int) -> tuple[int, torch.Tensor]:
        sigma = self.temporal.window
        total, weights = None, 0.0
        for k, x in self._window:
            if abs(k - index) <= self.radius:
                w = math.exp(-0.5 * ((k - index) / sigma) ** 2)
                total = x * w if total is None else total + x * w
                weights += w
        self._next = index + 1
        self._window = [(k, x) for k, x in self._window if k >= self._next - self.radius]
        return index, total / weights


def smooth(estimates: Sequence[FrameEstimate], temporal: Temporal) -> list[torch.Tensor]:
    """Each frame's correction averaged with its shot's neighbours (all at once; see ``Smoother``)."""
    smoother = Smoother(temporal)
    ready = [pair for e in estimates for pair in smoother.push(e)] + smoother.finish()
    return [x for _, x in sorted(ready, key=lambda pair: pair[0])]


def apply(harmonizer, image: torch.Tensor, mask: torch.Tensor, size: int, correction: torch.Tensor,
          strength: float = 1.0) -> torch.Tensor:
    """One 1×3×H×W frame with a (smoothed) correction applied inside the mask."""
    if harmonizer.config.output == "transform":
        harmonized = apply_colour_transform(image, correction)
    else:
        image_low, mask_low = _low_resolution(image, mask, size)
        pred_low = image_low + correction * mask_low
        harmonized = apply_full_resolution(image, mask, image_low, pred_low, mask_low, harmonizer.method)
    return image + mask * strength * (harmonized.clamp(0, 1) - image)


@torch.inference_mode()
def harmonize_frames(
    harmonizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    temporal: Temporal | bool | float | None = None,
    reference: torch.Tensor | None = None,
    strength: float = 1.0,
    working_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    threshold: float | None = None,
    report: list | None = None,
) -> torch.Tensor:
    """B×3×H×W frames in [0, 1] (in time order) and B×1×H×W masks → harmonized frames (input's device).

    ``reference``: optional B×1×H×W masks of the background region to match. Each frame is applied
    as soon as its smoothed correction is final (see ``Smoother``). ``progress(done, total)`` counts
    2·B steps: an estimate and an application per frame. ``threshold``: the do-no-harm threshold instead of
    the weights' own. ``report``: a list that receives each frame's ``Correction`` (before smoothing).
    """
    temporal = as_temporal(temporal)
    size = harmonizer._check_options(strength, "full", working_size)
    count, home = images.shape[0], images.device
    device = harmonizer.device

    def frame(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return images[i : i + 1].to(device, torch.float32), masks[i : i + 1].to(device, torch.float32)

    smoother = Smoother(temporal or Temporal(window=0))
    out = torch.empty_like(images)
    done = 0

    def finish_frames(ready: list[tuple[int, torch.Tensor]]) -> None:
        nonlocal done
        for j, correction in ready:
            out[j : j + 1] = apply(harmonizer, *frame(j), size, correction, strength).to(home)
            done += 1
            if progress is not None:
                progress(done, 2 * count)

    for i in range(count):
        ref = None if reference is None else reference[i : i + 1].to(device, torch.float32)
        found = estimate(harmonizer, *frame(i), size, ref, threshold, strength)
        if report is not None:
            report.append(found.report)
        ready = smoother.push(found)
        done += 1
        if progress is not None:
            progress(done, 2 * count)
        finish_frames(ready)
    finish_frames(smoother.finish())
    return out
