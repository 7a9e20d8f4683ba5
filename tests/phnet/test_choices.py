"""The names an option may take, readable without torch and the same wherever they were read before."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_choices_load_no_torch():
    """The command's parser offers them: `phnet --help` loaded torch (seconds) to list three modes."""
    code = "import sys, phnet.choices; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_the_choices_are_those_the_library_takes():
    from phnet import choices, fullres, options, precision

    assert options.MODES is choices.MODES and fullres.METHODS is choices.METHODS
    assert precision.CHOICES is choices.PRECISIONS and precision.CHOICES == ("auto", *precision.DTYPES)
