"""Choose a model's do-no-harm threshold on held-out composites, and store it in its config.

    python -m trainer.calibrate runs/default_cpu/best --config runs/default_cpu/run_config.json \\
        --out runs/default_cpu/calibrated

``PHNetConfig.correction_threshold`` drops predicted corrections whose RMS change of the subject
is below the threshold, except for ``correction_floor`` of them; ``correction_ramp`` says how the
larger ones are kept (unset: shortened by the threshold; a number: whole from threshold + ramp on).
Small corrections are the uncertain ones: on composites that already fit and on untouched photos a
harmonizer can only do harm, and a small share of them is all it may apply. The rule: among
(threshold, ramp, floor) choices whose untouched-photo change stays at most ``--max-untouched`` (MSE)
and whose near-right composites (own fMSE < 300) get at most ``--max-near-right`` times their own
error, take the one with the lowest fMSE; if none qualifies, the one that misses those two limits
least.
The validation split of the run's ``[data]`` table is used (never the test split). ``--geometry aspect`` reads
each composite at its own aspect ratio, brought to the working size as the Harmonizer brings it (the sizes
the rule meets in use), instead of stretched to the network's square as in training.

It also prints the **ceiling** of any such rule: the error if each composite got the share of its
correction (of the 41 measured) that suits it best and untouched photos were left alone, which is what a
network that knew exactly when it is wrong could reach. ``--data``/``--split`` with ``--report-only``
score another folder's split (the test split, say) without writing a model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from phnet.atomic import cannot_write_into, dangling_link, missing_target, write_atomic_text
from phnet.console import interrupted_status, printable_anywhere
from trainer.builders import staging
from trainer.data import build_dataset, collate
from trainer.validation import NEAR_RIGHT_FMSE, picture_share


@torch.no_grad()
def collect(model, loader) -> list[dict]:
    """Per batch: composite, real, mask, and the model's unthresholded change of composite and real with its
    size as the model measures it for its threshold, both before the picture is clamped to 0..1: the model
    applies a share ``k`` of a change as ``clamp(picture + k·change)`` (``PHNet.estimate``)."""
    from phnet import PHNet
    from phnet.modeling.phnet import residual_change
    from phnet.modeling.transform import apply_colour_transform, correction_size

    plain = PHNet(dataclasses.replace(model.config, correction_threshold=0.0))
    plain.load_state_dict(model.state_dict())
    plain.eval()

    def proposal(picture: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if plain.config.output == "residual":  # PHNet.estimate's change, which it returns only clamped
            change = residual_change(plain.decode(picture, mask))
            return change.float(), correction_size(change, mask).float()
        output, size, _ = plain.estimate(picture, mask)
        if plain.config.output == "transform":  # coefficients: a share of them is that share of this change
            output = apply_colour_transform(picture.float(), output.float())
        return output.float() - picture, size.float()

    from tqdm import tqdm

    out = []
    for batch in tqdm(loader, desc="the model's corrections", unit="batch", leave=False, file=sys.stderr):
        if "comp" not in batch:
            continue
        comp, real, mask = batch["comp"], batch["real"], batch["mask"]
        change, size = proposal(comp, mask)
        change_real, size_real = proposal(real, mask)
        out.append({"comp": comp, "real": real, "mask": mask, "change": change, "size": size,
                    "change_real": change_real, "size_real": size_real,
                    **({"box": batch["box"]} if "box" in batch else {})})
    return out


def at_working_size(model, loader):
    """Each composite of ``loader`` (native size, any number per batch) as one batch of what the Harmonizer's
    network is given for it: composite, real photo and mask brought to the working size the Harmonizer gives a
    picture of that shape (about ``image_size``² pixels, its aspect ratio kept, sides multiples of 8), by the
    steps of the Harmonizer's own preparation (``phnet.pipeline.prepare_low``) that make the network's input. The
    rest of that preparation (the real photo's mask, where the background is untouched, the subject's coverage)
    serves the full-resolution result, which the errors here are not measured on."""
    from phnet.fullres import downscale, working_shape
    from phnet.pipeline import subject_at
    from phnet.tiling import one_thread

    size = model.config.image_size
    for batch in loader:
        if "comp" not in batch:
            continue
        for i in range(batch["comp"].shape[0]):
            mask = batch["mask"][i, 0]
            low_shape = working_shape(mask.shape[0], mask.shape[1], size)
            with one_thread(mask.device):
                comp, real = (downscale(batch[key][i].permute(1, 2, 0)[..., :3], 1.0, low_shape)
                              for key in ("comp", "real"))
                _, mask_low, _ = subject_at(mask, 1.0, low_shape, mask.device)
            yield {"comp": comp, "real": real, "mask": mask_low}


SHARES = 41  # the errors are measured with 0, 1/40, …, 1 of each proposed change applied


@torch.no_grad()
def error_curves(batches: list[dict], shares: int = SHARES) -> dict[str, np.ndarray]:
    """Per composite, its errors with a share ``k`` of the proposed change applied, for ``shares`` values
    of ``k`` from 0 to 1 (N×shares), and the sizes of the proposed changes (N). A threshold only scales
    each change, so every (threshold, ramp) pair is then scored from these without touching the pixels
    again; between two shares the error is interpolated (it is a parabola in ``k``: off by < 0.2 MSE)."""
    from tqdm import tqdm

    from phnet import metrics

    rows: dict[str, list] = {k: [] for k in ("mse", "fmse", "untouched", "size", "size_real",
                                             "composite_mse", "composite_fmse")}
    for b in tqdm(batches, desc=f"errors at {shares} shares of each", unit="batch", leave=False, file=sys.stderr):
        comp, real, mask, change, change_real = (b[k] for k in ("comp", "real", "mask", "change", "change_real"))
        curves: dict[str, list[torch.Tensor]] = {"mse": [], "fmse": [], "untouched": []}
        for k in np.linspace(0.0, 1.0, shares):  # the picture the model makes with a share k of its change
            out = metrics.blend((comp + float(k) * change).clamp(0, 1), comp, mask)
            curves["mse"].append(metrics.mse(out, real))
            curves["fmse"].append(metrics.fmse(out, real, mask))
            curves["untouched"].append(metrics.mse(metrics.blend((real + float(k) * change_real).clamp(0, 1), real,
                                                                 mask), real))
        share = picture_share(b, comp)[:, None]  # the padding around a picture counts for nothing
        for key, values in curves.items():
            rows[key].append(torch.stack(values, dim=1) / (1.0 if key == "fmse" else share))
        rows["size"].append(b["size"])  # what the model's threshold reads, not the clamped picture's change
        rows["size_real"].append(b["size_real"])
        rows["composite_mse"].append(metrics.mse(comp, real) / share[:, 0])
        rows["composite_fmse"].append(metrics.fmse(comp, real, mask))
    return {key: torch.cat(values).double().numpy() for key, values in rows.items()}


def _at(curve: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Each row of ``curve`` (N×shares over k = 0..1) read at its own share ``kept`` (N)."""
    position = kept * (curve.shape[1] - 1)
    low = np.clip(np.floor(position).astype(int), 0, curve.shape[1] - 2)
    frac = position - low
    rows = np.arange(len(curve))
    return curve[rows, low] * (1 - frac) + curve[rows, low + 1] * frac


def score(curves: dict[str, np.ndarray], threshold: float, ramp: float | None = None, floor: float = 0.0) -> dict:
    """The errors of one (threshold, ramp, floor) choice, from :func:`error_curves`."""
    from phnet.modeling.transform import kept_fraction

    def kept(size: np.ndarray) -> np.ndarray:
        return kept_fraction(torch.from_numpy(size), threshold, ramp, floor).numpy()

    share = kept(curves["size"])
    untouched = _at(curves["untouched"], kept(curves["size_real"]))
    return {"threshold": threshold, "ramp": ramp, "floor": floor,
            **_errors(curves, _at(curves["mse"], share), _at(curves["fmse"], share), untouched)}


def ceiling(curves: dict[str, np.ndarray]) -> dict:
    """The errors of a gate that knew, for each composite, the measured share of its correction with the
    lowest fMSE, and left untouched photos alone: the best any rule on these corrections can do."""
    best = curves["fmse"].argmin(axis=1)
    rows = np.arange(len(best))
    errors = _errors(curves, curves["mse"][rows, best], curves["fmse"][rows, best], np.zeros(len(best)))
    return {**errors, "mean_share": float(best.mean() / (curves["fmse"].shape[1] - 1))}


def _errors(curves: dict[str, np.ndarray], mse: np.ndarray, fmse: np.ndarray, untouched: np.ndarray) -> dict:
    """Mean errors of per-composite results, beside doing nothing's, overall and on near-right composites."""
    near = curves["composite_fmse"] < NEAR_RIGHT_FMSE
    return {"mse": float(mse.mean()), "fmse": float(fmse.mean()),
            "composite_mse": float(curves["composite_mse"].mean()),
            "composite_fmse": float(curves["composite_fmse"].mean()),
            # none without near-right composites, as the trainer's validation stores it
            "near_right_fmse": float(fmse[near].mean()) if near.any() else None,
            "composite_near_right_fmse": float(curves["composite_fmse"][near].mean()) if near.any() else None,
            "near_right_n": int(near.sum()), "untouched_mse": float(untouched.mean()), "n": int(len(near))}


def describe(row: dict) -> str:
    """One line of errors as a share of doing nothing's."""
    def ratio(key: str) -> str:  # none where doing nothing scores 0 (the only near-right ones are untouched)
        nothing = row[f"composite_{key}"]
        return f"{row[key] / nothing:.2f}x" if nothing > 1e-6 else "doing nothing: 0"

    near = ("n/a (none here)" if row["near_right_fmse"] is None else
            f"{row['near_right_fmse']:.1f} ({ratio('near_right_fmse')})")
    return (f"MSE {row['mse']:.1f} ({ratio('mse')}) fMSE {row['fmse']:.1f} ({ratio('fmse')}) near-right {near} "
            f"untouched {row['untouched_mse']:.2f}")


def _near_right_ratio(row: dict) -> float:
    """Near-right fMSE over doing nothing's; 0 (no limit to break) where there are no near-right composites, or
    where doing nothing scores 0 on them: they are then photos left as they were, which --max-untouched bounds."""
    if row["near_right_fmse"] is None or row["composite_near_right_fmse"] <= 1e-6:
        return 0.0
    return row["near_right_fmse"] / row["composite_near_right_fmse"]


def missed(row: dict, max_untouched: float, max_near_right: float) -> list[str]:
    """The do-no-harm limits a rule's scores break, in words (none: the rule is within them)."""
    ratio = _near_right_ratio(row)
    return ([f"untouched MSE {row['untouched_mse']:.2f} > {max_untouched:g}"] * (row["untouched_mse"] > max_untouched)
            + [f"near-right {ratio:.2f}x > {max_near_right:g}x"] * (ratio > max_near_right))


def choose(table: list[dict], max_untouched: float, max_near_right: float) -> dict:
    def excess(row):
        ratio = _near_right_ratio(row)
        return (max(0.0, row["untouched_mse"] - max_untouched) / max(max_untouched, 1e-6)
                + max(0.0, ratio - max_near_right))

    feasible = [row for row in table if excess(row) == 0]
    if feasible:
        return min(feasible, key=lambda row: row["fmse"])
    return min(table, key=lambda row: (excess(row), row["fmse"]))


MAX_GRID = 10_000
MAX_RULES = 1_000_000  # the default grids make 10648


def grid(spec: str) -> np.ndarray:
    try:
        start, stop, step = (float(v) for v in spec.split(":"))
    except ValueError:
        raise ValueError(f"expected start:stop:step, got {spec!r}") from None
    if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop < start or start < 0:
        raise ValueError(f"expected start:stop:step with 0 <= start <= stop and step > 0, got {spec!r}")
    if (stop - start) / step >= MAX_GRID:  # each value is a rule scored on every composite
        raise ValueError(f"{spec!r} gives more than {MAX_GRID} values: take a larger step")
    return np.round(np.arange(start, stop + 1e-9, step), 6)


def parse_ramps(spec: str) -> list[float | None]:
    ramps: list[float | None] = []
    for part in spec.split(","):
        ramps += [None] if part.strip() == "soft" else [float(r) for r in grid(part.strip())]
    return ramps


GEOMETRIES = ("square", "aspect")

# what a calibration writes (the official weights' terms too, where they were trained on from them)
CALIBRATED_FILES = {"config.json", "model.safetensors", "calibration.json", "LICENSE-WEIGHTS.txt"}


def main(argv=None) -> int:
    printable_anywhere()
    p = parser()
    a = p.parse_args(argv)
    check_arguments(p, a)
    try:
        return calibrate(a)
    except (ValueError, OSError) as exc:  # a bad path, config or data set: the message says what to do
        from trainer.evaluation.data_table import in_flags

        print(f"error: {in_flags(str(exc), a)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(staging.interrupted(None, "report") if a.report_only else staging.interrupted(a.out, "calibrated model"),
              file=sys.stderr)
        return interrupted_status()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", help="model folder (e.g. runs/default_cpu/best)")
    p.add_argument("--config", required=True,
                   help="the run's trainer config: the run folder, its run_config.json, or a .toml")
    p.add_argument("--out", help="folder for the calibrated model (config.json + model.safetensors)")
    p.add_argument("--max-untouched", type=float, default=5.0, help="MSE of the change on untouched photos")
    p.add_argument("--max-near-right", type=float, default=1.1, help="near-right fMSE over doing nothing's")
    p.add_argument("--thresholds", default="0:60:0.5", help="start:stop:step in 0-255 units (default 0:60:0.5)")
    p.add_argument("--ramps", default="soft,0:24:4",
                   help="ramps to try: 'soft' (shorten every correction by the threshold) and/or start:stop:step "
                        "(0-255 units; default soft,0:24:4)")
    p.add_argument("--floors", default="0:0.5:0.05",
                   help="shares of a correction below the threshold still applied, start:stop:step (default "
                        "0:0.5:0.05; 0:0:1 = none)")
    p.add_argument("--geometry", choices=GEOMETRIES, default="square",
                   help="how each composite reaches the network: square = stretched to the weights' image_size "
                        "square, as in training (default); aspect = made at its photo's own size and brought to "
                        "the working size the Harmonizer gives it (about image_size squared pixels, the aspect "
                        "ratio kept), where the rule is read in use; the errors are then scored at that size")
    p.add_argument("--data", help="score the composites of this data-set folder instead of the run's val split "
                                  "(a pool's root, with --split; the run's own photo and mask folders are not used)")
    p.add_argument("--kind", choices=["auto", "iharmony", "ffhqh", "folder"],
                   help="data.kind of --data (default: read off the folder)")
    p.add_argument("--mask-dir", help="the masks of --data's photos (a pool's root finds its own)")
    p.add_argument("--ffhq-root", help="the real photos of an FFHQH --data (data.ffhq_root)")
    p.add_argument("--split", default="val", choices=["val", "test", "all"],
                   help="the split of --data (or of the run) to score (all: every photo of a photo folder); test "
                        "only with --report-only")
    p.add_argument("--report-only", action="store_true",
                   help="print the best rule and the ceiling for these composites; write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace the calibrated model already in --out (the "
                   "folder is replaced whole: one holding anything else, a run's files, is refused)")
    return p


def check_arguments(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Refuse (``p.error``) what would fail after the work, before any composite is read: grids that make no rules
    or too many, negative limits, an ``--out`` that cannot take the calibrated model, a split that cannot be
    scored. The grids are replaced by their values."""
    for flag, parse in (("thresholds", grid), ("ramps", parse_ramps), ("floors", grid)):
        spec = getattr(a, flag)
        try:
            setattr(a, flag, [v if v is None else float(v) for v in parse(spec)])
        except ValueError as e:
            p.error(f"--{flag}: {e}")
        if flag == "floors" and a.floors[-1] > 1:
            p.error(f"--floors are shares from 0 to 1, got {spec!r}")
    rules = len(a.thresholds) * len(a.ramps) * len(a.floors)
    if rules > MAX_RULES:  # each is scored on every composite and kept in the table
        p.error(f"--thresholds, --ramps and --floors make {rules} rules, more than {MAX_RULES}: take larger steps")
    if a.out:  # --out=~/x: the shell leaves a ~ after = as it is
        a.out = str(Path(a.out).expanduser())
    if not a.report_only and not a.out:
        p.error("--out is required (or --report-only)")
    if a.max_untouched < 0 or a.max_near_right < 0:
        p.error("--max-untouched and --max-near-right are limits of errors: 0 or more")
    if a.out and not a.report_only:
        check_out(p, Path(a.out), a.overwrite)
    try:
        from trainer.evaluation.data_table import check_split_all

        why = check_split_all(a.split, a.data, a.config)
    except (ValueError, OSError) as exc:
        why = str(exc)
    if why:
        p.error(why)
    if a.split == "test" and not a.report_only:
        p.error("a rule chosen on the test split would be scored on the composites it was chosen on: "
                "calibrate on val, and use --split test with --report-only to read the test split")


def check_out(p: argparse.ArgumentParser, out: Path, overwrite: bool) -> None:
    """``out`` can take the calibrated model: a new folder, or with ``overwrite`` one holding a calibrated model
    alone, whose parent can be written into."""
    try:  # --overwrite replaces a calibrated model, never a run or a checkpoint beside it
        staging.check_replaceable(out, lambda folder: (folder / "config.json").is_file(), "calibrated model",
                                  CALIBRATED_FILES, quiet=not overwrite)
    except FileExistsError as e:
        p.error(str(e))
    if out.exists() and any(out.iterdir()) and not overwrite:
        p.error(f"{out} already holds a calibrated model: give a new folder, or --overwrite to replace it")
    link = dangling_link(out)
    if link is not None:  # staging would make its target's folders: on an unmounted drive, under the mount point
        p.error(f"--out {out}: {missing_target(link)}; connect it, or give another --out")
    # it is built beside its place (staging.staged): found after the work, the error named that hidden folder
    problem = cannot_write_into((out.resolve() if out.is_symlink() else out.absolute()).parent)
    if problem:
        p.error(f"--out {out}: {problem}, where the calibrated model is built: make it writable, or give "
                "another --out")


def calibrate(a: argparse.Namespace) -> int:
    from phnet.weights import load_model, save_pretrained
    from trainer.config import read_config

    cfg = read_config(a.config)
    model = load_model(a.weights).eval()
    if model.config.output == "image" and not a.report_only:  # before the work, not after it
        raise ValueError(f"{a.weights} predicts whole pictures (output 'image', as the official weights do): there "
                         "is no correction to hold to a threshold. Read its ceiling with --report-only")
    # --data changes where the photos are, not how the run split them: the run's own photo and mask folders go
    data = dict(cfg["data"], num_workers=0)
    if a.data:
        from trainer.evaluation.data_table import data_for_other

        data = data_for_other(data, a.data)  # its own layout, not the run's (a set, where it had photos)
    if a.kind:
        data["kind"] = a.kind
    if a.mask_dir:
        data["mask_dir"] = a.mask_dir
    if a.ffhq_root:
        data["ffhq_root"] = a.ffhq_root
    aspect = a.geometry == "aspect"
    ds = build_dataset(data, a.split, image_size=model.config.image_size, resize="none" if aspect else None)
    if ds.not_held_out:
        print(f"warning: {ds.not_held_out}", file=sys.stderr)
    thresholds, ramps, floors = a.thresholds, a.ramps, a.floors
    loader = DataLoader(ds, batch_size=1 if aspect else 16, shuffle=False, collate_fn=collate)
    batches = collect(model, at_working_size(model, loader) if aspect else loader)
    if not batches:
        raise ValueError(f"no composite of the {a.split} split could be read (see the warnings above): nothing "
                         "to choose a rule on")
    curves = error_curves(batches)
    near_right = curves["composite_fmse"][curves["composite_fmse"] < NEAR_RIGHT_FMSE]
    if not near_right.size or near_right.mean() <= 1e-6:  # or only photos left as they were (--max-untouched)
        but = " but photos left as they were" if near_right.size else ""
        print(f"warning: none of these {len(curves['size'])} composites is near-right (fMSE below "
              f"{NEAR_RIGHT_FMSE:g}){but}, so the --max-near-right limit is not tested: use a split with more "
              "composites", file=sys.stderr)
    table = [score(curves, t, r, f) for f in floors for r in ramps for t in thresholds]
    best = choose(table, a.max_untouched, a.max_near_right)
    for f in floors:  # the best choice at each floor
        row = choose([row for row in table if row["floor"] == f], a.max_untouched, a.max_near_right)
        broken = missed(row, a.max_untouched, a.max_near_right)
        mark = (f" (over the limits: {', '.join(broken)})" if broken else "") + (" <" if row is best else "")
        r, near = row["ramp"], row["near_right_fmse"]
        near = "   n/a" if near is None else f"{near:6.1f} (nothing {row['composite_near_right_fmse']:.1f})"
        print(f"floor {f:4.2f} ramp {'soft' if r is None else f'{r:g}':>4} threshold {row['threshold']:5.1f}: MSE "
              f"{row['mse']:7.1f} fMSE {row['fmse']:7.1f} near-right {near} untouched {row['untouched_mse']:6.2f}"
              f"{mark}", file=sys.stderr)
    top = ceiling(curves)
    print(f"chosen rule: {describe(best)}", file=sys.stderr)
    over = missed(best, a.max_untouched, a.max_near_right)
    best = {**best, "within_limits": not over}
    if over:
        print(f"warning: no rule of these grids keeps within the do-no-harm limits; the chosen one is the nearest, "
              f"with {' and '.join(over)}: widen --thresholds or --floors, or loosen --max-untouched / "
              "--max-near-right", file=sys.stderr)
    print(f"ceiling (each composite's best share, untouched photos left alone; mean share "
          f"{top['mean_share']:.2f}): {describe(top)}", file=sys.stderr)
    if a.report_only:
        print(json.dumps({"chosen": best, "ceiling": top}))
        return 0
    calibrated = type(model)(dataclasses.replace(model.config, correction_threshold=float(best["threshold"]),
                                                 correction_ramp=best["ramp"], correction_floor=best["floor"]))
    calibrated.load_state_dict(model.state_dict())
    try:
        with staging.staged(Path(a.out)) as folder:  # whole: nothing of what --overwrite replaces is left beside it
            save_pretrained(calibrated, folder)
            write_atomic_text(folder / "calibration.json",
                              json.dumps({"chosen": best, "ceiling": top, "geometry": a.geometry, "table": table},
                                         indent=1) + "\n")
    except OSError as e:
        if e.errno is None:  # staged's own message
            raise
        raise OSError(f"cannot write the calibrated model into {a.out} ({os.strerror(e.errno)}); {a.out} is as it "
                      "was: free some space or make it writable, or give another --out") from e
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
