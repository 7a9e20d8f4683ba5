"""Planning a run: which files it reads and writes, every one checked before any picture is computed."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple


from ..atomic import cannot_write_into, dangling_link, links_to_nothing, missing_target, nearest_existing
from ..imageio import IMAGE_SUFFIXES
from ..imageio.decode import (MASK_ONLY, NOT_A_FILE, UNOPENED_PHOTOS, folded_name, folds_names, quiet_open,
                              readable_suffixes)
from .saving import FORMATS, NO_ALPHA, eight_bit


class Job(NamedTuple):
    """One composite's files: those it reads (the composite, its mask or None for its alpha, its reference mask)
    and those it writes (the result, and a comparison where asked)."""

    composite: Path
    mask: Path | None
    target: Path
    compare: Path | None = None
    reference: Path | None = None

    @property
    def inputs(self) -> list[Path]:
        """The files this job reads: the composite, and its mask and reference mask where given."""
        return [p for p in (self.composite, self.mask, self.reference) if p is not None]


def _not_a_file(path: Path) -> str:
    """Why ``path``, given for a picture, is none: missing, a folder, or a pipe or device (read twice, so no)."""
    if path.is_dir():
        return "is a folder, not a file"
    if path.is_symlink() and not path.exists():
        return f"{links_to_nothing(path)}: connect it, or give another file"
    if path.exists():
        return f"is {NOT_A_FILE}"
    return "does not exist"


def is_folder_target(output: str) -> bool:
    """``-o results/``, an existing folder, or a name without an image extension: a folder."""
    return output.endswith(("/", os.sep)) or os.path.isdir(output) or not Path(output).suffix


def plan(composite: Path, mask: Path | None, output: str, compare: str | None = None,
          reference: str | None = None, clip: bool = False) -> list[Job]:
    """Every job of the run, its files checked before anything is computed or written. ``compare``: the
    comparison image of a single composite; in folder mode any value asks for ``<result>_compare.png``.
    ``reference``: one reference mask for every composite, or a folder of them named like the composites.
    ``clip``: the folder is a clip's frames, which may have no gap."""
    out = Path(output)
    if out.name.lower() in IMAGE_SUFFIXES and not (output.endswith(("/", os.sep)) or out.is_dir()):
        raise SystemExit(f"error: -o {output} is an extension without a name (an empty variable before it?), which "
                         f"would be a hidden folder: name the file, e.g. out{out.name}, or end -o with / for a folder")
    fold = folded_name if folds_names(out) else str  # how the output folder compares names
    if mask is not None and mask.exists() and composite.exists() and os.path.samefile(mask, composite):
        if composite.is_dir():
            raise SystemExit(f"error: the masks folder {mask} is the composites folder {composite} itself: give the "
                             "masks' folder (or none, where each composite's alpha is its mask)")
        raise SystemExit(f"error: the mask {mask} is the composite {composite} itself: give the mask's file (or none, "
                         "where the composite's alpha is the mask)")
    references = None if reference is None else Path(reference)
    if references is not None and not (references.is_file() or references.is_dir()):
        raise SystemExit(f"error: reference mask {reference} {_not_a_file(references)}")
    if composite.is_file():
        if mask is not None and not mask.is_file():
            raise SystemExit(f"error: mask {mask} {_not_a_file(mask)}")
        target = out / (composite.stem + ".png") if is_folder_target(output) else out  # as in folder mode
        jobs = [Job(composite, mask, target, Path(compare) if compare else None)]
    elif composite.is_dir():
        if mask is not None and not mask.exists():
            raise SystemExit(f"error: the masks folder {mask} does not exist")
        if mask is not None and not mask.is_dir():
            raise SystemExit("error: with a folder of composites, MASK must be a folder of masks with the same names")
        if not is_folder_target(output):
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
        special = _special_files(composite)
        if special and clip:
            raise SystemExit(f"error: a clip's frames may have no gap, and {composite} holds {special}")
        if special:
            print(f"note: left out {special}")
        masks: list[Path | None] = [None] * len(images)
        if mask is not None:
            found = find_masks(mask, images)
            masks = list(found)
            passed = _mask_only_frames(composite, mask, found)
            if passed and clip:
                raise SystemExit(f"error: {_mask_only_note(passed, mask)}, would leave a gap in the clip: "
                                 f"{_mask_only_fix(passed)}")
            if passed:
                print(f"note: left out {_mask_only_note(passed, mask)}: {_mask_only_fix(passed)}")
        names = _result_names(images, fold, bool(compare))
        jobs = [Job(path, paired, out / (names[path][0] + ".png"),
                     out / (names[path][1] + ".png") if compare else None)
                for path, paired in zip(images, masks)]
    else:
        raise SystemExit(f"error: {composite} {_not_a_file(composite)}")
    if references is not None:
        found = (find_masks(references, [job.composite for job in jobs], "reference mask") if references.is_dir()
                 else [references] * len(jobs))
        jobs = [job._replace(reference=r) for job, r in zip(jobs, found)]
    links = [p for job in jobs for p in job.inputs if not p.exists()] if clip else []  # frames, masks, references
    if links:
        raise SystemExit(f"error: a clip's frames may have no gap, and {missing_target(links[0])}: connect it, or "
                         "remove the link")
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
    over; or those with ``suffixes``), by name; hidden ones (macOS's ._name beside each file) are not pictures. A
    link to nothing is one, named as such when it is read (passed over, it went unnoticed)."""
    suffixes = readable_suffixes() if suffixes is None else suffixes
    return sorted(p for p in folder.iterdir() if (p.is_file() or p.is_symlink() and not p.exists())
                  and not p.name.startswith(".") and p.suffix.lower() in suffixes)


def _special_files(folder: Path) -> str:
    """The entries of ``folder`` named like pictures that are no files, nor folders (a pipe, a device: opened, one
    waits for a writer), named with the fix, or ""; passed over, they went unnoticed."""
    suffixes = readable_suffixes()
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in suffixes
                   and p.exists() and not (p.is_file() or p.is_dir()))
    if not names:
        return ""
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{shown}: {'they are' if len(names) > 1 else 'it is'} {NOT_A_FILE}"


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


def find_masks(folder: Path, composites: list[Path], what: str = "mask") -> list[Path]:
    """Each composite's mask in ``folder``: the one of the same name (x.jpg's own), else of the same stem. One
    error names every composite without one."""
    by_name: dict[str, Path] = {}
    by_stem: dict[str, Path] = {}
    by_folded_name: dict[str, Path] = {}
    by_folded_stem: dict[str, Path] = {}
    # where the folder tells names apart by case, another composite's own mask (img_0001.jpg's) is no folded match
    by_case = not folds_names(folder)
    names: set[str] = {c.name for c in composites} if by_case else set()
    stems: set[str] = {c.stem for c in composites} if by_case else set()
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
        wanted = list(dict.fromkeys(c.stem for c in missing))  # x.png and x.jpg look for the same x.*
        listed = ", ".join(f"{stem}.*" for stem in wanted[:10]) + (f" and {len(wanted) - 10} more"
                                                                   if len(wanted) > 10 else "")
        special = _special_files(folder)  # a mask there that is a pipe or a device is not missing: it is named
        raise SystemExit(f"error: no {what} named {listed} in {folder} ({len(missing)} of {len(composites)} "
                         "composites); name each mask like its composite" + (f"; {folder} holds {special}" if special
                                                                              else ""))
    return [m for m in found if m is not None]  # (every one, by now)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: the same for every name of it, hard links included; None where the
    file system has no inode numbers (0 for every file: some network drives and cloud folders)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


def _check_targets(jobs: list[Job], fold: Callable[[str], str] = str) -> None:
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


def transparent_into_no_alpha(job: Job) -> bool:
    """Would the result keep the composite's not-opaque alpha (a MASK is given), in a format without one?"""
    if job.mask is None or FORMATS[job.target.suffix.lower()] not in NO_ALPHA:
        return False
    from ..imageio.decode import sixteen_bit_colour_mode

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
        # at 16 bits: as read, and as save_result brings it to 8 bits
        from ..imageio import read_image

        pixels = read_image(job.composite)
        return pixels.ndim == 3 and pixels.shape[-1] == 4 and int(eight_bit(pixels[..., 3]).min()) < 255
    except Exception:  # an unreadable file, a decompression bomb: reported when the job runs
        return False


FORMAT_SIDES = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500}  # the longest side each format can store (libjpeg's)


def check_format_limits(job: Job) -> None:
    """A result or --compare picture too large for its format (WebP: 16383 px a side) is named before the work,
    not with the encoder's words after it. A file PIL cannot read yet is left to the run to name."""
    from ..imageio.orientation import upright_size
    from ..visualize import COMPARE_HEIGHT

    if not any(t is not None and t.suffix.lower() in FORMAT_SIDES for t in (job.target, job.compare)):
        return  # (a PNG without an eXIf chunk before its pixels is decoded whole to read its orientation)
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


def check_writable(jobs: list[Job], given: tuple[str, ...] = ("-o", "--compare")) -> None:
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
            raise SystemExit(f"error: {option} {missing_target(link)}; connect it, or choose another {option}")
        _check_name_lengths(targets, nearest_existing(folder), given)
        problem = cannot_write_into(folder)
        if problem:
            raise SystemExit(f"error: {problem}; choose another {targets[0][1]}")


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
