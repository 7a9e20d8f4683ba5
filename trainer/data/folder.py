"""Any folder of photos: composites are synthesised on the fly (see synthesis.py).

Masks, first match wins:
1. ``mask_dir``: a folder (e.g. a sibling ``masks/``) with a mask of the same
   relative path and stem as the photo (any image extension; white = subject);
2. the photo's own alpha channel (RGBA PNG/WebP cut-outs);
3. ``mask_fallback``: ``"ellipse"`` (default) uses a centred portrait-shaped
   ellipse, jittered per sample. This is **not** a person segmentation: the pairs
   are still correct (the ground truth is the untouched photo) but the network
   learns to harmonise a region, not a person. Supply real masks (for instance
   from ``python -m phnet`` segmentation tools or any matting model) for better
   portrait training; ``"error"`` refuses photos without a mask.

Splits are carved deterministically by a hash of the relative path
(``val_fraction``, ``test_fraction``; with ``test_fraction = 0`` the test split is
the validation split; a folder with a single photo uses it for every split). Validation composites are a pure function of the index;
training composites change every epoch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data.base import HarmonizationDataset
from trainer.data.common import (BadSampleError, Record, find_with_any_extension, holdout_set, list_images,
                                 load_mask, load_rgb_and_alpha, ellipse_mask)

MASK_FALLBACKS = ("ellipse", "error")


def folder_records(root: Path, split: str, mask_dir: Path | None = None, val_fraction: float = 0.05,
                   test_fraction: float = 0.0) -> list[Record]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    mask_dir = Path(mask_dir) if mask_dir else None
    images = list_images(root)
    if mask_dir is not None:
        try:  # a mask folder inside the photo folder must not be read as photos
            images = [p for p in images if not p.resolve().is_relative_to(mask_dir.resolve())]
        except OSError:
            pass
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(('jpg', 'png', 'webp', 'bmp', 'tif'))}) under {root}")
    keys = [p.relative_to(root).as_posix() for p in images]
    test_keys = {k[5:] for k in holdout_set(["test:" + k for k in keys], test_fraction)}
    val_keys = {k[4:] for k in holdout_set(["val:" + k for k in keys if k not in test_keys], val_fraction)}
    if len(images) == 1:
        split = "train"  # a single photo serves every split (useful to evaluate one picture)
    elif split == "test" and test_fraction <= 0:
        split = "val"  # no separate test photos: the test split is the validation split
    out = []
    for p, key in zip(images, keys):
        which = "test" if key in test_keys else "val" if key in val_keys else "train"
        if which != split:
            continue
        rel = p.relative_to(root)
        mask = find_with_any_extension(mask_dir / rel.parent, rel.stem) if mask_dir is not None else None
        out.append(Record(name=key, real=p, mask=mask, subset=root.name))
    return out


class FolderDataset(HarmonizationDataset):
    def __init__(self, records, *, mask_fallback: str = "ellipse", reference_size: int = 64, **kw):
        if mask_fallback not in MASK_FALLBACKS:
            raise ValueError(f"data.mask_fallback must be one of {MASK_FALLBACKS}, got {mask_fallback!r}")
        super().__init__(records, **kw)
        self.mask_fallback = mask_fallback
        self.reference_size = reference_size

    def load(self, record: Record, rng: np.random.Generator):
        real, alpha = load_rgb_and_alpha(record.real)
        if record.mask is not None:
            mask = load_mask(record.mask)
        elif alpha is not None:
            mask = alpha
        elif self.mask_fallback == "ellipse":
            mask = ellipse_mask(real.shape[0], real.shape[1], rng)
        else:
            raise BadSampleError(f"no mask for {record.real} (no mask file, no alpha channel and "
                                 f"data.mask_fallback = \"error\")")
        return None, real, mask

    def reference_for(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        if len(self.records) < 2:
            return None
        j = int(rng.integers(0, len(self.records) - 1))
        j = j + 1 if j >= index else j
        try:
            img = Image.open(self.records[j].real)
            img.draft("RGB", (self.reference_size, self.reference_size))
            img = img.convert("RGB")
            img.thumbnail((self.reference_size, self.reference_size))
        except OSError:
            return None  # the reference is optional; its own sample reports the problem
        return np.asarray(img, dtype=np.float32) / 255.0
