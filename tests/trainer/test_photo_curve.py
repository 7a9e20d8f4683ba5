"""trainer.photo_curve: one point per run, from its pool's manifest and its validation log."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from trainer import photo_curve


def _run(root, name, sources, fmses, steps=800):
    pool = root / f"pool_{name}"
    entries = [{"name": f"s{i}", "split": "train", "source": f"s{i}"} for i in range(sources)]
    (pool / "train" / "images").mkdir(parents=True)
    (pool / "manifest.json").write_text(json.dumps({"builder": "trainer.builders.package_portraits",
                                                    "entries": entries + [{"name": "v", "split": "val",
                                                                           "source": "v"}]}))
    run = root / name
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"data": {"root": str(pool / "train" / "images")},
                                                     "train": {"steps": steps}}))
    records = [{"type": "train", "step": 1, "loss": 1.0}]
    records += [{"type": "val", "step": 100 * (i + 1), "n": 9, "fmse": f, "mse": f / 4, "composite_fmse": 800.0,
                 "composite_mse": 200.0, "near_right_fmse": 70.0, "composite_near_right_fmse": 60.0,
                 "untouched_mse": 30.0} for i, f in enumerate(fmses)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_each_run_gives_its_sources_and_best_validation(tmp_path, capsys):
    small = _run(tmp_path, "small", 10, [760.0, 720.0, 740.0])
    large = _run(tmp_path, "large", 40, [700.0, 640.0])
    longer = _run(tmp_path, "longer", 40, [700.0, 600.0, 620.0], steps=2400)
    assert photo_curve.point(small)["sources"] == 10 and photo_curve.point(small)["step"] == 200
    assert photo_curve.main([str(longer), str(large), str(small), "--out", str(tmp_path / "curve.png")]) == 0
    table = capsys.readouterr().out
    assert table.index("| 10 |") < table.index("| 40 | large") < table.index("| 40 | longer")  # by budget, photos
    assert "640.0 (0.80×)" in table
    with Image.open(tmp_path / "curve.png") as curve:
        assert curve.size == (520, 320)


def test_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    assert photo_curve.main([str(tmp_path), "--out", str(tmp_path / "c.png")]) == 2
    assert "run_config.json not found" in capsys.readouterr().err


def test_only_a_pools_manifest_counts_and_a_manifest_that_is_not_one_is_one_error_line(tmp_path, capsys):
    """Any manifest.json in or above data.root was read as the pool's: another tool's ended in a KeyError."""
    run = _run(tmp_path, "small", 10, [700.0])
    images = tmp_path / "pool_small" / "train" / "images"
    (images / "manifest.json").write_text(json.dumps({"name": "My App"}))  # another tool's, below the pool
    assert photo_curve.point(run)["sources"] == 10
    (tmp_path / "pool_small" / "manifest.json").unlink()
    (tmp_path / "manifest.json").write_text(json.dumps([1, 2]))  # above, and no pool
    assert photo_curve.main([str(run), "--out", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: no pool (a manifest.json of trainer.builders.package_portraits) in or above {images}: train on a "
        "pool built by trainer.builders.package_portraits or source_subset")
    (tmp_path / "pool_small" / "manifest.json").write_text(json.dumps(
        {"builder": "trainer.builders.package_portraits", "entries": [{"name": "s0", "split": "train"}]}))
    assert photo_curve.main([str(run), "--out", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'pool_small' / 'manifest.json'} is not a pool's manifest (entries with name, split and "
        "source): rebuild the pool with python -m trainer.builders.package_portraits")


def test_a_cut_log_line_a_run_given_twice_and_a_bad_out(tmp_path, capsys):
    import pytest

    run = _run(tmp_path, "small", 10, [760.0, 720.0])
    with open(run / "log.jsonl", "a") as f:
        f.write('{"type": "val", "st')  # killed while writing
    assert photo_curve.main([str(run), str(run), "--out", str(tmp_path / "curve.png")]) == 0
    printed = capsys.readouterr()
    assert printed.out.count("| 10 | small |") == 1 and "line 4 is not a whole record; skipped" in printed.err
    assert photo_curve.main([str(run), "--out", str(tmp_path / "curve.png")]) == 0
    assert f"replaced {tmp_path / 'curve.png'}" in capsys.readouterr().out
    for out in (tmp_path, tmp_path / "missing" / "curve.png", tmp_path / "curve.jpg"):
        with pytest.raises(SystemExit):
            photo_curve.main([str(run), "--out", str(out)])
        assert "give a PNG file name (.png) in an existing folder" in capsys.readouterr().err


def test_every_step_budget_gets_a_line_or_the_curve_is_refused(tmp_path, capsys):
    """Zipped with four colours, a fifth budget and beyond were left off the picture without a word."""
    runs = [_run(tmp_path, f"r{b}", 10, [700.0], steps=100 * b) for b in range(1, 6)]
    assert photo_curve.main([*map(str, runs), "--out", str(tmp_path / "c.png")]) == 0
    with Image.open(tmp_path / "c.png") as curve:
        pixels = {tuple(p) for p in np.asarray(curve.convert("RGB")).reshape(-1, 3).tolist()}
    assert photo_curve.COLOURS["red"] in pixels  # the fifth budget's line
    many = [_run(tmp_path, f"m{b}", 10, [700.0], steps=100 * b) for b in range(1, 10)]
    assert photo_curve.main([*map(str, many), "--out", str(tmp_path / "m.png")]) == 2
    assert "9 step budgets and the curve tells 8 apart" in capsys.readouterr().err


def test_a_run_with_a_home_relative_root_or_an_older_config_name_is_read(tmp_path, monkeypatch):
    """data.root written with ~ (the trainer reads it so), and an older run's config.json, were refused."""
    run = _run(tmp_path, "old", 10, [700.0])
    monkeypatch.setenv("HOME", str(tmp_path))
    config = json.loads((run / "run_config.json").read_text())
    config["data"]["root"] = "~/pool_old/train/images"
    (run / "run_config.json").unlink()
    (run / "config.json").write_text(json.dumps(config))
    assert photo_curve.point(run)["sources"] == 10


def test_a_nan_validation_is_no_best_point_and_an_older_log_without_near_right_keys_is_read(tmp_path, capsys):
    """A NaN fMSE record was taken as the best (min() with NaN first) and printed as nan rows; a log without
    the near-right and untouched keys ended in a KeyError."""
    run = _run(tmp_path, "diverged", 10, [float("nan"), 700.0, 650.0])
    assert photo_curve.point(run)["step"] == 300 and photo_curve.point(run)["fmse"] == 650.0
    nan_only = _run(tmp_path, "nan_only", 10, [float("nan")])
    assert photo_curve.main([str(nan_only), "--out", str(tmp_path / "c.png")]) == 2
    assert "no validation record with a finite fMSE" in capsys.readouterr().err
    old = _run(tmp_path, "old", 10, [700.0])
    record = {"type": "val", "step": 100, "n": 9, "fmse": 700.0, "mse": 175.0, "composite_fmse": 800.0,
              "composite_mse": 200.0}
    (old / "log.jsonl").write_text(json.dumps(record) + "\n")
    assert photo_curve.main([str(old), str(run), "--out", str(tmp_path / "curve.png")]) == 0
    table = capsys.readouterr().out
    assert "| 700.0 (0.88×) | n/a | n/a |" in table and "| nan" not in table


def test_the_baseline_of_doing_nothing_is_dashed(tmp_path, monkeypatch):
    """It was given as two points, which the dashing drew as one solid segment."""
    from tests.helpers.drawing import DrawRecorder

    drawn = DrawRecorder(monkeypatch, photo_curve)
    photo_curve.draw([photo_curve.point(_run(tmp_path, "small", 10, [700.0])),
                      photo_curve.point(_run(tmp_path, "large", 40, [600.0]))], tmp_path / "c.png")
    assert len([xy for fill, xy in drawn.lines if fill == photo_curve.BASE]) >= 10


def test_ctrl_c_ends_with_one_line_and_writes_no_curve(tmp_path, capsys, monkeypatch):
    """It ended in a traceback."""
    from tests.helpers.interrupts import exit_code, interrupted_at

    runs = [str(_run(tmp_path, "small", 10, [700.0])), str(_run(tmp_path, "large", 40, [600.0]))]
    monkeypatch.setattr(photo_curve, "point", interrupted_at(2, photo_curve.point))
    assert exit_code(lambda: photo_curve.main([*runs, "--out", str(tmp_path / "c.png")])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: interrupted; no file was left half-written: run it again for the curve")
    assert not (tmp_path / "c.png").exists()


def test_a_stdout_that_cannot_hold_the_table_still_gets_the_curve(tmp_path, monkeypatch):
    """The table's × on an ASCII stdout ended in a traceback before the curve was drawn."""
    import io
    import sys

    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    run = _run(tmp_path, "small", 10, [760.0, 720.0])
    assert photo_curve.main([str(run), "--out", str(tmp_path / "curve.png")]) == 0
    with Image.open(tmp_path / "curve.png") as curve:
        assert curve.size == (520, 320)
