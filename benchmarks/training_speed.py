"""Training throughput: composites per second through ``trainer.fit``, in a few settings, same photos, same run.

    python benchmarks/training_speed.py [--device cuda] [--size 256] [--batch 64] [--steps 300] [--workers N]
                                        [--photos 400] [--data POOL]

Each setting is one real ``python -m trainer.fit`` run of the bundled recipe (``trainer/configs/default_cpu.toml``,
composites made on the training device) on the same photos, for ``--steps`` steps:

- decoded per sample: every sample decodes its photo and the thumbnail of its colour reference (``preload = false``);
- kept in memory: ``[data] preload = true``;
- on CUDA also, each against "kept in memory": without cuDNN's algorithm search (``train.cudnn_benchmark = false``),
  and with batches 4× as large (a quarter of the steps), which shows how much of a step is fixed cost (launches).

The photos are ``--photos`` procedural portraits of ``--size`` pixels with their masks, written to a temporary
folder, or a pool built by ``trainer.builders.package_portraits`` (``--data``). Throughput is the median of the
runs' logged samples/s after the first fifth of the steps; on CUDA, GPU utilisation is sampled with
``nvidia-smi`` twice a second during each run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script: import the repository's packages (benchmarks.*) too
    sys.path.insert(0, str(REPO))
BASE = "kept in memory"


def settings(args) -> dict[str, dict]:
    """Each setting's config overrides (on top of :func:`train`'s) and its number of steps."""
    runs = {"decoded per sample": {"data.preload": "false"}, BASE: {"data.preload": "true"}}
    if args.device.startswith("cuda"):
        runs["no cuDNN algorithm search"] = {"data.preload": "true", "train.cudnn_benchmark": "false"}
        runs[f"batch {4 * args.batch}"] = {"data.preload": "true", "train.batch_size": 4 * args.batch,
                                           "train.steps": max(25, args.steps // 4)}
    return runs


def write_pool(folder: Path, count: int, size: int) -> tuple[Path, Path]:
    """``count`` procedural portraits and their masks as PNG files: (photo folder, mask folder)."""
    from benchmarks.synthesis_speed import photo

    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        picture, mask = photo(rng, size)
        Image.fromarray((picture * 255).round().astype(np.uint8)).save(images / f"p{i:04d}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(masks / f"p{i:04d}.png")
    return images, masks


def smi_id(device: str) -> str:
    """``device`` as nvidia-smi names it: its UUID where torch gives one (torch numbers the GPUs that
    CUDA_VISIBLE_DEVICES leaves, fastest first; nvidia-smi numbers all of them by PCI bus), else its index."""
    import torch

    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
    if not uuid:
        return str(index)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


class Utilisation(threading.Thread):
    """GPU utilisation (%) of one GPU, read from ``nvidia-smi`` every half second until stopped, each sample
    with its wall-clock time (``samples``: (time, %))."""

    def __init__(self, gpu: str = "0"):
        super().__init__(daemon=True)
        self.gpu = gpu
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", self.gpu], capture_output=True, text=True, timeout=5).stdout
                self.samples.append((time.time(), float(out.split()[0])))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return


def train(args, images: Path, masks: Path, overrides: dict, out: Path) -> dict:
    sets = {
        "data.root": images, "data.mask_dir": masks, "data.val_root": "", "data.val_mask_dir": "",
        "data.val_fraction": 0.02, "data.num_workers": args.workers,
        "model.image_size": args.size, "train.device": args.device, "train.batch_size": args.batch,
        "train.steps": args.steps, "train.val_every": 0, "train.val_max_samples": 8, "train.ckpt_every": 0,
        "train.patience": 0, "train.max_minutes": 0, "train.log_every": 5, **overrides,
    }
    steps = int(sets["train.steps"])
    cmd = [sys.executable, "-m", "trainer.fit", "--config", "trainer/configs/default_cpu.toml", "--out", str(out)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    watch = Utilisation(smi_id(args.device)) if args.device.startswith("cuda") else None
    if watch:
        watch.start()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if watch:
        watch.done.set()
        watch.join()
    if done.returncode:
        raise SystemExit(f"trainer.fit failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return throughput(records, steps, watch.samples if watch else [])


def throughput(records: list[dict], steps: int, samples: list[tuple[float, float]]) -> dict:
    """Composites a second (the median of the logged windows after the start-up) and the GPU's mean
    utilisation over those windows, from the run's log records and the (time, %) ``samples``."""
    # the first logged window holds the start-up (data workers, first batches): never counted
    trains, warm = [r for r in records if r["type"] == "train"], max(steps // 5, 5)
    counted = [r for r in trains if r["step"] > warm]
    if not counted:
        raise SystemExit(f"{steps} steps leave no logged window after the start-up: give more --steps (e.g. 20)")
    rates = [r["samples_per_s"] for r in counted]
    # the GPU's share over the same windows: not the start-up, the last validation or the checkpoints' writing
    start = max((r["time"] for r in trains if r["step"] <= warm), default=counted[0]["time"])
    busy = [u for t, u in samples if start <= t <= counted[-1]["time"]]
    return {"samples_per_s": statistics.median(rates), "gpu_util": statistics.mean(busy) if busy else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="train.device: cpu or cuda")
    p.add_argument("--size", type=int, default=256, help="working size (and the procedural photos' side)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--photos", type=int, default=400, help="procedural photos to train on (without --data)")
    p.add_argument("--data", type=Path, help="a package_portraits pool (its train/images and train/masks)")
    args = p.parse_args(argv)
    if args.steps < 6 or min(args.batch, args.photos, args.size) < 1 or args.workers < 0:
        p.error("--steps must be at least 6 (the first logged window is set aside as warm-up), --batch, --photos "
                "and --size at least 1, --workers 0 or more")
    if args.data and not (args.data / "train" / "images").is_dir():
        p.error(f"--data {args.data} holds no train/images: give the pool's root (a package_portraits folder), "
                "not one of its splits")

    import torch

    from phnet.devices import device_problem

    if problem := device_problem(args.device):
        p.error(f"--device {args.device}: {problem}")
    kind = torch.device(args.device).type
    where = torch.cuda.get_device_name(args.device) if kind == "cuda" else "CPU" if kind == "cpu" else args.device
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            pool = args.data.resolve()  # the trainer runs in the checkout: a relative path is the caller's
            images, masks = pool / "train" / "images", pool / "train" / "masks"
            source = f"{args.data} (train split)"
        else:
            images, masks = write_pool(Path(tmp) / "pool", args.photos, args.size)
            source = f"{args.photos} procedural {args.size}² portraits"
        print(f"trainer.fit throughput on {where}, torch {torch.__version__}: {source}, {args.size}² working size, "
              f"batch {args.batch}, {args.steps} steps, {args.workers} data workers, composites made on the device")
        results = {}
        for i, (name, overrides) in enumerate(settings(args).items()):
            results[name] = r = train(args, images, masks, overrides, Path(tmp) / f"run{i}")
            util = f", GPU busy {r['gpu_util']:.0f} %" if r["gpu_util"] is not None else ""
            print(f"  {name:<26} {r['samples_per_s']:8.1f} composites/s{util}", flush=True)
    base = results[BASE]["samples_per_s"]
    print(f"against {BASE}: " + ", ".join(f"{name} x{r['samples_per_s'] / base:.2f}"
                                        for name, r in results.items() if name != BASE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
