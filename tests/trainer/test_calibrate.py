"""trainer.calibrate: the do-no-harm threshold and ramp chosen on held-out composites."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainer import calibrate


def _batches():
    """Two composites: one clearly wrong (cast of 40/255, corrected exactly), one near-right (cast 2/255)
    whose proposed correction is a wrong 6/255; the untouched photos get a proposed change of 6/255."""
    real = torch.full((2, 3, 8, 8), 0.5)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    cast = torch.tensor([40 / 255, 2 / 255]).reshape(2, 1, 1, 1) * mask
    comp = real + cast
    from phnet.modeling.transform import correction_size

    change = torch.stack([-cast[0].expand(3, 8, 8), torch.full((3, 8, 8), 6 / 255) * mask[1]])
    change_real = torch.full_like(real, 6 / 255) * mask
    return [{"comp": comp, "real": real, "mask": mask, "change": change, "size": correction_size(change, mask),
             "change_real": change_real, "size_real": correction_size(change_real, mask)}]


def test_a_ramp_keeps_the_large_correction_whole_where_soft_shortens_it():
    curves = calibrate.error_curves(_batches())
    soft, firm = calibrate.score(curves, 10.0), calibrate.score(curves, 10.0, ramp=0.0)
    assert soft["untouched_mse"] == firm["untouched_mse"] == 0.0  # 6 < 10: both drop the small ones
    assert soft["near_right_fmse"] == firm["near_right_fmse"] == pytest.approx(4.0, abs=1e-3)
    assert firm["fmse"] == pytest.approx(4.0 / 2, abs=1e-3)  # the wrong one fixed entirely: 0 and 4
    assert soft["fmse"] > firm["fmse"] + 20  # soft leaves 10 of the 40 in: fMSE 100 on it


def test_a_floor_applies_a_share_of_the_small_corrections():
    curves = calibrate.error_curves(_batches())
    row = calibrate.score(curves, 10.0, ramp=0.0, floor=0.5)
    assert row["near_right_fmse"] == pytest.approx((2 + 3) ** 2, abs=0.2)  # half of the wrong 6 applied
    assert row["untouched_mse"] == pytest.approx(9 * 16 / 64, abs=0.05)  # 3 of 255 on the 4x4 subject of 8x8


def test_choose_prefers_the_lowest_error_that_does_no_harm():
    curves = calibrate.error_curves(_batches())
    table = [calibrate.score(curves, t, r) for r in calibrate.parse_ramps("soft,0:4:2") for t in (0.0, 10.0)]
    best = calibrate.choose(table, max_untouched=5.0, max_near_right=1.1)
    assert (best["threshold"], best["ramp"]) == (10.0, 0.0)
    raw = next(row for row in table if row["threshold"] == 0)
    assert raw["untouched_mse"] > 5  # the raw network changes untouched photos: not chosen


def test_scores_between_the_measured_shares_match_the_pixels():
    curves = calibrate.error_curves(_batches())
    for threshold in (3.0, 7.3, 21.0):
        wrong = threshold ** 2  # soft: 40 shortened by the threshold leaves an error of the threshold
        near = (2 + 6 * max(0.0, 1 - threshold / 6)) ** 2  # the cast of 2 plus what is kept of the wrong 6
        assert calibrate.score(curves, threshold)["fmse"] == pytest.approx((wrong + near) / 2, abs=0.2)


def test_a_rule_over_the_limits_is_named():
    """With no rule within the limits the nearest was stored, its table row unmarked, without a word."""
    row = {"untouched_mse": 11.23, "near_right_fmse": 120.4, "composite_near_right_fmse": 60.2}
    assert calibrate.missed(row, 5.0, 1.1) == ["untouched MSE 11.23 > 5", "near-right 2.00x > 1.1x"]
    assert calibrate.missed({**row, "untouched_mse": 1.0, "near_right_fmse": 60.0}, 5.0, 1.1) == []


def test_near_right_composites_that_doing_nothing_scores_0_on_are_held_to_the_untouched_limit_not_a_ratio():
    """The only near-right composites were photos left as they were: doing nothing's 0 made any change of them
    10 000 times its error, and every rule was over the limits."""
    rows = [{"untouched_mse": u, "near_right_fmse": near, "composite_near_right_fmse": 0.0, "fmse": f}
            for u, near, f in ((1.0, 0.4, 300.0), (0.5, 0.1, 400.0), (6.0, 2.0, 200.0))]
    assert [calibrate.missed(row, 5.0, 1.1) for row in rows] == [[], [], ["untouched MSE 6.00 > 5"]]
    assert calibrate.choose(rows, 5.0, 1.1) is rows[0]


def _proposing_model(shift_set, tmp_path) -> None:
    """A tiny residual network that proposes corrections, saved as tmp_path/model, and the run config of a
    training on ``shift_set`` as tmp_path/run_config.json."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from training_runs import tiny_cfg

    torch.manual_seed(0)
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                              output="residual"))
    torch.nn.init.normal_(model.decoder[5][0].weight, std=0.05)
    save_pretrained(model, tmp_path / "model")
    (tmp_path / "run_config.json").write_text(json.dumps(tiny_cfg(shift_set, tmp_path / "run")))


def test_a_row_over_the_limits_names_them(shift_set, tmp_path, capsys):
    """Each floor's row said "(over the limits)", not which."""
    _proposing_model(shift_set, tmp_path)
    assert calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--report-only",
                           "--thresholds", "0:0:1", "--ramps", "soft", "--floors", "0:0.2:0.1",
                           "--max-untouched", "0"]) == 0
    rows = [line for line in capsys.readouterr().err.splitlines() if line.startswith("floor ")]
    assert len(rows) == 3 and all("(over the limits: untouched MSE " in row for row in rows), rows


def test_no_near_right_composites_give_no_near_right_figure_not_0():
    """Without near-right composites calibrate printed and stored a near-right fMSE of 0.0."""
    curves = {"composite_fmse": np.array([900.0, 1200.0]), "composite_mse": np.array([90.0, 120.0])}
    row = {**calibrate._errors(curves, np.array([50.0, 60.0]), np.array([500.0, 600.0]), np.zeros(2)),
           "threshold": 1.0, "ramp": None, "floor": 0.0}
    assert row["near_right_fmse"] is None and row["composite_near_right_fmse"] is None and row["near_right_n"] == 0
    assert "near-right n/a (none here)" in calibrate.describe(row)
    assert calibrate.missed(row, 5.0, 1.1) == [] and calibrate.choose([row], 5.0, 1.1) is row


def test_bad_grids_are_refused_by_name():
    assert calibrate.parse_ramps("soft") == [None]
    assert calibrate.parse_ramps("soft,0:4:2") == [None, 0.0, 2.0, 4.0]
    for spec in ("0:4", "4:0:1", "0:4:0", "firm"):
        with pytest.raises(ValueError, match="start:stop:step"):
            calibrate.parse_ramps(spec)


@pytest.mark.parametrize("flag, spec, message", [
    ("--thresholds", "abc", "--thresholds: expected start:stop:step, got 'abc'"),
    ("--ramps", "soft,x", "--ramps: expected start:stop:step, got 'x'"),
    ("--floors", "0.5:0.1:0.1", "--floors: expected start:stop:step with 0 <= start <= stop and step > 0"),
    ("--floors", "0:2:1", "--floors are shares from 0 to 1, got '0:2:1'"),
    ("--thresholds", "0:60:nan", "--thresholds: expected start:stop:step with 0 <= start <= stop and step > 0"),
    ("--thresholds", "0:inf:1", "--thresholds: expected start:stop:step with 0 <= start <= stop and step > 0"),
    ("--thresholds", "0:1e15:1", "--thresholds: '0:1e15:1' gives more than 10000 values: take a larger step"),
    ("--floors", "0:0.5:0.0001", "--thresholds, --ramps and --floors make 4840968 rules, more than 1000000"),
])
def test_a_bad_grid_is_refused_by_its_flag_before_the_model_is_read(tmp_path, capsys, flag, spec, message):
    """The error named no flag, and came after the model and the composites were read."""
    with pytest.raises(SystemExit) as refused:
        calibrate.main([str(tmp_path / "no-model"), "--config", str(tmp_path / "none.toml"), "--report-only",
                        flag, spec])
    assert refused.value.code == 2 and message in capsys.readouterr().err


def test_calibrate_writes_the_chosen_pair_into_the_config(shift_set, tmp_path, capsys):
    from phnet.weights import load_model

    _proposing_model(shift_set, tmp_path)
    rc = calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"),
                         "--out", str(tmp_path / "out"), "--thresholds", "0:20:5", "--ramps", "soft,0:10:5",
                         "--floors", "0:0.2:0.1"])
    assert rc == 0
    chosen = json.loads((tmp_path / "out" / "calibration.json").read_text())["chosen"]
    config = load_model(tmp_path / "out").config
    assert (config.correction_threshold, config.correction_ramp, config.correction_floor) == (
        chosen["threshold"], chosen["ramp"], chosen["floor"])
    with pytest.raises(SystemExit) as refused:
        calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"),
                        "--out", str(tmp_path / "bad"), "--ramps", "firm"])
    assert refused.value.code == 2 and not (tmp_path / "bad").exists()
    # --out on a model folder replaced its weights without a word (in a step checkpoint, beside its old state)
    before = (tmp_path / "model" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit) as refused:
        calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"),
                        "--out", str(tmp_path / "model")])
    assert refused.value.code == 2 and (tmp_path / "model" / "model.safetensors").read_bytes() == before
    again = [str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--out", str(tmp_path / "out"),
             "--overwrite", "--thresholds", "0:20:5", "--ramps", "soft", "--floors", "0:0:1", "--max-untouched", "0"]
    # the folder is replaced whole: anything beside a calibrated model (a checkpoint's state, a run's files,
    # notes) is refused, not deleted
    (tmp_path / "out" / "training_state.pt").write_bytes(b"left by the checkpoint copied here")
    with pytest.raises(SystemExit) as refused:
        calibrate.main(again)
    assert refused.value.code == 2 and (tmp_path / "out" / "training_state.pt").is_file()
    (tmp_path / "out" / "training_state.pt").unlink()
    assert calibrate.main(again) == 0
    written = json.loads((tmp_path / "out" / "calibration.json").read_text())["chosen"]
    assert written["within_limits"] is (not calibrate.missed(written, 0.0, 1.1))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["calibration.json", "config.json",
                                                                    "model.safetensors"]
    run = tmp_path / "run_folder"
    (run / "checkpoints" / "step-00000100").mkdir(parents=True)
    (run / "log.jsonl").write_text("{}\n")
    capsys.readouterr()
    with pytest.raises(SystemExit):  # a calibrated model there, no --overwrite: refused, not "replaced"
        calibrate.main([*again[:5], *again[6:]])
    err = capsys.readouterr().err
    assert "already holds a calibrated model: give a new folder, or --overwrite" in err and "replaces" not in err
    for overwrite in (again[5:], again[6:]):  # with --overwrite or without: never "use --overwrite" for a run
        with pytest.raises(SystemExit):
            calibrate.main([*again[:4], str(run), *overwrite])
        assert "not a calibrated model" in capsys.readouterr().err
    assert (run / "log.jsonl").is_file() and (run / "checkpoints" / "step-00000100").is_dir()


def test_out_given_as_a_home_path_after_an_equals_sign_is_the_home_folder(shift_set, tmp_path, monkeypatch):
    """--out=~/cal (the shell leaves a ~ after = as it is) wrote into a folder named ~ in the current one."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from training_runs import tiny_cfg

    save_pretrained(PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                                      output="residual")), tmp_path / "model")
    (tmp_path / "run_config.json").write_text(json.dumps(tiny_cfg(shift_set, tmp_path / "run")))
    for var in ("HOME", "USERPROFILE"):
        monkeypatch.setenv(var, str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--out=~/cal",
                           "--thresholds", "0:5:5", "--ramps", "soft", "--floors", "0:0:1"]) == 0
    assert (tmp_path / "home" / "cal" / "calibration.json").is_file() and not any((tmp_path / "cwd").iterdir())


def test_ctrl_c_ends_with_one_line_saying_what_was_left(shift_set, tmp_path, capsys, monkeypatch):
    """It ended in a traceback."""
    from phnet import PHNet, PHNetConfig, weights
    from tests.helpers.interrupts import exit_code, interrupted_at
    from training_runs import tiny_cfg

    save_pretrained = weights.save_pretrained
    save_pretrained(PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                                      output="residual")), tmp_path / "model")
    (tmp_path / "run_config.json").write_text(json.dumps(tiny_cfg(shift_set, tmp_path / "run")))
    args = [str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--thresholds", "0:5:5",
            "--ramps", "soft", "--floors", "0:0:1"]
    with monkeypatch.context() as m:
        m.setattr(calibrate, "collect", interrupted_at(1, calibrate.collect))
        assert exit_code(lambda: calibrate.main([*args, "--report-only"])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: interrupted; no file was left half-written: run it again for the report")
    monkeypatch.setattr(weights, "save_pretrained", interrupted_at(1, save_pretrained))  # while --out is written
    assert exit_code(lambda: calibrate.main([*args, "--out", str(tmp_path / "out")])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: interrupted; {tmp_path / 'out'} is as it was before this build: run it again to build the "
        "calibrated model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "run_config.json"]


def test_an_out_that_links_to_nothing_is_refused_before_any_work(shift_set, tmp_path, capsys, monkeypatch):
    """A model built for an --out linked to an unmounted drive went under the mount point, on the local disk."""
    _proposing_model(shift_set, tmp_path)
    monkeypatch.setattr(calibrate, "collect", lambda *a: pytest.fail("the composites were read"))
    out = tmp_path / "cal"
    out.symlink_to(tmp_path / "unmounted" / "cal")
    with pytest.raises(SystemExit) as e:
        calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--out", str(out)])
    assert e.value.code == 2 and not (tmp_path / "unmounted").exists()
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --out {out}: {out} links to {tmp_path / 'unmounted' / 'cal'}, which does not exist (an unmounted "
        "drive?); connect it, or give another --out")


def test_an_out_that_takes_no_file_is_refused_before_any_work(shift_set, tmp_path, capsys, monkeypatch):
    """A read-only folder above --out failed after the work, naming the hidden folder the model is built in."""
    import tempfile

    _proposing_model(shift_set, tmp_path)

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(calibrate, "collect", lambda *a: pytest.fail("the composites were read"))
    out = tmp_path / "new" / "cal"
    with pytest.raises(SystemExit) as e:
        calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--out", str(out)])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --out {out}: cannot write into {tmp_path} (Permission denied), where the calibrated model is "
        "built: make it writable, or give another --out")


def test_a_failed_write_names_out_and_leaves_the_earlier_model(shift_set, tmp_path, capsys, monkeypatch):
    """A full disk named the hidden folder the model is built in."""
    import errno

    from phnet import weights

    _proposing_model(shift_set, tmp_path)
    out = tmp_path / "out"
    args = [str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--out", str(out),
            "--overwrite", "--thresholds", "0:5:5", "--ramps", "soft", "--floors", "0:0:1"]
    assert calibrate.main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(model, folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.safetensors"))

    monkeypatch.setattr(weights, "save_pretrained", disk_full)
    capsys.readouterr()
    assert calibrate.main(args) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cannot write the calibrated model into {out} (No space left on device); {out} is as it was: free "
        "some space or make it writable, or give another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "out", "run_config.json"]


def test_calibrate_keeps_the_runs_data_settings_with_data_and_refuses_an_image_model_before_work(shift_set,
                                                                                                  tmp_path, capsys):
    """--data replaced the run's whole [data] table (its split fractions, masks, seed): the rule was chosen on
    another split. An output="image" model failed only after all the work."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from training_runs import tiny_cfg

    cfg = tiny_cfg(shift_set, tmp_path / "run")
    seen = []
    original = calibrate.build_dataset
    calibrate.build_dataset = lambda data, *a, **k: seen.append(data) or original(data, *a, **k)
    try:
        model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
        save_pretrained(model, tmp_path / "image")
        # a run trained on photos (kind "folder") scoring a ready set: its layout is read off it, not the run's
        (tmp_path / "run_config.json").write_text(json.dumps(dict(cfg, data=dict(cfg["data"], seed=7,
                                                                                     kind="folder", max_samples=3))))
        assert calibrate.main([str(tmp_path / "image"), "--config", str(tmp_path / "run_config.json"), "--data",
                               str(shift_set), "--report-only"]) == 0
        assert seen[-1]["seed"] == 7 and seen[-1]["root"] == str(shift_set) and seen[-1]["kind"] == "auto"
        assert "max_samples" not in seen[-1]  # the run's cap on its photos: the set is scored whole
        assert calibrate.main([str(tmp_path / "image"), "--config", str(tmp_path / "run_config.json"), "--data",
                               str(shift_set), "--ffhq-root", str(shift_set / "real"), "--report-only"]) == 0
        assert seen[-1]["ffhq_root"] == str(shift_set / "real")  # an FFHQH set's real photos, named as for evaluate
        capsys.readouterr()
        assert calibrate.main([str(tmp_path / "image"), "--config", str(tmp_path / "run_config.json"), "--out",
                               str(tmp_path / "out")]) == 2
        assert "no correction to hold to a threshold" in capsys.readouterr().err and len(seen) == 2
    finally:
        calibrate.build_dataset = original


def test_a_data_setting_given_by_its_flag_is_named_by_the_flag(photos, tmp_path, capsys):
    """--mask-dir naming the photo folder was told to fix data.mask_dir, a setting of a config."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained

    save_pretrained(PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                                      output="residual")), tmp_path / "model")
    img_dir, _ = photos
    assert calibrate.main([str(tmp_path / "model"), "--config", "default_cpu", "--data", str(img_dir), "--mask-dir",
                           str(img_dir), "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "--mask-dir: the mask folder" in err and "data.mask_dir" not in err


def test_the_ceiling_gives_each_composite_its_best_share():
    top = calibrate.ceiling(calibrate.error_curves(_batches()))
    assert top["fmse"] == pytest.approx(4.0 / 2, abs=1e-6)  # the wrong one fixed whole, the near-right one left
    assert top["near_right_fmse"] == pytest.approx(4.0, abs=1e-6)
    assert (top["untouched_mse"], top["mean_share"]) == (0.0, 0.5)


def test_the_test_split_is_only_read_never_chosen_on(shift_set, tmp_path, capsys):
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from training_runs import tiny_cfg

    save_pretrained(PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                                      output="residual")), tmp_path / "model")
    (tmp_path / "run_config.json").write_text(json.dumps(tiny_cfg(shift_set, tmp_path / "run")))
    args = [str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--thresholds", "0:10:5",
            "--ramps", "soft", "--floors", "0:0:1", "--split", "test"]
    with pytest.raises(SystemExit) as refused:
        calibrate.main(args + ["--out", str(tmp_path / "out")])
    assert refused.value.code == 2 and "--report-only" in capsys.readouterr().err
    assert calibrate.main(args + ["--report-only"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"chosen", "ceiling"} and report["ceiling"]["fmse"] <= report["chosen"]["fmse"] + 1e-9
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", ["residual", "transform"])
def test_a_rule_is_scored_on_the_pictures_the_model_makes_with_it(output):
    """Proposals that overshoot 0..1: the model thresholds the size of the change before the clamp (calibrate read
    the clamped change: at threshold 90 it claimed fMSE 3251, the model gave 4227) and applies a share k of it as
    clamp(comp + k·change), which is not k times the clamped change (calibrate claimed fMSE 12194 where the model
    gave 13426)."""
    import dataclasses

    from phnet import PHNet, PHNetConfig, metrics

    torch.manual_seed(0)
    cfg = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32, output=output)
    model = PHNet(cfg).eval()
    real = torch.rand(4, 3, 32, 32) * 0.1 + 0.85  # bright: a brightening change overshoots 1
    mask = torch.zeros(4, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    comp = real - torch.tensor([0.1, 0.2, 0.3, 0.4]).reshape(4, 1, 1, 1) * mask
    last = model.decoder[5][0]
    with torch.no_grad():  # a network that brightens the subject strongly, a little differently per picture
        last.weight.normal_(0, 0.05)
        if output == "residual":
            last.bias.fill_(1.0)  # a change of 2·(sigmoid(1) - 0.5) = 0.46
        else:
            last.bias.zero_()[9:] = 0.4  # the offsets of the colour transform
        (batch,) = calibrate.collect(model, [{"comp": comp, "real": real, "mask": mask}])
        _, size, _ = model.estimate(comp, mask, threshold=0.0)
    torch.testing.assert_close(batch["size"], size.float())
    assert ((comp + batch["change"]) > 1).any()  # the constructed case does overshoot
    curves = calibrate.error_curves([batch], shares=401)
    sizes = sorted(curves["size"].tolist())
    for threshold, ramp, floor in [(sizes[1], None, 0.0), (sizes[0] / 2, None, 0.0), (sizes[-1] + 1, 4.0, 0.4)]:
        claimed = calibrate.score(curves, threshold, ramp, floor)
        saved = PHNet(dataclasses.replace(cfg, correction_threshold=threshold, correction_ramp=ramp,
                                          correction_floor=floor))
        saved.load_state_dict(model.state_dict())
        with torch.no_grad():
            out = metrics.blend(saved.eval()(comp, mask).clamp(0, 1), comp, mask)
            out_real = metrics.blend(saved(real, mask).clamp(0, 1), real, mask)
        assert claimed["mse"] == pytest.approx(float(metrics.mse(out, real).mean()), rel=2e-3)
        assert claimed["fmse"] == pytest.approx(float(metrics.fmse(out, real, mask).mean()), rel=2e-3)
        assert claimed["untouched_mse"] == pytest.approx(float(metrics.mse(out_real, real).mean()), rel=2e-3, abs=0.01)


def test_a_picture_padded_to_the_square_is_scored_on_the_picture_alone():
    """With resize "pad" the black padding counted as error-free pixels: MSE and the untouched figure were diluted
    (by 1.7x on wide photos), and the do-no-harm limit on them loosened as much."""
    import torch.nn.functional as F

    from trainer.validation import validate

    class Dim(torch.nn.Module):  # per pixel: the same output cropped or padded
        def forward(self, comp, mask):
            return comp * 0.9

    cropped = _batches()[0]
    padded = {k: F.pad(v, (0, 0, 4, 4)) if v.ndim == 4 else v for k, v in cropped.items()}
    padded["box"] = torch.tensor([[4, 0, 8, 8]] * 2)
    for key in ("mse", "untouched_mse", "composite_mse", "psnr", "fmse"):
        assert validate(Dim(), [padded], torch.device("cpu"))[key] == pytest.approx(
            validate(Dim(), [cropped], torch.device("cpu"))[key])
    a, b = calibrate.error_curves([padded]), calibrate.error_curves([cropped])
    for key in ("mse", "untouched", "composite_mse", "fmse"):
        assert a[key] == pytest.approx(b[key])



def test_a_rebuild_over_weights_under_an_official_name_takes_their_terms_file_as_its_own(tmp_path, capsys):
    """save_pretrained writes LICENSE-WEIGHTS.txt for weights trained on from the official ones: --overwrite
    refused the folder a calibration had written, as holding a file besides the calibrated model."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from trainer import calibrate

    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64,
                         output="residual", name="finetuned-official-ffhqh512")
    out = save_pretrained(PHNet(config), tmp_path / "calibrated")
    (out / "calibration.json").write_text("{}\n")
    assert (out / "LICENSE-WEIGHTS.txt").is_file()
    try:  # it stops later, at the missing config: past the folder's check
        calibrate.main([str(out), "--config", str(tmp_path / "none.toml"), "--out", str(out), "--overwrite"])
    except SystemExit:
        pass
    err = capsys.readouterr().err
    assert "besides the calibrated model" not in err and "none.toml" in err


def _wide_composites(n: int = 4) -> list[dict]:
    """Native-size composites of other shapes than the network's square (one per batch), their subjects cast."""
    from procedural_portraits import portrait

    rng = np.random.default_rng(3)
    out = []
    for i, (h, w) in zip(range(n), [(24, 64), (40, 56), (64, 24), (48, 48)]):
        img, mask = portrait(rng, h, w)
        real = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        m = torch.from_numpy(mask > 0)[None, None].float()
        comp = (real + torch.tensor([0.2, 0.05, -0.15]).reshape(1, 3, 1, 1) * (i + 1) / n * m).clamp(0, 1)
        out.append({"comp": comp, "real": real, "mask": m})
    return out


def test_with_the_aspect_geometry_the_rule_reads_the_sizes_the_harmonizer_thresholds():
    """calibrate read each correction's size on the composite stretched to the network's square; the Harmonizer
    keeps the aspect ratio, so a rule chosen on those sizes met other sizes in use."""
    from phnet import Harmonizer, PHNet, PHNetConfig
    from phnet.fullres import working_shape

    torch.manual_seed(0)
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                              output="residual")).eval()
    torch.nn.init.normal_(model.decoder[5][0].weight, std=0.05)
    batches = _wide_composites()
    collected = calibrate.collect(model, calibrate.at_working_size(model, batches))
    harmonizer = Harmonizer(model, device="cpu", dtype=torch.float32)
    for batch, low in zip(batches, collected):
        assert tuple(low["comp"].shape[-2:]) == working_shape(*batch["comp"].shape[-2:], 32)
        assert low["real"].shape == low["comp"].shape and low["mask"].shape[-2:] == low["comp"].shape[-2:]
        used = harmonizer.harmonize(batch["comp"], batch["mask"], threshold=0, measure=False).corrections[0].size
        assert float(low["size"]) == pytest.approx(used, rel=1e-4)
        on_real = harmonizer.harmonize(batch["real"], batch["mask"], threshold=0, measure=False).corrections[0].size
        assert float(low["size_real"]) == pytest.approx(on_real, rel=1e-4)
    curves = calibrate.error_curves(collected)
    assert curves["fmse"].shape == (len(batches), calibrate.SHARES)
    stretched = calibrate.collect(model, [{k: torch.nn.functional.interpolate(v, size=(32, 32), mode="bilinear")
                                           for k, v in b.items()} for b in batches[:3]])
    assert any(abs(float(s["size"]) - float(low["size"])) > 0.01 * float(low["size"])
               for s, low in zip(stretched, collected))  # the square reads other sizes for these shapes


def _harmonizers_preparation(model, loader):
    """``at_working_size`` as it was: each picture through the Harmonizer's whole preparation."""
    from phnet import Harmonizer
    from phnet.pipeline import prepare_low

    harmonizer = Harmonizer(model, device="cpu", dtype=torch.float32)
    for batch in loader:
        for i in range(batch["comp"].shape[0]):
            mask = batch["mask"][i, 0]
            comp, real = (prepare_low(harmonizer, batch[key][i].permute(1, 2, 0), 1.0, mask, 1.0,
                                      model.config.image_size) for key in ("comp", "real"))
            yield {"comp": comp.image, "real": real.image, "mask": comp.mask}


def test_the_aspect_geometry_gives_the_network_what_the_harmonizers_preparation_gives_it():
    """at_working_size prepared each composite and its real photo as the Harmonizer prepares a picture for its
    full-resolution result (the real photo's own mask, where the background is untouched, the subject's coverage),
    which the calibration never read: what it reads is the same, a subject a pixel wide in a large picture too."""
    from phnet import PHNet, PHNetConfig

    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                              output="residual")).eval()
    speck = torch.zeros(1, 1, 300, 200)
    speck[0, 0, 150, 100] = 0.6
    batches = [*_wide_composites(), {"comp": torch.rand(1, 3, 300, 200), "real": torch.rand(1, 3, 300, 200),
                                     "mask": speck}]
    batches.append({k: torch.cat([batches[1][k], batches[1][k].flip(-1)]) for k in ("comp", "real", "mask")})
    edges = torch.zeros(1, 1, 300, 200)
    edges[0, 0, 37:211, 23:151] = 1  # edges part-way across working pixels: counted from half of full
    batches.append({"comp": torch.rand(1, 3, 300, 200), "real": torch.rand(1, 3, 300, 200), "mask": edges})
    prepared = list(calibrate.at_working_size(model, [*batches[:2], {"skipped": 2}, *batches[2:]]))
    assert len(prepared) == 8  # a batch whose samples were all unreadable is passed over, not the end
    for new, old in zip(prepared, _harmonizers_preparation(model, batches), strict=True):
        assert new.keys() == old.keys()
        for key in new:
            assert new[key].dtype == old[key].dtype and torch.equal(new[key], old[key]), key
    assert prepared[4]["mask"].sum() >= 1  # the speck keeps its pixel


def _wide_set(tmp_path):
    """A set of native-size composites of several shapes (FFHQH layout), and a proposing model for it."""
    from PIL import Image

    root = tmp_path / "set"
    for d in ("comp", "alpha", "real"):
        (root / d).mkdir(parents=True)
    names = []
    for i, b in enumerate(_wide_composites() * 2):
        name = f"{i:05d}.png"
        for d, key in (("comp", "comp"), ("real", "real")):
            Image.fromarray((b[key][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(root / d / name)
        Image.fromarray((b["mask"][0, 0].numpy() * 255).astype(np.uint8)).save(root / "alpha" / name)
        names.append(name)
    for split, part in (("train", names[:2]), ("val", names[2:]), ("test", names[2:])):
        (root / f"{split}_split.txt").write_text("\n".join(part) + "\n")
    _proposing_model(root, tmp_path)


def test_calibrate_through_the_harmonizer_geometry_reads_pictures_of_several_shapes(tmp_path, capsys):
    """--geometry aspect takes each val composite at its own size (no batch of one shape), and says so in
    calibration.json."""
    _wide_set(tmp_path)
    assert calibrate.main([str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--geometry",
                           "aspect", "--out", str(tmp_path / "out"), "--thresholds", "0:20:5", "--ramps", "soft,0:8:4",
                           "--floors", "0:0.2:0.1"]) == 0
    written = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert written["geometry"] == "aspect" and written["chosen"]["n"] == 6


def test_the_aspect_report_is_the_one_the_harmonizers_whole_preparation_gave(tmp_path, capsys, monkeypatch):
    """Leaving out the preparation the calibration never read changes nothing it reports."""
    _wide_set(tmp_path)
    args = [str(tmp_path / "model"), "--config", str(tmp_path / "run_config.json"), "--geometry", "aspect",
            "--report-only", "--thresholds", "0:20:5", "--ramps", "soft,0:8:4", "--floors", "0:0.2:0.1"]
    reports = []
    for prepare in (calibrate.at_working_size, _harmonizers_preparation):
        monkeypatch.setattr(calibrate, "at_working_size", prepare)
        assert calibrate.main(args) == 0
        captured = capsys.readouterr()
        table = [line for line in captured.err.splitlines() if line.startswith(("floor", "chosen", "ceiling"))]
        reports.append((json.loads(captured.out), table))
    assert reports[0] == reports[1] and reports[0][0]["chosen"]["n"] == 6 and len(reports[0][1]) == 5
