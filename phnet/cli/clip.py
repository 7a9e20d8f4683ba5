"""``harmonize --temporal``: a folder of composites as the frames of a clip, its corrections smoothed over time."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..corrections import Correction
from ..errors import memory_advice, out_of_memory
from ..frames import EstimatedFrame, apply_frame, estimate_frame, smoothed_report
from ..harmonizer import Harmonizer
from ..options import check_options, threshold_for
from ..pipeline import measured, pixels_of
from ..temporal import Smoother, Temporal
from .jobs import Job
from .messages import in_flags, say, verdict
from .reading import inverted_words, load_pair, orientation_note, reference_for
from .saving import save_result


CUT_THRESHOLD = 20.0  # --cut-threshold's default (the help text says it)
_CHECK_DELAY = 2.0  # seconds before the check of a clip's masks shows its progress


def natural_key(path: Path) -> list[int | str]:
    """A file's sort key in natural name order: its name's runs of digits as numbers (frame2 before frame10), the
    rest without case."""
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
    paths = [job.mask for job in jobs if job.mask is not None]  # (every one of them)
    levels = _clip_levels(jobs)
    read: set[Path] = set()

    def masks(bar):
        for path in paths:
            try:
                mask = read_mask(path, levels=levels)
                read.add(path)
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
                         f"its border ({paths[i]}: {area:.0%} and {border:.0%}), so they look inverted: white "
                         "must mark the subject, black the background; invert them, or, if they are right "
                         "(subjects at the picture's sides), add --mask-as-given")
    raise SystemExit(f"error: {inverted_words(paths[i], area, border)}")


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
            raise SystemExit(f"error: {why} (a clip's frames may have no gap)") from None


def harmonize_clip(harmonizer: Harmonizer, jobs: list[Job], args: argparse.Namespace) -> int:
    """The clip's frames harmonized in natural name order (:class:`ClipRun`), then its summary; the exit code."""
    cut = CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold
    try:
        settings = Temporal(window=args.temporal, cut_threshold=cut)
        size = check_options(harmonizer.config, args.strength, "full", args.working_size)  # one set of option rules
    except ValueError as e:
        raise ValueError(in_flags(e)) from None
    run = ClipRun(harmonizer, sorted(jobs, key=lambda job: natural_key(job.composite)), args, settings, size)
    run.harmonize()
    run.summarize()
    return run.exit_code()


@dataclass
class ClipTally:
    """What became of a clip's frames, for its summary: frames by name, under what is said of them."""

    corrections: list[Correction | None] = field(default_factory=list)  # in the clip's order (None: failed)
    failed: list[Path] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # empty masks: written as they were
    traces: list[str] = field(default_factory=list)  # only a trace of a subject: as they were
    cramped: list[str] = field(default_factory=list)  # too little background: as they were
    flat: list[str] = field(default_factory=list)  # one flat colour behind the subject
    opaque: list[str] = field(default_factory=list)  # frames whose alpha, their mask, is opaque everywhere
    sixteen_bit: list[str] = field(default_factory=list)
    eight_of_sixteen: list[str] = field(default_factory=list)
    # frames read upright by their orientation whose masks, read as stored, fit them either way
    turned: list[str] = field(default_factory=list)
    left_out: set[str] = field(default_factory=set)  # what the frames' files could not carry
    strongest: float = 0.0  # the clip's strongest mask value, of full: under FAINT the masks are on the wrong scale


class ClipRun:
    """One clip: each frame's correction estimated in order, and each frame written once the smoother releases its
    smoothed correction (a few frames later). Each frame is read twice, to estimate and to apply: only the window's
    low-resolution corrections are held, whatever the clip's length."""

    def __init__(self, harmonizer: Harmonizer, jobs: list[Job], args: argparse.Namespace, settings: Temporal,
                 size: int) -> None:
        from tqdm import tqdm

        self.harmonizer, self.jobs, self.args, self.settings, self.size = harmonizer, jobs, args, settings, size
        self.levels = _clip_levels(jobs)
        self.smoother = Smoother(settings)
        self.frames: list[Job] = []  # the frames the smoother holds, by its index
        self.held: dict[int, tuple[EstimatedFrame, int]] = {}  # by that index: its estimate, its place in corrections
        self.tally = ClipTally()
        # counts frames done with (written, or failed): the last window of them is written after the last estimate
        self.bar = tqdm(total=len(jobs), desc="harmonizing", unit="frame", disable=sys.stderr is None)

    def harmonize(self) -> None:
        """Every frame estimated, in order, and written as the smoother releases it; the last window at the end."""
        for job in self.jobs:
            found = self.estimate(job)
            if found is None:
                continue
            self.tally.corrections.append(found.report)
            if found.report.flat is not None:  # one flat colour: the smoother keeps it in time, out of its averages
                self.tally.flat.append(job.composite.name)
            self.held[len(self.frames)] = found, len(self.tally.corrections) - 1
            self.frames.append(job)
            self.write(self.smoother.push(found))
        self.write(self.smoother.finish())
        self.bar.close()

    def estimate(self, job: Job) -> EstimatedFrame | None:
        """The frame's estimate, for the smoother; None where the frame failed, or was written as it was: no
        subject in it, or too little background (both kept out of the smoothing)."""
        from ..imageio.masks import FAINT

        name, tally = job.composite.name, self.tally
        try:
            image, mask, keep = load_pair(job.composite, job.mask, self.levels, clip=True)
            if orientation_note(job, (image.shape[0], image.shape[1]), keep):
                tally.turned.append(name)
            if job.mask is None and mask.size and float(mask.min()) >= 1:
                tally.opaque.append(name)
            pixels, peak, masks, mask_peak, finish = self._frame_of(image, mask)
            here = float(masks.max()) / mask_peak
            tally.strongest = max(tally.strongest, here)
            if here < FAINT:  # the subject is out of the picture (or a matte's trace of it): the frame stays as it is
                self._save(finish(pixels.clone()), job, keep, image)
                (tally.traces if here else tally.unchanged).append(name)
                threshold = threshold_for(self.harmonizer.config, self.args.threshold)
                tally.corrections.append(Correction.no_subject(threshold, self.args.strength, trace=bool(here)))
                return None
            found = self._estimate_subject(job, image.shape, pixels, peak, masks, mask_peak)
            if found.report.background is not None:  # too little background: as it was
                self._save(finish(pixels.clone()), job, keep, image)
                tally.corrections.append(found.report)
                tally.cramped.append(name)
                return None
            return found
        except (ValueError, OSError, MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and not out_of_memory(e):
                raise
            self._fail(job, memory_advice(e))
            return None

    def _estimate_subject(self, job: Job, shape: tuple[int, ...], pixels: torch.Tensor, peak: float,
                          masks: torch.Tensor, mask_peak: float) -> EstimatedFrame:
        """The correction of a frame with a subject, matched to its reference, or else its whole background: of an
        RGBA frame with a mask of its own, what its alpha shows of it."""
        from ..compositing import visible_scene
        from ..corrections import TRANSPARENT_SCENE
        from ..imageio import mask_to_tensor

        drawn, reference = reference_for(job, shape), None
        if drawn is not None:
            height, width = pixels.shape[:2]
            reference = mask_to_tensor(drawn, 1, height, width, "reference mask")[0, 0]
        reference_peak, scene = 1.0, None
        if pixels.shape[-1] == 4:  # a frame with its own mask: what lies under its alpha 0 is no scene
            scene = visible_scene(pixels[None, ..., 3], masks[None], None if reference is None else
                                  (reference[None], 1.0), mask_peak)
        if scene is not None:
            (region, reference_peak), _ = scene
            reference = region[0]
        args = self.args
        with torch.inference_mode():
            found = estimate_frame(self.harmonizer, pixels, peak, masks, mask_peak, self.size, reference,
                                   args.threshold, args.strength, reference_peak, args.mask_is_alpha)
        if scene is not None:
            found.report = replace(found.report, notes=(*found.report.notes, TRANSPARENT_SCENE))
        return found

    def write(self, ready: list[tuple[int, torch.Tensor]]) -> None:
        """Each frame the smoother released (its index, its smoothed correction), read again, that correction
        applied, and written."""
        harmonizer = self.harmonizer
        for j, correction in ready:
            frame, place = self.held.pop(j)
            job = self.frames[j]
            try:
                image, mask, keep = load_pair(job.composite, job.mask, self.levels, clip=True)
                pixels, peak, mask, mask_peak, finish = self._frame_of(image, mask)
                out = pixels.clone()
                with torch.inference_mode():
                    apply_frame(harmonizer, pixels, peak, mask, mask_peak, out, frame, correction, self.args.strength)
                    report = smoothed_report(harmonizer, frame, correction)
                    # what went through the working size (methods "resize", "guided") measured, as for a picture
                    self.tally.corrections[place] = measured(harmonizer, [report], "full", pixels[None], out[None],
                                                             mask[None], peak, mask_peak, weigh=False)[0]
                self._save(finish(out), job, keep, image)
            except (ValueError, OSError, MemoryError, RuntimeError) as e:
                if isinstance(e, RuntimeError) and not out_of_memory(e):
                    raise
                self.tally.corrections[place] = None  # not written: out of the summary, as a frame failing earlier
                self._fail(job, memory_advice(e))

    def _frame_of(self, image: np.ndarray, mask: np.ndarray):
        """(its pixels H×W×C, their peak, the mask H×W, its peak, finish(out) → the picture to save, in the kind
        every frame is saved as: a grey clip comes out RGB throughout). A frame's mask may cover it whole, only an
        edge of it (a subject walking in), or none of it: the clip is judged as a whole."""
        pixels, peak, masks, mask_peak, finish = pixels_of(image, mask, one_of_more=True,
                                                           allow_empty=True)
        return pixels[0], peak, masks[0], mask_peak, lambda out: finish(out[None])

    def _save(self, result: np.ndarray, job: Job, keep: dict[str, Any], image: np.ndarray) -> None:
        self.tally.left_out.update(save_result(result, job.target, keep))
        if image.dtype != np.uint8:
            self.tally.sixteen_bit.append(job.composite.name)
        if keep.get("read_at_8_bits"):
            self.tally.eight_of_sixteen.append(job.composite.name)
        self.bar.update(1)

    def _fail(self, job: Job, e: Exception) -> None:  # this frame is bad; the others may not be
        named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
        say(f"error: {named}", sys.stderr)
        self.tally.failed.append(job.composite)
        self.bar.update(1)

    def _reports(self) -> list[Correction]:
        return [c for c in self.tally.corrections if c is not None]

    def summarize(self) -> None:
        """What was written, the frames written as they were and why, the clip's verdict, then notes."""
        from ..corrections import MIN_BACKGROUND

        t = self.tally
        cuts = ", ".join(self.frames[i].composite.name for i in self.smoother.starts[1:]) or "none"
        print(f"wrote {len(self.jobs) - len(t.failed)} of {len(self.jobs)} frames into {Path(self.args.output)} "
              f"(smoothing sigma {self.settings.window:g} frames; shots start at: {cuts})")
        for names, what in ((t.unchanged, "{have} an empty mask"),
                            (t.traces, "{hold} only a trace of a subject (under 1/64 of full)"),
                            (t.cramped, f"{{leave}} under {MIN_BACKGROUND:.0%} of the picture as background (the "
                                        "subject fills it)"),
                            (t.flat, "{have} a background of one flat colour (no scene to match to)")):
            if names:
                print(_about(names, 10, "{n} {frames} " + what + " and {were} written unchanged: {names}"))
        reports = self._reports()
        if any(not c.empty_mask for c in reports):
            line = verdict(reports, self.harmonizer, "frames")
            print(line if len(reports) > 1 else f"the frame: {line}")
        if t.sixteen_bit:
            print(_about(t.sixteen_bit, 3, "note: {n} {frames} {hold} more than 8 bits ({names}); {they} {are} "
                                           "written with 8 bits per channel"))
        if t.eight_of_sixteen:
            print(_about(t.eight_of_sixteen, 3, "note: {n} {frames} {hold} 16 bits per channel in a layout read at 8 "
                                                "bits ({names}): {they} {were} harmonized at 8 bits; save {them} as "
                                                "plain 16-bit RGB or RGBA PNG or TIFF to keep {them}"))
        if t.turned:
            print(_about(t.turned, 3, "note: {n} {frames} {are} turned by {their} orientation tag ({names}), so "
                                      "{they} {are} read upright, and the {masks} {are} read as stored; if the "
                                      "{masks} {were} drawn on the {frames} as stored rather than as viewers show "
                                      "{them}, turn {them} the same way"))
        if t.left_out:
            print(f"note: from their composites, the frames' files leave out {'; and '.join(sorted(t.left_out))}")

    def exit_code(self) -> int:
        """1, with one error line, where a frame failed, or where the clip as a whole marks no subject to harmonize
        (as the library refuses such a clip); else 0."""
        from ..imageio.masks import FAINT

        t, jobs = self.tally, self.jobs
        if t.failed:  # named in the clip's order: a frame failing as it is written is found a few frames late
            names = _listed([p.name for p in sorted(t.failed, key=natural_key)], 10)
            print(f"error: {len(t.failed)} of {len(jobs)} frames failed ({names}); see the messages above",
                  file=sys.stderr)
            return 1
        masks = self.args.mask or "the frames' alpha channels"
        subjects = [c for c in self._reports() if not c.empty_mask]
        if t.opaque and len(t.opaque) == len(jobs):  # as a lone picture's is refused
            print("error: every frame's alpha channel is opaque everywhere, so it marks no subject (the frames were "
                  "written as they were): give a folder of masks as the second argument", file=sys.stderr)
            return 1
        if subjects and all(c.flat is not None for c in subjects) and not self.args.mask:  # cut-outs, not a scene
            print("error: under every frame's transparent part is one flat colour, not a scene for the subject to "
                  "match (the frames were written as they were): the frames are cut-outs; paste them onto their "
                  "background first and give the frames with their alpha, or a folder of masks", file=sys.stderr)
            return 1
        if subjects and all(c.background is not None for c in subjects):  # as the library refuses it
            print(f"error: every mask that has a subject covers (nearly) its whole frame: nothing was harmonized (the "
                  f"frames were written as they were); check {masks} (white = subject)", file=sys.stderr)
            return 1
        if 0 < t.strongest < FAINT:  # as the library refuses such a batch
            print(f"error: the masks' strongest value is {t.strongest:.2%} of full, so they mark no subject (the "
                  f"frames are as they were): 16-bit masks holding 0..255 values? Check {masks}; save 8-bit masks as "
                  "8-bit, 16-bit ones scaled to 0..65535", file=sys.stderr)
            return 1
        if not subjects:  # as the library refuses such a clip: most likely the wrong masks folder
            print(f"error: every frame's mask is empty (all zero): nothing was harmonized (the frames were written as "
                  f"they were); check {masks} (white = subject)", file=sys.stderr)
            return 1
        return 0


# the words a line about frames may need, by their plural: (for one frame, for more)
_WORDS = {"frames": ("frame", "frames"), "masks": ("mask", "masks"), "are": ("is", "are"), "were": ("was", "were"),
          "have": ("has", "have"), "hold": ("holds", "hold"), "leave": ("leaves", "leave"), "they": ("it", "they"),
          "them": ("it", "them"), "their": ("its", "their")}


def _listed(names: list[str], shown: int) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _about(frames: list[str], shown: int, text: str) -> str:
    """``text`` said of ``frames`` (their names), in the words for one frame or for more: ``{n}``, ``{names}`` (the
    first ``shown``), and each of ``_WORDS`` by its plural ("{n} {frames} {hold}": "1 frame holds", "2 frames hold")."""
    words = {plural: forms[len(frames) != 1] for plural, forms in _WORDS.items()}
    return text.format(n=len(frames), names=_listed(frames, shown), **words)
