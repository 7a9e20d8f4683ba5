"""The benchmarks refuse numbers they cannot run with before any work (--rounds 0 ran every memory case, then
failed on a missing key)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("module, argv", [
    ("pipeline_speed", ["--rounds", "0"]),
    ("pipeline_speed", ["--threads", "0"]),
    ("synthesis_speed", ["--batch", "0"]),
    ("synthesis_speed", ["--rounds", "0"]),
])
def test_a_count_under_one_is_refused_by_name(module, argv, capsys):
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("script, argv, words", [
    ("video_and_reference.py", ["--frames", "2", "--timing-only"], "--frames must be at least 4"),  # NaN columns
    ("fullres_methods.py", ["--data", ".", "--size", "100"], "--size must be a multiple of 8"),  # after the load
])
def test_a_size_the_benchmark_cannot_use_is_refused_before_the_work(script, argv, words):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / script), *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and words in done.stderr
