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
