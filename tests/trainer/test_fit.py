"""End-to-end: a tiny training that learns, evaluation, SIGKILL + resume, 2-process DDP, bad samples."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
import torch
from PIL import Image

from training_runs import REPO, read_log, run_torchrun, tiny_cfg
from training_runs import fit_cmd as _fit_cmd
from training_runs import wait_for as _wait_for


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shift_set):
    from trainer.fit import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    result = train(tiny_cfg(shift_set, out, steps=100, val_every=50, ckpt_every=50, warmup_steps=20),
                   progress=False)
    return out, result


def test_tiny_training_learns_and_checkpoints_load(trained_run):
    from phnet import Harmonizer

    out, result = trained_run
    log = read_log(out)
    train = [r for r in log if r["type"] == "train"]
    assert train[-1]["loss"] < 0.8 * train[0]["loss"]  # 0.2*100/PSNR dominates: ~21 dB -> ~30 dB
    lrs = [r["lr"] for r in train]
    assert lrs[0] < max(lrs) and lrs[-1] < 0.2 * max(lrs)  # warm-up, then the cosine decays: it is stepped
    val = [r for r in log if r["type"] == "val"]
    assert [v["step"] for v in val] == [50, 100]
    assert val[-1]["fmse"] < 0.5 * val[-1]["composite_fmse"]
    assert result["best_val_fmse"] == min(v["fmse"] for v in val)
    with Image.open(out / "curves.png") as curves:
        assert curves.size[0] > 100
    from trainer.fit import PRECISIONS  # the start record names the precision trained in

    start = [r for r in log if r.get("event") == "start"]
    assert len(start) == 1 and start[0]["precision"] in PRECISIONS.values()
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps == ["step-00000050", "step-00000100"]
    assert (out / "latest").read_text().strip() == "step-00000100"
    comp = torch.rand(1, 3, 40, 48)
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 10:30, 12:36] = 1
    for folder in (out / "best", out / "checkpoints" / "step-00000100"):
        h = Harmonizer.from_pretrained(folder)
        assert h.config.output == "residual" and h.config.enc_sizes == (3, 8, 8, 16, 16, 32, 32)
        res = h.harmonize_tensor(comp, mask)
        assert res.shape == comp.shape and torch.equal(res[..., mask[0, 0] == 0], comp[..., mask[0, 0] == 0])
    state = torch.load(out / "checkpoints" / "step-00000100" / "training_state.pt", weights_only=True)
    assert state["step"] == 100 and "optimizer" in state and "scheduler" in state


def test_evaluate_writes_tables_and_grid(trained_run, shift_set, tmp_path, capsys):
    from trainer.evaluate import main

    out, _ = trained_run
    # the data table comes from the run's own run_config.json, --data points it at the set
    assert main(["--weights", str(out / "best"), "--config", str(out / "run_config.json"), "--data", str(shift_set),
                 "--resolution", "32", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    overall = res["overall"]
    assert set(overall) == {"composite", "reinhard", "mkl", "phnet"}
    assert overall["phnet"]["fMSE"] < 0.5 * overall["composite"]["fMSE"]
    assert overall["phnet"]["count"] == 8
    assert set(res["composite_error"]) <= {"<300", "300-1000", ">=1000"} and res["fg_ratio"]
    assert res["untouched"]["phnet"]["count"] == 8
    md = (tmp_path / "ev" / "results.md").read_text()
    for heading in ("## Overall", "## By foreground ratio", "## By composite error", "## Untouched photos"):
        assert heading in md and heading in printed
    with Image.open(tmp_path / "ev" / "grid.png") as grid:
        assert grid.width > 5 * 128 and grid.height > 6 * 128


def test_evaluate_compares_labelled_models_side_by_side(trained_run, shift_set, tmp_path):
    from trainer.evaluate import evaluate

    out, _ = trained_run
    res = evaluate([f"new={out / 'best'}", f"again={out / 'best'}"], {"root": str(shift_set)}, resolution=32,
                   out_dir=tmp_path / "ev", progress=False)
    assert list(res["overall"]) == ["composite", "reinhard", "mkl", "new", "again"]
    assert res["overall"]["new"] == res["overall"]["again"]
    assert set(res["untouched"]) == {"reinhard", "mkl", "new", "again"}


def test_evaluate_native_resolution_through_harmonizer(trained_run, photos, tmp_path):
    from trainer.evaluate import evaluate

    out, _ = trained_run
    img_dir, mask_dir = photos
    res = evaluate(str(out / "best"), {"root": str(img_dir), "mask_dir": str(mask_dir), "val_fraction": 0.25},
                   split="val", resolution="native", max_samples=3, out_dir=tmp_path / "native", progress=False)
    assert res["meta"]["resolution"] == "native" and res["meta"]["working_size"] == 32
    assert res["overall"]["phnet"]["count"] == 3
    assert (tmp_path / "native" / "grid.png").exists()


@pytest.mark.slow
def test_sigkill_then_resume_continues_from_its_step(shift_set, tmp_path, subprocess_env):
    out = tmp_path / "killed"
    common = ["--set", "train.ckpt_every=10", "--set", "train.val_every=0", "--set", "train.batch_size=4"]
    proc = subprocess.Popen(_fit_cmd(shift_set, out, "--steps", "400", *common), cwd=REPO, env=subprocess_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(out / "checkpoints" / "step-00000020", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    from trainer.checkpoint import latest_checkpoint

    latest = latest_checkpoint(out)
    k = int(latest.name.split("-")[1])
    assert 20 <= k < 400
    logged = max(r["step"] for r in read_log(out) if r["type"] == "train")
    assert logged - k <= 10 + 5  # at most one checkpoint interval lost (plus the log interval)
    res = subprocess.run(_fit_cmd(shift_set, out, "--steps", str(k + 10), "--resume", *common), cwd=REPO,
                         env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"at step {k}" in res.stderr
    log = read_log(out)
    resume = [r for r in log if r.get("event") == "resume"]
    assert len(resume) == 1 and resume[0]["step"] == k
    train_steps = [r["step"] for r in log if r["type"] == "train"]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == k + 10  # no duplicates after resume
    assert (out / "checkpoints" / f"step-{k + 10:08d}" / "training_state.pt").exists()
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_resume_reproduces_an_uninterrupted_run(shift_set, tmp_path):
    """Stopping at a checkpoint and resuming gives the same weights as never stopping."""
    from safetensors.torch import load_file

    from trainer.fit import train

    # on the CPU: on a GPU, cuDNN's weight gradients and bf16 autocast differ from run to run by more than 1e-6
    options = dict(steps=12, ckpt_every=6, val_every=0, batch_size=4, device="cpu")
    full = tmp_path / "full"
    train(tiny_cfg(shift_set, full, **options), progress=False)
    part = tmp_path / "part"
    train(tiny_cfg(shift_set, part, **options), progress=False)
    # throw away the end of the second run, as if it had been killed after step 6
    import shutil
    shutil.rmtree(part / "checkpoints" / "step-00000012")
    train(tiny_cfg(shift_set, part, **options), resume=True, progress=False)
    a = load_file(full / "checkpoints" / "step-00000012" / "model.safetensors")
    b = load_file(part / "checkpoints" / "step-00000012" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_torchrun_two_processes_and_resume(shift_set, tmp_path, subprocess_env, workers):
    out = tmp_path / "ddp"

    def run(steps: int, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "trainer.fit", "--config", "tiny_cpu", "--data", str(shift_set), "--out", str(out),
               "--steps", str(steps), "--no-progress", "--set", "train.ckpt_every=4", "--set", "train.val_every=4",
               "--set", "train.log_every=2", "--set", f"data.num_workers={workers}", "--set", "train.batch_size=4",
               "--device", "cpu", *extra]  # gloo: two processes on one machine, which may have one GPU
        res = run_torchrun(cmd, cwd=REPO, env=subprocess_env)
        assert res.returncode == 0, res.stderr[-4000:]
        return res

    run(4)
    res = run(8, "--resume")
    assert "at step 4" in res.stderr
    log = read_log(out)
    events = [r["event"] for r in log if r["type"] == "event"]
    assert events == ["start", "end", "resume", "end"]  # rank 0 alone writes
    assert [r for r in log if r["type"] == "event"][0]["world_size"] == 2
    assert [r["step"] for r in log if r["type"] == "train"] == [2, 4, 6, 8]
    assert [r["step"] for r in log if r["type"] == "val"] == [4, 8]
    assert (out / "checkpoints" / "step-00000008" / "model.safetensors").exists()
    from phnet import Harmonizer

    Harmonizer.from_pretrained(out / "checkpoints" / "step-00000008")


@pytest.mark.slow
def test_torchrun_two_processes_stop_together_on_the_time_budget(shift_set, tmp_path, subprocess_env):
    """Several processes agree on the budget at log steps only (a broadcast waits for every rank's GPU)."""
    out = tmp_path / "ddp-budget"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer.fit", "--config", "tiny_cpu", "--data", str(shift_set), "--out", str(out),
           "--steps", "10000", "--no-progress", "--set", "train.max_minutes=1e-4", "--set", "train.log_every=3",
           "--set", "train.val_every=0", "--set", "train.ckpt_every=0", "--set", "data.num_workers=0",
           "--set", "train.batch_size=4", "--device", "cpu"]
    res = run_torchrun(cmd, cwd=REPO, env=subprocess_env)
    assert res.returncode == 0, res.stderr[-4000:]
    log = read_log(out)
    stopped = [r for r in log if r["type"] == "event" and "time budget" in r["event"]]
    assert len(stopped) == 1 and stopped[0]["step"] % 3 == 0


def one_process_fails(shift_set, out, env, fault: str, at: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("one_process_fails.py")), "--config", "tiny_cpu", "--data", str(shift_set),
           "--out", str(out), "--steps", "12", "--no-progress", "--set", "train.ckpt_every=4", "--set",
           "train.val_every=0", "--set", "train.log_every=4", "--set", "train.keep_last=1", "--set",
           "data.num_workers=0", "--set", "train.batch_size=4", "--device", "cpu", *extra]
    return run_torchrun(cmd, cwd=REPO, env={**env, "FAULT": fault, "AT": str(at)})


@pytest.mark.slow
def test_a_loss_that_is_not_finite_on_one_process_stops_every_process_before_it_saves(shift_set, tmp_path,
                                                                                     subprocess_env):
    """Process 1's NaN loss reached process 0's weights through the averaged gradients, while process 0's own
    losses were finite: it saved the NaN weights as the latest checkpoint and pruned a good one."""
    out = tmp_path / "ddp-nan"
    res = one_process_fails(shift_set, out, subprocess_env, "nan", 8)
    assert res.returncode != 0
    assert "error: process 1 of 2: the training loss became nan within steps 5-8" in res.stderr
    assert ("error: process 0 of 2: the training loss of process 1 (of 2) became non-finite within steps 5-8"
            in res.stderr)
    assert (out / "latest").read_text().strip() == "step-00000004"
    weights = load_file(out / "checkpoints" / "step-00000004" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.slow
def test_a_process_that_stops_leaves_one_error_line_not_a_traceback_from_the_others(shift_set, tmp_path,
                                                                                    subprocess_env):
    """The process that outlived the failing one printed gloo's 'Connection closed by peer' traceback (the README
    says a traceback is a trainer bug)."""
    res = one_process_fails(shift_set, tmp_path / "ddp-error", subprocess_env, "error", 3)
    assert res.returncode != 0
    assert "error: process 1 of 2: a fault of process 1 alone" in res.stderr
    assert "[rank0]: Traceback" not in res.stderr and "[rank0]: RuntimeError" not in res.stderr, res.stderr[-3000:]


@pytest.mark.slow
def test_processes_wait_for_each_other_as_long_as_the_config_says_and_name_the_setting(shift_set, tmp_path,
                                                                                       subprocess_env):
    """Process 0 validates alone while the others wait: a validation longer than the process group's timeout
    (torch's default: 10 minutes for NCCL) ended the run in a gloo or NCCL traceback."""
    # 12 s: every wait of the run takes this timeout, start-up and each training step included, and a loaded
    # machine can put seconds between the two processes there
    res = one_process_fails(shift_set, tmp_path / "ddp-slow", subprocess_env, "slow_validation", 40,
                            "--set", "train.val_every=4", "--set", "train.process_timeout_minutes=0.2")
    assert res.returncode != 0
    assert "error: process 1 of 2: another process of this run did not reach the same step in time" in res.stderr
    assert "raise it" in res.stderr and "train.process_timeout_minutes" in res.stderr


@pytest.mark.slow
def test_the_log_counts_the_bad_samples_every_process_skipped(shift_set, tmp_path, subprocess_env):
    """Only process 0's skipped samples reached the log: 3 of 10 in the run that found this."""
    out = tmp_path / "ddp-skip"
    res = one_process_fails(shift_set, out, subprocess_env, "skip", 3, "--set", 'data.on_bad_sample="skip"')
    assert res.returncode == 0, res.stderr[-3000:]
    assert sum(r.get("skipped_samples", 0) for r in read_log(out) if r["type"] == "train") == 3


@pytest.mark.slow
def test_each_process_resumes_where_it_stood_in_the_epoch(shift_set, tmp_path, subprocess_env):
    """Process 1 fetched two more batches than process 0 (all of their samples bad), and a resume put it at
    process 0's place in the epoch: it saw those batches' samples again."""
    out = tmp_path / "ddp-positions"
    res = one_process_fails(shift_set, out, subprocess_env, "skip", 8, "--set", 'data.on_bad_sample="skip"')
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "step-00000012" / "training_state.pt", weights_only=True)
    first, second = state["positions"]
    assert first == [state["epoch"], state["batch_in_epoch"]]
    per_epoch = -(-len((shift_set / "train_split.txt").read_text().split()) // 2 // 4)  # batches of 4 per process
    assert (second[0] - first[0]) * per_epoch + second[1] - first[1] == 2
    again = one_process_fails(shift_set, out, subprocess_env, "skip", 0, "--set", 'data.on_bad_sample="skip"',
                              "--steps", "16", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = torch.load(out / "checkpoints" / "step-00000016" / "training_state.pt", weights_only=True)
    assert [resumed["positions"][1][k] - second[k] for k in (0, 1)] in ([0, 4], [1, 4 - per_epoch])


def test_bad_sample_policy_in_training(shift_set, tmp_path):
    import shutil

    from trainer.data import BadSampleError
    from trainer.fit import train

    data = tmp_path / "bad"
    shutil.copytree(shift_set, data)
    victim = (data / "train_split.txt").read_text().split()[0]
    (data / "comp" / victim).write_bytes(b"garbage")
    with pytest.raises(BadSampleError, match=victim):
        train(tiny_cfg(data, tmp_path / "err", steps=10, val_every=0, ckpt_every=0), progress=False)
    cfg = tiny_cfg(data, tmp_path / "skip", steps=10, val_every=0, ckpt_every=0)
    cfg["data"]["on_bad_sample"] = "skip"
    with pytest.warns(UserWarning, match=victim):
        train(cfg, progress=False)
    log = read_log(tmp_path / "skip")
    assert sum(r.get("skipped_samples", 0) for r in log if r["type"] == "train") >= 1


def test_fit_push_to_hub_and_cli_errors(shift_set, tmp_path, monkeypatch, capsys, hub_login):
    import huggingface_hub

    from trainer.fit import main

    uploads = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, *, repo_id, folder_path, **kw):
            uploads.append((repo_id, sorted(os.listdir(folder_path))))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    rc = main(["--config", "tiny_cpu", "--data", str(shift_set), "--out", str(tmp_path / "p"), "--steps", "3",
               "--set", "train.val_every=3", "--set", "data.num_workers=0", "--set", "train.warmup_steps=0",
               "--no-progress",
               "--push-to-hub", "me/tiny-phnet"])
    assert rc == 0
    assert uploads and uploads[0][0] == "me/tiny-phnet" and "model.safetensors" in uploads[0][1]

    def unreachable(self, repo_id, **kw):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(FakeApi, "create_repo", unreachable)  # the run is kept, and says how to upload it later
    rc = main(["--config", "tiny_cpu", "--data", str(shift_set), "--out", str(tmp_path / "q r"), "--steps", "2",
               "--set", "train.val_every=2", "--set", "data.num_workers=0", "--set", "train.warmup_steps=0",
               "--no-progress",
               "--push-to-hub", "me/tiny-phnet"])
    out, err = capsys.readouterr()
    assert rc == 1 and '"hub_error": "ConnectionError' in out  # asked for and failed: not a success
    # a command that runs as printed, in a folder with a space
    assert f"upload it later with python -m trainer.push '{tmp_path / 'q r' / 'best'}' me/tiny-phnet" in err
    assert main(["--config", "tiny_cpu", "--steps", "3"]) == 2  # no data
    assert main(["--config", "tiny_cpu", "--data", str(shift_set), "--set", "train.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "train.nope" in err


def test_a_run_without_a_preset_names_the_library_defaults_it_takes_once_and_resumes(shift_set, tmp_path, capsys):
    """preset = "" with output left out was refused: an older run with such a config could not be resumed (its
    run_config.json refused, adding output a [model] change)."""
    from trainer.fit import main

    (tmp_path / "c.toml").write_text('[model]\npreset = ""\nenc_sizes = [3, 8, 8, 16, 16, 32, 32]\n'
                                     'grid_counts = [4, 2, 1]\nimage_size = 32\n')
    run = tmp_path / "run"
    common = ["--data", str(shift_set), "--no-progress", "--batch-size", "4", "--set", "data.num_workers=0",
              "--set", "train.warmup_steps=0", "--set", "train.val_every=0"]
    assert main(["--config", str(tmp_path / "c.toml"), "--out", str(run), "--steps", "2", *common]) == 0
    note = '[trainer] model.preset is "", so the fields [model] leaves out take the library defaults ' \
           '(phnet.PHNetConfig()): output = "image"\n'
    assert capsys.readouterr().err.count(note) == 1
    assert main(["--config", str(run), "--resume", "--steps", "4", *common]) == 0
    err = capsys.readouterr().err
    assert "resumed from" in err and "library defaults" not in err
    assert json.loads((run / "best" / "config.json").read_text())["output"] == "image"


def test_a_warning_about_the_config_is_given_by_process_0_alone(shift_set, tmp_path):
    """Under torchrun every process printed it, while process 0 alone says everything else."""
    import types
    import warnings

    from trainer.fit import build_optimisation
    from trainer.model import build_model

    cfg = tiny_cfg(shift_set, tmp_path / "run", steps=8, warmup_steps=10, freeze_dead_modules=False)
    model = build_model(cfg)
    for rank in (0, 1):
        env = types.SimpleNamespace(main=rank == 0, rank=rank, world=2, device=torch.device("cpu"),
                                    least=lambda value: value)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            build_optimisation(cfg, model, env, 32)
        said = [str(w.message) for w in seen if "warmup_steps" in str(w.message)]
        assert len(said) == (1 if rank == 0 else 0), said
        assert all(s.startswith("train.warmup_steps (10) is over train.steps (8)") for s in said)


def test_gradient_accumulation_consumes_micro_batches(shift_set, tmp_path):
    from trainer.fit import train

    out = tmp_path / "accum"
    train(tiny_cfg(shift_set, out, steps=3, grad_accum=2, batch_size=2, val_every=0, ckpt_every=0, log_every=1),
          progress=False)
    state = torch.load(out / "checkpoints" / "step-00000003" / "training_state.pt", weights_only=True)
    assert state["step"] == 3 and state["batch_in_epoch"] == 6  # 3 steps x 2 micro-batches of 2
    assert [r["step"] for r in read_log(out) if r["type"] == "train"] == [1, 2, 3]


def test_time_budget_stops_with_a_checkpoint(shift_set, tmp_path, capsys):
    from phnet import Harmonizer
    from trainer.fit import train

    out = tmp_path / "budget"
    result = train(tiny_cfg(shift_set, out, steps=10_000, max_minutes=1e-4, val_every=0, ckpt_every=0),
                   progress=False)
    assert 1 <= result["step"] < 10_000
    events = [r["event"] for r in read_log(out) if r.get("type") == "event"]
    assert any("time budget" in e for e in events)
    assert "min is spent at step" in capsys.readouterr().err  # said where the user looks, not only in the log
    assert Harmonizer.from_pretrained(out / "best").config.enc_sizes == (3, 8, 8, 16, 16, 32, 32)


def test_the_schedule_waits_when_the_grad_scaler_skips_a_step(shift_set, tmp_path, monkeypatch):
    """fp16 training on a GPU: a step whose gradients overflow is skipped by the GradScaler, and the LR
    schedule must skip it too (torch warns "lr_scheduler.step() before optimizer.step()" otherwise)."""
    import warnings

    import trainer.fit as fit

    class OverflowOnce:
        """A GradScaler that finds inf gradients at its first step, then none."""

        def __init__(self, *a, **k):
            self.scale_value, self.steps, self.taken = 65536.0, 0, 0

        def is_enabled(self):
            return True

        def scale(self, loss):
            return loss

        def unscale_(self, optimizer):
            pass

        def step(self, optimizer):
            self.steps += 1
            if self.steps > 1:
                optimizer.step()
                self.taken += 1

        def update(self):
            if self.steps == 1:
                self.scale_value /= 2

        def get_scale(self):
            return self.scale_value

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    made = []
    monkeypatch.setattr(fit.torch.amp, "GradScaler", lambda *a, **k: made.append(OverflowOnce()) or made[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the scheduler-before-optimizer warning would fail here
        result = fit.train(tiny_cfg(shift_set, tmp_path / "run", steps=6, val_every=100, ckpt_every=100,
                                    warmup_steps=2, log_every=1), progress=False)
    assert made[0].taken == 5 and made[0].steps == 6
    assert result is not None
    # the schedule stood still at the skipped first step only, then went on at each step taken
    from trainer.optim import lr_factor

    t = json.loads((tmp_path / "run" / "run_config.json").read_text())["train"]
    lrs = [r["lr"] for r in read_log(tmp_path / "run") if r["type"] == "train"]
    assert lrs == pytest.approx([t["lr"] * lr_factor(s, 6, 2, t["schedule"], t["min_lr_ratio"])
                                 for s in (0, 0, 1, 2, 3, 4)])


def test_patience_stops_when_validation_stops_improving(shift_set, tmp_path, monkeypatch, capsys):
    import trainer.loop
    from trainer.fit import train

    scores = iter([500.0, 510.0, 490.0, 495.0, 496.0, 497.0])  # best at the 3rd check, then two worse ones
    monkeypatch.setattr(trainer.loop, "validate", lambda *a, **k: {"n": 4, "fmse": next(scores), "mse": 1.0})
    out = tmp_path / "patience"
    result = train(tiny_cfg(shift_set, out, steps=100, val_every=2, ckpt_every=0, patience=2), progress=False)
    assert result["step"] == 10 and result["best_val_fmse"] == 490.0
    events = [r["event"] for r in read_log(out) if r.get("type") == "event"]
    assert any(e.startswith("stopped early: no better validation fMSE in 2 checks") for e in events)
    assert "[trainer] stopped early at step 10" in capsys.readouterr().err
    assert json.loads((out / "best" / "checkpoint.json").read_text())["step"] == 6
    assert (out / "checkpoints" / "step-00000010").is_dir()  # the stop leaves a checkpoint, as a finished run does


def test_every_checkpoint_records_the_score_of_the_weights_it_holds(shift_set, tmp_path):
    """train.ema: validation scores the average, which best/ saves; a step checkpoint saves the trained weights (a
    resume goes on from them), so the average's score must not stand there as its own (it did: 788 recorded for
    weights that score 319)."""
    from torch.utils.data import DataLoader

    from phnet.weights import load_model
    from trainer.data import build_dataset, collate
    from trainer.fit import train
    from trainer.validation import validate

    out = tmp_path / "ema"
    cfg = tiny_cfg(shift_set, out, steps=6, val_every=0, ckpt_every=0, ema=0.9, amp=False)  # scored as below
    train(cfg, progress=False)
    loader = DataLoader(build_dataset(cfg["data"], "val", image_size=32), batch_size=16, collate_fn=collate)
    step = out / "checkpoints" / "step-00000006"
    info, best = (json.loads((d / "checkpoint.json").read_text()) for d in (step, out / "best"))
    logged = [r for r in read_log(out) if r["type"] == "val"][-1]
    assert info["weights"] == "trained" and info["val"] is None and info["ema_val"]["fmse"] == logged["fmse"]
    assert best["weights"] == "ema" and best["val"]["fmse"] == logged["fmse"]
    assert validate(load_model(out / "best").eval(), loader, torch.device("cpu"))["fmse"] == pytest.approx(
        best["val"]["fmse"], rel=1e-5)
    plain = tmp_path / "plain"
    train(tiny_cfg(shift_set, plain, steps=2, val_every=0, ckpt_every=0, amp=False), progress=False)
    info = json.loads((plain / "checkpoints" / "step-00000002" / "checkpoint.json").read_text())
    assert info["weights"] == "trained" and "ema_val" not in info
    assert validate(load_model(plain / "checkpoints" / "step-00000002").eval(), loader,
                    torch.device("cpu"))["fmse"] == pytest.approx(info["val"]["fmse"], rel=1e-5)
    # a step checkpoint saved where validation ran keeps that score too, not only the last one
    midway = tmp_path / "midway"
    train(tiny_cfg(shift_set, midway, steps=4, val_every=2, ckpt_every=2, ema=0.9, amp=False), progress=False)
    info = json.loads((midway / "checkpoints" / "step-00000002" / "checkpoint.json").read_text())
    scored = [r for r in read_log(midway) if r["type"] == "val" and r["step"] == 2]
    assert info["ema_val"] is not None and info["ema_val"]["fmse"] == scored[0]["fmse"]


@pytest.mark.parametrize("repo, env, words", [
    ("my phnet", {"HF_TOKEN": "hf_test"}, "'my phnet' is not a Hub repo id"),
    ("me/tiny-phnet", {"HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "1"}, "offline (HF_HUB_OFFLINE=1)"),
    ("me/tiny-phnet", {}, "no Hugging Face token"),
])
def test_an_upload_that_cannot_happen_is_refused_before_training(shift_set, tmp_path, monkeypatch, capsys, repo, env,
                                                                 words, no_hub_login):
    """The repo id, the offline switch and the login were first met after the whole run, which then exited 0."""
    from trainer.fit import main

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = main(["--config", "tiny_cpu", "--data", str(shift_set), "--out", str(tmp_path / "run"), "--steps", "2",
               "--set", "data.num_workers=0", "--no-progress", "--push-to-hub", repo])
    assert rc == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_stopped_by_a_signal_is_not_uploaded(tmp_path, monkeypatch, capsys, hub_login):
    """Ctrl-C checkpointed the run, uploaded it as if it were done, and exited 0."""
    import huggingface_hub

    from trainer.fit import finish

    class Log:
        def write(self, record, curves=False):
            pass

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: pytest.fail("a stopped run was uploaded"))
    result = {"step": 40, "best_val_fmse": None, "stopped_by_signal": 2}
    from trainer import checkpoint  # no best/ before the first validation: the newest checkpoint

    monkeypatch.setattr(checkpoint, "latest_checkpoint", lambda root: root / "checkpoints" / "step-00000040")
    finish(tmp_path, Log(), result, "me/tiny-phnet", True)
    err = capsys.readouterr().err
    assert "nothing was uploaded to me/tiny-phnet" in err and "hub_url" not in result
    assert "--resume --push-to-hub me/tiny-phnet --hub-private" in err  # --resume alone would not upload
    assert "best" not in err and err.rstrip().endswith("me/tiny-phnet --private")


def test_a_folder_of_one_photo_says_its_validation_is_its_training_photo(tmp_path, capsys):
    from procedural_portraits import write_photos

    from trainer.fit import main

    write_photos(tmp_path / "one", 1, seed=3)
    assert main(["--config", "tiny_cpu", "--data", str(tmp_path / "one"), "--out", str(tmp_path / "run"), "--steps",
                 "1", "--set", "train.warmup_steps=0", "--set", "data.num_workers=0", "--no-progress"]) == 0
    assert "1 of the 1 validation photos are training photos (e.g. p000.png)" in capsys.readouterr().err
    write_photos(tmp_path / "six", 6, seed=3)
    assert main(["--config", "tiny_cpu", "--data", str(tmp_path / "six"), "--out", str(tmp_path / "run6"), "--steps",
                 "1", "--set", "train.warmup_steps=0", "--set", "data.num_workers=0", "--no-progress", "--set",
                 f'data.val_root="{tmp_path / "six"}"']) == 0
    assert "data.val_root holds training photos" in capsys.readouterr().err


def test_photos_smaller_than_the_working_size_are_named(tmp_path, capsys):
    """They were enlarged without a word: the network learned their blur."""
    from procedural_portraits import write_photos

    from trainer.fit import main

    write_photos(tmp_path / "photos", 6, seed=4, sizes=((48, 48), (24, 20)))
    assert main(["--config", "tiny_cpu", "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--set", "train.warmup_steps=0", "--set", "data.num_workers=0", "--no-progress",
                 "--set", "model.image_size=32"]) == 0
    err = capsys.readouterr().err
    assert "of the training photos are smaller than the working size 32 px" in err and "x24)" in err


def test_val_max_samples_validates_the_same_spread_of_the_split_every_time(photos):
    from types import SimpleNamespace

    from trainer.fit import build_data

    img_dir, mask_dir = photos
    env = SimpleNamespace(main=False, world=1, rank=0, device=torch.device("cpu"))

    def data(val_max_samples: int):
        cfg = {"data": {"root": str(img_dir), "mask_dir": str(mask_dir), "val_fraction": 0.5},
               "train": {"batch_size": 2, "val_batch_size": 2, "val_max_samples": val_max_samples}}
        return build_data(cfg, env, 32, 0)

    whole, spread, again = data(0), data(3), data(3)
    assert len(spread.val_set) == len(spread.val_loader.dataset) == 3 < len(whole.val_set)
    assert sum(len(batch["comp"]) for batch in spread.val_loader) == 3
    assert spread.val_photos == again.val_photos != whole.val_photos


def test_the_notes_of_building_the_model_and_data_come_from_process_0_alone(capsys):
    """Under torchrun every process builds the model and the data sets: their notes and warnings came once per
    process; an error still stops each one."""
    import types
    import warnings

    from trainer.fit import spoken_by_main

    for main in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with spoken_by_main(types.SimpleNamespace(main=main)):
                print("[data] a note")
                print("[trainer] another", file=sys.stderr)
                warnings.warn("data.mask_dir: a warning")
        said = capsys.readouterr()
        assert ("a note" in said.out and "another" in said.err and len(caught) == 1) is main
        assert main or (said.out == said.err == "" and not caught)
    with pytest.raises(ValueError, match="bad data"):
        with spoken_by_main(types.SimpleNamespace(main=False)):
            raise ValueError("bad data")


def test_ctrl_c_while_torch_loads_ends_the_process_at_once(tmp_path, subprocess_env):
    """The handler raised SystemExit, which inside torch's or numpy's native import code came out as another error
    (numpy's 'cannot load module more than once per process') or aborted the process. Here the handler is called
    where torch is imported: it must end the process there, not raise."""
    code = (
        "import importlib.abc, runpy, signal, sys\n"
        "class Hook(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            try:\n"
        "                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)\n"
        "            except BaseException as e:\n"
        "                print('raised', type(e).__name__, flush=True)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "sys.argv = ['trainer.fit', '--help']\n"
        "runpy.run_module('trainer.fit', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130 and "raised" not in done.stdout, (done.returncode, done.stdout[-500:])


class RecordingScaler:
    """An enabled GradScaler's face (CPU-only machines have none): what ``restore`` loads into it."""

    def __init__(self):
        self.loaded = []

    def is_enabled(self):
        return True

    def load_state_dict(self, state):
        self.loaded.append(state)


def saved_training_state(monkeypatch, **fields):
    """A training state as a run of two processes saved it, with an optimizer, schedule, EMA and scaler that moved
    away from a fresh one's; ``restore`` reads it from its folder."""
    import trainer.fit as fit
    from trainer.ema import WeightAverage
    from trainer.optim import build_optimizer, build_scheduler

    t = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0, "steps": 20, "warmup_steps": 4,
         "schedule": "cosine", "min_lr_ratio": 0.0, "seed": 42}
    net = torch.nn.Linear(3, 2)
    opt = build_optimizer(list(net.parameters()), t)
    sch = build_scheduler(opt, t)
    ema = WeightAverage(net, 0.9)
    for _ in range(3):
        net(torch.ones(1, 3)).sum().backward()
        opt.step(), sch.step(), ema.update_parameters(net)
    state = {"step": 7, "epoch": 1, "batch_in_epoch": 3, "positions": [[1, 3], [1, 2]],
             "optimizer": opt.state_dict(), "scheduler": sch.state_dict(), "ema": ema.state_dict(),
             "scaler": {"scale": 512.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                        "_growth_tracker": 5},
             "best_val_fmse": 123.5, "world_size": 2, "batch_size": 4, "validation_photos": "val-photos",
             "rng": fit.ckpt.capture_rng_state(), **fields}
    monkeypatch.setattr(fit.ckpt, "load_training_state", lambda folder: state)
    return t, state


def fresh_optimisation(t):
    from trainer.ema import WeightAverage
    from trainer.loop import Optimisation
    from trainer.optim import build_optimizer, build_scheduler

    net = torch.nn.Linear(3, 2)
    opt = build_optimizer(list(net.parameters()), t)
    return Optimisation(None, opt, build_scheduler(opt, t), RecordingScaler(), WeightAverage(net, 0.9), None)


@pytest.mark.parametrize("rank", [0, 1])
def test_restore_takes_back_each_part_of_the_state_a_process_saved(monkeypatch, rank):
    """The step, this process's place in the epoch, the optimizer, schedule, scaler and EMA, the best score and
    what it was scored on; process 0 its RNG states, another a seed of its own rank and step."""
    from types import SimpleNamespace

    from trainer.distributed import seed_everything
    from trainer.fit import restore

    t, state = saved_training_state(monkeypatch)
    after_capture = torch.rand(4)  # what process 0's RNG draws next where the state was saved
    seed_everything(t["seed"] + rank + state["step"])
    after_seed = torch.rand(4)
    opt = fresh_optimisation(t)
    torch.manual_seed(1234)
    env = SimpleNamespace(world=2, rank=rank, main=rank == 0)
    pos, best, photos = restore(Path("ckpt"), {"train": t}, env, opt, batch_size=4)
    assert (pos.step, pos.epoch, pos.batch_in_epoch) == (7, *state["positions"][rank])
    assert torch.equal(torch.rand(4), after_capture if rank == 0 else after_seed)
    assert (best, photos) == (123.5, "val-photos")
    assert opt.scaler.loaded == [state["scaler"]]
    assert opt.ema.updates == 3 and opt.ema.state_dict().keys() == state["ema"].keys()
    assert all(torch.equal(opt.ema.state_dict()[k], v) for k, v in state["ema"].items())
    assert opt.scheduler.last_epoch == 3
    saved = state["optimizer"]["state"]
    assert all(torch.equal(opt.optimizer.state_dict()["state"][i]["exp_avg"], saved[i]["exp_avg"]) for i in saved)


def test_restore_takes_the_place_in_the_epoch_from_a_checkpoint_older_versions_wrote(monkeypatch, capsys):
    """Older versions saved no per-process positions, world size, batch size or validation photos: one process
    goes on from the batch the state names, and says nothing of other batches."""
    from types import SimpleNamespace

    from trainer.fit import restore

    t, state = saved_training_state(monkeypatch)
    for key in ("positions", "world_size", "batch_size", "validation_photos"):
        del state[key]
    pos, best, photos = restore(Path("ckpt"), {"train": t}, SimpleNamespace(world=1, rank=0, main=True),
                                fresh_optimisation(t), batch_size=4)
    assert (pos.step, pos.epoch, pos.batch_in_epoch, best, photos) == (7, 1, 3, 123.5, None)
    assert "starts again from its first batch" not in capsys.readouterr().err


def test_an_upload_with_no_checkpoint_in_the_run_says_so_and_uploads_nothing(tmp_path, monkeypatch, capsys, hub_login):
    """A run folder holding no checkpoint (removed while the run went on) failed on an assert, or under
    ``python -O`` on a TypeError naming None."""
    import huggingface_hub

    from trainer.fit import finish

    class Log:
        def write(self, record, curves=False):
            pass

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: pytest.fail("nothing was there to upload"))
    result = {"step": 40, "best_val_fmse": None}
    finish(tmp_path, Log(), result, "me/tiny-phnet", False)
    err = capsys.readouterr().err
    assert f"no checkpoint of this run is left in {tmp_path}: nothing was uploaded to me/tiny-phnet" in err
    assert "python -m trainer.push" in err and "hub_url" not in result
    assert len(err.splitlines()) == 1 and "hub_error" not in result  # and no upload of no folder was tried
    assert "--private" not in err
    finish(tmp_path, Log(), result, "me/tiny-phnet", True)  # the command it gives keeps the repo private
    assert "python -m trainer.push FOLDER me/tiny-phnet --private" in capsys.readouterr().err


def test_the_near_duplicate_line_counts_the_validation_photos(photos, monkeypatch, capsys):
    """The line says how many of the validation photos have a copy among the training photos, and of how many."""
    from trainer import fit
    from trainer.data import build_dataset
    from trainer.distributed import Dist

    img_dir, mask_dir = photos
    data = {"root": str(img_dir), "mask_dir": str(mask_dir), "image_size": 32, "val_fraction": 0.25}
    val = build_dataset(data, "val")
    monkeypatch.setattr(fit, "copies_across", lambda v, t: [(val.records[0].real, Path("copy.png"))])
    capsys.readouterr()
    fit.build_data({"data": data, "train": {"batch_size": 2, "val_batch_size": 2, "val_max_samples": 0}},
                   Dist("cpu"), 32, 0)
    assert 1 < len(val.records) and (f"[data] 1 of the {len(val.records)} validation photos have a near-duplicate "
                                     f"among the training photos (e.g. {val.records[0].real} ~ copy.png)"
                                     ) in capsys.readouterr().err


def test_the_shared_photos_line_counts_the_validation_photos(photos, capsys):
    """The line says how many of the validation photos are training photos too, and of how many."""
    from trainer.data import build_dataset
    from trainer.distributed import Dist
    from trainer.fit import build_data

    img_dir, mask_dir = photos
    data = {"root": str(img_dir), "mask_dir": str(mask_dir), "val_root": str(img_dir), "val_mask_dir": str(mask_dir),
            "image_size": 32, "test_fraction": 0.25}
    val, train = build_dataset(data, "val"), build_dataset(data, "train")
    shared = {r.real for r in val.records} & {r.real for r in train.records}
    capsys.readouterr()
    build_data({"data": data, "train": {"batch_size": 2, "val_batch_size": 2, "val_max_samples": 0}}, Dist("cpu"),
               32, 0)
    assert 0 < len(shared) < len(val.records) and (f"[data] {len(shared)} of the {len(val.records)} validation photos "
                                                   "are training photos") in capsys.readouterr().err
