"""Speed and memory of our pipeline against the official one, same weights, same run.

    python benchmarks/pipeline_speed.py [--config iharmony | --weights W] [--rounds 5] [--threads N] [--device cuda]

Pipelines, all called the way a user calls them (8-bit H×W×3 arrays in, same out):

- official: the official pipeline (squash to a square, the network, bicubic resize of the whole
  image back) with PN and PFE computed patch by patch as the official code does, in fp32 as the
  official tester runs;
- official auto (where "auto" is not fp32, i.e. on CPUs with AMX): the same official steps with the
  network under the precision "auto" picks, so that "ours auto" is also compared at equal precision
  and a precision gain is not read as the pipeline's;
- ours fp32 / ours auto: aspect ratio kept, the folded inference network at the working
  resolution, the change applied at full resolution in the input's dtype; "auto" is the default
  precision (bf16 autocast on CPUs with AMX, see phnet.precision);
- ours fp32 on host (``--device cuda`` only): ours fp32 with the full-resolution work left on the
  host, where the arrays are (``full_resolution_on="input"``), against the default that copies each
  picture to the GPU and works there;
- ours fp32 graphs (``--device cuda`` only): ours fp32 with the network call replayed from a CUDA
  graph (``cuda_graphs=True``), against the same without;
- ours fp32 one per call (``--device cuda`` only, frames only): ours fp32 with each frame in its own
  network call (``network_batch=1``), against the default that gives the GPU 8 frames per call.

Times: all pipelines and sizes are loaded in one process and called in turn, round after round
(A/B interleaved), and the median of each is printed, so that load from other processes on a
shared machine hits every case alike; read the ratios, not the absolute times. On a busy machine
``--threads 1 --clock cpu`` (the CPU time given to the process) is steadier than wall time. Peak RSS: every
(pipeline, size) case runs once more in a fresh child process (model loaded, one warm-up call,
one measured call) and reports its own peak. Weights do not change the cost, so random weights of
the chosen architecture are used unless --weights is given; every call applies the network's whole
correction (threshold 0), so that no weights' do-no-harm rule turns a timed call into one that changes nothing.

``--device cuda`` runs every pipeline on the GPU (the arrays still come from and go back to the host,
as a user passes them): times are taken after ``torch.cuda.synchronize()``, and the memory column is
the peak of ``torch.cuda.max_memory_allocated`` in each fresh process instead of the RSS (four of those
processes at a time: each counts only its own allocations), and a line after the table gives each case's
``max_memory_reserved``, which also counts a CUDA graph's private pool.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script (its children too): this checkout's phnet, not an installed one
    sys.path.insert(0, str(REPO))

SIZES = {"512²": (512, 512), "1024²": (1024, 1024), "4K": (2160, 3840), "8K": (4320, 7680)}
# name: (mode, dtype, full_resolution_on, cuda_graphs, network_batch)
PIPELINES: dict[str, tuple[str, str, str, bool, int | str]] = {
    "official": ("official", "fp32", "auto", False, "auto"),
    "official auto": ("official", "auto", "auto", False, "auto"),
    "ours fp32": ("full", "fp32", "auto", False, "auto"),
    "ours auto": ("full", "auto", "auto", False, "auto"),
    "ours fp32 on host": ("full", "fp32", "input", False, "auto"),
    "ours fp32 graphs": ("full", "fp32", "auto", True, "auto"),
    "ours fp32 one per call": ("full", "fp32", "auto", False, 1),
}
CUDA_ONLY = ("ours fp32 on host", "ours fp32 graphs", "ours fp32 one per call")
FRAMES_ONLY = ("ours fp32 one per call",)


def low_precision(device: str) -> bool:
    """Whether "auto" is other than fp32 on ``device`` (then "official auto" is a case of its own)."""
    import torch

    from phnet.precision import auto_dtype

    return auto_dtype(device) != torch.float32


def pipelines(device: str) -> list[str]:
    """The pipelines compared on single pictures on ``device``: on the CPU, the CUDA-only ones would be
    "ours fp32" itself, and where "auto" is fp32, "official auto" would be "official"."""
    gpu, low = device.startswith("cuda"), low_precision(device)
    return [p for p in PIPELINES if (gpu or p not in CUDA_ONLY) and p not in FRAMES_ONLY
            and (low or p != "official auto")]


def frame_pipelines(device: str) -> list[str]:
    """The pipelines timed on the batch of frames."""
    extra = ("ours fp32", "ours fp32 graphs", "ours fp32 one per call") if device.startswith("cuda") else ()
    return ["official", *(("official auto",) if low_precision(device) else ()), "ours auto", *extra]


def cpu_name() -> str:
    """The CPU's model name and the instructions that decide "auto" (AMX, AVX512-BF16), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "CPU"
    fields = {key.strip(): value for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    name = " ".join(fields.get("model name", "CPU").split())
    flags = set(fields.get("flags", "").split())
    has = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return f"{name} ({', '.join(has) if has else 'no AMX or AVX512-BF16'})"


FRAMES = (8, 1080, 1920)  # the video case: a batch of 1080p frames


def portrait_mask(height: int, width: int):
    """A head-and-shoulders mask (uint8, 0/255) centred in the frame, built a band of rows at a time."""
    import numpy as np

    mask = np.empty((height, width), np.uint8)
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :] * (width / height)
    all_ys = np.linspace(-1, 1, height, dtype=np.float32)
    for r0 in range(0, height, 256):
        ys = all_ys[r0 : r0 + 256, None]
        head = (xs / 0.28) ** 2 + ((ys + 0.25) / 0.36) ** 2 <= 1
        body = ((xs / 0.55) ** 2 + ((ys - 0.85) / 0.6) ** 2 <= 1) & (ys > 0.1)
        mask[r0 : r0 + 256] = (head | body) * 255
    return mask


def photo(height: int, width: int, batch: int | None = None):
    """A smooth random picture with fine grain: uint8 H×W×3 (or B×H×W×3), no float copy at full size."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(height * 7919 + width)
    n = batch or 1
    low = torch.randint(0, 240, (n, 3, max(2, height // 32), max(2, width // 32)), generator=g, dtype=torch.uint8)
    image = F.interpolate(low.contiguous(memory_format=torch.channels_last), size=(height, width), mode="bilinear",
                          align_corners=False).permute(0, 2, 3, 1)
    image.add_(torch.randint(0, 16, image.shape, generator=g, dtype=torch.uint8))
    pixels = image.contiguous().numpy()
    return pixels if batch else pixels[0]


def build(args, pipeline: str) -> tuple[Callable, int]:
    import torch

    from phnet.config import PHNetConfig
    from phnet.harmonizer import Harmonizer
    from phnet.modeling import PHNet
    from phnet.modeling.oracle import OraclePHNet
    from phnet.weights import load_model

    mode, dtype, where, graphs, network_batch = PIPELINES[pipeline]
    if mode == "official" and dtype == "auto":  # official mode runs fp32 unless a precision is named: name it
        from phnet.precision import auto_dtype

        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(auto_dtype(args.device), "fp32")
    torch.manual_seed(0)
    if args.weights:
        model = load_model(args.weights)
    else:
        overrides = {"output": args.output} if args.output else {}
        model = PHNet(PHNetConfig.preset(args.config, **overrides)).eval()
        if model.config.output != "image":  # an untrained head is the identity: give it something to do
            with torch.no_grad():
                model.get_parameter("decoder.5.0.weight").normal_(0, 0.02)
    net = OraclePHNet(model) if mode == "official" else model  # the official steps, at either precision
    harmonizer = Harmonizer(net, device=args.device, dtype=dtype, full_resolution_on=where, cuda_graphs=graphs,
                            network_batch=network_batch)
    def run(image, mask):  # the whole correction: a weights' do-no-harm rule could leave the subject as it was,
        return harmonizer(image, mask, mode=mode, threshold=0)  # and the full-resolution step untimed

    return run, harmonizer.config.image_size


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so a clock reading covers it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)  # the GPU benchmarked, which need not be the current one


def reset_peak_rss() -> bool:
    """Start the peak-RSS count afresh from the current RSS (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


# ---- child processes ----------------------------------------------------------------------------


def memory_case(args) -> dict:
    """One (pipeline, size) case in this fresh process: its peak RSS, model and inputs included."""
    import torch

    torch.set_num_threads(args.threads)
    run, _ = build(args, args.case_pipeline)
    height, width = SIZES[args.case_size]
    image, mask = photo(height, width), portrait_mask(height, width)
    reset_peak_rss()  # what counts: the model, the inputs and the calls, not how the inputs were made
    run(image, mask)
    gpu = args.device.startswith("cuda")
    if gpu:
        synchronize(args.device)
        torch.cuda.reset_peak_memory_stats(args.device)
    start = time.perf_counter()
    run(image, mask)
    synchronize(args.device)
    peak = torch.cuda.max_memory_allocated(args.device) / 2**20 if gpu else peak_rss_mb()
    # a captured graph's working memory sits in its own pool, reserved but never counted as allocated
    reserved = torch.cuda.max_memory_reserved(args.device) / 2**20 if gpu else None
    return {"peak_mb": peak, "reserved_mb": reserved, "seconds": time.perf_counter() - start}


def timing_run(args) -> dict:
    """Every pipeline on every size, interleaved round after round; medians, and the 512² outputs."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    built = {p: build(args, p) for p in dict.fromkeys([*pipelines(args.device), *frame_pipelines(args.device)])}
    runs = {p: run for p, (run, _) in built.items()}
    inputs = {s: (photo(*SIZES[s]), portrait_mask(*SIZES[s])) for s in args.sizes}
    frames = photo(*FRAMES[1:], batch=FRAMES[0])
    frame_mask = portrait_mask(*FRAMES[1:])
    times: dict[str, list[float]] = {}
    outputs = {}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for round_ in range(args.rounds + 1):  # round 0 warms up allocators and kernels
        print(f"timing: {'warm-up' if not round_ else f'round {round_} of {args.rounds}'}", file=sys.stderr,
              flush=True)
        for size, (image, mask) in inputs.items():
            for pipeline in pipelines(args.device):
                run = runs[pipeline]
                synchronize(args.device)
                start = clock()
                out = run(image, mask)
                synchronize(args.device)
                if round_:
                    times.setdefault(f"{pipeline}|{size}", []).append(clock() - start)
                if size == "512²":
                    outputs[pipeline] = out
        if args.frames:
            for pipeline in frame_pipelines(args.device):
                synchronize(args.device)
                start = clock()
                runs[pipeline](frames, frame_mask)
                synchronize(args.device)
                if round_:
                    times.setdefault(f"{pipeline}|frames", []).append(clock() - start)
    result: dict[str, object] = {key: statistics.median(values) for key, values in times.items()}
    if outputs:
        ref = outputs["official"].astype(np.int16)
        result["diff"] = {p: int(np.abs(o.astype(np.int16) - ref).max()) for p, o in outputs.items()}
        result["mean_diff"] = {p: float(np.abs(o.astype(np.int16) - ref).mean()) for p, o in outputs.items()}
        result["working_size"] = built["official"][1]
    return result


def child(args, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--config", args.config,
           "--rounds", str(args.rounds), "--sizes", ",".join(args.sizes), "--clock", args.clock,
           "--device", args.device, *extra]
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.output:
        cmd += ["--output", args.output]
    if not args.frames:
        cmd += ["--no-frames"]
    # its progress goes straight to this process's stderr; its result comes back on stdout
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:  # its own error is above
        raise SystemExit(done.returncode)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from phnet.console import printable_anywhere

    printable_anywhere()  # a table's − and Δ in a cp1252 file (Windows)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="iharmony", help="architecture preset for random weights")
    parser.add_argument("--output", choices=("image", "residual", "transform"), help="override the preset's output")
    parser.add_argument("--weights", help="benchmark these weights instead")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, from {list(SIZES)}")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (steadier on a busy machine; use with --threads 1)")
    parser.add_argument("--no-frames", dest="frames", action="store_false", help="skip the 1080p batch")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--case-pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--case-size", help=argparse.SUPPRESS)
    parser.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error(f"--rounds and --threads must be at least 1, got {args.rounds} and {args.threads}")
    args.sizes = list(dict.fromkeys(args.sizes.split(",")))  # a size named twice is measured once
    if unknown := set(args.sizes) - set(SIZES):
        parser.error(f"unknown sizes {sorted(unknown)}; choose from {list(SIZES)}")
    if args.weights and args.output:
        parser.error("--output sets the output of --config's random weights; --weights have their own")
    try:  # a bad one is named here once, not in each timing process's traceback
        if args.weights and (args.case_pipeline or args.timing):  # a child: its parent loaded them
            from phnet.sources import resolve

            resolve(args.weights)
        elif args.weights:  # (an official checkpoint is downloaded here once, not by each child)
            from phnet.weights import load_model

            load_model(args.weights)
        else:
            from phnet.config import PHNetConfig

            PHNetConfig.preset(args.config)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    from phnet.devices import device_problem

    import torch

    try:
        kind = torch.device(args.device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        parser.error(f"--device {args.device}: the benchmark runs on cpu or cuda[:N]")
    if problem := device_problem(args.device):
        parser.error(f"--device {args.device}: {problem}")
    if args.device.startswith("cuda") and args.clock == "cpu":
        parser.error("--clock cpu measures this process's CPU time, not the GPU's: use the wall clock with "
                     "--device cuda")
    if args.case_pipeline:
        print(json.dumps(memory_case(args)))
        return 0
    if args.timing:
        print(json.dumps(timing_run(args)))
        return 0

    from phnet.precision import auto_dtype

    what = args.weights or f"{args.config}{'/' + args.output if args.output else ''} (random weights)"
    auto = str(auto_dtype(args.device)).replace("torch.", "")
    gpu = args.device.startswith("cuda")
    where = torch.cuda.get_device_name(torch.device(args.device)) if gpu else cpu_name()
    print(f"PHNet pipeline benchmark: {what}, on {where}, {args.threads} threads, torch {torch.__version__}, "
          f"auto = {auto} here")
    clock = "wall-clock" if args.clock == "wall" else "CPU"
    memory_kind = "peak GPU memory allocated" if gpu else "peak RSS"
    print(f"times: {clock} seconds{' (CUDA-synchronised)' if gpu else ''}, medians of {args.rounds} interleaved "
          f"rounds in one process; {memory_kind}: one fresh process per case")
    if gpu:  # torch's setting, which the library follows: on Ampere and newer it is on by default
        print(f"fp32 on this GPU: cuDNN TF32 convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'} "
              "(torch.backends.cudnn.allow_tf32)")
    timing = child(args, "--timing")
    # the times now, in case the memory cases below run out of a caller's time
    print("times, s: " + "; ".join(f"{key} {value:.4f}" for key, value in timing.items()
                                    if isinstance(value, float)), flush=True)
    cases = [(p, s) for s in args.sizes for p in pipelines(args.device)]
    done = iter(range(1, len(cases) + 1))

    def measured(case):
        found = child(args, "--case-pipeline", case[0], "--case-size", case[1])
        print(f"memory: case {next(done)} of {len(cases)} ({case[0]}, {case[1]})", file=sys.stderr, flush=True)
        return found

    # each case's peak is its own process's: on a GPU, several run at once (none is timed here)
    with ThreadPoolExecutor(max_workers=4 if gpu else 1) as pool:
        found = list(pool.map(measured, cases))
        memory = {case: result["peak_mb"] for case, result in zip(cases, found)}
        reserved = {case: result.get("reserved_mb") for case, result in zip(cases, found)}
    names = pipelines(args.device)
    head = " | ".join(f"{n:>17}" for n in names)
    same = "official auto" in names  # "auto" also against the official steps at its own precision
    print(f"{'input':>11} | {head} | speed vs official: fp32   auto" + ("   auto vs official auto" if same else ""))
    print(f"{'':>11} | " + " | ".join(f"{'s':>7} {'peak MB':>9}" for _ in names) + " |")
    for size in args.sizes:
        cells = " | ".join(f"{timing[f'{p}|{size}']:>7.3f} {memory[(p, size)]:>9.0f}" for p in names)
        official, auto = timing[f"official|{size}"], timing[f"ours auto|{size}"]
        line = (f"{size + ' ' + 'x'.join(map(str, SIZES[size][::-1])):>11} | {cells} | "
                f"{'':>17}{official / timing[f'ours fp32|{size}']:>5.2f}× {official / auto:>5.2f}×")
        print(line + (f" {timing[f'official auto|{size}'] / auto:>22.2f}×" if same else ""))
    if gpu:
        pools = "; ".join(f"{p} " + " ".join(f"{reserved[(p, size)]:.0f}" for size in args.sizes) for p in names)
        print(f"peak GPU memory reserved, MB ({', '.join(args.sizes)}; the allocator's pools, a CUDA graph's own "
              f"included, which 'allocated' leaves out): {pools}")
    if "diff" in timing:
        diffs = ", ".join(f"{p} {timing['diff'][p]}/255 (mean {timing['mean_diff'][p]:.2f})" for p in names[1:])
        size = timing.get("working_size", 512)
        why = "" if size == 512 else (f" (these weights work at {size}²: at 512² the two pipelines differ by design, "
                                      "the official one resampling the whole picture, not by rounding)")
        print(f"512² output vs official (8-bit, max |Δ|): {diffs}{why}")
    for p in (n for n in names if n.startswith("ours")):
        base = timing.get(f"{p}|512²")
        rows = [f"{s} {timing[f'{p}|{s}'] / base:.2f}×" for s in args.sizes if s != "512²" and base]
        if rows:
            print(f"{p}: time vs its own 512²: " + ", ".join(rows))
    for baseline, candidate, label in (  # the CUDA-only pipelines, each against what it changes
        ("ours fp32 on host", "ours fp32", "ours fp32, full-resolution work on the GPU (default) vs on the host"),
        ("ours fp32", "ours fp32 graphs", "ours fp32 with the network replayed from a CUDA graph vs without"),
    ):
        if baseline in names and candidate in names:
            rows = [f"{s} {timing[f'{baseline}|{s}'] / timing[f'{candidate}|{s}']:.2f}×" for s in args.sizes]
            print(f"{label}: speed " + ", ".join(rows))
    if args.frames:
        n, h, w = FRAMES
        fps = {p: n / timing[f"{p}|frames"] for p in frame_pipelines(args.device)}
        others = ", ".join(f"{p} {f:.2f} fps ({f / fps['official']:.2f}×)" for p, f in fps.items() if p != "official")
        print(f"video: a batch of {n} frames {w}x{h} (uint8): official {fps['official']:.2f} fps, {others}")
        if "official auto" in fps:
            print(f"video, ours auto vs official auto: {fps['ours auto'] / fps['official auto']:.2f}×")
        if "ours fp32 one per call" in fps:
            print(f"ours fp32, {n} frames per network call (default on CUDA) vs one: speed "
                  f"{fps['ours fp32'] / fps['ours fp32 one per call']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
