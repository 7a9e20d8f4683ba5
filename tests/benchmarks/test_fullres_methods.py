"""benchmarks/fullres_methods.py: carrying a working-resolution result up to full resolution."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image


def _photos(folder, subjects, black=()):
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k, (top, side) in enumerate(subjects):
        photo = (rng.random((64, 64, 3)) * 255 * (k not in black)).astype(np.uint8)
        Image.fromarray(photo).save(folder / "images" / f"p{k}.png")
        mask = np.zeros((64, 64), np.uint8)
        mask[top:top + side, top:top + side] = 255
        Image.fromarray(mask).save(folder / "masks" / f"p{k}.png")


def test_a_photo_whose_subject_vanishes_at_the_working_size_is_left_out_and_counted(tmp_path, monkeypatch, capsys):
    """Its working-resolution row scored an empty mask: fMSE 0 and fPSNR over 100 dB, averaged in without a word
    (and now refused by phnet.metrics)."""
    import torch

    from benchmarks import fullres_methods

    _photos(tmp_path, [(16, 32), (30, 2)])  # the second subject, 2 px across, is gone at 8 px
    monkeypatch.setattr(sys, "argv", ["fullres_methods.py", "--data", str(tmp_path), "--size", "8"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert fullres_methods.main() == 0
        assert torch.get_num_threads() == 1  # it set 2 for every test after it
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert out.startswith("1 composites (left out: 1 whose subject vanishes at the working size), ")

    (tmp_path / "images" / "p0.png").unlink()
    with pytest.raises(SystemExit, match=r"every photo in .* was left out: 1 whose subject vanishes at the working "
                                         r"size; give a larger --size$"):
        fullres_methods.main()


def test_a_photo_black_everywhere_is_left_out_and_counted(tmp_path, monkeypatch, capsys):
    """Its PSNR against its own peak, max(gt) = 0, was -inf, and so was every row's mean."""
    from benchmarks import fullres_methods

    _photos(tmp_path, [(16, 32), (16, 32), (30, 2)], black=(1,))
    monkeypatch.setattr(sys, "argv", ["fullres_methods.py", "--data", str(tmp_path), "--size", "8"])
    assert fullres_methods.main() == 0
    out = capsys.readouterr().out
    assert out.startswith("1 composites (left out: 1 whose subject vanishes at the working size; 1 black everywhere "
                          "(no peak of their own for PSNR)), ")
    assert "inf" not in out
