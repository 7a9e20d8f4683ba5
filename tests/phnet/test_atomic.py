"""phnet.atomic: a file is replaced whole or not at all, and what went wrong is the error raised."""
from __future__ import annotations

import os

import pytest

from phnet import atomic


def test_an_interrupt_during_the_write_is_raised_even_where_the_half_file_cannot_be_removed(tmp_path, monkeypatch):
    """On Windows a writer cut short may still hold its file open: removing it failed, and that PermissionError
    replaced the Ctrl-C, so a batch went on to the next picture."""
    def interrupted(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "unlink", lambda path: (_ for _ in ()).throw(PermissionError(32, "in use")))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(tmp_path / "result.png", interrupted)
    assert not (tmp_path / "result.png").exists()


def test_a_target_held_open_elsewhere_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    def refused(src, dst):
        raise PermissionError(13, "Access is denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", refused)
    with pytest.raises(PermissionError, match=r"cannot replace .*result.png \(is it open in another program\?\)"):
        atomic.write_atomic(tmp_path / "result.png", lambda tmp: open(tmp, "wb").write(b"png"))
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_long_name_is_written(tmp_path):
    name = "p" * 240 + ".png"
    atomic.write_atomic_text(tmp_path / name, "x")
    assert os.listdir(tmp_path) == [name]


def test_a_missing_folder_is_named_by_the_file_asked_for(tmp_path):
    """The error named '.config.json.4b028c094b0c.tmp', a file the caller never asked for."""
    with pytest.raises(FileNotFoundError) as e:
        atomic.write_atomic_text(tmp_path / "nope" / "config.json", "{}")
    assert e.value.filename == str(tmp_path / "nope" / "config.json") and ".tmp" not in str(e.value)


def test_a_folder_that_is_a_file_is_named_by_the_file_asked_for(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as e:
        atomic.write_atomic_text(tmp_path / "afile" / "out.json", "{}")
    assert e.value.filename == str(tmp_path / "afile" / "out.json")
