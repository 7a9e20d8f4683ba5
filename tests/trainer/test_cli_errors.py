"""User errors end ``python -m trainer.fit`` with exit code 2 and one line ``error: ...`` that says what to do."""
from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch

from training_runs import read_log, tiny_cfg, write_shift_set


def fit_main(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in this process; return its exit code and its one ``error:`` line (asserted to be one)."""
    from trainer.fit import main

    rc = main(["--config", "tiny_cpu", "--no-progress", "--set", "train.val_every=0", "--set", "train.log_every=1",
               "--set", "train.warmup_steps=0", "--batch-size", "4", *args])  # (runs of a few steps: no warm-up)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and err.splitlines()[-1] == errors[0], err[-3000:]
    return rc, errors[0]


@pytest.mark.parametrize("args, expected", [
    (["--set", "model.x=1"], ["unknown [model] key(s) ['x']", "correct or remove"]),
    (["--set", 'train.steps="ten"'], ["train.steps must be an integer", "got \"ten\""]),
    (["--lr", "-1"], ["train.lr must be above 0"]),
    (["--set", "data.hflip=2"], ["data.hflip must be from 0 to 1"]),
    (["--set", "data.crop_scale=[1.0, 0.5]"], ["data.crop_scale is [low, high]", "did you mean [0.5, 1.0]?"]),
    (["--set", "train.amp=1"], ["train.amp must be true or false"]),
    (["--device", "nonsense"], ["train.device 'nonsense': not a device name torch knows", "use cpu"]),
])
def test_config_mistakes(shift_set, tmp_path, capsys, args, expected):
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(tmp_path / "run"), "--steps", "1", *args)
    assert all(e in line for e in expected), line


def test_paths_that_cannot_be_used(shift_set, tmp_path, capsys):
    _, line = fit_main(capsys, "--data", "/nope", "--out", str(tmp_path / "run"))
    assert line == "error: data.root: the folder /nope does not exist; correct data.root (--data)"
    missing = tmp_path / "run" / "checkpoints" / "step-00000009"
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(tmp_path / "run"), "--resume", str(missing))
    assert line.startswith(f"error: --resume {missing}: no such checkpoint folder")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run folder")
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(a_file))
    assert line.startswith(f"error: {a_file} is a file, not a folder") and "--out" in line
    assert a_file.read_text() == "not a run folder"
    # the run's own curves.png was read as a photo by the next run on that folder
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(shift_set))
    assert line == (f"error: --out {shift_set} is the data folder {shift_set} itself (--data): the run's own "
                    "pictures would be read as photos. Choose another --out (a folder inside it is fine)")
    assert not (shift_set / "run_config.json").exists()


def test_resuming_a_finished_run_or_a_folder_that_is_no_checkpoint(shift_set, tmp_path, capsys):
    """A finished run 'resumed' trained nothing and printed a result as if it were new; best/ and the run folder
    were called damaged checkpoints."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=1, batch_size=4, log_every=1), progress=False)
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "2", "--resume")
    assert line.endswith("the run already reached step 2 of train.steps=2; raise --steps to train further")
    for folder, what in ((out / "best", "a model folder (weights only, as best/ is)"), (out, "a run folder")):
        _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "4", "--resume",
                           str(folder))
        assert line.startswith(f"error: --resume {folder}: {what}, not a step checkpoint") and "--init-from" in line


@pytest.mark.parametrize("damaged", ["training_state.pt", "model.safetensors"])
def test_a_damaged_newest_checkpoint_names_the_intact_ones(shift_set, tmp_path, capsys, damaged):
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=0, batch_size=4, log_every=1, keep_last=2),
          progress=False)
    newest, older = out / "checkpoints" / "step-00000004", out / "checkpoints" / "step-00000002"
    path = newest / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated, e.g. copied off a full disk
    log = (out / "log.jsonl").read_text()
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "6", "--resume")
    assert line.startswith(f"error: the checkpoint {newest} is damaged (")
    assert line.endswith(f"resume from an intact one instead: --resume {older}")
    assert (out / "log.jsonl").read_text() == log  # nothing was cut back or appended
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "6", "--resume", str(newest))
    assert f"--resume {older}" in line
    fork = tmp_path / "fork"  # a branch into a new folder: the intact ones are those of the checkpoint's run
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(fork), "--steps", "6", "--resume", str(newest))
    assert line.endswith(f"resume from an intact one instead: --resume {older}")
    shutil.rmtree(older)
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "6", "--resume")
    weights = f"--init-from {newest} (or --init-from {out / 'best'})" if damaged == "training_state.pt" else \
        f"--init-from {out / 'best'}"
    assert line.endswith(f"start a new run from them with {weights} and another --out (--overwrite would delete "
                         "them)"), line  # --overwrite would delete the only trained weights
    shutil.rmtree(out / "best")
    (newest / "model.safetensors").write_bytes(b"")
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "6", "--resume")
    assert line.endswith("holds no intact checkpoint: start over with --overwrite")


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_a_damaged_training_state_alone_points_at_the_intact_weights(shift_set, tmp_path, capsys, how):
    """The only checkpoint's training_state.pt damaged, its weights and best/ intact: the advice was --overwrite,
    which deletes those weights."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=2, batch_size=4, log_every=1), progress=False)
    only = out / "checkpoints" / "step-00000002"
    state = only / "training_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2] if how == "truncated" else b"")
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "4", "--resume")
    assert line.startswith(f"error: the checkpoint {only} is damaged (")
    assert f"--init-from {only}" in line and "another --out" in line, line
    assert line.index("--init-from") < line.index("--overwrite"), line
    from trainer.fit import main  # the advice works

    assert main(["--config", "tiny_cpu", "--no-progress", "--set", "train.val_every=0", "--batch-size", "4",
                 "--set", "train.warmup_steps=0", "--data", str(shift_set), "--out", str(tmp_path / "new"), "--steps",
                 "1", "--init-from",
                 str(only)]) == 0
    (only / "model.safetensors").write_bytes(b"")  # the weights gone too: best/ is what is left
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "4", "--resume")
    assert f"--init-from {out / 'best'}" in line and f"--init-from {only}" not in line, line


def test_a_training_state_holding_python_objects_is_refused_without_torch_s_advice_to_run_them(shift_set, tmp_path,
                                                                                                capsys):
    """The reason kept torch's first line, which goes on to advise loading it with weights_only=False (running
    whatever the file holds)."""
    import argparse

    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4, log_every=1), progress=False)
    only = out / "checkpoints" / "step-00000002"
    torch.save({"step": 2, "args": argparse.Namespace(lr=1.0)}, only / "training_state.pt")
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "4", "--resume")
    assert line.startswith(f"error: the checkpoint {only} is damaged (UnpicklingError: unsupported GLOBAL "
                           "argparse.Namespace refused); "), line
    assert "weights_only" not in line and "trust" not in line


def test_a_damaged_best_record_is_set_aside_by_a_branch_not_a_parser_s_message(shift_set, tmp_path, capsys):
    """An empty best/checkpoint.json ended a resume from an older step with 'Expecting value: line 1 column 1'."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=2, batch_size=4, log_every=1, keep_last=2),
          progress=False)
    from trainer.fit import main

    (out / "best" / "checkpoint.json").write_text("")
    args = ["--config", "tiny_cpu", "--no-progress", "--set", "train.val_every=0", "--batch-size", "4",
            "--set", "train.warmup_steps=0", "--data", str(shift_set), "--out", str(out)]
    assert main([*args, "--steps", "5", "--resume"]) == 0, capsys.readouterr().err[-2000:]  # from the newest
    assert (out / "best").is_dir() and not (out / "superseded").exists()  # nothing later to go with
    assert main([*args, "--steps", "5", "--resume", str(out / "checkpoints" / "step-00000004")]) == 0
    assert (out / "superseded" / "after-step-00000004" / "best").is_dir()


def test_a_checkpoint_s_damaged_copy_of_its_settings_gives_way_to_the_run_s(shift_set, tmp_path, capsys):
    """The copy is optional (older runs have none): damaged, it condemned intact weights and state, and with no
    other checkpoint the advice was --overwrite."""
    from trainer.fit import main, train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4, log_every=1), progress=False)
    copy = out / "checkpoints" / "step-00000002" / "training_config.json"
    copy.write_text(copy.read_text()[:100])
    assert main(["--config", "tiny_cpu", "--no-progress", "--set", "train.val_every=0", "--batch-size", "4",
                 "--set", "train.warmup_steps=0", "--data", str(shift_set), "--out", str(out), "--steps", "3",
                 "--resume"]) == 0
    assert f"{copy} is damaged" in capsys.readouterr().err


def _run_with_the_second_save_failing(shift_set, tmp_path, capsys, monkeypatch, fail):
    """(run folder, error line) of a 4-step run checkpointing every 2 steps, whose torch.save writes the first
    checkpoint and calls ``fail(path)`` instead of writing the second."""
    real_save, calls = torch.save, []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            return real_save(obj, path, *args, **kwargs)
        fail(path)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "4",
                       "--set", "train.ckpt_every=2")
    return out, line


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(shift_set, tmp_path, capsys, monkeypatch):
    from trainer import checkpoint as ckpt

    def disk_fills(path):
        path.write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    out, line = _run_with_the_second_save_failing(shift_set, tmp_path, capsys, monkeypatch, disk_fills)
    previous = out / "checkpoints" / "step-00000002"
    assert line == (f"error: the disk is full (No space left on device) while saving step 4; the last checkpoint "
                    f"saved, {previous}, is intact: free some space, then continue the run with --resume")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]  # no half-written folder
    assert ckpt.damage(previous) is None
    assert not (out / "trainer.lock").exists()


def test_a_full_disk_reported_in_torchs_own_words_is_still_a_full_disk(shift_set, tmp_path, capsys, monkeypatch):
    """torch.save says '[enforce fail at inline_container.cc] . unexpected pos' and safetensors 'os error 28':
    neither is an OSError, and the run ended in a traceback."""
    import shutil

    real_usage = shutil.disk_usage

    def disk_fills(path):
        monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=0))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    _, line = _run_with_the_second_save_failing(shift_set, tmp_path, capsys, monkeypatch, disk_fills)
    assert line.startswith("error: the disk is full (No space left on device) while saving step 4")


def test_a_quota_or_file_size_limit_while_checkpointing_keeps_the_previous_checkpoint(shift_set, tmp_path, capsys,
                                                                                       monkeypatch):
    """torch.save's 'unexpected pos' with space left on the disk (a quota, ulimit -f) ended the run in a traceback."""
    from trainer import checkpoint as ckpt

    def refused(path):
        path.write_bytes(b"half a file")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    out, line = _run_with_the_second_save_failing(shift_set, tmp_path, capsys, monkeypatch, refused)
    previous = out / "checkpoints" / "step-00000002"
    assert line == (f"error: cannot write the checkpoint {out / 'checkpoints' / 'step-00000004'} (torch could not "
                    "write training_state.pt: a full disk, a quota or a file size limit?) while saving step 4; the "
                    f"last checkpoint saved, {previous}, is intact: free some space or raise the limit, then continue "
                    "the run with --resume")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    assert ckpt.damage(previous) is None


@pytest.mark.filterwarnings("ignore:skipping bad sample")
@pytest.mark.parametrize("policy, workers", [("error", 0), ("skip", 0), ("error", 1)])
def test_a_data_folder_that_vanishes_mid_run(tmp_path, capsys, monkeypatch, policy, workers):
    import trainer.fit

    data = write_shift_set(tmp_path / "set", n=12, n_val=4)
    build_data = trainer.fit.build_data

    def build_then_lose_the_folder(*args, **kwargs):
        built = build_data(*args, **kwargs)
        shutil.rmtree(data)  # an unmounted disk, a clean-up script
        return built

    monkeypatch.setattr(trainer.fit, "build_data", build_then_lose_the_folder)
    out = tmp_path / "run"
    _, line = fit_main(capsys, "--data", str(data), "--out", str(out), "--steps", "2",
                       "--set", f'data.on_bad_sample="{policy}"', "--set", "data.max_bad_in_a_row=8",
                       "--set", f"data.num_workers={workers}")
    if policy == "error":
        assert line.startswith(f"error: the folder {data}/") and " is gone " in line and "--resume" in line
    else:
        assert line.startswith("error: gave up: 8 bad samples in a row, and the data folder") and "--resume" in line
    assert [r["event"] for r in read_log(out) if r["type"] == "event"] == ["start"]


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 6442450944 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8 GiB"),
    MemoryError(),
    RuntimeError("Caught MemoryError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                 "numpy._core._exceptions._ArrayMemoryError: Unable to allocate 137. MiB for an array"),
])
def test_running_out_of_memory_names_the_settings_that_use_it(shift_set, tmp_path, capsys, monkeypatch, error):
    """An allocation that failed ended the run in a traceback with exit code 1."""
    from trainer.loop import TrainingLoop

    def no_memory(self, batch):
        raise error

    monkeypatch.setattr(TrainingLoop, "to_device", no_memory)
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(tmp_path / "run"), "--steps", "2")
    assert line.startswith("error: not enough memory (")
    assert all(key in line for key in ("train.batch_size", "data.image_size", "train.grad_accum")), line


def test_a_process_s_own_nccl_memory_failure_is_not_blamed_on_another(monkeypatch, capsys):
    """NCCL's DistBackendError for this process's own allocation was read as a lost peer: 'another process of this
    run stopped'."""
    from trainer import fit

    def nccl_out_of_memory(args):
        raise torch.distributed.DistBackendError(
            "NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda error (run with NCCL_DEBUG=INFO for details), "
            "NCCL version 2.21.5\nncclUnhandledCudaError: Call to CUDA function failed.\nLast error:\n"
            "Cuda failure 'out of memory'")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(fit, "run_cli", nccl_out_of_memory)
    assert fit.main(["--config", "tiny_cpu"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: process 1 of 2: not enough memory (NCCL error in:") and "train.batch_size" in line
    assert "another process" not in line


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   MemoryError()])
def test_running_out_of_memory_while_validating_names_val_batch_size(shift_set, tmp_path, capsys, monkeypatch,
                                                                     error):
    """Validation batches are train.val_batch_size samples: the line named train.batch_size, which is not."""
    import trainer.loop

    def no_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(trainer.loop, "validate", no_memory)
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(tmp_path / "run"), "--steps", "2",
                       "--set", "train.val_every=1")
    assert line.startswith("error: not enough memory while validating (") and "train.val_batch_size" in line, line
    assert "train.batch_size" not in line and "train.grad_accum" not in line


def test_running_out_of_memory_while_preloading_names_data_preload(photos, tmp_path, capsys, monkeypatch):
    """Memory that ran short holding the photos named train.batch_size and data.image_size, which change nothing
    there; data.preload = false does."""
    from trainer.data.folder import Preloaded

    read = Preloaded.read
    calls = []

    def short_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise MemoryError("Unable to allocate 137. MiB for an array with shape (6000, 8000, 3) and data type "
                              "uint8")
        return read(*args, **kwargs)

    monkeypatch.setattr(Preloaded, "read", staticmethod(short_of_memory))
    _, line = fit_main(capsys, "--data", str(photos[0]), "--out", str(tmp_path / "run"), "--steps", "2",
                       "--set", "data.preload=true", "--set", "data.num_workers=0")
    assert line.startswith("error: data.preload: memory ran short holding 3 of the "), line
    assert "set data.preload = false" in line and "Unable to allocate 137. MiB" in line
    assert "train.batch_size" not in line and "data.image_size" not in line


def test_a_refused_resume_of_an_older_checkpoint_moves_nothing(shift_set, tmp_path, capsys):
    """The finished-run check came after the later checkpoints and best/ had been set aside."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=2, batch_size=4, log_every=1, keep_last=2),
          progress=False)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "2", "--resume",
                       str(out / "checkpoints" / "step-00000002"))
    assert line.endswith("the run already reached step 2 of train.steps=2; raise --steps to train further")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_a_refused_start_deletes_or_moves_nothing(shift_set, tmp_path, capsys):
    """--overwrite deleted the old run, and a resume from an older step set its later steps aside, before weights
    that were not there or a changed [model] refused the start."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=4, ckpt_every=2, val_every=2, batch_size=4, log_every=1, keep_last=2),
          progress=False)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--overwrite", "--init-from",
                       str(tmp_path / "not-there"))
    assert "not-there" in line and sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    _, line = fit_main(capsys, "--data", str(shift_set), "--out", str(out), "--steps", "6", "--resume",
                       str(out / "checkpoints" / "step-00000002"), "--set", "model.grid_counts=[2, 2, 1]")
    assert "grid_counts" in line and sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_an_earlier_runs_folder_is_a_config_for_a_new_run(shift_set, tmp_path, capsys):
    """--config RUN was refused: a run's recorded settings could only be copied out by hand."""
    from trainer.fit import main

    first = tmp_path / "first"
    assert main(["--config", "tiny_cpu", "--data", str(shift_set), "--out", str(first), "--steps", "1",
                 "--lr", "0.0005", "--set", "data.num_workers=0", "--set", "train.warmup_steps=0",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["--config", str(first), "--out", str(tmp_path / "second"), "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["lr"] == 0.0005 and cfg["train"]["out_dir"] == str(tmp_path / "second")
    assert cfg["data"]["root"] == str(shift_set)
    _, line = fit_main(capsys, "--config", str(tmp_path), "--data", str(shift_set))
    assert "holds no run config" in line


def test_a_data_folder_named_like_a_config_does_not_hide_the_config(tmp_path, monkeypatch):
    from trainer.config import CONFIG_DIR, resolve_config_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ffhqh").mkdir()  # --config ffhqh --data ffhqh
    assert resolve_config_path("ffhqh") == CONFIG_DIR / "ffhqh.toml"


def test_python_m_trainer_lists_every_trainer_command():
    """It left out source_subset, photo_curve and real_pastes, which the docs use."""
    from pathlib import Path

    from trainer.__main__ import COMMANDS

    root = Path(__file__).resolve().parents[2] / "trainer"
    commands = {"trainer." + ".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.py")
                if "\ndef main(" in p.read_text(encoding="utf-8")}
    assert commands and all(f"python -m {c} " in COMMANDS for c in commands), commands


def test_ctrl_c_before_the_training_loop_ends_with_one_line(monkeypatch, capsys):
    """Ctrl-C while the data preloaded (before the loop's own handling) printed a traceback."""
    from trainer import fit

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "run_cli", interrupted)
    assert fit.main(["--config", "tiny_cpu"]) == 130
    assert "interrupted; the last complete checkpoint, if any, is kept" in capsys.readouterr().err


def test_ctrl_c_out_of_code_run_from_a_string_ends_python_m_with_130_too(tmp_path, subprocess_env):
    """CPython notes a KeyboardInterrupt that came out of code it ran from a string (the methods a dataclass makes, as
    the modules the trainer imports while its workers' server loads do), caught or not: the run printed its one line,
    then python -m ended it by SIGINT itself (status -2), not with 130."""
    import subprocess
    import sys

    (tmp_path / "interrupted_run.py").write_text(
        "import sys\nfrom trainer import fit\n\nfit.run_cli = lambda args: exec('raise KeyboardInterrupt', {})\n"
        "sys.exit(fit.main(['--config', 'tiny_cpu']))\n")
    done = subprocess.run([sys.executable, "-m", "interrupted_run"], cwd=tmp_path, env=subprocess_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 130 and "Traceback" not in done.stderr, (done.returncode, done.stderr[-3000:])
    assert done.stderr.rstrip().endswith("interrupted; the last complete checkpoint, if any, is kept (resume with "
                                         "--resume)"), done.stderr[-3000:]


def test_ctrl_c_while_the_trainer_loads_ends_quietly(tmp_path):
    """python -m trainer.fit imports torch before main runs: Ctrl-C then printed a KeyboardInterrupt traceback. Pressed
    when torch has begun to load (a fixed 0.3 s fell before the trainer's first line on a busy machine)."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    started = subprocess.Popen([sys.executable, "-m", "trainer.fit", "--config", "tiny_cpu", "--data", str(tmp_path),
                                "--out", str(tmp_path / "run")], cwd=repo, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    maps, deadline = Path(f"/proc/{started.pid}/maps"), time.monotonic() + 60
    while time.monotonic() < deadline:  # pressed before Python reaches the trainer, any program gives a traceback
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:  # no /proc (macOS), or the run has ended: press it now
            time.sleep(0.3)
            break
        time.sleep(0.005)
    started.send_signal(signal.SIGINT)
    _, err = started.communicate(timeout=120)
    assert started.returncode in (130, 2) and "Traceback" not in err, err  # 2: it got as far as the data check


def test_a_folder_named_by_a_date_is_a_folder(tmp_path, capsys):
    """--set train.out_dir=2024-05-01 was read as a TOML date and refused as "must be a string", shown as one."""
    from trainer.fit import main

    assert main(["--config", "tiny_cpu", "--set", "train.out_dir=2024-05-01", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["out_dir"] == "2024-05-01"
