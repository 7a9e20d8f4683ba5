"""The before/after picture the CLI's --compare writes."""
from __future__ import annotations

import numpy as np
from PIL import Image

from phnet.visualize import before_after

RED = (255, 64, 64)


def test_the_subject_is_outlined_where_it_is_and_nowhere_else():
    grey = Image.new("RGB", (64, 48), (128, 128, 128))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:48, 40:64] = 255  # touching the bottom and right borders
    sheet = np.asarray(before_after(grey, grey, Image.fromarray(mask), height=48))
    left = sheet[-48:, 48:112]  # below the caption bar, centred in its 160 px half
    red = (left == RED).all(-1)
    assert red[10, 40:].all() and red[10:, 40].all()  # the subject's top and left sides
    assert not red[:, :40].any() and not red[:10].any()  # no outline wrapped round to the opposite borders


def test_a_faint_mask_the_harmonizer_applies_is_outlined_too():
    grey = Image.new("RGB", (64, 48), (128, 128, 128))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 100  # a 40 % mask: harmonized, at that weight
    red = (np.asarray(before_after(grey, grey, Image.fromarray(mask), height=48))[-48:, 48:112] == RED).all(-1)
    assert red[10, 20:40].all() and red[10:30, 20].all()


def test_a_long_caption_wraps_within_its_half_instead_of_being_cut_off():
    black = Image.new("RGB", (256, 256))
    label = "unchanged: correction below the do-no-harm threshold"
    sheet = before_after(black, black, after_label=label)
    assert sheet.height > 256 + 28  # a second line of caption
    right = np.asarray(sheet)[:sheet.height - 256, 256 + 8:]
    lit = np.flatnonzero((right > 100).any(-1).any(0))
    assert lit.max() < 256 - 4  # nothing drawn to the picture's last pixel, where the text was cut off
    one_line = before_after(Image.new("RGB", (800, 256)), Image.new("RGB", (800, 256)), after_label=label)
    assert one_line.height == 256 + 28  # a wide picture keeps its one-line bar


def test_a_narrow_picture_s_caption_stays_within_the_canvas_and_clear_of_composite():
    """A 200×3000 picture scaled to 34 px wide cut its caption's words off at the canvas edge."""
    tall = Image.new("RGB", (200, 3000))
    sheet = before_after(tall, tall, after_label="left unchanged: too little background (2% of the picture)")
    bar = sheet.height - 512
    text = np.asarray(sheet)[:bar] > 100
    lit = np.flatnonzero(text.any(-1).any(0))
    half = (sheet.width - 8) // 2
    assert lit.max() < sheet.width - 4 and sheet.width >= 2 * 160 + 8
    assert not text[:, half - 4:half + 12].any()  # a gap between "composite" and the caption


def test_16_bit_pictures_and_masks_are_read_by_their_own_scale():
    """PIL clipped 16-bit values at 255: a grey ramp came out white and a mask was outlined at its faint ring."""
    ramp = Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16))
    mask = np.zeros((64, 64), np.uint16)
    mask[17:47, 17:47] = 1000  # a faint ring round the subject
    mask[22:42, 22:42] = 65535
    sheet = np.asarray(before_after(ramp, ramp, Image.fromarray(mask), height=64))
    left = sheet[-64:, 48:48 + 64]  # the 64 px picture centred in its 160 px half
    assert 100 < np.median(left) < 160
    red = (left == RED).all(-1)
    assert red[22, 22:42].all() and not red[17].any()
