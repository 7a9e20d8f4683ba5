"""Write a synthetic harmonisation set to disk, in the FFHQH layout.

    python -m trainer.builders.synthetic_set PHOTOS OUT [--size 512] [--mask-dir MASKS] [--copies 2]

For every photo under PHOTOS (masks as in ``trainer/data/folder.py``: a mask
folder, the alpha channel, or the ellipse fallback; one split folder of a pool, ``POOL/test``, is read as its
``images/`` with their ``masks/``, and a whole pool is refused) it writes::

    OUT/comp/<name>.png    composite: the subject's colours changed (trainer/data/synthesis.py)
    OUT/alpha/<name>.png   binary mask (white = subject)
    OUT/real/<name>.png    the untouched photo (ground truth)
    OUT/{train,val,test}_split.txt

so that ``python -m trainer.fit --data OUT`` trains on it (kind ffhqh, real
images found in ``OUT/real``) and the set can be built once and shared. Splits are
decided per photo (all copies of a photo go to the same split). The output is a
pure function of the photos, the options and ``--seed``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from phnet.console import interrupted_status, printable_anywhere
from trainer.builders import staging
from trainer.builders.held_out import NEAR_DUPLICATE_BITS, dhash64, hamming
from trainer.builders.names import distinct_bases
from trainer.data import is_pool, pool_part
from trainer.data.common import BadSampleError, Record, holdout_set, list_images
from trainer.data.folder import FolderDataset, masks_by_photo, photos_outside
from trainer.data.synthesis import TRANSFORMS, SynthesisOptions


def _eight_bit(t) -> np.ndarray:
    """A sample's C×H×W tensor in 0..1 as the 8-bit H×W×3 (or H×W, a mask's) picture written for it."""
    arr = t.numpy()
    arr = np.transpose(arr, (1, 2, 0)) if arr.ndim == 3 and arr.shape[0] == 3 else arr.squeeze(0)
    return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)


def _png(picture: np.ndarray, path: Path) -> None:
    Image.fromarray(picture, mode="RGB" if picture.ndim == 3 else "L").save(path)


def copies_across_splits(hashes: dict[str, tuple[int, str]]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((photo, split), (photo, split)) of near-duplicate photos (dHash within ``NEAR_DUPLICATE_BITS``) that
    landed in two splits: one picture saved under two names, re-encoded or renamed."""
    keys = list(hashes)
    table = np.array([hashes[k][0] for k in keys], np.uint64)
    splits = np.array([hashes[k][1] for k in keys])
    pairs = []
    for n, key in enumerate(keys):  # each held-out photo against the photos of the other splits
        h, split = hashes[key]
        if split == "train":
            continue
        close = (hamming(h, table) <= NEAR_DUPLICATE_BITS) & (splits != split)
        for m in np.nonzero(close)[0]:
            if splits[m] == "train" or int(m) > n:  # a val-test pair once
                pairs.append(((key, split), (keys[int(m)], str(splits[m]))))
    return pairs


def build_synthetic_set(src: Path, out: Path, *, size: int = 512, resize: str = "crop", mask_dir: Path | None = None,
                        mask_fallback: str = "ellipse", copies: int = 1, val_fraction: float = 0.05,
                        test_fraction: float = 0.05, seed: int = 0, on_bad_sample: str = "skip",
                        options: SynthesisOptions | None = None, limit: int = 0, progress: bool = False) -> dict:
    src, out = Path(src), Path(out)
    _check_arguments(src, out, size, copies, val_fraction, test_fraction, limit)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is a file, not a folder: give the folder that holds the photos" if src.exists()
                                else f"the photo folder {src} does not exist: correct the path")
    if is_pool(src):
        splits = sorted(p.name for p in src.iterdir() if (p / "images").is_dir())
        example = src / ("test" if "test" in splits else splits[0] if splits else "test")
        raise ValueError(f"{src} is a pool (manifest.json) with the splits {', '.join(splits) or 'none'}: read as "
                         "one folder of photos, its splits would be mixed and its masks taken for photos. Build from "
                         f"one split folder ({example}), whose masks/ are read as the masks")
    photos_root = src
    if mask_dir is None and (part := pool_part(src, "all")) is not None:
        photos_root, mask_dir = part  # one split of a pool: its images/, with their masks/
    photos = list_images(photos_root)
    if mask_dir is not None:
        photos = photos_outside(photos_root, photos, Path(mask_dir), "--mask-dir")
    if limit:
        photos = photos[:limit]
    if not photos:
        raise FileNotFoundError(f"no images under {src}")
    if _all_masks(photos):
        raise ValueError(f"every picture under {photos_root} is a black-and-white mask, not a photo: give the folder "
                         "of photos, and their masks with --mask-dir")
    keys = [p.relative_to(photos_root).as_posix() for p in photos]
    masks = {}
    if mask_dir is not None:  # the trainer's rules: a folder matching no photo is an error, a gap a warning
        if not Path(mask_dir).is_dir():
            raise FileNotFoundError(f"--mask-dir: {mask_dir} is a file, not a folder: give the folder that holds the "
                                    "masks" if Path(mask_dir).exists() else
                                    f"--mask-dir: the folder {mask_dir} does not exist; correct it or leave it out")
        masks = masks_by_photo(keys, photos_root, Path(mask_dir), "--mask-dir")
    records = [Record(name=key, real=p, mask=masks.get(key), subset=src.name) for key, p in zip(keys, photos)]
    ds = FolderDataset(records, mask_fallback=mask_fallback, image_size=size if size else 8,
                       resize=resize if size else "none", train=False, on_bad_sample=on_bad_sample,
                       seed=seed, synthesis=options or SynthesisOptions())
    staging.check_replaceable(out, lambda folder: (folder / "synth_info.json").exists(), "synthetic set",
                              {"comp", "alpha", "real", "synth_info.json", *(f"{s}_split.txt" for s in SPLITS)})
    with staging.staged(out) as tmp:
        return _write(ds, records, keys, tmp, dest=out, src=src, size=size, resize=resize, copies=copies,
                      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                      on_bad_sample=on_bad_sample, progress=progress)


SPLITS = ("train", "val", "test")


def _file_bases(keys: list[str]) -> dict[str, str]:
    """Each photo's file name in the set, without extension: its path with "/" as "__" and no extension, unless
    another photo's comes out the same (x.jpg and x.png, a/x.jpg and a__x.jpg), when the extension and a number
    are kept: a name written twice gave one photo's composites to the other's split. One too long for a file name
    keeps its start and a hash of the photo's path (:func:`trainer.builders.names.fitting`)."""
    def uncommented(name: str) -> str:  # a split file's line starting with # is a comment; its lines are read
        name = re.sub(r"^\s+|\s+$", lambda m: "_" * len(m.group()), name)  # stripped of spaces at either end
        return "_" + name if name.startswith("#") else name

    return distinct_bases(keys, lambda key: uncommented(key.rsplit(".", 1)[0].replace("/", "__")),
                          lambda key: uncommented(key.replace("/", "__").replace(".", "_")))


def _all_masks(photos: list[Path]) -> bool:
    """Whether every picture is a black-and-white mask (a mask folder given as the photos); read until one is not,
    so a folder of photos costs one picture's read."""
    from phnet.imageio import read_image
    from phnet.imageio.masks import looks_like_a_mask

    for path in photos:
        try:
            pixels = read_image(path)
        except (OSError, ValueError):  # an unreadable picture: the build says why
            return False
        if not looks_like_a_mask(pixels, share=0.98):  # a black-and-white photo on a white backdrop is none
            return False
    return True


def _check_arguments(src: Path, out: Path, size: int, copies: int, val_fraction: float, test_fraction: float,
                     limit: int) -> None:
    if copies < 1:
        raise ValueError(f"--copies must be at least 1, got {copies}")
    if size < 0:
        raise ValueError(f"--size must be a multiple of 8 above 0, or 0 for the native size; got {size}")
    if limit < 0:
        raise ValueError(f"--limit must be a number of photos (0: all of them), got {limit}")
    for name, fraction in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= fraction <= 1:
            raise ValueError(f"{name} must be from 0 to 1, got {fraction}")
    if val_fraction + test_fraction > 1:
        raise ValueError(f"--val-fraction and --test-fraction add up to {val_fraction + test_fraction:g}: at most 1")
    s, o = src.expanduser().resolve(), out.expanduser().resolve()
    if s == o or s.is_relative_to(o):  # the set replaces its folder whole: the photos would go with it
        raise ValueError(f"the photos ({src}) are inside the output folder {out}, which a build replaces whole: "
                         "choose an output folder outside them")
    if o.is_relative_to(s):
        raise ValueError(f"the output folder {out} is inside the photo folder {src}: the next build would read the "
                         "set's own composites as photos. Choose an output folder outside it")


def _write(ds: FolderDataset, records: list[Record], keys: list[str], out: Path, *, dest: Path, src: Path, size: int,
           resize: str, copies: int, val_fraction: float, test_fraction: float, seed: int, on_bad_sample: str,
           progress: bool) -> dict:
    for sub in ("comp", "alpha", "real"):
        (out / sub).mkdir(parents=True)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    # keys: the same carving as trainer/data/folder.py
    test_keys = {k[5:] for k in holdout_set(["test:" + k for k in keys], test_fraction)}
    val_keys = {k[4:] for k in holdout_set(["val:" + k for k in keys if k not in test_keys], val_fraction)}
    skipped, hashes = [], {}  # hashes: each photo's dHash, to name copies that landed in two splits
    bases = _file_bases(keys)
    iterator = range(len(records))
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="synthetic set", unit="photo")
    for i in iterator:
        rec = records[i]
        key = rec.name
        split = "test" if key in test_keys else "val" if key in val_keys else "train"
        base = bases[key]
        for k in range(copies):
            name = f"{base}.png" if copies == 1 else f"{base}_{k}.png"
            try:
                sample = ds.make_sample(i, np.random.default_rng([seed, i, k]))
            except BadSampleError as exc:
                if on_bad_sample == "error":
                    raise
                warnings.warn(f"skipping {rec.real}: {exc}")
                skipped.append(str(rec.real))
                break
            real = _eight_bit(sample["real"])
            _png(_eight_bit(sample["comp"]), out / "comp" / name)
            _png(_eight_bit(sample["mask"]), out / "alpha" / name)
            _png(real, out / "real" / name)
            splits[split].append(name)
            if k == 0:
                hashes[key] = (dhash64(real), split)  # the picture written, converted once
    if len(skipped) == len(records):
        raise ValueError(f"none of the {len(records)} pictures under {src} could be read (the warnings above say "
                         f"why); no composite was written to {dest}")
    fractions = {"train": 1.0, "val": val_fraction, "test": test_fraction}
    lost = [split for split, names in splits.items() if fractions[split] > 0 and not names]
    if skipped and lost:
        held = [split for split in lost if split != "train"]
        fix = f", or build with --{held[0]}-fraction 0" if held else ""
        carve = " (training then carves its own validation split)" if held and held[0] == "val" else ""
        raise ValueError(f"the {' and '.join(lost)} split of the set would be empty: its photos were skipped (the "
                         f"warnings above say why); mend or remove them, or add photos{fix}{carve}; {dest} was left "
                         "as it was")
    across = copies_across_splits(hashes)
    if across:
        (a, where_a), (b, where_b) = across[0]
        copied = {a for (a, _), _ in across} | {b for _, (b, where) in across if where != "train"}
        warnings.warn(f"{len(copied)} held-out photo(s) have a near-duplicate in another split (first: {a} in "
                      f"{where_a}, {b} in {where_b}): the held-out scores of such a photo are not held-out ones; "
                      f"remove the copies from {src} and build again")
    for split, names in splits.items():  # no empty list: without val_split.txt, training carves its own val
        if names or split == "train":
            (out / f"{split}_split.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    summary = {"source": str(src), "photos": len(records), "copies": copies, "size": size,
               "resize": resize if size else "none",
               "seed": seed, "skipped": len(skipped), **{f"{k}_samples": len(v) for k, v in splits.items()},
               "copies_across_splits": [[a, b] for (a, _), (b, _) in across],
               "synthesis": vars(ds.synthesis)}
    (out / "synth_info.json").write_text(json.dumps(summary, indent=2, default=list) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> int:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.builders.synthetic_set", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of photos (searched recursively)")
    p.add_argument("out", help="output folder (FFHQH layout)")
    p.add_argument("--size", type=int, default=512, help="square side, multiple of 8; 0 = native size")
    p.add_argument("--resize", default="crop", choices=["crop", "pad", "stretch"])
    p.add_argument("--mask-dir", default=None, help="folder of masks (same relative path and stem)")
    p.add_argument("--mask-fallback", default="ellipse", choices=["ellipse", "error"])
    p.add_argument("--copies", type=int, default=1, help="composites per photo")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--test-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transforms", default=",".join(TRANSFORMS),
                   help="comma-separated subset of " + ",".join(TRANSFORMS))
    p.add_argument("--identity-fraction", type=float, default=0.1)
    p.add_argument("--mild-fraction", type=float, default=0.2)
    p.add_argument("--on-bad-sample", default="skip", choices=["skip", "error"])
    p.add_argument("--limit", type=int, default=0, help="use only the first N photos")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.size and a.size % 8:
        p.error(f"--size must be a multiple of 8, got {a.size}")
    try:
        for flag, fraction in (("--identity-fraction", a.identity_fraction), ("--mild-fraction", a.mild_fraction)):
            if not 0 <= fraction <= 1:
                raise ValueError(f"{flag} must be from 0 to 1, got {fraction:g}")
        if a.identity_fraction + a.mild_fraction > 1:
            raise ValueError(f"--identity-fraction and --mild-fraction add up to "
                             f"{a.identity_fraction + a.mild_fraction:g}: at most 1")
        transforms = [t.strip() for t in a.transforms.split(",") if t.strip()]
        if not transforms:
            raise ValueError("--transforms names no transform: give a comma-separated subset of "
                             + ",".join(TRANSFORMS))
        repeated = sorted({t for t in transforms if transforms.count(t) > 1})
        if repeated:
            raise ValueError(f"--transforms names {', '.join(repeated)} more than once: list each transform once")
        opts = SynthesisOptions(transforms=transforms, identity_fraction=a.identity_fraction,
                                mild_fraction=a.mild_fraction)
        summary = build_synthetic_set(a.src, a.out, size=a.size, resize=a.resize, mask_dir=a.mask_dir,
                                      mask_fallback=a.mask_fallback, copies=a.copies, val_fraction=a.val_fraction,
                                      test_fraction=a.test_fraction, seed=a.seed, on_bad_sample=a.on_bad_sample,
                                      options=opts, limit=a.limit, progress=not a.no_progress)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(staging.interrupted(a.out, "set"), file=sys.stderr)
        return interrupted_status()
    print(json.dumps(summary, indent=2, default=list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
