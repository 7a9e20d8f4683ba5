"""Prompts for SAM: boxes from a batch's guide masks."""
from __future__ import annotations

import pytest


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


def test_make_prompt_keeps_points_as_x_y_takes_one_pair_alone_and_names_the_point_outside():
    from phnet.sam.prompts import make_prompt

    prompt = make_prompt((48, 80), points=[(5, 30), (70, 2)], point_labels=[1, 0])
    assert prompt.points.tolist() == [[5, 30], [70, 2]] and prompt.labels.tolist() == [1, 0]
    assert make_prompt((48, 80), points=(5, 30)).points.tolist() == [[5, 30]]  # one (x, y) pair, not in a list
    with pytest.raises(ValueError, match=r"point \(100.0, 1.0\) lies outside the 80x48 image"):
        make_prompt((48, 80), points=[(1, 1), (100, 1)])


@pytest.mark.parametrize("box,words", [((float("nan"), 0, 10, 10), "four finite numbers"),
                                       ((0, 10, 40, 10.5), "has no area inside the 80x48 image")])
def test_make_prompt_refuses_a_box_that_is_no_number_or_has_no_height(box, words):
    from phnet.sam.prompts import make_prompt

    with pytest.raises(ValueError, match=words):
        make_prompt((48, 80), box=box)
