"""trainer.validation: the figures a run logs at each validation."""
from __future__ import annotations

import pytest
import torch

from tests.trainer.test_calibrate import _batches


def test_validation_builds_no_autograd_graph():
    """A helper put between the decorator and validate() took its torch.no_grad: graphs, 5x the memory."""
    from trainer.validation import validate

    seen = []

    class Watch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(0.9))

        def forward(self, comp, mask):
            seen.append(torch.is_grad_enabled())
            return comp * self.scale

    validate(Watch(), _batches(), torch.device("cpu"))
    assert seen and not any(seen)


def test_a_split_with_no_near_right_composite_has_no_near_right_score():
    """With no near-right composite the two near-right figures were 0.0, a perfect score, in the log and the
    progress line."""
    from trainer.validation import validate

    class Untouched(torch.nn.Module):
        def forward(self, comp, mask):
            return comp

    batch = _batches()[0]
    res = validate(Untouched(), [batch], torch.device("cpu"))
    assert res["near_right_n"] == 1 and res["composite_near_right_fmse"] > 0
    assert res["near_right_fmse"] == res["composite_near_right_fmse"]
    wrong_only = {k: v[:1] if torch.is_tensor(v) else v for k, v in batch.items()}
    res = validate(Untouched(), [wrong_only], torch.device("cpu"))
    assert res["near_right_n"] == 0 and res["n"] == 1
    assert res["near_right_fmse"] is None and res["composite_near_right_fmse"] is None
    assert res["fmse"] == res["composite_fmse"] > 0


def test_a_diverged_model_s_validation_is_recorded_as_nan():
    """The trainer records a NaN validation and passes it over for best/: a check of the metrics' inputs that
    refused NaN predictions stopped the run there, before its checkpoint."""
    from trainer.validation import validate

    class Diverged(torch.nn.Module):
        def forward(self, comp, mask):
            return comp * float("nan")

    result = validate(Diverged(), _batches(), torch.device("cpu"))
    assert torch.isnan(torch.tensor(result["fmse"])) and result["n"] == 2


def test_a_padded_picture_s_share_is_its_box_over_the_whole_square():
    from trainer.validation import picture_share

    like = torch.zeros(2, 3, 8, 16)  # height 8, width 16: the two sides are not taken for each other
    share = picture_share({"box": torch.tensor([[0, 0, 4, 8], [1, 2, 2, 12]])}, like)
    assert share.dtype == torch.float64 and share.tolist() == [32 / 128, 24 / 128]
    assert picture_share({}, like).tolist() == [1.0, 1.0]


def test_the_figures_are_means_over_every_sample_of_every_batch():
    from trainer.validation import validate

    class Untouched(torch.nn.Module):
        def forward(self, comp, mask):
            return comp

    batch = _batches()[0]  # casts of 40 and 2 levels over the subject: fMSE 1600 and 4
    third = {k: v[:1] if torch.is_tensor(v) else v for k, v in batch.items()}
    res = validate(Untouched(), [batch, third], torch.device("cpu"))
    assert res["n"] == 3 and res["near_right_n"] == 1
    assert res["composite_fmse"] == res["fmse"] == pytest.approx((1600 * 2 + 4) / 3, rel=1e-4)
    assert res["near_right_fmse"] == pytest.approx(4.0, rel=1e-4)
    assert res["untouched_mse"] == 0.0  # the photo given back as it is
    one = validate(Untouched(), [third], torch.device("cpu"))
    assert one["n"] == 1 and one["composite_fmse"] == pytest.approx(1600, rel=1e-4)


def test_an_overshooting_prediction_is_scored_as_it_would_be_shown_clipped_to_0_1():
    from trainer.validation import validate

    class Overshoot(torch.nn.Module):
        def forward(self, comp, mask):
            return comp + 1.0

    res = validate(Overshoot(), _batches(), torch.device("cpu"))
    assert res["fmse"] == pytest.approx(127.5 ** 2, rel=1e-4)  # white over photos of grey 0.5
    assert res["untouched_mse"] == pytest.approx(127.5 ** 2 * 16 / 64, rel=1e-4)  # the subject is 16 of 64 px


def test_autocast_for_runs_in_the_run_s_precision_and_none_in_float32():
    from trainer.validation import autocast_for

    a = torch.rand(4, 4)
    with autocast_for(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), None):
        assert (a @ a).dtype == torch.float32


def test_a_missing_validation_file_is_told_from_an_empty_or_a_one_byte_one(tmp_path):
    import types

    from trainer.data.common import Record
    from trainer.validation import validation_photos

    photo = tmp_path / "a.png"

    def fingerprint():
        return validation_photos(types.SimpleNamespace(records=[Record("a", photo)]))

    missing = fingerprint()
    photo.write_bytes(b"")
    empty = fingerprint()
    photo.write_bytes(b"x")
    assert len({missing, empty, fingerprint()}) == 3
