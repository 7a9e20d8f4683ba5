"""File names for the pictures a builder writes: one per source, none written twice."""
from __future__ import annotations

from typing import Callable, Iterable


def distinct_bases(keys: Iterable[str], plain: Callable[[str], str], whole: Callable[[str], str]) -> dict[str, str]:
    """Each key's file name base: ``plain(key)`` (no extension), unless another key's comes out the same
    (x.jpg and x.png, a/x.jpg and a__x.jpg), when ``whole(key)`` (the extension kept) and, where even that is
    taken, a number: a name written twice would put one picture over another."""
    keys = list(keys)
    bases_of = {key: plain(key) for key in keys}
    count: dict[str, int] = {}
    for base in bases_of.values():
        count[base] = count.get(base, 0) + 1
    bases, taken = {}, {b for b, n in count.items() if n == 1}
    for key in keys:
        base = bases_of[key]
        if count[base] > 1:
            root = base = whole(key)
            n = 1
            while base in taken:
                base, n = f"{root}_{n}", n + 1
        taken.add(base)
        bases[key] = base
    return bases
