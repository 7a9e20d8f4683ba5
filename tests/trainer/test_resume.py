"""trainer.resume: a resumed run applies the config it records, or refuses what it cannot change."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training_runs import read_log, tiny_cfg


@pytest.fixture()
def two_steps(shift_set, tmp_path):
    from trainer.fit import train

    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4, log_every=1, warmup_steps=0,
                   schedule="constant", lr=1e-3), progress=False)
    return out


def resumed_cfg(shift_set, out, **train):
    base = dict(steps=4, ckpt_every=2, val_every=0, batch_size=4, log_every=1, warmup_steps=0, schedule="constant",
                lr=1e-3)
    return tiny_cfg(shift_set, out, **{**base, **train})


@pytest.mark.parametrize("change", [("model", "enc_sizes", [3, 8, 8, 16, 16, 32, 64]),
                                    ("model", "output", "image"), ("data", "image_size", 16),
                                    ("train", "optimizer", "lion")])
def test_resume_refuses_a_changed_architecture_or_optimizer(two_steps, shift_set, change):
    from trainer.fit import train
    from trainer.resume import ResumeConfigError

    section, key, value = change
    cfg = resumed_cfg(shift_set, two_steps)
    cfg[section][key] = value
    recorded = (two_steps / "run_config.json").read_text()
    with pytest.raises(ResumeConfigError, match=f"{section}.{key}.*--init-from"):
        train(cfg, resume=True, progress=False)
    assert (two_steps / "run_config.json").read_text() == recorded  # nothing claims the refused values
    assert not (two_steps / "checkpoints" / "step-00000004").exists()


def test_data_image_size_set_to_the_working_size_it_already_has_is_no_change():
    """data.image_size 0 -> 32 on a run whose working size was 32 was refused as a changed working size."""
    from trainer.resume import check_resume_config

    old = {"model": {"preset": "small", "image_size": 32}, "data": {"image_size": 0}, "train": {}}
    same = {**old, "data": {"image_size": 32}}
    assert "data.image_size" not in check_resume_config(old, same, "ckpt")
    with pytest.raises(ValueError, match="data.image_size"):
        check_resume_config(old, {**old, "data": {"image_size": 48}}, "ckpt")


def photo_cfg(photos, out, **data):
    cfg = resumed_cfg(photos[0], out, steps=2)
    cfg["data"].update({"mask_dir": str(photos[1]), **data})
    return cfg


@pytest.mark.parametrize("change", [{"test_fraction": 0.2}, {"val_fraction": 0.3}, {"val_root": "held"}])
def test_resume_refuses_a_change_that_moves_photos_between_the_splits(photos, tmp_path, change):
    """A test_fraction added on resume turned photos the run had trained on into a test split scored as held out
    (a val_fraction or a val_root given up: into the photos best/ is chosen on)."""
    from procedural_portraits import write_photos

    from trainer.fit import train
    from trainer.resume import ResumeConfigError

    held = tmp_path / "held"
    write_photos(held, 3, seed=9)
    before, after = ({}, change) if "val_root" not in change else ({"val_root": str(held)}, {"val_root": ""})
    out = tmp_path / "run"
    train(photo_cfg(photos, out, **before), progress=False)
    key = f"data.{next(iter(change))}"
    cfg = photo_cfg(photos, out, **{**before, **after})
    cfg["train"]["steps"] = 4
    with pytest.raises(ResumeConfigError, match=f"changed {key} .*photos it has trained on.*--init-from"):
        train(cfg, resume=True, progress=False)
    assert not (out / "checkpoints" / "step-00000004").exists()


@pytest.mark.parametrize("before, after", [({"val_fraction": 0.3}, {"val_fraction": 0.05}),
                                           ({"test_fraction": 0.3}, {"test_fraction": 0.1}),
                                           ({}, {"val_root": "held"})])
def test_resume_takes_a_split_change_that_holds_out_no_photo_trained_on(photos, tmp_path, before, after):
    """A lower fraction, or a val_root given, moves only held-out photos into training: such resumes were refused
    as holding out photos the run had trained on."""
    from procedural_portraits import write_photos

    from trainer.fit import train

    held = tmp_path / "held"
    write_photos(held, 3, seed=9)
    after = {k: str(held) if k == "val_root" else v for k, v in after.items()}
    out = tmp_path / "run"
    train(photo_cfg(photos, out, **before), progress=False)
    cfg = photo_cfg(photos, out, **{**before, **after})
    cfg["train"]["steps"] = 4
    train(cfg, resume=True, progress=False)
    resume = [r for r in read_log(out) if r.get("event") == "resume"][0]
    assert all(f"data.{k}" in resume["changed"] for k in after)
    assert (out / "checkpoints" / "step-00000004").exists()


def test_a_split_change_is_judged_by_the_settings_where_the_old_folder_is_gone(photos, tmp_path):
    """Without the old photos the old splits cannot be listed: a changed fraction is refused as before."""
    import shutil

    from trainer.fit import train
    from trainer.resume import ResumeConfigError

    first, moved = tmp_path / "first", tmp_path / "moved"
    shutil.copytree(photos[0], first)
    out = tmp_path / "run"
    train(photo_cfg((first, photos[1]), out, val_fraction=0.3), progress=False)
    first.rename(moved)
    cfg = photo_cfg((moved, photos[1]), out, val_fraction=0.05)
    cfg["train"]["steps"] = 4
    with pytest.raises(ResumeConfigError, match="changed data.val_fraction .*photos it has trained on.*--init-from"):
        train(cfg, resume=True, progress=False)


def test_an_old_data_table_today_s_code_cannot_build_leaves_the_splits_unlisted(photos):
    """A setting since removed from [data.synthesis] ended the resume in a TypeError's traceback."""
    from trainer.data import trained_photos_held_out

    data = {"root": str(photos[0]), "mask_dir": str(photos[1]), "val_fraction": 0.05}
    assert trained_photos_held_out({**data, "synthesis": {"old_knob": 1}}, {**data, "val_fraction": 0.5}) is None


@pytest.mark.parametrize("moved", [True, False])
def test_a_data_root_moved_to_the_folder_above_is_refused_where_it_holds_out_photos_trained_on(tmp_path, moved):
    """Trained on parent/photos, resumed with --data parent: the photos' names under the root changed, so did
    their splits, and photos trained on were scored as validation photos without a word. The same folder by
    another path (a link) is the same photos and resumes."""
    from procedural_portraits import write_photos

    from trainer.fit import train
    from trainer.resume import ResumeConfigError

    parent = tmp_path / "parent"
    write_photos(parent / "photos", 24, seed=4)
    (tmp_path / "link").symlink_to(parent / "photos")
    out = tmp_path / "run"
    train(resumed_cfg(parent / "photos", out, steps=2), progress=False)
    cfg = resumed_cfg(parent if moved else tmp_path / "link", out, steps=4)
    if moved:
        with pytest.raises(ResumeConfigError, match=r"changed data.root .*of the photos it has trained on would be "
                                                    r"held out \(first: .*parent/photos/.*--init-from"):
            train(cfg, resume=True, progress=False)
        assert not (out / "checkpoints" / "step-00000004").exists()
    else:
        train(cfg, resume=True, progress=False)
        assert (out / "checkpoints" / "step-00000004").exists()


def test_split_settings_are_those_that_move_photos_of_that_data_set(photos, shift_set, tmp_path):
    from trainer.data import split_settings
    from trainer.resume import check_resume_config

    folder = {"root": str(photos[0]), "mask_dir": str(photos[1])}
    assert set(split_settings(folder)) == {"data.test_fraction", "data.val_fraction", "data.val_root"}
    assert split_settings({**folder, "val_root": str(tmp_path)}) == ("data.test_fraction", "data.val_root")
    assert split_settings({"root": str(shift_set)}) == ()  # its val_split.txt says which photos validate
    old = {"data": {"val_root": "a", "val_fraction": 0.05}}
    new = {"data": {"val_root": "b", "val_fraction": 0.1}}  # other validation photos; the training ones stay
    assert set(check_resume_config(old, new, "ckpt", split_settings({**folder, "val_root": str(tmp_path)}))) == {
        "data.val_root", "data.val_fraction"}


def test_resume_applies_a_changed_learning_rate_and_says_so(two_steps, shift_set):
    from trainer.fit import train

    train(resumed_cfg(shift_set, two_steps, lr=5e-4, weight_decay=0.02), resume=True, progress=False)
    log = read_log(two_steps)
    assert [r["lr"] for r in log if r["type"] == "train"] == [1e-3, 1e-3, 5e-4, 5e-4]
    resume = [r for r in log if r.get("event") == "resume"][0]
    assert resume["changed"] == {"train.lr": [1e-3, 5e-4], "train.steps": [2, 4], "train.weight_decay": [0.0, 0.02]}
    state = torch.load(two_steps / "checkpoints" / "step-00000004" / "training_state.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    assert all(g["initial_lr"] == 5e-4 and g["weight_decay"] == 0.02 for g in groups)
    recorded = json.loads((two_steps / "run_config.json").read_text())
    assert recorded["train"]["lr"] == 5e-4 and recorded["train"]["weight_decay"] == 0.02


def test_resuming_from_an_older_checkpoint_starts_a_branch_and_sets_the_old_one_aside(shift_set, tmp_path, capsys):
    """After --resume step-2 of a run that went on to step 4, a plain --resume continues the new branch (it used to
    pick step 4 again, dropping the branch and its changed learning rate); nothing of the old branch is deleted."""
    from trainer.fit import train

    out = tmp_path / "run"
    train(resumed_cfg(shift_set, out, val_every=2), progress=False)
    old_log = (out / "log.jsonl").read_text()
    step2 = out / "checkpoints" / "step-00000002"
    train(resumed_cfg(shift_set, out, steps=3, lr=5e-4), resume=str(step2), progress=False)
    aside = out / "superseded" / "after-step-00000002"
    assert f"moved to {aside}" in capsys.readouterr().err
    assert sorted(p.name for p in aside.iterdir()) == ["best", "log.jsonl", "step-00000004"]
    assert (aside / "log.jsonl").read_text() == old_log
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002", "step-00000003"]
    assert (out / "latest").read_text() == "step-00000003\n"
    result = train(resumed_cfg(shift_set, out, steps=4, lr=5e-4), resume=True, progress=False)
    assert result["step"] == 4
    log = read_log(out)
    assert [r["from"] for r in log if r.get("event") == "resume"] == [str(step2),
                                                                     str(out / "checkpoints" / "step-00000003")]
    assert [(r["step"], r["lr"]) for r in log if r["type"] == "train"] == [(1, 1e-3), (2, 1e-3), (3, 5e-4),
                                                                            (4, 5e-4)]


def test_a_resume_sets_the_lr_of_the_schedules_own_position_not_of_the_steps_done():
    """fp16: the schedule does not advance on a step the GradScaler skipped, so it lags the step count; the lr a
    resume sets must be the one the uninterrupted run would use next (it was set from the step count)."""
    from trainer.optim import build_optimizer, build_scheduler
    from trainer.resume import apply_hyperparameters

    t = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0, "steps": 100, "warmup_steps": 10,
         "schedule": "cosine", "min_lr_ratio": 0.0}

    def fresh():
        opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], t)
        return opt, build_scheduler(opt, t)

    opt, sch = fresh()
    steps_done, skipped = 6, 2
    for _ in range(steps_done - skipped):  # the two skipped steps left the schedule where it was
        opt.step()
        sch.step()
    state = {"optimizer": opt.state_dict(), "scheduler": sch.state_dict()}
    going_on = opt.param_groups[0]["lr"]

    opt2, sch2 = fresh()
    opt2.load_state_dict(state["optimizer"])
    sch2.load_state_dict(state["scheduler"])
    apply_hyperparameters(opt2, sch2, t)
    assert opt2.param_groups[0]["lr"] == pytest.approx(going_on) == pytest.approx(1e-3 * 5 / 10)
    assert sch2.get_last_lr() == pytest.approx([going_on])
    opt.step(), sch.step(), opt2.step(), sch2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_a_resume_with_other_batches_starts_the_epoch_again_and_says_so(two_steps, shift_set, capsys):
    """Another batch size (or number of processes) shards the epoch differently: the resume went on to the next
    epoch, silently leaving out the rest of this one."""
    from trainer.fit import train

    before = torch.load(two_steps / "checkpoints" / "step-00000002" / "training_state.pt", weights_only=True)
    assert (before["epoch"], before["batch_in_epoch"]) == (0, 2)
    train(resumed_cfg(shift_set, two_steps, batch_size=2), resume=True, progress=False)
    state = torch.load(two_steps / "checkpoints" / "step-00000004" / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"]) == (0, 2)  # epoch 0 again, from its first batch
    assert ("this run has 1 with 2: epoch 0 starts again from its first batch (2 batches of it were trained on "
            "before)") in capsys.readouterr().err


def test_a_checkpoint_saved_at_an_epochs_end_by_an_older_version_resumes_with_the_next_epoch(shift_set, tmp_path):
    """Older versions saved the end of an epoch as (epoch, its number of batches); now it is (epoch + 1, 0).
    Both resume to the same batches."""
    from safetensors.torch import load_file

    from trainer.fit import train

    options = dict(steps=12, ckpt_every=8, val_every=0, batch_size=4, device="cpu")  # 32 photos: 8 per epoch
    full = tmp_path / "full"
    train(tiny_cfg(shift_set, full, **options), progress=False)
    part = tmp_path / "part"
    train(tiny_cfg(shift_set, part, **options), progress=False)
    import shutil

    shutil.rmtree(part / "checkpoints" / "step-00000012")
    path = part / "checkpoints" / "step-00000008" / "training_state.pt"
    state = torch.load(path, weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 0) and state["positions"] == [[1, 0]]
    state.update(epoch=0, batch_in_epoch=8, positions=[[0, 8]])  # as an older version wrote it
    torch.save(state, path)
    train(tiny_cfg(shift_set, part, **options), resume=True, progress=False)
    a = load_file(full / "checkpoints" / "step-00000012" / "model.safetensors")
    b = load_file(part / "checkpoints" / "step-00000012" / "model.safetensors")
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    end = torch.load(part / "checkpoints" / "step-00000012" / "training_state.pt", weights_only=True)
    assert (end["epoch"], end["batch_in_epoch"]) == (1, 4)  # where a further resume must start


def test_a_fork_from_another_runs_checkpoint_writes_its_own_best(shift_set, tmp_path, capsys):
    """The fork took the source run's best score, whose weights are not in it: a branch that never beat that
    score ended with no best/ (evaluate --weights RUN/best failed, a push uploaded the last step)."""
    from trainer.fit import train

    base = tmp_path / "base"
    train(resumed_cfg(shift_set, base, val_every=2), progress=False)
    fork = tmp_path / "fork"
    train(resumed_cfg(shift_set, fork, steps=4, val_every=2, lr=1e-12), resume=str(base / "checkpoints" /
                                                                                      "step-00000002"),
          progress=False)
    assert "this run has no best/" in capsys.readouterr().err
    assert (fork / "best").is_dir()


@pytest.mark.parametrize("kind", ["folder", "ffhqh"])
def test_a_resume_with_other_validation_composites_scores_best_afresh(photos, shift_set, tmp_path, capsys,
                                                                      monkeypatch, kind):
    """best/ was held to a score of the old composites: after a data.seed change no score beat it, best/ froze,
    and patience stopped the run early. An FFHQH set's validation composites are files the seed does not make:
    its best score was dropped all the same, and best/ overwritten by worse weights."""
    import trainer.loop
    from trainer.fit import train

    scores = iter([100.0, 200.0])  # the resumed run validates worse
    monkeypatch.setattr(trainer.loop, "validate", lambda *a, **k: {"n": 4, "fmse": next(scores), "mse": 1.0})
    run = tmp_path / "run"

    def cfg(**train):
        made = resumed_cfg(photos[0] if kind == "folder" else shift_set, run, val_every=2, **train)
        if kind == "folder":
            made["data"]["mask_dir"] = str(photos[1])
        return made

    train(cfg(steps=2), progress=False)
    resumed = cfg(steps=4)
    resumed["data"]["seed"] = 7
    capsys.readouterr()
    train(resumed, resume=True, progress=False)
    said = "the validation data changed (data.seed)" in capsys.readouterr().err
    assert said == (kind == "folder")
    assert json.loads((run / "best" / "checkpoint.json").read_text())["step"] == (4 if kind == "folder" else 2)


def test_going_back_to_a_checkpoint_without_out_stays_in_its_run(shift_set, tmp_path, monkeypatch):
    """--resume <run>/checkpoints/step-N without --out trained in the config's own folder (runs/tiny), leaving
    the run it named as it was."""
    from trainer.fit import main

    monkeypatch.chdir(tmp_path)
    common = ["--config", "tiny_cpu", "--data", str(shift_set), "--no-progress", "--set", "data.num_workers=0",
              "--set", "train.ckpt_every=2", "--set", "train.val_every=0", "--set", "train.warmup_steps=0"]
    assert main([*common, "--out", str(tmp_path / "run"), "--steps", "4"]) == 0
    assert main([*common, "--steps", "3", "--resume", str(tmp_path / "run" / "checkpoints" / "step-00000002")]) == 0
    assert (tmp_path / "run" / "superseded" / "after-step-00000002").is_dir()
    assert (tmp_path / "run" / "checkpoints" / "step-00000003").is_dir() and not (tmp_path / "runs").exists()


def test_a_resume_tells_the_validation_photos_by_their_files_not_by_how_the_folder_is_written(shift_set, tmp_path,
                                                                                              capsys):
    """A trailing slash on the data folder, or a training-only setting (identity_pairs), dropped the best score;
    photos added to the folder changed the validation set without a word."""
    from trainer.fit import train

    run = tmp_path / "run"
    train(resumed_cfg(shift_set, run, steps=2, val_every=2), progress=False)
    cfg = resumed_cfg(shift_set, run, steps=4, val_every=2, lr=1e-12)
    cfg["data"]["root"] = str(shift_set) + "/"
    cfg["data"]["identity_pairs"] = 0.2
    capsys.readouterr()
    train(cfg, resume=True, progress=False)
    assert "the validation data changed" not in capsys.readouterr().err
    state = torch.load(run / "checkpoints" / "step-00000004" / "training_state.pt", weights_only=True)
    assert isinstance(state["validation_photos"], str)


def test_validation_photos_are_told_by_their_files(tmp_path):
    import types

    from torch.utils.data import Subset

    from trainer.data.common import Record
    from trainer.resume import validation_changes
    from trainer.validation import validation_photos

    for name in "abc":
        (tmp_path / f"{name}.png").write_bytes(b"x" * 10)
    records = [Record(name, tmp_path / f"{name}.png") for name in "abc"]
    before = validation_photos(types.SimpleNamespace(records=records[:2]))
    assert validation_photos(types.SimpleNamespace(records=[Record(r.name, Path(f"{tmp_path}/./{r.real.name}"))
                                                            for r in records[:2]])) == before
    assert validation_photos(Subset(Subset(types.SimpleNamespace(records=records), [0, 1, 2]), [0, 1])) == before
    assert validation_photos(types.SimpleNamespace(records=records)) != before  # a photo added
    (tmp_path / "b.png").write_bytes(b"y" * 12)  # replaced by another
    assert validation_photos(types.SimpleNamespace(records=records[:2])) != before
    moved = {"data.root": ("set", "set/"), "data.max_samples": (0, 1000), "data.val_fraction": (0.05, 0.05001)}
    assert validation_changes(moved) == list(moved)  # an older checkpoint does not say: each counts
    assert validation_changes(moved, same_photos=True) == []  # keys that choose the photos chose the same ones
    assert validation_changes(moved, same_photos=False) == ["the validation photos"]
    assert validation_changes({"data.identity_pairs": (0.0, 0.2)}) == []
    made = {"data.seed": (0, 1), "data.synthesis.max_transforms": (3, 2), "data.synthesis.on_device": (False, True)}
    assert validation_changes(made, same_photos=True) == ["data.seed", "data.synthesis.max_transforms"]
    made["data.resize"] = ("stretch", "pad")  # files of a ready set are still made square another way
    assert validation_changes(made, same_photos=True, synthesized=False) == ["data.resize"]
    assert validation_changes(made, synthesized=False) == ["data.resize"]


def test_resuming_a_run_folder_named_by_config_continues_that_folder(shift_set, tmp_path, monkeypatch):
    """--config RUN --resume trained in the folder RUN recorded: a copy resumed its original, a moved run
    started afresh in the old place."""
    import shutil

    from trainer.fit import main

    monkeypatch.chdir(tmp_path)
    common = ["--data", str(shift_set), "--no-progress", "--set", "data.num_workers=0", "--set",
              "train.ckpt_every=2", "--set", "train.val_every=0", "--set", "train.warmup_steps=0"]
    assert main(["--config", "tiny_cpu", *common, "--out", str(tmp_path / "run"), "--steps", "2"]) == 0
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    assert main(["--config", str(tmp_path / "copy"), *common, "--resume", "--steps", "4"]) == 0
    assert (tmp_path / "copy" / "checkpoints" / "step-00000004").is_dir()
    assert not (tmp_path / "run" / "checkpoints" / "step-00000004").exists()
    # --overwrite replaces the folder named, not the one a fresh copy recorded (its original, deleted before)
    assert main(["--config", "tiny_cpu", *common, "--out", str(tmp_path / "run"), "--steps", "4", "--resume"]) == 0
    shutil.copytree(tmp_path / "run", tmp_path / "copy2")
    assert main(["--config", str(tmp_path / "copy2"), *common, "--overwrite", "--steps", "2"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "step-00000004").is_dir()
    assert not (tmp_path / "copy2" / "checkpoints" / "step-00000004").exists()


def test_a_plain_start_with_a_copied_run_as_config_names_the_copy_as_the_folder_taken(shift_set, tmp_path, capsys):
    """It named the original (the folder the copy recorded), so --overwrite, as told, deleted another folder."""
    import shutil

    from trainer.fit import main

    common = ["--data", str(shift_set), "--no-progress", "--set", "data.num_workers=0", "--set", "train.val_every=0",
              "--set", "train.warmup_steps=0"]
    assert main(["--config", "tiny_cpu", *common, "--out", str(tmp_path / "run"), "--steps", "2"]) == 0
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    capsys.readouterr()
    assert main(["--config", str(tmp_path / "copy"), *common, "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "copy") in err and str(tmp_path / "run") not in err


def test_a_suggested_path_is_one_word_for_the_shell_it_is_pasted_into():
    """On Windows only spaces were quoted: cmd split C:\\R&D at its &."""
    from trainer.run_folder import shell_word

    assert shell_word("/runs/my run/best", windows=False) == "'/runs/my run/best'"
    assert shell_word(r"C:\R&D\runs\best", windows=True) == r'"C:\R&D\runs\best"'
    assert shell_word(r"C:\runs\best", windows=True) == r"C:\runs\best"


def test_a_resume_puts_the_new_config_s_lr_betas_and_weight_decay_into_the_restored_optimizer():
    """The restored state holds the old hyperparameters; a table without betas means the default ones."""
    from trainer.optim import build_optimizer, build_scheduler
    from trainer.resume import apply_hyperparameters

    old = {"optimizer": "lion", "lr": 1e-3, "betas": [0.5, 0.6], "weight_decay": 0.1, "steps": 10,
           "schedule": "constant"}
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))], old)
    sch = build_scheduler(opt, old)
    new = {"optimizer": "lion", "lr": "2e-4", "weight_decay": 0.0, "steps": 10, "schedule": "constant"}
    apply_hyperparameters(opt, sch, new)
    assert [(g["lr"], g["initial_lr"], g["betas"], g["weight_decay"]) for g in opt.param_groups] == [
        (2e-4, 2e-4, (0.9, 0.99), 0.0)]
    assert sch.base_lrs == [2e-4] and sch.get_last_lr() == [2e-4]
