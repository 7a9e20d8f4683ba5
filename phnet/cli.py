"""Command line: ``phnet harmonize``, ``phnet convert``.

``harmonize --temporal`` treats a folder of composites as the frames of a clip, in natural name order
(frame2 before frame10): every frame's correction is estimated, smoothed over time (cuts kept, see
:mod:`phnet.temporal`), then applied. ``--reference`` names the part of the background the subject
should match: one mask for every composite, or a folder of masks named like the composites.

``harmonize`` never writes over one of its inputs, gives every result its own name, and in folder mode
goes on past a bad file: each failure is reported with its file name as it happens, and the run ends with
a summary and exit code 1. Files are read through :mod:`phnet.imageio` (EXIF orientation, 16-bit grey).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .imageio import IMAGE_SUFFIXES
from .fullres import METHODS
from .harmonizer import MODES
from .precision import CHOICES as PRECISIONS
from .sources import OFFICIAL, OFFICIAL_NAMES

OFFICIAL_PRESETS = tuple(sorted({w.preset for w in OFFICIAL.values()}))


class _Job(NamedTuple):
    composite: Path
    mask: Path | None
    target: Path
    compare: Path | None = None
    reference: Path | None = None

    @property
    def inputs(self) -> list[Path]:
        return [p for p in (self.composite, self.mask, self.reference) if p is not None]


def _load_pair(composite: Path, mask: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(image array as stored, float32 mask) for one job; ValueError naming the file when it cannot be used."""
    from .imageio import mask_to_array, read_image, read_mask

    image = read_image(composite)
    if mask is None:
        if image.ndim != 3 or image.shape[-1] != 4:
            raise ValueError(f"{composite} has no alpha channel; give a MASK image as the second argument")
        return image[..., :3], mask_to_array(image[..., 3], f"alpha channel of {composite}")
    m = read_mask(mask)
    if m.shape != image.shape[:2]:
        raise ValueError(
            f"mask {mask} is {m.shape[1]}×{m.shape[0]} but {composite} is {image.shape[1]}×{image.shape[0]}; "
            "resize the mask to the composite"
        )
    return image, m


def _is_folder_target(output: str) -> bool:
    """``-o results/``, an existing folder, or a name without an image extension: a folder."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir() or not Path(output).suffix


def _plan(composite: Path, mask: Path | None, output: str, compare: str | None = None,
          reference: str | None = None) -> list[_Job]:
    """Every job of the run, its files checked before anything is computed or written. ``compare``: the
    comparison image of a single composite; in folder mode any value asks for ``<result>_compare.png``.
    ``reference``: one reference mask for every composite, or a folder of them named like the composites."""
    out = Path(output)
    references = None if reference is None else Path(reference)
    if references is not None and not references.exists():
        raise SystemExit(f"error: reference mask {reference} is not a file or folder")
    if composite.is_file():
        if mask is not None and not mask.is_file():
            raise SystemExit(f"error: mask {mask} is not a file")
        target = out / composite.name if _is_folder_target(output) else out
        jobs = [_Job(composite, mask, target, Path(compare) if compare else None)]
    elif composite.is_dir():
        if mask is not None and not mask.is_dir():
            raise SystemExit("error: with a folder of composites, MASK must be a folder of masks with the same names")
        if not _is_folder_target(output):
            raise SystemExit(f"error: with a folder of composites, -o must be a folder, not {output}")
        images = sorted(p for p in composite.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SystemExit(f"error: no images in {composite}")
        stems = Counter(p.stem for p in images)
        jobs = []
        for path in images:
            # x.jpg and x.png both in the folder: x_jpg.png and x_png.png, so neither result is lost
            name = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix[1:].lower()}"
            target = out / (name + ".png")
            paired = _find_mask(mask, path) if mask is not None else None
            jobs.append(_Job(path, paired, target, target.with_name(name + "_compare.png") if compare else None))
    else:
        raise SystemExit(f"error: {composite} does not exist")
    if references is not None:
        jobs = [job._replace(reference=_find_mask(references, job.composite) if references.is_dir() else references)
                for job in jobs]
    _check_targets(jobs)
    return jobs


def _find_mask(folder: Path, composite: Path) -> Path:
    candidates = [m for m in sorted(folder.iterdir()) if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
    found = next((m for m in candidates if m.name == composite.name), None)  # x.jpg's own mask first
    found = found or next((m for m in candidates if m.stem == composite.stem), None)
    if found is None:
        raise SystemExit(f"error: no mask named {composite.stem}.* in {folder} for {composite}")
    return found


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: the same for every name of it, hard links included."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_targets(jobs: list[_Job]) -> None:
    """No output is an input (by path or by identity: a hard link is the same file), and no two outputs collide."""
    inputs = {p.resolve() for job in jobs for p in job.inputs}
    input_ids = {_identity(p) for job in jobs for p in job.inputs} - {None}
    seen: dict[Path, Path] = {}
    writes = [(t, job.composite) for job in jobs for t in (job.target, job.compare) if t is not None]
    for target, source in writes:
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise SystemExit(
                f"error: cannot write an image named {target.name}: use one of {', '.join(IMAGE_SUFFIXES)}, "
                "or end -o with / for a folder"
            )
        resolved = target.resolve()
        if resolved in inputs or _identity(target) in input_ids:
            raise SystemExit(f"error: refusing to overwrite the input {target}; choose another output (-o/--compare)")
        if resolved in seen:
            raise SystemExit(f"error: {seen[resolved]} and {source} would both be written to {target}")
        seen[resolved] = source


def _eight_bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return np.round(array / 257.0).astype(np.uint8)
    if array.dtype != np.uint8:
        return np.round(np.clip(array, 0, 1) * 255.0).astype(np.uint8)
    return array


def _save(result: np.ndarray, target: Path) -> None:
    from PIL import Image

    result = _eight_bit(result)
    if result.ndim == 3 and result.shape[-1] == 4 and target.suffix.lower() in (".jpg", ".jpeg"):
        result = result[..., :3]  # JPEG has no alpha
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result).save(target)


def _verdict(corrections, harmonizer) -> str:
    """How much the subject changed, and what to do when the do-no-harm threshold left it as it was."""
    from .corrections import OFFICIAL_HINT, report, weights_hint

    return report(corrections, "--threshold 0", weights_hint(harmonizer.config.name, f"--weights {OFFICIAL_HINT}"))


def _harmonize_one(harmonizer, job: _Job, args: argparse.Namespace, say) -> None:
    image, mask = _load_pair(job.composite, job.mask)
    reference = _reference_for(job)
    result, corrections = harmonizer.harmonize(image, mask, strength=args.strength, mode=args.mode,
                                               working_size=args.working_size, reference_mask=reference,
                                               threshold=args.threshold)
    _save(result, job.target)
    say(f"{job.composite.name}: {_verdict(corrections, harmonizer)}")
    if image.dtype == np.uint16:
        say(f"note: {job.composite} is 16-bit; {job.target} is written with 8 bits per channel")
    if job.compare is not None:
        from PIL import Image

        from .visualize import before_after

        m = Image.fromarray(np.round(mask * 255.0).astype(np.uint8))
        job.compare.parent.mkdir(parents=True, exist_ok=True)
        label = ("unchanged: correction below the do-no-harm threshold" if all(c.kept == 0 for c in corrections)
                 else "harmonized (PHNet), correction shortened by the do-no-harm threshold"
                 if any(c.kept < 1 for c in corrections) else "harmonized (PHNet)")
        before_after(Image.fromarray(_eight_bit(image)), Image.fromarray(_eight_bit(result)), m,
                     after_label=label).save(job.compare)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _reference_for(job: _Job) -> np.ndarray | None:
    """The reference mask of one composite (planned by _plan), decoded."""
    from .imageio import read_mask

    return None if job.reference is None else read_mask(job.reference)


def _harmonize_clip(harmonizer, jobs: list[_Job], args: argparse.Namespace) -> int:
    """Each frame is read twice: to estimate its correction, and to apply the smoothed one once it is final
    (a few frames later). Only the window's low-resolution corrections are held, whatever the clip's length."""
    import torch
    from tqdm import tqdm

    from . import temporal
    from .imageio import mask_to_tensor

    settings = temporal.Temporal(window=args.temporal, cut_threshold=args.cut_threshold)
    size = harmonizer.check_options(args.strength, "full", args.working_size)  # one set of option rules
    jobs = sorted(jobs, key=lambda job: _natural_key(job.composite))

    def frame_of(image: np.ndarray, mask: np.ndarray):
        """(its pixels H×W×C, their peak, the mask H×W, its peak, finish(out) → the picture to save)."""
        pixels, peak, masks, mask_peak, finish = harmonizer.pixels_of(image, mask)
        return pixels[0], peak, masks[0], mask_peak, lambda out: finish(out[None])

    smoother = temporal.Smoother(settings)
    frames: list[_Job] = []  # the frames the smoother holds, by its index
    held: dict[int, temporal.FrameEstimate] = {}
    corrections, failed, unchanged = [], [], []

    def fail(job: _Job, e: Exception) -> None:  # this frame is bad; the others may not be
        named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
        tqdm.write(f"error: {named}", file=sys.stderr)
        failed.append(job.composite)

    def write(ready) -> None:
        for j, correction in ready:
            frame = held.pop(j)
            try:
                pixels, peak, mask, mask_peak, finish = frame_of(*_load_pair(frames[j].composite, frames[j].mask))
                out = pixels.clone()
                with torch.inference_mode():
                    harmonizer.apply_frame(pixels, peak, mask, mask_peak, out, frame, correction, args.strength)
                _save(finish(out), frames[j].target)
            except (ValueError, OSError) as e:
                fail(frames[j], e)

    for job in tqdm(jobs, desc="harmonizing", unit="frame"):
        try:
            image, mask = _load_pair(job.composite, job.mask)
            if not bool((mask > 0).any()):  # the subject is out of the picture: the frame stays as it is
                _save(image, job.target)
                unchanged.append(job.composite.name)
                continue
            pixels, peak, masks, mask_peak, _ = frame_of(image, mask)  # a mask with no background is refused here
            reference = _reference_for(job)
            if reference is not None:
                reference = mask_to_tensor(reference, 1, *pixels.shape[:2], "reference mask")[0, 0]
            with torch.inference_mode():
                found = harmonizer.estimate_frame(pixels, peak, masks, mask_peak, size, reference, args.threshold,
                                                  args.strength)
        except (ValueError, OSError) as e:
            fail(job, e)
            continue
        corrections.append(found.report)
        held[len(frames)] = found
        frames.append(job)
        write(smoother.push(found))
    write(smoother.finish())
    cuts = ", ".join(frames[i].composite.name for i in smoother.starts[1:]) or "none"
    done = len(jobs) - len(failed)
    print(f"harmonized {done} of {len(jobs)} frames into {Path(args.output)} (window {settings.window:g} frames; "
          f"shots start at: {cuts})")
    if unchanged:
        print(f"{len(unchanged)} frames have an empty mask and were written unchanged: {', '.join(unchanged[:10])}"
              + (", ..." if len(unchanged) > 10 else ""))
    if corrections:
        print(f"frames: {_verdict(corrections, harmonizer)} (before smoothing)")
    if failed:
        names = ", ".join(p.name for p in failed[:10]) + (", ..." if len(failed) > 10 else "")
        print(f"error: {len(failed)} of {len(jobs)} frames failed ({names}); see the messages above", file=sys.stderr)
        return 1
    if not corrections:  # as the library refuses such a clip: most likely the wrong masks folder
        masks = args.mask or "the frames' alpha channels"
        print(f"error: every frame's mask is empty (all zero): nothing was harmonized (the frames were written as "
              f"they were); check {masks} (white = subject)", file=sys.stderr)
        return 1
    return 0


def harmonize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .harmonizer import Harmonizer

    jobs = _plan(Path(args.composite), Path(args.mask) if args.mask else None, args.output, args.compare,
                 args.reference)
    single = Path(args.composite).is_file()
    if args.temporal is not None and (single or args.mode != "full" or args.compare):
        raise SystemExit("error: --temporal needs a folder of frames, --mode full and no --compare")
    if args.threshold is not None and not args.threshold >= 0:
        raise SystemExit(f"error: --threshold must be a number >= 0 (RMS, 0-255 units), got {args.threshold}")
    harmonizer = Harmonizer.from_pretrained(
        args.weights, revision=args.revision, device=args.device, dtype=args.dtype, method=args.method
    )
    if args.temporal is not None:
        return _harmonize_clip(harmonizer, jobs, args)
    failed: list[Path] = []
    for job in tqdm(jobs, desc="harmonizing", unit="image", disable=single):
        try:
            _harmonize_one(harmonizer, job, args, tqdm.write)
        except (ValueError, OSError) as e:  # this file is bad; the others may not be
            if single:
                raise SystemExit(f"error: {e}") from None
            named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
            tqdm.write(f"error: {named}", file=sys.stderr)
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


def convert(args: argparse.Namespace) -> int:
    from .weights import convert_official, push_to_hub

    model = convert_official(args.checkpoint, args.out_dir, config=args.config)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out_dir}/config.json + model.safetensors ({model.config.name}, {n:,} parameters)")
    if args.push_to_hub:
        url = push_to_hub(model, args.push_to_hub, base_model=Path(args.checkpoint).name)
        print(f"uploaded to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phnet", description="PHNet portrait harmonization")
    sub = parser.add_subparsers(dest="command", required=True)

    h = sub.add_parser("harmonize", help="harmonize a composite (or a folder of them) given the subject mask")
    h.add_argument("composite", help="composite image, or a folder of them")
    h.add_argument("mask", nargs="?", help="subject mask (white = subject), or a folder; default: the alpha channel")
    h.add_argument("-o", "--output", required=True, help="output image, or a folder (ending in /; created if needed)")
    h.add_argument("--weights", help="weights file, model folder, Hub repo id owner/name[@revision], or official "
                   f"weights by name ({', '.join(OFFICIAL_NAMES)}: downloaded on first use, under the authors' "
                   "CC BY-SA 4.0-variant licence; the ffhqh ones also under FFHQ's non-commercial terms) "
                   "(default: the bundled weights, offline, tuned to do no harm)")
    h.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    h.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = full harmonization")
    h.add_argument("--threshold", type=float, metavar="RMS",
                   help="do-no-harm threshold (0-255 RMS) instead of the weights' own: corrections smaller than it "
                   "are dropped (the bundled weights keep a quarter of them), those just above it shortened. Lower "
                   "it to change more subjects (0 = the raw network, which may harm near-right composites); raise it "
                   "to change only obvious mismatches")
    h.add_argument("--mode", choices=MODES, default="full", help="full resolution (default) or the official square pipeline")
    h.add_argument("--method", choices=METHODS, default="correction", help="how the result reaches full resolution")
    h.add_argument("--working-size", type=int, help="override the network's working resolution (a multiple of 8 from 16)")
    h.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    h.add_argument("--dtype", choices=PRECISIONS, default="auto",
                   help="compute precision; auto (default) = bf16 on CPUs with AMX, else fp32")
    h.add_argument("--compare", help="also write a before/after comparison image here")
    h.add_argument("--reference", help="mask of the background region the subject should match (white = match "
                   "this), or a folder of them named like the composites")
    h.add_argument("--temporal", type=float, nargs="?", const=3.0, metavar="FRAMES",
                   help="the folder is a clip (natural name order): smooth the correction over about FRAMES "
                   "frames (default 3), never across a detected cut")
    h.add_argument("--cut-threshold", type=float, default=20.0, help="background change (0-255) that counts as "
                   "a cut in --temporal mode (default 20)")
    h.set_defaults(run=harmonize)

    c = sub.add_parser("convert", help="official .pth checkpoint → config.json + model.safetensors")
    c.add_argument("checkpoint")
    c.add_argument("out_dir")
    c.add_argument("--config", choices=OFFICIAL_PRESETS, help="architecture (default: inferred from shapes)")
    c.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted weights to this Hub repo")
    c.set_defaults(run=convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("phnet")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the CLI says per file what the library would log
    try:
        return args.run(args)
    except (ValueError, OSError) as e:  # bad weights or input, an unreachable Hub: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        logger.setLevel(level)

if __name__ == "__main__":
    sys.exit(main())
