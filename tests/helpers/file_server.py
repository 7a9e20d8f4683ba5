"""A download site on 127.0.0.1 for the tests: serves files from a dict, with the faults real sites have.

``server.files["best_x.pth"] = b"..."`` serves a file (HTTP ranges honoured, as S3 does);
``server.faults["best_x.pth"]`` picks one misbehaviour: ``"cut"`` (the first answer stops halfway and
closes the connection), ``"html"`` (an error page with status 200), ``"short"`` (announces the whole
length, sends half), ``"no-range"`` (ignores Range headers), ``"slow"`` (pauses between chunks),
``"endless"`` (no Content-Length, the file over and over until the client hangs up), ``"huge"`` (the same
under a Content-Length of 1 TiB); and
``server.quirks`` (a set) changes how it speaks: ``"ignores-if-range"`` (answers a range whatever the
If-Range), ``"weak-etag"`` (a W/ ETag), ``"no-etag-on-206"`` (a range answered without its ETag),
``"always-206"`` (the whole file answered with 206 and its Content-Range, though no range was asked),
``"range-from-earlier"`` (a range answered from 7 bytes before the byte asked, its Content-Range saying so),
``"range-of-half"`` (a range answered with half the rest, its Content-Range naming the whole file's size),
``"no-content-range"`` (a range answered without its Content-Range), ``"bare-416"`` (a range past the end
refused with HTTP 416 alone, without the ``bytes */<size>`` and ETag it otherwise carries).
``server.requests`` lists (path, Range header) of every request. Every answer carries an ``ETag`` (a hash
of the file), and a range asked for ``If-Range`` another one is answered with the whole file, as S3 does.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, str] = {}
        self.quirks: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self._cut_done: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                owner._answer(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/models"

    def __enter__(self) -> "FileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.rsplit("/", 1)[-1]
        range_header = handler.headers.get("Range")
        self.requests.append((name, range_header))
        fault = self.faults.get(name)
        data = self.files.get(name)
        if data is None:
            handler.send_error(404, "Not Found")
            return
        if fault == "html":
            page = b"<html><body>Access denied</body></html>"
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        if fault in ("endless", "huge"):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            if fault == "huge":
                handler.send_header("Content-Length", str(1 << 40))
            handler.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    handler.wfile.write(data)
            return
        start = 0
        etag = ("W/" if "weak-etag" in self.quirks else "") + f'"{hashlib.md5(data).hexdigest()}"'
        if_range = None if "ignores-if-range" in self.quirks else handler.headers.get("If-Range")
        if range_header and fault != "no-range" and if_range in (None, etag) and not etag.startswith("W/"):
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                if "bare-416" not in self.quirks:
                    handler.send_header("Content-Range", f"bytes */{len(data)}")
                    handler.send_header("ETag", etag)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            end = len(data)
            if "range-from-earlier" in self.quirks:
                start = max(0, start - 7)
            if "range-of-half" in self.quirks:
                end = start + (len(data) - start) // 2
            handler.send_response(206)
            if "no-content-range" not in self.quirks:
                handler.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            data = data[:end]
        elif "always-206" in self.quirks:
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if not (start and "no-etag-on-206" in self.quirks):
            handler.send_header("ETag", etag)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", "12abc" if fault == "bad-length" else str(len(body)))
        handler.end_headers()
        if fault == "trickle":  # a byte at a time, each soon enough to keep a read's timeout from firing
            with contextlib.suppress(OSError):
                for i in range(len(body)):
                    handler.wfile.write(body[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(0.1)
            return
        if fault == "short" or (fault == "cut" and name not in self._cut_done):
            self._cut_done.add(name)
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        step = max(1, len(body) // 20)
        for i in range(0, len(body), step):
            handler.wfile.write(body[i : i + step])
            if fault == "slow":
                time.sleep(0.05)
