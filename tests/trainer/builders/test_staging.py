"""trainer.builders.staging: a set appears whole in place of the old one, or the old one stays."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer.builders import staging


def test_a_link_to_the_set_stays_a_link_and_a_failed_swap_puts_the_old_set_back(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with staging.staged(link) as tmp:
        (tmp / "new.txt").write_text("new")
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]

    rename = Path.rename

    def refused(self, target):  # the new set cannot take the old one's place
        if self.name.startswith(".real.building-"):
            raise OSError(18, "Invalid cross-device link")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refused)
    with pytest.raises(OSError, match="Invalid cross-device link"):
        with staging.staged(real) as tmp:
            (tmp / "newer.txt").write_text("newer")
    assert sorted(p.name for p in real.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_built_set_gets_a_folders_usual_mode_not_a_temporary_ones(tmp_path):
    """mkdtemp's 0700 went with the rename: a set 'built once and shared' could be read by its builder alone."""
    import os

    umask = os.umask(0o022)
    try:
        with staging.staged(tmp_path / "set") as building:
            (building / "x.txt").write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "set").stat().st_mode & 0o777 == 0o755


def test_ctrl_c_while_the_old_set_is_removed_leaves_the_new_set_done(tmp_path, monkeypatch, capsys):
    """The builders then said the output was as it was before the build: the new set was in place."""
    out = tmp_path / "set"
    out.mkdir()
    (out / "old.txt").write_text("old")
    remove = shutil.rmtree

    def interrupted(path, *a, **k):
        if ".old-" in str(path):
            raise KeyboardInterrupt
        remove(path, *a, **k)

    monkeypatch.setattr(staging.shutil, "rmtree", interrupted)
    with staging.staged(out) as folder:
        (folder / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert "interrupted while removing the previous set; the new one is in place" in capsys.readouterr().err
