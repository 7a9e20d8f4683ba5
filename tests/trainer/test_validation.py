"""trainer.validation: the figures a run logs at each validation."""
from __future__ import annotations

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
