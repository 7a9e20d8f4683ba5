"""trainer.builders.synthetic_set: a synthetic set on disk, in the FFHQH layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers.interrupts import exit_code, interrupted_at


def test_synth_cli_writes_ffhqh_layout(tmp_path, photos):
    from trainer.data import build_dataset
    from trainer.builders.synthetic_set import main

    img_dir, mask_dir = photos
    out = tmp_path / "set"
    assert main([str(img_dir), str(out), "--size", "32", "--mask-dir", str(mask_dir), "--copies", "2",
                 "--val-fraction", "0.2", "--test-fraction", "0.2", "--no-progress"]) == 0
    info = json.loads((out / "synth_info.json").read_text())
    total = info["train_samples"] + info["val_samples"] + info["test_samples"]
    assert total == 2 * 24 and info["val_samples"] and info["test_samples"]
    lines = {s: (out / f"{s}_split.txt").read_text().split() for s in ("train", "val", "test")}
    photos_per_split = [{n.rsplit("_", 1)[0] for n in v} for v in lines.values()]
    assert not (photos_per_split[0] & photos_per_split[1]) and not (photos_per_split[0] & photos_per_split[2])
    name = lines["train"][0]
    comp = np.asarray(Image.open(out / "comp" / name), dtype=float)
    real = np.asarray(Image.open(out / "real" / name), dtype=float)
    alpha = np.asarray(Image.open(out / "alpha" / name)) > 127
    assert comp.shape == (32, 32, 3) and np.abs(comp - real)[~alpha].max() == 0
    ds = build_dataset({"root": str(out), "image_size": 32}, "test")
    assert len(ds) == info["test_samples"] and ds[0]["comp"].shape == (3, 32, 32)
    # rebuilt from the same photos and seed: identical files
    out2 = tmp_path / "again"
    main([str(img_dir), str(out2), "--size", "32", "--mask-dir", str(mask_dir), "--copies", "2",
          "--val-fraction", "0.2", "--test-fraction", "0.2", "--no-progress"])
    assert (out2 / "comp" / name).read_bytes() == (out / "comp" / name).read_bytes()


def test_a_folder_with_no_readable_picture_is_an_error(tmp_path, capsys):
    """It wrote an empty set and exited 0; the error came later, from trainer.fit."""
    import warnings

    from trainer.builders.synthetic_set import main

    for i in range(3):
        (tmp_path / "photos").mkdir(exist_ok=True)
        (tmp_path / "photos" / f"p{i}.png").write_bytes(b"not a picture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([str(tmp_path / "photos"), str(tmp_path / "set"), "--size", "32", "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: none of the 3 pictures under {tmp_path / 'photos'} could be read (the warnings above say why); "
        f"no composite was written to {tmp_path / 'set'}")


def test_photos_whose_names_differ_only_by_extension_each_keep_their_own_files():
    """x.jpg and x.png were both written as x_0.png: one photo's composites went to the other's split."""
    from trainer.builders.synthetic_set import _file_bases

    keys = ["chelsea.jpg", "chelsea.png", "a/x.jpg", "a__x.jpg", "chelsea_jpg.png", "solo.png"]
    bases = _file_bases(keys)
    assert len(set(bases.values())) == len(keys)
    assert bases["solo.png"] == "solo" and bases["chelsea_jpg.png"] == "chelsea_jpg"  # unchanged where unique
    assert bases["chelsea.jpg"] == "chelsea_jpg_1" and bases["chelsea.png"] == "chelsea_png"
    # a name starting with # was written into the split files, where the line read as a comment
    assert _file_bases(["#3.png", "#3.jpg", "#4.png"]) == {"#3.png": "_#3_png", "#3.jpg": "_#3_jpg", "#4.png": "_#4"}
    # split files are read stripped: a name starting with a space was listed but never found
    assert _file_bases([" holiday/beach.png", "x .png"]) == {" holiday/beach.png": "_holiday__beach", "x .png": "x_"}


def test_a_photo_whose_joined_name_is_too_long_for_a_file_gets_a_shortened_one(tmp_path, photos):
    """A photo in subfolders whose names joined into its own passed 255 bytes stopped the whole build with
    "File name too long", naming the hidden folder it is built in."""
    import shutil

    from trainer.builders.synthetic_set import main
    from trainer.data import build_dataset

    img_dir, _ = photos
    src = tmp_path / "photos"
    deep = src / ("a" * 120) / ("b" * 120)
    deep.mkdir(parents=True)
    first, second = sorted(img_dir.iterdir())[:2]
    shutil.copy(first, deep / "portrait.png")
    shutil.copy(second, src / "short.png")
    assert main([str(src), str(tmp_path / "set"), "--size", "32", "--copies", "2", "--val-fraction", "0",
                 "--test-fraction", "0", "--no-progress"]) == 0
    names = (tmp_path / "set" / "train_split.txt").read_text().split()
    assert len(names) == 4 and {"short_0.png", "short_1.png"} < set(names)
    long = [n for n in names if n.startswith("a" * 120 + "__")]
    assert len(long) == 2 and all(len(n.encode()) < 255 for n in long)
    assert len(build_dataset({"root": str(tmp_path / "set"), "val_fraction": 0}, "train", image_size=32)) == 4


def test_a_split_emptied_by_skipped_photos_is_an_error(tmp_path, photos, capsys):
    """The only validation photo was unreadable: the set was written with no val split, and trainer.fit's error then
    named a setting that does nothing for such a set."""
    import shutil
    import warnings

    from trainer.builders.synthetic_set import main
    from trainer.data.common import holdout_set

    img_dir, _ = photos
    src = tmp_path / "photos"
    shutil.copytree(img_dir, src)
    keys = sorted(p.name for p in src.iterdir())
    val = [k[4:] for k in holdout_set(["val:" + k for k in keys], 0.05)]
    assert val
    for name in val:
        (src / name).write_bytes(b"not a picture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([str(src), str(tmp_path / "set"), "--size", "32", "--val-fraction", "0.05", "--test-fraction",
                     "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the val split of the set would be empty: its photos were skipped" in err
    assert "--val-fraction 0 (training then carves its own validation split)" in err and "--seed" not in err
    assert not (tmp_path / "set").exists()


def test_a_set_whose_train_split_is_one_photo_says_why_training_has_no_validation(tmp_path, photos):
    """The error told to raise data.val_fraction (it was 0.05) or give data.val_root (ignored for such sets)."""
    import shutil

    from trainer.builders.synthetic_set import main
    from trainer.data import build_dataset

    img_dir, _ = photos
    src = tmp_path / "photos"
    src.mkdir()
    for p in sorted(img_dir.iterdir())[:2]:
        shutil.copy(p, src / p.name)
    assert main([str(src), str(tmp_path / "set"), "--size", "32", "--val-fraction", "0", "--test-fraction", "0.5",
                 "--no-progress"]) == 0
    with pytest.raises(ValueError, match="no validation list, and its train split has too few photos to carve one"):
        build_dataset({"root": str(tmp_path / "set"), "val_fraction": 0.05}, "val", image_size=32)


def test_a_mask_folder_that_does_not_exist_or_matches_no_photo_is_an_error(tmp_path, photos, capsys):
    """As for trainer.fit's data.mask_dir; the builder fell back to the ellipse in silence."""
    from trainer.builders.synthetic_set import main

    img_dir, mask_dir = photos
    assert main([str(img_dir), str(tmp_path / "a"), "--size", "32", "--mask-dir", str(tmp_path / "none"),
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --mask-dir: the folder {tmp_path / 'none'} does not exist; correct it or leave it out")
    (tmp_path / "masks.zip").write_bytes(b"PK")  # a file, not a folder: it was said not to exist
    assert main([str(img_dir), str(tmp_path / "a"), "--size", "32", "--mask-dir", str(tmp_path / "masks.zip"),
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --mask-dir: {tmp_path / 'masks.zip'} is a file, not a folder: give the folder that holds the masks")
    (tmp_path / "other").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "other" / "not-a-photo.png")
    assert main([str(img_dir), str(tmp_path / "b"), "--size", "32", "--mask-dir", str(tmp_path / "other"),
                 "--no-progress"]) == 2
    assert "--mask-dir: no photo under" in capsys.readouterr().err
    # the photo folder itself (or one holding it): every photo was dropped as a mask, "no images under" it
    for folder in (img_dir, img_dir.parent):
        assert main([str(img_dir), str(tmp_path / "c"), "--size", "32", "--mask-dir", str(folder),
                     "--no-progress"]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"error: --mask-dir: the mask folder {folder} is the photo folder {img_dir} itself (or holds it), so "
            "every photo would be taken for a mask: put the masks in a folder of their own")


def test_a_rebuild_replaces_the_set_whole_and_other_folders_are_refused(tmp_path, photos, capsys):
    """A rebuild wrote over the old set in place: an interrupted one mixed old and new composites under the
    old split files. Now the set is built beside its folder and put in place whole."""
    from trainer.builders.synthetic_set import main

    img_dir, mask_dir = photos
    out = tmp_path / "set"
    args = [str(img_dir), str(out), "--size", "32", "--mask-dir", str(mask_dir), "--no-progress"]
    assert main(args + ["--copies", "2"]) == 0 and len(list((out / "comp").iterdir())) == 48
    assert "replaces it" not in capsys.readouterr().err
    assert main(args) == 0 and len(list((out / "comp").iterdir())) == 24
    assert f"{out} holds an earlier synthetic set: this build replaces it" in capsys.readouterr().err  # it was silent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    assert main([str(img_dir), str(notes), "--size", "32", "--no-progress"]) == 2
    assert "holds files that are not a synthetic set this builder made" in capsys.readouterr().err
    assert (notes / "todo.txt").read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--copies", "0"], "--copies must be at least 1, got 0"),
    (["--val-fraction", "1.5"], "--val-fraction must be from 0 to 1, got 1.5"),
    (["--val-fraction", "0.6", "--test-fraction", "0.6"], "add up to 1.2: at most 1"),
    (["--size", "-8"], "--size must be a multiple of 8 above 0"),
    (["--limit", "-3"], "--limit must be a number of photos"),
    (["--identity-fraction", "1.5", "--mild-fraction", "-0.6"], "--identity-fraction must be from 0 to 1, got 1.5"),
    (["--mild-fraction", "-0.1"], "--mild-fraction must be from 0 to 1, got -0.1"),
    (["--identity-fraction", "0.6", "--mild-fraction", "0.6"], "--identity-fraction and --mild-fraction add up to 1.2"),
    (["--transforms", ","], "--transforms names no transform: give a comma-separated subset of transfer,"),
    (["--transforms", "gamma,curve,gamma"], "--transforms names gamma more than once: list each transform once"),
])
def test_settings_that_make_no_set_are_refused(tmp_path, photos, capsys, args, message):
    """--copies 0 wrote an empty set and exited 0; --val-fraction 1.5 was taken; --size -8 ended in a traceback;
    --identity-fraction 1.5 with --mild-fraction -0.6 made every composite its photo; their sum and --transforms
    were named by config keys (data.synthesis.transforms), which the builder has no table of."""
    from trainer.builders.synthetic_set import main

    assert main([str(photos[0]), str(tmp_path / "set"), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_photos_and_set_never_nest(tmp_path, capsys):
    """A set built inside its photo folder was read as photos by the next build; photos inside an existing
    set's folder were deleted with the old set when it was rebuilt."""
    from trainer.builders.synthetic_set import main

    photos = tmp_path / "set" / "myphotos"
    photos.mkdir(parents=True)
    Image.new("RGB", (40, 40), (120, 80, 60)).save(photos / "a.png")
    (tmp_path / "set" / "synth_info.json").write_text("{}")  # an earlier set in that folder
    assert main([str(photos), str(tmp_path / "set"), "--size", "32", "--no-progress"]) == 2
    assert "are inside the output folder" in capsys.readouterr().err and (photos / "a.png").exists()
    assert main([str(photos), str(photos / "synth"), "--size", "32", "--no-progress"]) == 2
    assert "is inside the photo folder" in capsys.readouterr().err


def test_a_set_built_without_val_or_test_carves_its_val_and_names_the_missing_test(tmp_path, photos):
    """Empty val/test lists were written: training could not carve a val split (data.val_fraction was ignored),
    and the errors told the user to set fractions that could not apply."""
    from trainer.builders.synthetic_set import main
    from trainer.data import build_dataset

    img_dir, mask_dir = photos
    out = tmp_path / "set"
    assert main([str(img_dir), str(out), "--size", "32", "--mask-dir", str(mask_dir), "--val-fraction", "0",
                 "--test-fraction", "0", "--copies", "3", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*_split.txt")) == ["train_split.txt"]
    val = build_dataset({"root": str(out), "image_size": 32, "val_fraction": 0.2}, "val")
    train = build_dataset({"root": str(out), "image_size": 32, "val_fraction": 0.2}, "train")
    photo = lambda ds: {r.name.rsplit("_", 1)[0] for r in ds.records}  # noqa: E731
    assert len(val) and len(train) and not photo(val) & photo(train)  # a photo's copies on one side only
    with pytest.raises(FileNotFoundError, match="built by trainer.builders.synthetic_set with --test-fraction 0"):
        build_dataset({"root": str(out), "image_size": 32}, "test")


def test_a_set_whose_listed_validation_files_are_gone_says_so_not_that_it_has_no_list(tmp_path, photos):
    import shutil
    import warnings

    from trainer.builders.synthetic_set import main
    from trainer.data import build_dataset

    img_dir, _ = photos
    src = tmp_path / "photos"
    shutil.copytree(img_dir, src)
    assert main([str(src), str(tmp_path / "set"), "--size", "32", "--val-fraction", "0.1", "--test-fraction", "0",
                 "--no-progress"]) == 0
    for name in (tmp_path / "set" / "val_split.txt").read_text().split():
        (tmp_path / "set" / "real" / name).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="its validation list names no usable sample"):
            build_dataset({"root": str(tmp_path / "set"), "on_bad_sample": "skip"}, "val", image_size=32)


def test_copies_of_a_photo_that_land_in_two_splits_are_named(tmp_path):
    """A photo and its re-encoded copy under another name went to train and test without a word (fit's own
    check reads folders of photos only)."""
    import json
    import warnings

    from PIL import Image
    from procedural_portraits import portrait

    from trainer.builders.synthetic_set import main

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(8):
        img, _ = portrait(np.random.default_rng(i), 48, 48)
        Image.fromarray(img).save(src / f"p{i}.png")
        Image.fromarray(img).save(src / f"p{i} copy.jpg", quality=92)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(src), str(tmp_path / "set"), "--size", "32", "--val-fraction", "0.2", "--test-fraction",
                     "0.2", "--no-progress"]) == 0
    where = {}
    for split in ("train", "val", "test"):
        listed = tmp_path / "set" / f"{split}_split.txt"
        for name in (listed.read_text().split("\n") if listed.exists() else []):
            if name:
                where[name.rsplit(".", 1)[0]] = split
    apart = [i for i in range(8) if where[f"p{i}"] != where[f"p{i} copy"]]
    assert apart  # these names carve some copies apart
    info = json.loads((tmp_path / "set" / "synth_info.json").read_text())
    assert len(info["copies_across_splits"]) == len(apart)
    assert any("have a near-duplicate in another split" in str(w.message) for w in caught)


def test_the_near_duplicate_warning_counts_held_out_photos_not_pairs(tmp_path):
    """Copies of one picture gave a pair per copy in another split, counted as that many photos."""
    import warnings

    from PIL import Image
    from procedural_portraits import portrait

    from trainer.builders.synthetic_set import main

    src = tmp_path / "photos"
    src.mkdir()
    img, _ = portrait(np.random.default_rng(0), 48, 48)
    for i in range(12):
        Image.fromarray(img).save(src / f"same{i}.png")
        Image.fromarray(portrait(np.random.default_rng(100 + i), 48, 48)[0]).save(src / f"other{i}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(src), str(tmp_path / "set"), "--size", "32", "--val-fraction", "0.2", "--test-fraction",
                     "0.2", "--no-progress"]) == 0
    held = [name for split in ("val", "test") if (tmp_path / "set" / f"{split}_split.txt").exists()
            for name in (tmp_path / "set" / f"{split}_split.txt").read_text().split() if name.startswith("same")]
    info = json.loads((tmp_path / "set" / "synth_info.json").read_text())
    assert held and len(info["copies_across_splits"]) > len(held)
    said = [str(w.message) for w in caught if "near-duplicate in another split" in str(w.message)]
    assert said and said[0].startswith(f"{len(held)} held-out photo(s) have a near-duplicate")


def test_a_pool_is_refused_and_one_of_its_splits_is_read_with_its_masks(tmp_path):
    """A pool was read as a plain folder: its masks became photos with ellipse masks, and its test and val photos
    landed in the set's train split."""
    from tests.trainer.test_data import _pool
    from trainer.builders.synthetic_set import build_synthetic_set

    pool = _pool(tmp_path / "pool", (("train", 6), ("test", 2)))
    with pytest.raises(ValueError, match=rf"^{pool} is a pool \(manifest.json\) with the splits test, train: .* Build "
                                         rf"from one split folder \({pool / 'test'}\), whose masks/ are read as"):
        build_synthetic_set(pool, tmp_path / "set", size=32)
    info = build_synthetic_set(pool / "train", tmp_path / "set", size=32, mask_fallback="error",
                               on_bad_sample="error", val_fraction=0.2, test_fraction=0.2)
    assert info["photos"] == 6
    names = sorted(n for s in ("train", "val", "test") if (tmp_path / "set" / f"{s}_split.txt").exists()
                   for n in (tmp_path / "set" / f"{s}_split.txt").read_text().split())
    assert names == [f"train{i}.png" for i in range(6)]
    alpha = np.asarray(Image.open(tmp_path / "set" / "alpha" / "train0.png")) > 127
    mask = np.asarray(Image.open(pool / "train" / "masks" / "train0.png")) > 127
    assert (alpha == mask).mean() > 0.95  # the pool's own mask, not an ellipse


def test_a_photo_folder_that_is_missing_or_a_file_is_named_as_such(tmp_path, photos, capsys):
    """Both were "no images under" the path, as for a folder that holds no picture."""
    from trainer.builders.synthetic_set import main

    picture = next(photos[0].iterdir())
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "set"), "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: the photo folder {tmp_path / 'nowhere'} does not exist: correct the path")
    assert main([str(picture), str(tmp_path / "set"), "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {picture} is a file, not a folder: give the folder that holds the photos")
    assert not (tmp_path / "set").exists()


def test_a_folder_of_masks_given_as_the_photos_is_refused(tmp_path, photos, capsys):
    """Its masks were synthesised into a set of composites of black-and-white pictures, and the build exited 0;
    as the photos of a swapped --mask-dir, the photos were their masks' masks."""
    import shutil
    import warnings

    from trainer.builders.synthetic_set import main

    img_dir, mask_dir = photos
    mask_dir = shutil.copytree(mask_dir, tmp_path / "masks")
    for args in ([str(mask_dir)], [str(mask_dir), "--mask-dir", str(img_dir)]):
        assert main([*args[:1], str(tmp_path / "set"), "--size", "32", "--no-progress", *args[1:]]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"error: every picture under {mask_dir} is a black-and-white mask, not a photo: give the folder of "
            "photos, and their masks with --mask-dir")
    assert not (tmp_path / "set").exists()
    # a photo among them is built from (a black-and-white drawing beside it is its own business)
    Image.open(next(img_dir.iterdir())).save(mask_dir / "zz-photo.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the masks look alike: near-duplicates across splits
        assert main([str(mask_dir), str(tmp_path / "set"), "--size", "32", "--no-progress"]) == 0


def test_ctrl_c_midway_ends_with_one_line_and_keeps_the_earlier_set(tmp_path, photos, capsys, monkeypatch):
    """It ended in a traceback (the earlier set was kept, but the output did not say so)."""
    from trainer.builders import synthetic_set

    out = tmp_path / "set"
    args = [str(photos[0]), str(out), "--size", "32", "--no-progress"]
    assert synthetic_set.main(args) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    monkeypatch.setattr(synthetic_set, "_png", interrupted_at(7, synthetic_set._png))
    assert exit_code(lambda: synthetic_set.main(args + ["--copies", "2"])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: interrupted; {out} is as it was before this build: run it again to build the set")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_a_folder_of_0_1_masks_given_as_the_photos_is_refused_as_masks_too(tmp_path, capsys):
    """Masks saved as 0 and 1 (not 0 and 255) were taken for photos: the CLI's rule read them as masks, this one
    did not."""
    from trainer.builders.synthetic_set import main

    masks = tmp_path / "ones"
    masks.mkdir()
    for i in range(3):
        m = np.zeros((40, 40), np.uint8)
        m[5 + i : 30, 8:32] = 1
        Image.fromarray(m).save(masks / f"m{i}.png")
    assert main([str(masks), str(tmp_path / "set"), "--size", "32", "--no-progress"]) == 2
    assert "is a black-and-white mask, not a photo" in capsys.readouterr().err


def test_a_black_and_white_portrait_on_a_white_backdrop_is_a_photo_not_a_mask(tmp_path):
    """A grey portrait, nine tenths studio white, was refused as a folder of masks."""
    from trainer.builders.synthetic_set import _all_masks

    yy, xx = np.mgrid[:96, :96]
    grey = np.full((96, 96), 238, np.uint8)
    face = (yy - 50) ** 2 + (xx - 48) ** 2 < 15**2
    grey[face] = (60 + 2 * xx[face]).astype(np.uint8)  # its shades, a tenth of the picture
    grey[40:42, 40:56] = 10
    Image.fromarray(grey).save(tmp_path / "portrait.png")
    assert not _all_masks([tmp_path / "portrait.png"])
    Image.fromarray(np.where(face, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
    assert _all_masks([tmp_path / "mask.png"])
