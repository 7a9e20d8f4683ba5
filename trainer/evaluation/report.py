"""What an evaluation writes: the Markdown report, the per-image table, and ``results.json``, ``results.md`` and
``grid.png``, none of them replaced before all three are written."""
from __future__ import annotations

import json
from pathlib import Path

from phnet.atomic import write_atomic
from trainer.evaluation.grid import save_grid
from trainer.evaluation.scoring import METRICS


PEAKS = ("PSNR and fPSNR use each ground truth's own peak, max(gt)², as the official PHNet tester does; PSNR255 and "
         "fPSNR255 use the fixed 255² of the DoveNet/bcmi iHarmony4 evaluation (which peak a paper used is worth "
         "checking before comparing). On a photo that never reaches 255 the own-peak values are lower by "
         "20·log10(255/max(gt)) dB. Neither quantises to 8 bits.")


METHOD_LABELS = {"composite": "composite (do nothing)", "reinhard": "Reinhard Lab transfer",
                 "mkl": "MKL colour transfer (color-matcher)", "phnet": "PHNet"}


def sampled(meta: dict) -> str:
    """What the sample count leaves out: a spread chosen by --max-samples, samples skipped as unreadable."""
    everyone, spread, skipped = meta.get("split_samples"), meta.get("spread"), meta.get("skipped", 0)
    parts = [f"a fixed spread of {spread} over the split (--max-samples)"] if spread else []
    if skipped:
        parts.append(f"{skipped} skipped as unreadable (--on-bad-sample skip)")
    return f" of {everyone}: {'; '.join(parts)}" if parts and everyone else ""


def to_markdown(summary: dict, meta: dict) -> str:
    methods = list(summary["overall"])
    lines = [f"# Evaluation: "
             f"{', '.join(f'{k} = {v}' for k, v in (meta.get('weights') or {}).items()) or '(baselines only)'}", ""]
    if meta.get("not_held_out"):
        lines.extend([f"**{meta['not_held_out']}**", ""])
    lines.extend([f"Data `{meta['data']}` ({meta['kind']}, split `{meta['split']}`, {meta['samples']} samples"
                  f"{sampled(meta)}), resolution {meta['resolution']}"
                  f"{RESIZE_NOTES.get(meta.get('resize') or '', '')}. MSE/fMSE lower is better, PSNR/fPSNR higher "
                  f"(dB). {PEAKS}", ""])

    def table(title: str, groups: dict | None, label: str):
        lines.extend([f"## {title}", "", f"| {label} | method | n | MSE | fMSE | PSNR | fPSNR | PSNR255 | fPSNR255 |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|"])
        items = groups.items() if groups is not None else [("all", summary["overall"])]
        for g, per in items:
            for m in methods:
                v = per.get(m)
                if not v or not v.get("count"):
                    continue
                lines.append(f"| {g} | {METHOD_LABELS.get(m, m)} | {v['count']} | {v['MSE']:.2f} | {v['fMSE']:.2f} | "
                             f"{v['PSNR']:.2f} | {v['fPSNR']:.2f} | {v['PSNR255']:.2f} | {v['fPSNR255']:.2f} |")
        lines.append("")

    table("Overall", None, "set")
    if "without_identity" in summary:
        everyone = summary["overall"][methods[0]]["count"]
        same = everyone - summary["without_identity"][methods[0]]["count"]
        lines.extend([f"{same} of {everyone} composites equal their photo (identity pairs). A picture equal to its "
                      "photo scores about 108 dB (PSNR of MSE + 1e-6, the official formula), so they pull the PSNR "
                      "and fPSNR means up, most for the methods that leave them exactly alone. Without them:", ""])
        table("Overall, without the identity pairs", {"changed": summary["without_identity"]}, "set")
    if len(summary["subsets"]) > 1:
        table("Per subset", summary["subsets"], "subset")
    table("By foreground ratio", summary["fg_ratio"], "foreground")
    table("By composite error (the composite's own fMSE)", summary["composite_error"], "composite fMSE")
    if "untouched" in summary:
        lines.extend(["## Untouched photos (real image in; the change a method makes, lower is better)", "",
                      "| method | n | MSE of the change | fMSE of the change |", "|---|---:|---:|---:|"])
        for m, v in summary["untouched"].items():
            lines.append(f"| {METHOD_LABELS.get(m, m)} | {v['count']} | {v['MSE']:.2f} | {v['fMSE']:.2f} |")
        lines.append("")
    return "\n".join(lines)


RESIZE_NOTES = {"pad": " (pictures padded to the square to run the network; scored on the picture alone, "
                       "the padding left out)",
                "crop": " (pictures cut to their centre square, or to one over the subject where that misses it: "
                        "their edges are not scored)"}


def per_image_table(rows: list[dict]) -> dict[str, dict]:
    """One entry per sample, every method side by side."""
    per_image: dict[str, dict] = {}
    seen: dict[tuple[str, str], int] = {}
    for r in rows:
        key = r["name"] if str(r["name"]).startswith(f"{r['subset']}/") else f"{r['subset']}/{r['name']}"
        copy = seen[key, r["method"]] = seen.get((key, r["method"]), 0) + 1
        key += f"#{copy}" if copy > 1 else ""  # a photo's further composites (data.val_copies) keep theirs
        entry = per_image.setdefault(key, {
            "subset": r["subset"], "fg_bucket": r["fg_bucket"], "error_bucket": r["error_bucket"]})
        entry[r["method"]] = {k: r[k] for k in METRICS}
    return per_image


def write_outputs(out: Path, result: dict, report: str, grid: list[dict], columns: list[str]) -> dict:
    """``results.json``, ``results.md`` and ``grid.png`` in ``out``; returns their paths. Each is written beside
    its place, and none is renamed into it before all three are written: a failure leaves the earlier three."""
    def results_json(tmp: Path) -> None:
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        write_atomic(out / "results.md", results_md)

    def results_md(tmp: Path) -> None:
        tmp.write_text(report, encoding="utf-8", errors="backslashreplace")  # (a data path not in UTF-8)
        save_grid(grid, columns, out / "grid.png")

    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "results.json", results_json)
    except OSError as e:
        raise OSError(f"cannot write the results into {out} ({e.strerror or e}); none of the files there was "
                      "replaced: free some space or make it writable, or give another --out") from e
    return {k: str(out / f) for k, f in (("json", "results.json"), ("markdown", "results.md"), ("grid", "grid.png"))}
