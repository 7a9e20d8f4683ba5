"""A picture through mode "full", step by step: its pixels read as they are (:func:`pixels_of`), moved where
their full-resolution work runs (:func:`staged`), prepared at the working resolution (:func:`prepare_low`), run
through the network a batch at a time (:func:`estimate_batch`), applied to the subject at full resolution
(:func:`apply_low`), and reported (:func:`measured`). :func:`harmonize_pixels` runs them on a batch.

Each step takes the :class:`~phnet.Harmonizer` whose model, device, precision and method it uses."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Concatenate, NamedTuple, ParamSpec, TypeVar, cast

import torch

from .compat import autocast_available
from .corrections import MIN_BACKGROUND, Correction
from .fullres import (apply_in_tiles, bounding_box, downscale, lift, lift_change, subject_change, subject_coverage,
                      working_shape)
from .imageio import as_returned, check_mask_coverage, image_to_tensor, mask_to_tensor, tensor_to_image
from .imageio.fast import image_from_pixels, image_pixels, mask_pixels
from .imageio.images import ImageForm
from .metrics import blend_weight, rms_change
from .modeling.transform import gain_and_offset
from .options import check_picture_size, threshold_for
from .regions import flat_colours, mixed_from_one_colour, off_canvas, tail_on_one_colour, working_mask
from .tiling import one_thread

if TYPE_CHECKING:
    from .harmonizer import Harmonizer
else:  # phnet.harmonizer imports these steps: at run time (typing.get_type_hints) the hint reads Any
    Harmonizer = Any

__all__ = ["LowResolution", "CUDA_NETWORK_BATCH", "NETWORK_PIXELS", "STAGED_BYTES", "own_precision", "pixels_of",
           "pictures_per_call", "full_resolution_device", "staged", "prepare_low", "subject_at", "lifts_change",
           "estimate_batch", "estimate", "run_network", "apply_low", "apply_to_box", "harmonize_pixels", "measured",
           "read_estimates", "low_precision_failed", "weighed", "coverage_of", "untouched_of", "filled_change", "noted"]


_Harmonizer = TypeVar("_Harmonizer", bound="Harmonizer")
_Options = ParamSpec("_Options")
_Result = TypeVar("_Result")

# what the staged path copies to an accelerator: uint16 has too few kernels off the CPU in older torch
_STAGED_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)
# network_batch="auto": pictures per network call on CUDA (one elsewhere); how many working-size pixels one
# call may hold (the network's activations grow with them); and how many bytes of a batch's pictures may
# wait on the device for their shared call
CUDA_NETWORK_BATCH = 8
NETWORK_PIXELS = CUDA_NETWORK_BATCH * 512 * 512
STAGED_BYTES = 128 * 2**20


class LowResolution(NamedTuple):
    """One picture prepared for the network: at the working resolution on the model's device, with its
    binary mask, the mask's bounding box at full resolution (r0, r1, c0, c1; None if empty), where no trace
    of the mask reaches (``untouched``, see :func:`flat_colours`; :func:`prepare_low` always finds it, and one
    built without it reads its background from its mask alone, see :func:`untouched_of`), and how much of each
    pixel the subject covers (``coverage``, 1×1×h×w, where the mask holds more than a trace: see
    :func:`~phnet.fullres.subject_coverage` and :func:`~phnet.fullres.unmix`; the mask's own values where it is the
    composite's alpha), for the methods that carry the network's change up."""

    image: torch.Tensor
    mask: torch.Tensor
    box: tuple[int, int, int, int] | None
    untouched: torch.Tensor | None = None
    coverage: torch.Tensor | None = None


def own_precision(
    method: Callable[Concatenate[_Harmonizer, _Options], _Result],
) -> Callable[Concatenate[_Harmonizer, _Options], _Result]:
    """A caller's autocast (a host program may run its whole graph under one) is off for the whole call: the
    full-resolution work stays fp32, and the network runs in the precision the Harmonizer chose."""

    @functools.wraps(method)
    def call(harmonizer: _Harmonizer, *args: _Options.args, **kwargs: _Options.kwargs) -> _Result:
        with contextlib.ExitStack() as stack:
            for kind in sorted({"cpu", harmonizer.device.type}):
                if autocast_available(kind):
                    stack.enter_context(torch.autocast(kind, enabled=False))
            return method(harmonizer, *args, **kwargs)

    return call


def pixels_of(
    image: Any,
    mask: Any,
    layout: str | None = None,
    *,
    native: tuple[torch.Tensor, float, ImageForm] | None = None,
    converted: tuple[torch.Tensor, torch.Tensor | None, ImageForm] | None = None,
    allow_empty: bool = False,
    unit: str = "picture",
    one_of_more: bool = False,
) -> tuple[torch.Tensor, float, torch.Tensor, float, Callable[[torch.Tensor], Any]]:
    """(B×H×W×C pixels, their full intensity, B×H×W masks, theirs, ``finish(out)`` → the caller's kind),
    with the masks' coverage checked (empty masks refused unless ``allow_empty``: then only where every
    one is empty; ``unit`` names what a mask belongs to, for the message, and a clip's ("frame") integer
    masks are read on one scale, not each on its own; ``one_of_more``: frames of a
    longer clip, judged as a whole by the caller: see ``check_mask_coverage``).

    The caller's own pixels where they can be used as they are (see imageio.fast; ``native`` when the
    caller has looked already); other inputs (grey, unusual dtypes) are converted once, and converted
    back with the mask's zeros kept."""
    native = native if native is not None else image_pixels(image, layout)
    if native is not None:
        pixels, peak, form = native
        batch, height, width = pixels.shape[:3]
        check_picture_size(height, width)
        clip = unit == "frame"  # a clip's integer masks are read on one scale
        found = mask_pixels(mask, batch, height, width, one_scale=clip)
        masks, mask_peak = found if found is not None else (
            mask_to_tensor(mask, batch, height, width, one_scale=clip)[:, 0], 1.0)
        check_mask_coverage(masks, mask_peak, allow_empty=allow_empty, unit=unit, one_of_more=one_of_more)
        return pixels, peak, masks.to(pixels.device), mask_peak, lambda out: image_from_pixels(out, form)
    rgb, alpha, form = converted if converted is not None else image_to_tensor(image, layout)
    check_picture_size(*rgb.shape[-2:])
    masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1], one_scale=unit == "frame")
    check_mask_coverage(masks, allow_empty=allow_empty, unit=unit, one_of_more=one_of_more)

    def finish(out: torch.Tensor) -> Any:
        return tensor_to_image(out[..., :3].permute(0, 3, 1, 2).cpu(), alpha, form, (masks == 0).cpu())

    def returned(out: torch.Tensor) -> torch.Tensor:
        return as_returned(out[..., :3].permute(0, 3, 1, 2), form).permute(0, 2, 3, 1)

    finish.returned = returned  # type: ignore[attr-defined]
    pixels = rgb if alpha is None else torch.cat([rgb, alpha.to(rgb.device)], 1)  # alpha: what shows the scene
    return pixels.permute(0, 2, 3, 1), 1.0, masks[:, 0], 1.0, finish


def pictures_per_call(harmonizer: Harmonizer, pixels: torch.Tensor, size: int,
                      masks: torch.Tensor | None = None) -> int:
    """How many of the B×H×W×C ``pixels`` share one network call at working size ``size`` (see
    ``network_batch``); copies of them and of their ``masks`` (float ones when not given) wait on the GPU."""
    if not isinstance(harmonizer.network_batch, str):  # (a whole number, or "auto")
        return harmonizer.network_batch
    if harmonizer.device.type != "cuda":
        return 1
    height, width = working_shape(pixels.shape[1], pixels.shape[2], size)
    count = min(CUDA_NETWORK_BATCH, NETWORK_PIXELS // (height * width))
    if full_resolution_device(harmonizer, pixels[0]) != pixels.device:  # their copies wait there for the call
        mask_bytes = masks[0].nbytes if masks is not None else pixels[0, ..., 0].numel() * 4
        count = min(count, STAGED_BYTES // max(1, pixels[0].nbytes + mask_bytes))
    return max(1, count)


def full_resolution_device(harmonizer: Harmonizer, pixels: torch.Tensor) -> torch.device:
    """Where the full-resolution work on these pixels runs (see ``full_resolution_on``)."""
    where = harmonizer.full_resolution_on
    if where == "auto":
        where = "model" if harmonizer.device.type == "cuda" else "input"
    if where == "input" or pixels.dtype not in _STAGED_DTYPES:
        return pixels.device
    return harmonizer.device


def staged(harmonizer: Harmonizer, pixels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One picture and its mask where their full-resolution work runs: themselves, or copies there."""
    device = full_resolution_device(harmonizer, pixels)
    return pixels.to(device), mask.to(device)


def prepare_low(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor, mask_peak: float,
                size: int, mask_is_alpha: bool = False) -> LowResolution:
    """One H×W×C picture (any dtype, ``peak`` = full intensity) and its H×W mask at the working
    resolution on the model's device, and the mask's bounding box at full resolution. ``mask_is_alpha``: the
    subject's coverage is the mask's own soft values (see :func:`phnet.Harmonizer.harmonize`).

    Everything but the network is many small operations: they run on one thread (see one_thread)."""
    low_shape = working_shape(pixels.shape[0], pixels.shape[1], size)
    home = pixels.device
    with one_thread(home):
        image_low = downscale(pixels[..., :3], peak, low_shape).to(harmonizer.device)
        soft, mask_low, box = subject_at(mask, mask_peak, low_shape, harmonizer.device)
        untouched = torch.nn.functional.max_pool2d((soft > 0).float(), 5, stride=1, padding=2) == 0
        # where no trace of the mask is counts as the scene for a cut-out: its edge mixes the subject with
        # that one colour and no more, or it is most of what the binary mask leaves (a mask feathered or
        # grown past the cut-out's own edge) and the mask's faint tail lies on that colour too; a real scene
        # under a wide feather's tail is neither (black bars beside it are most of what a feather leaves)
        scene = torch.nn.functional.max_pool2d(mask_low, 5, stride=1, padding=2) < 0.5
        most = untouched.float().mean() >= 0.5 * scene.float().mean()
        off = off_canvas(image_low, untouched)
        most &= tail_on_one_colour(off, soft)
        untouched &= mixed_from_one_colour(off, soft) | most
        coverage = None  # how much of each pixel the subject covers, for the methods that carry a change up:
        # correction fills it, guided fits it
        if harmonizer.carries_soft_edges():
            coverage = (soft if mask_is_alpha else
                        subject_coverage(mask, mask_peak, low_shape, soft).to(harmonizer.device))
    return LowResolution(image_low, mask_low, box, untouched, coverage)


def subject_at(mask: torch.Tensor, mask_peak: float, low_shape: tuple[int, int],
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int] | None]:
    """An H×W mask at the working ``low_shape`` on ``device``: its coverage (see :func:`~phnet.regions.working_mask`),
    the network's binary mask (never empty where the mask is not), and the mask's bounding box at full resolution."""
    soft, subject = working_mask(mask, mask_peak, low_shape)
    soft, mask_low = soft.to(device), subject.to(device).float()
    box = bounding_box(mask)
    # a subject that vanishes at working resolution keeps its largest pixel (no read back from the device),
    # or, rounded away altogether (a pixel or two of a big picture), the one under its box's centre
    largest = soft.argmax()
    if box is not None:
        h, w = low_shape
        centre = (min(h - 1, (box[0] + box[1]) * h // (2 * mask.shape[0])) * w
                  + min(w - 1, (box[2] + box[3]) * w // (2 * mask.shape[1])))
        largest = torch.where(soft.amax() > 0, largest, torch.full_like(largest, centre))  # no copy
    largest = torch.zeros_like(mask_low).view(-1).scatter_(0, largest.view(1), 1.0)
    return soft, torch.where(mask_low.amax() > 0, mask_low, largest.view_as(mask_low)), box


def lifts_change(harmonizer: Harmonizer) -> bool:
    """Whether the network's pictures reach full resolution as their change filled outward from the
    subject (method "correction"), which :func:`estimate_batch` then computes for the whole batch."""
    return harmonizer.config.output != "transform" and harmonizer.method == "correction"


@torch.inference_mode()
def estimate_batch(
    harmonizer: Harmonizer,
    images_low: torch.Tensor,
    masks_low: torch.Tensor,
    references_low: torch.Tensor | None = None,
    *,
    threshold: float | None = None,
    strength: float = 1.0,
    as_change: bool = False,
    untouched: torch.Tensor | None = None,
    coverage: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[Correction]]:
    """The network on B×3×h×w pictures of one working size (binary B×1×h×w masks) in one call: B×12
    coefficients (``output="transform"``) or the B×3×h×w pictures, threshold applied, and a
    :class:`Correction` for each (read back from the device together). ``as_change``: pictures come
    back as their change filled outward from the subject (:func:`filled_change`; 0 for a subject left
    as it was). ``untouched``: B×1×h×w, where no trace of a soft mask reaches (:attr:`LowResolution.untouched`),
    so that a cut-out with a feathered edge is seen to have no scene (:func:`flat_colours`). ``coverage``:
    B×1×h×w (:attr:`LowResolution.coverage`), so that the change filled outward is the subject's own
    (:func:`~phnet.fullres.unmix`)."""
    threshold = threshold_for(harmonizer.config, threshold)
    as_change = as_change and harmonizer.config.output != "transform"
    harmonizer._check_weights()
    graphs = harmonizer._graphs
    filled = graphs is not None
    if graphs is not None:  # the fill is captured with the network: no read may come between them
        found = graphs(images_low, masks_low, references_low, untouched, coverage, threshold=threshold,
                       as_change=as_change)
    else:
        found = harmonizer._estimate(images_low, masks_low, references_low, untouched, threshold=threshold)
    read = read_estimates(*found)
    if harmonizer.dtype != torch.float32 and not all(r[3] for r in read):
        # oneDNN's bf16 convolutions return NaN now and then on maps 2 px wide (a picture over ~450:1 at
        # 256 px), and fp16 can overflow: such a call is run again in fp32 rather than blacken the subject
        # (checked here, with the batch's one read: a replayed graph runs no Python)
        low_precision_failed(harmonizer.dtype)
        filled = False
        found = harmonizer._estimate(images_low, masks_low, references_low, untouched, threshold=threshold, fp32=True)
        read = read_estimates(*found)
    output, _, kept, _, _ = found
    sizes, kepts, backgrounds = [r[0] for r in read], [r[1] for r in read], [r[2] for r in read]
    flats = [None if math.isnan(r[4]) else (round(255 * r[4]), round(255 * r[5]), round(255 * r[6])) for r in read]
    if as_change and not filled:  # filled where a subject changes: the others' change is 0
        if not any(k > 0 for k in kepts):
            output = torch.zeros_like(output)
        else:  # (chosen on the device: an index made on the host would be a copy the host waits for)
            changing = (kept.reshape(-1, 1, 1, 1) > 0)
            output = torch.where(changing, filled_change(output, images_low, masks_low, coverage), 0)
    return output, [Correction(a, threshold, b, float(strength), background=c if c < MIN_BACKGROUND else None,
                               flat=f if c >= MIN_BACKGROUND else None)
                    for a, b, c, f in zip(sizes, kepts, backgrounds, flats)]


def estimate(harmonizer: Harmonizer, image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
             untouched: torch.Tensor | None = None, coverage: torch.Tensor | None = None, *, threshold: float,
             as_change: bool = False, fp32: bool = False) -> tuple[torch.Tensor, ...]:
    """The network's (output, size, kept), each picture's share of background, and its background's one
    colour (B×3, 0..1) where it has only one, else NaN. A picture with under ``MIN_BACKGROUND`` of it, or
    one flat colour (a cut-out's transparent part, a black frame: no scene to match), is left as it was,
    whatever the threshold."""
    def network(x: torch.Tensor, m: torch.Tensor) -> Any:
        return harmonizer._net.estimate(x, m, reference, threshold=threshold)

    output, size, kept = run_network(harmonizer, network, image, mask, fp32=fp32)
    background = 1 - mask.float().mean(dim=(1, 2, 3))
    colour = flat_colours(image, mask, untouched)
    enough = (background >= MIN_BACKGROUND) & colour[:, 0].isnan()
    kept = kept * enough
    if harmonizer.config.output == "transform":  # zero coefficients are the identity
        output = output * enough.reshape(-1, 1).to(output.dtype)
    else:
        output = torch.where(enough.reshape(-1, 1, 1, 1), output, image.to(output.dtype))
    return (filled_change(output, image, mask, coverage) if as_change else output), size, kept, background, colour


def run_network(harmonizer: Harmonizer, net: Callable[[torch.Tensor, torch.Tensor], Any], image: torch.Tensor,
                mask: torch.Tensor, exact: bool = False, fp32: bool = False) -> tuple[torch.Tensor, ...]:
    """``net(image, mask)`` in the harmonizer's precision (fp32 where ``fp32``), its results as fp32 tensors."""
    # no cast cache: a captured graph must not depend on weights cast outside it (a caller's own autocast is
    # off already: see own_precision). ``exact``: fp32 unless a precision was asked for by name. The caller
    # checks that a low-precision result is finite (inside a graph being captured, nothing may be read)
    if fp32 or harmonizer.dtype == torch.float32 or (exact and harmonizer.requested_dtype == "auto"):
        return _floats(net(image, mask))
    with torch.autocast(harmonizer.device.type, dtype=harmonizer.dtype, cache_enabled=False):
        return _floats(net(image, mask))


def apply_low(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor, mask_peak: float,
              out: torch.Tensor, strength: float, low: LowResolution, output: torch.Tensor, *,
              as_change: bool = False) -> None:
    """This picture's ``output`` of :func:`estimate_batch` (12 coefficients, the 1×3×h×w picture at the
    working size, or with ``as_change`` its change filled outward) applied to the subject of ``out`` (a
    copy of ``pixels``), in tiles at full resolution.

    ``pixels`` and ``mask`` may be staged copies on another device than ``out`` (see :func:`staged`):
    the subject's box is worked on there (:func:`apply_to_box`) and copied back into ``out``."""
    if out.device != pixels.device:
        r0, r1, c0, c1 = _box(low)
        out[r0:r1, c0:c1] = apply_to_box(harmonizer, pixels, peak, mask, mask_peak, strength, low, output,
                                         as_change=as_change).to(out.device)
        return
    _apply(harmonizer, pixels, peak, mask, mask_peak, out, (0, 0), strength, low, output, as_change)


def apply_to_box(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor, mask_peak: float,
                 strength: float, low: LowResolution, output: torch.Tensor, *, as_change: bool = False) -> torch.Tensor:
    """:func:`apply_low` on the subject's box only: a new box-sized copy of ``pixels``, rewritten inside the
    mask, on their device (what a staged picture copies back; no full-size copy is made)."""
    r0, r1, c0, c1 = _box(low)
    box_out = pixels[r0:r1, c0:c1].clone()
    _apply(harmonizer, pixels, peak, mask, mask_peak, box_out, (r0, c0), strength, low, output, as_change)
    return box_out


def _box(low: LowResolution) -> tuple[int, int, int, int]:
    """The subject's box: only a picture with a subject is applied (an empty mask's result is its input)."""
    if low.box is None:
        raise ValueError("this picture's mask is empty: there is no subject to apply a correction to")
    return low.box


def _apply(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, mask: torch.Tensor, mask_peak: float,
           out: torch.Tensor, origin: tuple[int, int], strength: float, low: LowResolution, output: torch.Tensor,
           as_change: bool) -> None:
    """``out`` holds the rows and columns of ``pixels`` from ``origin`` (its top-left pixel) on."""
    home, box = pixels.device, _box(low)
    height, width = pixels.shape[:2]
    colour_map: Callable[[torch.Tensor, int, int], torch.Tensor]
    if harmonizer.config.output == "transform":  # the predicted colour map applies to the full-size pixels as is
        gain, offset = gain_and_offset(output[0].to(home, torch.float32), peak)

        def affine(x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
            return (x.view(-1, 3) @ gain).add_(offset).view_as(x)  # addmm's broadcast bias is 5× slower

        colour_map = affine

    elif as_change:
        with one_thread(home):
            colour_map = lift_change(output.to(home, torch.float32), (height, width), box, peak)
    else:
        image_low, mask_low = low.image.to(home), low.mask.to(home)
        coverage = None if low.coverage is None else low.coverage.to(home)
        with one_thread(home):
            pred_low = output.to(home) * mask_low + image_low * (1 - mask_low)
            colour_map = lift(harmonizer.method, image_low, pred_low, mask_low, (height, width), box, peak, coverage)
    apply_in_tiles(pixels[..., :3], out[..., :3], mask, strength / mask_peak, peak, colour_map, box,
                   origin=origin)


@torch.inference_mode()
def harmonize_pixels(
    harmonizer: Harmonizer,
    pixels: torch.Tensor,
    peak: float,
    masks: torch.Tensor,
    mask_peak: float,
    out: torch.Tensor,
    strength: float,
    size: int,
    progress: Callable[[int, int], None] | None,
    threshold: float | None = None,
    mask_is_alpha: bool = False,
) -> list[Correction]:
    """B×H×W×C ``pixels`` (any dtype, ``peak`` = full intensity) and B×H×W ``masks`` → ``out``
    (same shape and dtype, a copy of ``pixels``), rewritten inside the masks only.

    :func:`pictures_per_call` pictures at a time are prepared and go through the network together, then
    each is applied: bounded memory, progress after every picture, interruption between calls."""
    count, chunk = pixels.shape[0], pictures_per_call(harmonizer, pixels, size, masks)
    # a picture of a batch with no subject (an empty mask) stays as it was; a single one has a subject (its
    # mask was checked), and is not read again
    present = (masks.flatten(1).amax(1) > 0).tolist() if count > 1 else [True]
    empty = Correction.no_subject(threshold_for(harmonizer.config, threshold), float(strength))
    corrections: list[Correction | None] = [None if here else empty for here in present]
    subjects = [i for i in range(count) if present[i]]
    done = count - len(subjects)
    for start in range(0, len(subjects), chunk):
        rows = subjects[start : start + chunk]
        moved = [staged(harmonizer, pixels[i], masks[i]) for i in rows]
        lows = [prepare_low(harmonizer, p, peak, m, mask_peak, size, mask_is_alpha) for p, m in moved]
        outputs, found = estimate_batch(harmonizer, torch.cat([low.image for low in lows]),
                                        torch.cat([low.mask for low in lows]),
                                        untouched=untouched_of(lows),
                                        threshold=threshold, strength=strength, as_change=lifts_change(harmonizer),
                                        coverage=coverage_of(lows) if lifts_change(harmonizer) else None)
        for j, i in enumerate(rows):
            # else ``out`` is already a copy of the input; a correction of exactly 0 is left out too: methods
            # "guided" and "resize" would re-make the subject from its own low-resolution picture
            if not found[j].unchanged and found[j].size > 0:
                (p, m), low = moved[j], lows[j]
                apply_low(harmonizer, p, peak, m, mask_peak, out[i], strength, low, outputs[j : j + 1],
                          as_change=lifts_change(harmonizer))
            moved[j] = None  # type: ignore[call-overload]  # done with its device copy
            corrections[i] = found[j]
            done += 1
            if progress is not None:
                progress(done, count)
    return cast("list[Correction]", corrections)  # every picture's is in place by now


def measured(harmonizer: Harmonizer, corrections: list[Correction], mode: str, before: torch.Tensor,
             after: torch.Tensor, masks: torch.Tensor, peak: float, mask_peak: float, weigh: bool = True
             ) -> list[Correction]:
    """Each changed picture's correction with what its mask let through (``Correction.weight``: a faint mask
    blends in part of the change) and the change measured in the result: where it went through the working
    size (mode "official", methods "resize" and "guided") as ``Correction.resampled`` (the network's
    correction alone understates what fine detail the subject, and there the background, lost), else as
    ``Correction.shown`` (what was applied, after colours pushed past 0 or 255 were clipped)."""
    if all(c.unchanged and c.strength != 0 for c in corrections):  # at strength 0 the report gives the weight
        return corrections
    resampled = mode == "official" or (harmonizer.method != "correction" and harmonizer.config.output != "transform")
    if mode == "official":  # a soft mask is read as 1 bit there (dithered): each pixel gets all or none
        weights = [1.0] * len(corrections)
    else:
        weights = blend_weight(masks, mask_peak) if weigh else [c.weight for c in corrections]
    out = []
    for i, c in enumerate(corrections):
        if c.unchanged:  # at strength 0, what strength 1 would apply goes through the mask too
            out.append(dataclasses.replace(c, weight=weights[i]) if c.strength == 0 else c)
            continue
        # the subject read in its own box (a grid over the whole picture may step past a thin one); the
        # background, where the result went through the working size, over the whole picture
        r0, r1, c0, c1 = bounding_box(masks[i]) or (0, masks[i].shape[0], 0, masks[i].shape[1])
        subject = rms_change(before[i][r0:r1, c0:c1], after[i][r0:r1, c0:c1], masks[i][r0:r1, c0:c1], peak,
                             mask_peak)[0]
        if resampled:
            background = rms_change(before[i], after[i], masks[i], peak, mask_peak)[1]
            out.append(dataclasses.replace(c, weight=weights[i], resampled=(subject, background)))
        else:
            out.append(dataclasses.replace(c, weight=weights[i], shown=subject))
    return out


def read_estimates(output: torch.Tensor, size: torch.Tensor, kept: torch.Tensor, background: torch.Tensor,
                   colour: torch.Tensor) -> list[list[float]]:
    """Per picture of an estimate: size, kept, share of background, whether its output is finite, and its
    background's one colour (3 values, NaN where none): read back from the device together, once."""
    finite = torch.isfinite(output.reshape(len(output), -1)).all(1)
    return torch.cat([torch.stack([size.reshape(-1), kept.reshape(-1), background.reshape(-1), finite], 1).float(),
                      colour.float()], 1).tolist()


def low_precision_failed(dtype: torch.dtype) -> None:
    """Log that the network's results in ``dtype`` were not finite and that it runs again in fp32."""
    logging.getLogger("phnet").warning("phnet: the network gave non-finite values in %s; ran it again in fp32",
                                       str(dtype).removeprefix("torch."))


def weighed(corrections: list[Correction], mode: str, masks: torch.Tensor, mask_peak: float) -> list[Correction]:
    """Unmeasured corrections with what their masks let through (``Correction.weight``), so that the figures
    logged for them are those a measured report gives (mode "official" reads a mask as 1 bit: weight 1)."""
    if mode == "official":
        return corrections
    return [dataclasses.replace(c, weight=w) for c, w in zip(corrections, blend_weight(masks, mask_peak))]


def coverage_of(lows: list[LowResolution]) -> torch.Tensor:
    """The B×1×h×w coverage of pictures prepared together (:attr:`LowResolution.coverage`)."""
    coverages = [low.coverage for low in lows if low.coverage is not None]
    if len(coverages) < len(lows):
        raise ValueError("these pictures were prepared without their coverage: only a Harmonizer whose method "
                         "carries the change up to a soft edge prepares it (see Harmonizer.carries_soft_edges)")
    return torch.cat(coverages)


def untouched_of(lows: list[LowResolution]) -> torch.Tensor | None:
    """The B×1×h×w untouched maps of pictures prepared together (:attr:`LowResolution.untouched`), None if none
    has one. A picture without its map has none of it (all False): its background is read from its mask alone."""
    if all(low.untouched is None for low in lows):
        return None
    return torch.cat([torch.zeros_like(low.mask, dtype=torch.bool) if low.untouched is None else low.untouched
                      for low in lows])


def _floats(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() for t in out) if isinstance(out, tuple) else (out.float(),)


def filled_change(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
                  coverage: torch.Tensor | None = None) -> torch.Tensor:
    """The network's B×3×h×w change of the ``image`` filled outward from the subject (``fill_outside``): what
    method "correction" and frames carry to full resolution; the subject's own change where ``coverage`` is given
    (see :func:`~phnet.fullres.unmix`). A pyramid of dozens of small operations, run
    once per network call (and captured with it in a CUDA graph)."""
    with one_thread(image.device):
        return subject_change(output, image, mask, coverage)


def noted(corrections: list[Correction], note: str) -> list[Correction]:
    """``note`` added to each correction of a picture with a subject."""
    return [c if c.empty_mask else dataclasses.replace(c, notes=(*c.notes, note)) for c in corrections]
