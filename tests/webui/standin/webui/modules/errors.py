"""``modules/errors.py``: errors are printed with a ``***`` prefix and the last few are kept."""

import sys
import textwrap
import traceback

exception_records = []


def record_exception():
    _, exc, tb = sys.exc_info()
    if exc is None:
        return
    exception_records.append({"exception": str(exc), "type": type(exc).__name__,
                              "traceback": traceback.format_tb(tb)})  # fmt: skip
    del exception_records[:-5]


def report(message, *, exc_info=False):
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print(textwrap.indent(traceback.format_exc(), "    "), file=sys.stderr)
        print("---", file=sys.stderr)
