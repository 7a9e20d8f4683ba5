"""The package-image builder drops reserved pictures, re-encoded or resized, and keeps the rest."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from trainer.builders import package_portraits as pp


def _file_source(key: str, data: bytes) -> pp.Source:
    return pp.Source(key, lambda k: pp.frames_from_file(io.BytesIO(data), k), lambda: data)


def test_build_excludes_planted_copies_of_a_reserved_picture(tmp_path, monkeypatch, reserved, picture, encoded):
    pytest.importorskip("cv2")
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


def test_copies_of_one_picture_land_in_one_split(tmp_path, monkeypatch, picture, encoded):
    pytest.importorskip("cv2")
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
    pytest.importorskip("cv2")
    frames = [Image.fromarray(picture(s)) for s in (30, 31)] + [Image.open(io.BytesIO(reserved)).convert("RGB")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    sources = [_file_source("media-video/templates/clip.webp", buf.getvalue())]
    monkeypatch.setattr(pp, "iter_sources", lambda: iter(sources))
    manifest = pp.build(tmp_path / "out", size=64, val_size=64, frames=3, val_percent=0, min_side=64,
                        log=lambda line: None)
    assert manifest["entries"] == [] and manifest["held_out_excluded"] == 1
