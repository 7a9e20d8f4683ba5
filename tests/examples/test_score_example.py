"""The README's scoring script ends in one line saying what to change, not a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def test_a_negative_threshold_is_refused_before_any_work():
    """It printed the composite's line, then ended in the library's ValueError."""
    done = subprocess.run([sys.executable, str(REPO / "examples" / "score_example.py"), "--threshold", "-1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--threshold must be a number >= 0" in done.stderr and "got -1" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_weights_that_cannot_be_found_are_named_in_one_line(monkeypatch, capsys):
    """An unknown weights name ended in a FileNotFoundError's traceback."""
    from examples import score_example

    photo = np.asarray(Image.open(REPO / "examples" / "composite.png").convert("RGB"), dtype=np.float64)
    monkeypatch.setattr(score_example, "truth", lambda side: photo)  # the real photo needs scikit-image
    monkeypatch.setattr(sys, "argv", ["score_example.py", str(REPO / "no-such-weights")])
    with pytest.raises(SystemExit, match=r"^error: PHNet weights '.*no-such-weights' not found: give an existing"):
        score_example.main()
    assert capsys.readouterr().out.startswith("composite: fMSE 0.0")
