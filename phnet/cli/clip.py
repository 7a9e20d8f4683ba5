"""``harmonize --temporal``: a folder of composites as the frames of a clip, its corrections smoothed over time."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np

from ..errors import memory_advice, out_of_memory
from .jobs import Job
from .messages import in_flags, say, verdict
from .reading import inverted_words, load_pair, orientation_note, reference_for
from .saving import save_result


CUT_THRESHOLD = 20.0  # --cut-threshold's default (the help text says it)
_CHECK_DELAY = 2.0  # seconds before the check of a clip's masks shows its progress


def natural_key(path: Path) -> list:
    # isdecimal, as \d reads: '²' is a digit to isdigit(), not a number to int()
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _clip_levels(jobs: list[Job]) -> bool:
    """Whether a clip's mask files (or alphas) are read on their dtype's scale (``levels``), as the library reads a
    clip's masks on one scale: a frame whose values stop at 1 (a matte's specks once the subject left) is 1/255
    when another frame's go higher, not a 0/1 mask."""
    from ..imageio.masks import integer_levels_above_one

    return any(integer_levels_above_one(job.mask) if job.mask is not None else
               integer_levels_above_one(job.composite, alpha=True) for job in jobs)


def refuse_inverted_clip(jobs: list[Job]) -> set[Path]:
    """A clip whose mask files mostly look inverted is refused before any frame is harmonized, as the Harmonize
    Frames node refuses it: judged as a whole (``mask_tools.inverted_masks``), since a frame may rightly be mostly
    subject. Only the mask files are read, one at a time, and no further than a clip that cannot be refused (a
    refused one is read to its end, to count its inverted masks). Returns the mask files read."""
    from tqdm import tqdm

    from ..imageio import read_mask
    from ..mask_tools import inverted_masks

    jobs = sorted((job for job in jobs if job.mask is not None), key=lambda job: natural_key(job.composite))
    levels = _clip_levels(jobs)
    read: set[Path] = set()

    def masks(bar):
        for job in jobs:
            try:
                mask = read_mask(job.mask, levels=levels)
                read.add(job.mask)
            except (ValueError, OSError):  # refuse_unreadable_masks names it, once the clip is judged
                mask = np.zeros((1, 1), np.float32)
            bar.update(1)
            yield mask

    # a short clip's check says nothing; a long one's (4K masks are read at some 15 a second) shows its progress
    with tqdm(total=len(jobs), desc="checking masks", unit="mask", leave=False, delay=_CHECK_DELAY,
              disable=sys.stderr is None) as bar:
        inverted = inverted_masks(masks(bar), clip=True, total=len(jobs))
    if not inverted:
        return read
    i, area, border = inverted[0]
    if len(jobs) > 1:
        raise SystemExit(f"error: {len(inverted)} of the {len(jobs)} frames' masks cover most of the picture and of "
                         f"its border ({jobs[i].mask}: {area:.0%} and {border:.0%}), so they look inverted: white "
                         "must mark the subject, black the background; invert them, or, if they are right "
                         "(subjects at the picture's sides), add --mask-as-given")
    raise SystemExit(f"error: {inverted_words(jobs[i].mask, area, border)}")


def refuse_unreadable_masks(jobs: list[Job], read: set[Path]) -> None:
    """A clip whose mask or reference mask file cannot be read is refused before any frame is harmonized: its frame
    would fail, and the frames either side of it be smoothed as neighbours. ``read``: files already read whole."""
    from tqdm import tqdm

    from ..imageio.decode import open_picture, quiet_open

    jobs = sorted(jobs, key=lambda job: natural_key(job.composite))
    files = [p for p in dict.fromkeys(p for job in jobs for p in (job.mask, job.reference) if p is not None)
             if p not in read]
    for path in tqdm(files, desc="checking masks", unit="mask", leave=False, delay=_CHECK_DELAY,
                     disable=sys.stderr is None):
        with contextlib.suppress(Exception), quiet_open(path) as image:
            if image.format == "PNG":
                image.verify()  # every chunk's checksum, not its pixels: a 4K mask in under a millisecond
                continue
        try:
            open_picture(path).close()
        except (ValueError, OSError) as e:
            why = str(e)
            raise SystemExit(f"error: {why}{': save it again' if why.startswith('cannot read ') else ''} (a clip's "
                             f"frames may have no gap)") from None


def harmonize_clip(harmonizer, jobs: list[Job], args: argparse.Namespace) -> int:
    """Each frame is read twice: to estimate its correction, and to apply the smoothed one once it is final
    (a few frames later). Only the window's low-resolution corrections are held, whatever the clip's length."""
    import torch
    from tqdm import tqdm

    from .. import temporal
    from ..compositing import visible_scene
    from ..corrections import MIN_BACKGROUND, TRANSPARENT_SCENE, Correction
    from ..imageio import mask_to_tensor
    from ..imageio.masks import FAINT

    cut = CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold
    try:
        settings = temporal.Temporal(window=args.temporal, cut_threshold=cut)
        size = harmonizer.check_options(args.strength, "full", args.working_size)  # one set of option rules
    except ValueError as e:
        raise ValueError(in_flags(e)) from None
    jobs = sorted(jobs, key=lambda job: natural_key(job.composite))

    def frame_of(image: np.ndarray, mask: np.ndarray):
        """(its pixels H×W×C, their peak, the mask H×W, its peak, finish(out) → the picture to save, in the kind
        every frame is saved as: a grey clip comes out RGB throughout). A frame's mask may cover it whole, only an
        edge of it (a subject walking in), or none of it: the clip is judged as a whole."""
        pixels, peak, masks, mask_peak, finish = harmonizer.pixels_of(image, mask, one_of_more=True, allow_empty=True)
        return pixels[0], peak, masks[0], mask_peak, lambda out: finish(out[None])

    levels = _clip_levels(jobs)
    smoother = temporal.Smoother(settings)
    frames: list[Job] = []  # the frames the smoother holds, by its index
    held: dict[int, temporal.FrameEstimate] = {}
    reported: dict[int, int] = {}  # the smoother's index of a frame → its place in ``corrections``
    corrections, failed, unchanged, traces, cramped, flat = [], [], [], [], [], []
    opaque = []  # frames whose alpha, their mask, is opaque everywhere
    left_out: set[str] = set()  # what the frames' files could not carry
    sixteen_bit, eight_of_sixteen = [], []
    turned = []  # frames read upright by their orientation whose masks, read as stored, fit them either way
    strongest = 0.0  # the clip's strongest mask value, of full: under FAINT the masks are on the wrong scale

    # counts frames done with (written, or failed): the last window of them is written after the last estimate
    bar = tqdm(total=len(jobs), desc="harmonizing", unit="frame", disable=sys.stderr is None)

    def save(result: np.ndarray, job: Job, keep: dict, image: np.ndarray) -> None:
        left_out.update(save_result(result, job.target, keep))
        if image.dtype != np.uint8:
            sixteen_bit.append(job.composite.name)
        if keep.get("read_at_8_bits"):
            eight_of_sixteen.append(job.composite.name)
        bar.update(1)

    def fail(job: Job, e: Exception) -> None:  # this frame is bad; the others may not be
        named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
        say(f"error: {named}", sys.stderr)
        failed.append(job.composite)
        bar.update(1)

    def write(ready) -> None:
        for j, correction in ready:
            frame = held.pop(j)
            try:
                image, mask, keep = load_pair(frames[j].composite, frames[j].mask, levels, clip=True)
                pixels, peak, mask, mask_peak, finish = frame_of(image, mask)
                out = pixels.clone()
                with torch.inference_mode():
                    harmonizer.apply_frame(pixels, peak, mask, mask_peak, out, frame, correction, args.strength)
                    report = harmonizer.smoothed_report(frame, correction)
                    # what went through the working size (methods "resize", "guided") measured, as for a picture
                    corrections[reported[j]] = harmonizer.measured([report], "full", pixels[None], out[None],
                                                                   mask[None], peak, mask_peak, weigh=False)[0]
                save(finish(out), frames[j], keep, image)
            except (ValueError, OSError, MemoryError, RuntimeError) as e:
                if isinstance(e, RuntimeError) and not out_of_memory(e):
                    raise
                corrections[reported[j]] = None  # not written: out of the summary, as a frame failing earlier
                fail(frames[j], memory_advice(e))

    for job in jobs:
        try:
            image, mask, keep = load_pair(job.composite, job.mask, levels, clip=True)
            if orientation_note(job, image.shape[:2], keep):
                turned.append(job.composite.name)
            if job.mask is None and mask.size and float(mask.min()) >= 1:
                opaque.append(job.composite.name)
            pixels, peak, masks, mask_peak, finish = frame_of(image, mask)
            here = float(masks.max()) / mask_peak
            strongest = max(strongest, here)
            if here < FAINT:  # the subject is out of the picture (or a matte's trace of it): the frame stays as
                save(finish(pixels.clone()), job, keep, image)  # it is, and out of the smoothing
                (traces if here else unchanged).append(job.composite.name)
                corrections.append(Correction.no_subject(harmonizer.threshold_for(args.threshold), args.strength,
                                                         trace=bool(here)))
                continue
            reference = reference_for(job, image.shape)
            if reference is not None:
                reference = mask_to_tensor(reference, 1, *pixels.shape[:2], "reference mask")[0, 0]
            reference_peak, scene = 1.0, None
            if pixels.shape[-1] == 4:  # a frame with its own mask: what lies under its alpha 0 is no scene
                scene = visible_scene(pixels[None, ..., 3], masks[None], None if reference is None else
                                      (reference[None], 1.0), mask_peak)
            if scene is not None:
                (region, reference_peak), _ = scene
                reference = region[0]
            with torch.inference_mode():
                found = harmonizer.estimate_frame(pixels, peak, masks, mask_peak, size, reference, args.threshold,
                                                  args.strength, reference_peak, args.mask_is_alpha)
            if scene is not None:
                found.report = dataclasses.replace(found.report, notes=(*found.report.notes, TRANSPARENT_SCENE))
            if found.report.background is not None:  # too little background: as it was, kept out of the smoothing
                save(finish(pixels.clone()), job, keep, image)
                corrections.append(found.report)
                cramped.append(job.composite.name)
                continue
        except (ValueError, OSError, MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and not out_of_memory(e):
                raise
            fail(job, memory_advice(e))
            continue
        corrections.append(found.report)
        if found.report.flat is not None:  # one flat colour: the smoother keeps it in time, out of its averages
            flat.append(job.composite.name)
        held[len(frames)] = found
        reported[len(frames)] = len(corrections) - 1
        frames.append(job)
        write(smoother.push(found))
    write(smoother.finish())
    bar.close()
    cuts = ", ".join(frames[i].composite.name for i in smoother.starts[1:]) or "none"
    done = len(jobs) - len(failed)
    print(f"wrote {done} of {len(jobs)} frames into {Path(args.output)} (smoothing sigma {settings.window:g} frames; "
          f"shots start at: {cuts})")
    under = f"under {MIN_BACKGROUND:.0%} of the picture as background (the subject fills it)"
    trace = "only a trace of a subject (under 1/64 of full)"
    for names, one, many in ((unchanged, "has an empty mask", "have an empty mask"),
                             (traces, f"holds {trace}", f"hold {trace}"),
                             (cramped, f"leaves {under}", f"leave {under}"),
                             (flat, "has a background of one flat colour (no scene to match to)",
                              "have a background of one flat colour (no scene to match to)")):
        if names:
            said = f"1 frame {one} and was" if len(names) == 1 else f"{len(names)} frames {many} and were"
            print(f"{said} written unchanged: {', '.join(names[:10])}" + (", ..." if len(names) > 10 else ""))
    corrections = [c for c in corrections if c is not None]
    subjects = [c for c in corrections if not c.empty_mask]
    if subjects:
        line = verdict(corrections, harmonizer, "frames")
        print(line if len(corrections) > 1 else f"the frame: {line}")
    if sixteen_bit:
        one = len(sixteen_bit) == 1
        print(f"note: {len(sixteen_bit)} {'frame holds' if one else 'frames hold'} more than 8 bits "
              f"({', '.join(sixteen_bit[:3])}{', ...' if len(sixteen_bit) > 3 else ''}); "
              f"{'it is' if one else 'they are'} written with 8 bits per channel")
    if eight_of_sixteen:
        one = len(eight_of_sixteen) == 1
        print(f"note: {len(eight_of_sixteen)} {'frame holds' if one else 'frames hold'} 16 bits per channel in a "
              f"layout read at 8 bits ({', '.join(eight_of_sixteen[:3])}{', ...' if len(eight_of_sixteen) > 3 else ''})"
              f": {'it was' if one else 'they were'} harmonized at 8 bits; save "
              f"{'it' if one else 'them'} as plain 16-bit RGB or RGBA PNG or TIFF to keep {'it' if one else 'them'}")
    if turned:
        w = dict(zip(("frame", "its", "it", "they", "mask", "is", "was"),
                     ("frame", "its", "it", "it", "mask", "is", "was") if len(turned) == 1 else
                     ("frames", "their", "them", "they", "masks", "are", "were")))
        print(f"note: {len(turned)} {w['frame']} {w['is']} turned by {w['its']} orientation tag "
              f"({', '.join(turned[:3])}{', ...' if len(turned) > 3 else ''}), so {w['they']} {w['is']} read upright, "
              f"and the {w['mask']} {w['is']} read as stored; if the {w['mask']} {w['was']} drawn on the {w['frame']} "
              f"as stored rather than as viewers show {w['it']}, turn {w['it']} the same way")
    if left_out:
        print(f"note: from their composites, the frames' files leave out {'; and '.join(sorted(left_out))}")
    if failed:
        failed.sort(key=natural_key)  # a frame failing as it is written is found a few frames late
        names = ", ".join(p.name for p in failed[:10]) + (", ..." if len(failed) > 10 else "")
        print(f"error: {len(failed)} of {len(jobs)} frames failed ({names}); see the messages above", file=sys.stderr)
        return 1
    masks = args.mask or "the frames' alpha channels"
    if opaque and len(opaque) == len(jobs) - len(failed):  # as a lone picture's is refused
        print("error: every frame's alpha channel is opaque everywhere, so it marks no subject (the frames were "
              "written as they were): give a folder of masks as the second argument", file=sys.stderr)
        return 1
    if subjects and all(c.flat is not None for c in subjects) and not args.mask:  # cut-outs, not a scene
        print("error: under every frame's transparent part is one flat colour, not a scene for the subject to match "
              "(the frames were written as they were): the frames are cut-outs; paste them onto their background "
              "first and give the frames with their alpha, or a folder of masks", file=sys.stderr)
        return 1
    if subjects and all(c.background is not None for c in subjects):  # as the library refuses it
        print(f"error: every mask that has a subject covers (nearly) its whole frame: nothing was harmonized (the "
              f"frames were written as they were); check {masks} (white = subject)", file=sys.stderr)
        return 1
    if 0 < strongest < FAINT:  # as the library refuses such a batch
        print(f"error: the masks' strongest value is {strongest:.2%} of full, so they mark no subject (the frames "
              f"are as they were): 16-bit masks holding 0..255 values? Check {masks}; save 8-bit masks as 8-bit, "
              "16-bit ones scaled to 0..65535", file=sys.stderr)
        return 1
    if not subjects:  # as the library refuses such a clip: most likely the wrong masks folder
        print(f"error: every frame's mask is empty (all zero): nothing was harmonized (the frames were written as "
              f"they were); check {masks} (white = subject)", file=sys.stderr)
        return 1
    return 0
