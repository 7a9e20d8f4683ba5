"""A clip's frames through mode "full" (phnet.frames): each frame's estimate and its smoothed report."""

import numpy as np
import pytest
import torch

from phnet import Harmonizer
from phnet.frames import estimate_frame, smoothed_report
from tests.helpers.pictures import photo


def test_a_smoothed_frames_report_measures_its_change_as_the_network_proposed_it():
    """The report put the subject's own change back to the network's scale by hand, and kept multiplying by 0.25
    where the change is left as it is (working pixels the subject does not cover: a faint region beside a full
    speck): half the correction was reported as an eighth."""
    harmonizer = Harmonizer.from_pretrained(device="cpu", dtype="fp32")
    pixels = photo(1024, 1024, seed=2) // 4 + np.array([40, 90, 160], np.uint8)  # a scene, not one flat colour
    pixels[300:700, 350:650] = (220, 170, 120)
    for level in (1.0, 0.01):  # (at working size 128 the speck covers 1/64 of its pixel: the region counts too)
        mask = np.zeros((1024, 1024), np.float32)
        mask[300:700, 350:650] = level
        mask[40, 40] = 1.0
        frame = estimate_frame(harmonizer, torch.from_numpy(pixels), 255.0, torch.from_numpy(mask), 1.0, 128,
                               threshold=0)
        half = smoothed_report(harmonizer, frame, frame.correction * 0.5)
        assert half.smoothed == pytest.approx(frame.report.size / 2, rel=0.01), level

