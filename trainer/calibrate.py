"""Choose a model's do-no-harm threshold on held-out composites, and store it in its config.

    python -m trainer.calibrate runs/default_cpu/best --config runs/default_cpu/run_config.json --out runs/default_cpu/calibrated

``PHNetConfig.correction_threshold`` drops predicted corrections whose RMS change of the subject
is below the threshold and shortens larger ones by it. Small corrections are the uncertain ones:
on composites that already fit and on untouched photos a harmonizer can only do harm. The rule:
among thresholds whose untouched-photo change stays at most ``--max-untouched`` (MSE) and whose
near-right composites (own fMSE < 300) get at most ``--max-near-right`` times their own error,
take the one with the lowest fMSE; if none qualifies, the one that misses those two limits least.
The validation split of the run's ``[data]`` table is used (never the test split).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from trainer.data import build_dataset, collate
from trainer.validation import NEAR_RIGHT_FMSE


@torch.no_grad()
def collect(model, loader) -> list[dict]:
    """Per batch: composite, real, mask and the model's unthresholded change of composite and real."""
    from phnet import PHNet

    plain = PHNet(dataclasses.replace(model.config, correction_threshold=0.0))
    plain.load_state_dict(model.state_dict())
    plain.eval()
    out = []
    for batch in loader:
        if "comp" not in batch:
            continue
        comp, real, mask = batch["comp"], batch["real"], batch["mask"]
        out.append({"comp": comp, "real": real, "mask": mask,
                    "change": plain(comp, mask).float() - comp, "change_real": plain(real, mask).float() - real})
    return out


def score(batches: list[dict], threshold: float) -> dict:
    from phnet import metrics
    from phnet.modeling.transform import threshold_scale

    rows = {"mse": [], "fmse": [], "composite_fmse": [], "composite_mse": [], "untouched": []}
    for b in batches:
        comp, real, mask = b["comp"], b["real"], b["mask"]
        pred = (comp + threshold_scale(b["change"], mask, threshold) * b["change"]).clamp(0, 1)
        out = metrics.blend(pred, comp, mask)
        pred_real = (real + threshold_scale(b["change_real"], mask, threshold) * b["change_real"]).clamp(0, 1)
        rows["mse"] += metrics.mse(out, real).tolist()
        rows["fmse"] += metrics.fmse(out, real, mask).tolist()
        rows["composite_mse"] += metrics.mse(comp, real).tolist()
        rows["composite_fmse"] += metrics.fmse(comp, real, mask).tolist()
        rows["untouched"] += metrics.mse(metrics.blend(pred_real, real, mask), real).tolist()
    r = {k: np.asarray(v) for k, v in rows.items()}
    near = r["composite_fmse"] < NEAR_RIGHT_FMSE
    return {"threshold": threshold, "mse": float(r["mse"].mean()), "fmse": float(r["fmse"].mean()),
            "composite_mse": float(r["composite_mse"].mean()), "composite_fmse": float(r["composite_fmse"].mean()),
            "near_right_fmse": float(r["fmse"][near].mean()) if near.any() else 0.0,
            "composite_near_right_fmse": float(r["composite_fmse"][near].mean()) if near.any() else 0.0,
            "near_right_n": int(near.sum()), "untouched_mse": float(r["untouched"].mean()), "n": int(len(near))}


def choose(table: list[dict], max_untouched: float, max_near_right: float) -> dict:
    def excess(row):
        ratio = row["near_right_fmse"] / max(row["composite_near_right_fmse"], 1e-6)
        return max(0.0, row["untouched_mse"] - max_untouched) / max_untouched + max(0.0, ratio - max_near_right)

    feasible = [row for row in table if excess(row) == 0]
    if feasible:
        return min(feasible, key=lambda row: row["fmse"])
    return min(table, key=lambda row: (excess(row), row["fmse"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", help="model folder (e.g. runs/default_cpu/best)")
    p.add_argument("--config", required=True, help="the run's trainer config: the run folder, its run_config.json, or a .toml")
    p.add_argument("--out", required=True, help="folder for the calibrated model (config.json + model.safetensors)")
    p.add_argument("--max-untouched", type=float, default=5.0, help="MSE of the change on untouched photos")
    p.add_argument("--max-near-right", type=float, default=1.1, help="near-right fMSE over doing nothing's")
    p.add_argument("--thresholds", default="0:40:0.5", help="start:stop:step in 0-255 units (default 0:40:0.5)")
    a = p.parse_args(argv)
    try:
        return calibrate(a)
    except (ValueError, OSError) as exc:  # a bad path, config or data set: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return 2


def calibrate(a: argparse.Namespace) -> int:
    from phnet.weights import load_model, save_pretrained
    from trainer.config import read_config

    cfg = read_config(a.config)
    model = load_model(a.weights).eval()
    data = dict(cfg["data"], num_workers=0)
    ds = build_dataset(data, "val", image_size=model.config.image_size)
    batches = collect(model, DataLoader(ds, batch_size=16, shuffle=False, collate_fn=collate))
    start, stop, step = (float(v) for v in a.thresholds.split(":"))
    table = [score(batches, float(t)) for t in np.arange(start, stop + 1e-9, step)]
    best = choose(table, a.max_untouched, a.max_near_right)
    for row in table:
        mark = " <" if row is best else ""
        print(f"threshold {row['threshold']:5.1f}: MSE {row['mse']:7.1f} fMSE {row['fmse']:7.1f} near-right "
              f"{row['near_right_fmse']:6.1f} (nothing {row['composite_near_right_fmse']:.1f}) untouched "
              f"{row['untouched_mse']:6.2f}{mark}", file=sys.stderr)
    calibrated = type(model)(dataclasses.replace(model.config, correction_threshold=float(best["threshold"])))
    calibrated.load_state_dict(model.state_dict())
    out = save_pretrained(calibrated, a.out)
    (Path(out) / "calibration.json").write_text(json.dumps({"chosen": best, "table": table}, indent=1) + "\n")
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
