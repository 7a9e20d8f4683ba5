"""Score PHNet weights on a data set, next to the do-nothing, Reinhard and MKL baselines.

    python -m trainer.evaluate --weights runs/x/best --data /data/iHarmony4            # test split, 256 px
    python -m trainer.evaluate --weights new=runs/x/best --weights old=runs/y/best --data D   # side by side
    python -m trainer.evaluate --weights W --data /data/FFHQH --ffhq-root /data/ffhq/images1024x1024
    python -m trainer.evaluate --weights W --data PHOTOS --resolution native --working-size 256

Prints a Markdown report and writes ``results.json``, ``results.md`` and
``grid.png`` (composite | mask | Reinhard | MKL | each model | real) into ``--out``.

Tables: overall, per subset, per foreground-ratio bucket (<5 %, 5-15 %, >=15 %),
per composite-error bucket (the composite's own fMSE: <300 nearly harmonious,
300-1000, >=1000 clearly wrong), and "untouched photos" (the real image fed in as
the composite: how much a method changes a picture that needs no change).

Metrics are phnet.metrics (the official PHNet tester's conventions: prediction blended with the
composite, 0-255 float units, fMSE over 3*N_fg, PSNR with the GT's own peak), plus PSNR255 and
fPSNR255 with the fixed peak 255 of the DoveNet/bcmi evaluation. ``--resolution 256`` (default)
resizes composite, mask and real to 256x256, as iHarmony4 results are usually reported, and runs
the network there; the official tester scores at the model's own size (512 for iharmony512, 256,
512 or 1024 for the ffhqh weights): ``--resolution <model size>`` matches it. ``--resolution
native`` keeps the pictures at their own size and runs the network through ``phnet.Harmonizer``
(working size ``--working-size``, default the model's), scoring at full size. With ``--resize pad``
only the picture is scored, not its padding. ``--max-samples N`` scores a fixed spread of N samples
of the split, not its first N. A photo folder's test split without ``data.test_fraction`` is its
validation split: the report then says so at the top.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Subset

from phnet.atomic import cannot_write_into, dangling_link, missing_target
from phnet.config import MAX_WORKING_SIZE, MIN_WORKING_SIZE
from phnet.console import interrupted_status, printable_anywhere
from phnet.errors import error_line, out_of_memory
from trainer.builders.staging import interrupted
from trainer.data import HarmonizationDataset, build_dataset, collate
from trainer.data.common import spread_sample
from trainer.data.workers import end_with_the_loaders_process, worker_start_method
from trainer.evaluation.candidates import BASELINES, Candidates, load_candidates, parse_weights
from trainer.evaluation.data_table import DATA_FLAGS, RUN_FOLDERS, check_split_all, data_for_other, in_flags
from trainer.evaluation.grid import grid_cells, grid_label, save_grid
from trainer.evaluation.report import (METHOD_LABELS, PEAKS, RESIZE_NOTES, per_image_table, sampled, to_markdown,
                                     write_outputs)
from trainer.evaluation.scoring import (ERROR_BUCKETS, METRICS, error_bucket, pictures, score_rows, scores, summarise,
                                      untouched_rows)

# the command and its loop are here; other code and older scripts still import the pieces' names from here
__all__ = ["evaluate", "main", "parser", "check_arguments", "output_folder", "run",
           "BASELINES", "Candidates", "load_candidates", "parse_weights",
           "ERROR_BUCKETS", "METRICS", "error_bucket", "pictures", "score_rows", "scores", "summarise",
           "untouched_rows",
           "METHOD_LABELS", "PEAKS", "RESIZE_NOTES", "per_image_table", "sampled", "to_markdown", "write_outputs",
           "grid_cells", "grid_label", "save_grid",
           "DATA_FLAGS", "RUN_FOLDERS", "check_split_all", "data_for_other", "in_flags"]


@torch.no_grad()
def evaluate(weights: str | list[str] | None, data: dict, *, split: str = "test", resolution: str | int = 256,
             working_size: int | None = None, batch_size: int = 8, device: str | None = None,
             max_samples: int = 0, grid_rows: int = 6, out_dir: str | Path | None = None,
             untouched_check: bool = True, progress: bool = True,
             report_to: Callable[[str], object] | None = None) -> dict:
    """Score ``weights`` and the baselines; ``report_to`` is given the Markdown report before the files are
    written into ``out_dir`` (the CLI prints it: a failed write loses none of the scores)."""
    native = str(resolution) == "native"
    size = None if native else int(resolution)
    if size is not None and (size < MIN_WORKING_SIZE or size % 8):
        raise ValueError(f"--resolution must be a multiple of 8 from {MIN_WORKING_SIZE} (the network's smallest) or "
                         f"'native', got {resolution}")
    from phnet.devices import pick_device

    dev = pick_device(device)
    candidates = load_candidates(weights, dev, native, working_size)
    models = candidates.models
    methods = ["composite", *BASELINES, *models]
    resize = "none" if native else data.get("resize", "stretch")
    base_ds = build_dataset(data, split, train=False, image_size=size or 8, resize=resize, progress=progress)
    ds: HarmonizationDataset | Subset = base_ds
    if max_samples and len(ds) > max_samples:
        ds = Subset(ds, spread_sample([r.name for r in base_ds.records], max_samples))
    workers = int(data.get("num_workers", 0))
    preloaded = getattr(base_ds, "preloaded", None) is not None
    start = worker_start_method(data, preloaded, "trainer.evaluate") if workers else None
    loader = DataLoader(ds, batch_size=1 if native else batch_size, shuffle=False, collate_fn=collate,
                        num_workers=workers, multiprocessing_context=start,
                        worker_init_fn=end_with_the_loaders_process)

    rows, untouched, skipped = [], [], 0
    grid: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(ds), desc="evaluate", unit="img", file=sys.stderr)
    t0 = time.time()
    for batch in loader:
        skipped += batch.get("skipped", 0)
        if "comp" not in batch:
            continue
        comp, real, mask = (batch[k].to(dev) for k in ("comp", "real", "mask"))
        boxes = batch["box"].tolist() if "box" in batch else None
        outs = {"composite": comp, **candidates.outputs(comp, mask, boxes)}
        for names, t in pictures(batch, {"real": real, "mask": mask, **outs}):
            rows += score_rows(names, {m: t[m] for m in outs}, t["real"], t["mask"], methods)
        if untouched_check:
            untouched += untouched_rows(candidates, batch, real, mask)
        grid += grid_cells(comp, mask, real, outs, models, grid_rows - len(grid))
        if bar is not None:
            bar.update(comp.shape[0] + batch.get("skipped", 0))
    if bar is not None:
        bar.close()
    if not rows:
        raise ValueError(f"no sample of {base_ds} could be evaluated (all {skipped} skipped)")

    summary = summarise(rows, untouched, methods)
    model = next(iter(models.values()), None)
    meta = {"weights": parse_weights(weights) or None, "data": base_ds.folder or str(data.get("root")),
            "kind": base_ds.description.split(":")[0], "split": split, "samples": len(rows) // len(methods),
            "split_samples": len(base_ds), "spread": len(ds) if len(ds) < len(base_ds) else None,
            "not_held_out": base_ds.not_held_out, "resize": resize, "psnr_peaks": PEAKS,
            "skipped": skipped, "resolution": "native" if native else size,
            "working_size": ((working_size or (model.config.image_size if model is not None else None))
                             if native else size),
            "device": str(dev), "precision": "fp32", "seconds": round(time.time() - t0, 2)}
    if model is not None:
        meta["model_config"] = model.config.to_dict()
    result = {"meta": meta, **summary, "per_image": per_image_table(rows)}
    report = to_markdown(summary, meta)
    if report_to is not None:
        report_to(report)
    if out_dir is not None:
        columns = ["composite", "mask", "Reinhard", "MKL"] + [grid_label(m) for m in models] + ["real"]
        result["files"] = write_outputs(Path(out_dir), result, report, grid, columns)
    result["markdown"] = report
    return result


def _data_table(args) -> dict:
    data: dict = {}
    if args.config:
        from trainer.config import read_config
        data = dict(read_config(args.config)["data"])
        data.pop("max_samples", None)  # a run's cap on its training photos: --max-samples is the evaluation's own
        if args.data:  # another folder: the run's own validation photos and masks are not its, nor its layout
            data = data_for_other(data, args.data)
    flags = {"root": args.data, "kind": args.kind, "ffhq_root": args.ffhq_root, "mask_dir": args.mask_dir,
             "resize": args.resize, "seed": args.seed, "on_bad_sample": args.on_bad_sample,
             "val_fraction": args.val_fraction, "num_workers": args.num_workers}
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.subsets:
        data["subsets"] = [s for s in args.subsets.split(",") if s]
    data.setdefault("num_workers", 0)
    return data


def main(argv=None) -> int:
    printable_anywhere()
    p = parser()
    args = p.parse_args(argv)
    check_arguments(p, args)
    try:
        why = check_split_all(args.split, args.data, args.config)
        if why:
            p.error(why)
        data = _data_table(args)
    except (ValueError, OSError) as exc:
        print(f"error: {in_flags(str(exc), args)}", file=sys.stderr)
        return 2
    if not data.get("root"):
        p.error("--data is required (or a --config whose data.root is set)")
    return run(args, data, output_folder(p, args, data))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", "-w", action="append",
                   help="checkpoint folder, weights file or Hub repo id, optionally LABEL=...; repeat to compare "
                        "models side by side (omit: baselines only)")
    p.add_argument("--data", "-d", help="data-set folder (iHarmony4, FFHQH or photos)")
    p.add_argument("--config", help="take the [data] table from a trainer config (.toml, name), a run folder or its "
                                    "run_config.json")
    p.add_argument("--kind", choices=["auto", "iharmony", "ffhqh", "folder"])
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="the data set's split; all = every photo of a photo folder (one the run never saw)")
    p.add_argument("--subsets", help="iHarmony4 subsets, comma-separated (default: all found)")
    p.add_argument("--ffhq-root", help="FFHQH: folder of the real FFHQ images")
    p.add_argument("--mask-dir", help="photo folders: folder of masks")
    p.add_argument("--resolution", default="256", help="square evaluation size (default 256) or 'native'")
    p.add_argument("--working-size", type=int, default=None, help="native: the network's working size")
    p.add_argument("--resize", choices=["stretch", "crop", "pad"],
                   help="how pictures are made square (default: --config's data.resize, else stretch)")
    p.add_argument("--seed", type=int, help="photo folders: seed of the synthetic composites")
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--on-bad-sample", choices=["error", "skip"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--grid-rows", type=int, default=6)
    p.add_argument("--no-untouched", action="store_true", help="skip the untouched-photo check")
    p.add_argument("--device", default=None)
    p.add_argument("--out", "-o", default=None,
                   help="output folder (default: eval-<data name>-<split>-<resolution>)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    p.add_argument("--no-progress", action="store_true")
    return p


def check_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each number the command was given is one it can use (``p.error`` names the flag and the range)."""
    if args.out:  # --out=~/x: the shell leaves a ~ after = as it is
        args.out = os.path.expanduser(args.out)
    if args.resolution != "native" and not (args.resolution.isdigit() and int(args.resolution) % 8 == 0
                                            and int(args.resolution) >= MIN_WORKING_SIZE):
        p.error(f"--resolution must be a multiple of 8 from {MIN_WORKING_SIZE} (e.g. 256) or 'native', got "
                f"{args.resolution!r}")
    if args.working_size is not None and args.resolution != "native":
        p.error("--working-size is for --resolution native (the Harmonizer at full size); at a fixed --resolution "
                "the network runs at that size")
    if args.working_size is not None and not (MIN_WORKING_SIZE <= args.working_size <= MAX_WORKING_SIZE
                                              and args.working_size % 8 == 0):
        p.error(f"--working-size must be a multiple of 8 from {MIN_WORKING_SIZE} to {MAX_WORKING_SIZE} (e.g. 512), "
                f"got {args.working_size}")
    if args.max_samples < 0:
        p.error(f"--max-samples must be a number of composites (0: all of them), got {args.max_samples}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_workers is not None and args.num_workers < 0:
        p.error(f"--num-workers must be 0 (load in this process) or more, got {args.num_workers}")
    if args.grid_rows < 0:
        p.error(f"--grid-rows must be 0 or more (rows of grid.png), got {args.grid_rows}")
    if args.val_fraction is not None and not 0 <= args.val_fraction <= 1:
        p.error(f"--val-fraction must be from 0 to 1, got {args.val_fraction}")


def output_folder(p: argparse.ArgumentParser, args: argparse.Namespace, data: dict) -> str:
    """``--out``, or the folder named after the data set, split and resolution; checked before any sample is
    scored: a folder the results can be written into, outside the data, holding no earlier results."""
    out = args.out or f"eval-{Path(data['root']).name}-{args.split}-{args.resolution}"
    if Path(out).exists() and not Path(out).is_dir():
        p.error(f"--out {out} is a file: give a folder for the results")
    root = Path(data["root"]).resolve()
    if Path(out).resolve() == root or root in Path(out).resolve().parents:
        p.error(f"--out {out} is inside the data folder {data['root']}: its grid.png would be read as a photo next "
                "time. Give a folder outside it")
    if (Path(out) / "results.json").exists() and not args.overwrite:
        p.error(f"{out} holds the results of an earlier evaluation: give another --out, or --overwrite to replace "
                "them")
    link = dangling_link(out)
    if link is not None:  # (cannot_write_into climbs past it, and writing failed with "File exists" at the end)
        p.error(f"--out {out}: {missing_target(link)}; connect it, or give another --out")
    problem = cannot_write_into(Path(out))
    if problem:  # found after scoring every sample, it lost them
        p.error(f"--out {out}: {problem}: make it writable, or give another --out")
    return out


def run(args: argparse.Namespace, data: dict, out: str) -> int:
    """Score the checked arguments' data and write the results into ``out``; a failure the user can mend is one
    line naming the fix (exit status 2), Ctrl-C is 130."""
    try:
        res = evaluate(args.weights, data, split=args.split, resolution=args.resolution,
                       working_size=args.working_size, batch_size=args.batch_size, device=args.device,
                       max_samples=args.max_samples, grid_rows=args.grid_rows, out_dir=out,
                       untouched_check=not args.no_untouched, progress=not args.no_progress, report_to=print)
    except (ValueError, OSError) as exc:  # a bad path, config or data set: the message says what to do
        print(f"error: {in_flags(error_line(exc), args)}", file=sys.stderr)  # without a loader worker's traceback
        return 2
    except (RuntimeError, MemoryError) as exc:
        if not out_of_memory(exc):
            raise
        first = error_line(exc)
        fix = ("give a smaller --working-size, or a fixed --resolution" if args.resolution == "native" else
               "lower --batch-size or --resolution")
        print(f"error: not enough memory ({first}): {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted(None, "results"), file=sys.stderr)
        return interrupted_status()
    if res["meta"].get("not_held_out"):
        print(f"warning: {res['meta']['not_held_out']}", file=sys.stderr)
    print(f"wrote {', '.join(res['files'].values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
