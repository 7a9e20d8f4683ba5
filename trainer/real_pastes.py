"""Real pastes, no ground truth: people cut from some held-out photos, pasted onto others.

    python -m trainer.real_pastes data/package_portraits --weights new=runs/default_cpu/calibrated \
        --weights previous=OLD_WEIGHTS --out docs/images/real-pastes.png

Subjects are photos whose builder mask is a *person*; backgrounds are other photos (see
``pick_pairs``; ``--subjects`` / ``--backgrounds`` name them). Each row is
one paste: composite | each model's result. Printed per paste and model: how far the subject's
mean colour moved toward the background's (in 0-255 units, positive = toward the scene's light).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from phnet.console import interrupted_status, printable_anywhere
from trainer.builders.staging import interrupted
from trainer.evaluation.candidates import parse_weights
from trainer.evaluation.grid import save_grid


def _load(path: Path) -> np.ndarray:
    from phnet.imageio import read_image

    pixels = read_image(path)
    return np.asarray(pixels[..., :3], dtype=np.float32) / 255.0


def pick_pairs(root: Path, rows: int, subjects: list[str], backgrounds: list[str]) -> list[tuple[Path, Path, Path]]:
    """(subject image, subject mask, background image) pairs from a builder folder, deterministic.

    Without names: the test split's person photos, and its other photos whose mean colour is
    furthest from neutral.
    """
    from trainer.data import is_pool, pool_entries

    if not is_pool(root):
        raise ValueError(f"{root} is not a pool (no manifest.json of trainer.builders.package_portraits): give a pool "
                         "that trainer.builders.package_portraits (or source_subset) wrote")
    entries = {e["name"]: e for e in pool_entries(root)}
    unknown = [n for n in subjects + backgrounds if n not in entries]
    if unknown:
        raise ValueError(f"not in {root / 'manifest.json'}: {unknown}; give photo names from it to --subjects / "
                         "--backgrounds")
    test = [e for e in entries.values() if e["split"] == "test"]
    subjects = subjects or [e["name"] for e in test if e.get("mask") == "person"]

    def image(name: str) -> Path:
        return root / entries[name]["split"] / "images" / f"{name}.png"

    def cast(name: str) -> float:
        rgb = _load(image(name)).reshape(-1, 3).mean(0)
        return float(np.abs(rgb - rgb.mean()).sum())

    backgrounds = backgrounds or sorted((e["name"] for e in test if e.get("mask") != "person"), key=cast, reverse=True)
    if not subjects or not backgrounds:
        raise ValueError(f"{root} has no person photos or no other photos in its test split; name them with "
                         "--subjects and --backgrounds")
    # every subject once per round, each round on the next background: no pair comes twice
    order = [(s, backgrounds[(j + shift) % len(backgrounds)])
             for shift in range(len(backgrounds)) for j, s in enumerate(subjects)][:rows]
    if len(order) < rows:
        print(f"note: {len(subjects)} subject(s) × {len(backgrounds)} background(s) make {len(order)} distinct "
              f"pastes; the grid has {len(order)} rows, not {rows}", file=sys.stderr)
    return [(image(s), root / entries[s]["split"] / "masks" / f"{s}.png", image(b)) for s, b in order]


def paste(subject: Path, mask: Path, background: Path) -> tuple[np.ndarray, np.ndarray]:
    from phnet.compositing import paste_subject
    from phnet.imageio import read_mask

    bg = _load(background)
    fg, m = _load(subject), read_mask(mask)
    scale = 0.9 * min(bg.shape[0] / fg.shape[0], bg.shape[1] / fg.shape[1])
    return paste_subject(bg, fg, m, x=bg.shape[1] / 2, y=bg.shape[0], scale=scale, anchor="bottom-center")


def main(argv=None) -> int:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.real_pastes", description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="a data-set builder folder (manifest.json, train/ val/ test/)")
    p.add_argument("--subjects", default="", help="comma-separated photo names (default: the test split's people)")
    p.add_argument("--backgrounds", default="", help="comma-separated photo names (default: strong casts first)")
    p.add_argument("--weights", "-w", action="append", required=True, help="LABEL=PATH, repeatable")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--out", type=Path, required=True, help="the grid picture (.png)")
    a = p.parse_args(argv)
    if a.out.suffix.lower() != ".png" or a.out.is_dir():
        p.error(f"--out {a.out}: give a .png file name for the grid")
    if a.rows < 1:
        p.error(f"--rows {a.rows}: give at least 1")
    try:
        return _grid(a)
    except (ValueError, OSError) as exc:  # a bad folder, name or weights: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted(None, "grid"), file=sys.stderr)
        return interrupted_status()


def _grid(a: argparse.Namespace) -> int:
    from phnet import Harmonizer

    models = {label: Harmonizer.from_pretrained(path, device="cpu") for label, path in parse_weights(a.weights).items()}
    cells, report = [], []
    names = lambda text: [n for n in text.split(",") if n]  # noqa: E731
    for subject, mask, background in pick_pairs(a.root, a.rows, names(a.subjects), names(a.backgrounds)):
        comp, m = paste(subject, mask, background)
        t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float()  # noqa: E731
        row = {"composite": t(comp)}
        inside, outside = m >= 0.5, m < 0.5
        pull = comp[outside].mean(0) - comp[inside].mean(0)  # where the subject's mean colour would have to go
        line: dict[str, str | float] = {"subject": subject.stem, "background": background.stem}
        for label, harmonizer in models.items():
            out = harmonizer(comp, m)
            row[label] = t(out)
            moved = out[inside].mean(0) - comp[inside].mean(0)
            line[label] = round(255 * float(moved @ pull / max(np.linalg.norm(pull), 1e-6)), 2)
        cells.append(row)
        report.append(line)
        print(json.dumps(line))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(cells, ["composite", *models], a.out, side=192)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
