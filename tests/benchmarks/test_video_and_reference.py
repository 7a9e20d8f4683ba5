"""The clips and reference-region benchmark runs end to end on two small portraits (it once imported a function
the library no longer has, and nothing noticed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def test_the_clips_and_reference_tables_are_written(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(2):
        grid = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(grid).resize((96, 96), Image.BICUBIC).save(tmp_path / "images" / f"p[{i}].png")
        mask = np.zeros((96, 96), np.uint8)
        mask[24:90, 28:68] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"p[{i}].png")  # a name glob read as a pattern
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "video_and_reference.py"), "--data", str(tmp_path),
                           "--frames", "4", "--clips", "1", "--limit", "2", "--size", "64"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Clips" in done.stdout and "### Reference region" in done.stdout
    assert "| fMSE, 2 frames after the cut |" in done.stdout  # a shot of two frames: it said 3


def test_a_folder_without_a_pools_layout_is_named(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "video_and_reference.py"),
                           "--data", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "holds no images/ and masks/ folders" in done.stderr


def test_photos_without_a_usable_mask_are_skipped_and_none_left_is_refused(tmp_path, capsys):
    """An empty folder ended in a ZeroDivisionError after the weights loaded; an all-black mask in the library's
    words, partway through, without the photo's name."""
    from benchmarks.video_and_reference import load

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(SystemExit, match="no usable image/mask pairs"):
        load(tmp_path, 4)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(SystemExit, match="no usable image/mask pairs"):
        load(tmp_path, 4)
    assert "skipped a.png: its mask is empty" in capsys.readouterr().err


@pytest.mark.parametrize("tall, offsets", [
    (True, [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]),  # one pixel right a frame, one down every second
    (False, [(3, t) for t in range(6)]),  # one pixel right a frame, centred in height
])
def test_the_clips_crop_moves_as_the_docstring_and_the_docs_say(tall, offsets):
    """They said it panned one pixel per frame along the longer side; in a portrait it moved diagonally."""
    from benchmarks import video_and_reference

    frames, side = 6, 16  # the photo's shorter side is side + frames: fit() leaves it as it is
    shape = (side + frames + 18, side + frames) if tall else (side + frames, side + frames + 18)
    mask = np.zeros(shape, np.float32)
    mask[6:12, 7:12] = 1
    image = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    _, _, masks = video_and_reference.shot(image, mask, frames, side, seed=0)
    found = []
    for m in masks:
        rows, cols = np.nonzero(m)
        found.append((6 - rows.min(), 7 - cols.min()))
    assert found == offsets
    for text in (video_and_reference.__doc__, (REPO / "docs" / "video-and-reference.md").read_text(encoding="utf-8")):
        words = " ".join(text.split())
        assert "one pixel per frame to the right" in words
        assert "in a photo at least as tall as it is wide also one pixel down every second frame" in words


def test_a_wide_photo_pans_across_its_subject_and_a_frame_without_it_is_refused_by_name():
    """A subject in a wide photo's right part was in no frame of the pan from the left edge: the clip table came out
    all nan without a word, or ended in the library's 'every picture's mask is empty'."""
    from benchmarks import video_and_reference

    frames, side = 6, 16
    shape = (side + frames, 3 * (side + frames))
    mask = np.zeros(shape, np.float32)
    mask[6:12, 50:56] = 1
    image = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    _, _, masks = video_and_reference.shot(image, mask, frames, side, seed=0, name="wide.png")
    assert all(m.sum() == 36 for m in masks)  # the whole subject in every frame
    tall = np.zeros((3 * (side + frames), side + frames), np.float32)
    tall[-6:, 7:12] = 1  # below every frame of the pan from the top
    with pytest.raises(SystemExit, match="tall.png: its subject is outside frame 1 of the panning 16×16 px crop"):
        video_and_reference.shot(image.transpose(1, 0, 2), tall, frames, side, seed=0, name="tall.png")
