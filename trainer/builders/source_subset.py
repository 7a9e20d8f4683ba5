"""A pool with only part of its training photos, for the curve of error against the number of photos.

    python -m trainer.builders.source_subset data/package_portraits_all data/pool_25 --fraction 0.25

Reads a pool written by ``trainer.builders.package_portraits`` (its ``manifest.json``) and links into OUT
the training pairs of ``--fraction`` of its training *sources* (every pair of a chosen source: its
frames and mask kinds), and all of its val and test pairs, so that every subset is scored on the same
held-out photos. Sources are ranked by a hash of their name, so a smaller fraction is always a subset of
a larger one and the choice does not depend on the order of the files. Files are hard-linked where the
file system allows, copied otherwise. The subset's ``manifest.json`` counts what it kept (``sources``,
``sources_by_split``, ``pairs_by_split_and_mask``); what only the whole pool's build knows (the sources it
read, skipped and held out, its near-duplicate groups) is under ``from_pool``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

from phnet.console import interrupted_status, printable_anywhere
from trainer.builders.staging import check_replaceable, interrupted, staged
from trainer.data import pool_manifest
from trainer.data.common import find_with_any_extension

SPLITS = ("train", "val", "test")
MASKS = ("person", "object", "random")
POOL_ONLY = ("sources", "skipped", "held_out_excluded", "near_duplicate_groups")  # the whole pool's build's


def ranked_sources(entries: list[dict]) -> list[str]:
    """The pool's training sources, in the order subsets take them."""
    sources = {e["source"] for e in entries if e["split"] == "train"}
    return sorted(sources, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def _find(folder: Path, stem: str) -> Path:
    found = find_with_any_extension(folder, stem)
    if found is None:
        raise FileNotFoundError(f"{folder / stem}.* is listed in the manifest but missing: rebuild the pool")
    return found


def _is_subset(folder: Path) -> bool:
    try:
        return "subset" in json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def subset_manifest(manifest: dict, kept: list[dict], summary: dict) -> dict:
    """The pool's manifest with only the ``kept`` entries, counted again; the whole pool's own counts moved
    under ``from_pool`` (a subset of a subset keeps the pool's)."""
    from_pool = manifest.get("from_pool", {k: manifest[k] for k in POOL_ONLY if k in manifest})
    return {**{k: v for k, v in manifest.items() if k not in POOL_ONLY},
            "sources": len({e["source"] for e in kept}),
            "sources_by_split": {s: len({e["source"] for e in kept if e["split"] == s}) for s in SPLITS},
            "pairs_by_split_and_mask": {s: {m: sum(1 for e in kept if e["split"] == s and e.get("mask") == m)
                                            for m in MASKS} for s in SPLITS},
            "entries": kept, "from_pool": from_pool, "subset": summary}


def build_subset(pool: Path, out: Path, fraction: float) -> dict:
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    manifest_path = Path(pool) / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: POOL must be a folder written by "
                                "python -m trainer.builders.package_portraits")
    check_replaceable(Path(out), _is_subset, "pool subset", {*SPLITS, "manifest.json"})  # its own: rebuilt
    if Path(out).expanduser().resolve().is_relative_to(Path(pool).expanduser().resolve()):
        raise ValueError(f"the output folder {out} is inside the pool {pool}: its pictures would be read as the "
                         "pool's own. Choose an output folder outside it")
    manifest = pool_manifest(Path(pool))  # its entries' split and name make the paths of the files linked
    entries = manifest["entries"]
    ranked = ranked_sources(entries)
    if not ranked:
        raise ValueError(f"the pool {pool} has no training pairs: nothing to take a share of")
    chosen = set(ranked[: max(1, math.ceil(fraction * len(ranked)))])
    kept = [e for e in entries if e["split"] != "train" or e["source"] in chosen]
    summary = {"pool": str(pool), "fraction": fraction, "train_sources": len(chosen), "of": len(ranked),
               "pairs": {s: sum(e["split"] == s for e in kept) for s in SPLITS}}
    with staged(Path(out)) as tmp:  # a pool file missing half-way leaves no half subset behind
        for e in kept:
            for kind in ("images", "masks"):
                src = _find(Path(pool) / e["split"] / kind, e["name"])
                _link(src, tmp / e["split"] / kind / src.name)
        (tmp / "manifest.json").write_text(json.dumps(subset_manifest(manifest, kept, summary), indent=1))
    return summary


def main(argv=None) -> int:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.builders.source_subset", description=__doc__.split("\n\n")[0])
    p.add_argument("pool", type=Path, help="a folder written by trainer.builders.package_portraits")
    p.add_argument("out", type=Path, help="new folder for the subset")
    p.add_argument("--fraction", type=float, required=True, help="share of the training sources to keep, in (0, 1]")
    a = p.parse_args(argv)
    try:
        summary = build_subset(a.pool, a.out, a.fraction)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted(a.out, "subset"), file=sys.stderr)
        return interrupted_status()
    print(f"{summary['train_sources']} of {summary['of']} training sources: {summary['pairs']['train']} train, "
          f"{summary['pairs']['val']} val, {summary['pairs']['test']} test pairs -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
