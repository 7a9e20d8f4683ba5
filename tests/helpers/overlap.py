"""Two threads made to interleave: one inside ``phnet.imageio.decode.quiet()`` (a picture being opened) while the
other runs some work whose own block is held open until the reader has left (``hold()``, called from inside it)."""
from __future__ import annotations

import threading
from typing import Callable


class ReadOverlap:
    def __init__(self) -> None:
        self._inside, self._held, self._left = threading.Event(), threading.Event(), threading.Event()

    def hold(self) -> None:
        """Called inside the work's block: keeps it open until the reader has left ``quiet()``."""
        self._held.set()
        self._left.wait(1)

    def run(self, work: Callable[[], object]) -> None:
        from phnet.imageio.decode import quiet

        def read():
            with quiet():
                self._inside.set()
                self._held.wait(1)
            self._left.set()

        def other():
            self._inside.wait(5)
            work()

        threads = [threading.Thread(target=read), threading.Thread(target=other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
