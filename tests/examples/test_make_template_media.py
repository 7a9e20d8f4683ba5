"""The template pictures' labels on the oldest Pillow the project takes."""
from __future__ import annotations

from PIL import Image, ImageFont


def test_labels_are_drawn_with_a_pillow_older_than_10_1(monkeypatch):
    """load_default(size=) came in Pillow 10.1: --thumbnails wrote the pictures, then failed on 9.5 and 10.0."""
    from examples import make_template_media

    bitmap = ImageFont.load_default()

    def old_load_default():
        return bitmap

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    picture = make_template_media._label(Image.new("RGB", (160, 40), (200, 200, 200)), "before")
    assert picture.getpixel((5, 5)) == (0, 0, 0)  # the label's box is drawn


def test_without_scikit_image_the_install_line_is_given(tmp_path, monkeypatch):
    """It ended in a ModuleNotFoundError traceback."""
    import sys

    import pytest

    from examples import make_template_media

    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(SystemExit, match="pip install scikit-image"):
        make_template_media.make_pictures(tmp_path / "out")
    assert not (tmp_path / "out").exists()
