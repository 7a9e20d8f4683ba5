"""phnet.atomic: a file is replaced whole or not at all, and what went wrong is the error raised."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from phnet import atomic


def test_an_interrupt_during_the_write_is_raised_even_where_the_half_file_cannot_be_removed(tmp_path, monkeypatch):
    """On Windows a writer cut short may still hold its file open: removing it failed, and that PermissionError
    replaced the Ctrl-C, so a batch went on to the next picture."""
    def interrupted(tmp):
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "unlink", lambda path: (_ for _ in ()).throw(PermissionError(32, "in use")))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(tmp_path / "result.png", interrupted)
    assert not (tmp_path / "result.png").exists()


def test_a_picture_save_interrupted_midway_closes_and_removes_its_temporary_file(tmp_path, monkeypatch):
    """PIL's save(path) closes its file on an Exception only: a Ctrl-C while grid.png was encoded left the
    temporary file open (on Windows, then, neither removable nor renamable)."""
    from PIL import Image

    files = []

    def cut_short(picture, file, filename):
        file.write(b"\x89PNG half")
        files.append(file)
        raise KeyboardInterrupt

    Image.init()  # (a plugin imported later would register its own save again)
    monkeypatch.setitem(Image.SAVE, "PNG", cut_short)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(tmp_path / "grid.png", atomic.picture_writer(Image.new("RGB", (4, 4)), "PNG"))
    assert len(files) == 1 and files[0].closed
    assert os.listdir(tmp_path) == []


def test_a_picture_is_written_with_its_options(tmp_path):
    from PIL import Image

    atomic.write_atomic(tmp_path / "p.tif", atomic.picture_writer(Image.new("RGB", (4, 3), "red"), "TIFF",
                                                                  compression="tiff_lzw", dpi=(300, 300)))
    with Image.open(tmp_path / "p.tif") as saved:
        assert (saved.format, saved.size, saved.getpixel((0, 0))) == ("TIFF", (4, 3), (255, 0, 0))
        assert saved.info["compression"] == "tiff_lzw" and saved.info["dpi"] == (300, 300)
    assert os.listdir(tmp_path) == ["p.tif"]


def test_a_target_held_open_elsewhere_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    def refused(src, dst):
        raise PermissionError(13, "Access is denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", refused)
    with pytest.raises(PermissionError, match=r"cannot replace .*result.png \(is it open in another program\?\)"):
        atomic.write_atomic(tmp_path / "result.png", lambda tmp: Path(tmp).write_bytes(b"png"))
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


def test_an_existing_file_keeps_its_mode_and_one_that_may_not_be_written_is_refused(tmp_path, monkeypatch):
    """A private 0600 result became 0644, and a read-only one was replaced: a plain open() keeps the one and
    refuses the other."""
    private = tmp_path / "private.png"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic.write_atomic(private, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert private.read_bytes() == b"new" and private.stat().st_mode & 0o777 == 0o600
    protected = tmp_path / "protected.png"
    protected.write_bytes(b"keep")
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)  # (root may write anything)
    with pytest.raises(PermissionError, match=r"protected.png is read-only \(make it writable, or write elsewhere\)"):
        atomic.write_atomic(protected, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert protected.read_bytes() == b"keep" and sorted(p.name for p in tmp_path.iterdir()) == [
        "private.png", "protected.png"]


def test_a_link_is_written_through_and_a_folder_in_the_way_is_named(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "result.png").write_bytes(b"old")
    (tmp_path / "result.png").symlink_to(tmp_path / "data" / "result.png")
    atomic.write_atomic(tmp_path / "result.png", lambda tmp: Path(tmp).write_bytes(b"new"))
    assert (tmp_path / "result.png").is_symlink() and (tmp_path / "data" / "result.png").read_bytes() == b"new"
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OSError, match=r"Is a directory: .*folder.png is a folder, not a file"):
        atomic.write_atomic(tmp_path / "folder.png", lambda tmp: Path(tmp).write_bytes(b"new"))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_among_the_targets_leaves_every_file_as_it_was(tmp_path):
    """A folder in the way was found at its rename, after the files before it had been replaced."""
    from phnet.atomic import write_atomic_all

    (tmp_path / "a").write_text("old")
    (tmp_path / "b").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        write_atomic_all([(tmp_path / "a", lambda tmp: tmp.write_text("new")),
                          (tmp_path / "b", lambda tmp: tmp.write_text("new"))])
    assert (tmp_path / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_loop_of_links_is_named_as_a_loop_not_as_a_missing_target(tmp_path):
    """Two links to each other were named as "links to b.png, which does not exist (an unmounted drive?)", though
    b.png is there, as a link: the user went looking for a drive."""
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert atomic.missing_target(tmp_path / "a.png") == (
        f"{tmp_path / 'a.png'} links to {tmp_path / 'b.png'}, which leads back to it: a loop of links, with no file "
        "at its end")
    assert atomic.links_to_nothing(tmp_path / "gone.png") == (
        f"links to {tmp_path / 'nowhere.png'}, which does not exist (an unmounted drive?)")
