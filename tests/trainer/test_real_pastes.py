"""trainer.real_pastes: a grid of real pastes, and one error line for a folder it cannot use."""
from __future__ import annotations

import json
from pathlib import Path

from trainer.real_pastes import main

OURS = f"ours={Path(__file__).resolve().parents[2] / 'phnet' / 'assets' / 'default'}"


def test_a_pool_without_people_or_names_is_one_error_line(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"entries": []}))
    assert main([str(tmp_path), "--weights", OURS, "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path} has no person photos or no other photos in its "
                                               "test split; name them with --subjects and --backgrounds")
    assert main([str(tmp_path), "--subjects", "nobody", "--weights", OURS, "--out",
                 str(tmp_path / "grid.png")]) == 2
    assert "not in" in capsys.readouterr().err and not (tmp_path / "grid.png").exists()
