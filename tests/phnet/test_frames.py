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



def test_a_smoothed_report_names_a_change_of_a_hundredth_of_a_level_and_not_less(harmonizer):
    pixels = torch.from_numpy(photo(64, 64, seed=3))
    mask = torch.zeros(64, 64)
    mask[16:48, 20:44] = 1
    frame = estimate_frame(harmonizer, pixels, 255.0, mask, 1.0, 64, threshold=0)
    size = frame.report.size
    assert size > 1
    for gap, named in ((0.015, True), (0.005, False)):
        report = smoothed_report(harmonizer, frame, frame.correction * (1 - gap / size))
        assert (report.smoothed is not None) == named, gap
        if named:
            assert report.smoothed == pytest.approx(size - gap, abs=1e-3)


@pytest.mark.parametrize("peak, subject", [(1 / 64, True), (0.99 / 64, False)])
def test_a_clips_frame_at_a_64th_of_full_is_a_subject_and_under_it_a_trace(harmonizer, peak, subject):
    frames = np.stack([photo(32, 40, seed) for seed in range(3)])
    masks = np.zeros((3, 32, 40), np.float32)
    masks[:, 8:24, 12:28] = 1
    masks[1, 8:24, 12:28] = peak
    report = harmonizer.harmonize(frames, masks, temporal=True, threshold=0).corrections[1]
    assert report.empty_mask != subject and (report.label() == "unchanged: only a trace in the mask") != subject
