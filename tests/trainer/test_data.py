"""Data-set layouts, splits, geometry and the bad-sample policy."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from procedural_portraits import portrait
from trainer.data import BadSampleError, build_dataset, collate, detect_kind


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_iharmony(root: Path, subsets=("HCOCO", "HFlickr"), n_real=6, with_val=False) -> dict:
    rng = np.random.default_rng(0)
    lines = {}
    for s in subsets:
        train, test = [], []
        for r in range(n_real):
            img, mask = portrait(rng, 40, 48)
            _save(root / s / "real_images" / f"a{r:04d}.jpg", img)
            _save(root / s / "masks" / f"a{r:04d}_1.png", mask)
            for k in (1, 2):
                comp = np.clip(img.astype(int) + (mask[..., None] > 0) * 40 * k, 0, 255).astype(np.uint8)
                name = f"a{r:04d}_1_{k}.jpg"
                _save(root / s / "composite_images" / name, comp)
                (test if r == 0 else train).append(name)
        (root / s / f"{s}_train.txt").write_text("\n".join(train) + "\n")
        (root / s / f"{s}_test.txt").write_text("\n".join(test) + "\n")
        if with_val:
            (root / s / f"{s}_val.txt").write_text(train[0] + "\n")
        lines[s] = (train, test)
    return lines


def test_iharmony_layout_name_mapping_and_splits(tmp_path):
    lines = make_iharmony(tmp_path)
    assert detect_kind(tmp_path) == "iharmony"
    data = {"root": str(tmp_path), "image_size": 32, "val_fraction": 0.4}
    test = build_dataset(data, "test")
    assert len(test) == 4 and {r.subset for r in test.records} == {"HCOCO", "HFlickr"}
    rec = test.records[0]
    assert rec.comp.name == "a0000_1_1.jpg" and rec.mask.name == "a0000_1.png" and rec.real.name == "a0000.jpg"
    train, val = build_dataset(data, "train"), build_dataset(data, "val")
    assert len(train) + len(val) == sum(len(t) for t, _ in lines.values())
    # carved deterministically and by real photo: both composites of a photo on the same side
    real_train = {(r.subset, r.real.stem) for r in train.records}
    real_val = {(r.subset, r.real.stem) for r in val.records}
    assert real_val and not (real_train & real_val)
    assert [r.name for r in build_dataset(data, "val").records] == [r.name for r in val.records]
    one = build_dataset({**data, "subsets": ["HFlickr"]}, "test")
    assert {r.subset for r in one.records} == {"HFlickr"}
    s = train[0]
    assert s["comp"].shape == (3, 32, 32) and s["mask"].shape == (1, 32, 32)
    assert set(torch.unique(s["mask"]).tolist()) <= {0.0, 1.0}


def test_iharmony_official_val_list_is_used(tmp_path):
    make_iharmony(tmp_path, subsets=("Hday2night",), with_val=True)
    val = build_dataset({"root": str(tmp_path), "image_size": 32}, "val")
    assert [r.name for r in val.records] == ["Hday2night/a0001_1_1.jpg"]


def test_a_split_list_saved_with_a_byte_order_mark_is_read_whole(tmp_path):
    """Notepad and PowerShell 5 write UTF-8 with a BOM: the first name became a missing file that looked right."""
    make_iharmony(tmp_path, subsets=("Hday2night",), with_val=True)
    listed = tmp_path / "Hday2night" / "Hday2night_val.txt"
    listed.write_bytes(b"\xef\xbb\xbf" + listed.read_bytes())
    val = build_dataset({"root": str(tmp_path), "image_size": 32}, "val")
    assert [r.name for r in val.records] == ["Hday2night/a0001_1_1.jpg"]


def test_one_iharmony_subset_copied_under_another_name_is_read_by_its_lists(tmp_path):
    """The README's resized copy (HFlickr_256) asked for HFlickr_256_train.txt; data.subsets went unheard."""
    make_iharmony(tmp_path, subsets=("HFlickr",))
    (tmp_path / "HFlickr").rename(tmp_path / "HFlickr_256")
    data = {"root": str(tmp_path / "HFlickr_256"), "image_size": 32}
    test = build_dataset(data, "test")
    assert len(test) == 2 and {r.subset for r in test.records} == {"HFlickr"}
    with pytest.raises(ValueError, match=r"is itself the subset HFlickr; point data.root at the folder"):
        build_dataset({**data, "subsets": ["HCOCO"]}, "test")


def test_an_iharmony_val_list_is_not_trained_on_and_must_not_list_test_composites(tmp_path, capsys):
    """The official trainer asks for <Subset>_val.txt, made from the train list: its composites, and every other
    composite of the same photos, leave the train split."""
    lines = make_iharmony(tmp_path, subsets=("HCOCO",), with_val=True)  # val: a0001_1_1.jpg
    data = {"root": str(tmp_path), "image_size": 32}
    train = [r.name for r in build_dataset(data, "train").records]
    assert [r.name for r in build_dataset(data, "val").records] == ["HCOCO/a0001_1_1.jpg"]
    assert train == [f"HCOCO/{n}" for n in lines["HCOCO"][0] if not n.startswith("a0001_")]
    assert "2 composites of HCOCO_train.txt are of photos in HCOCO_val.txt" in capsys.readouterr().err
    (tmp_path / "HCOCO" / "HCOCO_val.txt").write_text("a0002_1_1.jpg\na0000_1_2.jpg\n")  # a test composite
    for split in ("train", "val", "test"):
        with pytest.raises(ValueError, match=r"HCOCO_val.txt lists 1 composite\(s\) of HCOCO_test.txt \(first: "
                                             r"a0000_1_2.jpg\).*HCOCO_train.txt"):
            build_dataset(data, split)


def test_max_samples_is_a_fixed_spread_of_the_split_not_its_first_records(tmp_path):
    """iHarmony4 lists HCOCO first: the first N of a split were all HCOCO."""
    from trainer.data.common import spread_sample

    make_iharmony(tmp_path, subsets=("HCOCO", "HFlickr"), n_real=10)
    data = {"root": str(tmp_path), "image_size": 32, "val_fraction": 0.2}
    everyone = [r.name for r in build_dataset(data, "train").records]
    few = [r.name for r in build_dataset({**data, "max_samples": 6}, "train").records]
    assert len(few) == 6 and {n.split("/")[0] for n in few} == {"HCOCO", "HFlickr"}
    assert few == [n for n in everyone if n in few]  # in the split's order
    assert few == [r.name for r in build_dataset({**data, "max_samples": 6}, "train").records]  # every run
    assert few == [everyone[i] for i in spread_sample(everyone, 6)]
    assert spread_sample(everyone, 0) == spread_sample(everyone, 99) == list(range(len(everyone)))
    assert len(set(spread_sample(["same"] * 5, 3))) == 3  # repeated records (val_copies) are told apart


def test_a_spread_sample_keeps_its_names_when_a_name_is_added_before_them():
    """Each name was hashed with its position: one photo sorting first drew the whole spread again."""
    from trainer.data.common import spread_sample

    names = [f"p{i:03d}.png" for i in range(1, 200)] * 2  # two copies of each (val_copies)
    names.sort()
    before = {(names[i], i - names.index(names[i])) for i in spread_sample(names, 40)}
    grown = sorted(names + ["p000.png"])
    after = {(grown[i], i - grown.index(grown[i])) for i in spread_sample(grown, 40)}
    assert len(before & after) >= 39  # at most the one that the new name displaced


def test_a_spread_sample_loses_at_most_one_name_to_a_name_added_and_none_to_one_removed():
    """As trainer/README.md says: with a fixed count a name added may take the place of one chosen (the README said
    an addition left the others chosen)."""
    from trainer.data.common import spread_sample

    names = [f"p{i:03d}.png" for i in range(1, 120)]
    chosen = {names[i] for i in spread_sample(names, 20)}
    displaced = []
    for new in (f"q{i:03d}.png" for i in range(200)):
        grown = sorted(names + [new])
        after = {grown[i] for i in spread_sample(grown, 20)}
        assert len(chosen - after) <= 1 and (new in after or after == chosen)
        displaced += sorted(chosen - after)
    assert displaced  # some addition does take a chosen name's place
    for gone in names:
        kept = [n for n in names if n != gone]
        assert chosen - {gone} <= {kept[i] for i in spread_sample(kept, 20)}


def test_a_padded_evaluation_sample_says_where_its_picture_is(tmp_path):
    from procedural_portraits import write_photos

    write_photos(tmp_path / "img", 4, seed=2, masks=tmp_path / "masks", sizes=((32, 64),))
    data = {"root": str(tmp_path / "img"), "mask_dir": str(tmp_path / "masks"), "val_fraction": 0.5}
    s = build_dataset(data, "val", image_size=32, resize="pad")[0]
    assert s["box"].tolist() == [8, 0, 16, 32]  # top, left, height, width
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[8:24] = False
    assert (s["real"][:, outside] == 0).all() and (s["real"][:, ~outside] > 0).any()
    assert "box" not in build_dataset(data, "val", image_size=32, resize="stretch")[0]
    assert "box" not in build_dataset(data, "train", image_size=32, resize="pad")[0]


def test_a_photo_folder_takes_every_photo_and_mask_format_the_library_reads(tmp_path):
    """A .jfif photo was passed over without a word, and a .gif mask left its photo on the fallback ellipse."""
    rng = np.random.default_rng(0)
    for stem, photo_ext, mask_ext in (("a", ".jpg", ".png"), ("b", ".jfif", ".png"), ("c", ".jpg", ".gif")):
        img, mask = portrait(rng, 40, 48)
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "photos" / f"{stem}{photo_ext}", "JPEG")
        _save(tmp_path / "masks" / f"{stem}{mask_ext}", mask)
    data = {"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "masks"), "image_size": 32,
            "val_fraction": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "has no mask" warning
        records = build_dataset(data, "train").records
    assert {(r.name, r.mask.name if r.mask else None) for r in records} == {
        ("a.jpg", "a.png"), ("b.jfif", "b.png"), ("c.jpg", "c.gif")}


def test_a_mask_named_as_windows_and_macos_compare_names_is_its_photos_after_an_exact_one(tmp_path):
    """IMG_0001.JPG's img_0001.png, its mask to the CLI, was none to the trainer: the photo trained on the ellipse."""
    rng = np.random.default_rng(0)
    for photo, masks in (("IMG_0001.JPG", ["img_0001.png"]), ("Sub/Cafe\u0301.jpg", ["sub/caf\u00e9.png"]),
                         ("b.jpg", ["b.gif", "B.png"])):
        img, mask = portrait(rng, 40, 48)
        _save(tmp_path / "photos" / photo, img)
        for name in masks:
            _save(tmp_path / "masks" / name, mask)
    data = {"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "masks"), "image_size": 32,
            "val_fraction": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "has no mask" warning
        records = build_dataset(data, "train").records
    assert {r.name: r.mask.relative_to(tmp_path / "masks").as_posix() for r in records} == {
        "IMG_0001.JPG": "img_0001.png", "Sub/Cafe\u0301.jpg": "sub/caf\u00e9.png", "b.jpg": "b.gif"}


def test_a_mask_folder_that_is_the_photo_folder_or_holds_it_is_refused_with_the_fix(tmp_path):
    """Photos p.jpg beside their masks p.png, with the mask folder named as the photo folder: every photo was
    dropped as a mask, and the error said there were no images in a folder full of them."""
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        img, mask = portrait(rng, 40, 48)
        _save(tmp_path / "photos" / f"{stem}.jpg", img)
        _save(tmp_path / "photos" / f"{stem}.png", mask)
    for masks in (tmp_path / "photos", tmp_path):
        data = {"root": str(tmp_path / "photos"), "mask_dir": str(masks), "image_size": 32}
        with pytest.raises(ValueError, match=r"^data.mask_dir: the mask folder .* is the photo folder .* itself \(or "
                                             r"holds it\).*: put the masks in a folder of their own$"):
            build_dataset(data, "all")
    (tmp_path / "photos" / "masks").mkdir()  # a mask folder inside the photo folder is fine
    for stem in ("a", "b"):
        (tmp_path / "photos" / f"{stem}.png").rename(tmp_path / "photos" / "masks" / f"{stem}.png")
    data = {"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "photos" / "masks"), "image_size": 32}
    assert {(r.name, r.mask.name) for r in build_dataset(data, "all").records} == {("a.jpg", "a.png"),
                                                                                   ("b.jpg", "b.png")}


def test_a_photo_folders_test_split_says_it_is_its_validation_split(photos):
    from trainer.data.common import list_images

    img, masks = photos
    data = {"root": str(img), "mask_dir": str(masks), "image_size": 32}
    test = build_dataset(data, "test")
    assert [r.name for r in test.records] == [r.name for r in build_dataset(data, "val").records]
    assert "NOT A HELD-OUT SCORE" in test.not_held_out and "data.test_fraction" in test.not_held_out
    assert build_dataset({**data, "test_fraction": 0.2}, "test").not_held_out is None
    # validation on a folder of its own: every photo here trains, none is set aside as a test split either
    with_own = {**data, "val_root": str(img)}
    assert len(build_dataset(with_own, "train")) == len(list_images(img)) > len(build_dataset(data, "train"))
    test = build_dataset(with_own, "test")  # then the validation folder, said not to be held out
    assert [r.name for r in test.records] == [r.name for r in build_dataset(with_own, "val").records]
    assert "NOT A HELD-OUT SCORE" in test.not_held_out and "its validation folder" in test.not_held_out
    assert build_dataset({**with_own, "test_fraction": 0.2}, "test").not_held_out is None
    assert build_dataset(data, "val").not_held_out is None


def make_ffhqh(root: Path, ffhq: Path, nested_lines: bool) -> list[str]:
    rng = np.random.default_rng(1)
    names = []
    for i in (609, 1001, 1002):
        img, mask = portrait(rng, 32, 32)
        name = f"{i:05d}.png"
        line = f"{i // 1000 * 1000:05d}/{name}" if nested_lines else name
        _save(root / "comp" / line, np.clip(img.astype(int) - 30, 0, 255).astype(np.uint8))
        _save(root / "alpha" / line, mask)
        _save(ffhq / f"{i // 1000 * 1000:05d}" / name, img)  # official FFHQ thousands folders
        names.append(line)
    (root / "train_split.txt").write_text("\n".join(names[:2]) + "\n")
    (root / "test_split.txt").write_text(names[2] + "\n")
    return names


@pytest.mark.parametrize("nested", [False, True])
def test_ffhqh_layout_both_line_formats(tmp_path, nested):
    make_ffhqh(tmp_path / "FFHQH", tmp_path / "ffhq", nested)
    assert detect_kind(tmp_path / "FFHQH") == "ffhqh"
    data = {"root": str(tmp_path / "FFHQH"), "ffhq_root": str(tmp_path / "ffhq"), "image_size": 32,
            "val_fraction": 0.5}
    test = build_dataset(data, "test")
    assert test.records[0].real == tmp_path / "ffhq" / "01000" / "01002.png"
    sample = test[0]
    assert torch.allclose(sample["comp"][:, sample["mask"][0] == 0], sample["real"][:, sample["mask"][0] == 0],
                          atol=0.2)
    assert len(build_dataset(data, "train")) + len(build_dataset(data, "val")) == 2
    with pytest.raises(FileNotFoundError, match="ffhq_root"):
        build_dataset({"root": str(tmp_path / "FFHQH"), "image_size": 32}, "test")




@pytest.mark.parametrize("split", ["train", "test"])
def test_a_missing_split_list_names_the_fix(tmp_path, split):
    """A missing split list said only "split file not found": which lists a release ships, and how to go on
    without the subset, are what the user needs."""
    make_iharmony(tmp_path / "ih")
    (tmp_path / "ih" / "HFlickr" / f"HFlickr_{split}.txt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"split list not found: .*HFlickr_{split}.txt; every iHarmony4 "
                                                r"subset ships HFlickr_train.txt and HFlickr_test.txt beside "
                                                r"composite_images/: copy it from the release, or leave HFlickr out "
                                                r"with data.subsets"):
        build_dataset({"root": str(tmp_path / "ih"), "image_size": 32}, split)
    assert len(build_dataset({"root": str(tmp_path / "ih"), "image_size": 32, "subsets": ["HCOCO"]}, split))
    make_ffhqh(tmp_path / "FFHQH", tmp_path / "ffhq", False)
    (tmp_path / "FFHQH" / f"{split}_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"split list not found: .*{split}_split.txt; copy it from the FFHQH "
                                                r"release, which ships train_split.txt, val_split.txt and "
                                                r"test_split.txt beside comp/ and alpha/"):
        build_dataset({"root": str(tmp_path / "FFHQH"), "ffhq_root": str(tmp_path / "ffhq"), "image_size": 32},
                      split)


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_ffhqh_real_folder_without_the_real_images_names_ffhq_root(tmp_path, policy):
    """An ffhq_root that holds none of the split's real images (another folder of pictures, the FFHQ download's
    parent) was reported as missing files with the advice to skip them, which leaves nothing to train on."""
    make_ffhqh(tmp_path / "FFHQH", tmp_path / "ffhq", False)
    other = tmp_path / "other"
    _save(other / "unrelated.png", np.zeros((8, 8, 3), np.uint8))
    data = {"root": str(tmp_path / "FFHQH"), "ffhq_root": str(other), "image_size": 32, "on_bad_sample": policy}
    with pytest.raises(FileNotFoundError, match=r"the real image of the FFHQH test split is not under .*other"
                                                r".*: set data.ffhq_root \(--ffhq-root"):
        build_dataset(data, "test")
    (tmp_path / "ffhq" / "01000" / "01002.png").rename(other / "01002.png")  # the right folder flat: it loads
    assert len(build_dataset(data, "test")) == 1


def test_folder_masks_from_dir_alpha_and_ellipse(tmp_path, photos):
    img_dir, mask_dir = photos
    data = {"root": str(img_dir), "mask_dir": str(mask_dir), "image_size": 32, "val_fraction": 0.3}
    assert detect_kind(img_dir) == "folder"
    val = build_dataset(data, "val")
    a, b = val[0], val[0]
    assert torch.equal(a["comp"], b["comp"])  # validation composites are a function of the index
    expected = np.asarray(Image.open(mask_dir / Path(val.records[0].name).name).convert("L").resize((32, 32))) > 127
    assert (a["mask"][0].numpy() > 0.5).mean() == pytest.approx(expected.mean(), abs=0.08)
    # alpha channel as the mask
    rgba_dir = tmp_path / "rgba"
    rgba_dir.mkdir()
    img, mask = portrait(np.random.default_rng(2), 32, 32)
    Image.fromarray(np.dstack([img, mask])).save(rgba_dir / "cut.png")
    s = build_dataset({"root": str(rgba_dir), "image_size": 32}, "val")[0]
    assert (s["mask"][0].numpy() > 0.5).sum() == (mask > 127).sum()
    # no mask at all: ellipse fallback, or an error naming the file
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(img).save(plain / "x.png")
    s = build_dataset({"root": str(plain), "image_size": 32}, "val")[0]
    assert 0.1 < s["mask"].mean() < 0.6
    # a photo saved as RGBA, opaque everywhere: no mask in its alpha (it trained as a mask of the whole picture)
    Image.fromarray(img).convert("RGBA").save(plain / "x.png")
    s = build_dataset({"root": str(plain), "image_size": 32}, "val")[0]
    assert 0.1 < s["mask"].mean() < 0.6
    with pytest.raises(BadSampleError, match="x.png"):
        build_dataset({"root": str(plain), "image_size": 32, "mask_fallback": "error"}, "val")[0]
    # nor in one with transparent rounded corners: 99 % of the picture was its subject
    rounded = Image.fromarray(img).convert("RGBA")
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:2, :2] = alpha[:2, -2:] = alpha[-2:, :2] = alpha[-2:, -2:] = 0
    rounded.putalpha(Image.fromarray(alpha))
    rounded.save(plain / "x.png")
    s = build_dataset({"root": str(plain), "image_size": 32}, "val")[0]
    assert 0.1 < s["mask"].mean() < 0.6


def test_training_samples_vary_by_epoch_but_are_reproducible(photos):
    img_dir, mask_dir = photos
    ds = build_dataset({"root": str(img_dir), "mask_dir": str(mask_dir), "image_size": 32,
                        "synthesis": {"identity_fraction": 0.0, "mild_fraction": 0.0}}, "train")
    a, b, c = ds[(0, 0)], ds[(0, 0)], ds[(0, 1)]
    assert torch.equal(a["comp"], b["comp"])
    assert not torch.equal(a["comp"], c["comp"])
    outside = a["mask"][0] == 0
    assert torch.allclose(a["comp"][:, outside], a["real"][:, outside], atol=1e-6)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_resize_modes(tmp_path, mode):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = 200  # left half bright: shows whether the aspect was kept
    mask = np.zeros((40, 80), np.uint8)
    mask[10:30, 30:50] = 255
    _save(tmp_path / "img" / "w.png", img)
    _save(tmp_path / "masks" / "w.png", mask)
    s = build_dataset({"root": str(tmp_path / "img"), "mask_dir": str(tmp_path / "masks"), "image_size": 32,
                       "resize": mode}, "val")[0]
    assert s["real"].shape == (3, 32, 32)
    if mode == "pad":  # 80x40 -> 32x16 centred, zero bars above and below, no subject in the bars
        assert s["real"][:, :8].abs().max() == 0 and s["mask"][:, :8].max() == 0
        assert s["real"][:, 12, :14].mean() > 0.7 and s["real"][:, 12, 18:].mean() < 0.1
    elif mode == "crop":  # centre 40x40 crop: half bright, half dark
        assert s["real"][:, :, :14].mean() > 0.7 and s["real"][:, :, 18:].mean() < 0.1
    else:
        assert s["real"][:, :, :14].mean() > 0.7


def test_a_square_crop_keeps_a_subject_off_the_middle_of_a_wide_photo(tmp_path):
    """The centre square of a wide photo missed a subject at its left edge: validation refused the photo as
    'foreground too small' every time, and training retries could all miss it too."""
    img = np.full((90, 160, 3), 90, np.uint8)
    mask = np.zeros((90, 160), np.uint8)
    mask[10:80, 5:30] = 255  # 12 % of the picture
    for name in ("w1.png", "w2.png"):
        _save(tmp_path / "img" / name, img)
        _save(tmp_path / "masks" / name, mask)
    data = {"root": str(tmp_path / "img"), "mask_dir": str(tmp_path / "masks"), "image_size": 32, "resize": "crop",
            "val_fraction": 0.5}
    assert build_dataset(data, "val")[0]["mask"].mean() > 0.1
    train = build_dataset({**data, "crop_scale": [0.3, 0.6]}, "train")
    assert all(train[(0, epoch)]["mask"].mean() > 0 for epoch in range(30))
    # two subjects at the ends of a wide photo: the square over their box's middle holds neither
    apart = np.zeros((100, 400), np.uint8)
    apart[20:80, 10:60] = apart[20:80, 340:390] = 255
    for name in ("w1.png", "w2.png"):
        _save(tmp_path / "img" / name, np.full((100, 400, 3), 90, np.uint8))
        _save(tmp_path / "masks" / name, apart)
    assert build_dataset(data, "val")[0]["mask"].mean() > 0


def test_a_picture_narrower_than_the_smallest_crop_is_cropped_to_its_width(tmp_path):
    img = np.full((60, 6, 3), 90, np.uint8)
    mask = np.zeros((60, 6), np.uint8)
    mask[10:50, 1:5] = 255
    for name in ("thin1.png", "thin2.png"):
        _save(tmp_path / "img" / name, img)
        _save(tmp_path / "masks" / name, mask)
    data = {"root": str(tmp_path / "img"), "mask_dir": str(tmp_path / "masks"), "image_size": 32, "resize": "pad",
            "val_fraction": 0.5, "crop_scale": [0.5, 1.0]}
    assert build_dataset(data, "train")[(0, 0)]["real"].shape == (3, 32, 32)  # it raised "high <= 0"


def test_bad_samples_error_names_file_or_skip_with_count(tmp_path):
    names = make_ffhqh(tmp_path / "F", tmp_path / "F" / "real", nested_lines=False)
    root = tmp_path / "F"
    lines = (root / "train_split.txt").read_text().split() + ["missing.png"]
    (root / "train_split.txt").write_text("\n".join(lines) + "\n")
    data = {"root": str(root), "image_size": 32, "val_fraction": 0.0}
    with pytest.raises(BadSampleError, match="missing.png"):
        build_dataset(data, "train")
    with pytest.warns(UserWarning, match="skipped 1 sample"):
        ds = build_dataset({**data, "on_bad_sample": "skip"}, "train")
    assert len(ds) == 2

    # unreadable composite, size mismatch, empty mask
    (root / "comp" / names[0]).write_bytes(b"not a png")
    big = np.zeros((48, 48), np.uint8)
    big[10:20, 10:20] = 255
    _save(root / "alpha" / names[1], big)
    (root / "train_split.txt").write_text("\n".join(names[:2]) + "\n")
    ds = build_dataset(data, "train")
    with pytest.raises(BadSampleError, match=f"unreadable image .*{names[0]}"):
        ds[0]
    with pytest.raises(BadSampleError, match=f"mask .*{names[1]}.* is 48x48"):
        ds[1]
    _save(root / "alpha" / names[1], np.zeros((32, 32), np.uint8))
    with pytest.raises(BadSampleError, match="empty mask.*; mend or remove the file, or set data.on_bad_sample = "
                                             "\"skip\""):
        ds[1]
    skip = build_dataset({**data, "on_bad_sample": "skip"}, "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = collate([skip[0], skip[1]])
    assert batch["skipped"] == 2 and "comp" not in batch
    assert any(names[0] in str(w.message) for w in caught)


@pytest.mark.parametrize("dtype, top, why", [(np.uint16, 255, r"0.39% of full.*a 16-bit mask holding 0..255 values"),
                                              (np.uint8, 100, r"39.22% of full.*paint the subject white")])
def test_a_mask_on_the_wrong_scale_or_too_faint_is_refused_for_what_it_is(tmp_path, dtype, top, why):
    """A 16-bit mask holding 0/255 values (cv2.imwrite of a uint16 array), or one whose subject is under half of
    full, was refused as an empty mask with no foreground pixel."""
    rng = np.random.default_rng(0)
    _save(tmp_path / "photos" / "p.png", (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    mask = np.zeros((48, 64), dtype)
    mask[10:40, 15:50] = top
    _save(tmp_path / "masks" / "p.png", mask)
    ds = build_dataset({"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "masks")}, "all", image_size=32)
    with pytest.raises(BadSampleError, match=rf"mask .*p.png: its strongest value is {why}"):
        ds[0]


def test_a_photo_black_everywhere_is_a_bad_sample_where_it_is_scored(tmp_path):
    """Scored against its own peak, max(gt) = 0, its PSNR was -inf, and so was the whole split's mean."""
    _save(tmp_path / "photos" / "p.png", np.zeros((48, 64, 3), np.uint8))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 15:50] = 255
    _save(tmp_path / "masks" / "p.png", mask)
    data = {"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "masks")}
    with pytest.raises(BadSampleError, match=r"photo .*p.png is black everywhere at 32px: its PSNR, against its own "
                                             r"peak, is undefined; mend or remove"):
        build_dataset(data, "all", image_size=32)[0]
    assert build_dataset(data, "all", image_size=32, train=True)[0]["real"].max() == 0  # no PSNR in training


def test_a_mask_file_covering_the_whole_picture_is_a_bad_sample(tmp_path):
    """A mask file white everywhere was trained on without a word (an alpha like it is passed over): there is no
    background to harmonize against."""
    rng = np.random.default_rng(0)
    _save(tmp_path / "photos" / "p.png", (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    mask = np.full((48, 64), 255, np.uint8)
    mask[0, :40] = 0  # 40 of 3072 pixels: 1.3 % background
    _save(tmp_path / "masks" / "p.png", mask)
    data = {"root": str(tmp_path / "photos"), "mask_dir": str(tmp_path / "masks")}
    with pytest.raises(BadSampleError, match=r"mask covering the whole picture \(under 3% of it background, "
                                             r"nothing to harmonize against\): .*p.png; mend or remove"):
        build_dataset(data, "all", image_size=32)[0]
    mask[:3] = 0  # 6 % background
    _save(tmp_path / "masks" / "p.png", mask)
    assert build_dataset(data, "all", image_size=32)[0]["mask"].mean() < 1
    from trainer.data.common import check_pair

    whole = np.ones((48, 64), np.float32)  # a ready set's pair (a composite given) is scored as it was made
    check_pair(np.zeros((48, 64, 3)), np.zeros((48, 64, 3)), whole, None)


def test_collate_stacks_and_counts():
    s = {"comp": torch.zeros(3, 8, 8), "name": "a"}
    out = collate([s, None, s])
    assert out["skipped"] == 1 and out["comp"].shape == (2, 3, 8, 8) and out["name"] == ["a", "a"]


def test_a_package_portraits_pool_is_read_split_by_split_with_its_masks(tmp_path):
    pool = _pool(tmp_path / "pool")
    for split, n in (("train", 5), ("test", 3)):
        ds = build_dataset({"root": str(pool), "kind": "folder", "mask_fallback": "error"}, split, image_size=32)
        # only that split's photos, never its masks read as photos, every photo with its own mask
        assert sorted(r.name for r in ds.records) == [f"{split}{i}.png" for i in range(n)]
        assert all(r.mask is not None and r.mask.parent.name == "masks" for r in ds.records)
    # built with --test-percent 0 (the default): its test split is missing, not the whole pool read as photos
    import shutil

    shutil.rmtree(pool / "test")
    with pytest.raises(ValueError, match=r"is a pool \(manifest.json\) without a test/ split \(it has train, val\): "
                                         r"rebuild it with --test-percent 10"):
        build_dataset({"root": str(pool), "kind": "folder", "mask_fallback": "error"}, "test", image_size=32)


def _pool(root: Path, splits=(("train", 5), ("val", 2), ("test", 3))) -> Path:
    rng = np.random.default_rng(3)
    for split, n in splits:
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True)
        for i in range(n):
            img, mask = portrait(rng, 32, 32)
            Image.fromarray(img).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}{i}.png")
    (root / "manifest.json").write_text('{"builder": "trainer.builders.package_portraits"}')
    return root


def test_a_pool_or_one_of_its_splits_is_read_with_its_masks_wherever_it_is_named(tmp_path, photos):
    """A pool given as data.val_root, or one of its splits as the root (--split all, or a run on POOL/train),
    was read as a plain folder: its masks became photos, each scored with an ellipse mask."""
    pool = _pool(tmp_path / "pool")
    base = {"kind": "folder", "mask_fallback": "error"}
    val = build_dataset({**base, "root": str(photos[0]), "mask_dir": str(photos[1]), "val_root": str(pool)}, "val",
                        image_size=32)
    assert sorted(r.name for r in val.records) == ["val0.png", "val1.png"]
    for root, split, names in [(pool / "test", "all", ["test0.png", "test1.png", "test2.png"]),
                               (pool / "test", "test", ["test0.png", "test1.png", "test2.png"]),  # all, held out
                               (pool / "train", "train", None)]:
        ds = build_dataset({**base, "root": str(root)}, split, image_size=32)
        assert all(r.mask is not None and r.mask.parent.name == "masks" for r in ds.records), split
        assert names is None or sorted(r.name for r in ds.records) == names
        assert split != "test" or ds.not_held_out is None


def test_a_split_of_a_pool_copied_out_of_it_is_still_read_with_its_masks(tmp_path):
    """cp -r POOL/test elsewhere: without the pool's manifest.json above, its masks/ were read as photos, and every
    photo with the ellipse; a folder with other pictures beside images/ and masks/ stays a plain folder."""
    import shutil

    pool = _pool(tmp_path / "pool")
    copy = shutil.copytree(pool / "test", tmp_path / "copied_test")
    ds = build_dataset({"root": str(copy), "mask_fallback": "error"}, "all", image_size=32)
    assert sorted(r.name for r in ds.records) == ["test0.png", "test1.png", "test2.png"]
    assert all(r.mask == copy / "masks" / r.name for r in ds.records)
    for stray in (copy / "masks" / "not_a_photo.png", copy / "extra.png"):  # a mask no photo has, or a picture beside
        shutil.copy(copy / "images" / "test0.png", stray)
        names = {r.name for r in build_dataset({"root": str(copy)}, "all", image_size=32).records}
        assert {"images/test1.png", "masks/test1.png"} <= names
        stray.unlink()

    # a copy named test: its test split was every photo, the training photos too, without a word
    copy = shutil.copytree(_pool(tmp_path / "pool20", (("test", 20),)) / "test", tmp_path / "copy" / "test")
    data = {"root": str(copy), "mask_fallback": "error", "val_fraction": 0.3}
    train, test = (build_dataset(data, split, image_size=32) for split in ("train", "test"))
    assert test.records and not {r.real for r in train.records} & {r.real for r in test.records}
    assert test.not_held_out.startswith("NOT A HELD-OUT SCORE: the test split of the photo folder")


def test_a_pool_with_a_val_root_is_tested_on_its_own_test_split(tmp_path, photos):
    """With data.val_root the test split of a pool was the validation folder, said not to be held out, while the
    pool's held-out test/ went unread; a pool without a test/ still tests on the validation folder."""
    import shutil

    pool = _pool(tmp_path / "pool")
    data = {"root": str(pool), "val_root": str(photos[0]), "val_mask_dir": str(photos[1]), "mask_fallback": "error"}
    test = build_dataset(data, "test", image_size=32)
    assert sorted(r.name for r in test.records) == ["test0.png", "test1.png", "test2.png"]
    assert test.not_held_out is None
    assert len(build_dataset(data, "val", image_size=32)) == len(list(photos[0].glob("*.png")))
    shutil.rmtree(pool / "test")
    assert "NOT A HELD-OUT SCORE" in build_dataset(data, "test", image_size=32).not_held_out


def test_a_photo_folder_beside_another_tool_s_manifest_or_list_is_still_a_photo_folder(tmp_path, photos):
    """Any manifest.json made a pool, and any *_test.txt beside a composite_images/ folder an iHarmony4 subset:
    a folder of photos used as data.val_root was refused, or read for split lists it never had."""
    import shutil

    val = tmp_path / "val"
    shutil.copytree(photos[0], val)
    (val / "manifest.json").write_text('{"tool": "another"}')
    (val / "composite_images").mkdir()
    (val / "results_test.txt").write_text("x.png\n")
    data = {"root": str(photos[0]), "mask_dir": str(photos[1]), "val_root": str(val), "mask_fallback": "ellipse"}
    assert detect_kind(val) == "folder"
    assert len(build_dataset(data, "val", image_size=32)) == len(list(photos[0].glob("*.png")))


def test_a_pool_of_the_builder_s_earlier_name_is_a_pool_and_its_train_split_keeps_validation_apart(tmp_path):
    """Pools written before the builders moved name 'trainer.datasets.package_portraits': read as plain folders,
    their masks became photos; and --data POOL/train read every photo for training while carving validation
    from the same photos."""
    pool = _pool(tmp_path / "pool", splits=(("train", 20), ("test", 2)))
    (pool / "manifest.json").write_text('{"builder": "trainer.datasets.package_portraits"}')
    data = {"root": str(pool), "kind": "folder", "mask_fallback": "error"}
    assert sorted(r.name for r in build_dataset(data, "test", image_size=32).records) == ["test0.png", "test1.png"]
    data["root"] = str(pool / "train")
    train = {r.name for r in build_dataset(data, "train", image_size=32).records}
    val = {r.name for r in build_dataset(data, "val", image_size=32).records}
    assert val and not train & val


@pytest.mark.parametrize("splits", [(("train", 20), ("val", 2), ("test", 2)), (("train", 20), ("test", 2))])
def test_a_resume_from_a_pool_to_its_train_folder_is_refused_where_it_holds_out_photos_trained_on(tmp_path, splits):
    """Trained on POOL, resumed with --data POOL/train: a pool's splits were never listed, so the resume went on and
    validated on photos the run had trained on. A pool without a val/ split lists it as empty."""
    from trainer.data import split_settings, trained_photos_held_out
    from trainer.resume import ResumeConfigError, check_resume_config

    pool = _pool(tmp_path / "pool", splits=splits)
    (tmp_path / "link").symlink_to(pool)

    def resume(old_root, new_root):
        old, new = ({"data": {"root": str(root), "val_fraction": 0.3}} for root in (old_root, new_root))
        return check_resume_config(old, new, "ckpt", split_settings(new["data"]),
                                   held_out=lambda: trained_photos_held_out(old["data"], new["data"]))

    with pytest.raises(ResumeConfigError, match=r"changed data.root .*held out \(first: .*pool/train/images/"):
        resume(pool, pool / "train")
    assert "data.root" in resume(pool, tmp_path / "link")  # the same pool by another path
    assert "data.root" in resume(pool / "train", pool)  # its val/ and test/ were never trained on


def test_a_ready_set_as_val_root_is_refused(tmp_path, photos):
    make_iharmony(tmp_path / "ih")
    with pytest.raises(ValueError, match=r"data.val_root .*HCOCO holds a ready iharmony set"):
        build_dataset({"root": str(photos[0]), "val_root": str(tmp_path / "ih" / "HCOCO")}, "val", image_size=32)


def test_an_iharmony_subset_kept_with_its_test_list_alone_is_an_iharmony_set(tmp_path):
    """Without its _train.txt a subset copied for testing was a photo folder: its mask pictures were scored."""
    make_iharmony(tmp_path, subsets=("Hday2night",))
    subset = tmp_path / "Hday2night"
    (subset / "Hday2night_train.txt").unlink()
    assert detect_kind(subset) == "iharmony"
    assert len(build_dataset({"root": str(subset)}, "test", image_size=32)) == 2


def test_a_photo_folder_with_a_subfolder_named_like_an_iharmony_subset_is_a_photo_folder(tmp_path, photos):
    """A subfolder of plain photos named HFlickr made the folder an iHarmony4 set: --kind auto looked for
    HFlickr_train.txt, and --kind folder was refused as a ready set."""
    import shutil

    for subset in ("HFlickr", "Hday2night"):
        shutil.copytree(photos[0], tmp_path / "photos" / subset)
    assert detect_kind(tmp_path / "photos") == "folder"
    every = 2 * len(list(photos[0].glob("*.png")))
    for kind in ("auto", "folder"):
        data = {"root": str(tmp_path / "photos"), "kind": kind, "val_fraction": 0.0}
        assert len(build_dataset(data, "train", image_size=32)) == every
    make_iharmony(tmp_path / "photos", subsets=("HCOCO",))  # beside a real subset, those folders are no subsets
    assert detect_kind(tmp_path / "photos") == "iharmony"
    assert {r.subset for r in build_dataset({"root": str(tmp_path / "photos")}, "train", image_size=32).records} == {
        "HCOCO"}


def test_subsets_of_a_set_without_any_are_refused(tmp_path, photos):
    """--subsets HCOCO on a photo folder or an FFHQH set was ignored: the whole split was scored, with no note.
    trainer.fit, which has no --subsets, was told to drop it."""
    data = {"root": str(photos[0]), "subsets": ["HCOCO"]}
    with pytest.raises(ValueError, match=r"data.subsets \['HCOCO'\] picks iHarmony4 subsets, but .* is a folder set, "
                                         r"which has none: drop data.subsets \(--set data.subsets=\[\] or remove it "
                                         r"from the config\)$"):
        build_dataset(data, "train", image_size=32)


@pytest.mark.parametrize("synthesis", [{"on_device": True}, {"on_device": False}])
def test_preloaded_photos_give_the_same_samples(tmp_path, photos, synthesis, capsys):
    img_dir, mask_dir = photos
    rgba = tmp_path / "mixed"  # a cut-out with its alpha, a photo with no mask (ellipse), a broken file
    rgba.mkdir()
    img, mask = portrait(np.random.default_rng(3), 40, 32)
    Image.fromarray(np.dstack([img, mask])).save(rgba / "cut.png")
    Image.fromarray(img).save(rgba / "plain.png")
    (rgba / "broken.png").write_bytes(b"not a png")
    for data, splits in (({"root": str(img_dir), "mask_dir": str(mask_dir), "val_fraction": 0.3},
                          ("train", "val")),
                         ({"root": str(rgba), "val_fraction": 0.0}, ("train",))):
        data = {**data, "image_size": 32, "crop_scale": [0.7, 1.0], "hflip": 0.5, "synthesis": synthesis}
        for split in splits:
            plain, kept = build_dataset(data, split), build_dataset({**data, "preload": True}, split)
            assert kept.preloaded is not None and plain.preloaded is None
            for i, record in enumerate(plain.records):
                if record.real.name == "broken.png":
                    with pytest.raises(BadSampleError, match="broken.png"):
                        kept[(i, 1)]
                    continue
                a, b = plain[(i, 1)], kept[(i, 1)]
                assert a.keys() == b.keys()
                for key in ("comp", "real", "mask"):
                    if key in a:
                        assert torch.equal(a[key], b[key]), (key, record.name)
                for key, value in a.get("synthesis", {}).items():
                    assert torch.equal(value, b["synthesis"][key]), key
    assert "photos preloaded" in capsys.readouterr().err


def test_a_photo_with_an_unreadable_mask_serves_as_a_reference_preloaded_as_not(photos, tmp_path):
    """Preloaded, its thumbnail was never read: the samples that drew it as their reference differed."""
    import shutil

    img_dir, mask_dir = photos
    masks = tmp_path / "masks"
    shutil.copytree(mask_dir, masks)
    broken = sorted(masks.iterdir())[0]
    broken.write_bytes(b"not a png")
    data = {"root": str(img_dir), "mask_dir": str(masks), "val_fraction": 0.0, "image_size": 32,
            "on_bad_sample": "skip", "synthesis": {"reference_probability": 1.0}}
    plain, kept = build_dataset(data, "train"), build_dataset({**data, "preload": True}, "train", report=False)
    for i, record in enumerate(plain.records):
        if record.real.stem == broken.stem:
            continue
        for epoch in range(3):
            a, b = plain[(i, epoch)], kept[(i, epoch)]
            assert torch.equal(a["comp"], b["comp"]), (record.name, epoch)


def test_preloading_speaks_once_and_only_when_asked(photos, capsys):
    """--no-progress drew the preload's bar anyway (into log files), and under torchrun every process drew
    one and printed its memory line."""
    from types import SimpleNamespace

    from trainer.fit import build_data

    img_dir, mask_dir = photos
    data = {"root": str(img_dir), "mask_dir": str(mask_dir), "val_fraction": 0.3, "preload": True}
    build_dataset(data, "train", image_size=32, progress=False, report=False)
    assert capsys.readouterr() == ("", "")
    build_dataset(data, "train", image_size=32, progress=False)
    out, err = capsys.readouterr()
    assert "photos preloaded" in err and "preloading" not in err
    assert out == ""  # calibrate --report-only, evaluate and fit print their JSON or Markdown there
    cfg = {"data": data, "train": {"batch_size": 2, "val_batch_size": 2, "val_max_samples": 0}}
    other_process = SimpleNamespace(main=False, world=2, rank=1, device=torch.device("cpu"))
    build_data(cfg, other_process, 32, 0)
    assert capsys.readouterr() == ("", "")


def test_preload_is_for_folders_of_photos(tmp_path, capsys):
    make_ffhqh(tmp_path / "F", tmp_path / "F" / "real", nested_lines=False)
    ds = build_dataset({"root": str(tmp_path / "F"), "image_size": 32, "preload": True, "val_fraction": 0.0}, "train")
    assert len(ds) > 0 and "read from its files" in capsys.readouterr().err


def test_a_preload_too_large_for_memory_stops_before_it_fills_it(photos, monkeypatch):
    import trainer.data.folder as folder

    img_dir, mask_dir = photos
    monkeypatch.setattr(folder, "PRELOAD_PROBE", 4)
    monkeypatch.setattr(folder, "available_memory", lambda: 10_000)  # bytes: a few of these photos
    with pytest.raises(ValueError, match="set data.preload = false"):
        build_dataset({"root": str(img_dir), "mask_dir": str(mask_dir), "image_size": 32, "preload": True}, "train")


def test_a_run_folder_inside_the_photo_folder_is_not_read_as_photos(tmp_path, capsys):
    """--out inside --data: the run's curves.png (and an evaluation's grid.png) joined the photos on --resume,
    changing the splits and the data order."""
    from trainer.data.common import list_images

    for name in ("a.png", "people/b.jpg", ".cache/c.png", "runs/r1/curves.png", "runs/r1/best/x.png",
                 "eval/grid.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "runs" / "r1" / "run_config.json").write_text("{}")
    (tmp_path / "eval" / "results.md").write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a.png", "people/b.jpg"]
    assert "left out 2 folder(s) the trainer wrote (not photos): eval, runs/r1" in capsys.readouterr().err
    list_images(tmp_path)  # listed again, for the validation split: said once (it came for every split)
    assert "left out" not in capsys.readouterr().err


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_a_photo_linked_to_nothing_is_named_where_it_is_left_out(tmp_path, capsys):
    """It was dropped in silence."""
    from trainer.data.common import list_images

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "b.png").symlink_to(tmp_path / "drive" / "b.png")
    assert list_images(tmp_path) == [tmp_path / "a.png"]
    assert capsys.readouterr().err == (f"[data] {tmp_path}: left out 1 link(s) to nothing (an unmounted drive?): "
                                       f"people/b.png -> {tmp_path / 'drive' / 'b.png'}\n")


def test_a_linked_folder_of_photos_is_read_once(tmp_path):
    from trainer.data.common import list_images

    shared = tmp_path / "setA"
    shared.mkdir()
    for name in ("x.png", "y.png"):
        Image.new("RGB", (4, 4)).save(shared / name)
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (4, 4)).save(root / "own.png")
    (root / "setA").symlink_to(shared, target_is_directory=True)
    (root / "again").symlink_to(shared, target_is_directory=True)
    (shared / "up").symlink_to(root, target_is_directory=True)  # a loop
    names = [p.relative_to(root).as_posix() for p in list_images(root)]
    assert len(names) == 3 and "own.png" in names and {n.rsplit("/", 1)[-1] for n in names} == {"own.png", "x.png",
                                                                                               "y.png"}


def test_an_empty_validation_split_says_how_to_get_one(tmp_path):
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"p{i}.png")
    with pytest.raises(ValueError, match=r"val split .* is empty; set data.val_fraction above 0"):
        build_dataset({"root": str(tmp_path), "val_fraction": 0.0}, "val", image_size=32)
    for i in range(2, 4):
        (tmp_path / f"p{i}.png").unlink()  # two photos: the test split takes one, the other is all training has
    with pytest.raises(ValueError, match=r"val split .* is empty: too few photos are left to carve one from with "
                                         r"data.val_fraction 0.05 once data.test_fraction 0.1 has taken its share"):
        build_dataset({"root": str(tmp_path), "test_fraction": 0.1}, "val", image_size=32)


def test_a_ready_composite_set_is_not_read_as_a_folder_of_photos(tmp_path):
    """--config folder (data.kind = "folder") on a set frozen by synthetic_set trained on every picture in it,
    masks, ground truths and test composites included, each with the ellipse mask, and said nothing."""
    make_ffhqh(tmp_path / "F", tmp_path / "F" / "real", nested_lines=False)
    with pytest.raises(ValueError, match=r'data.kind is "folder".* holds a ready ffhqh set.*pass --kind auto'):
        build_dataset({"root": str(tmp_path / "F"), "kind": "folder", "image_size": 32}, "train")


def test_a_picture_saved_under_two_names_in_two_splits_is_pointed_out(photos, tmp_path, capsys):
    """Splits are drawn by file name: a copy of a validation photo under another name was trained on, and the
    validation scores silently stopped being held-out scores."""
    import shutil

    from trainer.data.folder import copies_across
    from trainer.fit import build_data
    from trainer.distributed import Dist

    img_dir, mask_dir = photos
    root, masks = tmp_path / "img", tmp_path / "masks"
    shutil.copytree(img_dir, root)
    shutil.copytree(mask_dir, masks)
    data = {"root": str(root), "mask_dir": str(masks), "image_size": 32, "preload": True, "val_fraction": 0.25}
    val = build_dataset(data, "val")
    assert copies_across(val, build_dataset(data, "train")) == []
    victim = val.records[0].real
    for i in range(50):  # a name the split sends to training
        copy = root / f"copy{i}.png"
        shutil.copy(victim, copy)
        shutil.copy(masks / victim.name, masks / copy.name)
        if any(r.real == copy for r in build_dataset(data, "train").records):
            break
        copy.unlink()
        (masks / copy.name).unlink()
    train, val = build_dataset(data, "train"), build_dataset(data, "val")
    assert copies_across(val, train) == [(victim, copy)]
    cfg = {"data": data, "train": {"batch_size": 2, "val_batch_size": 2, "val_max_samples": 0}}
    capsys.readouterr()
    build_data(cfg, Dist("cpu"), 32, 0)
    assert f"near-duplicate among the training photos (e.g. {victim} ~ {copy})" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["photo0", "photo9"])  # photo9's name hashes into the validation fraction
def test_a_folder_of_one_photo_serves_it_in_every_split_whatever_its_name(tmp_path, name):
    Image.fromarray(portrait(np.random.default_rng(3), 48, 40)[0]).save(tmp_path / f"{name}.png")
    for split in ("train", "val", "test"):
        assert len(build_dataset({"root": str(tmp_path)}, split, image_size=32)) == 1, split


@pytest.mark.parametrize("extra", [{"test_fraction": 0.2}, {"test_fraction": 0.2, "val_root": "self"}])
def test_a_folder_of_one_photo_scores_its_test_split_as_not_held_out(tmp_path, extra):
    """With data.test_fraction > 0 the one photo, trained on too, was scored as a held-out test photo."""
    Image.fromarray(portrait(np.random.default_rng(3), 48, 40)[0]).save(tmp_path / "photo0.png")
    data = {"root": str(tmp_path), **extra}
    if "val_root" in data:
        data["val_root"] = str(tmp_path)
    test = build_dataset(data, "test", image_size=32)
    assert [r.real for r in test.records] == [r.real for r in build_dataset(data, "train", image_size=32).records]
    assert "NOT A HELD-OUT SCORE" in test.not_held_out and "training photos too" in test.not_held_out


@pytest.mark.parametrize("preload", [False, True])
def test_a_photo_reserved_for_evaluation_is_no_other_samples_colour_reference(tmp_path, preload):
    for i, name in enumerate(("a", "b")):
        Image.fromarray(portrait(np.random.default_rng(i), 40, 40)[0]).save(tmp_path / f"{name}.png")
    ds = build_dataset({"root": str(tmp_path), "val_fraction": 0.0, "preload": preload}, "train", image_size=32)
    assert ds.reference_for(0, np.random.default_rng(0)) is not None
    ds.reserved = {ds.records[1].real: True}  # b as a copy of a reserved picture
    assert ds.reference_for(0, np.random.default_rng(0)) is None
    with pytest.raises(BadSampleError, match="reserved for held-out evaluation"):
        ds[(1, 0)]


def test_a_photo_past_pils_pixel_limit_is_left_to_its_own_sample_by_the_size_check(tmp_path, monkeypatch):
    """DecompressionBombError is no OSError: the check of photos smaller than the working size stopped the run."""
    from trainer.data.folder import upscaled_photos

    for i in range(2):
        Image.fromarray(portrait(np.random.default_rng(i), 40, 40)[0]).save(tmp_path / f"p{i}.png")
    ds = build_dataset({"root": str(tmp_path), "val_fraction": 0.0}, "train", image_size=32)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40² is then past twice the limit
    assert upscaled_photos(ds, 512) == []


@pytest.mark.parametrize("mode", ["stretch", "pad"])
def test_a_mask_is_resized_as_the_official_loader_resizes_it(mode):
    """Binary at 0.5, then nearest (PIL mode "1"): averaged and thresholded, thin strands vanished and edges
    moved, so the foreground count behind fMSE was not the official tester's (130 of 2460 pixels apart)."""
    from trainer.data.common import fit_square, pad_box, to_chw

    yy, xx = np.mgrid[0:300, 0:400]
    mask = ((yy - 140) ** 2 + (xx - 200) ** 2 < 60 ** 2) | ((np.abs(xx - 120) < 2) & (yy > 100))
    stack = torch.cat([torch.rand(3, 300, 400), to_chw(mask.astype(np.float32))])
    got = fit_square(stack, 64, mode, None, keep=3)[3].numpy()
    if mode == "pad":
        top, left, height, width = pad_box(300, 400, 64)
        got = got[top : top + height, left : left + width]
    else:
        height = width = 64
    official = np.asarray(Image.fromarray(mask).convert("1").resize((width, height))) > 0
    assert np.array_equal(got > 0.5, official) and set(np.unique(got)) <= {0.0, 1.0}


def test_an_ffhqh_mask_is_resized_as_the_official_ffhqh_loader_resizes_it(tmp_path):
    """FFHQH's loader resizes its mask bilinearly and keeps what is over 0.5 (iHarmony4's reads it as 1 bit and
    samples it nearest): read as 1 bit, its foreground count, and so fMSE, was not the official tester's."""
    from trainer.data.iharmony import IHarmony4Dataset

    yy, xx = np.mgrid[0:90, 0:120]
    soft = np.clip(1.2 - np.hypot(yy - 45, xx - 60) / 25, 0, 1) + 0.6 * (np.abs(xx - 20) < 2) * (yy > 30)
    mask = (np.clip(soft, 0, 1) * 255).round().astype(np.uint8)  # a disc with a soft edge, a faint thin strand
    photo = portrait(np.random.default_rng(3), 90, 120)[0]
    make_ffhqh(tmp_path / "F", tmp_path / "F" / "real", nested_lines=False)
    for folder in ("comp", "real"):
        _save(tmp_path / "F" / folder / "01002.png", photo)
    _save(tmp_path / "F" / "alpha" / "01002.png", mask)
    ds = build_dataset({"root": str(tmp_path / "F"), "image_size": 32}, "test")
    official = np.asarray(Image.fromarray(mask).resize((32, 32), Image.BILINEAR), dtype=np.float32) / 255 > 0.5
    assert np.array_equal(ds[0]["mask"][0].numpy(), official)
    one_bit = np.asarray(Image.fromarray(mask >= 128).convert("1").resize((32, 32))) > 0
    assert not np.array_equal(official, one_bit)  # the two rules part on this mask
    assert np.array_equal(IHarmony4Dataset(ds.records, image_size=32)[0]["mask"][0].numpy(), one_bit)


def test_a_mask_another_photo_s_name_matches_exactly_is_not_a_folded_match_too(tmp_path):
    """IMG_0001.jpg took img_0001.jpg's own mask img_0001.png, without a word, where a folder holds both photos."""
    from trainer.data.folder import masks_by_photo

    for name in ("img_0001.png", "IMG_0002.png", "x.png", "X.PNG"):
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.new("L", (4, 4)).save(tmp_path / "masks" / name)
    keys = ["IMG_0001.jpg", "img_0001.jpg", "IMG_0002.jpg", "Y.jpg", "y.jpg"]
    (tmp_path / "masks" / "y.png").write_bytes((tmp_path / "masks" / "x.png").read_bytes())
    with pytest.warns(UserWarning, match="2 of 5 photos .* have no mask"):
        found = masks_by_photo(keys, tmp_path / "photos", tmp_path / "masks", "data.mask_dir")
    assert {k: p.name for k, p in found.items()} == {"img_0001.jpg": "img_0001.png", "IMG_0002.jpg": "IMG_0002.png",
                                                    "y.jpg": "y.png"}


@pytest.mark.parametrize("kind", ["iharmony", "ffhqh"])
def test_a_ready_set_given_records_without_composites_names_what_they_lack(tmp_path, kind):
    """A photo folder's records (no composite: it is made on the fly) handed to a ready set failed on an assert, or
    under ``python -O`` on a TypeError naming None."""
    from trainer.data.common import Record
    from trainer.data.ffhqh import FFHQHDataset
    from trainer.data.iharmony import IHarmony4Dataset

    _save(tmp_path / "p.png", portrait(np.random.default_rng(0), 40, 40)[0])
    ds = (IHarmony4Dataset if kind == "iharmony" else FFHQHDataset)([Record("p", tmp_path / "p.png")], image_size=32)
    with pytest.raises(ValueError, match="record p has no composite and no mask: this set reads both from its files; "
                                         "give photos without composites to FolderDataset"):
        ds[0]


@pytest.mark.parametrize("lacks", ["composite", "mask"])
def test_a_ready_set_s_record_with_one_of_composite_and_mask_names_the_other(tmp_path, lacks):
    from trainer.data.common import Record
    from trainer.data.iharmony import IHarmony4Dataset

    img, mask = portrait(np.random.default_rng(0), 40, 40)
    _save(tmp_path / "p.png", img)
    _save(tmp_path / "m.png", mask)
    given = {"comp": tmp_path / "p.png"} if lacks == "mask" else {"mask": tmp_path / "m.png"}
    ds = IHarmony4Dataset([Record("p", tmp_path / "p.png", **given)], image_size=32)
    with pytest.raises(ValueError, match=f"^record p has no {lacks}: this set reads both from its files"):
        ds[0]


def test_a_thumbnail_leaves_no_file_open(tmp_path):
    """A refused picture's file stayed open (until the garbage collector found it), and a GIF's after it was read."""
    from tests.helpers.open_files import no_file_left_open
    from trainer.data.common import load_thumbnail

    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.gif")
    with no_file_left_open(tmp_path):
        with pytest.raises(BadSampleError, match="animated.gif is animated"):
            load_thumbnail(tmp_path / "animated.gif", 16)
        thumb = load_thumbnail(tmp_path / "still.gif", 16)
    assert thumb.shape == (12, 16, 3) and thumb[..., 0].min() > 0.9
