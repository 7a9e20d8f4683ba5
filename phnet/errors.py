"""Errors in words: an allocation that failed, the one line of an error worth showing, and refusals made from
their fields."""

from __future__ import annotations

import errno
import functools
import re
from typing import Any, TypeVar

_NO_MEMORY = re.compile(r"out of memory|can't allocate memory")  # CUDA's, NCCL's; torch's CPU allocator's
_WORKER_NO_MEMORY = re.compile(r"Caught \w*MemoryError in DataLoader worker")  # (numpy's _ArrayMemoryError too)
_Error = TypeVar("_Error", bound=BaseException)


def out_of_memory(error: BaseException) -> bool:
    """A CPU or GPU allocation that failed: a MemoryError, an OSError of errno ENOMEM, or torch's RuntimeError
    saying so (CUDA's is a subclass of it). A data-loader worker's error comes as a RuntimeError quoting its
    traceback: it counts by what the worker caught, not by the words of the code it quotes."""
    if isinstance(error, MemoryError) or (isinstance(error, OSError) and error.errno == errno.ENOMEM):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    if "Original Traceback" in text:
        return _WORKER_NO_MEMORY.match(text) is not None or _NO_MEMORY.search(error_line(error)) is not None
    return _NO_MEMORY.search(text) is not None


def error_line(error: BaseException) -> str:
    """The error's first line, or the wrapped error's own message where a data-loader worker passed it on
    ("Caught X in DataLoader worker process 0. Original Traceback ... X: message")."""
    text = str(error).strip()
    if "Original Traceback" in text:
        return text.splitlines()[-1].split(": ", 1)[-1]
    return (text.splitlines() or [type(error).__name__])[0]


def clause(message: object) -> str:
    """A message (or an error's) without its closing period, for words of ours to follow it: "{e}. Check ..." read
    "... again.. Check ..." after a message that ends as a sentence does. An ellipsis is kept."""
    text = str(message).rstrip()
    return text[:-1] if text.endswith(".") and not text.endswith("...") else text


def memory_advice(error: _Error) -> _Error | ValueError:
    """An allocation failure as a ValueError that says what to do; any other error as it is."""
    if not out_of_memory(error):
        return error
    first = error_line(error)
    return ValueError(f"not enough memory for this picture ({first}): close other programs, or resize it")


class ByFields:
    """Put first among the bases of an exception whose constructor takes its fields and words the message itself:
    it is then pickled and copied (sent to or from a worker process, copied by a host) by those fields, where the
    default gives the constructor the message alone and fails. Not for an OSError, whose constructor reads its
    arguments itself (``sources.NotInCache`` writes its own ``__reduce__``)."""

    _fields: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        made = super().__new__(cls, *args, **kwargs)  # type: ignore[call-arg]
        made._fields = (args, kwargs)
        return made

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        args, kwargs = self._fields
        return functools.partial(type(self), **kwargs), args
