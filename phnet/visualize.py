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
    left = _eight_bit(before).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    right = _eight_bit(after).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    if mask is not None:
        grey = np.asarray(_eight_bit(mask).convert("L").resize(size, Image.Resampling.BILINEAR))
        m = grey >= max(1, (int(grey.max()) + 1) // 2)  # half the mask's own peak: a faint mask is outlined too
        edge = np.zeros_like(m)  # where a pixel differs from the one above or to its left (no wrapping round)
        edge[1:] |= m[1:] ^ m[:-1]
        edge[:, 1:] |= m[:, 1:] ^ m[:, :-1]
        pixels = np.array(left)
        pixels[edge] = (255, 64, 64)
        left = Image.fromarray(pixels)
    half = max(size[0], MIN_HALF)  # a narrow picture gets a wider half, centred: its caption stays readable
    lines = _wrapped(after_label, half - 16)
    bar = 28 + LINE_HEIGHT * (len(lines) - 1)
    canvas = Image.new("RGB", (2 * half + 8, size[1] + bar), (24, 24, 24))
    inset = (half - size[0]) // 2
    canvas.paste(left, (inset, bar))
    canvas.paste(right, (half + 8 + inset, bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 8), "composite", fill=(235, 235, 235))
    for i, line in enumerate(lines):
        draw.text((half + 16, 8 + LINE_HEIGHT * i), line, fill=(235, 235, 235))
    return canvas


MIN_HALF = 160  # px: room for a caption's longest words


def _eight_bit(picture: Image.Image) -> Image.Image:
    """A 16/32-bit grey or float picture at 8 bits by its own scale (PIL's convert clips it at 255)."""
    if picture.mode.startswith("I;16") or picture.mode == "I":
        return Image.fromarray(np.round(np.clip(np.asarray(picture, np.float64), 0, 65535) / 257).astype(np.uint8))
    if picture.mode == "F":
        return Image.fromarray(np.round(np.clip(np.asarray(picture, np.float64), 0, 1) * 255).astype(np.uint8))
    return picture


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
