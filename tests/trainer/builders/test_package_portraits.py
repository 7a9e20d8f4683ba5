"""The package-image data-set builder: split, geometry, usable pictures."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers.interrupts import exit_code
from tests.helpers.opencv import needs_opencv
from trainer.builders import package_portraits as pp


def test_split_is_deterministic_by_source_and_holds_out_the_example():
    keys = [f"media-api/templates/x{i}.webp" for i in range(400)]
    splits = [pp.split_of(k, 15) for k in keys]
    assert splits == [pp.split_of(k, 15) for k in keys]
    assert 0.08 < splits.count("val") / len(keys) < 0.22
    assert pp.split_of("skimage/astronaut", 0) == "val"


def test_the_reserved_evaluation_bundle_is_never_a_source():
    names = [m for m, _ in pp.MEDIA_PACKAGES]
    assert "comfyui_workflow_templates_media_image" not in names
    assert set(pp.FORBIDDEN_PACKAGES).isdisjoint(names)


def test_crop_window_limits_the_aspect_and_follows_the_subject():
    mask = np.zeros((300, 900), bool)
    mask[100:200, 700:800] = True
    y0, y1, x0, x1 = pp.crop_window(300, 900, mask)
    assert (y1 - y0, x1 - x0) == (300, 400)
    assert x0 <= 700 and x1 >= 800


def test_usable_rejects_flat_and_grey_pictures():
    rng = np.random.default_rng(0)
    colour = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
    grey = np.repeat(colour[..., :1], 3, axis=2)
    assert pp.usable(colour, 256)
    assert not pp.usable(grey, 256)
    assert not pp.usable(np.full((300, 300, 3), 128, np.uint8), 256)
    assert not pp.usable(colour[:200], 256)


def test_only_mit_alone_or_a_choice_offering_it_counts_as_mit():
    from trainer.builders.package_pictures import is_mit

    for licence in ("MIT", "MIT License", "mit", "MIT OR Apache-2.0", "(Apache-2.0 OR MIT)"):
        assert is_mit(licence), licence
    for licence in ("MIT AND CC-BY-NC-4.0", "(MIT OR Apache-2.0) AND CC-BY-NC-4.0", "MIT WITH Some-exception",
                    "MIT-0", "LicenseRef-Proprietary", "Proprietary, not for training", "MIT License, Other/Proprietary"
                    " License", "Not MIT", "unknown"):
        assert not is_mit(licence), licence


def _installed_bundle(site, module: str, picture: np.ndarray, metadata: str) -> None:
    from PIL import Image

    (site / module / "templates").mkdir(parents=True)
    (site / module / "__init__.py").write_text("")
    Image.fromarray(picture).save(site / module / "templates" / "a.png")
    (site / f"{module}-1.0.dist-info").mkdir()
    (site / f"{module}-1.0.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n{metadata}")


def test_an_installed_bundle_is_read_only_under_the_licence_its_metadata_gives(tmp_path, monkeypatch, picture):
    """The manifest said MIT for every bundle whatever its installed METADATA said, and a bundle licensed
    otherwise was trained on."""
    needs_opencv()
    site = tmp_path / "site"
    bundles = {"mit": "License-Expression: MIT\n", "classifier": "Classifier: License :: OSI Approved :: MIT License\n",
               "and": "License-Expression: MIT AND CC-BY-NC-4.0\n", "proprietary": "License: Proprietary\n"}
    media = []
    for i, (name, metadata) in enumerate(bundles.items()):
        module = f"comfyui_workflow_templates_media_test_{name}"
        _installed_bundle(site, module, picture(90 + i), metadata)
        media.append((module, module.replace("_", "-")))
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(pp, "MEDIA_PACKAGES", tuple(media))
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # the bundles alone
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert {e["source"] for e in manifest["entries"]} == {"media-test-mit/templates/a.png",
                                                          "media-test-classifier/templates/a.png"}
    assert {k: v for k, v in manifest["licences"].items() if "media-test" in k} == {
        "comfyui-workflow-templates-media-test-mit": "MIT",
        "comfyui-workflow-templates-media-test-classifier": "MIT License",
        "comfyui-workflow-templates-media-test-and": "MIT AND CC-BY-NC-4.0 (not MIT: left out)",
        "comfyui-workflow-templates-media-test-proprietary": "Proprietary (not MIT: left out)"}


def test_a_bundle_folder_without_its_package_file_is_skipped_as_not_installed(tmp_path, monkeypatch, picture, capsys):
    """A folder of the bundle's name without __init__.py imports as a namespace package, which has no file: the
    builder stopped with a TypeError instead of skipping the bundle."""
    site = tmp_path / "site"
    module = "comfyui_workflow_templates_media_test_namespace"
    _installed_bundle(site, module, picture(95), "License-Expression: MIT\n")
    (site / module / "__init__.py").unlink()
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(pp, "MEDIA_PACKAGES", ((module, module.replace("_", "-")),))
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert list(pp.iter_sources()) == []
    assert f"warning: {module.replace('_', '-')} not installed, skipped" in capsys.readouterr().err


def test_near_duplicate_sources_form_one_group_named_by_its_first_key():
    a, b = 0b1011_0000, 0b1011_0111        # 3 bits apart
    c = b ^ 0b111 << 8                      # 3 from b, 6 from a: joined through b
    far = ~a & (1 << 64) - 1
    keys = ["media-video/t/x.webp", "media-api/t/x.webp", "media-other/t/y.webp", "media-api/t/far.webp",
            "media-api/t/unreadable.webp"]
    groups = pp.split_groups(keys, [a, b, c, far, None])
    assert groups == {"media-video/t/x.webp": "media-api/t/x.webp", "media-api/t/x.webp": "media-api/t/x.webp",
                      "media-other/t/y.webp": "media-api/t/x.webp", "media-api/t/far.webp": "media-api/t/far.webp",
                      "media-api/t/unreadable.webp": "media-api/t/unreadable.webp"}


def test_a_copy_of_the_example_photo_is_held_out_with_it():
    groups = pp.split_groups(["media-api/a/astronaut_copy.png", "skimage/astronaut"], [5, 5])
    assert set(groups.values()) == {"skimage/astronaut"}


@pytest.mark.parametrize("args, words", [
    (["--limit", "0"], "--limit must be a number of sources from 1"),
    (["--limit", "-675"], "--limit must be a number of sources from 1"),
    (["--size", "0"], "--size must be at least 8"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--val-percent", "100"], "leave no source for training"),
])
def test_options_that_would_build_a_wrong_or_empty_pool_are_refused_before_it(tmp_path, capsys, args, words):
    """--limit 0 built an empty pool and put it in place of a good one, exiting 0."""
    from trainer.builders.package_portraits import main

    (tmp_path / "pool").mkdir()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "pool"), *args])
    assert words in capsys.readouterr().err


def test_a_build_with_no_pair_keeps_the_earlier_pool(tmp_path, monkeypatch):
    from trainer.builders import package_portraits

    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "manifest.json").write_text('{"builder": "trainer.builders.package_portraits"}')
    monkeypatch.setattr(package_portraits, "iter_sources", lambda: iter(()))
    monkeypatch.setattr(package_portraits, "load_cv2", lambda: None)
    with pytest.raises(ValueError, match=r"no photo source is installed .*comfyui-phnet\[data\]"):
        package_portraits.build(pool, log=lambda line: None)
    assert (pool / "manifest.json").read_text() == '{"builder": "trainer.builders.package_portraits"}'
    # nor into a new folder: an install without the photo packages wrote an empty pool and said it was done
    with pytest.raises(ValueError, match="no photo source is installed"):
        package_portraits.build(tmp_path / "new", log=lambda line: None)
    assert not (tmp_path / "new").exists()


def _wide_picture(seed: int, w: int = 1024, h: int = 256) -> np.ndarray:
    """Colour ramps under a few filled ellipses, four times as wide as high."""
    from PIL import Image, ImageDraw

    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    im = Image.fromarray(np.stack([(x * r.uniform(.2, .6) + r.uniform(0, 99)) % 255,
                                   (y * r.uniform(.2, .6) + r.uniform(0, 99)) % 255,
                                   ((x + y) * r.uniform(.1, .3)) % 255], -1).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = r.integers(0, w - 80), r.integers(0, h - 80)
        d.ellipse([x0, y0, x0 + r.integers(40, 160), y0 + r.integers(40, 160)],
                  fill=tuple(int(v) for v in r.integers(0, 255, 3)))
    return np.asarray(im)


def test_masks_of_a_cropped_wide_picture_keep_the_coverage_rule_and_the_manifest_says_theirs(tmp_path, monkeypatch):
    """The mask was checked on the whole frame, then cropped to 4:3 around the subject: saved masks covered up
    to 78 % of the picture, and the manifest's fg was the uncropped mask's."""
    needs_opencv()
    from PIL import Image

    sources = [pp.Source(f"media-api/templates/wide{i}.png", lambda k, i=i: [_wide_picture(100 + i)])
               for i in range(8)]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=128, val_size=128, frames=1, val_percent=0, min_side=128,
                        log=lambda line: None)
    assert len(manifest["entries"]) == 16
    for e in manifest["entries"]:
        saved = np.asarray(Image.open(tmp_path / "out" / "train" / "masks" / f"{e['name']}.png")) > 127
        assert e["size"][1] <= e["size"][0] * pp.MAX_ASPECT
        assert 0.04 <= saved.mean() <= 0.65 and abs(saved.mean() - e["fg"]) < 0.02, e


def test_ctrl_c_midway_ends_with_one_line_and_keeps_the_earlier_pool(tmp_path, monkeypatch, capsys):
    """It ended in a traceback."""
    from trainer.builders import package_portraits

    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "manifest.json").write_text('{"builder": "trainer.builders.package_portraits"}')

    def interrupted(key):
        raise KeyboardInterrupt

    monkeypatch.setattr(package_portraits, "iter_sources", lambda: iter([pp.Source("skimage/a", interrupted)]))
    monkeypatch.setattr(package_portraits, "load_cv2", lambda: None)
    assert exit_code(lambda: package_portraits.main([str(pool)])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: interrupted; {pool} is as it was before this build: run it again to build the pool")
    assert (pool / "manifest.json").read_text() == '{"builder": "trainer.builders.package_portraits"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]


def test_a_reserved_bundle_listed_as_a_source_stops_the_build_under_python_O_too(monkeypatch):
    """The check was an assert: under ``python -O`` the reserved evaluation pictures were read as sources."""
    monkeypatch.setattr(pp, "MEDIA_PACKAGES", (*pp.MEDIA_PACKAGES, (pp.FORBIDDEN_PACKAGES[0], "reserved")))
    with pytest.raises(RuntimeError, match="internal error: comfyui_workflow_templates_media_image is reserved"):
        next(pp.iter_sources())


def test_reading_an_animation_s_frames_leaves_no_file_open(tmp_path):
    from PIL import Image

    from tests.helpers.open_files import no_file_left_open

    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with no_file_left_open(tmp_path):
        read = pp.frames_from_file(tmp_path / "a.gif", 2)
    assert [tuple(int(v) for v in frame[0, 0]) for frame in read] == [(255, 0, 0), (0, 128, 0)]
