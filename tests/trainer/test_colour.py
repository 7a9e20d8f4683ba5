"""trainer.colour: Lab values of known sRGB colours (CIE Lab, D65), not only a consistent round trip."""
from __future__ import annotations

import numpy as np
import pytest

from trainer.colour import lab_to_rgb, masked_stats, rgb_to_lab


@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.5, 0.5, 0.5), (53.3889, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
])
def test_known_colours_have_their_published_lab_values(rgb, lab):
    np.testing.assert_allclose(rgb_to_lab(np.array(rgb)), lab, atol=0.01)
    np.testing.assert_allclose(lab_to_rgb(np.array(lab)), rgb, atol=1e-4)


def test_a_near_black_grey_is_on_the_linear_part_of_the_lightness():
    """Below (6/29)^3 of the white, L* = (29/3)^3 Y (CIE 15): sRGB 1/255 is Y = 1/255/12.92."""
    y = 1 / 255 / 12.92
    np.testing.assert_allclose(rgb_to_lab(np.full(3, 1 / 255)), [(29 / 3) ** 3 * y, 0.0, 0.0], rtol=1e-9, atol=1e-6)


def test_masked_stats_weigh_each_pixel_by_its_mask():
    x = np.zeros((2, 2, 3))
    x[0, 0] = [1.0, 2.0, 3.0]
    weight = np.array([[1.0, 0.0], [1.0, 0.0]])  # (0, 0) and (1, 0): values [1, 2, 3] and 0
    mean, std = masked_stats(x, weight)
    np.testing.assert_allclose(mean, [0.5, 1.0, 1.5])
    np.testing.assert_allclose(std, [0.5, 1.0, 1.5])
    mean, std = masked_stats(x, np.zeros((2, 2)))  # no weight: zeros, not NaN
    assert np.all(mean == 0) and np.all(std == 0)
