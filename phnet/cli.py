"""Command line: ``phnet harmonize``, ``phnet convert``.

``harmonize --temporal`` treats a folder of composites as the frames of a clip, in natural name order
(frame2 before frame10): every frame's correction is estimated, smoothed over time (cuts kept, see
:mod:`phnet.temporal`), then applied. ``--reference`` names the part of the background the subject
should match: one mask for every composite, or a folder of masks named like the composites.

``harmonize`` never writes over one of its inputs, gives every result its own name, and in folder mode
goes on past a bad file: each failure is reported with its file name as it happens, and the run ends with
a summary and exit code 1. Files are read through :mod:`phnet.imageio` (EXIF orientation, 16-bit grey).
Every file is written whole or not at all (:mod:`phnet.atomic`), carrying the composite's ICC profile and
EXIF; JPEG at quality 95 without chroma subsampling, WebP lossless.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import logging
import os
import re
import signal
import struct
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .atomic import dangling_link, write_atomic
from .imageio import IMAGE_SUFFIXES, UNIT_SLACK
from .imageio.decode import (JPEG_XMP, MASK_ONLY, UNOPENED_PHOTOS, folded_name, folds_names, looks_like_a_mask,
                             orientation, orientation_source, quiet_open, readable_suffixes)
from .fullres import METHODS
from .harmonizer import MODES, carries_soft_edges
from .precision import CHOICES as PRECISIONS
from .sources import OFFICIAL, OFFICIAL_NAMES, hub_command

CUT_THRESHOLD = 20.0  # --cut-threshold's default (the help text says it)
MASK_IS_ALPHA_UNUSED = ("error: --mask-is-alpha works with --mode full and --method correction or guided, with "
                        "weights whose output is a picture: leave it out, or choose those")
TEMPORAL_SIGMA = 3.0  # --temporal's, given alone
_CHECK_DELAY = 2.0  # seconds before the check of a clip's masks shows its progress

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


def _say(text: str, stream=None) -> None:
    """A line above the progress bar, on ``stream`` (on stdout where it is None, as ``print`` does), and nowhere
    where stdout is None too (pythonw, a closed descriptor), which tqdm before 4.69 wrote to all the same."""
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stdout
    if stream is not None:
        tqdm.write(text, file=stream)


def _load_pair(composite: Path, mask: Path | None, levels: bool = False, clip: bool = False,
               as_given: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """(image array as stored, float32 mask, what its results carry: see read_picture) for one job; ValueError
    naming the file when it cannot be used. ``levels``: an integer mask file on its dtype's scale even where
    its values stop at 1 (a frame of a clip whose other masks go higher). ``clip``: a frame of a clip, whose
    alpha may rightly mark no subject or the whole frame, over a flat colour (a fade to black): the clip is
    judged as a whole. ``as_given``: a mask file that looks inverted is used all the same (--mask-as-given)."""
    from .imageio import mask_to_array, read_mask, read_picture
    from .imageio.decode import ColourMaskError
    from .mask_tools import looks_inverted

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
    inverted = None if clip or as_given else looks_inverted(m)  # a clip is judged as a whole (_refuse_inverted_clip)
    if inverted is not None:  # (subjects at both sides with the scene between them look the same: hence the flag)
        raise ValueError(_inverted_words(mask, *inverted))
    return image, m, keep


def _inverted_words(mask: Path, area: float, border: float) -> str:
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


def _depth(image: np.ndarray) -> str:
    """A picture read at more than 8 bits, in words: "16-bit", "32-bit float"."""
    return f"{image.dtype.itemsize * 8}-bit" + (" float" if image.dtype.kind == "f" else "")


def _refuse_cut_out(image: np.ndarray, composite: Path) -> None:
    """An RGBA picture whose alpha is the mask must hold a background under its transparent part: a cut-out's
    is one flat colour (black, mostly), which the subject would be matched to."""
    from .compositing import cut_out_colour

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


def _orientation_note(job: _Job, shape: tuple[int, int]) -> str | None:
    """A note when the composite is turned upright by its orientation and its mask, stored as it is, fits
    both the upright and the stored picture: drawn on the stored one, it would mark the wrong pixels."""
    if job.mask is None:
        return None
    turn, source = _orientation(job.composite)
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


def _not_a_file(path: Path) -> str:
    """Why ``path``, given for a picture, is none: missing, a folder, or a pipe or device (read twice, so no)."""
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists():
        return "is not a regular file (a pipe or standard input cannot be read: save the picture to a file first)"
    return "does not exist"


def _is_folder_target(output: str) -> bool:
    """``-o results/``, an existing folder, or a name without an image extension: a folder."""
    return output.endswith(("/", os.sep)) or os.path.isdir(output) or not Path(output).suffix


def _plan(composite: Path, mask: Path | None, output: str, compare: str | None = None,
          reference: str | None = None, clip: bool = False) -> list[_Job]:
    """Every job of the run, its files checked before anything is computed or written. ``compare``: the
    comparison image of a single composite; in folder mode any value asks for ``<result>_compare.png``.
    ``reference``: one reference mask for every composite, or a folder of them named like the composites.
    ``clip``: the folder is a clip's frames, which may have no gap."""
    out = Path(output)
    fold = folded_name if folds_names(out) else str  # how the output folder compares names
    references = None if reference is None else Path(reference)
    if references is not None and not (references.is_file() or references.is_dir()):
        raise SystemExit(f"error: reference mask {reference} {_not_a_file(references)}")
    if composite.is_file():
        if mask is not None and not mask.is_file():
            raise SystemExit(f"error: mask {mask} {_not_a_file(mask)}")
        target = out / (composite.stem + ".png") if _is_folder_target(output) else out  # as in folder mode
        jobs = [_Job(composite, mask, target, Path(compare) if compare else None)]
    elif composite.is_dir():
        if mask is not None and not mask.exists():
            raise SystemExit(f"error: the masks folder {mask} does not exist")
        if mask is not None and not mask.is_dir():
            raise SystemExit("error: with a folder of composites, MASK must be a folder of masks with the same names")
        if not _is_folder_target(output):
            raise SystemExit(f"error: with a folder of composites, -o must be a folder, not {output}: end it with / "
                             "to make it one")
        images, unopened = _pictures(composite), _unopened(composite)
        if not images:
            raise SystemExit(f"error: no images in {composite}" + (f" that this Pillow opens: {unopened}"
                                                                   if unopened else ""))
        gaps = _unopened(composite, besides=images) if unopened and clip else ""  # (a raw beside its JPEG is none)
        if gaps:
            raise SystemExit(f"error: a clip's frames may have no gap, and {composite} holds {gaps}")
        if unopened:
            print(f"note: left out {unopened}")
        masks = _find_masks(mask, images) if mask is not None else [None] * len(images)
        passed = _mask_only_frames(composite, mask, masks) if mask is not None else []
        if passed and clip:
            raise SystemExit(f"error: {_mask_only_note(passed, mask)}, would leave a gap in the clip: "
                             f"{_mask_only_fix(passed)}")
        if passed:
            print(f"note: left out {_mask_only_note(passed, mask)}: {_mask_only_fix(passed)}")
        names = _result_names(images, fold, bool(compare))
        jobs = [_Job(path, paired, out / (names[path][0] + ".png"),
                     out / (names[path][1] + ".png") if compare else None)
                for path, paired in zip(images, masks)]
    else:
        raise SystemExit(f"error: {composite} {_not_a_file(composite)}")
    if references is not None:
        found = (_find_masks(references, [job.composite for job in jobs], "reference mask") if references.is_dir()
                 else [references] * len(jobs))
        jobs = [job._replace(reference=r) for job, r in zip(jobs, found)]
    _check_targets(jobs, fold)
    return jobs


def _result_names(images: list[Path], fold: Callable[[str], str], compare: bool) -> dict[Path, tuple[str, str]]:
    """Each picture's result and comparison names (without .png), every one its own: its stem; x.jpg and x.png
    both in the folder give x_jpg and x_png, so neither result is lost; a name another picture's stem or an earlier
    name already holds is numbered (a_jpg_2, x_compare_2), stems first, so each picture keeps its own name."""
    stems = Counter(fold(p.stem) for p in images)
    taken: set[str] = set()

    def claim(name: str) -> str:
        numbered, k = name, 1
        while fold(numbered) in taken:
            k += 1
            numbered = f"{name}_{k}"
        taken.add(fold(numbered))
        return numbered

    own = {p: claim(p.stem) for p in images if stems[fold(p.stem)] == 1}
    own.update({p: claim(f"{p.stem}_{p.suffix[1:].lower()}") for p in images if p not in own})
    return {p: (own[p], claim(own[p] + "_compare") if compare else "") for p in images}


def _pictures(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The photos of a folder (:func:`~phnet.imageio.decode.readable_suffixes`: a .jfif or .avif frame was passed
    over; or those with ``suffixes``), by name; hidden ones (macOS's ._name beside each file) are not pictures."""
    suffixes = readable_suffixes() if suffixes is None else suffixes
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)


def _unopened(folder: Path, besides: list[Path] | None = None) -> str:
    """The photos of ``folder`` that this Pillow cannot open (HEIC without its plugin, camera raw files), counted
    by suffix with what to do, or ""; ``besides``: less those named like one of these pictures (a camera's raw
    file beside its JPEG)."""
    unopened = UNOPENED_PHOTOS.difference(readable_suffixes())
    twins = {folded_name(p.stem) for p in besides or []}
    found = Counter(p.suffix.lower() for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in unopened
                    and folded_name(p.stem) not in twins)
    if not found:
        return ""
    kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(found.items()))
    plugin = " (HEIC/HEIF: pip install pillow-heif)" if {".heic", ".heif"} & set(found) else ""
    count = sum(found.values())
    return (f"{count} photo{'s' if count > 1 else ''} this Pillow cannot open ({kinds}): save "
            f"{'them' if count > 1 else 'it'} as PNG or JPEG{plugin}")


def _mask_only_frames(folder: Path, masks: Path, used: list[Path]) -> list[Path]:
    """The GIF and PBM pictures of ``folder`` (formats read as masks only) whose name a mask in ``masks`` that no
    composite used has: frames of the run, passed over. (A preview without a mask of its own is no frame.)"""
    by_stem: dict[str, set[Path]] = {}
    for m in [*_pictures(masks), *_pictures(masks, MASK_ONLY)]:
        by_stem.setdefault(folded_name(m.stem), set()).add(m)
    taken = set(used)
    return [p for p in _pictures(folder, MASK_ONLY) if by_stem.get(folded_name(p.stem), set()) - taken - {p}]


def _mask_only_note(frames: list[Path], masks: Path) -> str:
    names = ", ".join(p.name for p in frames[:10]) + (f" and {len(frames) - 10} more" if len(frames) > 10 else "")
    return f"{names}, named like {'masks' if len(frames) > 1 else 'a mask'} in {masks}"


def _mask_only_fix(frames: list[Path]) -> str:
    kinds = sorted({p.suffix[1:].upper() for p in frames})
    read = "are read as masks" if len(kinds) > 1 else "is read as a mask"
    return f"{' and '.join(kinds)} {read} only; save {'the frames' if len(frames) > 1 else 'the frame'} as PNG"


def _find_masks(folder: Path, composites: list[Path], what: str = "mask") -> list[Path]:
    """Each composite's mask in ``folder``: the one of the same name (x.jpg's own), else of the same stem. One
    error names every composite without one."""
    by_name, by_stem, by_folded_name, by_folded_stem = {}, {}, {}, {}
    # where the folder tells names apart by case, another composite's own mask (img_0001.jpg's) is no folded match
    names, stems = ({c.name for c in composites}, {c.stem for c in composites}) if not folds_names(folder) else ((), ())
    for m in [*_pictures(folder), *_pictures(folder, MASK_ONLY)]:  # a.png before a.gif, a preview beside it
        by_name[m.name] = m
        by_stem.setdefault(m.stem, m)
        if m.name in names or m.stem in stems:
            continue
        by_folded_name.setdefault(folded_name(m.name), m)  # IMG_0001.JPG's img_0001.png, when no name matches as it is
        by_folded_stem.setdefault(folded_name(m.stem), m)
    found = [by_name.get(c.name) or by_stem.get(c.stem) or by_folded_name.get(folded_name(c.name))
             or by_folded_stem.get(folded_name(c.stem)) for c in composites]
    missing = [c for c, m in zip(composites, found) if m is None]
    if missing:
        stems = list(dict.fromkeys(c.stem for c in missing))  # x.png and x.jpg look for the same x.*
        names = ", ".join(f"{stem}.*" for stem in stems[:10]) + (f" and {len(stems) - 10} more"
                                                                 if len(stems) > 10 else "")
        raise SystemExit(f"error: no {what} named {names} in {folder} ({len(missing)} of {len(composites)} "
                         "composites); name each mask like its composite")
    return found


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: the same for every name of it, hard links included; None where the
    file system has no inode numbers (0 for every file: some network drives and cloud folders)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


def _check_targets(jobs: list[_Job], fold: Callable[[str], str] = str) -> None:
    """No output is an input (by path or by identity: a hard link is the same file), and no two outputs collide
    (compared by ``fold``: :func:`folded_name` where the output folder has every case of a name as one file)."""
    inputs = {p.resolve() for job in jobs for p in job.inputs}
    input_ids = {_identity(p) for job in jobs for p in job.inputs} - {None}
    seen: dict[str, tuple[Path, str, str]] = {}  # by folded path where one file has every case of its name
    writes = [(t, job.composite, option) for job in jobs
              for t, option in ((job.target, "-o"), (job.compare, "--compare")) if t is not None]
    for target, source, option in writes:
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise SystemExit(
                f"error: cannot write an image named {target.name} ({option}): use one of "
                f"{', '.join(IMAGE_SUFFIXES)}" + (", or end -o with / for a folder" if option == "-o" else "")
            )
        resolved = target.resolve()
        if resolved in inputs or _identity(target) in input_ids:
            raise SystemExit(f"error: refusing to overwrite the input {target}; choose another {option}")
        key = fold(str(resolved))
        case = ("" if key not in seen or seen[key][2] == str(resolved) else
                " (names that differ only in case are one file on Windows and macOS)")
        if key in seen and seen[key][0] == source:
            raise SystemExit(f"error: -o and --compare are both {target}{case}; give --compare another name")
        if key in seen:
            raise SystemExit(f"error: {seen[key][0]} and {source} would both be written to {target}{case}")
        seen[key] = source, option, str(resolved)


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF"}
_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True, "exact": True}}
_NO_ALPHA = ("JPEG", "BMP")  # PIL writes BMP's alpha but reads it back (as most viewers do) as RGB


def _transparent_into_no_alpha(job: _Job) -> bool:
    """Would the result keep the composite's not-opaque alpha (a MASK is given), in a format without one?"""
    if job.mask is None or _FORMATS[job.target.suffix.lower()] not in _NO_ALPHA:
        return False
    from .imageio.decode import sixteen_bit_colour_mode

    try:
        with quiet_open(job.composite) as image:
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                sixteen = sixteen_bit_colour_mode(image) is not None  # (PIL shows such an alpha's high byte)
                if image.convert("RGBA").getchannel("A").getextrema()[0] < 255:
                    return True
                if not sixteen:
                    return False
            elif "transparency" not in image.info and image.mode not in ("La", "RGBa"):
                return False
        # a key colour of 16 bits (PIL compares its low byte with 8-bit pixels), a premultiplied alpha, an alpha
        # at 16 bits: as read, and as _save brings it to 8 bits
        from .imageio import read_image

        pixels = read_image(job.composite)
        return pixels.ndim == 3 and pixels.shape[-1] == 4 and int(_eight_bit(pixels[..., 3]).min()) < 255
    except Exception:  # an unreadable file, a decompression bomb: reported when the job runs
        return False


def _eight_bit(array: np.ndarray) -> np.ndarray:
    """A result (uint16, or float 0..1) at 8 bits, converted in bands: a whole-picture float64 quotient cost
    1.5 GB at 8K."""
    import torch

    from .fullres import to_uint8

    if array.dtype == np.uint8:
        return array
    peak = 65535.0 if array.dtype == np.uint16 else 1.0
    return to_uint8(torch.from_numpy(np.ascontiguousarray(array)), peak).numpy()


def _save(result: np.ndarray, target: Path, keep: dict) -> list[str]:
    """:func:`_write` of an array, at 8 bits per channel."""
    from PIL import Image

    result = _eight_bit(result)
    if result.ndim == 3 and result.shape[-1] == 4 and _FORMATS[target.suffix.lower()] in _NO_ALPHA:
        if int(result[..., 3].min()) < 255:  # (_transparent_into_no_alpha refuses such a composite before the work)
            raise ValueError(f"the result has transparent pixels, which {target.name} cannot hold; write it as .png, "
                             ".webp or .tif")
        result = result[..., :3]
    return _write(Image.fromarray(result), target, keep)


JPEG_EXIF_BYTES = 65533  # one APP1 segment, less its "Exif\0\0" header: Pillow refuses more after the work
JPEG_XMP_BYTES = 65504  # one APP1 segment, less the XMP namespace that heads it
XMP_KEY = "XML:com.adobe.xmp"  # a PNG's XMP: an iTXt chunk of this name


def _xmp_text(data: bytes) -> str | None:
    """An XMP packet's bytes as text for a PNG's iTXt chunk (UTF-8), read by its byte-order mark; None if they
    are no text."""
    for mark, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                        (b"\xfe\xff", "utf-16")):
        if data.startswith(mark):
            break
    else:  # no mark first (it may stand in the packet's begin="…"): told by where the first '<' has its zeros
        codec = {b"<\x00\x00\x00": "utf-32-le", b"\x00\x00\x00<": "utf-32-be"}.get(data[:4]) or \
            {b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}.get(data[:2], "utf-8")
    try:
        text = data.decode(codec).lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _describes_srgb(colour: dict) -> bool:
    """Whether a PNG's colour chunks say sRGB, as a file without them is read: an sRGB chunk, or a gamma of
    1/2.2 with sRGB's primaries or none given."""
    if "srgb" in colour:
        return True
    gamma_ok = abs(float(colour.get("gamma", 0.45455)) - 0.45455) < 0.001
    primaries = colour.get("chromaticity")
    srgb = (0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06)
    return gamma_ok and (primaries is None or all(abs(float(a) - b) < 0.002 for a, b in zip(primaries, srgb)))


def _pillow_writes_jpeg_xmp() -> bool:
    import PIL

    return int(PIL.__version__.split(".")[0]) >= 11


def _write(picture, target: Path, keep: dict) -> list[str]:
    """Save a PIL picture to ``target`` whole or not at all, with what of ``keep`` (see ``read_picture``) its
    format holds and what still describes it: an ICC profile only where it describes the picture's colours (not
    a grey or CMYK one on RGB), PNG text in a PNG. Returns what was left out, a phrase each."""
    fmt = _FORMATS[target.suffix.lower()]
    options, left = dict(_OPTIONS.get(fmt, {})), []
    profile = keep.get("icc_profile")
    if profile:
        space = b"GRAY" if picture.mode in ("L", "LA") else b"RGB "
        kind = profile[16:20].decode("ascii", "replace").strip()
        if fmt == "BMP":
            left.append(f"the {kind} colour profile, which BMP cannot hold")
        elif profile[16:20] != space:
            left.append(f"the {kind} colour profile, which does not describe the {picture.mode} result")
        else:
            options["icc_profile"] = profile
    if keep.get("exif"):
        if fmt == "BMP":
            left.append("the EXIF, which BMP cannot hold")
        elif fmt == "JPEG" and len(keep["exif"]) > JPEG_EXIF_BYTES:
            left.append(f"the EXIF ({len(keep['exif']) // 1024} KB), more than a JPEG holds (64 KB)")
        else:
            options["exif"] = keep["exif"]
    if keep.get("dpi"):
        if fmt == "WEBP" and not (keep.get("exif") and _exif_resolution(keep["exif"])):  # the EXIF carries it
            left.append(f"the resolution ({keep['dpi'][0]:.0f} dpi), which WebP cannot hold")
        elif fmt == "JPEG" and max(keep["dpi"]) > 65535.5:  # (PIL wrote its remainder past 65536)
            if not ("exif" in options and _exif_resolution(options["exif"])):  # the EXIF written carries it
                left.append(f"the resolution ({max(keep['dpi']):.0f} dpi), more than a JPEG's header holds (65535)")
        else:
            options["dpi"] = keep["dpi"]
    colour = keep.get("png_colour")
    if colour and fmt != "PNG" and not _describes_srgb(colour):  # (a file without a profile is read as sRGB)
        left.append(f"the PNG colour chunks ({', '.join(_PNG_COLOUR[k][0] for k in colour)}), which only a .png "
                    "holds")
    data = keep.get("xmp")
    xmp = _xmp_text(data) if data and fmt == "PNG" else None
    if data and fmt == "PNG" and xmp is None:
        left.append("the XMP metadata, which is not text a PNG's XMP chunk holds (UTF-8, -16 or -32)")
    if fmt == "PNG" and (colour or keep.get("text") or xmp):
        options["pnginfo"] = _png_text(keep.get("text", {}), colour, xmp)
    elif keep.get("text"):
        left.append(f"the PNG text ({', '.join(keep['text'])}), which only a .png holds")
    if data and fmt != "PNG":
        if fmt == "BMP":
            left.append("the XMP metadata, which BMP cannot hold")
        elif fmt == "JPEG" and len(data) > JPEG_XMP_BYTES:
            left.append(f"the XMP metadata ({len(data)} bytes), more than a JPEG segment holds ({JPEG_XMP_BYTES})")
        elif fmt == "JPEG" and not _pillow_writes_jpeg_xmp():  # its APP1 segment, as Pillow 11 writes it
            options["extra"] = b"\xff\xe1" + struct.pack(">H", 2 + len(JPEG_XMP) + len(data)) + JPEG_XMP + data
        elif fmt == "TIFF":  # a TIFF's XMP is a tag of its first directory, written with the EXIF's
            from PIL import Image

            tags = Image.Exif()
            if "exif" in options:
                tags.load(options["exif"])
            tags[700] = data
            options["exif"] = tags.tobytes()
        else:
            options["xmp"] = data
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(target, lambda tmp: picture.save(tmp, format=fmt, **options))
    except (OSError, ValueError) as e:  # an encoder's words ("encoding error 5") name no file
        if str(target) in str(e):
            raise
        raise type(e)(f"cannot write {target}: {e}") from None
    return left


def _without_resolution(exif: bytes) -> bytes:
    """An EXIF block without the picture's resolution (XResolution, YResolution, ResolutionUnit): a comparison
    is no print."""
    from PIL import Image

    tags = Image.Exif()
    try:
        tags.load(exif)
        for tag in {0x011A, 0x011B, 0x0128}.intersection(tags):
            del tags[tag]
        return tags.tobytes()
    except Exception:  # a broken block: it carries nothing a reader could use
        return exif


def _exif_resolution(exif: bytes) -> bool:
    """Whether an EXIF block holds the picture's resolution (XResolution)."""
    from PIL import Image

    tags = Image.Exif()
    try:
        tags.load(exif)
    except Exception:  # a broken block: it carries nothing a reader could use
        return False
    return 0x011A in tags


_PNG_COLOUR = {"gamma": ("gAMA", lambda v: struct.pack(">I", round(float(v) * 100000))),
               "chromaticity": ("cHRM", lambda v: struct.pack(">8I", *(round(float(x) * 100000) for x in v))),
               "srgb": ("sRGB", lambda v: bytes([int(v)]))}


def _png_text(text: dict, colour: dict | None = None, xmp: str | None = None):
    """PNG chunks: ``text`` (tEXt, or iTXt where a value is not Latin-1), the ``colour`` chunks of
    ``read_picture``'s ``png_colour``, and ``xmp`` as the XMP specification's iTXt chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (colour or {}).items():
        with contextlib.suppress(TypeError, ValueError, struct.error):  # a malformed chunk read is not written
            name, pack = _PNG_COLOUR[key]
            info.add(name.encode("ascii"), pack(value))
    for key, value in text.items():
        info.add_text(key, value)
    if xmp:
        info.add_itxt(XMP_KEY, xmp)
    return info


def _left_out(target: Path, composite: Path, left: list[str]) -> str:
    return f"note: from {composite}, {target} leaves out {'; and '.join(left)}"


def _verdict(corrections, harmonizer, unit: str = "images") -> str:
    """How much the subject changed, and what to do when the do-no-harm threshold left it as it was."""
    from .corrections import OFFICIAL_HINT, report, weights_hint

    return report(corrections, "--threshold 0", weights_hint(harmonizer.config.name, f"--weights {OFFICIAL_HINT}"),
                  unit)


def _harmonize_one(harmonizer, job: _Job, args: argparse.Namespace, say) -> None:
    image, mask, keep = _load_pair(job.composite, job.mask, as_given=args.mask_as_given)
    reference = _reference_for(job, image.shape)
    result, corrections = harmonizer.harmonize(image, mask, strength=args.strength, mode=args.mode,
                                               working_size=args.working_size, reference_mask=reference,
                                               threshold=args.threshold, mask_is_alpha=args.mask_is_alpha)
    left = _save(result, job.target, keep)
    compare_left = _compare(job, image, result, mask, corrections, keep)  # the files first, then the words
    say(f"{job.composite.name}: {_verdict(corrections, harmonizer)}")
    turned = _orientation_note(job, image.shape[:2])
    if turned:
        say(turned)
    if image.dtype != np.uint8:
        say(f"note: {job.composite} is {_depth(image)}; {job.target} is written with 8 bits per channel")
    if keep.get("read_at_8_bits"):
        say(f"note: {job.composite} holds 16 bits per channel in a layout read at 8 bits (premultiplied alpha, "
            "padding, separate planes, grey with alpha, or PPM colour): it was harmonized at 8 bits; save it as a "
            "plain 16-bit RGB or RGBA PNG or TIFF to keep them")
    if left:
        say(_left_out(job.target, job.composite, left))
    if compare_left:
        say(_left_out(job.compare, job.composite, compare_left))


def _compare(job: _Job, image, result, mask, corrections, keep: dict) -> list[str]:
    """The job's before/after picture, if asked for; what of the composite's metadata it leaves out."""
    if job.compare is None:
        return []
    from PIL import Image

    from .visualize import before_after

    m = Image.fromarray(_eight_bit(mask))
    kept = {k: v for k, v in keep.items() if k not in ("text", "dpi")}  # no generator's picture, no print
    if "exif" in kept:
        kept["exif"] = _without_resolution(kept["exif"])
    return _write(before_after(Image.fromarray(_eight_bit(image)), Image.fromarray(_eight_bit(result)), m,
                               after_label=corrections[0].label()), job.compare, kept)


def _natural_key(path: Path) -> list:
    # isdecimal, as \d reads: '²' is a digit to isdigit(), not a number to int()
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _reference_for(job: _Job, shape: tuple[int, ...]) -> np.ndarray | None:
    """The reference mask of one composite (planned by _plan), decoded, of the composite's H×W ``shape``."""
    from .imageio import read_mask

    if job.reference is None:
        return None
    reference = read_mask(job.reference, "reference mask", "the region to match")
    _check_size("reference mask", job.reference, reference.shape, job.composite, shape,
                "draw it on the composite, or resize it to it")
    return reference


def _clip_levels(jobs: list[_Job]) -> bool:
    """Whether a clip's mask files (or alphas) are read on their dtype's scale (``levels``), as the library reads a
    clip's masks on one scale: a frame whose values stop at 1 (a matte's specks once the subject left) is 1/255
    when another frame's go higher, not a 0/1 mask."""
    from .imageio.masks import integer_levels_above_one

    return any(integer_levels_above_one(job.mask) if job.mask is not None else
               integer_levels_above_one(job.composite, alpha=True) for job in jobs)


def _refuse_inverted_clip(jobs: list[_Job]) -> None:
    """A clip whose mask files mostly look inverted is refused before any frame is harmonized, as the Harmonize
    Frames node refuses it: judged as a whole (``mask_tools.inverted_masks``), since a frame may rightly be mostly
    subject. Only the mask files are read, one at a time, and no further than a clip that cannot be refused (a
    refused one is read to its end, to count its inverted masks)."""
    from tqdm import tqdm

    from .imageio import read_mask
    from .mask_tools import inverted_masks

    jobs = sorted((job for job in jobs if job.mask is not None), key=lambda job: _natural_key(job.composite))
    levels = _clip_levels(jobs)

    def masks(bar):
        for job in jobs:
            try:
                mask = read_mask(job.mask, levels=levels)
            except (ValueError, OSError):  # its frame's own read names it, and leaves it out
                mask = np.zeros((1, 1), np.float32)
            bar.update(1)
            yield mask

    # a short clip's check says nothing; a long one's (4K masks are read at some 15 a second) shows its progress
    with tqdm(total=len(jobs), desc="checking masks", unit="mask", leave=False, delay=_CHECK_DELAY,
              disable=sys.stderr is None) as bar:
        inverted = inverted_masks(masks(bar), clip=True, total=len(jobs))
    if not inverted:
        return
    i, area, border = inverted[0]
    if len(jobs) > 1:
        raise SystemExit(f"error: {len(inverted)} of the {len(jobs)} frames' masks cover most of the picture and of "
                         f"its border ({jobs[i].mask}: {area:.0%} and {border:.0%}), so they look inverted: white "
                         "must mark the subject, black the background; invert them, or, if they are right "
                         "(subjects at the picture's sides), add --mask-as-given")
    raise SystemExit(f"error: {_inverted_words(jobs[i].mask, area, border)}")


def _harmonize_clip(harmonizer, jobs: list[_Job], args: argparse.Namespace) -> int:
    """Each frame is read twice: to estimate its correction, and to apply the smoothed one once it is final
    (a few frames later). Only the window's low-resolution corrections are held, whatever the clip's length."""
    import torch
    from tqdm import tqdm

    from . import temporal
    from .compositing import visible_scene
    from .corrections import MIN_BACKGROUND, TRANSPARENT_SCENE, Correction
    from .imageio import mask_to_tensor
    from .imageio.masks import FAINT

    cut = CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold
    settings = temporal.Temporal(window=args.temporal, cut_threshold=cut)
    size = harmonizer.check_options(args.strength, "full", args.working_size)  # one set of option rules
    jobs = sorted(jobs, key=lambda job: _natural_key(job.composite))

    def frame_of(image: np.ndarray, mask: np.ndarray):
        """(its pixels H×W×C, their peak, the mask H×W, its peak, finish(out) → the picture to save, in the kind
        every frame is saved as: a grey clip comes out RGB throughout). A frame's mask may cover it whole, only an
        edge of it (a subject walking in), or none of it: the clip is judged as a whole."""
        pixels, peak, masks, mask_peak, finish = harmonizer.pixels_of(image, mask, one_of_more=True, allow_empty=True)
        return pixels[0], peak, masks[0], mask_peak, lambda out: finish(out[None])

    levels = _clip_levels(jobs)
    smoother = temporal.Smoother(settings)
    frames: list[_Job] = []  # the frames the smoother holds, by its index
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

    def save(result: np.ndarray, job: _Job, keep: dict, image: np.ndarray) -> None:
        left_out.update(_save(result, job.target, keep))
        if image.dtype != np.uint8:
            sixteen_bit.append(job.composite.name)
        if keep.get("read_at_8_bits"):
            eight_of_sixteen.append(job.composite.name)
        bar.update(1)

    def fail(job: _Job, e: Exception) -> None:  # this frame is bad; the others may not be
        named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
        _say(f"error: {named}", sys.stderr)
        failed.append(job.composite)
        bar.update(1)

    def write(ready) -> None:
        for j, correction in ready:
            frame = held.pop(j)
            try:
                image, mask, keep = _load_pair(frames[j].composite, frames[j].mask, levels, clip=True)
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
                fail(frames[j], _memory_advice(e))

    for job in jobs:
        try:
            image, mask, keep = _load_pair(job.composite, job.mask, levels, clip=True)
            if _orientation_note(job, image.shape[:2]):
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
            reference = _reference_for(job, image.shape)
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
            fail(job, _memory_advice(e))
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
        line = _verdict(corrections, harmonizer, "frames")
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
        failed.sort(key=_natural_key)  # a frame failing as it is written is found a few frames late
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


def harmonize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .harmonizer import Harmonizer

    jobs = _plan(Path(args.composite), Path(args.mask) if args.mask else None, args.output, args.compare,
                 args.reference, clip=args.temporal is not None)
    single = Path(args.composite).is_file()
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
    named = () if not single else ("--compare",) if _is_folder_target(args.output) else ("-o", "--compare")
    _check_writable(jobs, named)
    if single:
        _check_format_limits(jobs[0])
    for job in jobs:
        if _transparent_into_no_alpha(job):
            raise SystemExit(f"error: {job.composite} has transparent pixels, which {job.target.name} cannot hold; "
                             "write the result as .png, .webp or .tif")
    if args.temporal is not None:  # its settings' own checks, before the weights load
        from .temporal import Temporal

        cut = CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold
        Temporal(window=args.temporal, cut_threshold=cut)
    if args.reference and args.mode != "full":
        raise SystemExit("error: --reference works with --mode full only")
    if args.method is not None and args.mode != "full":  # the official pipeline resizes the whole blend back
        raise SystemExit("error: --method works with --mode full only (--mode official always resizes the whole "
                         "picture back)")
    if args.mask_is_alpha and not carries_soft_edges(args.mode, args.method or "correction"):
        raise SystemExit(MASK_IS_ALPHA_UNUSED)
    _check_device(args.device)
    if args.temporal is not None and not args.mask_as_given:  # (reads every mask: after the cheap checks)
        _refuse_inverted_clip(jobs)
    harmonizer = Harmonizer.from_pretrained(
        args.weights, revision=args.revision, device=args.device, dtype=args.dtype,
        method=args.method or "correction")
    if args.mask_is_alpha and not harmonizer.carries_soft_edges(args.mode):
        raise SystemExit(MASK_IS_ALPHA_UNUSED + " (these weights map the subject's colours as a whole)")
    from . import precision

    slow = precision.slow_on(harmonizer.dtype, harmonizer.device)  # the library logs it, which the CLI keeps quiet
    if slow:
        print(f"warning: {slow}", file=sys.stderr)
    if args.temporal is not None:
        return _harmonize_clip(harmonizer, jobs, args)
    try:  # once, not in every picture's words
        harmonizer.check_options(args.strength, args.mode, args.working_size)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    failed: list[Path] = []
    for job in tqdm(jobs, desc="harmonizing", unit="image", disable=single or sys.stderr is None):
        try:
            _harmonize_one(harmonizer, job, args, _say)
        except (ValueError, OSError, MemoryError, RuntimeError) as e:  # this file is bad; the others may not be
            if isinstance(e, RuntimeError) and not out_of_memory(e):
                raise
            e = _memory_advice(e)
            if single:
                raise SystemExit(f"error: {e}") from None
            named = str(e) if str(job.composite) in str(e) else f"{job.composite}: {e}"
            _say(f"error: {named}", sys.stderr)
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


_NO_MEMORY = re.compile(r"out of memory|can't allocate memory")  # CUDA's, NCCL's; torch's CPU allocator's
_WORKER_NO_MEMORY = re.compile(r"Caught \w*MemoryError in DataLoader worker")  # (numpy's _ArrayMemoryError too)


def out_of_memory(error: BaseException) -> bool:
    """A CPU or GPU allocation that failed: a MemoryError, an OSError of errno ENOMEM, or torch's RuntimeError
    saying so (CUDA's is a subclass of it). A data-loader worker's error comes as a RuntimeError quoting its
    traceback: it counts by what the worker caught, not by the words of the code it quotes."""
    if isinstance(error, MemoryError) or (isinstance(error, OSError) and error.errno == errno.ENOMEM):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    if "Original Traceback" in text:
        return _WORKER_NO_MEMORY.match(text) is not None or _NO_MEMORY.search(error_line(error)) is not None
    return _NO_MEMORY.search(text) is not None


def error_line(error: BaseException) -> str:
    """The error's first line, or the wrapped error's own message where a data-loader worker passed it on
    ("Caught X in DataLoader worker process 0. Original Traceback ... X: message")."""
    text = str(error).strip()
    if "Original Traceback" in text:
        return text.splitlines()[-1].split(": ", 1)[-1]
    return (text.splitlines() or [type(error).__name__])[0]


def _memory_advice(error: BaseException) -> BaseException:
    """An allocation failure as a ValueError that says what to do; any other error as it is."""
    if not out_of_memory(error):
        return error
    first = error_line(error)
    return ValueError(f"not enough memory for this picture ({first}): close other programs, or resize it")


def _weights_kind(weights: str | None) -> str | None:
    from .sources import resolve

    try:
        return resolve(weights).kind
    except FileNotFoundError:
        return None  # the load says what is wrong with it


FORMAT_SIDES = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500}  # the longest side each format can store (libjpeg's)


def _check_format_limits(job: _Job) -> None:
    """A result or --compare picture too large for its format (WebP: 16383 px a side) is named before the work,
    not with the encoder's words after it. A file PIL cannot read yet is left to the run to name."""
    from .imageio.decode import upright_size
    from .visualize import COMPARE_HEIGHT

    try:
        with quiet_open(job.composite) as picture:
            width, height = upright_size(picture)
    except Exception:
        return
    scale = min(1.0, COMPARE_HEIGHT / height)
    sides = [(job.target, "-o", (width, height))]
    if job.compare is not None:
        sides.append((job.compare, "--compare", (2 * max(1, round(width * scale)) + 8, round(height * scale) + 28)))
    for target, option, (w, h) in sides:
        limit = FORMAT_SIDES.get(target.suffix.lower())
        if limit is not None and max(w, h) > limit:
            raise SystemExit(f"error: {option} {target.name} would be {w}x{h} pixels, more than "
                             f"{target.suffix.lower()} can store ({limit} a side): write it as .png or .tif")


def _check_writable(jobs: list[_Job], given: tuple[str, ...] = ("-o", "--compare")) -> None:
    """Every folder an output goes to takes a file, and every output's name fits there, before any picture is
    computed (a read-only folder failed each picture in turn, naming a hidden temporary file). ``given``: the
    options whose file names were typed; the others' are made of the composites' names (a folder run's)."""
    folders: dict[Path, list[tuple[Path, str, Path]]] = {}
    for job in jobs:
        for target, option in ((job.target, "-o"), (job.compare, "--compare")):
            if target is None:
                continue
            if os.path.isdir(target):  # (os.path: Path.is_dir raises on a name too long for the file system)
                raise SystemExit(f"error: {target} is a folder ({option}); give a file name, or another {option}")
            if os.path.exists(target) and not os.access(target, os.W_OK):
                raise SystemExit(f"error: {target} is read-only ({option}); make it writable, or choose another "
                                 f"{option}")
            folders.setdefault(target.parent, []).append((target, option, job.composite))
    for folder, targets in sorted(folders.items()):
        link = dangling_link(folder)
        if link is not None:
            option = targets[0][1]
            raise SystemExit(f"error: {option} {link} links to {os.readlink(link)}, which does not exist (an unmounted "
                             f"drive?); connect it, or choose another {option}")
        _check_name_lengths(targets, _nearest_existing(folder), given)
        problem = cannot_write_into(folder)
        if problem:
            raise SystemExit(f"error: {problem}; choose another {targets[0][1]}")


def _nearest_existing(folder: Path) -> Path:
    """``folder``, or where it does not exist yet (-o creates it), the nearest folder above it."""
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def cannot_write_into(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or, where it does not exist yet, in the nearest folder above it,
    where it will be created), or None where one can."""
    import tempfile

    existing = _nearest_existing(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".phnet-write-check-")
    except OSError as e:
        return f"cannot write into {existing} ({e.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None


def _check_name_lengths(targets: list[tuple[Path, str, Path]], folder: Path, given: tuple[str, ...]) -> None:
    """Each of ``targets`` (target, option, composite) has a name ``folder``'s file system takes: 255 UTF-16 units
    on Windows and macOS, else its own limit in bytes (a result named NAME_compare or NAME_jpg passed it after the
    work)."""
    limit, unit = 255, "characters"
    utf16 = os.name == "nt" or sys.platform == "darwin"
    if not utf16:
        unit = "bytes"
        with contextlib.suppress(OSError, ValueError, AttributeError):  # (no pathconf, or a file system that says not)
            limit = os.pathconf(folder, "PC_NAME_MAX")
    for target, option, composite in targets:
        length = len(target.name.encode("utf-16-le")) // 2 if utf16 else len(os.fsencode(target.name))
        if 0 < limit < length and option in given:
            raise SystemExit(f"error: {option} {target.name} is {length} {unit} long, more than the {limit} a file "
                             f"name may have there; choose a shorter {option}")
        if 0 < limit < length:
            kind = "result" if option == "-o" else "comparison"
            raise SystemExit(f"error: the {kind} of {composite} would be named {target.name}, {length} {unit}, more "
                             f"than the {limit} a file name may have there; give {composite.name} a shorter name")


def _check_device(device: str | None) -> None:
    """--device names a device torch has here (the library would end in torch's own traceback)."""
    from .harmonizer import device_problem

    problem = device_problem(device) if device is not None else None
    if problem:
        raise SystemExit(f"error: --device {device}: {problem}")


def convert(args: argparse.Namespace) -> int:
    from .weights import (carries_official_terms, check_upload, convert_official, is_official_file_name, push_to_hub,
                          upload_failed)

    if args.push_to_hub:
        check_upload(args.push_to_hub)
    model = convert_official(args.checkpoint, args.out_dir, config=args.config, overwrite=args.overwrite)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out_dir}/config.json + model.safetensors ({model.config.name}, {n:,} parameters)")
    official = is_official_file_name(Path(args.checkpoint).name)
    if not official and not carries_official_terms(model.config):
        print("not an official file name: no licence file was written; add the terms of these weights yourself",
              file=sys.stderr)
    if args.push_to_hub:
        try:
            url = push_to_hub(model, args.push_to_hub, base_model=Path(args.checkpoint).name if official else None)
        except Exception as e:  # the Hub's errors are many; the converted weights are saved either way
            print(f"error: {upload_failed(args.push_to_hub, e)}; the converted weights are in {args.out_dir}: check "
                  f"the network and `{hub_command('auth login')}` (or HF_TOKEN), and push them with python -m "
                  f"trainer.push {args.out_dir} {args.push_to_hub}", file=sys.stderr)
            return 1
        print(f"uploaded to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phnet", description="PHNet portrait harmonization")
    parser.add_argument("--version", action=_Versions, nargs=0, default=argparse.SUPPRESS,
                        help="print the versions of phnet, torch and Python (for a bug report) and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    h = sub.add_parser("harmonize", help="harmonize a composite (or a folder of them) given the subject mask")
    h.add_argument("composite", help="composite image, or a folder of them")
    h.add_argument("mask", nargs="?", help="subject mask (white = subject), or a folder; default: the alpha channel")
    h.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, .tif, .bmp), or a folder "
                   "(ending in /, an existing folder, or a name without an extension; created if needed) that gets "
                   "NAME.png for each composite NAME.*")
    h.add_argument("--weights", help="weights file, model folder, Hub repo id owner/name[@revision][:FILE in the "
                   f"repo], or official weights by name ({', '.join(OFFICIAL_NAMES)}: downloaded on first use, "
                   "under the authors' CC BY-SA 4.0-variant licence; the ffhqh ones also under FFHQ's "
                   "non-commercial terms) (default: the bundled weights, offline, tuned to do no harm)")
    h.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    h.add_argument("--mask-as-given", action="store_true",
                   help="use a mask that covers most of the picture and of its border with a hole in the middle, "
                   "which is refused as looking inverted (with --temporal, when most frames' masks do; subjects at "
                   "both sides of the picture look the same)")
    h.add_argument("--mask-is-alpha", action="store_true",
                   help="the subject was pasted with this mask as its alpha (its soft edge mixes subject and "
                   "background), so that edge gets its whole change; without it a soft edge is read as a feather "
                   "(methods correction and guided; on a feathered mask it undoes the feather)")
    h.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = full harmonization")
    h.add_argument("--threshold", type=float, metavar="RMS",
                   help="do-no-harm threshold (0-255 RMS) instead of the weights' own: corrections smaller than it "
                   "are dropped (the bundled weights keep part of them), those just above it shortened. Lower "
                   "it to apply more of each correction (0 = the raw network, which may harm near-right composites; "
                   "a subject with under 3%% background stays as it was); raise it to hold back all but large ones")
    h.add_argument("--mode", choices=MODES, default="full", help="full resolution (default) or the official square pipeline")
    h.add_argument("--method", choices=METHODS, help="how the result reaches full resolution (mode full; default "
                   "correction)")
    h.add_argument("--working-size", type=int, help="override the network's working resolution (a multiple of 8 from 16)")
    h.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    h.add_argument("--dtype", choices=PRECISIONS, default="auto",
                   help="compute precision; auto (default) = bf16 on CPUs with AMX, else fp32")
    h.add_argument("--compare", help="also write a before/after comparison image here (with a folder of "
                   "composites: any value writes NAME_compare.png beside each result; not with --temporal)")
    h.add_argument("--reference", help="mask of the background region the subject should match (white = match "
                   "this), or a folder of them named like the composites")
    h.add_argument("--temporal", type=float, nargs="?", const=TEMPORAL_SIGMA, metavar="SIGMA",
                   help="the folder is a clip (natural name order): smooth the correction with a Gaussian of SIGMA "
                   "frames (default 3; it reaches 3 SIGMA each way), never across a detected cut")
    h.add_argument("--cut-threshold", type=float, help="background change (above 0, in 0-255 "
                   "units) that counts as a cut in --temporal mode (default 20)")
    h.set_defaults(run=harmonize)

    c = sub.add_parser("convert", help="official .pth checkpoint to config.json + model.safetensors")
    c.add_argument("checkpoint")
    c.add_argument("out_dir")
    c.add_argument("--config", choices=OFFICIAL_PRESETS, help="architecture (default: inferred from shapes)")
    c.add_argument("--overwrite", action="store_true", help="replace the weights already in OUT_DIR")
    c.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted weights to this Hub repo")
    c.set_defaults(run=convert)
    parser.harmonize_parser = h  # parsed on its own in main(), options anywhere between its files
    return parser


def _check_quotes(argv: list[str], windows: bool = os.name == "nt") -> None:
    """Windows reads ``"C:\\out\\" --compare x`` as the one argument ``C:\\out" --compare x``: the backslash
    escapes the closing quote. No Windows path or option holds a ``"``, so an argument that does is this slip."""
    for value in argv if windows else ():
        if '"' in value:
            raise SystemExit(f"error: the argument {value} holds a quote: on Windows a backslash before a closing "
                             'quote escapes it, and what follows joins the argument. End the path without the '
                             'backslash ("C:\\out") or double it ("C:\\out\\\\")')


def _temporal_given_its_value(argv: list[str]) -> list[str]:
    """``--temporal`` followed by a folder, not a number, is the flag alone (its value is optional): argparse took
    the composites folder for its SIGMA when it was written first."""
    out = list(argv)
    for i, token in enumerate(argv):
        # (as argparse reads it, shortened too: --te, --temp; --t is also --threshold's)
        named = len(token) >= 4 and "--temporal".startswith(token)
        if named and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            try:
                float(argv[i + 1])
            except ValueError:
                out.insert(i + 1, str(TEMPORAL_SIGMA))
                break
    return out


def _after_double_dash(argv: list[str]) -> list[str]:
    """The names after ``--`` as paths argparse cannot take for options (``-c.png`` as ``./-c.png``): the
    intermixed parsing that lets options come between the names takes them for options otherwise. ``--`` stays:
    a name after it is never an option's value (``--temporal -- 5``, a clip folder named 5)."""
    if "--" not in argv:
        return argv
    at = argv.index("--")
    return argv[: at + 1] + [os.path.join(".", a) if a.startswith("-") else a for a in argv[at + 1:]]


class _Versions(argparse.Action):
    """phnet's version and those of what it runs on, on one line (argparse's own version action folds it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import platform
        from importlib import metadata

        import torch  # its own version names its build (+cu130, +cpu), which the package's does not

        from . import __version__

        found = [f"torch {torch.__version__}"]
        for name in ("torchvision", "numpy", "pillow"):
            try:
                found.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                found.append(f"{name} not found")
        print(f"phnet {__version__} ({', '.join(found)}; Python {platform.python_version()})")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _check_quotes(argv)
    parser = build_parser()
    if argv[:1] == ["harmonize"]:  # `a.png -o x.png mask.png` too: argparse's sub-parsers take no options there
        args = parser.harmonize_parser.parse_intermixed_args(_temporal_given_its_value(
            _after_double_dash(argv[1:])))
        args.command = "harmonize"
    else:
        args = parser.parse_args(argv)
    logger = logging.getLogger("phnet")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the CLI says per file what the library would log
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is not None:  # None under pythonw: nothing is shown, nothing to guard
        sys.stdout = _ReaderMayLeave(stdout)
    if stderr is not None:  # (the progress bar and each picture's error go there: `2>&1 | head` too)
        sys.stderr = _ReaderMayLeave(stderr)
    handlers = _stop_on_signals()
    try:
        with warnings.catch_warnings():  # a library warning reads as one line, like the CLI's own
            warnings.showwarning = lambda message, *rest, **kw: print(f"warning: {message}", file=sys.stderr)
            return args.run(args)
    except (ValueError, OSError) as e:  # bad weights or input, an unreachable Hub: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or a kill: every file is written whole or not at all
        print("interrupted; files written so far are complete", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        sys.stdout, sys.stderr = stdout, stderr
        logger.setLevel(level)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a kill, a closed terminal), raised where the run stands as Ctrl-C is: the file being
    written is removed, not left as a hidden temporary one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> dict:
    """Handlers for SIGTERM and SIGHUP that stop the run as Ctrl-C does; the ones they replace, to put back."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set them
        return {}
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        # only the default (the process dies): nohup's "ignore" and a caller's own handler stay as they are
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_stopped)
    return previous


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signum)


class _ReaderMayLeave:
    """stdout or stderr that goes quiet when its reader leaves (``phnet harmonize ... | head -1``): a closed pipe
    failed every later picture, though each was written, and ended the run without its summary."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._leave()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._leave()

    def _leave(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # Python's own flush at exit meets the pipe no more
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        self._stream = open(os.devnull, "w")  # the rest of the run writes to nothing

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def entry() -> None:
    """The ``phnet`` command. A refused input (a ``SystemExit`` carrying its message) exits with 2, as
    argparse's own errors and the library's refusals do; 1 stays for a run in which some files failed."""
    try:
        code = main()
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        print(e.code, file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    entry()
