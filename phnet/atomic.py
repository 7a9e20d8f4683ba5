"""The one way files are replaced: written beside the target under a temporary name, then renamed into
place, so a reader (or a process killed mid-write) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
else:  # PIL loads on first use, not with this module: at run time (typing.get_type_hints) the hint reads Any
    PILImage = Any


def write_atomic(target: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``target``, then rename it over ``target``.

    The file gets the mode a plain open() would give it: an existing file's own (and one that may not be
    written is refused, as open() refuses it), else 0666 minus the umask, not a temporary file's 0600, which
    would hide weights from, e.g., a ComfyUI service user. A symbolic link is written through, not replaced.
    """
    write_atomic_all([(target, write)])


def write_atomic_all(writes: Sequence[tuple[str | os.PathLike[str], Callable[[Path], object]]]) -> None:
    """:func:`write_atomic` for files that belong together (weights and their config): every target is checked
    and every new file written under its temporary name before any is renamed into place, so a file that may
    not be written, or a full disk, leaves all of them as they were."""
    targets = []
    for target, _ in writes:
        target = Path(target)
        if target.is_symlink():
            target = Path(os.path.realpath(target))
        existing = None
        with contextlib.suppress(OSError):
            existing = os.stat(target)
        if existing is not None and os.path.isdir(target):  # (found at the rename, after others were replaced)
            raise IsADirectoryError(errno.EISDIR, f"Is a directory: {target} is a folder, not a file (move it away, "
                                                  "or write elsewhere)", str(target))
        if existing is not None and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, f"Permission denied: {target} is read-only (make it writable, or "
                                                "write elsewhere)", str(target))
        targets.append((target, existing))
    tmps: list[Path] = []
    try:
        for (target, existing), (_, write) in zip(targets, writes):
            # the name's start only: the whole name plus the suffix could pass the file system's 255 bytes
            tmp = target.parent / f".{target.name[:40]}.{secrets.token_hex(6)}.tmp"
            try:  # an error named by the file asked for, not the hidden temporary one (OSError picks the subclass)
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except OSError as e:
                raise OSError(e.errno, f"{e.strerror}: cannot write {target}", str(target)) from None
            tmps.append(tmp)
            mode = (existing or os.stat(tmp)).st_mode & 0o777
            write(tmp)
            os.chmod(tmp, mode)
        for (target, _), tmp in zip(targets, tmps):
            _replace(tmp, target)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                with contextlib.suppress(OSError):  # (on Windows a writer cut short may still hold it open: the
                    os.unlink(tmp)                  # exception that cut it short is the one to raise)


def dangling_link(path: str | os.PathLike[str]) -> Path | None:
    """The symbolic link to nothing (an unmounted drive, say) among ``path`` and the folders above it that are not
    there, where making those folders would fail with a bare "File exists"; None where there is none."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        if path.is_symlink():
            return path
        path = path.parent
    return None


def missing_target(link: str | os.PathLike[str]) -> str:
    """What a symbolic link to nothing is: "LINK links to TARGET, which does not exist (an unmounted drive?)"."""
    return f"{link} {links_to_nothing(link)}"


def links_to_nothing(link: str | os.PathLike[str]) -> str:
    """:func:`missing_target` without the link's own name, for a message that named it already; a link that leads
    back to itself (through others) is named as a loop, for its target exists, as a link."""
    try:
        os.stat(link)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"links to {os.readlink(link)}, which leads back to it: a loop of links, with no file at its end"
    return f"links to {os.readlink(link)}, which does not exist (an unmounted drive?)"


def _replace(tmp: Path, target: Path, tries: int = 10) -> None:
    """``os.replace``, tried again for a second on Windows, where a viewer, the indexer or a virus scanner may
    hold either file for a moment; then the error names the target, not the temporary file."""
    for attempt in range(tries):
        try:
            os.replace(tmp, target)
            return
        except PermissionError as e:
            if os.name != "nt" or attempt == tries - 1:
                raise PermissionError(e.errno, f"{e.strerror}: cannot replace {target} (is it open in another "
                                               "program?)", str(target)) from None
            time.sleep(0.1)
        except OSError as e:  # a folder of that name, say: named by the target, not the temporary file
            raise OSError(e.errno, f"{e.strerror}: cannot replace {target}", str(target)) from None


def write_atomic_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` as UTF-8, whole or not at all (:func:`write_atomic`)."""
    write_atomic(target, text_writer(text))


def text_writer(text: str) -> Callable[[Path], object]:
    """A ``write`` for :func:`write_atomic` that writes ``text`` as UTF-8."""
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def picture_writer(picture: PILImage, format: str, **options: Any) -> Callable[[Path], object]:
    """A ``write`` for :func:`write_atomic` that saves a PIL ``picture`` as ``format`` (with ``options``) into a
    file closed however the save ends: PIL's ``save(path)`` closes its file on an Exception only, and a Ctrl-C left
    it open (on Windows an open file can be neither removed nor renamed, so the temporary file stayed)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w+b") as file:  # read and write, as PIL opens it: a TIFF's writer reads back
            picture.save(file, format=format, **options)

    return write


def nearest_existing(folder: Path) -> Path:
    """``folder``, or where it does not exist yet (-o creates it), the nearest folder above it."""
    while not os.path.exists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def cannot_write_into(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or, where it does not exist yet, in the nearest folder above it,
    where it will be created), or None where one can."""
    import tempfile

    existing = nearest_existing(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".phnet-write-check-")
    except OSError as e:
        return f"cannot write into {existing} ({e.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None
