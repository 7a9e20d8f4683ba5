"""A clip's frames through mode "full": each frame estimated as a picture is (:func:`estimate_frames`), its
correction smoothed over its shot by :mod:`phnet.temporal`, then applied (:func:`apply_frame`) and reported
(:func:`smoothed_report`). :func:`harmonize_frames` runs them on a batch in time order; the ``phnet`` command runs
them on a folder, a frame at a time.

Each step takes the :class:`~phnet.Harmonizer` whose model, device, precision and method it uses."""

from __future__ import annotations

import bisect
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

import torch

from .corrections import MIN_BACKGROUND, Correction
from .fullres import remix, working_shape
from .imageio.masks import FAINT
from .metrics import blend_weight
from .modeling.transform import correction_size
from .options import threshold_for
from .pipeline import (LowResolution, apply_low, coverage_of, estimate_batch, lifts_change, own_precision,
                       pictures_per_call, prepare_low, staged, untouched_of)
from .regions import IGNORED_REFERENCE, reference_at, working_mask
from .temporal import FrameEstimate, Smoother, Temporal, signature
from .tiling import one_thread

if TYPE_CHECKING:
    from .harmonizer import Harmonizer
else:  # phnet.harmonizer imports these steps: at run time (typing.get_type_hints) the hint reads Any
    Harmonizer = Any

__all__ = ["EstimatedFrame", "estimate_frame", "estimate_frames", "apply_frame", "smoothed_report", "harmonize_frames",
           "working_background"]


@dataclasses.dataclass
class EstimatedFrame(FrameEstimate):
    """A frame as :func:`estimate_frames` estimates it: its report and its working-size picture always there."""

    report: Correction
    low: LowResolution


@own_precision
def estimate_frame(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor,
                   mask_peak: float, size: int, reference: torch.Tensor | None = None, threshold: float | None = None,
                   strength: float = 1.0, reference_peak: float = 1.0, mask_is_alpha: bool = False) -> EstimatedFrame:
    """One H×W×C frame's proposed correction as ``phnet.temporal`` smooths it: 12 coefficients, or the
    low-resolution change filled outward from the subject; ``reference``: an H×W mask in 0..reference_peak."""
    return estimate_frames(harmonizer, pixels[None], peak, mask[None], mask_peak, size,
                           None if reference is None else reference[None], threshold, strength,
                           reference_peak, mask_is_alpha)[0]


@own_precision
def estimate_frames(harmonizer: Harmonizer, pixels: torch.Tensor | Sequence[torch.Tensor], peak: float,
                    masks: torch.Tensor | Sequence[torch.Tensor], mask_peak: float, size: int,
                    references: torch.Tensor | Sequence[torch.Tensor] | None = None, threshold: float | None = None,
                    strength: float = 1.0, reference_peak: float = 1.0, mask_is_alpha: bool = False
                    ) -> list[EstimatedFrame]:
    """:func:`estimate_frame` for B×H×W×C frames (B×H×W masks and references; or sequences of H×W×C and H×W
    tensors) in one network call."""
    lows = []
    for i in range(len(pixels)):  # the full-size copies are let go once prepared
        staged_pixels, staged_mask = staged(harmonizer, pixels[i], masks[i])
        lows.append(prepare_low(harmonizer, staged_pixels, peak, staged_mask, mask_peak, size, mask_is_alpha))
    images, masks_low = torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows])
    shape = (images.shape[-2], images.shape[-1])
    refs = None
    if references is not None:
        refs = torch.cat([reference_at(r, shape, masks[i], mask_peak, reference_peak)
                          for i, r in enumerate(references)]).to(harmonizer.device)
    # method "guided" fits to the subject's own change as a frame is applied (see _apply)
    outputs, reports = estimate_batch(harmonizer, images, masks_low, refs, threshold=threshold, strength=strength,
                                      as_change=True, untouched=untouched_of(lows),
                                      coverage=coverage_of(lows) if lifts_change(harmonizer) else None)
    if refs is not None:  # a reference with no background pixel left was ignored: say so
        found = (refs * (1 - masks_low)).flatten(1).any(1).tolist()
        reports = [r if f else dataclasses.replace(r, notes=(*r.notes, IGNORED_REFERENCE))
                   for r, f in zip(reports, found)]
    # what each frame's mask lets through, for its report (and its smoothed one) as a picture's has
    weights = (blend_weight(masks, mask_peak) if isinstance(masks, torch.Tensor) else  # one read for the call
               [blend_weight(m[None], mask_peak)[0] for m in masks])
    reports = [dataclasses.replace(r, weight=w) if w != 1.0 else r for r, w in zip(reports, weights)]
    frames = []
    for j, low in enumerate(lows):
        frames.append(EstimatedFrame(outputs[j : j + 1], signature(low.image, low.mask), shape, reports[j], low,
                                    (pixels[j].shape[0], pixels[j].shape[1])))
    return frames


@own_precision
def apply_frame(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor, mask_peak: float,
                out: torch.Tensor, frame: EstimatedFrame, correction: torch.Tensor, strength: float = 1.0) -> None:
    """A (smoothed) ``correction`` of :func:`estimate_frame` applied to ``out`` (a copy of ``pixels``). A
    frame with too little background is left as it was, whatever its neighbours' correction."""
    if frame.report.background is not None or frame.report.flat is not None:
        return
    low = frame.low
    pixels, mask = staged(harmonizer, pixels, mask)  # a frame waiting for its neighbours is not kept on the device
    if lifts_change(harmonizer):  # the correction is the change, filled outward already: it is carried up as it is
        apply_low(harmonizer, pixels, peak, mask, mask_peak, out, strength, low, correction, as_change=True)
        return
    if harmonizer.config.output != "transform" and not bool(correction.any()):
        return  # left as it was (guided and resize would otherwise re-make the subject from its own picture)
    output = correction if harmonizer.config.output == "transform" else low.image + correction * low.mask
    apply_low(harmonizer, pixels, peak, mask, mask_peak, out, strength, low, output)


def smoothed_report(harmonizer: Harmonizer, frame: EstimatedFrame, correction: torch.Tensor) -> Correction:
    """The frame's report, with the size of the ``correction`` it got after smoothing (``Correction.smoothed``,
    measured at the working size) where that differs from its own by a hundredth of a level or more."""
    low = frame.low

    def size(output: torch.Tensor) -> float:  # the frame's own output is measured the same way (clamped)
        output = output.to(low.image.device)
        if harmonizer.config.output == "transform":
            change = harmonizer.model.transform_output(low.image.float(), output.float()) - low.image.float()
        else:  # the change itself (filled outward from the subject, for method "correction"); there the
            change = output  # subject's own (see fullres.unmix), measured as the network proposed it
            if lifts_change(harmonizer) and low.coverage is not None:
                change = remix(change, low.coverage.to(change.device))
        return float(correction_size(change, low.mask)[0])

    applied = size(correction)
    if abs(applied - size(frame.correction)) < 0.01:
        return frame.report
    return dataclasses.replace(frame.report, smoothed=applied)


@torch.inference_mode()
def harmonize_frames(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, masks: torch.Tensor,
                     mask_peak: float, out: torch.Tensor, temporal: Temporal | None,
                     references: tuple[torch.Tensor, float] | None, strength: float, size: int,
                     progress: Callable[[int, int], None] | None, threshold: float | None,
                     mask_is_alpha: bool = False) -> list[Correction]:
    """B×H×W×C frames in time order: each estimated, its correction smoothed with its shot's neighbours
    (``phnet.temporal.Smoother``), and applied as soon as it is final. ``progress`` counts 2·B steps.

    A frame whose mask is empty (the subject is out of the picture), or holds only a trace of one (under
    1/64 of full: a matte's specks), stays as it is, and the smoothing goes on across it from the frames
    before to the frames after: a trace would pull its neighbours toward what the network made of it.
    ``references``: None, or (B×H×W reference masks, the value meaning "fully in the region")."""
    reference_masks, reference_peak = references if references is not None else (None, 1.0)
    count = pixels.shape[0]
    strongest = masks.flatten(1).amax(1).float()
    # (a batch guided by a reference mask alone is no clip: a faint mask there is a faint subject, as without)
    present = (strongest >= FAINT * mask_peak if temporal is not None else strongest > 0).tolist()
    traces = (strongest > 0).tolist()
    # a frame with too little background is left as it was, as on its own: its neighbours' smoothed
    # correction must not reach it either, and its zero must not pull theirs down. Judged at the working
    # size, as the network sees the frame: a soft border at full size may be no background there
    background = [working_background(pixels[i], masks[i], mask_peak, size) if here else 1.0
                  for i, here in enumerate(present)]
    cramped = [p and b < MIN_BACKGROUND for p, b in zip(present, background)]
    # (a frame whose background is one flat colour is found by the network call: the smoother keeps it in
    # time and out of its averages, and apply_frame leaves it as it was)
    order = [i for i in range(count) if present[i] and not cramped[i]]  # what the smoother sees, in order
    temporal = temporal or Temporal(window=0)
    outside = [cut for cut in temporal.cuts if not 0 <= cut < count]
    if outside:
        raise ValueError(f"cuts {outside} are not frames of this clip of {count}: give indices from 0 to "
                         f"{count - 1}")
    if temporal.cuts and len(order) < count:  # a cut given by hand names a frame: the next one with a subject
        cuts = {bisect.bisect_left(order, cut) for cut in temporal.cuts}
        temporal = dataclasses.replace(temporal, cuts=tuple(sorted(k for k in cuts if k < len(order))))
    smoother = Smoother(temporal)
    held: dict[int, EstimatedFrame] = {}  # estimated, not yet applied: at most a window of them
    reports: list[Correction | None] = [None] * count
    done = 0

    def step(steps: int = 1) -> None:
        nonlocal done
        done += steps
        if progress is not None:
            progress(done, 2 * count)

    def finish(ready: list[tuple[int, torch.Tensor]]) -> None:
        for k, correction in ready:
            j = order[k]
            frame = held.pop(j)
            apply_frame(harmonizer, pixels[j], peak, masks[j], mask_peak, out[j], frame, correction, strength)
            reports[j] = smoothed_report(harmonizer, frame, correction)
            step()

    for i in range(count):  # ``out`` is already a copy of the frames left as they were
        if not present[i]:
            reports[i] = Correction.no_subject(threshold_for(harmonizer.config, threshold), float(strength),
                                               trace=traces[i])
            step(2)
        elif cramped[i]:
            reports[i] = Correction(0.0, threshold_for(harmonizer.config, threshold), 0.0, float(strength),
                                    background=background[i])
            step(2)
    chunk = pictures_per_call(harmonizer, pixels, size, masks)
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        estimated = estimate_frames(harmonizer, [pixels[i] for i in rows], peak, [masks[i] for i in rows], mask_peak,
                                    size, None if reference_masks is None else [reference_masks[i] for i in rows],
                                    threshold, strength, reference_peak, mask_is_alpha)
        for i, frame in zip(rows, estimated):
            held[i] = frame
            reports[i] = frame.report
            step()
            finish(smoother.push(frame))
    finish(smoother.finish())
    return cast("list[Correction]", reports)  # every frame's is in place by now


def working_background(pixels: torch.Tensor, mask: torch.Tensor, mask_peak: float, size: int) -> float:
    """The share of an H×W×C picture that is background at the working size, as
    :func:`~phnet.pipeline.prepare_low` makes its mask (the network's background statistics come from it)."""
    low_shape = working_shape(pixels.shape[0], pixels.shape[1], size)
    with one_thread(mask.device):
        _, subject = working_mask(mask, mask_peak, low_shape)
    return 1 - float(subject.float().mean())
