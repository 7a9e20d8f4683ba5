"""trainer.evaluation.data_table: a run's [data] table for another folder, --split all, and errors naming flags
(trainer.evaluate and trainer.calibrate share them)."""
from __future__ import annotations


def test_a_data_setting_from_the_config_is_changed_there_never_with_set():
    """Subsets from --config were told to go with --set, which evaluate and calibrate have not; without --data a
    config whose data.val_root is set is a way to a val split."""
    from argparse import Namespace

    from trainer.evaluation.data_table import in_flags

    subsets = ("data.subsets ['HCOCO'] picks iHarmony4 subsets, but x is a folder set, which has none: drop "
               "data.subsets (--set data.subsets=[] or remove it from the config)")
    assert in_flags(subsets, Namespace(subsets=None, data=None)).endswith(
        "drop data.subsets (remove it from the config)")
    empty = ("the val split of x (folder) is empty; set data.val_fraction above 0 (e.g. 0.05) or give a data.val_root "
             "folder")
    assert in_flags(empty, Namespace(val_fraction=None, data=None)).endswith(
        "or give a --config whose data.val_root is set, or score a folder of held-out photos with --data and "
        "--split all")


def test_with_data_of_the_runs_own_root_its_folders_stay_and_another_ones_subsets_go(tmp_path):
    """calibrate --config RUN --data RUN's own FFHQH set lost its ffhq_root; and a single subset folder was
    refused for the run's data.subsets, which calibrate has no flag to drop."""
    from trainer.evaluation.data_table import data_for_other

    run = {"root": str(tmp_path / "set"), "ffhq_root": str(tmp_path / "ffhq"), "subsets": ["HCOCO"], "kind": "ffhqh",
           "max_samples": 10, "val_fraction": 0.1}
    own = data_for_other(run, str(tmp_path / "set") + "/")
    assert own == {**{k: v for k, v in run.items() if k != "max_samples"}, "root": str(tmp_path / "set") + "/",
                   "kind": "auto"}
    other = data_for_other(run, str(tmp_path / "HFlickr"))
    assert other == {"root": str(tmp_path / "HFlickr"), "kind": "auto", "val_fraction": 0.1}


def test_split_all_of_the_run_s_own_pool_s_test_folder_is_no_training_photo(tmp_path, monkeypatch):
    """A run on a pool trains on its train/ and validates on its val/: --data POOL/test --split all, the form
    the README gives, was refused as holding the run's own training photos."""
    import trainer.config
    from trainer.evaluation.data_table import check_split_all

    pool = tmp_path / "pool"
    for split in ("train", "val", "test"):
        (pool / split / "images").mkdir(parents=True)
    (pool / "manifest.json").write_text('{"builder": "trainer.builders.package_portraits"}')
    monkeypatch.setattr(trainer.config, "read_config", lambda config: {"data": {"root": str(pool)}})
    assert check_split_all("all", str(pool / "test"), "RUN") is None
    assert "training photos" in check_split_all("all", str(pool / "train"), "RUN")
    assert "training photos" in check_split_all("all", str(pool / "val"), "RUN")
