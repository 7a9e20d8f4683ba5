"""The training loop: one optimizer step, validation, checkpoints and log records, each a method.

:class:`TrainingLoop` receives everything already built (model, data loaders, optimizer,
run folder, log) from :mod:`trainer.fit` and owns only the moving parts: the position in
the data (step, epoch, batch), the best validation score, the running loss window and the
stop flag set by SIGTERM/SIGINT.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from phnet.atomic import write_atomic_text
from trainer import checkpoint as ckpt
from trainer.data.synthesis import SynthesisOptions
from trainer.data.synthesis_torch import synthesize_batch
from trainer.model import unwrap
from trainer.validation import autocast_for, validate

if TYPE_CHECKING:  # the groups' field types, for readers and checkers only
    from torch.utils.data import DataLoader

    from trainer.distributed import EpochBatches
    from trainer.ema import WeightAverage
    from trainer.losses import HarmonizationLoss


class TooManyBadSamples(RuntimeError):
    """``data.on_bad_sample = "skip"`` dropped ``data.max_bad_in_a_row`` samples and found no good one."""


class StoppedAtOnce(KeyboardInterrupt):
    """A stop signal received a second time: the run stops at once (what was being saved is not kept)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum} received twice")
        self.signum = signum


class _Stop(Exception):
    """Raised inside the loop when a stop was requested while no step could finish."""


@dataclass
class Position:
    """Where the run is: optimizer steps done, and the data epoch and batch to read next."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


@dataclass
class LossWindow:
    """Training losses summed since the last log record, left on the device until :meth:`read`: reading a
    GPU tensor makes the loop wait for the step to finish before it can queue the next one."""
    first_step: int = 1
    loss: torch.Tensor | float = 0.0
    n: int = 0
    samples: int = 0
    skipped: int = 0
    parts: dict = field(default_factory=dict)
    t: float = field(default_factory=time.time)
    excluded: float = 0.0  # seconds of validation and checkpoints in the window: not training time

    def add(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], samples: int, skipped: int) -> None:
        self.loss = self.loss + loss.detach()
        self.n += 1
        self.samples += samples
        self.skipped += skipped
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v.detach()

    def read(self) -> tuple[float, dict[str, float]]:
        """The mean loss and parts over the window, in one read from the device."""
        if not self.n:
            return 0.0, {}
        means = (torch.stack([torch.as_tensor(self.loss), *self.parts.values()]).float() / self.n).tolist()
        return means[0], dict(zip(self.parts, means[1:]))


READY_TO_STOP = "[trainer] Ctrl-C or SIGTERM stops the run after a checkpoint (twice: at once)"


class StopSignal:
    """SIGTERM/SIGINT set a flag (the run checkpoints and stops); a second one stops at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.requested = False
        self.signum: int | None = None  # the signal that asked for the stop
        self._old: dict = {}
        self._pid = os.getpid()

    def __enter__(self):
        if self.enabled:
            self._pid = os.getpid()
            self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
            print(READY_TO_STOP, file=sys.stderr, flush=True)
        return self

    def _on_signal(self, signum, frame):
        if os.getpid() != self._pid:  # a data worker forked with this handler: the trainer itself decides
            return
        if self.requested:
            raise StoppedAtOnce(signum)
        self.requested, self.signum = True, signum
        print(f"[trainer] signal {signum}: saving a checkpoint and stopping (send it again to stop at once)",
              file=sys.stderr)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


@dataclass
class Data:
    train_set: object
    val_set: object
    batches: EpochBatches
    train_loader: DataLoader
    val_loader: DataLoader
    batch_size: int
    val_photos: str | None = None  # what the validation scores are measured on (trainer.validation.validation_photos)


@dataclass
class Optimisation:
    criterion: HarmonizationLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: WeightAverage | None
    amp: torch.dtype | None  # the autocast precision every process trains in; None: fp32


class TrainingLoop:
    def __init__(self, *, cfg, env, out_dir, log, model, train_model, data: Data, opt: Optimisation,
                 position: Position, best: float, progress: bool):
        t = cfg["train"]
        self.cfg, self.env, self.out_dir, self.log = cfg, env, out_dir, log
        self.model, self.train_model, self.ema = model, train_model, opt.ema
        self.criterion, self.optimizer, self.scheduler, self.scaler = (
            opt.criterion, opt.optimizer, opt.scheduler, opt.scaler)
        self.step_lr = self.optimizer.param_groups[0]["lr"]  # the learning rate the last step took
        self.batches, self.train_loader, self.val_loader = data.batches, data.train_loader, data.val_loader
        self.amp, self.progress = opt.amp, progress
        self.pos, self.best = position, best
        self.validation_photos = data.val_photos  # what the best score was measured on
        self.total_steps, self.accum = int(t["steps"]), int(t["grad_accum"])
        self.batch_size = int(t["batch_size"])
        self.log_every, self.val_every, self.ckpt_every = (int(t[k]) for k in ("log_every", "val_every", "ckpt_every"))
        self.grad_clip = float(t["grad_clip"])  # every key has its one default in configs/default.toml
        self.budget = float(t["max_minutes"]) * 60
        self.patience, self.since_best = int(t["patience"]), 0
        self.max_bad = int(cfg["data"]["max_bad_in_a_row"])
        self.synthesis = SynthesisOptions(**cfg["data"].get("synthesis", {}))
        self.iterator: Iterator[dict] | None = None
        self.window = LossWindow(first_step=self.pos.step + 1)
        self.last_val = None
        self.validated_at = self.saved_at = -1  # the last steps validated and checkpointed
        self.bar = None
        self.stop = StopSignal(enabled=env.world == 1)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Train until ``train.steps`` (or the time budget, or a signal); validate and checkpoint on the way."""
        if self.env.main and self.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total_steps, initial=self.pos.step, desc="train", unit="step",
                            dynamic_ncols=True, file=sys.stderr)
        started = time.time()
        self.model.train()
        try:
            with self.stop:
                while self.pos.step < self.total_steps and not self.stop.requested:
                    try:
                        self.train_step()
                    except _Stop:
                        break
                    self.after_step(started)
                if self.stop.requested and self.pos.step < self.total_steps:
                    if self.window.n:  # the losses since the last record, as a budget or patience stop keeps them
                        self.log_window()
                    if self.saved_at != self.pos.step:  # (saved at this step already: with its validation's score)
                        self.save(val=self.last_val if self.validated_at == self.pos.step else None)
                    if self.env.main:
                        self.log.write({"type": "event", "step": self.pos.step, "event": "stopped by signal"})
        finally:
            if self.bar is not None:
                self.bar.close()
            self.stop_workers()
        stopped = self.stop.signum if self.stop.requested and self.pos.step < self.total_steps else None
        return {"step": self.pos.step, "best_val_fmse": None if math.isinf(self.best) else self.best,
                "last_val": self.last_val, "stopped_by_signal": stopped}

    def stop_workers(self) -> None:
        """End the data workers as the loop ends. Persistent ones live as long as their loader, which a run ended by
        an error keeps (in the error's traceback) up to Python's exit: ended there by SIGTERM, torch printed
        'DataLoader worker (pid N) is killed by signal: Terminated' after the run's own error line."""
        self.iterator = None
        for loader in (self.train_loader, self.val_loader):
            workers = getattr(loader, "_iterator", None)  # kept by the loader where its workers are persistent
            if workers is not None:
                workers._shutdown_workers()
                loader._iterator = None

    def after_step(self, started: float) -> None:
        """Log, check the time budget, validate and checkpoint as the intervals say."""
        step = self.pos.step
        if self.bar is not None:
            self.bar.update(1)
        if step < self.total_steps and self.out_of_time(started):
            self.total_steps = step
            if self.env.main:
                self.log.write({"type": "event", "step": step,
                                "event": f"time budget of {self.budget / 60:g} min reached"})
                self.say(f"[trainer] the time budget of {self.budget / 60:g} min is spent at step {step}: it ends "
                         "here; continue it with --resume (each start gets train.max_minutes anew)")
        if step % self.log_every == 0 or step == self.total_steps:  # (the last step's losses, however it ends)
            self.log_window()
        at_end = step == self.total_steps
        validated = (self.val_every and step % self.val_every == 0) or at_end
        if validated:
            self.last_val = self.untimed(self.validate)
            if self.env.main and self.last_val is not None and self.last_val["n"]:
                if self.last_val["fmse"] < self.best:
                    self.best, self.since_best = self.last_val["fmse"], 0
                    self.untimed(lambda: self.save(best_dir=True, val=self.last_val))
                else:
                    self.since_best += 1
            if not at_end and self.patience and self.env.from_main(self.since_best >= self.patience):
                self.total_steps, at_end = step, True  # decided on rank 0: every rank stops here
                if step % self.log_every:
                    self.log_window()
                if self.env.main:
                    self.log.write({"type": "event", "step": step, "event": f"stopped early: no better validation "
                                    f"fMSE in {self.patience} checks (best {self.best:.1f})"})
                    self.say(f"[trainer] stopped early at step {step}: no better validation fMSE in {self.patience} "
                             f"checks; best/ holds the best (fMSE {self.best:.1f})")
        self.validated_at = step if validated else self.validated_at
        if (self.ckpt_every and step % self.ckpt_every == 0) or at_end:
            self.untimed(lambda: self.save(val=self.last_val if validated else None))  # these weights' score
            self.saved_at = step

    def untimed(self, work: Callable[[], Any]) -> Any:
        """``work()``, its time left out of the training rate of the window it falls in."""
        window, started = self.window, time.time()
        try:
            return work()
        finally:
            window.excluded += time.time() - started

    # ------------------------------------------------------------------ one step
    def next_batch(self) -> tuple[dict, int]:
        """The next batch holding at least one good sample, and how many bad ones were skipped to get it."""
        skipped = 0
        while True:
            if self.iterator is None:  # one iterator for the whole run (a resume or a stop starts a new one)
                if self.pos.batch_in_epoch >= self.batches.per_epoch:  # saved at an epoch's end (earlier versions)
                    self.pos.epoch, self.pos.batch_in_epoch = self.pos.epoch + 1, 0
                self.batches.start_at(self.pos.epoch, self.pos.batch_in_epoch)
                self.iterator = iter(self.train_loader)
            try:
                batch = next(self.iterator)
            except StopIteration:
                raise ValueError("the training set holds no sample for this process: give data.root more "
                                 "photos (at least one per process)") from None
            self.pos.batch_in_epoch += 1
            if self.pos.batch_in_epoch >= self.batches.per_epoch:
                self.pos.epoch, self.pos.batch_in_epoch = self.pos.epoch + 1, 0
            skipped += batch.get("skipped", 0)
            if "real" in batch:
                return batch, skipped
            if self.stop.requested:
                raise _Stop
            if skipped >= self.max_bad:
                raise TooManyBadSamples(self.bad_data_message(skipped))

    def bad_data_message(self, skipped: int) -> str:
        root = self.cfg["data"].get("root")
        if root and not Path(root).expanduser().is_dir():
            return (f"gave up: {skipped} bad samples in a row, and the data folder {root} (data.root) is gone: "
                    f"moved or deleted during the run? Put it back and continue with --resume.")
        return (f"gave up: {skipped} bad samples in a row and not one usable sample (data.on_bad_sample = "
                f"\"skip\" drops them; the warnings above name the files). Check data.root ({root}) and the "
                f"masks; data.max_bad_in_a_row ({self.max_bad}) sets how many are tolerated.")

    def train_step(self) -> None:
        """One optimizer step over ``grad_accum`` micro-batches (EMA updated after it)."""
        start = (self.pos.epoch, self.pos.batch_in_epoch)
        # every micro-batch is fetched before any runs: a stop while skipping bad data then leaves no trace of the
        # step (no loss logged, no batch-norm statistics moved) in what the stop saves
        try:
            batches = [self.next_batch() for _ in range(self.accum)]
        except _Stop:  # stopped while skipping bad data: the step never happened
            self.pos.epoch, self.pos.batch_in_epoch = start
            self.iterator = None
            raise
        self.optimizer.zero_grad(set_to_none=True)
        for micro, (batch, skipped) in enumerate(batches):
            comp, real, mask = self.to_device(batch)
            sync = (self.train_model.no_sync() if self.env.world > 1 and micro < self.accum - 1
                    else contextlib.nullcontext())
            with sync:
                with autocast_for(self.env.device, self.amp):
                    pred = self.train_model(comp, mask)
                loss, parts = self.criterion(pred, real, mask)
                self.scaler.scale(loss / self.accum).backward()
            self.window.add(loss, parts, comp.shape[0], skipped)
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.step_lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # the scaler skips the optimizer step when the gradients overflowed (and lowers its scale): the
        # schedule then waits too, so it never runs ahead of the optimizer
        if scale is None or self.scaler.get_scale() >= scale:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))
        self.pos.step += 1

    def to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``comp``, ``real`` and ``mask`` on the device; composites still to make (on_device) are made there."""
        real, mask = (batch[k].to(self.env.device, non_blocking=True) for k in ("real", "mask"))
        if "synthesis" in batch:
            comp, real = synthesize_batch(real, mask, batch["synthesis"], self.synthesis)
            return comp, real, mask
        return batch["comp"].to(self.env.device, non_blocking=True), real, mask

    def out_of_time(self, started: float) -> bool:
        """The wall-clock budget is spent (decided on rank 0, so every rank stops at the same step: several
        processes ask only at log steps, as the broadcast waits for every rank's queued work)."""
        if not self.budget:
            return False
        if self.env.world == 1:
            return time.time() - started >= self.budget
        if self.pos.step % self.log_every:
            return False
        flag = torch.tensor([float(time.time() - started >= self.budget)], device=self.env.device)
        torch.distributed.broadcast(flag, 0)
        return bool(flag.item())

    # ------------------------------------------------------------------ logging
    def check_loss(self, loss: float | None = None, *, every_rank: bool = True) -> None:
        """Stop if a training loss since the last log record (``loss``: their mean, when already read) was not
        finite. Checked whenever the run logs, validates or saves, not every step, so that nothing is saved
        from a model that took such a step. With several processes they all stop when one saw it (its step
        reached every model through the averaged gradients); ``every_rank=False`` where rank 0 checks alone,
        after a check of them all at the same step."""
        w = self.window
        loss = w.read()[0] if loss is None else loss
        where = f"within steps {w.first_step}-{self.pos.step} (lr {self.step_lr:.3g})"
        fix = "nothing was saved after it: lower train.lr or enable train.grad_clip"
        if not math.isfinite(loss):
            if self.env.world > 1 and every_rank:
                self.env.ranks_where(True)  # the others stop too
            raise FloatingPointError(f"the training loss became {loss} {where}; {fix}")
        others = self.env.ranks_where(False) if self.env.world > 1 and every_rank else []
        if others:
            raise FloatingPointError(
                f"the training loss of process {others[0]} (of {self.env.world}) became non-finite {where}, and the "
                f"averaged gradients carried it into this process's weights; {fix}")

    def log_window(self) -> None:
        w = self.window
        loss, parts = w.read()  # waits for the window's last steps: only then is its time known
        dt = max(time.time() - w.t - w.excluded, 1e-9)
        self.check_loss(loss)
        samples, skipped = w.samples, w.skipped
        if self.env.world > 1:  # every process's window, each training on (and skipping from) its own share
            n, samples, skipped, *sums = self.env.sums([w.n, w.samples, w.skipped, loss * w.n,
                                                        *(v * w.n for v in parts.values())])
            loss, parts = sums[0] / n, {k: v / n for k, v in zip(parts, sums[1:])}
            samples, skipped = int(samples), int(skipped)
        rec = {"type": "train", "step": self.pos.step, "epoch": self.pos.epoch,
               "loss": loss,
               **parts,
               "lr": self.step_lr,  # the last step's (the schedule has moved on to the next one's)
               "samples_per_s": samples / dt}
        if skipped:
            rec["skipped_samples"] = skipped
        self.log.write(rec, curves=True)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}", img_s=f"{rec['samples_per_s']:.1f}")
        self.window = LossWindow(first_step=self.pos.step + 1)

    def say(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    # ------------------------------------------------------------------ validation
    def eval_model(self):
        """The weights people get: the running average when train.ema is set."""
        return self.ema.module if self.ema is not None else unwrap(self.model)

    def validate(self) -> dict | None:
        """Rank 0 scores the validation split and logs it; the other ranks wait."""
        res = None
        self.check_loss()
        if self.env.main:
            try:
                res = validate(self.eval_model(), self.val_loader, self.env.device, amp=self.amp)
            except (RuntimeError, MemoryError) as exc:  # memory: train.val_batch_size is the setting, not batch_size
                setattr(exc, "while_validating", True)  # a mark fit's memory message reads
                raise
            self.log.write({"type": "val", "step": self.pos.step, **res}, curves=True)
        unreadable = self.env.from_main(res is not None and not res["n"] and res["skipped"])
        if unreadable:  # every rank stops, with the same message
            raise ValueError(
                f"validation at step {self.pos.step}: none of the {unreadable} samples of the validation split could "
                f"be read (data.on_bad_sample = \"skip\" dropped them all; the warnings above name the files): "
                f"replace them, or point data.val_root at readable photos, and run again")
        if res is not None and self.progress and res["n"]:  # only rank 0 scored
            near_right = ("near-right n/a (none in this split)" if res["near_right_fmse"] is None else
                          f"near-right fMSE {res['near_right_fmse']:.1f} (composite "
                          f"{res['composite_near_right_fmse']:.1f})")
            self.say(f"[trainer] step {self.pos.step}: val fMSE {res['fmse']:.1f} (composite "
                     f"{res['composite_fmse']:.1f}) MSE {res['mse']:.1f} (composite {res['composite_mse']:.1f}) "
                     f"{near_right} untouched {res['untouched_mse']:.1f}")
        self.env.barrier()
        return res

    # ------------------------------------------------------------------ checkpoints
    def training_state(self) -> dict:
        """Everything a resume needs besides the weights (loads with ``torch.load(weights_only=True)``)."""
        return {
            "step": self.pos.step, "epoch": self.pos.epoch, "batch_in_epoch": self.pos.batch_in_epoch,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": ckpt.capture_rng_state(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "best_val_fmse": self.best, "world_size": self.env.world, "batch_size": self.batch_size,
            "validation_photos": self.validation_photos,
        }

    def save(self, *, best_dir: bool = False, val: dict | None = None) -> None:
        """Rank 0 writes ``checkpoints/step-N`` (then every rank meets) or ``best/`` (alone, no barrier)."""
        self.check_loss(every_rank=not best_dir)
        # where each process stands in its share of the epoch: skipped bad batches move them apart
        positions = None if best_dir else self.env.gather((self.pos.epoch, self.pos.batch_in_epoch))
        if self.env.main:
            try:
                self.write_checkpoint(best_dir, val, positions)
            except OSError as exc:
                if exc.errno not in ckpt.WRITE_FAILED:
                    raise
                raise ckpt.DiskFullError(self.disk_full_message(exc, best_dir)) from None
        if not best_dir:
            self.env.barrier()  # everybody waits so nobody races ahead into the next interval

    def disk_full_message(self, exc: OSError, best_dir: bool = False) -> str:
        intact = ckpt.latest_checkpoint(self.out_dir)  # a checkpoint is whole or absent (save_checkpoint)
        if exc.errno in ckpt.DISK_FULL:
            what, fix = f"the disk is full ({exc.strerror})", "free some space"
        else:
            folder = self.out_dir / ("best" if best_dir else f"checkpoints/step-{self.pos.step:08d}")
            what, fix = f"cannot write the checkpoint {folder} ({exc.strerror})", "free some space or raise the limit"
        if intact is None:
            return (f"{what} while saving step {self.pos.step}, and no checkpoint of this run was saved yet: {fix} "
                    "and start again")
        return (f"{what} while saving step {self.pos.step}; the last checkpoint saved, {intact}, is intact: {fix}, "
                "then continue the run with --resume")

    def write_checkpoint(self, best_dir: bool, val: dict | None, positions: list | None = None) -> None:
        """``checkpoint.json``'s ``val`` scores the weights saved beside it. With ``train.ema`` a step checkpoint
        saves the trained weights (a resume goes on from them) while validation scored the average (what
        ``best/`` saves): that score is kept as ``ema_val``."""
        step = self.pos.step
        info = {"step": step, "epoch": self.pos.epoch,
                "best_val_fmse": None if math.isinf(self.best) else self.best,
                "weights": "ema" if best_dir and self.ema is not None else "trained", "val": val}
        if self.ema is not None and not best_dir:
            info["val"], info["ema_val"] = None, val
        if best_dir:
            ckpt.save_checkpoint(self.out_dir / "best", self.eval_model(), None, info, self.cfg)
            return
        folder = self.out_dir / "checkpoints" / f"step-{step:08d}"
        ckpt.save_checkpoint(folder, unwrap(self.model), {**self.training_state(), "positions": positions}, info,
                             self.cfg)
        write_atomic_text(self.out_dir / "latest", folder.name + "\n")
        ckpt.prune_checkpoints(self.out_dir, int(self.cfg["train"]["keep_last"]))
