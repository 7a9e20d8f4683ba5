"""Any folder of photos: composites are synthesised on the fly (see synthesis.py).

Masks, first match wins:
1. ``mask_dir``: a folder (e.g. a sibling ``masks/``) with a mask of the same
   relative path and stem as the photo (any image extension; white = subject;
   case and Unicode normalization aside when no name matches exactly);
2. the photo's own alpha channel (RGBA PNG/WebP cut-outs; one opaque everywhere is passed over);
3. ``mask_fallback``: ``"ellipse"`` (default) uses a centred portrait-shaped
   ellipse, jittered per sample. This is **not** a person segmentation: the pairs
   are still correct (the ground truth is the untouched photo) but the network
   learns to harmonise a region, not a person. Supply real masks (for instance
   from ``python -m phnet`` segmentation tools or any matting model) for better
   portrait training; ``"error"`` refuses photos without a mask.

Splits are carved deterministically by a hash of the relative path
(``val_fraction``, ``test_fraction``; with ``test_fraction = 0`` the test split is
the validation split; a folder with a single photo uses it for every split). Validation composites are a pure function
of the index; training composites change every epoch.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from phnet.imageio.decode import folded_name, folds_names
from trainer.builders.held_out import NEAR_DUPLICATE_BITS, dhash64, hamming, is_held_out
from trainer.data.base import HarmonizationDataset
from trainer.data.common import (IMAGE_EXTENSIONS, MASK_EXTENSIONS, BadSampleError, Record, holdout_set, list_images,
                                 load_mask, load_rgb_and_alpha, load_thumbnail, ellipse_mask)

MASK_FALLBACKS = ("ellipse", "error")


def folder_records(root: Path, split: str, mask_dir: Path | None = None, val_fraction: float = 0.05,
                   test_fraction: float = 0.0, *, mask_setting: str = "data.mask_dir") -> list[Record]:
    """The photos of ``split`` under ``root``, each with its mask from ``mask_dir`` when there is one.

    ``mask_setting`` is the config key ``mask_dir`` came from, for the error when no photo has a mask there.
    """
    return folder_splits(root, mask_dir, val_fraction, test_fraction, mask_setting=mask_setting).get(split, [])


def folder_splits(root: Path, mask_dir: Path | None = None, val_fraction: float = 0.05, test_fraction: float = 0.0,
                  *, mask_setting: str = "data.mask_dir") -> dict[str, list[Record]]:
    """The records of each split (``train``, ``val``, ``test``) of the photos under ``root``
    (:func:`folder_records`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    mask_dir = Path(mask_dir) if mask_dir else None
    images = list_images(root)
    if mask_dir is not None:
        images = photos_outside(root, images, mask_dir, mask_setting)
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root}")
    keys = [p.relative_to(root).as_posix() for p in images]
    masks = masks_by_photo(keys, root, mask_dir, mask_setting) if mask_dir is not None else {}
    test_keys = {k[5:] for k in holdout_set(["test:" + k for k in keys], test_fraction)}
    val_keys = {k[4:] for k in holdout_set(["val:" + k for k in keys if k not in test_keys], val_fraction)}
    out: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for p, key in zip(images, keys):
        which = "test" if key in test_keys else "val" if key in val_keys else "train"
        out[which].append(Record(name=key, real=p, mask=masks.get(key), subset=root.name))
    if len(images) == 1:  # a single photo serves every split (useful to evaluate one picture)
        out["val"] = out["test"] = out["train"]
    elif test_fraction <= 0:  # no separate test photos: the test split is the validation split
        out["test"] = out["val"]
    return out


def photos_outside(root: Path, images: list[Path], mask_dir: Path, mask_setting: str) -> list[Path]:
    """The photos of ``images`` (under ``root``) that are not in ``mask_dir``: a mask folder inside the photo folder
    must not be read as photos. One that is the photo folder itself, or holds it, is refused."""
    try:
        masks = mask_dir.resolve()
        if root.resolve().is_relative_to(masks):
            raise ValueError(f"{mask_setting}: the mask folder {mask_dir} is the photo folder {root} itself (or holds "
                             "it), so every photo would be taken for a mask: put the masks in a folder of their own")
        return [p for p in images if not p.resolve().is_relative_to(masks)]
    except OSError:
        return images


def masks_by_photo(keys: list[str], root: Path, mask_dir: Path, mask_setting: str) -> dict[str, Path]:
    """Each photo's mask (same relative path and stem, any image extension; else the one whose path and stem match
    as Windows and macOS compare names, as the CLI matches them: IMG_0001.JPG's img_0001.png).

    A mask folder that matches no photo is an error and one that misses some photos a warning:
    either way those photos would silently train on their alpha channel or the fallback ellipse.
    """
    by_stem = pictures_by_stem(mask_dir)
    # where the folder tells names apart by case, a mask a photo's own name matches is that photo's alone
    taken = {stem_of(k) for k in keys} & by_stem.keys() if not folds_names(mask_dir) else set()
    folds: dict[str, list[Path]] = {}
    for stem, mask in by_stem.items():
        if stem not in taken:
            folds.setdefault(folded_name(stem), []).append(mask)
    wanting: dict[str, int] = {}  # photos without a mask of their own name, by folded name
    for k in keys:
        if stem_of(k) not in by_stem:
            wanting[folded_name(stem_of(k))] = wanting.get(folded_name(stem_of(k)), 0) + 1
    by_folded = {name: masks[0] for name, masks in folds.items() if len(masks) == 1 and wanting.get(name) == 1}
    found = {k: hit for k in keys if (hit := by_stem.get(stem_of(k)) or by_folded.get(folded_name(stem_of(k))))}
    if not found:
        raise FileNotFoundError(
            f"{mask_setting}: no photo under {root} has a mask in {mask_dir}; a mask needs the photo's relative "
            f"path and name with any image extension (photo {root / keys[0]} -> mask "
            f"{mask_dir / stem_of(keys[0])}.png). Point {mask_setting} at the photos' masks, or leave it empty.")
    missing = [k for k in keys if k not in found]
    if missing:
        warnings.warn(f"{mask_setting}: {len(missing)} of {len(keys)} photos under {root} have no mask in "
                      f"{mask_dir} (first: {missing[0]}); they use their alpha channel or data.mask_fallback",
                      stacklevel=3)
    return found


def stem_of(key: str) -> str:
    return PurePosixPath(key).with_suffix("").as_posix()


def pictures_by_stem(folder: Path) -> dict[str, Path]:
    """The masks (or pictures) under ``folder`` by relative path without extension; ``.png`` wins over ``.jpg``
    and so on."""
    def rank(p: Path) -> tuple[bool, int]:
        return p.suffix != p.suffix.lower(), MASK_EXTENSIONS.index(p.suffix.lower())

    found: dict[str, Path] = {}
    for p in sorted(list_images(folder, MASK_EXTENSIONS), key=rank):
        found.setdefault(stem_of(p.relative_to(folder).as_posix()), p)
    return found


class FolderDataset(HarmonizationDataset):
    def __init__(self, records, *, mask_fallback: str = "ellipse", reference_size: int = 64, **kw):
        if mask_fallback not in MASK_FALLBACKS:
            raise ValueError(f"data.mask_fallback must be one of {MASK_FALLBACKS}, got {mask_fallback!r}")
        super().__init__(records, **kw)
        self.mask_fallback = mask_fallback
        self.reference_size = reference_size
        self.preloaded: dict[Path, Preloaded] | None = None
        self.reserved: dict[Path, bool] = {}  # photo -> a copy of a picture held out for evaluation

    def preload(self, *, progress: bool = True, report: bool = True) -> None:
        """Decode every photo, mask and reference thumbnail now, once, and keep them in memory (8-bit
        pictures as uint8). Data workers forked afterwards share them, so a sample costs its crop and
        draws, not two decodes: what a pool of small photos, each read hundreds of times, spends most
        on. The samples are the same as without it. ``progress``: a tqdm bar; ``report``: a line saying
        how much memory it took (one process of several says nothing)."""
        from tqdm import tqdm

        photos = list(dict.fromkeys(r.real for r in self.records))  # val sets repeat their records
        masks = {r.real: r.mask for r in self.records}
        room = available_memory()
        loaded: dict[Path, Preloaded] = {}
        total = 0
        bar = tqdm(photos, desc="preloading photos", unit="photo", leave=False, disable=not progress)
        for i, photo in enumerate(bar, 1):
            try:
                loaded[photo] = Preloaded.read(photo, masks[photo], self.reference_size)
            except MemoryError as exc:  # the photos held so far filled it: a smaller batch would not help
                loaded.clear()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ValueError(
                    f"data.preload: memory ran short holding {i - 1} of the {len(photos)} photos of "
                    f"{self.description} ({total / 2**30:.1f} GB; {first}); set data.preload = false to read "
                    "each photo when it is drawn") from None
            total += loaded[photo].nbytes
            if i == min(PRELOAD_PROBE, len(photos)) and room and total / i * len(photos) > room / 2:
                raise ValueError(
                    f"data.preload: the {len(photos)} photos of {self.description} would take about "
                    f"{total / i * len(photos) / 2**30:.1f} GB in memory (judging by the first {i}), more than half "
                    f"of the {room / 2**30:.1f} GB available; set data.preload = false for a pool this large")
        self.preloaded = loaded
        if report:
            print(f"[data] {self.description}: {len(photos)} photos preloaded, {total / 2**20:.1f} MB in memory",
                  file=sys.stderr)

    def load(self, record: Record, rng: np.random.Generator):
        if self.preloaded is not None:
            real, mask = self.preloaded[record.real].pictures()
        else:
            real, alpha = load_rgb_and_alpha(record.real)
            mask = load_mask(record.mask) if record.mask is not None else alpha
        if self._reserved(record.real, real):
            raise BadSampleError(f"{record.real} is a copy of a picture reserved for held-out evaluation "
                                 "(comfyui-workflow-templates-media-image): it is never trained on; remove it")
        if mask is None:
            if self.mask_fallback != "ellipse":
                raise BadSampleError(f"no mask for {record.real} (no mask file, no alpha channel and "
                                     f"data.mask_fallback = \"error\")")
            mask = ellipse_mask(real.shape[0], real.shape[1], rng)
        return None, real, mask

    def _reserved(self, path: Path, picture: np.ndarray) -> bool:
        """Whether the photo is a copy of a picture reserved for held-out evaluation (re-encoded, resized,
        mirrored: its dHash), looked at once per photo, from the photo or its thumbnail: it is never trained on,
        neither as a sample nor as another sample's colour reference."""
        if path not in self.reserved:
            self.reserved[path] = is_held_out(eight_bit(picture))
        return self.reserved[path]

    def reference_for(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        if len(self.records) < 2:
            return None
        j = int(rng.integers(0, len(self.records) - 1))
        j = j + 1 if j >= index else j
        path = self.records[j].real
        if self.preloaded is not None:
            thumb = self.preloaded[path].thumbnail()
        else:
            try:
                thumb = load_thumbnail(path, self.reference_size)
            except BadSampleError:
                return None  # the reference is optional; its own sample reports the problem
        return None if thumb is None or self._reserved(path, thumb) else thumb


def upscaled_photos(ds: FolderDataset, size: int) -> list[tuple[Path, tuple[int, int]]]:
    """(photo, (width, height)) of each photo enlarged to fill the working ``size`` (by its short side, or its
    long one with ``data.resize = "pad"``): the network learns from its blur. Read from the preloaded pictures,
    else from the files' headers."""
    from PIL import Image

    side = max if ds.resize == "pad" else min
    found = []
    for path in dict.fromkeys(r.real for r in ds.records):
        photo = ds.preloaded.get(path) if ds.preloaded is not None else None
        if photo is not None and photo.real is not None:
            height, width = photo.real.shape[:2]
        else:
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except (OSError, Image.DecompressionBombError):  # its own sample reports it
                continue
        if side(height, width) < size:
            found.append((path, (width, height)))
    return found


def copies_across(held: FolderDataset, train: FolderDataset) -> list[tuple[Path, Path]]:
    """(held-out photo, training photo) pairs of near-duplicate pictures (dHash within ``NEAR_DUPLICATE_BITS``):
    one picture saved under two names lands in two splits, and its held-out scores are no longer held-out
    ones. Read from the preloaded pictures; [] when either set was not preloaded (hashing would mean
    decoding every photo once more)."""
    if held.preloaded is None or train.preloaded is None:
        return []

    def hashes(preloaded: dict[Path, Preloaded]) -> dict[Path, int]:
        return {path: dhash64(eight_bit(photo.real)) for path, photo in preloaded.items() if photo.real is not None}

    seen = hashes(train.preloaded)
    if not seen:
        return []
    paths, table = list(seen), np.array(list(seen.values()), np.uint64)
    pairs = []
    for path, h in hashes(held.preloaded).items():
        close = np.nonzero(hamming(h, table) <= NEAR_DUPLICATE_BITS)[0]
        if len(close):
            pairs.append((path, paths[int(close[0])]))
    return pairs


PRELOAD_PROBE = 32  # photos decoded before the memory a whole preload needs is judged


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class Preloaded:
    """One photo's decoded pixels, mask (None: none found) and thumbnail, or the error reading it gave."""

    def __init__(self, real=None, mask=None, thumb=None, error: BadSampleError | None = None):
        self.real, self.mask, self.thumb, self.error = real, mask, thumb, error

    @classmethod
    def read(cls, photo: Path, mask_file: Path | None, reference_size: int) -> "Preloaded":
        try:  # a photo whose own mask is unreadable still serves as another sample's reference, as unpreloaded
            thumb = load_thumbnail(photo, reference_size)
        except BadSampleError:
            thumb = None
        try:
            real, alpha = load_rgb_and_alpha(photo)
            mask = load_mask(mask_file) if mask_file is not None else alpha
        except BadSampleError as exc:  # raised when the sample is drawn, under the data set's policy
            return cls(thumb=compact(thumb), error=exc)
        return cls(compact(real), None if mask is None else mask.astype(bool), compact(thumb))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.real, self.mask, self.thumb) if a is not None)

    def pictures(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.error is not None:
            raise self.error
        return widen(self.real), None if self.mask is None else self.mask.astype(np.float32)

    def thumbnail(self) -> np.ndarray | None:
        return None if self.thumb is None else widen(self.thumb)


def compact(x: np.ndarray | None) -> np.ndarray | None:
    """float32 pixels in [0, 1] as uint8 when they are exactly k/255 (8-bit pictures), else as they are."""
    if x is None:
        return None
    small = np.rint(x * 255).astype(np.uint8)
    return small if np.array_equal(widen(small), x) else x


def eight_bit(x: np.ndarray) -> np.ndarray:
    """Pixels in [0, 1] (or compacted to uint8) as uint8, for the dHash checks."""
    return x if x.dtype == np.uint8 else np.round(np.asarray(x, np.float32) * 255).astype(np.uint8)


def widen(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255 if x.dtype == np.uint8 else x
