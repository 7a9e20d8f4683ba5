"""The options a call takes, checked before any work (phnet.options)."""

import numpy as np
import pytest
import torch

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


def test_numbers_of_any_kind_are_options(harmonizer):
    """numpy and one-element torch numbers (a slider's value, np.linspace) work where Python numbers do."""
    img, m = photo(32, 40), subject_mask(32, 40)
    want = harmonizer.harmonize(img, m, strength=0.5, threshold=10)
    for number in (np.float64, np.float32, torch.tensor):
        got = harmonizer.harmonize(img, m, strength=number(0.5), threshold=number(10))
        assert np.array_equal(got.image, want.image) and got.corrections == want.corrections
    assert np.array_equal(harmonizer(img, m, threshold=np.int64(10), strength=0.5), want.image)
    torch_img = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    torch_mask = torch.from_numpy(m)[None, None]
    assert torch.equal(harmonizer.harmonize_tensor(torch_img, torch_mask, strength=np.float32(0.5)),
                       harmonizer.harmonize_tensor(torch_img, torch_mask, strength=0.5))
    for bad in (True, "0.5", np.bool_(True), torch.tensor([0.5, 0.5])):
        with pytest.raises(ValueError, match="strength must be a number"):
            harmonizer(img, m, strength=bad)
    for bad in (np.float32(-1), 300):  # (300: past any RMS change, refused in a config too)
        with pytest.raises(ValueError, match="threshold must be a number from 0 to 255"):
            harmonizer(img, m, threshold=bad)
    with pytest.raises(ValueError, match="multiple of 8 from 16"):
        harmonizer(img, m, working_size=0)  # None is the weights' own size; 0 is no size


@pytest.mark.parametrize("size, ok", [(32.0, True), (np.int64(32), True), (torch.tensor(32), True), ("32", False),
                                      (32.5, False), (True, False), (torch.tensor(True), False)])
def test_working_size_must_be_a_whole_number(harmonizer, size, ok):
    """'256' ended in a comparison TypeError and 256.0 in PIL's, in mode="official"."""
    if ok:
        out, _ = harmonizer.harmonize(photo(32, 40), subject_mask(32, 40), mode="official", working_size=size)
        assert out.shape == (32, 40, 3)
    else:
        with pytest.raises(ValueError, match="working_size must be a multiple of 8"):
            harmonizer.harmonize(photo(32, 40), subject_mask(32, 40), working_size=size)
