"""``phnet harmonize``: one composite, or a folder of them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import memory_advice, out_of_memory
from ..harmonizer import Harmonizer
from ..options import carries_soft_edges, check_options
from .clip import CUT_THRESHOLD, harmonize_clip, refuse_inverted_clip, refuse_unreadable_masks
from .jobs import Job, check_format_limits, check_writable, is_folder_target, plan, transparent_into_no_alpha
from .messages import depth, in_flags, left_out_note, say, verdict
from .reading import load_pair, orientation_note, reference_for
from .saving import save_result, write_comparison


MASK_IS_ALPHA_UNUSED = ("error: --mask-is-alpha works with --mode full and --method correction or guided, with "
                        "weights whose output is a picture: leave it out, or choose those")


def harmonize_one(harmonizer: Harmonizer, job: Job, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """One composite harmonized and its result written (and its comparison, where asked), its verdict and notes
    given to ``say``; a ``ValueError`` or ``OSError`` naming the file where it cannot be."""
    image, mask, keep = load_pair(job.composite, job.mask, as_given=args.mask_as_given)
    reference = reference_for(job, image.shape)
    result, corrections = harmonizer.harmonize(image, mask, strength=args.strength, mode=args.mode,
                                               working_size=args.working_size, reference_mask=reference,
                                               threshold=args.threshold, mask_is_alpha=args.mask_is_alpha)
    left = save_result(result, job.target, keep)
    compare_note = ""  # the files first, then the words
    if job.compare is not None:
        compare_left = write_comparison(job.compare, image, result, mask, corrections, keep)
        compare_note = left_out_note(job.compare, job.composite, compare_left) if compare_left else ""
    say(f"{job.composite.name}: {verdict(corrections, harmonizer)}")
    turned = orientation_note(job, (image.shape[0], image.shape[1]), keep)
    if turned:
        say(turned)
    if image.ndim == 3 and image.shape[2] == 4 and not image[..., 3].any() and job.mask is not None:
        say(f"note: {job.composite} is transparent everywhere (alpha 0), and {job.target} keeps its alpha, so it shows "
            "nothing: save the composite without alpha to see the result")
    if image.dtype != np.uint8:
        say(f"note: {job.composite} is {depth(image)}; {job.target} is written with 8 bits per channel")
    if keep.get("read_at_8_bits"):
        say(f"note: {job.composite} holds 16 bits per channel in a layout read at 8 bits (premultiplied alpha, "
            "padding, separate planes, grey with alpha, or PPM colour): it was harmonized at 8 bits; save it as a "
            "plain 16-bit RGB or RGBA PNG or TIFF to keep them")
    if left:
        say(left_out_note(job.target, job.composite, left))
    if compare_note:
        say(compare_note)


def harmonize(args: argparse.Namespace) -> int:
    """``phnet harmonize``: the jobs planned and every flag checked before the weights load, then one composite,
    a folder of them, or a clip."""
    check_names(args)
    jobs = plan(Path(args.composite), Path(args.mask) if args.mask else None, args.output, args.compare,
                 args.reference, clip=args.temporal is not None)
    single = Path(args.composite).is_file()
    check_run(args, jobs, single)
    harmonizer = load_harmonizer(args)
    if args.temporal is not None:
        return harmonize_clip(harmonizer, jobs, args)
    try:  # once, not in every picture's words
        check_options(harmonizer.config, args.strength, args.mode, args.working_size)
    except ValueError as e:
        raise SystemExit(f"error: {in_flags(e)}") from None
    return harmonize_pictures(harmonizer, jobs, args, single)


def check_names(args: argparse.Namespace) -> None:
    """No file or folder is named "" (a shell variable left unset: as a path it is the current folder, and as the
    mask, none, so the alpha would be the mask) or "-" (standard input or output, which are not read or written)."""
    given = (("the composite", args.composite), ("the mask", args.mask), ("-o", args.output),
             ("--compare", args.compare), ("--reference", args.reference))
    for what, value in given:
        if value == "":
            raise SystemExit(f"error: {what} is an empty name (a variable left unset?): give its file or folder")
        if value == "-":
            raise SystemExit(f"error: {what} is -, but phnet reads and writes files, not standard input or output: "
                             "give a file (./- for one named -)")


def check_run(args: argparse.Namespace, jobs: list[Job], single: bool) -> None:
    """Flags that do not go together, targets that cannot be written, and (for a clip) masks that cannot be
    used, refused before the weights load."""
    if args.temporal is not None and (single or args.mode != "full" or args.compare):
        raise SystemExit("error: --temporal needs a folder of frames, --mode full and no --compare")
    if args.threshold is not None and not 0 <= args.threshold <= 255:
        raise SystemExit(f"error: --threshold must be from 0 to 255 (RMS of the correction), got {args.threshold}")
    if args.cut_threshold is not None and args.temporal is None:
        raise SystemExit("error: --cut-threshold applies to --temporal only: add --temporal, or leave it out")
    if args.revision is not None and _weights_kind(args.weights) != "hub":
        raise SystemExit(f"error: --revision picks a version of a Hub repo, and --weights "
                         f"{args.weights or '(default)'} "
                         "is not one: leave --revision out")
    if args.compare and not single and Path(args.compare).suffix:
        print(f"note: with a folder of composites each comparison is NAME_compare.png beside its result, not "
              f"{args.compare}", file=sys.stderr)
    named = () if not single else ("--compare",) if is_folder_target(args.output) else ("-o", "--compare")
    check_writable(jobs, named)
    if single:
        check_format_limits(jobs[0])
    for job in jobs:
        if transparent_into_no_alpha(job):
            raise SystemExit(f"error: {job.composite} has transparent pixels, which {job.target.name} cannot hold; "
                             "write the result as .png, .webp or .tif")
    if args.temporal is not None:  # its settings' own checks, before the weights load
        from ..temporal import Temporal

        cut = CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold
        try:
            Temporal(window=args.temporal, cut_threshold=cut)
        except ValueError as e:
            raise ValueError(in_flags(e)) from None
    if args.reference and args.mode != "full":
        raise SystemExit("error: --reference works with --mode full only")
    if args.method is not None and args.mode != "full":  # the official pipeline resizes the whole blend back
        raise SystemExit("error: --method works with --mode full only (--mode official always resizes the whole "
                         "picture back)")
    if args.mask_is_alpha and not carries_soft_edges(args.mode, args.method or "correction"):
        raise SystemExit(MASK_IS_ALPHA_UNUSED)
    _check_device(args.device)
    if args.temporal is not None:  # (reads the masks: after the cheap checks)
        refuse_unreadable_masks(jobs, set() if args.mask_as_given else refuse_inverted_clip(jobs))


def load_harmonizer(args: argparse.Namespace) -> Harmonizer:
    """The weights of ``--weights`` in a Harmonizer on ``--device`` in ``--dtype``, once they are known to fit
    ``--mask-is-alpha``; a precision that runs slow on this device is said."""
    from .. import precision

    harmonizer = Harmonizer.from_pretrained(
        args.weights, revision=args.revision, device=args.device, dtype=args.dtype,
        method=args.method or "correction")
    if args.mask_is_alpha and not harmonizer.carries_soft_edges(args.mode):
        raise SystemExit(MASK_IS_ALPHA_UNUSED + " (these weights map the subject's colours as a whole)")
    slow = precision.slow_on(harmonizer.dtype, harmonizer.device)  # the library logs it, which the CLI keeps quiet
    if slow:
        print(f"warning: {slow}", file=sys.stderr)
    return harmonizer


def harmonize_pictures(harmonizer: Harmonizer, jobs: list[Job], args: argparse.Namespace, single: bool) -> int:
    """Each composite on its own: a bad file is named and the others go on (a folder run exits 1 at the end); a
    single composite's failure ends the run."""
    from tqdm import tqdm

    failed: list[Path] = []
    for job in tqdm(jobs, desc="harmonizing", unit="image", disable=single or sys.stderr is None):
        try:
            harmonize_one(harmonizer, job, args, say)
        except (ValueError, OSError, MemoryError, RuntimeError) as e:  # this file is bad; the others may not be
            if isinstance(e, RuntimeError) and not out_of_memory(e):
                raise
            e = memory_advice(e)
            if single:
                raise SystemExit(f"error: {e}") from None
            named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
            say(f"error: {named}", sys.stderr)
            failed.append(job.composite)
            continue
        if single:
            print(f"wrote {job.target}" + (f" and {job.compare}" if job.compare else ""))
    if single:
        return 0
    done = len(jobs) - len(failed)
    print(f"harmonized {done} of {len(jobs)} images into {Path(args.output)}")
    if failed:
        names = ", ".join(p.name for p in failed[:10]) + (", ..." if len(failed) > 10 else "")
        print(f"error: {len(failed)} of {len(jobs)} images failed ({names}); see the messages above", file=sys.stderr)
        return 1
    return 0


def _weights_kind(weights: str | None) -> str | None:
    from ..sources import resolve

    try:
        return resolve(weights).kind
    except FileNotFoundError:
        return None  # the load says what is wrong with it


def _check_device(device: str | None) -> None:
    """--device names a device torch has here (the library would end in torch's own traceback)."""
    from ..devices import device_problem

    problem = device_problem(device) if device is not None else None
    if problem:
        raise SystemExit(f"error: --device {device}: {problem}")
