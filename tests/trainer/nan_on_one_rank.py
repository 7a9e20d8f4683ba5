"""``python -m trainer.fit`` in which process 1's training loss is NaN at its NAN_AT-th step (one batch that
overflows), for torchrun in test_fit.py: the other process's own losses stay finite."""
import os
import sys

from trainer.fit import main
from trainer.losses import HarmonizationLoss

if os.environ.get("RANK") == "1":
    forward, calls = HarmonizationLoss.forward, [0]

    def poisoned(self, pred, real, mask):
        total, parts = forward(self, pred, real, mask)
        calls[0] += 1
        return (total * float("nan") if calls[0] == int(os.environ["NAN_AT"]) else total), parts

    HarmonizationLoss.forward = poisoned

sys.exit(main())
