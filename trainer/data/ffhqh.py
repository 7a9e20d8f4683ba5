"""FFHQH: ``comp/`` composites, ``alpha/`` masks and ``{train,val,test}_split.txt``.

The real images are the original FFHQ pictures under ``ffhq_root`` (FFHQH does not
ship them); a set written by ``python -m trainer.builders.synthetic_set`` has them in ``real/`` and
that folder is used when no ``ffhq_root`` is given. Split lines may be
``00609.png`` or ``00000/00609.png``; both the flat and the official FFHQ
``<thousands>/<id>.png`` folder layouts are looked up. Without a
``val_split.txt`` the validation split is carved from ``train``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.data.base import HarmonizationDataset
from trainer.data.common import (Record, apply_missing_policy, composite_and_mask, find_with_any_extension, holdout_set,
                                 load_mask, load_rgb, read_split_file)


def is_ffhqh_root(root: Path) -> bool:
    root = Path(root)
    return (root / "comp").is_dir() and (root / "alpha").is_dir()


def _first_existing(candidates: list[Path]) -> Path:
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def _locate(folder: Path, line: str) -> Path:
    p = Path(line)
    cands = [folder / p, folder / p.name]
    stem_hit = find_with_any_extension(folder / p.parent, p.stem) or find_with_any_extension(folder, p.stem)
    if stem_hit is not None:
        cands.append(stem_hit)
    return _first_existing(cands)


def _locate_real(ffhq_root: Path, line: str) -> Path:
    p = Path(line)
    cands = [ffhq_root / p, ffhq_root / p.name]
    if p.stem.isdigit():
        cands.append(ffhq_root / f"{int(p.stem) // 1000 * 1000:05d}" / p.name)
        cands.append(ffhq_root / "images1024x1024" / f"{int(p.stem) // 1000 * 1000:05d}" / p.name)
    for c in list(cands):
        if c.suffix.lower() != ".png":
            cands.append(c.with_suffix(".png"))
    return _first_existing(cands)


def _photo_key(root: Path):
    """A split-list line → the photo it was made from: a ``trainer.builders.synthetic_set`` set of several copies
    names them ``<photo>_<k>``, and a photo's copies must stay on one side of a carved validation split."""
    info = root / "synth_info.json"
    try:
        copies = int(json.loads(info.read_text(encoding="utf-8")).get("copies", 1)) if info.is_file() else 1
    except (ValueError, OSError):
        copies = 1
    if copies > 1:
        return lambda line: Path(line).stem.rsplit("_", 1)[0]
    return lambda line: Path(line).stem


def ffhqh_records(root: Path, split: str, ffhq_root: Path | None = None, val_fraction: float = 0.05,
                  on_bad_sample: str = "error") -> list[Record]:
    root = Path(root)
    if ffhq_root is None or str(ffhq_root) == "":
        if not (root / "real").is_dir():
            raise FileNotFoundError(
                f"FFHQH ships composites and masks only: set data.ffhq_root to the FFHQ images folder "
                f"(--ffhq-root for trainer.evaluate and trainer.calibrate), or put the real images in "
                f"{root / 'real'}")
        ffhq_root, given = root / "real", False
    else:
        given = True
    ffhq_root = Path(ffhq_root)
    carve = False
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r} (train, val or test)")
    path = root / f"{split}_split.txt"
    if split == "val" and not path.exists():
        path, carve = root / "train_split.txt", True
    elif split == "train" and not (root / "val_split.txt").exists():
        carve = True
    if not path.exists():
        if (root / "synth_info.json").is_file():
            fix = ("a set built by trainer.builders.synthetic_set with --test-fraction 0 has no test split: rebuild it "
                   "with --test-fraction above 0" if split == "test" else "rebuild the set")
        else:
            fix = ("copy it from the FFHQH release, which ships train_split.txt, val_split.txt and test_split.txt "
                   "beside comp/ and alpha/")
        raise FileNotFoundError(f"split list not found: {path}; {fix}")
    lines = read_split_file(path)
    key = _photo_key(root)
    held = holdout_set([key(l) for l in lines], val_fraction) if carve else set()
    records = []
    for line in lines:
        if carve and (key(line) in held) != (split == "val"):
            continue
        records.append(Record(name=line, subset="FFHQH", comp=_locate(root / "comp", line),
                              mask=_locate(root / "alpha", line), real=_locate_real(ffhq_root, line)))
    if given:
        _check_real_folder(records, ffhq_root, split)
    return apply_missing_policy(records, on_bad_sample, f"FFHQH {split} split under {root}")


def _check_real_folder(records: list[Record], ffhq_root: Path, split: str) -> None:
    """A given ``ffhq_root`` that holds none of the split's real images is the wrong folder, not a set of bad samples
    (whose advice, skip them, would leave nothing to train on)."""
    if not records or any(r.real.is_file() for r in records):
        return
    which = "the real image" if len(records) == 1 else f"none of the {len(records)} real images"
    raise FileNotFoundError(
        f"{which} of the FFHQH {split} split is {'not ' if len(records) == 1 else ''}under {ffhq_root} (first "
        f"looked for: {records[0].real}): set data.ffhq_root (--ffhq-root for trainer.evaluate and trainer.calibrate) "
        "to the folder of the original FFHQ images, images1024x1024")


class FFHQHDataset(HarmonizationDataset):
    mask_filter = "bilinear"  # the official FFHQH loader resizes the mask bilinearly and cuts it at half after

    def load(self, record: Record, rng: np.random.Generator):
        comp, mask = composite_and_mask(record)
        return load_rgb(comp), load_rgb(record.real), load_mask(mask, binary=False)
