"""``python -m trainer.fit`` in which process 1 alone meets trouble at its AT-th step, for torchrun in test_fit.py:
FAULT=nan, its training loss is NaN (one batch that overflows; the other process's own losses stay finite);
FAULT=error, it stops with a user error (a file only it reads, say)."""
import os
import sys

from trainer.fit import main
from trainer.losses import HarmonizationLoss

if os.environ.get("RANK") == "1":
    forward, calls = HarmonizationLoss.forward, [0]

    def faulty(self, pred, real, mask):
        total, parts = forward(self, pred, real, mask)
        calls[0] += 1
        if calls[0] == int(os.environ["AT"]):
            if os.environ["FAULT"] == "error":
                raise ValueError("a fault of process 1 alone")
            total = total * float("nan")
        return total, parts

    HarmonizationLoss.forward = faulty

sys.exit(main())
