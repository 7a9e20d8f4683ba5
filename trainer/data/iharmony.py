"""iHarmony4: HCOCO / HAdobe5k / HFlickr / Hday2night with the official split files.

Layout per subset: ``composite_images/``, ``masks/``, ``real_images/`` and
``<Subset>_train.txt`` / ``<Subset>_test.txt`` (one composite file name per line).
Name mapping: composite ``a3323_1_1.jpg`` -> mask ``masks/a3323_1.png`` and real
``real_images/a3323.jpg``. The release has no validation list: unless a
``<Subset>_val.txt`` exists, ``val`` is carved from ``train`` deterministically,
grouping composites by their real photo so no photo is in both. A ``<Subset>_val.txt``
(made from the train list, as the official trainer expects) is taken out of ``train``
with every composite of its photos, and must not list a composite of the test list.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from trainer.data.base import HarmonizationDataset
from trainer.data.common import (BadSampleError, Record, apply_missing_policy, composite_and_mask,
                                 find_with_any_extension, holdout_set, load_mask, load_rgb, read_split_file)

SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")


def is_iharmony_root(root: Path) -> bool:
    """An iHarmony4 set, or one of its subsets: a folder named HCOCO (say) of plain photos makes none."""
    root = Path(root)
    return is_subset(root) or any(is_subset(root / s) for s in SUBSETS)


def is_subset(folder: Path) -> bool:
    """A folder with an iHarmony4 subset's layout: ``composite_images/`` and a split list."""
    if not (folder / "composite_images").is_dir():
        return False
    if any(folder.glob("*_train.txt")):
        return True  # a subset with its test list alone must show the rest of the layout: a photo folder may hold
    return (folder / "masks").is_dir() and (folder / "real_images").is_dir() and bool(_listed(folder))  # such a list


def _listed(subset: Path) -> list[str]:
    """The subset names a subset folder's lists carry (``Hday2night_train.txt``, ``_test``, ``_val``): a copy kept
    for testing may hold its test list alone."""
    lists = (p for stage in ("train", "test", "val") for p in subset.glob(f"*_{stage}.txt"))
    return sorted({p.name.rsplit("_", 1)[0] for p in lists})


def _subset_dirs(root: Path, subsets) -> list[tuple[str, Path]]:
    root = Path(root)
    if (root / "composite_images").is_dir():  # root *is* one subset, named by its lists (a copy may be renamed)
        listed = _listed(root)
        name = root.name if root.name in listed or len(listed) != 1 else listed[0]
        if subsets and name not in subsets:
            raise ValueError(f"data.subsets {list(subsets)} picks subsets under an iHarmony4 root, but {root} is "
                             f"itself the subset {name}; point data.root at the folder that holds the subsets, "
                             "or drop data.subsets")
        return [(name, root)]
    names = list(subsets) if subsets else [s for s in SUBSETS if (root / s / "composite_images").is_dir()]
    out = []
    for s in names:
        if not (root / s).is_dir():
            raise FileNotFoundError(f"iHarmony4 subset folder not found: {root / s}")
        out.append((s, root / s))
    if not out:
        raise FileNotFoundError(f"no iHarmony4 subset ({', '.join(SUBSETS)}) under {root}")
    return out


def carves_validation(root: Path, subsets=None) -> bool:
    """Whether a subset without a ``<Subset>_val.txt`` holds ``data.val_fraction`` of its training photos out for
    validation (so the fraction decides which photos are trained on); True where the subsets cannot be read."""
    try:
        return any(not (folder / f"{subset}_val.txt").exists() for subset, folder in _subset_dirs(root, subsets))
    except (OSError, ValueError):
        return True


def _stems(line: str) -> tuple[str, str] | None:
    """(mask stem, real photo stem) of a composite line (``a3323_1_1.jpg`` -> ``a3323_1``, ``a3323``), or None."""
    parts = Path(line).stem.split("_")
    return ("_".join(parts[:-1]), "_".join(parts[:-2])) if len(parts) >= 3 else None


def _photo(line: str) -> str | None:
    stems = _stems(line)
    return stems[1] if stems else None


def record_for_line(subset: str, folder: Path, line: str) -> Record:
    name = Path(line).name
    stems = _stems(name)
    if stems is None:
        raise BadSampleError(f"{folder}: composite name {name!r} does not follow <image>_<mask>_<k>")
    mask_stem, real_stem = stems
    real = find_with_any_extension(folder / "real_images", real_stem) or folder / "real_images" / f"{real_stem}.jpg"
    mask = folder / "masks" / f"{mask_stem}.png"
    if not mask.exists():
        mask = find_with_any_extension(folder / "masks", mask_stem) or mask
    return Record(name=f"{subset}/{name}", subset=subset, comp=folder / "composite_images" / name,
                  mask=mask, real=real)


def iharmony_records(root: Path, split: str, subsets=None, val_fraction: float = 0.05,
                     on_bad_sample: str = "error") -> list[Record]:
    records = []
    for subset, folder in _subset_dirs(root, subsets):
        carve, val_list = False, folder / f"{subset}_val.txt"
        listed = val_photos(folder, subset) if val_list.exists() else set()
        if split == "val" and val_list.exists():
            lines = read_split_file(val_list)
        elif split in ("train", "val"):
            path = folder / f"{subset}_train.txt"
            if not path.exists():
                raise FileNotFoundError(_missing_list(path, subset))
            lines = read_split_file(path)
            carve = not val_list.exists()
            if listed and split == "train":  # a val list is carved from the train list: its photos are not trained on
                kept = [line for line in lines if _photo(line) not in listed]
                if len(kept) < len(lines):
                    print(f"[data] {subset}: {len(lines) - len(kept)} composites of {path.name} are of photos in "
                          f"{val_list.name}; left out of training", file=sys.stderr)
                lines = kept
        elif split == "test":
            path = folder / f"{subset}_test.txt"
            if not path.exists():
                raise FileNotFoundError(_missing_list(path, subset))
            lines = read_split_file(path)
        else:
            raise ValueError(f"unknown split {split!r} (train, val or test)")
        recs, bad = [], []
        for line in lines:
            try:
                recs.append(record_for_line(subset, folder, line))
            except BadSampleError:
                if on_bad_sample == "error":
                    raise
                bad.append(line)
        if bad:
            warnings.warn(f"{subset}: skipped {len(bad)} line(s) that are not composite names "
                          f"(first: {bad[0]!r})", stacklevel=2)
        if carve:  # group by real photo: no photo on both sides
            held = holdout_set([f"{subset}/{r.real.stem}" for r in recs], val_fraction)
            recs = [r for r in recs if (f"{subset}/{r.real.stem}" in held) == (split == "val")]
        records.extend(recs)
    return apply_missing_policy(records, on_bad_sample, f"iHarmony4 {split} split under {root}")


def _missing_list(path: Path, subset: str) -> str:
    return (f"split list not found: {path}; every iHarmony4 subset ships {subset}_train.txt and {subset}_test.txt "
            f"beside composite_images/: copy it from the release, or leave {subset} out with data.subsets")


def val_photos(folder: Path, subset: str) -> set[str]:
    """The photos of ``<Subset>_val.txt``; refused when it lists a composite of ``<Subset>_test.txt``."""
    val_list, test_list = folder / f"{subset}_val.txt", folder / f"{subset}_test.txt"
    lines = read_split_file(val_list)
    if test_list.exists():
        both = sorted({Path(x).name for x in lines} & {Path(x).name for x in read_split_file(test_list)})
        if both:
            raise ValueError(
                f"{val_list} lists {len(both)} composite(s) of {test_list.name} (first: {both[0]}): checkpoints "
                f"would be chosen on the test set. Make the val list from {subset}_train.txt, or delete it "
                f"(data.val_fraction of the training photos is then held out)")
    return {photo for line in lines if (photo := _photo(line)) is not None}


class IHarmony4Dataset(HarmonizationDataset):
    def load(self, record: Record, rng: np.random.Generator):
        comp, mask = composite_and_mask(record)
        return load_rgb(comp), load_rgb(record.real), load_mask(mask)
