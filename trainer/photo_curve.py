"""Held-out error against the number of training photos: one point per run, a table and a PNG.

    python -m trainer.photo_curve runs/photos_* --out docs/default-weights-photos-curve.png

Each run folder's ``run_config.json`` names its training folder, whose pool ``manifest.json``
(``trainer.builders.source_subset`` or ``package_portraits``) gives the number of training sources;
the run's ``log.jsonl`` gives its best validation fMSE and MSE and those of doing nothing. Runs meant for
one curve share the recipe and the validation split; only the photos differ.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from phnet.atomic import picture_writer, write_atomic
from phnet.console import interrupted_status, printable_anywhere
from trainer.builders.staging import interrupted
from trainer.config import RUN_CONFIG_NAME, run_config_path
from trainer.curves import BASE, BG, VAL, panel, spread

MSE_COLOUR = (31, 100, 180)


def point(run: Path) -> dict:
    """The run's training sources and the validation record with the lowest fMSE."""
    config_path = run_config_path(run) or run / RUN_CONFIG_NAME  # an older run's config.json too
    log_path = run / "log.jsonl"
    for path in (config_path, log_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give run folders written by python -m trainer.fit")
    config = json.loads(config_path.read_text())
    root = Path(config["data"]["root"]).expanduser()
    from trainer.data import is_pool, pool_entries

    pool = next((p for p in (root, *root.parents) if is_pool(p)), None)  # another tool's manifest.json is none
    if pool is None:
        raise FileNotFoundError(f"no pool (a manifest.json of trainer.builders.package_portraits) in or above {root}: "
                                "train on a pool built by trainer.builders.package_portraits or source_subset")
    entries = pool_entries(pool)
    sources = len({e["source"] for e in entries if e["split"] == "train"})
    records = []
    for number, line in enumerate(log_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short (the run was killed while writing it) says nothing
            print(f"warning: {log_path} line {number} is not a whole record; skipped", file=sys.stderr)
    vals = [r for r in records if r.get("type") == "val" and r.get("n")]
    if not vals:
        raise ValueError(f"{log_path} has no validation record: the run must validate (train.val_every)")
    # a NaN record is no best point (the trainer's best/ passes it over too)
    finite = [v for v in vals if isinstance(v.get("fmse"), (int, float)) and math.isfinite(v["fmse"])]
    if not finite:
        raise ValueError(f"{log_path} has no validation record with a finite fMSE (the run diverged): leave the run "
                         "out of the curve or train it again")
    best = min(finite, key=lambda v: v["fmse"])
    near_right, nothing = best.get("near_right_fmse"), best.get("composite_near_right_fmse")
    return {"run": run.name, "sources": sources, "budget": int(config.get("train", {}).get("steps", 0)),
            "step": best["step"], "fmse": best["fmse"], "mse": best["mse"],
            "fmse_ratio": best["fmse"] / max(best["composite_fmse"], 1e-6),
            "mse_ratio": best["mse"] / max(best["composite_mse"], 1e-6),
            # none where doing nothing scores 0 there (the only near-right composites are untouched photos)
            # (and none in an older run's log, which has no such records)
            "near_right_ratio": near_right / nothing if near_right is not None and (nothing or 0) > 1e-6 else None,
            "untouched_mse": best.get("untouched_mse")}


COLOURS = {"orange": VAL, "blue": MSE_COLOUR, "green": (60, 150, 80), "purple": (150, 60, 160),
           "red": (190, 50, 50), "teal": (30, 150, 150), "brown": (130, 90, 40), "grey": (110, 110, 110)}


def budgets_of(points: list[dict]) -> list[int]:
    """The step budgets of the runs, each a line of its own colour (so many at most)."""
    budgets = sorted({p["budget"] for p in points})
    if len(budgets) > len(COLOURS):
        raise ValueError(f"the runs have {len(budgets)} step budgets and the curve tells {len(COLOURS)} apart: draw "
                         "the budgets in two pictures")
    return budgets


def draw(points: list[dict], path: Path, size=(520, 320)) -> Path:
    """Validation fMSE over doing nothing against the number of photos, one line per step budget."""
    font = ImageFont.load_default()
    img = Image.new("RGB", size, BG)
    budgets = budgets_of(points)
    xs = [p["sources"] for p in points]
    series = [([(x, 1.0) for x in spread(min(xs), max(xs))], BASE, 1, True)]
    for budget, colour in zip(budgets, COLOURS.values()):
        series.append(([(p["sources"], p["fmse_ratio"]) for p in points if p["budget"] == budget], colour, 2, False))
    names = ", ".join(f"{name} {b} steps" for b, name in zip(budgets, COLOURS))
    panel(ImageDraw.Draw(img), (0, 0, *size), f"best validation fMSE / doing nothing ({names})",
          "training photos (sources)", "ratio", series, font)
    write_atomic(Path(path), picture_writer(img, "PNG"))
    return Path(path)


def main(argv=None) -> int:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.photo_curve", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders, one per number of photos")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    a = p.parse_args(argv)
    if a.out.is_dir() or not a.out.parent.is_dir() or a.out.suffix.lower() != ".png":
        p.error(f"--out {a.out}: give a PNG file name (.png) in an existing folder")
    replacing = a.out.exists()
    runs, seen = [], set()
    for run in a.runs:  # a run given twice is one point
        if run.resolve() not in seen:
            seen.add(run.resolve())
            runs.append(run)
    try:
        return _curve(runs, a.out, replacing)
    except KeyboardInterrupt:
        print(interrupted(None, "curve"), file=sys.stderr)
        return interrupted_status()


def _curve(runs: list[Path], out: Path, replacing: bool) -> int:
    """The runs' table, printed, and their curve, written to ``out``."""
    try:
        points = sorted((point(run) for run in runs), key=lambda q: (q["budget"], q["sources"]))
        budgets_of(points)  # refused before the table, not after it
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| training sources | run | steps | best step | val MSE (× nothing) | val fMSE (× nothing) | near-right × | "
          "untouched |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for q in points:
        print(f"| {q['sources']} | {q['run']} | {q['budget']} | {q['step']} | {q['mse']:.1f} ({q['mse_ratio']:.2f}×) | "
              f"{q['fmse']:.1f} ({q['fmse_ratio']:.2f}×) | "
              f"{'n/a' if q['near_right_ratio'] is None else format(q['near_right_ratio'], '.2f')} | "
              f"{'n/a' if q['untouched_mse'] is None else format(q['untouched_mse'], '.1f')} |")
    print(f"{'replaced' if replacing else 'wrote'} {draw(points, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
