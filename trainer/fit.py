r"""Train or fine-tune PHNet.

    python -m trainer.fit --config tiny_cpu --data PHOTOS --out runs/tiny
    python -m trainer.fit --config iharmony --data /data/iHarmony4 --resume
    torchrun --nproc_per_node 4 -m trainer.fit --config ffhqh --data /data/FFHQH \
        --set data.ffhq_root=/data/ffhq/images1024x1024

Writes into ``train.out_dir`` (a run folder, see trainer/run_folder.py):
``checkpoints/step-N/`` (every ``ckpt_every`` steps and at the end, atomic,
resumable), ``best/`` (lowest validation fMSE), ``log.jsonl``, ``curves.png`` and
``run_config.json`` (the trainer config). Every checkpoint folder loads with
``phnet.Harmonizer.from_pretrained(folder)``. A folder that holds a run is only
reused with ``--resume`` (continue it) or ``--overwrite`` (delete it first).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path

from phnet.console import interrupted_status, printable_anywhere, quiet_interrupt

# python -m trainer.fit: Ctrl-C while torch loads (seconds) ends the process at once, with 130, as phnet's does
_LOADING = quiet_interrupt() if __name__ == "__main__" else None

import torch
from torch.utils.data import DataLoader, Subset

from phnet.errors import out_of_memory
from phnet.precision import needs_grad_scaling, training_dtype
from phnet.weights import check_upload, upload_failed
from trainer import checkpoint as ckpt
from trainer.config import library_defaults, load_config, to_json, toml_text
from trainer.data import (HarmonizationDataset, build_dataset, check_data_folders, collate, data_kind,
                          split_settings, trained_photos_held_out)
from trainer.data.common import spread_sample
from trainer.data.folder import FolderDataset, copies_across, upscaled_photos
from trainer.data.workers import start_training_worker, worker_start_method
from trainer.distributed import Dist, EpochBatches, seed_everything
from trainer.ema import WeightAverage
from trainer.loop import Data, Optimisation, Position, StoppedAtOnce, TooManyBadSamples, TrainingLoop
from trainer.losses import HarmonizationLoss
from trainer.model import build_model, freeze_dead_parameters, unwrap
from trainer.optim import build_optimizer, build_scheduler
from trainer.resume import apply_hyperparameters, check_resume_config, validation_changes
from trainer.run_folder import RunFolder, RunFolderError, shell_word
from trainer.run_log import RunLog
from trainer.validation import amp_available, validation_photos

# Errors whose message tells the user what to do (a config value, a path, the data, a full disk): the CLI
# prints them as one line. ResumeConfigError and the config and data errors are ValueErrors.
USER_ERRORS = (ValueError, OSError, RunFolderError, TooManyBadSamples, FloatingPointError)


def train(cfg: dict, *, resume: str | bool = False, overwrite: bool = False, progress: bool = True,
          push_to_hub: str | None = None, hub_private: bool = False) -> dict:
    """Run one training as ``cfg`` says; return the final step, best validation fMSE and last scores (and
    ``hub_url``, or ``hub_error`` when the upload failed: the run is saved either way)."""
    if push_to_hub:
        check_upload(push_to_hub)  # not after hours of training
    check_data_folders(cfg["data"])  # before the run folder is touched
    env = Dist(cfg["train"].get("device", ""), float(cfg["train"]["process_timeout_minutes"]))
    run = RunFolder(cfg["train"]["out_dir"])
    try:
        check_ddp_settings(cfg["train"], env.world)  # before --overwrite deletes or --resume branches anything
        resume_dir, changes = open_run(cfg, env, run, resume, overwrite)
        return _train(cfg, env, run, resume_dir, changes, progress, push_to_hub, hub_private)
    finally:
        run.release_lock()
        env.close()


@contextlib.contextmanager
def spoken_by_main(env: Dist):
    """The notes and warnings of a step every process takes alike (the model and the data sets built): process 0
    gives them, once; an error is raised on every process all the same."""
    if env.main:
        yield
        return
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _train(cfg, env: Dist, run: RunFolder, resume_dir, changes, progress, push_to_hub, hub_private) -> dict:
    """The steps of a run, in the order they happen (the random-number streams depend on this order)."""
    t_cfg = cfg["train"]
    seed = int(t_cfg["seed"])
    seed_everything(seed + env.rank)
    with spoken_by_main(env):
        model = build_model(cfg, resume_dir).to(env.device)
    size = unwrap(model).config.image_size  # the working size: data sets, checkpoints and the model agree
    if env.main:
        describe(model, size, env)
        if resume_dir is None:
            note_library_defaults(cfg)
    with spoken_by_main(env):
        data = build_data(cfg, env, size, seed, progress)
    opt = build_optimisation(cfg, model, env, size)
    position, best = Position(), math.inf
    if resume_dir is not None:
        position, best, scored_on = restore(resume_dir, cfg, env, opt, data.batch_size)
    commit_run(cfg, env, run)
    if resume_dir is not None:
        same = None if scored_on is None else scored_on == data.val_photos
        stale = validation_changes(changes, same, synthesized=data_kind(cfg["data"]) == "folder")
        if not math.isinf(best) and not (run.root / "best").is_dir():
            # a fork, or a return to an earlier step that set best/ aside: the weights that scored it are not
            # in this run, so its first validation writes best/ again
            if env.main:
                print(f"[trainer] this run has no best/ (the checkpoint's best fMSE {best:.1f} was scored "
                      "elsewhere): its first validation writes one", file=sys.stderr)
            best = math.inf
        elif not math.isinf(best) and stale:
            if env.main:
                print(f"[trainer] the validation data changed ({', '.join(stale)}): the checkpoint's best fMSE "
                      f"{best:.1f} was scored on other composites, so this run's first validation writes best/ "
                      "again", file=sys.stderr)
            best = math.inf
    log = open_log(run, env, resume_dir, position, changes, data, PRECISIONS[opt.amp])
    loop = TrainingLoop(cfg=cfg, env=env, out_dir=run.root, log=log, model=model,
                        train_model=wrap_for_training(model, t_cfg, env), data=data, opt=opt, position=position,
                        best=best, progress=progress)
    done = loop.run()
    result = {"step": done["step"], "out_dir": str(run.root), "best_val_fmse": done["best_val_fmse"],
              "last_val": done["last_val"]}
    if done["stopped_by_signal"] is not None:
        result["stopped_by_signal"] = done["stopped_by_signal"]
    if env.main:
        finish(run.root, log, result, push_to_hub, hub_private)
    return result


# --------------------------------------------------------------------------- the run folder

def open_run(cfg: dict, env: Dist, run: RunFolder, resume, overwrite: bool) -> tuple[Path | None, dict]:
    """Rank 0 locks the folder and decides: fresh, overwrite or resume (refusing a changed [model]).

    Returns the checkpoint to resume (or None) and the config changes a resume applies; every
    rank gets rank 0's answer, or stops with its error.
    """
    if not env.main:
        outcome = env.from_main(None)
        if outcome[0] == "error":
            raise RunFolderError(f"rank 0 could not open the run folder: {outcome[1]}")
        return (Path(outcome[1]) if outcome[1] else None), outcome[2]
    try:
        run.acquire_lock()
        resume_dir = run.prepare(resume, overwrite, steps=int(cfg["train"]["steps"]))
        changes: dict = {}
        if resume_dir is not None:
            old = run.recorded_config(resume_dir)
            if old is None:
                print(f"[trainer] {resume_dir} records no trainer config: cannot check what changed",
                      file=sys.stderr)
            else:
                changes = check_resume_config(old, cfg, resume_dir, split_settings(cfg["data"]),
                                              held_out=lambda: trained_photos_held_out(old["data"], cfg["data"]))
    except BaseException as exc:
        env.from_main(("error", f"{type(exc).__name__}: {exc}"))
        raise
    env.from_main(("ok", str(resume_dir) if resume_dir else None, changes))
    return resume_dir, changes


def commit_run(cfg: dict, env: Dist, run: RunFolder) -> None:
    """Rank 0 deletes the run --overwrite replaces, or sets aside what a resume from an older step supersedes,
    and records the config: only now, with the weights, the data and the checkpoint's state all read, so a
    start that fails leaves the folder as it was. Every rank goes on from the folder as rank 0 left it."""
    outcome = ("ok",)
    if env.main:
        try:
            run.commit()
            run.write_config(cfg)
        except BaseException as exc:
            env.from_main(("error", f"{type(exc).__name__}: {exc}"))
            raise
    outcome = env.from_main(outcome)
    if outcome[0] == "error":
        raise RunFolderError(f"rank 0 could not prepare the run folder: {outcome[1]}")


def open_log(run: RunFolder, env: Dist, resume_dir, position, changes: dict, data, precision: str) -> RunLog:
    """``log.jsonl`` (cut back to the checkpoint on resume) and its start or resume record, which names the
    precision the run trains and validates in (``train.amp``: bf16 on a CPU with AMX, so a validation score
    differs slightly from ``trainer.evaluate``'s fp32 one)."""
    log = RunLog(run.root, env.main, position.step if resume_dir is not None else None)
    if env.main:
        print(f"[trainer] trains and validates in {precision}"
              + (" (train.amp = false for fp32)" if precision != "fp32" else ""), file=sys.stderr)
        event = {"type": "event", "step": position.step, "event": "resume" if resume_dir is not None else "start",
                 "from": str(resume_dir) if resume_dir else None, "world_size": env.world,
                 "train_samples": len(data.train_set), "val_samples": len(data.val_set), "precision": precision}
        if changes:
            event["changed"] = {k: list(v) for k, v in changes.items()}
            print("[trainer] the resumed run uses the new config: "
                  + "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()), file=sys.stderr)
        log.write(event)
    return log


def describe(model, size: int, env: Dist) -> None:
    mcfg = unwrap(model).config
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[trainer] model {mcfg.enc_sizes} grids {mcfg.grid_counts} output={mcfg.output} "
          f"({n_params / 1e6:.2f} M params), {size}px, device {env.device}, world {env.world}", file=sys.stderr)


def note_library_defaults(cfg: dict) -> None:
    left = library_defaults(cfg)
    if left:
        listed = ", ".join(f"{k} = {toml_text(v)}" for k, v in left.items())
        print(f'[trainer] model.preset is "", so the fields [model] leaves out take the library defaults '
              f'(phnet.PHNetConfig()): {listed}', file=sys.stderr)


def finish(out_dir: Path, log: RunLog, result: dict, push_to_hub: str | None, hub_private: bool) -> None:
    """Rank 0: the closing log record, and the upload when asked."""
    log.write({"type": "event", "step": result["step"], "event": "end", "best_val_fmse": result["best_val_fmse"]},
              curves=True)
    if not push_to_hub:
        return
    source = out_dir / "best" if (out_dir / "best").exists() else ckpt.latest_checkpoint(out_dir)
    private = " --private" if hub_private else ""  # a command that drops it would publish what was to stay private
    if source is None:  # a run ends on a checkpoint (its last step's, or a signal's): this one was removed since
        print(f"[trainer] no checkpoint of this run is left in {out_dir}: nothing was uploaded to {push_to_hub}; "
              f"upload a saved checkpoint folder with python -m trainer.push FOLDER {push_to_hub}{private}",
              file=sys.stderr)
        return
    later = f"python -m trainer.push {shell_word(source)} {push_to_hub}{private}"
    if "stopped_by_signal" in result:  # a run cut short is not what was asked to be published
        print(f"[trainer] the run was stopped before its end: nothing was uploaded to {push_to_hub}; continue it "
              f"with --resume --push-to-hub {push_to_hub}{' --hub-private' if hub_private else ''} (it uploads at "
              f"the end), or upload it as it is with {later}", file=sys.stderr)
        return
    try:
        url = ckpt.push_to_hub(source, push_to_hub, private=hub_private or None)
    except Exception as exc:  # the Hub's errors are many; the run itself is saved either way
        result["hub_error"] = f"{type(exc).__name__}: {exc}"
        print(f"[trainer] {upload_failed(push_to_hub, exc)}; the run is saved: upload it later with {later}",
              file=sys.stderr)
        return
    print(f"[trainer] uploaded {source} to {url}", file=sys.stderr)
    result["hub_url"] = url


# --------------------------------------------------------------------------- data

def build_data(cfg: dict, env: Dist, size: int, seed: int, progress: bool = True) -> Data:
    """Training and validation sets at the working size, and their loaders (the batches resume mid-epoch)."""
    t_cfg, d_cfg = cfg["train"], cfg["data"]
    shown = env.main and progress  # one process speaks
    train_set = build_dataset(d_cfg, "train", image_size=size, progress=shown, report=env.main)
    val_set = build_dataset(d_cfg, "val", image_size=size, progress=shown, report=env.main)
    if env.main and isinstance(val_set, FolderDataset) and isinstance(train_set, FolderDataset):
        small = upscaled_photos(train_set, size)
        if small:
            (path, (width, height)) = small[0]
            print(f"[data] {len(small)} of the training photos are smaller than the working size {size} px (e.g. "
                  f"{path.name}, {width}x{height}): they are enlarged, and the network learns their blur; use larger "
                  "photos, or leave these out", file=sys.stderr)
        photos = {r.real for r in val_set.records}  # what preloading holds, one picture each
        shared = photos & {r.real for r in train_set.records}
        if shared:  # a folder of one photo serves every split; data.val_root may be (or hold) the photos
            where = ("data.val_root holds training photos: give it photos that are not under data.root"
                     if d_cfg.get("val_root") else "add photos, or give held-out ones in data.val_root")
            print(f"[data] {len(shared)} of the {len(photos)} validation photos are "
                  f"training photos (e.g. {min(shared).name}): their scores say how well the run learned them, not "
                  f"how it does on others; {where}", file=sys.stderr)
        copies = [(a, b) for a, b in copies_across(val_set, train_set) if a != b]
        if copies:
            held, seen = copies[0]
            print(f"[data] {len(copies)} of the {len(photos)} validation photos have a near-duplicate "
                  f"among the training photos (e.g. {held} ~ {seen}): their scores are not held-out scores; keep one "
                  f"copy of each picture", file=sys.stderr)
    scored: HarmonizationDataset | Subset = val_set
    if t_cfg.get("val_max_samples"):  # a fixed spread of the split, the same on every rank and resume
        scored = Subset(val_set, spread_sample([r.name for r in val_set.records], int(t_cfg["val_max_samples"])))
    batch_size = int(t_cfg["batch_size"])
    batches = EpochBatches(train_set, batch_size, env.world, env.rank, seed)
    workers = int(d_cfg.get("num_workers", 0))
    in_memory = any(getattr(ds, "preloaded", None) is not None for ds in (train_set, val_set))  # data.preload
    loader = functools.partial(DataLoader, num_workers=workers, collate_fn=collate,
                               pin_memory=env.device.type == "cuda", persistent_workers=workers > 0,
                               worker_init_fn=start_training_worker,
                               multiprocessing_context=worker_start_method(d_cfg, in_memory) if workers else None)
    train_loader = loader(train_set, batch_sampler=batches)
    val_loader = loader(scored, batch_size=int(t_cfg["val_batch_size"]), shuffle=False)
    return Data(train_set, scored, batches, train_loader, val_loader, batch_size, validation_photos(scored))


# --------------------------------------------------------------------------- optimisation

def build_optimisation(cfg: dict, model, env: Dist, size: int) -> Optimisation:
    """Loss, optimizer over the live parameters, schedule, AMP scaler and the weight average."""
    t_cfg = cfg["train"]
    dead = freeze_dead_parameters(model, min(size, 64), env.device) if t_cfg.get("freeze_dead_modules", True) else []
    if dead and env.main:
        print(f"[trainer] {len(dead)} parameter tensors never get a gradient (dead modules), not trained: "
              f"{', '.join(sorted({n.rsplit('.', 1)[0] for n in dead}))}", file=sys.stderr)
    criterion = HarmonizationLoss.from_config(cfg["loss"])
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], t_cfg)
    with warnings.catch_warnings():
        if not env.main:  # the config's warnings, the same on every process: process 0 gives them
            warnings.simplefilter("ignore")
        scheduler = build_scheduler(optimizer, t_cfg)
    own = training_dtype(env.device) if t_cfg.get("amp") and amp_available(env.device) else None
    amp = shared_precision(env, own)
    if amp != own:
        print(f"[trainer] process {env.rank}: the processes' devices differ; every one trains in "
              f"{PRECISIONS[amp]}, the lowest precision all of them compute natively (this one: {PRECISIONS[own]})",
              file=sys.stderr)
    scaling = amp is not None and env.device.type == "cuda" and needs_grad_scaling(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=scaling)  # only fp16 needs it; bf16 has fp32's range
    decay = float(t_cfg.get("ema") or 0.0)
    ema = WeightAverage(unwrap(model), decay) if decay else None
    return Optimisation(criterion, optimizer, scheduler, scaler, ema, amp)


PRECISIONS = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}  # from least to most to agree on


def shared_precision(env: Dist, own: torch.dtype | None) -> torch.dtype | None:
    """One autocast precision for every process: DDP averages their gradients, and an fp16 process's are
    scaled by its GradScaler while a bf16 one's are not (GPUs of two generations under one torchrun)."""
    order = list(PRECISIONS)
    return order[env.least(order.index(own))]


def restore(resume_dir: Path, cfg: dict, env: Dist, opt: Optimisation,
            batch_size: int) -> tuple[Position, float, str | None]:
    """Load the optimizer, schedule, scaler, EMA and RNG states; apply the config's hyperparameters. Returns
    where the run stands, its best score and what that was scored on (``validation_photos``; None: not said)."""
    t_cfg = cfg["train"]
    state = ckpt.load_training_state(resume_dir)
    opt.optimizer.load_state_dict(state["optimizer"])
    opt.scheduler.load_state_dict(state["scheduler"])
    if opt.scaler.is_enabled() and state.get("scaler"):
        opt.scaler.load_state_dict(state["scaler"])
    if opt.ema is not None and state.get("ema"):
        opt.ema.load_state_dict(state["ema"])
    pos = Position(int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"]))
    positions = state.get("positions") or []  # each process's own (older checkpoints: process 0's for all)
    if len(positions) == env.world:
        pos.epoch, pos.batch_in_epoch = (int(v) for v in positions[env.rank])
    best = float(state.get("best_val_fmse", math.inf))
    saved_world, saved_batch = int(state.get("world_size", env.world)), int(state.get("batch_size", batch_size))
    if (saved_world, saved_batch) != (env.world, batch_size) and pos.batch_in_epoch:
        if env.main:  # the shards of the epoch differ: where the run stood in it has no meaning here
            print(f"[trainer] the checkpoint was written by {saved_world} process(es) with batches of {saved_batch}, "
                  f"this run has {env.world} with {batch_size}: epoch {pos.epoch} starts again from its first batch "
                  f"({pos.batch_in_epoch} batches of it were trained on before)", file=sys.stderr)
        pos.batch_in_epoch = 0
    if env.main:
        ckpt.restore_rng_state(state["rng"])
    else:
        seed_everything(int(t_cfg["seed"]) + env.rank + pos.step)
    apply_hyperparameters(opt.optimizer, opt.scheduler, t_cfg)
    if env.main:
        print(f"[trainer] resumed from {resume_dir} at step {pos.step}", file=sys.stderr)
    return pos, best, state.get("validation_photos")


def check_ddp_settings(t_cfg: dict, world: int) -> bool:
    """Whether DDP looks for parameters without a gradient; refuses the settings it would stop on."""
    find_unused = t_cfg.get("find_unused_parameters", "auto")
    if find_unused == "auto":  # needed only while the dead modules are still trainable
        find_unused = not t_cfg.get("freeze_dead_modules", True)
    if world > 1 and not find_unused and not t_cfg.get("freeze_dead_modules", True):
        raise ValueError("train.find_unused_parameters = false with train.freeze_dead_modules = false: PHNet's "
                         "modules that never run (the last PN block, skip.6) get no gradient, which DDP stops on "
                         "at the second step; set find_unused_parameters = \"auto\" (or freeze_dead_modules = true)")
    return bool(find_unused)


def wrap_for_training(model, t_cfg: dict, env: Dist):
    """``torch.compile``, cuDNN's algorithm search and DistributedDataParallel, as configured (the plain model
    stays for saving)."""
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(t_cfg["cudnn_benchmark"])
    train_model = model
    if t_cfg.get("compile"):
        train_model = torch.compile(train_model)
    find_unused = check_ddp_settings(t_cfg, env.world)
    if env.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=find_unused)
    return train_model


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None,
                   help="a TOML file, a name from trainer/configs (default, tiny_cpu, default_cpu, folder, iharmony, "
                   "ffhqh), or an earlier run's folder (its settings for a new run: give a new --out)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in the output folder (checkpoints, best/, log) and start over")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload best/ (else the last checkpoint) at the end")
    p.add_argument("--hub-private", action="store_true", help="create the Hub repo as private (an existing public "
                   "one is refused; default: the account's own default)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p


def main(argv=None) -> int:
    printable_anywhere()
    args = build_parser().parse_args(argv)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), os.environ.get("RANK", "0")
    who = f"process {rank} of {world}: " if world > 1 else ""  # which process stopped, under torchrun
    try:
        return run_cli(args)
    except StoppedAtOnce as stop:  # the shell's code for a command that signal stopped, as for one stop
        print(f"error: {who}stopped at once by a second signal {stop.signum}; the last complete checkpoint is "
              "kept (resume with --resume)", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:  # Ctrl-C outside the loop's own handling (imports, preloading, the end)
        print(f"error: {who}interrupted; the last complete checkpoint, if any, is kept (resume with --resume)",
              file=sys.stderr)
        return interrupted_status()
    except (RuntimeError, MemoryError, *USER_ERRORS) as exc:
        if out_of_memory(exc) and not isinstance(exc, ValueError):  # a ValueError says what to do itself
            message = memory_message(exc)  # also NCCL's own allocation failing, which is not another process's
        elif world > 1 and lost_a_peer(exc):
            message = peer_message(exc)
        elif isinstance(exc, USER_ERRORS):
            message = user_message(exc)
        else:
            raise
        print(f"error: {who}{message}", file=sys.stderr)
        return 2


def lost_a_peer(exc: BaseException) -> bool:
    """An error of the process group itself: another process stopped, or did not come in time."""
    backend = getattr(torch.distributed, "DistBackendError", ())  # NCCL's; gloo raises RuntimeErrors
    words = ("Connection closed by peer", "Connection reset by peer", "Timed out waiting")
    return isinstance(exc, (ConnectionError, backend)) or any(w in str(exc) for w in words)


def peer_message(exc: BaseException) -> str:
    if "Timed out" in str(exc) or "timeout" in str(exc).lower():
        return ("another process of this run did not reach the same step in time (it stalled, or validation or a "
                "checkpoint on process 0 took longer than train.process_timeout_minutes: raise it, or validate "
                "fewer samples with train.val_max_samples); this one stops too")
    return "another process of this run stopped (its own error above says why); this one stops too"


def memory_message(exc: BaseException) -> str:
    first = (user_message(exc).strip().splitlines() or [type(exc).__name__])[0]
    if getattr(exc, "while_validating", False):
        return (f"not enough memory while validating ({first}): lower train.val_batch_size (a resumed run takes the "
                "change), or data.image_size (a new run only)")
    return (f"not enough memory ({first}): lower train.batch_size, raising train.grad_accum as much to keep the "
            "samples per step (a resumed run takes the change), or data.image_size (a new run only)")


def run_cli(args: argparse.Namespace) -> int:
    over = flag_overrides(args)
    checkpoint = Path(args.resume) if isinstance(args.resume, str) else None
    if (checkpoint is not None and checkpoint.parent.name == "checkpoints" and checkpoint.name.startswith("step-")
            and args.out is None and not any(s.strip().startswith("train.out_dir") for s in args.set or [])):
        # <run>/checkpoints/step-N names its run: going back in it, not a branch into the config's own folder
        over.setdefault("train", {})["out_dir"] = str(checkpoint.parent.parent)
    named = _run_folder_named(args.config)
    if (named is not None and args.resume in (True, False) and args.out is None
            and not any(s.strip().startswith("train.out_dir") for s in args.set or [])):
        # --config RUN works in RUN itself: --resume continues it, --overwrite replaces it, and a plain start is
        # refused there naming it, wherever it was copied or moved to since it recorded its folder (the recorded
        # one may be another run, a copy's original)
        over.setdefault("train", {})["out_dir"] = str(named)
    cfg = load_config(args.config, args.set, over)
    if args.print_config:
        print(to_json(cfg), end="")
        return 0
    if not cfg["data"].get("root"):
        raise ValueError("no data set: pass --data FOLDER (or set data.root in the config)")
    check_out_outside_data(cfg)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   push_to_hub=args.push_to_hub, hub_private=args.hub_private)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, default=str))
    if "stopped_by_signal" in result:  # the shell's code for a command a signal stopped
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"[trainer] stopped at step {result['step']} of {cfg['train']['steps']}: continue it with --resume",
                  file=sys.stderr)
        return 128 + int(result["stopped_by_signal"])
    return 1 if "hub_error" in result else 0  # asked for, the upload failed: a script must not read success


def _run_folder_named(config: str | None) -> Path | None:
    """The run folder ``--config`` names (the folder, or the run config recorded in it), else None."""
    from trainer.config import RUN_CONFIG_NAME, run_config_path

    if not config:
        return None
    path = Path(config).expanduser()
    if path.is_dir():
        return path if run_config_path(path) is not None else None
    return path.parent if path.name == RUN_CONFIG_NAME and path.is_file() else None


def check_out_outside_data(cfg: dict) -> None:
    """The run folder is the photo folder itself: its curves.png would be read as a photo next time (a run
    folder inside the photos is left out when they are listed, by the files it holds)."""
    out = Path(cfg["train"]["out_dir"]).expanduser().resolve()
    for key, flag in (("root", "--data"), ("val_root", "data.val_root")):
        folder = cfg["data"].get(key)
        if folder and out == Path(folder).expanduser().resolve():
            raise ValueError(f"--out {cfg['train']['out_dir']} is the data folder {folder} itself ({flag}): the run's "
                             "own pictures would be read as photos. Choose another --out (a folder inside it is fine)")


def flag_overrides(args: argparse.Namespace) -> dict:
    """The config values the named flags set (``--set`` is applied after them)."""
    flags = {("data", "root"): args.data, ("data", "kind"): args.kind, ("train", "out_dir"): args.out,
             ("train", "steps"): args.steps, ("train", "batch_size"): args.batch_size,
             ("train", "lr"): args.lr, ("train", "device"): args.device, ("model", "init_from"): args.init_from}
    over: dict = {}
    for (sec, key), val in flags.items():
        if val is not None:
            over.setdefault(sec, {})[key] = val
    return over


def user_message(exc: BaseException) -> str:
    """One line: the error's own message, also when a data-loader worker wrapped it with its traceback."""
    text = str(exc)
    if "Original Traceback" in text:  # torch re-raises a worker's error as "Caught X in ... Traceback ... X: msg"
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    if isinstance(exc, OSError) and exc.errno in ckpt.DISK_FULL:
        text += "; free some space, then continue the run with --resume"
    return text


if __name__ == "__main__":
    if _LOADING is not None:  # loaded: Ctrl-C is main's (and the loop's) again
        signal.signal(signal.SIGINT, _LOADING)
    sys.exit(main())
