"""Config merging, losses, Lion, LR schedule, checkpoint files, curves."""
from __future__ import annotations

import math
import os
import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.host_reads import HostReads
from trainer import checkpoint as ckpt
from trainer.config import load_config, model_config, parse_set
from trainer.curves import draw_curves
from trainer.losses import HarmonizationLoss, fn_mse, masked_gradient_l1, psnr_loss
from trainer.optim import Lion, build_scheduler, lr_factor


def test_config_layers_and_overrides():
    cfg = load_config("tiny_cpu", ["train.lr=1e-4", "loss.mse=1", "data.subsets=[\"HCOCO\"]", "model.output=image"])
    assert cfg["train"]["lr"] == 1e-4 and cfg["loss"]["mse"] == 1 and cfg["data"]["subsets"] == ["HCOCO"]
    assert cfg["train"]["ckpt_every"] == 100  # from tiny_cpu.toml, over default.toml
    m = model_config(cfg)
    assert m.enc_sizes == (3, 8, 8, 16, 16, 32, 32) and m.grid_counts == (4, 2, 1) and m.output == "image"
    assert m.feature_grid == 2  # re-derived from the new grids
    assert parse_set("data.root=/x y") == {"data": {"root": "/x y"}}
    with pytest.raises(KeyError, match="train.lrr"):
        load_config(None, ["train.lrr=1"])
    with pytest.raises(ValueError, match="optimizer"):
        load_config(None, ["train.optimizer=sgd"])
    for name in ("default", "iharmony", "ffhqh", "folder", "tiny_cpu"):
        model_config(load_config(name))


def test_loss_terms():
    real = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    assert masked_gradient_l1(real, real, mask) == 0
    pred = real + 0.1
    # min area 100: an 8x8 = 64 px mask is normalised by 100, the full error counts
    expected = (0.1 ** 2 * 3 * 256) / (3 * 100)
    assert fn_mse(pred, real, mask) == pytest.approx(expected, rel=1e-4)
    assert fn_mse(pred, real, mask, scale=255) == pytest.approx(expected * 255 ** 2, rel=1e-4)
    assert psnr_loss(pred, real) == pytest.approx(100 / 20.0, rel=1e-3)
    loss = HarmonizationLoss(psnr=0.2, fnmse=0.01, gradient=0.01, mse=1.0, l1=1.0)
    with HostReads() as reads:  # the loop reads the losses when it logs them, not every step
        loss(pred, real, mask)
    assert reads.count == 0
    loss = HarmonizationLoss(psnr=0.2, fnmse=0.01, gradient=0.01)
    total, parts = loss(pred, real, mask)
    assert set(parts) == {"psnr", "fnmse", "gradient"}
    parts = {k: float(v) for k, v in parts.items()}
    assert float(total) == pytest.approx(0.2 * parts["psnr"] + 0.01 * parts["fnmse"] + 0.01 * parts["gradient"],
                                         rel=1e-5)
    with pytest.raises(ValueError, match="every loss weight is 0: set at least one of loss.psnr"):
        HarmonizationLoss(psnr=0, fnmse=0, gradient=0)
    total, parts = HarmonizationLoss.from_config({"psnr": 0, "fnmse": 0, "gradient": 0, "mse": 1})(pred, real, mask)
    assert float(total) == pytest.approx(0.01, rel=1e-4)


def test_lion_update_rule_and_convergence():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99))
    p.grad = torch.tensor([0.5, -0.5])
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9]))  # lr * sign(update)
    assert torch.allclose(opt.state[p]["exp_avg"], torch.tensor([0.005, -0.005]))
    w = torch.nn.Parameter(torch.linspace(-2, 2, 10))
    opt = Lion([w], lr=0.05, weight_decay=0.0)
    for _ in range(200):
        opt.zero_grad()
        ((w - 3.0) ** 2).sum().backward()
        opt.step()
    assert (w.detach() - 3.0).abs().mean() < 0.3  # from a mean distance of 3


def test_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, min_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, min_ratio=0.05) == pytest.approx(0.05)
    assert lr_factor(50, 100, 10, schedule="constant") == 1.0
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    with pytest.warns(UserWarning, match=r"train.warmup_steps \(21\) is over train.steps \(20\)"):
        build_scheduler(opt, {"steps": 20, "warmup_steps": 21})
    with warnings.catch_warnings():  # a warm-up as long as the run reaches train.lr at its last step
        warnings.simplefilter("error")
        build_scheduler(opt, {"steps": 20, "warmup_steps": 20})
    sch = build_scheduler(opt, {"steps": 20, "warmup_steps": 5, "schedule": "cosine", "min_lr_ratio": 0.0})
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] > lrs[10] > lrs[19] > 0


def test_the_ffhqh_config_keeps_the_official_constant_learning_rate():
    """The official trainer builds CosineAnnealingLR but never calls scheduler.step(): the LR stays at 1e-5."""
    t = load_config("ffhqh")["train"]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=t["lr"])
    sch = build_scheduler(opt, t)
    assert opt.param_groups[0]["lr"] == 1e-5
    for step in range(3):
        opt.step()
        sch.step()
    assert opt.param_groups[0]["lr"] == 1e-5
    total = int(t["steps"])
    assert [t["lr"] * sch.lr_lambdas[0](s) for s in (0, 999, 1000, total // 2, total - 1, total)] == [1e-5] * 6


def test_rng_state_round_trip_is_weights_only_loadable(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = ckpt.capture_rng_state()
    torch.save({"rng": state, "step": 3}, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)
    ckpt.restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_atomic_checkpoint_and_cleanup(tmp_path):
    from phnet import Harmonizer, PHNet, PHNetConfig

    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
    opt = Lion(model.parameters(), lr=1e-3)
    folder = tmp_path / "checkpoints" / "step-00000005"
    ckpt.save_checkpoint(folder, model, {"step": 5, "optimizer": opt.state_dict(), "rng": ckpt.capture_rng_state()},
                         {"step": 5})
    assert ckpt.latest_checkpoint(tmp_path) == folder
    assert ckpt.load_training_state(folder)["step"] == 5
    ckpt.save_checkpoint(folder, model, {"step": 5}, {"step": 5})  # replacing an existing folder
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp")]
    # a half-written folder from a killed process is neither "latest" nor kept
    half = folder.parent / f".tmp-step-00000010-{os.getpid() + 1}"
    half.mkdir()
    (half / "config.json").write_text("{}")
    assert ckpt.latest_checkpoint(tmp_path) == folder
    ckpt.clean_temporaries(tmp_path)
    assert not half.exists()
    h = Harmonizer.from_pretrained(folder)
    # (a uint8 mask of ones is binary by the input rules, so it would cover the whole image: mask a part)
    out = h(np.zeros((40, 24, 3), np.uint8), np.triu(np.ones((40, 24), np.uint8)))
    assert out.shape == (40, 24, 3)
    for s in (10, 15, 20):
        ckpt.save_checkpoint(tmp_path / "checkpoints" / f"step-{s:08d}", model, {"step": s}, {"step": s})
    ckpt.prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in ckpt.step_checkpoints(tmp_path)] == [15, 20]


def test_push_to_hub_with_mocked_api(tmp_path, monkeypatch, hub_login):
    import huggingface_hub

    from phnet import PHNet, PHNetConfig

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)
            return f"https://huggingface.co/{repo_id}"

        def repo_info(self, repo_id, **kw):
            return type("Info", (), {"private": True})

        def upload_folder(self, *, repo_id, folder_path, **kw):
            calls["upload"] = (repo_id, sorted(os.listdir(folder_path)), kw)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
    folder = ckpt.save_checkpoint(tmp_path / "best", model, None, {"step": 7})
    url = ckpt.push_to_hub(folder, "someone/phnet-test", private=True)
    assert "someone/phnet-test" in url
    assert calls["create"][0] == "someone/phnet-test" and calls["create"][1]["private"] is True
    repo, files, kw = calls["upload"]
    assert repo == "someone/phnet-test" and {"config.json", "model.safetensors"} <= set(files)
    assert "training_state.pt" not in files and "step 7" in kw["commit_message"]
    with pytest.raises(FileNotFoundError, match="holds no model"):
        ckpt.push_to_hub(tmp_path, "someone/x")
    from phnet.weights import save_pretrained

    weights = save_pretrained(model, tmp_path / "calibrated")  # what trainer.calibrate writes: no checkpoint.json
    from trainer.push import main as push_main

    assert push_main([str(weights), "someone/calibrated"]) == 0
    assert calls["create"] == ("someone/calibrated", {"exist_ok": True, "repo_type": "model"})
    assert calls["upload"][2]["commit_message"] == "Upload PHNet weights (calibrated)"


def test_push_names_a_bad_repo_id_not_the_network(tmp_path, capsys, hub_login):
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from trainer.push import main as push_main

    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
    weights = save_pretrained(model, tmp_path / "w")
    assert push_main([str(weights), "my phnet"]) == 2
    err = capsys.readouterr().err
    assert "'my phnet' is not a Hub repo id" in err and "owner/name" in err and "network" not in err


def test_curves_png(tmp_path):
    recs = [{"type": "train", "step": s, "loss": 3 * math.exp(-s / 30)} for s in range(1, 100, 3)]
    recs += [{"type": "val", "step": s, "fmse": 500 - s, "composite_fmse": 450} for s in (25, 50, 75, 100)]
    path = draw_curves(recs, tmp_path / "c.png")
    img = Image.open(path)
    assert img.size == (760, 300) and len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 4
    draw_curves([], tmp_path / "empty.png")  # nothing logged yet: still an image


def test_curves_smooth_from_running_sums_as_the_window_average_and_a_diverged_loss_only_blanks_its_windows():
    """The smoothing re-summed each window: a 300 000-step run's log held up training by about a second per
    redraw near its end."""
    from trainer.curves import _smooth

    values = list(np.random.default_rng(0).random(1000))
    values[500] = math.nan
    half = len(values) // 40
    for i, got in enumerate(_smooth(values)):
        window = values[max(0, i - half): i + half + 1]
        assert (math.isnan(got) and any(math.isnan(v) for v in window)) or got == pytest.approx(np.mean(window))
    spiked = [0.01] * 400
    spiked[10] = 1e15  # a diverged step: the windows after it kept their digits
    assert _smooth(spiked)[300] == pytest.approx(0.01) and math.isnan(_smooth(spiked)[10])


def test_a_run_log_redraws_for_each_validation_and_event_but_not_for_each_training_record(tmp_path, monkeypatch):
    from trainer import run_log

    drawn = []
    monkeypatch.setattr(run_log, "draw_curves", lambda records, path: drawn.append(len(records)))
    log = run_log.RunLog(tmp_path, enabled=True, resume_step=None)
    for step in range(1, 6):
        log.write({"type": "train", "step": step, "loss": 1.0}, curves=True)
    log.write({"type": "val", "step": 5, "fmse": 1.0}, curves=True)
    log.write({"type": "event", "step": 5, "event": "end"}, curves=True)
    assert drawn == [1, 6, 7]


def test_mkl_transfer_leaves_a_one_pixel_subject_as_it_was():
    """np.cov of one pixel is NaN: the eigen-solver raised and stopped the whole evaluation."""
    from trainer.baselines import mkl_transfer

    comp = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    mask = np.zeros((8, 8), np.float32)
    mask[3, 4] = 1
    assert np.array_equal(mkl_transfer(comp, mask), comp)


def test_mkl_transfer_moves_the_subject_onto_the_background_distribution():
    from trainer.baselines import mkl_transfer

    rng = np.random.default_rng(0)
    comp = np.empty((40, 40, 3))
    mask = np.zeros((40, 40))
    mask[10:30, 10:30] = 1
    comp[mask == 0] = rng.normal([0.6, 0.4, 0.3], 0.08, size=(int((mask == 0).sum()), 3))
    comp[mask == 1] = rng.normal([0.3, 0.5, 0.6], 0.03, size=(400, 3))
    comp = comp.clip(0, 1)
    out = mkl_transfer(comp, mask)
    fg, bg = out[mask == 1], comp[mask == 0]
    np.testing.assert_allclose(fg.mean(0), bg.mean(0), atol=0.01)
    np.testing.assert_allclose(np.cov(fg, rowvar=False), np.cov(bg, rowvar=False), atol=1e-3)
    assert np.array_equal(out[mask == 0], comp[mask == 0].astype(np.float32))


def test_more_processes_than_gpus_on_a_machine_is_named(monkeypatch):
    """torchrun --nproc_per_node 2 on a one-GPU machine: the second process asked for cuda:1 and died with
    "invalid device ordinal"."""
    from trainer.distributed import Dist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match=r"number 1 on its machine, which has 1 GPU\(s\): .*--nproc_per_node 1"):
        Dist("")
    assert Dist("cuda:0").device == torch.device("cuda", 0)  # a GPU named by the user is taken as it is
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert Dist("cuda").device == torch.device("cuda", 0) and chosen == [torch.device("cuda", 0)] * 2


def test_every_process_trains_in_the_lowest_precision_all_of_them_compute():
    """GPUs of two generations under one torchrun chose bf16 on one process and fp16 with a GradScaler on the
    other: DDP averaged scaled with unscaled gradients."""
    import torch

    from trainer.fit import PRECISIONS, shared_precision

    class Processes:  # this process, and the others' choices as numbers of PRECISIONS' order
        def __init__(self, *others):
            self.others = [list(PRECISIONS).index(o) for o in others]

        def least(self, value):
            return min(value, *self.others)

    assert shared_precision(Processes(torch.float16), torch.bfloat16) is torch.float16
    assert shared_precision(Processes(torch.bfloat16), torch.float16) is torch.float16
    assert shared_precision(Processes(None, torch.bfloat16), torch.bfloat16) is None
    assert shared_precision(Processes(torch.bfloat16), torch.bfloat16) is torch.bfloat16


def test_a_single_process_keeps_its_own_precision():
    import torch

    from trainer.distributed import Dist
    from trainer.fit import shared_precision

    env = Dist("cpu")
    assert env.least(2) == 2 and shared_precision(env, torch.bfloat16) is torch.bfloat16


def test_neighbouring_tick_labels_never_read_the_same():
    """0.99, 1, 1, 1.01 labelled a curve near doing nothing's 1: the 1.005 gridline read "1"."""
    from trainer.curves import _fmt, _nice_ticks, _step

    for lo, hi in ((0.985, 1.012), (0.9, 1.06), (0.0, 0.1), (120.0, 980.0), (0.5, 3.2)):
        ticks = _nice_ticks(lo, hi)
        labels = [_fmt(t, _step(ticks)) for t in ticks]
        assert len(set(labels)) == len(labels), labels
    ticks = _nice_ticks(50, 12500)  # thousands keep the half step: 12.5k, not 12k
    assert [_fmt(t, _step(ticks)) for t in ticks][-2:] == ["10k", "12.5k"]
    ticks = _nice_ticks(0, 40000)
    assert [_fmt(t, _step(ticks)) for t in ticks] == ["0", "10k", "20k", "30k", "40k"]


def test_ticks_of_values_a_few_ulps_apart_end():
    """A step below the values' precision never moved the tick on: the loop ran for ever."""
    import math

    from trainer.curves import _nice_ticks

    for v in (1000.0, 1.0, 98.37):
        d = 0.05 * math.ulp(v)
        ticks = _nice_ticks(v - d, math.nextafter(v, math.inf) + d)
        assert 2 <= len(ticks) <= 12


def test_a_single_validation_is_centred_with_a_dashed_baseline_and_whole_step_ticks(tmp_path, monkeypatch):
    """One validation (train.val_every=0) drew the baseline as one solid segment, its point on the left edge of an
    axis from 4.0 to 5.0 in fractional steps."""
    from tests.helpers.drawing import DrawRecorder
    from trainer import curves

    drawn = DrawRecorder(monkeypatch, curves)
    curves.draw_curves([{"type": "train", "step": 4, "loss": 1.0},
                        {"type": "val", "step": 4, "fmse": 500.0, "composite_fmse": 450.0}], tmp_path / "c.png")
    dashes = [xy for fill, xy in drawn.lines if fill == curves.BASE]
    assert len(dashes) >= 10
    left, right = min(x for xy in dashes for x, _ in xy), max(x for xy in dashes for x, _ in xy)
    (x0, _, x1, _), = [xy for fill, xy in drawn.ellipses if fill == curves.VAL]
    assert (x0 + x1) / 2 == pytest.approx((left + right) / 2)
    ticks = [label for label in drawn.labels if label[0].isdigit()]
    assert ticks == ["3", "4", "5"] * 2  # each panel, the training loss's single point as well
    from trainer.curves import _nice_ticks

    for hi in (2, 7, 12, 90, 1200):  # 12: 5 apart, not 2.5
        assert all(t == int(t) for t in _nice_ticks(0, hi, whole=True)), hi
