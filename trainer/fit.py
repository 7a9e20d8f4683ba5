r"""Train or fine-tune PHNet.

    python -m trainer.fit --config tiny_cpu --data PHOTOS --out runs/tiny
    python -m trainer.fit --config iharmony --data /data/iHarmony4 --resume
    torchrun --nproc_per_node 4 -m trainer.fit --config ffhqh --data /data/FFHQH \
        --set data.ffhq_root=/data/ffhq/images1024x1024

Writes into ``train.out_dir``: ``checkpoints/step-N/`` (every ``ckpt_every``
steps and at the end, atomic, resumable), ``best/`` (lowest validation fMSE),
``log.jsonl``, ``curves.png`` and ``config.json`` (the trainer config). Every
checkpoint folder loads with ``phnet.Harmonizer.from_pretrained(folder)``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Subset

from trainer import checkpoint as ckpt
from trainer.config import data_image_size, load_config, model_config, to_json
from trainer.curves import draw_curves
from trainer.data import build_dataset, collate
from trainer.losses import HarmonizationLoss
from trainer.optim import build_optimizer, build_scheduler
from trainer.validation import amp_available, autocast_for, validate


# --------------------------------------------------------------------------- sampling

class EpochSampler(DistributedSampler):
    """DistributedSampler that yields ``(index, epoch)`` and can start mid-epoch (for resume).

    The epoch travels with the index so that the data set's random augmentation
    and synthesis are a function of (seed, epoch, index): a resumed run sees the
    same samples it would have seen without the interruption.
    """

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.start = 0

    def __iter__(self):
        indices = list(super().__iter__())[self.start:]
        return iter([(i, self.epoch) for i in indices])

    def __len__(self):
        return max(0, self.num_samples - self.start)


# --------------------------------------------------------------------------- distributed

class Dist:
    """Process-group facts; a single process is rank 0 of 1."""

    def __init__(self, device_pref: str = ""):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_pref:
            dev = torch.device(device_pref)
        else:
            dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if dev.type == "cuda":
            dev = torch.device("cuda", self.local_rank if dev.index is None else dev.index)
            torch.cuda.set_device(dev)
        self.device = dev
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- logging

class RunLog:
    """JSONL log + curve PNG, written by rank 0 only."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None):
        self.path = out_dir / "log.jsonl"
        self.curve = out_dir / "curves.png"
        self.enabled = enabled
        self.records: list[dict] = []
        if not enabled:
            return
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                # after a resume, entries past the checkpoint will be written again
                if resume_step is None or rec.get("step", 0) <= resume_step:
                    self.records.append(rec)
        if resume_step is None:
            self.records = []
        ckpt.write_atomic_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, rec: dict, curves: bool = False) -> None:
        if not self.enabled:
            return
        rec = {**rec, "time": round(time.time(), 3)}
        self.records.append(rec)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if curves:
            self.draw()

    def draw(self) -> None:
        if self.enabled:
            try:
                draw_curves(self.records, self.curve)
            except Exception as exc:  # a plot must never stop training
                warnings.warn(f"could not draw {self.curve}: {exc}")


# --------------------------------------------------------------------------- model

def build_model(cfg: dict, resume_from: Path | None):
    from phnet import PHNet
    from phnet.weights import load_model

    mcfg = model_config(cfg)
    source = resume_from or cfg["model"].get("init_from") or None
    if source:
        model = load_model(str(source))
        loaded = model.config
        if resume_from is None:
            arch = ("enc_sizes", "grid_counts", "pfe_grid", "se_reduction")
            diffs = [k for k in arch if getattr(loaded, k) != getattr(mcfg, k)]
            if diffs and cfg["model"].get("preset", "") != "":
                print(f"[trainer] init_from {source}: using its architecture (differs in {diffs})",
                      file=sys.stderr)
            if loaded.output != mcfg.output:
                print(f"[trainer] init_from {source}: keeping its output mapping {loaded.output!r} "
                      f"(the config asks for {mcfg.output!r}; the weights only make sense with their own)",
                      file=sys.stderr)
            # the training resolution of the new run is taken from the config
            import dataclasses
            new = dataclasses.replace(loaded, image_size=mcfg.image_size)
            if new != loaded:
                fresh = PHNet(new)
                fresh.load_state_dict(model.state_dict())
                model = fresh
        return model
    return PHNet(mcfg)


def freeze_dead_parameters(model: torch.nn.Module, size: int, device: torch.device) -> list[str]:
    """Find parameters that never receive a gradient and stop training them.

    The official architecture keeps modules that never run (the last PN block and
    ``skip.6``) so that its weights load; DDP would otherwise need
    ``find_unused_parameters=True`` on every step. One probe forward/backward in
    eval mode (so BatchNorm statistics are untouched) finds them.
    """
    was_training = model.training
    model.eval()
    s = max(16, size // 8 * 8)
    probe = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device)  # global RNG untouched
    mask = torch.zeros(1, 1, s, s, device=device)
    mask[..., s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    model.zero_grad(set_to_none=True)
    model(probe, mask).float().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        p.grad = None
        if name in dead:
            p.requires_grad_(False)
    model.train(was_training)
    return dead


def unwrap(model):
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


# --------------------------------------------------------------------------- main loop

def train(cfg: dict, *, resume: str | bool = False, progress: bool = True, push_to_hub: str | None = None,
          hub_private: bool = False) -> dict:
    t_cfg = cfg["train"]
    env = Dist(t_cfg.get("device", ""))
    out_dir = Path(t_cfg["out_dir"]).expanduser()
    try:
        return _train(cfg, env, out_dir, resume, progress, push_to_hub, hub_private)
    finally:
        env.close()


def _train(cfg, env: Dist, out_dir: Path, resume, progress, push_to_hub, hub_private) -> dict:
    t_cfg, d_cfg = cfg["train"], cfg["data"]
    device = env.device
    if env.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_temporaries(out_dir)
    env.barrier()

    # ---- where to start
    resume_dir = None
    if resume:
        resume_dir = Path(resume) if isinstance(resume, str) else ckpt.latest_checkpoint(out_dir)
        if resume_dir is None:
            if env.main:
                print(f"[trainer] --resume: no checkpoint in {out_dir / 'checkpoints'}, starting fresh",
                      file=sys.stderr)
        elif not (ckpt.is_complete(resume_dir) and (resume_dir / ckpt.STATE_FILE).exists()):
            raise FileNotFoundError(f"{resume_dir} is not a resumable checkpoint (needs {ckpt.STATE_FILE})")
    seed = int(t_cfg["seed"])
    seed_everything(seed + env.rank)

    model = build_model(cfg, resume_dir).to(device)
    mcfg = unwrap(model).config
    image_size = data_image_size(cfg, mcfg)
    if env.main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"[trainer] model {mcfg.enc_sizes} grids {mcfg.grid_counts} output={mcfg.output} "
              f"({n_params / 1e6:.2f} M params), {image_size}px, device {device}, world {env.world}",
              file=sys.stderr)
        ckpt.write_atomic_text(out_dir / "config.json", to_json(cfg))

    # ---- data
    train_set = build_dataset(d_cfg, "train", image_size=image_size)
    val_set = build_dataset(d_cfg, "val", image_size=image_size)
    if t_cfg.get("val_max_samples"):
        val_set = Subset(val_set, range(min(len(val_set), int(t_cfg["val_max_samples"]))))
    batch_size = int(t_cfg["batch_size"])
    sampler = EpochSampler(train_set, env.world, env.rank, seed)
    drop_last = sampler.num_samples >= batch_size
    workers = int(d_cfg.get("num_workers", 0))
    loader_kw = dict(num_workers=workers, collate_fn=collate, pin_memory=device.type == "cuda",
                     persistent_workers=workers > 0)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                              **loader_kw)
    val_loader = DataLoader(val_set, batch_size=int(t_cfg["val_batch_size"]), shuffle=False, **loader_kw)

    # ---- optimisation
    dead = freeze_dead_parameters(model, min(image_size, 64), device) if t_cfg.get("freeze_dead_modules", True) else []
    if dead and env.main:
        print(f"[trainer] {len(dead)} parameter tensors never get a gradient (dead modules), not trained: "
              f"{', '.join(sorted({n.rsplit('.', 1)[0] for n in dead}))}", file=sys.stderr)
    criterion = HarmonizationLoss.from_config(cfg["loss"])
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], t_cfg)
    scheduler = build_scheduler(optimizer, t_cfg)
    use_amp = bool(t_cfg.get("amp")) and amp_available(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")  # bf16 needs no scaling
    ema_decay = float(t_cfg.get("ema") or 0.0)
    ema = (torch.optim.swa_utils.AveragedModel(unwrap(model), multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema_decay),
                                              use_buffers=True) if ema_decay else None)

    def eval_model():
        """The weights people get: the running average when train.ema is set."""
        return ema.module if ema is not None else unwrap(model)
    total_steps, accum = int(t_cfg["steps"]), int(t_cfg["grad_accum"])

    step, epoch, batch_in_epoch, best = 0, 0, 0, math.inf
    if resume_dir is not None:
        state = ckpt.load_training_state(resume_dir)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        step, epoch = int(state["step"]), int(state["epoch"])
        batch_in_epoch = int(state["batch_in_epoch"])
        best = float(state.get("best_val_fmse", math.inf))
        if int(state.get("world_size", env.world)) != env.world or int(state.get("batch_size", batch_size)) != batch_size:
            batch_in_epoch = 0  # different sharding: restart the epoch rather than guess
            epoch += 1
        if env.main:
            ckpt.restore_rng_state(state["rng"])
        else:
            seed_everything(seed + env.rank + step)
        for group in optimizer.param_groups:  # the schedule may have changed (e.g. more steps)
            group["lr"] = group["initial_lr"] * scheduler.lr_lambdas[0](step)
        if env.main:
            print(f"[trainer] resumed from {resume_dir} at step {step}", file=sys.stderr)

    train_model = model
    if t_cfg.get("compile"):
        train_model = torch.compile(train_model)
    find_unused = t_cfg.get("find_unused_parameters", "auto")
    if find_unused == "auto":  # needed only while the dead modules are still trainable
        find_unused = not t_cfg.get("freeze_dead_modules", True)
    if env.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused)

    log = RunLog(out_dir, env.main, step if resume_dir is not None else None)
    if env.main:
        log.write({"type": "event", "step": step,
                   "event": "resume" if resume_dir is not None else "start",
                   "from": str(resume_dir) if resume_dir else None, "world_size": env.world,
                   "train_samples": len(train_set), "val_samples": len(val_set)})

    def save(name_step: int, *, best_dir: bool = False, val: dict | None = None):
        """Rank 0 writes (``best/`` is written by rank 0 alone, without a barrier)."""
        if env.main:
            state = {
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "rng": ckpt.capture_rng_state(),
                "ema": ema.state_dict() if ema is not None else {},
                "best_val_fmse": best, "world_size": env.world, "batch_size": batch_size,
            }
            info = {"step": step, "epoch": epoch, "best_val_fmse": None if math.isinf(best) else best,
                    "val": val}
            folder = out_dir / "best" if best_dir else out_dir / "checkpoints" / f"step-{name_step:08d}"
            ckpt.save_checkpoint(folder, eval_model() if best_dir else unwrap(model), None if best_dir else state,
                                 info, cfg)
            if not best_dir:
                ckpt.write_atomic_text(out_dir / "latest", folder.name + "\n")
                ckpt.prune_checkpoints(out_dir, int(t_cfg.get("keep_last", 0)))
        if not best_dir:
            env.barrier()  # everybody waits so nobody races ahead into the next interval

    def run_validation() -> dict | None:
        res = None
        if env.main:
            res = validate(eval_model(), val_loader, device, amp=use_amp)
            log.write({"type": "val", "step": step, **res}, curves=True)
            if progress:
                msg = (f"[trainer] step {step}: val fMSE {res['fmse']:.1f} (composite {res['composite_fmse']:.1f}) "
                       f"MSE {res['mse']:.1f} (composite {res['composite_mse']:.1f}) near-right fMSE "
                       f"{res['near_right_fmse']:.1f} (composite {res['composite_near_right_fmse']:.1f}) "
                       f"untouched {res['untouched_mse']:.1f}")
                if bar is not None:
                    bar.write(msg, file=sys.stderr)
                else:
                    print(msg, file=sys.stderr)
        env.barrier()
        return res

    bar = None
    # ---- stop cleanly on SIGTERM/SIGINT (single process: save, then exit)
    stop = {"flag": False}
    if env.world == 1:
        def on_signal(signum, frame):
            stop["flag"] = True
        old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    else:
        old_handlers = {}

    iterator = None

    def next_batch():
        nonlocal iterator, epoch, batch_in_epoch
        skipped = 0
        while True:
            if iterator is None:
                sampler.set_epoch(epoch)
                sampler.start = batch_in_epoch * batch_size
                iterator = iter(train_loader)
            try:
                batch = next(iterator)
            except StopIteration:
                iterator, epoch, batch_in_epoch = None, epoch + 1, 0
                continue
            batch_in_epoch += 1
            skipped += batch.get("skipped", 0)
            if "comp" in batch:
                return batch, skipped

    if env.main and progress:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                   file=sys.stderr)
    log_every, val_every, ckpt_every = (int(t_cfg[k]) for k in ("log_every", "val_every", "ckpt_every"))
    window = {"loss": 0.0, "n": 0, "samples": 0, "skipped": 0, "t": time.time(), "parts": {}}
    last_val = None
    budget = float(t_cfg.get("max_minutes") or 0) * 60
    started = time.time()

    def out_of_time() -> bool:
        """The wall-clock budget is spent (decided on rank 0, so every rank stops at the same step)."""
        if not budget:
            return False
        flag = torch.tensor([float(time.time() - started >= budget)], device=device)
        if env.world > 1:
            torch.distributed.broadcast(flag, 0)
        return bool(flag.item())

    model.train()
    try:
        while step < total_steps and not stop["flag"]:
            optimizer.zero_grad(set_to_none=True)
            for micro in range(accum):
                batch, skipped = next_batch()
                comp, real, mask = (batch[k].to(device, non_blocking=True) for k in ("comp", "real", "mask"))
                sync = (train_model.no_sync() if env.world > 1 and micro < accum - 1
                        else contextlib.nullcontext())
                with sync:
                    with autocast_for(device, use_amp):
                        pred = train_model(comp, mask)
                    loss, parts = criterion(pred, real, mask)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"loss became {float(loss)} at step {step} (lr {scheduler.get_last_lr()[0]:.3g}); "
                            f"lower train.lr or enable train.grad_clip")
                    scaler.scale(loss / accum).backward()
                window["loss"] += float(loss.detach())
                window["n"] += 1
                window["samples"] += comp.shape[0]
                window["skipped"] += skipped
                for k, v in parts.items():
                    window["parts"][k] = window["parts"].get(k, 0.0) + v
            if float(t_cfg.get("grad_clip") or 0) > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(t_cfg["grad_clip"]))
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(unwrap(model))
            step += 1
            if bar is not None:
                bar.update(1)
            if step % log_every == 0 or step == total_steps:
                dt = max(time.time() - window["t"], 1e-9)
                rec = {"type": "train", "step": step, "epoch": epoch,
                       "loss": window["loss"] / max(window["n"], 1),
                       **{k: v / max(window["n"], 1) for k, v in window["parts"].items()},
                       "lr": scheduler.get_last_lr()[0],
                       "samples_per_s": window["samples"] * env.world / dt}
                if window["skipped"]:
                    rec["skipped_samples"] = window["skipped"]
                log.write(rec, curves=True)
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}",
                                    img_s=f"{rec['samples_per_s']:.1f}")
                window = {"loss": 0.0, "n": 0, "samples": 0, "skipped": 0, "t": time.time(), "parts": {}}
            if step < total_steps and out_of_time():
                total_steps = step
                if env.main:
                    log.write({"type": "event", "step": step, "event": f"time budget of {budget / 60:g} min reached"})
            at_end = step == total_steps
            if (val_every and step % val_every == 0) or at_end:
                last_val = run_validation()
                if env.main and last_val is not None and last_val["n"] and last_val["fmse"] < best:
                    best = last_val["fmse"]
                    save(step, best_dir=True, val=last_val)
            if (ckpt_every and step % ckpt_every == 0) or at_end:
                save(step, val=last_val if at_end else None)
        if stop["flag"] and step < total_steps:
            save(step)
            if env.main:
                log.write({"type": "event", "step": step, "event": "stopped by signal"})
    finally:
        if bar is not None:
            bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)

    result = {"step": step, "out_dir": str(out_dir), "best_val_fmse": None if math.isinf(best) else best,
              "last_val": last_val}
    if env.main:
        log.write({"type": "event", "step": step, "event": "end", "best_val_fmse": result["best_val_fmse"]},
                  curves=True)
        if push_to_hub:
            source = out_dir / "best" if (out_dir / "best").exists() else ckpt.latest_checkpoint(out_dir)
            url = ckpt.push_to_hub(source, push_to_hub, private=hub_private)
            print(f"[trainer] uploaded {source} to {url}", file=sys.stderr)
            result["hub_url"] = url
    return result


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None,
                   help="a TOML file or a name from trainer/configs (default, tiny_cpu, folder, iharmony, ffhqh)")
    p.add_argument("--data", help="data-set folder (data.root)")
    p.add_argument("--kind", choices=["auto", "iharmony", "ffhqh", "folder"], help="data.kind")
    p.add_argument("--out", help="output folder (train.out_dir)")
    p.add_argument("--steps", type=int, help="train.steps")
    p.add_argument("--batch-size", type=int, help="train.batch_size (per process)")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--device", help="train.device (cpu, cuda, cuda:1)")
    p.add_argument("--init-from", help="model.init_from: weights to fine-tune (folder, file or Hub id)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value (TOML syntax), repeatable")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue from the latest checkpoint in the output folder (or from the given one)")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload best/ (else the last checkpoint) at the end")
    p.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    over: dict = {}
    flags = {("data", "root"): args.data, ("data", "kind"): args.kind, ("train", "out_dir"): args.out,
             ("train", "steps"): args.steps, ("train", "batch_size"): args.batch_size,
             ("train", "lr"): args.lr, ("train", "device"): args.device, ("model", "init_from"): args.init_from}
    for (sec, key), val in flags.items():
        if val is not None:
            over.setdefault(sec, {})[key] = val
    try:
        cfg = load_config(args.config, args.set, over)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(to_json(cfg), end="")
        return 0
    if not cfg["data"].get("root"):
        print("error: no data set: pass --data FOLDER (or set data.root in the config)", file=sys.stderr)
        return 2
    result = train(cfg, resume=args.resume, progress=not args.no_progress, push_to_hub=args.push_to_hub,
                   hub_private=args.hub_private)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
