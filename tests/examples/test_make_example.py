"""Re-creating the example composite says what to install, not a traceback."""
from __future__ import annotations

import sys

import pytest


def test_without_scikit_image_the_install_line_is_given(tmp_path, monkeypatch):
    """It ended in a ModuleNotFoundError traceback."""
    from examples import make_example

    for name in ("skimage", "skimage.data"):
        monkeypatch.setitem(sys.modules, name, None)  # the import fails as where it is not installed
    with pytest.raises(SystemExit, match='pip install scikit-image "opencv-python-headless<5"'):
        make_example.make(tmp_path / "out")
    assert not (tmp_path / "out").exists()
