"""The data-set builders' OpenCV, for the tests that run them."""
from __future__ import annotations

import pytest


def needs_opencv() -> None:
    """Skip unless OpenCV with its Haar cascades is installed (before 5, as the ``data`` extra pins it)."""
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip(f"OpenCV {cv2.__version__} has no Haar cascades, which the builders use: "
                    "pip install 'opencv-python-headless<5'")
