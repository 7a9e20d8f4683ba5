"""The lines, points and labels a picture is drawn with, for tests of its geometry rather than its pixels."""
from __future__ import annotations


class DrawRecorder:
    """A module's ImageDraw.Draw, which also keeps the lines and ellipses drawn (with their colours) and the text
    anchored "mt" (the x tick labels and the titles)."""

    def __init__(self, monkeypatch, module):
        real = module.ImageDraw.Draw
        self.lines, self.ellipses, self.labels, self.inner = [], [], [], None

        def draw(img):
            self.inner = real(img)
            return self

        monkeypatch.setattr(module.ImageDraw, "Draw", draw)

    def line(self, xy, **kw):
        self.lines.append((kw.get("fill"), xy))
        return self.inner.line(xy, **kw)

    def ellipse(self, xy, **kw):
        self.ellipses.append((kw.get("fill"), xy))
        return self.inner.ellipse(xy, **kw)

    def text(self, xy, text, **kw):
        if kw.get("anchor") == "mt":
            self.labels.append(text)
        return self.inner.text(xy, text, **kw)
