"""Shared pieces of the data sets: file reading, bad-sample policy, geometry, batching."""
from __future__ import annotations

import math
import os
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from phnet.corrections import MIN_BACKGROUND
from phnet.imageio import image_to_array, image_to_uint8, read_image, read_mask
from phnet.imageio.decode import MASK_ONLY, readable_suffixes
from phnet.imageio.masks import FAINT
from trainer.builders.held_out import refuse_reserved

IMAGE_EXTENSIONS = readable_suffixes()  # the files the trainer lists as pictures: the ones phnet.imageio reads
MASK_EXTENSIONS = IMAGE_EXTENSIONS + MASK_ONLY  # and as masks, as the CLI does
RESIZE_MODES = ("stretch", "crop", "pad", "none")


class BadSampleError(ValueError):
    """A sample that cannot be used; the message names the offending file."""


@dataclass
class Record:
    """One sample on disk. ``comp`` is None when the composite is synthesised on the fly."""
    name: str
    real: Path
    mask: Path | None = None
    comp: Path | None = None
    subset: str = ""


def composite_and_mask(record: Record) -> tuple[Path, Path]:
    """A ready set's record: the composite and mask it reads, refused by name where the record lacks them."""
    if record.comp is None or record.mask is None:
        lacks = " and no ".join(what for what, path in (("composite", record.comp), ("mask", record.mask))
                                if path is None)
        raise ValueError(f"record {record.name} has no {lacks}: this set reads both from its files; give photos "
                         "without composites to FolderDataset, which makes them")
    return record.comp, record.mask


# --------------------------------------------------------------------------- reading
# Pictures are decoded by phnet.imageio, the library's one set of rules (EXIF orientation,
# 16-bit grey at full precision, palettes, the alpha rule); these functions only turn its
# answers into what training needs and its refusals into BadSampleError.

def _decode(read, path: Path):
    """``read(path)``, with a missing or undecodable file as a BadSampleError that names it."""
    path = Path(path)
    try:
        return read(path)
    except FileNotFoundError:
        raise BadSampleError(missing_file_message(path)) from None
    except ValueError as exc:  # phnet.imageio's refusal says what is wrong with the file
        raise BadSampleError(f"unreadable image {path}: {exc}") from None


def missing_file_message(path: Path) -> str:
    if not path.parent.is_dir():
        return (f"the folder {path.parent} is gone (moved or deleted while the data set was in use?); "
                f"put it back and resume the run with --resume")
    return (f"missing file: {path} (deleted after the data set was listed? put it back, or set "
            f"data.on_bad_sample = \"skip\" to drop such samples)")


def load_rgb(path: Path) -> np.ndarray:
    """float32 HxWx3 in [0, 1]."""
    return load_rgb_and_alpha(path)[0]


def load_rgb_and_alpha(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The picture (float32 HxWx3 in [0, 1]) and, when it has one that marks a subject, its alpha channel as a
    binary mask. An alpha opaque everywhere, or nearly (a photo saved as RGBA, one with rounded or transparent
    corners), marks none: it trained as a mask of the whole picture, with no background to harmonize against."""
    rgb, alpha = _decode(_rgb_and_alpha, path)
    if alpha is None or (alpha < 0.5).mean() < MIN_BACKGROUND:
        return rgb, None
    return rgb, (alpha >= 0.5).astype(np.float32)


def _rgb_and_alpha(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    return image_to_array(read_image(path), name=f"image {path}")


def load_mask(path: Path, binary: bool = True) -> np.ndarray:
    """Binary float32 HxW mask (phnet.imageio's mask rules: a real alpha channel, else the luminance), or with
    ``binary=False`` its values in [0, 1]. One whose strongest value is under half of full marks no subject, and
    says why (not as an empty mask)."""
    mask = _decode(read_mask, path)
    strongest = float(mask.max(initial=0.0))
    if 0 < strongest < 0.5:
        fix = ("a 16-bit mask holding 0..255 values, or one divided by 255 twice? Save 8-bit masks as 8-bit, 16-bit "
               "ones scaled to 0..65535 (x257), float ones in 0..1" if strongest < FAINT else
               "paint the subject white in the mask")
        raise BadSampleError(f"mask {path}: its strongest value is {strongest:.2%} of full, under the half that marks "
                             f"the subject, so it marks none: {fix}")
    return (mask >= 0.5).astype(np.float32) if binary else mask.astype(np.float32, copy=False)


def load_thumbnail(path: Path, side: int) -> np.ndarray:
    """float32 RGB in [0, 1] at most ``side`` pixels across (8 bits suffice for colour statistics)."""
    path = Path(path)
    try:
        with Image.open(path) as img:  # (a GIF or TIFF stays open after its load, a refused one before it)
            img.draft("RGB", (side, side))  # a JPEG decodes straight at a reduced size
            small = Image.fromarray(image_to_uint8(img, name=f"image {path}"))
    except FileNotFoundError:
        raise BadSampleError(missing_file_message(path)) from None
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadSampleError(f"unreadable image {path}: {exc}") from None
    small.thumbnail((side, side))
    return np.asarray(small, dtype=np.float32) / 255.0


def ellipse_mask(h: int, w: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Fallback subject mask: a centred, portrait-shaped ellipse (head and shoulders area).

    It is *not* a person segmentation: pairs built with it teach the network to
    harmonise an elliptical region against its surroundings, which is still a
    correct training signal (the ground truth is the untouched photo).
    """
    cy, cx, ry, rx = 0.56, 0.5, 0.40, 0.30
    if rng is not None:
        cy += rng.uniform(-0.06, 0.06)
        cx += rng.uniform(-0.08, 0.08)
        ry *= rng.uniform(0.8, 1.15)
        rx *= rng.uniform(0.8, 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    d = ((yy + 0.5) / h - cy) ** 2 / ry ** 2 + ((xx + 0.5) / w - cx) ** 2 / rx ** 2
    return (d <= 1.0).astype(np.float32)


def check_pair(comp: np.ndarray | None, real: np.ndarray, mask: np.ndarray, record: Record) -> None:
    """Raise BadSampleError for size mismatches, empty masks and a photo's mask with (nearly) no background,
    naming the files."""
    if comp is not None and comp.shape != real.shape:
        raise BadSampleError(
            f"composite {record.comp} is {comp.shape[1]}x{comp.shape[0]} but real image "
            f"{record.real} is {real.shape[1]}x{real.shape[0]}")
    if mask.shape != real.shape[:2]:
        raise BadSampleError(
            f"mask {record.mask or '(alpha/fallback)'} is {mask.shape[1]}x{mask.shape[0]} but image "
            f"{record.comp or record.real} is {real.shape[1]}x{real.shape[0]}")
    if not (mask > 0.5).any():
        raise BadSampleError(f"empty mask (no foreground pixel): {record.mask or record.real}")
    if comp is None and (mask < 0.5).mean() < MIN_BACKGROUND:  # a photo's mask (a ready set's pairs are as made)
        raise BadSampleError(f"mask covering the whole picture (under {MIN_BACKGROUND:.0%} of it background, nothing "
                             f"to harmonize against): {record.mask or record.real}")


def find_with_any_extension(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        p = folder / (stem + ext)
        if p.exists():
            return p
    return None


# a folder holding one of these was written by the trainer (a run, an evaluation): its pictures are no photos
TRAINER_OUTPUT_MARKERS = ("run_config.json", "trainer.lock", "log.jsonl", "results.md")

_NOTED: set[str] = set()


def note_once(line: str) -> None:
    """``line`` on stderr, the first time this process says it (a folder is listed for each split it holds)."""
    if line not in _NOTED:
        _NOTED.add(line)
        print(line, file=sys.stderr)


def list_images(root: Path, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """The pictures under ``root``, leaving out hidden folders and what the trainer wrote there (a run's
    ``curves.png``, an evaluation's ``grid.png``: a run folder placed inside its own photo folder). A folder
    or picture in the package reserved for held-out evaluation is refused (``builders.held_out``). Links to
    nothing are left out, and named."""
    root = Path(root)
    found, left_out, seen = [], [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):  # a linked folder of photos counts too
        here = Path(folder)
        if here != root and any(m in files for m in TRAINER_OUTPUT_MARKERS):
            left_out.append(here)
            dirs.clear()
            continue
        real = os.path.realpath(here)
        if real in seen:  # a second link to one folder, or a link back up: read once
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [here / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in suffixes]
    if left_out:
        left_out.sort()
        note_once(f"[data] {root}: left out {len(left_out)} folder(s) the trainer wrote (not photos): "
                  f"{', '.join(str(p.relative_to(root)) for p in left_out[:3])}{' ...' if len(left_out) > 3 else ''}")
    pictures = sorted(p for p in found if p.is_file())
    links = sorted(p for p in found if p.is_symlink() and not p.exists())
    if links:
        shown = ", ".join(f"{p.relative_to(root)} -> {os.readlink(p)}" for p in links[:3])
        note_once(f"[data] {root}: left out {len(links)} link(s) to nothing (an unmounted drive?): {shown}"
                  f"{' ...' if len(links) > 3 else ''}")
    for p in (root, *pictures):  # also through links: the reserved package is never read
        refuse_reserved(p)
    return pictures


def in_holdout(key: str, fraction: float) -> bool:
    """Deterministic split membership from a stable hash of ``key`` (same on every machine)."""
    if fraction <= 0:
        return False
    return (zlib.crc32(key.encode("utf-8")) % 100000) < fraction * 100000


def holdout_set(keys: list[str], fraction: float) -> set[str]:
    """The keys carved out for a held-out split: by stable hash, never empty nor everything.

    With ``fraction`` > 0 and at least two distinct keys, at least one key is held
    out and at least one is kept, so tiny data sets still get both splits. A single key is never
    held out: that would be everything.
    """
    distinct = sorted(set(keys))
    if fraction <= 0 or len(distinct) < 2:
        return set()
    held = {k for k in distinct if in_holdout(k, fraction)}
    if len(distinct) >= 2:
        ranked = sorted(distinct, key=lambda k: zlib.crc32(k.encode("utf-8")))
        if not held:
            held = {ranked[0]}
        elif len(held) == len(distinct):
            held.discard(ranked[-1])
    return held


def spread_sample(names: list[str], limit: int) -> list[int]:
    """The indices of ``limit`` of ``names``, in their order, chosen by a stable hash of each name and how many
    equal names come before it (``val_copies`` repeats them): the same on every run, rank and machine, drawn
    from the whole list (its first ``limit`` would be one subset of an iHarmony4 set, HCOCO, or one corner of a
    folder), and a name added changes at most one of the others chosen (it may take that one's place), a name
    removed none."""
    if limit <= 0 or limit >= len(names):
        return list(range(len(names)))
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        keys.append(zlib.crc32(f"{name}#{seen.get(name, 0)}".encode("utf-8")))
        seen[name] = seen.get(name, 0) + 1
    ranked = sorted(range(len(names)), key=lambda i: (keys[i], i))
    return sorted(ranked[:limit])


def read_split_file(path: Path) -> list[str]:
    lines = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def apply_missing_policy(records: list[Record], policy: str, what: str) -> list[Record]:
    """Check that every listed file exists; raise or drop (with a warning and a count)."""
    kept, missing = [], []
    for r in records:
        paths = [p for p in (r.comp, r.mask, r.real) if p is not None]
        bad = [p for p in paths if not os.path.isfile(p)]
        if bad:
            missing.append((r, bad[0]))
        else:
            kept.append(r)
    if missing:
        first = missing[0][1]
        if policy == "error":
            raise BadSampleError(
                f"{len(missing)} sample(s) of {what} list files that do not exist, first: {first} "
                f"(set data.on_bad_sample = \"skip\" to drop them)")
        shown = ", ".join(str(b) for _, b in missing[:3])
        warnings.warn(f"{what}: skipped {len(missing)} sample(s) with missing files ({shown}"
                      f"{', ...' if len(missing) > 3 else ''})", stacklevel=2)
    return kept


# --------------------------------------------------------------------------- geometry

def to_chw(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t.permute(2, 0, 1) if t.ndim == 3 else t[None]


def _resize(t: torch.Tensor, h: int, w: int, mask: int | None = None, mask_filter: str = "nearest") -> torch.Tensor:
    """Pictures resized as PIL resizes them (antialiased bilinear); channel ``mask`` as the official loaders read
    masks. ``mask_filter="nearest"``, iHarmony4's: PIL mode "1", then nearest (PIL's only resize of mode "1"); a
    soft mask is cut at 0.5 (PIL would dither it). Averaged and thresholded instead, a thin strand vanished and an
    edge moved: another foreground count N_fg, another fMSE. ``"bilinear"``, FFHQH's: the 8-bit mask resized by
    PIL's bilinear filter as it is, then 1 where it is over 0.5."""
    if t.shape[-2:] == (h, w):
        return t
    out = F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    if mask is not None and mask_filter == "bilinear":
        levels = (t[mask] * 255).round().clamp(0, 255).to(torch.uint8).contiguous().numpy()
        resized = np.asarray(Image.fromarray(levels).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        out[mask] = torch.from_numpy(resized > 0.5).to(t.dtype)
    elif mask is not None:
        binary = (t[None, mask : mask + 1] >= 0.5).to(t.dtype)
        out[mask] = F.interpolate(binary, size=(h, w), mode="nearest-exact")[0, 0]
    return out


def crop_box(h: int, w: int, rng: np.random.Generator | None, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    """A random crop with area fraction in ``scale`` and the picture's own aspect."""
    if rng is None or scale[0] >= 1.0:
        return 0, 0, h, w
    s = math.sqrt(rng.uniform(scale[0], min(scale[1], 1.0)))
    ch, cw = min(h, max(8, int(round(h * s)))), min(w, max(8, int(round(w * s))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


def pad_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of an HxW picture inside the ``size`` square ``fit_square(mode="pad")`` makes."""
    s = size / max(h, w)
    nh, nw = min(size, max(1, round(h * s))), min(size, max(1, round(w * s)))
    return (size - nh) // 2, (size - nw) // 2, nh, nw


def fit_square(stack: torch.Tensor, size: int, mode: str, rng: np.random.Generator | None,
               keep: int | None = None, mask_filter: str = "nearest") -> torch.Tensor:
    """Bring a CxHxW stack to ``size``x``size`` (``none`` keeps the native size). ``keep``: a mask channel, resized
    as a mask with ``mask_filter`` (see :func:`_resize`); a ``crop`` square that would hold none of it is moved
    onto its middle instead."""
    _, h, w = stack.shape
    if mode == "stretch":
        return _resize(stack, size, size, keep, mask_filter)
    if mode == "crop":
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        stack = _resize(stack, nh, nw, keep, mask_filter)
        if rng is None:
            y0, x0 = (nh - size) // 2, (nw - size) // 2
        else:
            y0, x0 = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
        if keep is not None and not (stack[keep, y0:y0 + size, x0:x0 + size] >= 0.5).any():
            ys, xs = torch.nonzero(stack[keep] >= 0.5, as_tuple=True)  # a subject off the middle of a wide photo
            if len(ys):
                def centred(y: int, x: int) -> tuple[int, int]:
                    return min(max(0, y - size // 2), nh - size), min(max(0, x - size // 2), nw - size)

                y0, x0 = centred((int(ys.min()) + int(ys.max()) + 1) // 2, (int(xs.min()) + int(xs.max()) + 1) // 2)
                if not (stack[keep, y0:y0 + size, x0:x0 + size] >= 0.5).any():  # parts far apart: on one of them
                    y0, x0 = centred(int(ys[len(ys) // 2]), int(xs[len(xs) // 2]))
        return stack[:, y0:y0 + size, x0:x0 + size]
    if mode == "pad":
        top, left, nh, nw = pad_box(h, w, size)
        stack = _resize(stack, nh, nw, keep, mask_filter)
        return F.pad(stack, (left, size - nw - left, top, size - nh - top), value=0.0)
    if mode == "none":  # native size (evaluation through the Harmonizer, or writing sets as they are)
        return stack
    raise ValueError(f"unknown resize mode {mode!r}; choose from {RESIZE_MODES}")


# --------------------------------------------------------------------------- batching

def collate(batch: list[dict | None]) -> dict:
    """Stack samples; ``None`` entries (skipped bad samples) are counted in ``skipped``."""
    good = [b for b in batch if b is not None]
    out: dict = {"skipped": len(batch) - len(good)}
    if not good:
        return out
    for key in good[0]:
        out[key] = _stack([b[key] for b in good])
    return out


def _stack(vals: list):
    """Tensors stacked, dicts of them (the on-device synthesis parameters) stacked key by key, the rest listed."""
    if isinstance(vals[0], torch.Tensor):
        return torch.stack(vals)
    if isinstance(vals[0], dict):
        return {k: _stack([v[k] for v in vals]) for k in vals[0]}
    return vals
