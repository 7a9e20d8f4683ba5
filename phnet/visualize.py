"""Pictures people look at: before/after comparisons."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


COMPARE_HEIGHT = 512  # a before/after picture's height at most


def before_after(before: Image.Image, after: Image.Image, mask: Image.Image | None = None, height: int = COMPARE_HEIGHT,
                 after_label: str = "harmonized (PHNet)") -> Image.Image:
    """Composite | harmonized side by side (scaled to ``height``), the subject outlined on the left;
    ``after_label`` says what happened (e.g. that the subject was left unchanged)."""
    scale = min(1.0, height / before.height)
    size = (max(1, round(before.width * scale)), max(1, round(before.height * scale)))
    left = before.convert("RGB").resize(size, Image.LANCZOS)
    right = after.convert("RGB").resize(size, Image.LANCZOS)
    if mask is not None:
        m = np.asarray(mask.convert("L").resize(size, Image.BILINEAR)) >= 128
        edge = np.zeros_like(m)  # where a pixel differs from the one above or to its left (no wrapping round)
        edge[1:] |= m[1:] ^ m[:-1]
        edge[:, 1:] |= m[:, 1:] ^ m[:, :-1]
        pixels = np.array(left)
        pixels[edge] = (255, 64, 64)
        left = Image.fromarray(pixels)
    bar = 28
    canvas = Image.new("RGB", (2 * size[0] + 8, size[1] + bar), (24, 24, 24))
    canvas.paste(left, (0, bar))
    canvas.paste(right, (size[0] + 8, bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 8), "composite", fill=(235, 235, 235))
    draw.text((size[0] + 16, 8), after_label, fill=(235, 235, 235))
    return canvas
