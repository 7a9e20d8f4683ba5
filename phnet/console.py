"""The ``phnet`` command's entry point: it imports nothing heavy itself, so that Ctrl-C while torch loads
(a second or more) ends the command quietly, with the shell's code for it, not with a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterator


def entry() -> None:
    """The ``phnet`` command: the CLI imported under :func:`loading_quietly`, then run with Ctrl-C as it was (the
    CLI loads torch under it too, once the command line parsed)."""
    printable_anywhere()
    with loading_quietly():
        from .cli import entry as run
    run()


@contextlib.contextmanager
def loading_quietly() -> Iterator[None]:
    """A block that imports torch or numpy under :func:`quiet_interrupt`: Ctrl-C meanwhile ends the process with
    exit code 130, and Ctrl-C is as it was after the block."""
    previous = quiet_interrupt()
    try:
        yield
    except KeyboardInterrupt:  # where Ctrl-C was left as it was, or raised by the import itself
        sys.exit(interrupted_status())
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def quiet_interrupt() -> Callable[[int, FrameType | None], Any] | int | None:
    """Ctrl-C while torch and numpy load ends the process at once, with the shell's code for it: raised inside
    their native import code, the KeyboardInterrupt came out as another error (numpy's "cannot load module more
    than once per process", with a traceback) or aborted the process (pybind11). For a command that has written
    nothing yet. Returns the handler it replaced, or None where it left Ctrl-C as it was (ignored, or not the main
    thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None
    return signal.signal(signal.SIGINT, _end_now)


def interrupted_status(signum: int = signal.SIGINT) -> int:
    """The exit status of a command that caught the KeyboardInterrupt of ``signum`` and ends on it (Ctrl-C: 130), as
    a shell reports a command the signal stopped. Where that KeyboardInterrupt came out of code Python ran from a
    string (the methods a dataclass or a namedtuple makes, while a module imports), CPython notes it, caught or not,
    and ``python -m`` then ended the process by the signal itself after the command's own line, not with this
    status."""
    exec("", {})  # a string run that completes clears that note
    return 128 + signum


def _end_now(signum: int, frame: FrameType | None) -> None:
    os._exit(128 + signum)


def printable_anywhere() -> None:
    """Redirected to a file or a pipe on Windows, stdout takes the ANSI code page (cp1252): a non-Latin file name
    or a '×' in a message stopped the command after its work, or marked a written result as failed. What the
    stream cannot hold is written as an escape instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change (closed, or not a text file)
                pass
