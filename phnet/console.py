"""The ``phnet`` command's entry point: it imports nothing heavy itself, so that Ctrl-C while torch loads
(a second or more) ends the command quietly, with the shell's code for it, not with a traceback."""

from __future__ import annotations

import sys


def entry() -> None:
    _printable_anywhere()
    try:
        from .cli import entry as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


def _printable_anywhere() -> None:
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
