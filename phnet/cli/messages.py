"""What the command says: lines above the progress bar, and a run's verdict in words."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from ..corrections import Correction
from ..harmonizer import Harmonizer


FLAGS = {"strength": "--strength", "working_size": "--working-size", "cut_threshold": "--cut-threshold",
         "temporal window": "--temporal"}


def in_flags(error: Exception) -> str:
    """A library error about an option a flag sets, naming the flag (``working_size`` is ``--working-size``): the
    rules stay the library's."""
    return re.sub(rf"(?<!-)\b({'|'.join(FLAGS)})\b", lambda m: FLAGS[m[1]], str(error))


def say(text: str, stream: TextIO | None = None) -> None:
    """A line above the progress bar, on ``stream`` (on stdout where it is None, as ``print`` does), and nowhere
    where stdout is None too (pythonw, a closed descriptor), which tqdm before 4.69 wrote to all the same."""
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stdout
    if stream is not None:
        tqdm.write(text, file=stream)


def depth(image: np.ndarray) -> str:
    """A picture read at more than 8 bits, in words: "16-bit", "32-bit float"."""
    return f"{image.dtype.itemsize * 8}-bit" + (" float" if image.dtype.kind == "f" else "")


def left_out_note(target: Path, composite: Path, left: list[str]) -> str:
    """The note that a result (or comparison) ``target`` leaves out ``left`` of its composite (metadata its format
    cannot hold)."""
    return f"note: from {composite}, {target} leaves out {'; and '.join(left)}"


def verdict(corrections: Sequence[Correction], harmonizer: Harmonizer, unit: str = "images") -> str:
    """How much the subject changed, and what to do when the do-no-harm threshold left it as it was."""
    from ..corrections import OFFICIAL_HINT, report, weights_hint

    return report(corrections, "--threshold 0", weights_hint(harmonizer.config.name, f"--weights {OFFICIAL_HINT}"),
                  unit)
