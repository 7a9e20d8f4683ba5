"""A data set is written in a folder beside its destination, then put in place whole: a rebuild with other
settings leaves nothing of the old set behind (a photo in two splits), an interrupted one leaves the old
set as it was, and a folder some other program wrote is never replaced."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterator


def check_replaceable(out: Path, is_ours: Callable[[Path], bool], what: str, names: set[str],
                      quiet: bool = False) -> None:
    """Stop unless ``out`` is missing, empty, or a ``what`` this builder wrote (``is_ours``) holding nothing
    but the ``names`` it writes at its top; ``quiet``: without the note that an earlier one is replaced."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file: give a folder for the {what}")
    if any(out.iterdir()) and not is_ours(out):
        raise FileExistsError(f"{out} holds files that are not a {what} this builder made, and a build replaces the "
                              "whole folder: give a new or empty folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in names)
    if foreign:
        raise FileExistsError(f"{out} holds {', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''} besides the "
                              f"{what}, and a rebuild replaces the whole folder: move them out first")
    if any(out.iterdir()) and not quiet:
        print(f"[build] {out} holds an earlier {what}: this build replaces it when it succeeds (if it fails, the "
              "earlier one is kept)", file=sys.stderr)


def interrupted(out: Path | str | None, what: str) -> str:
    """The line a command ends with on Ctrl-C: a builder's ``what`` is built beside ``out`` (:func:`staged`), so
    nothing of it is in place yet; a command without ``out`` writes each of its files whole (:mod:`phnet.atomic`)
    or nothing."""
    if out is None:
        return f"error: interrupted; no file was left half-written: run it again for the {what}"
    return f"error: interrupted; {out} is as it was before this build: run it again to build the {what}"


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A new folder beside ``out`` to build in; when the block ends without an error it becomes ``out``."""
    out = out.resolve() if out.is_symlink() else out.absolute()  # a link to the set: the set is replaced, the link kept
    if os.path.ismount(out):
        raise FileExistsError(f"{out} is a mount point, which cannot be replaced whole: give a folder inside it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # a folder's usual mode (0777 less the umask, which the kernel applies), not mkdtemp's 0700: a set built
    # once is read by other users and services too
    staging = out.parent / f".{out.name}.building-{secrets.token_hex(6)}"
    os.mkdir(staging, 0o777)
    try:
        yield staging
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{time.time_ns()}"
            out.rename(old)
        try:
            staging.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)  # the previous set goes back where it was
            raise
        if old is not None:
            try:
                shutil.rmtree(old, ignore_errors=True)
            except KeyboardInterrupt:  # the new set is in place: the build is done, the old set's rest is left
                print(f"note: interrupted while removing the previous set; the new one is in place in {out}: "
                      f"delete {old} by hand", file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
