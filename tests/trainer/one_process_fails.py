"""``python -m trainer.fit`` in which process 1 alone meets trouble at its AT-th step, for torchrun in test_fit.py:
FAULT=nan, its training loss is NaN (one batch that overflows; the other process's own losses stay finite);
FAULT=error, it stops with a user error (a file only it reads, say); FAULT=slow_validation: process 0's
validation takes AT seconds (a large validation split); FAULT=skip: process 1's first AT samples are bad (run
with data.on_bad_sample = "skip"). With WINDOWS=FILE each process appends to FILE, at every log record, what its own
loss window holds, the clock standing still for the record's rate (test_loop.py)."""
import os
import sys
import time

from trainer.fit import main
from trainer.losses import HarmonizationLoss

if os.environ.get("RANK") == "1" and os.environ["FAULT"] in ("nan", "error"):
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

if os.environ.get("RANK") == "1" and os.environ["FAULT"] == "skip":
    from trainer.data import BadSampleError
    from trainer.data.base import HarmonizationDataset

    make_sample, bad = HarmonizationDataset.make_sample, [int(os.environ["AT"])]

    def sometimes_bad(self, index, rng):
        if self.train and bad[0] > 0:
            bad[0] -= 1
            raise BadSampleError(f"sample {index} is bad on process 1")
        return make_sample(self, index, rng)

    HarmonizationDataset.make_sample = sometimes_bad

if os.environ.get("RANK") == "0" and os.environ["FAULT"] == "slow_validation":
    import trainer.loop

    validate = trainer.loop.validate

    def slow(*args, **kwargs):
        time.sleep(float(os.environ["AT"]))
        return validate(*args, **kwargs)

    trainer.loop.validate = slow

if os.environ.get("WINDOWS"):
    import json
    import types

    import trainer.loop

    log_window = trainer.loop.TrainingLoop.log_window

    def recorded(self):
        w = self.window
        with open(os.environ["WINDOWS"], "a") as f:
            f.write(json.dumps({"rank": int(os.environ["RANK"]), "step": self.pos.step, "n": w.n,
                                "samples": w.samples, "loss": float(w.loss),
                                **{k: float(v) for k, v in w.parts.items()}}) + "\n")
        w.t, w.excluded, clock = 0.0, 0.0, trainer.loop.time
        trainer.loop.time = types.SimpleNamespace(time=lambda: 10.0)  # ten seconds of training in every window
        try:
            return log_window(self)
        finally:
            trainer.loop.time = clock

    trainer.loop.TrainingLoop.log_window = recorded

sys.exit(main())
