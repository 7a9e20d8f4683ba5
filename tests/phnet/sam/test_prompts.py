"""Prompts for SAM: boxes from a batch's guide masks."""
from __future__ import annotations


def test_guide_boxes_read_each_guide_by_its_own_strength_and_drop_a_detectors_nobody_here():
    """A guide drawn at 40 % marks its region (an absolute 0.5 found nothing); one under 1/64 of the batch's
    strongest is noise, and an empty one gives no box: that picture's mask stays empty."""
    import numpy as np

    from phnet.sam.prompts import guide_boxes

    guides = np.zeros((4, 20, 30), np.float32)
    guides[0, 2:8, 3:12] = 1.0
    guides[1, 5:15, 10:20] = 0.4
    guides[1, 4:16, 9:21] += 0.1  # a feathered rim, under half of the guide's own strongest
    guides[2, 0:3, 0:3] = 0.01  # a detector's faint "nobody here"
    assert guide_boxes(guides) == [(3, 2, 12, 8), (10, 5, 20, 15), None, None]
    assert guide_boxes(guides[3:]) == [None]
