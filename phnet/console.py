"""The ``phnet`` command's entry point: it imports nothing heavy itself, so that Ctrl-C while torch loads
(a second or more) ends the command quietly, with the shell's code for it, not with a traceback."""

from __future__ import annotations

import sys


def entry() -> None:
    try:
        from .cli import entry as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()
