"""trainer.real_pastes: a grid of real pastes, and one error line for a folder it cannot use."""
from __future__ import annotations

import json
from pathlib import Path

from trainer.real_pastes import main

OURS = f"ours={Path(__file__).resolve().parents[2] / 'phnet' / 'assets' / 'default'}"


def _manifest(pool: Path, entries) -> None:
    (pool / "manifest.json").write_text(json.dumps({"builder": "trainer.builders.package_portraits",
                                                    "entries": entries}))


def test_a_manifest_that_is_not_a_pools_is_one_error_line(tmp_path, capsys):
    """Another tool's manifest.json ended in a KeyError (a dict without entries) or a TypeError (a list)."""
    for other in ({"name": "My App"}, [1, 2]):
        (tmp_path / "manifest.json").write_text(json.dumps(other))
        assert main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.png")]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {tmp_path} is not a pool (no manifest.json of trainer.builders.package_portraits): give a pool "
            "that trainer.builders.package_portraits (or source_subset) wrote")
    # an entry without a source, or whose split or name is a path (its files were read from outside the pool)
    for entry in ({"name": "p1", "split": "test"}, {"name": "p1", "split": "../../elsewhere", "source": "s"},
                  {"name": "../p1", "split": "test", "source": "s"}):
        _manifest(tmp_path, [entry])
        assert main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.png")]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {tmp_path / 'manifest.json'} is not a pool's manifest (entries with name, split and source): "
            "rebuild the pool with python -m trainer.builders.package_portraits")


def test_a_pool_without_people_or_names_is_one_error_line(tmp_path, capsys):
    _manifest(tmp_path, [])
    assert main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path} has no person photos or no other photos in its "
                                               "test split; name them with --subjects and --backgrounds")
    assert main([str(tmp_path), "--subjects", "nobody", "--weights", OURS, "--out",
                 str(tmp_path / "grid.png")]) == 2
    assert "not in" in capsys.readouterr().err and not (tmp_path / "grid.png").exists()


def test_pairs_do_not_repeat_and_a_short_pool_says_how_many_rows_it_gives(tmp_path, capsys):
    from trainer.real_pastes import pick_pairs

    _manifest(tmp_path, [{"name": n, "split": "test", "source": n, "mask": "person" if n.startswith("p") else "object"}
                         for n in ("p1", "p2", "b1", "b2", "b3")])
    pairs = pick_pairs(tmp_path, 6, ["p1", "p2"], ["b1", "b2", "b3"])
    named = [(s.stem, b.stem) for s, _, b in pairs]
    assert len(set(named)) == 6 and named[:2] == [("p1", "b1"), ("p2", "b2")]
    assert len(pick_pairs(tmp_path, 9, ["p1", "p2"], ["b1"])) == 2
    assert "make 2 distinct pastes; the grid has 2 rows, not 9" in capsys.readouterr().err


def test_out_that_is_not_a_png_is_refused_before_any_work(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.jpg")])
    assert "give a .png file name" in capsys.readouterr().err


def test_ctrl_c_ends_with_one_line_and_writes_no_grid(tmp_path, capsys, monkeypatch):
    """It ended in a traceback."""
    from tests.helpers.interrupts import exit_code, interrupted_at
    from trainer import real_pastes

    _manifest(tmp_path, [])
    monkeypatch.setattr(real_pastes, "pick_pairs", interrupted_at(1, real_pastes.pick_pairs))
    assert exit_code(lambda: main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.png")])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: interrupted; no file was left half-written: run it again for the grid")
    assert not (tmp_path / "grid.png").exists()
