"""A check that code closed the files it opened, told by the ResourceWarning of a file collected while open."""
from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Iterator


@contextlib.contextmanager
def no_file_left_open(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Fails where the code inside left a file of ``folder`` open (only those: another test's file left open may
    be collected here too)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    left = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and str(folder) in str(w.message)]
    assert not left, left
