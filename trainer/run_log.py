"""A run's ``log.jsonl`` (one JSON record per log interval, validation or event) and its ``curves.png``."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from phnet.atomic import write_atomic_text
from trainer.curves import draw_curves


class RunLog:
    """JSONL log + curve PNG, written by rank 0 only (other ranks hold a disabled log). The curves are redrawn
    at every validation and event, and for training losses at most every ``REDRAW_S`` seconds: a drawing
    reads the whole log, which a long run's every tenth step would redraw."""

    REDRAW_S = 10.0

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None):
        self.path = out_dir / "log.jsonl"
        self.curve = out_dir / "curves.png"
        self.enabled = enabled
        self.records: list[dict] = []
        self.drawn_at = -float("inf")
        if not enabled:
            return
        if self.path.exists() and resume_step is not None:
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                # entries past the checkpoint will be written again
                if rec.get("step", 0) <= resume_step:
                    self.records.append(rec)
        write_atomic_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, rec: dict, curves: bool = False) -> None:
        if not self.enabled:
            return
        rec = {**rec, "time": round(time.time(), 3)}
        self.records.append(rec)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if curves and (rec.get("type") != "train" or time.monotonic() - self.drawn_at >= self.REDRAW_S):
            self.draw()

    def draw(self) -> None:
        if self.enabled:
            self.drawn_at = time.monotonic()
            try:
                draw_curves(self.records, self.curve)
            except Exception as exc:  # a plot must never stop training
                warnings.warn(f"could not draw {self.curve}: {exc}")
