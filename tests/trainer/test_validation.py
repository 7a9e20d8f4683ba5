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
