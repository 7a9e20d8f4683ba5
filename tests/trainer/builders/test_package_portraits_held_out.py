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
