"""The options a call takes, checked before any work (phnet.options)."""

import pytest

from phnet.options import check_options
from tests.helpers.pictures import photo, subject_mask


def test_an_integer_past_any_float_is_refused_as_any_bad_option_is(harmonizer):
    """float() of it raised OverflowError ('int too large to convert to float'), where mask_tools' options said
    what they must be."""
    img, m = photo(32, 40), subject_mask(32, 40)
    rules = {"strength": "a number", "threshold": r"a number from 0 to 255 .*", "working_size": "a multiple of 8 .*"}
    for option, rule in rules.items():
        for huge in (2**2000, -(2**20000)):  # (20000 bits: past the digits Python 3.11 will print)
            with pytest.raises(ValueError, match=rf"^{option} must be {rule}, got an integer too large for a float$"):
                harmonizer(img, m, **{option: huge})
    with pytest.raises(ValueError, match=r"^working_size must be a multiple of 8 .*too large for a float$"):
        check_options(harmonizer.config, 0.5, "full", 2**2000)



def test_the_working_size_limits_are_taken_and_just_past_them_refused(tiny_config):
    from phnet.config import MAX_WORKING_SIZE, MIN_WORKING_SIZE

    for size in (MIN_WORKING_SIZE, MAX_WORKING_SIZE):
        assert check_options(tiny_config, 1.0, "full", size) == size
    for size in (MIN_WORKING_SIZE - 8, MAX_WORKING_SIZE + 8):
        with pytest.raises(ValueError, match=rf"^working_size must be a multiple of 8 .*, got {size}$"):
            check_options(tiny_config, 1.0, "full", size)


def test_a_bad_working_size_given_as_a_tensor_is_named_by_its_number(tiny_config):
    """A one-element tensor is read as the number it holds, in the message too."""
    import torch

    assert check_options(tiny_config, 0.5, "full", torch.tensor(128)) == 128
    with pytest.raises(ValueError, match=r"^working_size must be a multiple of 8 .*, got 12$"):
        check_options(tiny_config, 0.5, "full", torch.tensor(12))


def test_a_threshold_of_255_is_taken_and_numpys_flags_are_flags():
    import numpy as np

    from phnet.options import check_flag, check_threshold

    assert check_threshold(255) == 255.0 and check_threshold(0) == 0.0
    for flag in (True, False, np.True_, np.False_):
        check_flag(flag, "mask_is_alpha")
    with pytest.raises(ValueError, match="^mask_is_alpha must be True or False, got 'no'$"):
        check_flag("no", "mask_is_alpha")
