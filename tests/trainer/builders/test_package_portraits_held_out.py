"""The package-image builder drops reserved pictures, re-encoded or resized, and keeps the rest."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal

import numpy as np
import pytest
from PIL import Image

from tests.helpers.opencv import needs_opencv
from trainer.builders import package_portraits as pp


def _file_source(key: str, data: bytes) -> pp.Source:
    return pp.Source(key, lambda k: pp.frames_from_file(io.BytesIO(data), k), lambda: data)


def test_build_excludes_planted_copies_of_a_reserved_picture(tmp_path, monkeypatch, reserved, picture, encoded):
    needs_opencv()
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    smaller = np.asarray(Image.fromarray(rgb).resize((90, 90), Image.LANCZOS))
    sources = [
        _file_source("media-api/templates/same_file.png", reserved),
        _file_source("media-api/templates/re_encoded.jpg", encoded(rgb, "JPEG", quality=75)),
        _file_source("media-other/templates/resized.png", encoded(smaller)),
        pp.Source("skimage/decoded_copy", lambda k: [smaller]),    # no file: checked by its pixels
        _file_source("media-api/templates/unrelated.png", encoded(picture(21))),
    ]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    lines = []
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64, log=lines.append)
    assert {e["source"] for e in manifest["entries"]} == {"media-api/templates/unrelated.png"}
    assert manifest["held_out_excluded"] == 4
    assert [s["source"] for s in manifest["skipped"] if s["reason"] == pp.HELD_OUT] == [s.key for s in sources[:4]]
    assert "held out: 4 of 5 sources excluded (reserved pictures or near-duplicates of them)" in lines
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["held_out_excluded"] == 4


def test_a_near_duplicate_of_a_reserved_copy_is_dropped_with_it(tmp_path, monkeypatch, reserved, picture, encoded):
    """A crop 10 bits from the reserved picture but 5 from a dropped closer crop was grouped with it and
    still trained on: only a source's own distance to the reserved list was checked."""
    needs_opencv()
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    sources = [_file_source("media-api/templates/crop8.png", encoded(np.ascontiguousarray(rgb[8:-8, 8:-8]))),
               _file_source("media-api/templates/crop10.png", encoded(np.ascontiguousarray(rgb[10:-10, 10:-10]))),
               _file_source("media-api/templates/unrelated.png", encoded(picture(21)))]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert manifest["near_duplicate_groups"] == [[s.key for s in sources[1::-1]]]
    assert {e["source"] for e in manifest["entries"]} == {"media-api/templates/unrelated.png"}
    assert manifest["held_out_excluded"] == 2
    assert [s["source"] for s in manifest["skipped"]] == [s.key for s in sources[:2]]


@pytest.mark.parametrize("kind", ["small", "transparent"])
def test_a_reserved_copy_the_build_cannot_use_still_takes_its_near_duplicates_with_it(
        tmp_path, monkeypatch, reserved, encoded, kind):
    """Only the frames the build would use were hashed: a reserved copy too small or on transparency had no
    dHash, formed no group, and its near-duplicate (10 bits from the reserved list) was trained on."""
    needs_opencv()
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    crop8 = np.ascontiguousarray(rgb[8:-8, 8:-8])
    if kind == "small":
        copy = encoded(np.asarray(Image.fromarray(crop8).resize((40, 40), Image.LANCZOS)))
    else:
        alpha = np.where(np.arange(80) < 40, 255, 0).astype(np.uint8)[None, :].repeat(80, 0)
        copy = encoded(np.dstack([crop8, alpha]))
    sources = [_file_source("media-api/templates/crop8.png", copy),
               _file_source("media-api/templates/crop10.png", encoded(np.ascontiguousarray(rgb[10:-10, 10:-10])))]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert manifest["entries"] == []
    assert manifest["skipped"] == [{"source": s.key, "reason": pp.HELD_OUT} for s in sources]


def test_copies_of_one_picture_land_in_one_split(tmp_path, monkeypatch, picture, encoded):
    needs_opencv()
    rgb = picture(3)
    copies = [f"media-{name}/templates/portrait.webp" for name in ("api", "video", "other")] + ["skimage/portrait"]
    # keys of copies that the key hash alone sends to different splits
    assert len({pp.split_of(k, 30, 30) for k in copies}) > 1
    sources = [_file_source(k, encoded(rgb, "JPEG", quality=70 + 5 * i)) for i, k in enumerate(copies)]
    sources.append(_file_source("media-api/templates/other.png", encoded(picture(4))))
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    lines = []
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=30, test_percent=30,
                        min_side=64, log=lines.append)
    split = {e["source"]: e["split"] for e in manifest["entries"]}
    assert {split[k] for k in copies} == {pp.split_of(min(copies), 30, 30)}
    assert manifest["near_duplicate_groups"] == [sorted(copies)]
    assert "near-duplicates: 4 sources in 1 groups, each group split together" in lines


def test_a_reserved_picture_as_a_later_frame_of_an_animation_is_dropped(tmp_path, monkeypatch, reserved, picture):
    needs_opencv()
    frames = [Image.fromarray(picture(s)) for s in (30, 31)] + [Image.open(io.BytesIO(reserved)).convert("RGB")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    sources = [_file_source("media-video/templates/clip.webp", buf.getvalue())]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=3, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert manifest["entries"] == [] and manifest["held_out_excluded"] == 1


def test_a_rebuild_replaces_the_pool_whole_and_an_interrupted_one_leaves_it_as_it_was(tmp_path, monkeypatch,
                                                                                     picture, encoded):
    """A rebuild wrote into the old pool: pairs of the old splits stayed (a photo in train and in val), and
    an interrupted rebuild left old and new pairs under the old manifest."""
    needs_opencv()
    sources = [_file_source(f"media-api/templates/p{i}.png", encoded(picture(40 + i))) for i in range(6)]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    out = tmp_path / "pool"
    args = dict(size=64, val_size=64, frames=1, min_side=64, log=lambda line: None)
    pp.build(out, val_percent=0, **args)
    assert len(list((out / "train" / "images").iterdir())) > 0
    manifest = pp.build(out, val_percent=100, **args)
    assert {e["split"] for e in manifest["entries"]} == {"val"}
    assert list((out / "train" / "images").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]  # no staging or old folder left

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(i):
        raise KeyboardInterrupt

    monkeypatch.setattr(pp, "_build_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pp.build(out, val_percent=0, **args)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool"]


def test_a_folder_that_is_not_a_pool_is_never_replaced(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"a photo")
    with pytest.raises(SystemExit, match="^error: .*not a pool this builder made.*give a new or empty folder"):
        pp.main([str(mine)])
    assert (mine / "holiday.jpg").read_bytes() == b"a photo"


def _dies_at_two(i):
    if i == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    return i


def test_a_killed_worker_stops_the_build_with_a_message_instead_of_a_wait_for_ever():
    with pytest.raises(SystemExit, match="a worker process died .*fewer than 2 --workers"):
        list(pp._each(_dies_at_two, 6, workers=2))


def test_workers_on_a_system_that_cannot_fork_build_in_one_process(tmp_path, monkeypatch, picture, encoded):
    """On Windows --workers 2 failed after reading every source with "error: cannot find context for 'fork'"."""
    needs_opencv()
    sources = [_file_source(f"media-api/templates/p{i}.png", encoded(picture(40 + i))) for i in range(3)]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    args = dict(size=64, val_size=64, frames=1, min_side=64, val_percent=30)
    forked = pp.build(tmp_path / "forked", log=lambda line: None, workers=2, **args)
    real = multiprocessing.get_context

    def windows_get_context(method=None):
        if method == "fork":
            raise ValueError(f"cannot find context for {method!r}")
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", windows_get_context)
    lines = []
    manifest = pp.build(tmp_path / "out", log=lines.append, workers=2, **args)
    assert "note: this system cannot fork worker processes: the pool is built in this one, not in 2" in lines
    assert manifest["entries"] == forked["entries"] != []


def test_a_pool_holding_other_things_is_not_rebuilt_over_them(tmp_path):
    pool = tmp_path / "pool"
    (pool / "train").mkdir(parents=True)
    (pool / "manifest.json").write_text(json.dumps({"builder": "trainer.builders.package_portraits"}))
    (pool / "runs").mkdir()
    (pool / "runs" / "notes.txt").write_text("a run of mine")
    with pytest.raises(SystemExit, match="holds runs besides the pool.*move them out first"):
        pp.main([str(pool)])
    assert (pool / "runs" / "notes.txt").read_text() == "a run of mine"


def test_sources_whose_names_come_out_the_same_keep_a_file_each(tmp_path, monkeypatch, picture, encoded):
    """x.png and x.webp, a_b.png and a/b.png were written to one file each pair: a picture lost, and the
    manifest describing the other picture's file twice."""
    needs_opencv()
    keys = ["media-api/templates/portrait.png", "media-api/templates/portrait.webp",
            "media-other/templates/a_b.png", "media-other/templates/a/b.png", "media-api/templates/solo.png"]
    sources = [_file_source(k, encoded(picture(30 + i))) for i, k in enumerate(keys)]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lambda line: None)
    names = [e["name"] for e in manifest["entries"]]
    assert len(names) == len(set(names)) and {e["source"] for e in manifest["entries"]} == set(keys)
    assert len(list((tmp_path / "out" / "train" / "images").iterdir())) == len(names)
    assert "media-api_solo_f0" in names and "media-api_portrait_webp_f0" in names  # a name no other claims stays


def test_a_still_of_an_animations_later_frame_and_a_mirrored_copy_are_split_with_their_originals(
        tmp_path, monkeypatch, picture, encoded):
    """Only the first frame was hashed, unmirrored: a held-out still could be trained on as the animation's
    third frame, and a mirrored copy (the same picture to a model that flips) landed in the other split."""
    needs_opencv()
    clip = [Image.fromarray(picture(40 + k)) for k in range(3)]
    animation = io.BytesIO()
    clip[0].save(animation, "WEBP", save_all=True, append_images=clip[1:], lossless=True, duration=100)
    sources = [_file_source("media-video/templates/clip1.webp", animation.getvalue()),
               _file_source("media-api/templates/still1.png", encoded(picture(42), "JPEG", quality=90)),
               _file_source("media-api/templates/x3.png", encoded(picture(50))),
               _file_source("media-other/templates/x3_flipped.png",
                            encoded(np.ascontiguousarray(picture(50)[:, ::-1])))]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=3, val_percent=50, min_side=64,
                        log=lambda line: None)
    assert sorted(manifest["near_duplicate_groups"]) == [
        ["media-api/templates/still1.png", "media-video/templates/clip1.webp"],
        ["media-api/templates/x3.png", "media-other/templates/x3_flipped.png"]]
    split = {e["source"]: e["split"] for e in manifest["entries"]}
    assert split["media-api/templates/still1.png"] == split["media-video/templates/clip1.webp"]
    assert split["media-api/templates/x3.png"] == split["media-other/templates/x3_flipped.png"]


def test_flat_frames_the_build_drops_join_no_sources(tmp_path, monkeypatch, picture):
    """A black frame's dHash is 0: every animation ending on one was chained into one group."""
    needs_opencv()
    sources = []
    for i in range(3):
        clip = [Image.fromarray(picture(60 + 2 * i)), Image.fromarray(picture(61 + 2 * i)),
                Image.new("RGB", (96, 96))]
        animation = io.BytesIO()
        clip[0].save(animation, "WEBP", save_all=True, append_images=clip[1:], lossless=True, duration=100)
        sources.append(_file_source(f"media-video/templates/clip{i}.webp", animation.getvalue()))
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=3, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert manifest["near_duplicate_groups"] == []


def test_one_file_shipped_by_two_bundles_is_one_source(tmp_path, monkeypatch, picture, encoded):
    """A byte-identical file in two bundles became two training sources with different masks."""
    needs_opencv()
    data = encoded(picture(70))
    sources = [_file_source("media-api/templates/portrait.png", data),
               _file_source("media-video/templates/portrait.png", data),
               _file_source("media-api/templates/other.png", encoded(picture(71)))]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert {e["source"] for e in manifest["entries"]} == {sources[0].key, sources[2].key}
    assert manifest["skipped"] == [{"source": sources[1].key, "reason": f"byte-identical to {sources[0].key}"}]


def test_an_all_versions_pool_records_the_versions_it_read_their_licences_and_what_they_held_out(
        tmp_path, monkeypatch, reserved, picture, encoded):
    """The manifest listed only the installed versions, MIT for all, and not the reserved pictures the
    older versions held."""
    needs_opencv()
    from trainer.builders import package_history as ph

    tally = ph.Tally("media-api", versions=["0.3.11"], licences={"0.3.11": "MIT"}, held_out=2, kept=1)
    older = [_file_source("media-api/v0.3.11/templates/old.png", encoded(picture(80))),
             _file_source("media-api/v0.3.11/templates/r1.png", reserved),
             _file_source("media-api/v0.3.11/templates/r2.webp", encoded(picture(7), "WEBP", quality=80))]
    monkeypatch.setattr(ph, "history_sources", lambda cache, min_side, log: (older, [tally]))
    monkeypatch.setattr(pp, "iter_sources", lambda: iter([]))
    lines = []
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lines.append, all_versions=True)
    assert [e["source"] for e in manifest["entries"]][0] == older[0].key
    assert manifest["older_versions"] == {"media-api": {"0.3.11": "MIT"}}
    assert manifest["held_out_excluded"] == 2
    assert "of them from older versions: 2" in lines
