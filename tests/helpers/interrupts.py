"""Ctrl-C in the middle of a command, as the builders' tests press it."""
from __future__ import annotations

from typing import Any, Callable


def exit_code(run: Callable[[], Any]) -> Any:
    """What a command's ``main`` returns or exits with; "a traceback" where a KeyboardInterrupt escapes it."""
    try:
        return run()
    except SystemExit as stop:
        return stop.code
    except KeyboardInterrupt:
        return "a traceback"


def interrupted_at(call: int, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, which raises KeyboardInterrupt at its ``call``-th call instead (counted from 1)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(None)
        if len(calls) == call:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapped
