"""File names for the pictures a builder writes: one per source, none written twice."""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Iterable

# room left for a builder's suffixes (a number, a copy's _<k>, .png) within a file name's 255 bytes
MAX_BASE_BYTES = 200


def distinct_bases(keys: Iterable[str], plain: Callable[[str], str], whole: Callable[[str], str]) -> dict[str, str]:
    """Each key's file name base: ``plain(key)`` (no extension), unless another key's comes out the same
    (x.jpg and x.png, a/x.jpg and a__x.jpg), when ``whole(key)`` (the extension kept) and, where even that is
    taken, a number: a name written twice would put one picture over another. A base too long for a file name
    is :func:`fitting`."""
    keys = list(keys)
    bases_of = {key: fitting(plain(key), key) for key in keys}
    count: dict[str, int] = {}
    for base in bases_of.values():
        count[base] = count.get(base, 0) + 1
    bases, taken = {}, {b for b, n in count.items() if n == 1}
    for key in keys:
        base = bases_of[key]
        if count[base] > 1:
            root = base = fitting(whole(key), key)
            n = 1
            while base in taken:
                base, n = f"{root}_{n}", n + 1
        taken.add(base)
        bases[key] = base
    return bases


def fitting(base: str, key: str) -> str:
    """``base``, or where it passes :data:`MAX_BASE_BYTES`, its start and a hash of ``key``: a photo deep in
    subfolders, their names joined into its own, stopped a whole build with "File name too long"."""
    raw = os.fsencode(base)
    if len(raw) <= MAX_BASE_BYTES:
        return base
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:12]
    return f"{raw[:MAX_BASE_BYTES - 13].decode('utf-8', 'ignore')}_{digest}"  # a character cut in two is left out
