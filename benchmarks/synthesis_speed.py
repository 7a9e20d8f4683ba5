"""Synthetic composites per second: the numpy recipe one sample at a time against the batched torch one.

    python benchmarks/synthesis_speed.py [--size 256] [--batch 64] [--cuda-batch 256] [--numpy-samples 24]
                                         [--rounds 3] [--threads N]

Paths, all in the same run on the same photos and masks:

- numpy: ``trainer.data.synthesis.synthesize()`` one sample at a time, as a data worker makes training
  composites by default (one worker on one core: several workers multiply it);
- torch cpu: ``trainer.data.synthesis_torch.synthesize_batch()`` on the CPU, a batch at a time, on one
  thread and on torch's default number of threads (``--threads``);
- torch cuda: the same on the GPU when ``torch.cuda.is_available()``, timed between ``torch.cuda.synchronize()``
  calls; photos and masks already on the GPU, parameters coming from the CPU, as in training;
- draws: the per-sample parameter draws (``draw_sample``) that the data workers still make with
  ``[data.synthesis] on_device = true`` (numpy, one sample at a time).

Every path draws its parameters like training does (strengths with identity and mild pairs, 1-3 transforms,
a reference picture for the statistics transfer). The median of ``--rounds`` rounds is printed, with the
ratios to the numpy path.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: this checkout's packages, not installed ones
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from trainer.data.synthesis import SynthesisOptions, sample_strength, synthesize
from trainer.data.synthesis_torch import draw_batch, synthesize_batch

N_PHOTOS = 8


def photo(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth two-colour background with texture, and an elliptical head-and-shoulders subject."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1, skin = rng.uniform(0.1, 0.9, (3, 3))
    img = c0 * (1 - xx[..., None]) + c1 * xx[..., None] + 0.05 * np.sin(20 * (xx + yy))[..., None]
    head = ((yy - 0.4) / 0.2) ** 2 + ((xx - 0.5) / 0.15) ** 2 <= 1
    body = ((yy - 0.95) / 0.35) ** 2 + ((xx - 0.5) / 0.35) ** 2 <= 1
    mask = head | body
    img = np.where(mask[..., None], skin * (0.8 + 0.2 * yy[..., None]), img)
    img = img + rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), mask.astype(np.float32)


def timed(fn, rounds: int, cuda: bool = False) -> float:
    """Median seconds of ``fn()`` over ``rounds`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="picture side in pixels")
    p.add_argument("--batch", type=int, default=64, help="batch of the torch path on the CPU")
    p.add_argument("--cuda-batch", type=int, default=256, help="batch of the torch path on the GPU")
    p.add_argument("--numpy-samples", type=int, default=24, help="composites per round of the numpy path")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads besides 1 (0: torch's default)")
    args = p.parse_args(argv)
    for option in ("size", "batch", "cuda_batch", "numpy_samples", "rounds"):
        if getattr(args, option) < 1:
            p.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if args.threads < 0:
        p.error(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)

    opts = SynthesisOptions()
    rng = np.random.default_rng(0)
    pictures = [photo(rng, args.size) for _ in range(N_PHOTOS)]
    reference = photo(rng, 64)[0]  # the data sets use a 64 px thumbnail of another photo

    def numpy_path():
        for i in range(args.numpy_samples):
            real, mask = pictures[i % N_PHOTOS]
            synthesize(real, mask, rng, reference=reference, strength=sample_strength(rng, opts), options=opts)

    def batch_of(n: int, device: str):
        real = torch.stack([torch.from_numpy(pictures[i % N_PHOTOS][0]).permute(2, 0, 1) for i in range(n)])
        mask = torch.stack([torch.from_numpy(pictures[i % N_PHOTOS][1])[None] for i in range(n)])
        return real.to(device), mask.to(device), draw_batch(rng, n, opts, reference=reference)

    print(f"composites of {args.size}x{args.size}, torch {torch.__version__}, numpy single-threaded; "
          f"median of {args.rounds} rounds")
    rates = {}
    t = timed(numpy_path, args.rounds)
    rates["numpy, one sample at a time"] = args.numpy_samples / t
    t = timed(lambda: draw_batch(rng, args.batch, opts, reference=reference), args.rounds)
    draws_per_s = args.batch / t
    real, mask, params = batch_of(args.batch, "cpu")
    threads = torch.get_num_threads()
    for n in sorted({1, threads}):  # one thread is the like-for-like comparison (and steadier on a busy machine)
        torch.set_num_threads(n)
        t = timed(lambda: synthesize_batch(real, mask, params, opts), args.rounds)
        rates[f"torch cpu, {n} thread{'s' if n > 1 else ''}, batches of {args.batch}"] = args.batch / t
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        real, mask, params = batch_of(args.cuda_batch, "cuda")
        t = timed(lambda: synthesize_batch(real, mask, params, opts), args.rounds, cuda=True)
        rates[f"torch cuda ({torch.cuda.get_device_name(0)}), batches of {args.cuda_batch}"] = args.cuda_batch / t
    else:
        print("(no CUDA device: the GPU path is not measured)")

    base = rates["numpy, one sample at a time"]
    width = max(len(k) for k in rates)
    for name, rate in rates.items():
        print(f"  {name:<{width}}  {rate:10.1f} composites/s  x{rate / base:.1f}")
    print(f"  parameter draws for the device path (numpy, per sample, in the data workers): {draws_per_s:.0f} "
          f"samples/s on one core ({1e6 / draws_per_s:.0f} us each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
