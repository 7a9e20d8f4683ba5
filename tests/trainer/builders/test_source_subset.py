"""trainer.builders.source_subset: part of a pool's training photos, the held-out splits whole."""
from __future__ import annotations

import json

import pytest

from tests.helpers.interrupts import exit_code, interrupted_at
from trainer.builders import source_subset


def _pool(root, n_train=8):
    entries = []
    for split, n in (("train", n_train), ("val", 2), ("test", 2)):
        for i in range(n):
            source = f"bundle/templates/{split}-{i}.webp"
            for name in (f"{split}-{i}_f0", f"{split}-{i}_f0_rand"):
                entries.append({"name": name, "split": split, "source": source})
                for kind in ("images", "masks"):
                    (root / split / kind).mkdir(parents=True, exist_ok=True)
                    (root / split / kind / f"{name}.png").write_bytes(name.encode())
    (root / "manifest.json").write_text(json.dumps({"entries": entries}))
    return root


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_subsets_nest_keep_whole_sources_and_every_held_out_pair(tmp_path):
    pool = _pool(tmp_path / "pool")
    small = source_subset.build_subset(pool, tmp_path / "quarter", 0.25)
    half = source_subset.build_subset(pool, tmp_path / "half", 0.5)
    assert (small["train_sources"], half["train_sources"]) == (2, 4)
    assert small["pairs"] == {"train": 4, "val": 4, "test": 4}  # both pairs of each chosen source
    assert set(_names(tmp_path / "quarter" / "train" / "images")) < set(_names(tmp_path / "half" / "train" / "images"))
    for split in ("val", "test"):
        assert _names(tmp_path / "quarter" / split / "masks") == _names(pool / split / "masks")
    kept = json.loads((tmp_path / "quarter" / "manifest.json").read_text())
    assert kept["subset"]["fraction"] == 0.25 and len(kept["entries"]) == 12


def test_a_subset_counts_what_it_kept_and_names_the_whole_pools_counts_as_such(tmp_path):
    """The subset's manifest kept the whole pool's counts (sources, pairs by split and mask, skipped)."""
    pool = _pool(tmp_path / "pool")
    manifest = json.loads((pool / "manifest.json").read_text())
    for e in manifest["entries"]:
        e["mask"] = "random" if e["name"].endswith("_rand") else "object"
    whole = {"sources": 15, "skipped": [{"source": "bundle/templates/x.webp", "reason": "held out for evaluation"}],
             "held_out_excluded": 1, "near_duplicate_groups": [["bundle/templates/train-0.webp", "b/y.webp"]]}
    manifest.update(whole, builder="trainer.builders.package_portraits", sources_by_split={"train": 8},
                    pairs_by_split_and_mask={"train": {"object": 8, "random": 8}})
    (pool / "manifest.json").write_text(json.dumps(manifest))
    source_subset.build_subset(pool, tmp_path / "quarter", 0.25)
    kept = json.loads((tmp_path / "quarter" / "manifest.json").read_text())
    assert kept["builder"] == "trainer.builders.package_portraits"
    assert kept["sources"] == 6 and kept["sources_by_split"] == {"train": 2, "val": 2, "test": 2}
    assert kept["pairs_by_split_and_mask"]["train"] == {"person": 0, "object": 2, "random": 2}
    assert kept["pairs_by_split_and_mask"]["val"] == {"person": 0, "object": 2, "random": 2}
    assert kept["from_pool"] == whole and not (set(whole) - {"sources"}) & set(kept)
    source_subset.build_subset(tmp_path / "quarter", tmp_path / "eighth", 0.5)  # a subset of the subset
    assert json.loads((tmp_path / "eighth" / "manifest.json").read_text())["from_pool"] == whole


def test_bad_requests_name_the_fix(tmp_path, capsys):
    pool = _pool(tmp_path / "pool")
    assert source_subset.main([str(pool), str(tmp_path / "x"), "--fraction", "0"]) == 2
    assert "(0, 1]" in capsys.readouterr().err
    assert source_subset.main([str(tmp_path), str(tmp_path / "y"), "--fraction", "0.5"]) == 2
    assert "package_portraits" in capsys.readouterr().err
    source_subset.build_subset(pool, tmp_path / "z", 0.5)
    source_subset.build_subset(pool, tmp_path / "z", 0.25)  # its own subset is rebuilt, as the other builders do
    assert json.loads((tmp_path / "z" / "manifest.json").read_text())["subset"]["fraction"] == 0.25
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a pool subset this builder made"):
        source_subset.build_subset(pool, tmp_path / "mine", 0.5)
    with pytest.raises(FileExistsError, match="not a pool subset this builder made"):
        source_subset.build_subset(pool, pool, 0.5)  # the pool itself
    with pytest.raises(ValueError, match="is inside the pool"):
        source_subset.build_subset(pool, pool / "subset", 0.5)
    assert not (pool / "subset").exists()


def test_a_pool_file_missing_half_way_leaves_no_half_subset(tmp_path, capsys):
    """The rerun after such a failure refused the half-built folder as 'not empty'."""
    pool = _pool(tmp_path / "pool")
    (pool / "test" / "masks" / "test-1_f0.png").unlink()
    assert source_subset.main([str(pool), str(tmp_path / "half"), "--fraction", "1"]) == 2
    assert "is listed in the manifest but missing: rebuild the pool" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]


@pytest.mark.parametrize("manifest, message", [
    ({"entries": [{"name": "a", "source": "s"}]}, "is not a pool's manifest"),
    ({"entries": []}, "has no training pairs"),
    ([], "is not a pool's manifest"),
])
def test_a_manifest_that_is_no_pool_is_named(tmp_path, capsys, manifest, message):
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "manifest.json").write_text(json.dumps(manifest))
    assert source_subset.main([str(tmp_path / "pool"), str(tmp_path / "sub"), "--fraction", "0.5"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "sub").exists()


@pytest.mark.parametrize("entry", [{"split": "val/../../elsewhere/val"}, {"split": "holdout"},
                                   {"name": "../../elsewhere/val-0_f0"}, {"name": "/tmp/val-0_f0"},
                                   {"name": ".."}, {"name": "C:val-0_f0"}, {"name": 3}])
def test_an_entry_naming_a_folder_is_no_pool_s(tmp_path, capsys, entry):
    """An entry's split and name were joined into the paths read and written: a split of val/../../elsewhere/val
    linked (or copied over) files outside the output folder."""
    pool = _pool(tmp_path / "pool")
    manifest = json.loads((pool / "manifest.json").read_text())
    manifest["entries"].append({"name": "val-0_f0", "split": "val", "source": "s", **entry})
    (pool / "manifest.json").write_text(json.dumps(manifest))
    assert source_subset.main([str(pool), str(tmp_path / "sub"), "--fraction", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {pool / 'manifest.json'} is not a pool's manifest (entries with name, split and source): rebuild "
        "the pool with python -m trainer.builders.package_portraits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]


def test_ctrl_c_midway_ends_with_one_line_and_leaves_no_half_subset(tmp_path, capsys, monkeypatch):
    """It ended in a traceback."""
    pool = _pool(tmp_path / "pool")
    monkeypatch.setattr(source_subset, "_link", interrupted_at(3, source_subset._link))
    assert exit_code(lambda: source_subset.main([str(pool), str(tmp_path / "sub"), "--fraction", "1"])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: interrupted; {tmp_path / 'sub'} is as it was before this build: run it again to build the subset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]
