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
        grey = np.asarray(mask.convert("L").resize(size, Image.BILINEAR))
        m = grey >= max(1, (int(grey.max()) + 1) // 2)  # half the mask's own peak: a faint mask is outlined too
        edge = np.zeros_like(m)  # where a pixel differs from the one above or to its left (no wrapping round)
        edge[1:] |= m[1:] ^ m[:-1]
        edge[:, 1:] |= m[:, 1:] ^ m[:, :-1]
        pixels = np.array(left)
        pixels[edge] = (255, 64, 64)
        left = Image.fromarray(pixels)
    lines = _wrapped(after_label, size[0] - 16)
    bar = 28 + LINE_HEIGHT * (len(lines) - 1)
    canvas = Image.new("RGB", (2 * size[0] + 8, size[1] + bar), (24, 24, 24))
    canvas.paste(left, (0, bar))
    canvas.paste(right, (size[0] + 8, bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 8), "composite", fill=(235, 235, 235))
    for i, line in enumerate(lines):
        draw.text((size[0] + 16, 8 + LINE_HEIGHT * i), line, fill=(235, 235, 235))
    return canvas


LINE_HEIGHT = 14  # Pillow's default font is 11 px high


def _wrapped(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` pixels in Pillow's default font, broken between words (a word
    longer than the width gets a line of its own)."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]
