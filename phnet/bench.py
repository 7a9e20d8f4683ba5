"""Speed and memory of our pipeline against the official one, same weights, same run.

    python -m phnet.bench [--config iharmony | --weights W] [--repeat 3] [--threads N]

Each (pipeline, size) case runs in a fresh child process so its peak RSS is its own.
"official" is the official pipeline (squash to a square, the network, bicubic resize of the whole
image) with PN and PFE computed patch by patch as the official code does (phnet.modeling.reference);
"official+" is the same pipeline on our vectorised network; "ours" keeps the aspect ratio, runs the
folded inference network at the working resolution and applies the result at full resolution.
Weights do not change the cost, so random weights of the chosen architecture are used unless
--weights is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = [(256, 256), (512, 512), (1024, 1024), (2160, 3840)]
PIPELINES = ("official", "official+", "ours")


def portrait_mask(height: int, width: int):
    import torch

    ys = torch.linspace(-1, 1, height)[:, None]
    xs = torch.linspace(-1, 1, width)[None, :] * (width / height)
    head = (xs / 0.28) ** 2 + ((ys + 0.25) / 0.36) ** 2 <= 1
    body = ((xs / 0.55) ** 2 + ((ys - 0.85) / 0.6) ** 2 <= 1) & (ys > 0.1)
    return (head | body).float()[None, None]


def make_inputs(height: int, width: int):
    import torch

    g = torch.Generator().manual_seed(height * 7919 + width)
    low = torch.rand(1, 3, max(2, height // 32), max(2, width // 32), generator=g)
    image = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    image = (image + 0.05 * torch.rand(1, 3, height, width, generator=g)).clamp(0, 1)
    return image, portrait_mask(height, width)


def build_harmonizer(args, reference: bool):
    import torch

    from .config import PHNetConfig
    from .harmonizer import Harmonizer
    from .modeling import PHNet
    from .modeling.reference import ReferencePHNet
    from .weights import load_model

    torch.manual_seed(0)
    model = load_model(args.weights) if args.weights else PHNet(PHNetConfig.preset(args.config)).eval()
    return Harmonizer(ReferencePHNet(model) if reference else model, device="cpu")


def run_case(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    pipeline = args.case_pipeline
    harmonizer = build_harmonizer(args, reference=pipeline == "official")
    mode = "full" if pipeline == "ours" else "official"
    height, width = args.case_size
    image, mask = make_inputs(height, width)
    times = []
    for i in range(args.repeat + 1):  # the first run warms up allocators and kernels
        start = time.perf_counter()
        out = harmonizer.harmonize_tensor(image, mask, mode=mode)
        if i:
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": min(times), "peak_rss_mb": peak_mb}  # best of N: least disturbed by other load
    if args.save_output:
        torch.save(out, args.save_output)
    return result


def child(pipeline: str, size: tuple[int, int], args, save: str | None = None) -> dict:
    cmd = [
        sys.executable, "-m", "phnet.bench", "--case-pipeline", pipeline, "--case-size", str(size[0]), str(size[1]),
        "--repeat", str(args.repeat), "--threads", str(args.threads), "--config", args.config,
    ]
    if args.weights:
        cmd += ["--weights", args.weights]
    if save:
        cmd += ["--save-output", save]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark case {pipeline} {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phnet.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="iharmony", help="architecture preset for random weights")
    parser.add_argument("--weights", help="benchmark these weights instead")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default="all", help="'all' or e.g. 512x512,2160x3840 (H×W)")
    parser.add_argument("--case-pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--case-size", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--save-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case_pipeline:
        print(json.dumps(run_case(args)))
        return 0

    import tempfile

    import torch

    sizes = SIZES if args.sizes == "all" else [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print(f"PHNet pipeline benchmark: {args.weights or args.config + ' (random weights)'}, {args.threads} threads, "
          f"best of {args.repeat}, torch {torch.__version__}")
    print("official = official pipeline and computation; official+ = official pipeline on our vectorised network")
    print(f"{'input (H×W)':>13} | {'official':>17} | {'official+':>17} | {'ours':>17} | ours vs official / official+")
    print(f"{'':>13} | {'s':>7} {'peak MB':>9} | {'s':>7} {'peak MB':>9} | {'s':>7} {'peak MB':>9} | {'speed':>13} {'memory':>13}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            saves = {p: os.path.join(tmp, p + ".pt") if size == (512, 512) else None for p in PIPELINES}
            res = {p: child(p, size, args, saves[p]) for p in PIPELINES}
            rows[size] = res
            o, v, u = res["official"], res["official+"], res["ours"]
            print(f"{size[0]:>6}×{size[1]:<6} | {o['seconds']:>7.3f} {o['peak_rss_mb']:>9.0f} | "
                  f"{v['seconds']:>7.3f} {v['peak_rss_mb']:>9.0f} | {u['seconds']:>7.3f} {u['peak_rss_mb']:>9.0f} | "
                  f"{o['seconds'] / u['seconds']:>5.2f}× {v['seconds'] / u['seconds']:>5.2f}× "
                  f"{u['peak_rss_mb'] / o['peak_rss_mb']:>5.2f}× {u['peak_rss_mb'] / v['peak_rss_mb']:>5.2f}×")
            if saves["ours"]:
                out = {p: torch.load(saves[p], weights_only=True) for p in PIPELINES}
                d1 = (out["official"] - out["ours"]).abs().max().item()
                d2 = (out["official+"] - out["ours"]).abs().max().item()
                print(f"{'':>13}   512² is where the pipelines coincide: max |official − ours| = {d1:.1e}, "
                      f"|official+ − ours| = {d2:.1e}")
    if (512, 512) in rows and (2160, 3840) in rows:
        ratio = rows[(2160, 3840)]["ours"]["seconds"] / rows[(512, 512)]["ours"]["seconds"]
        print(f"ours: 3840×2160 → 3840×2160 takes {ratio:.2f}× our 512² time, peak RSS "
              f"{rows[(2160, 3840)]['ours']['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
