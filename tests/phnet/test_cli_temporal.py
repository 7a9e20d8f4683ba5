"""`phnet harmonize --temporal` (a folder of frames) and `--reference`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer, cli

W, H = 40, 32


def _frame(t: int, cut: bool = False) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = rng.integers(60, 140, (H, W, 3)).astype(np.int16)
    if cut:
        base = base[::-1, ::-1] + np.array([90, -40, -40])
    return np.clip(base + t, 0, 255).astype(np.uint8)


def _mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[8:26, 14:28] = 255
    return m


def _write_clip(tmp_path, frames: int = 6, cut_at: int = 4):
    comps, masks = tmp_path / "frames", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    for t in range(frames):
        name = f"frame{t * 5}.png"  # frame5 must come before frame10: natural order
        Image.fromarray(_frame(t, t >= cut_at)).save(comps / name)
        Image.fromarray(_mask()).save(masks / name)
    return comps, masks


def test_temporal_folder_matches_the_library(tiny_folder, tmp_path, capsys):
    comps, masks = _write_clip(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2"]) == 0
    printed = capsys.readouterr().out
    assert "6 frames" in printed and "frame20.png" in printed  # the cut is found and named
    names = [f"frame{t * 5}.png" for t in range(6)]
    results = np.stack([np.asarray(Image.open(out / n)) for n in names])
    frames = np.stack([_frame(t, t >= 4) for t in range(6)])
    expected = Harmonizer.from_pretrained(tiny_folder, device="cpu")(frames, _mask() / 255.0, temporal=2.0)
    assert np.abs(results.astype(int) - expected.astype(int)).max() <= 1
    background = _mask() == 0
    assert (results[:, background] == frames[:, background]).all()


def test_temporal_needs_a_folder(tiny_folder, tmp_path):
    comp, mask = tmp_path / "c.png", tmp_path / "m.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    with pytest.raises(SystemExit, match="folder of frames"):
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_folder),
                  "--temporal"])


def test_reference_mask_file(tiny_folder, tmp_path):
    comp, mask, ref = tmp_path / "c.png", tmp_path / "m.png", tmp_path / "r.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    reference = np.zeros((H, W), np.uint8)
    reference[:, :8] = 255
    Image.fromarray(reference).save(ref)
    assert cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights",
                     str(tiny_folder), "--device", "cpu", "--reference", str(ref)]) == 0
    expected = Harmonizer.from_pretrained(tiny_folder, device="cpu")(_frame(0), _mask() / 255.0,
                                                                     reference_mask=reference / 255.0)
    assert np.abs(np.asarray(Image.open(tmp_path / "o.png")).astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(SystemExit, match="reference mask"):
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "p.png"), "--weights", str(tiny_folder),
                  "--reference", str(tmp_path / "missing.png")])
