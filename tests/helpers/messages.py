"""The messages a package's code raises, read from its source: for the tests that hold their form."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator


def message_templates(root: Path, returned: bool = False) -> Iterator[tuple[str, ast.expr, set[str]]]:
    """(file:line, the message, the names the file gives to errors it catches) of every error raised under ``root``
    (a folder or a file) with words of its own: the first argument of ``raise X(...)`` and of an exception class's
    ``super().__init__(...)``; with ``returned``, also of ``return XError(...)`` (a helper that words an error for
    its caller to raise)."""
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        caught = {node.name for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler) and node.name}
        for node in ast.walk(tree):
            call = node.exc if isinstance(node, ast.Raise) else node.value if isinstance(node, ast.Return) else node
            if not isinstance(call, ast.Call) or not call.args:
                continue
            if isinstance(node, ast.Return):
                if not (returned and ast.unparse(call.func).endswith("Error")):
                    continue
            elif not (isinstance(node, ast.Raise) or ast.unparse(call.func) == "super().__init__"):
                continue
            yield f"{path.relative_to(root.parent)}:{node.lineno}", call.args[0], caught


def last_words(message: ast.expr) -> str | None:
    """The literal text a message template ends with; None where it ends with a value, or is no template."""
    if isinstance(message, ast.BinOp) and isinstance(message.op, ast.Add):
        return last_words(message.right)
    if isinstance(message, ast.Constant) and isinstance(message.value, str):
        return message.value
    if isinstance(message, ast.JoinedStr) and message.values and isinstance(message.values[-1], ast.Constant):
        return message.values[-1].value
    return None


def first_words(message: ast.expr) -> str | None:
    """The literal text a message template starts with; None where it starts with a value, or is no template."""
    if isinstance(message, ast.BinOp) and isinstance(message.op, ast.Add):
        return first_words(message.left)
    if isinstance(message, ast.Constant) and isinstance(message.value, str):
        return message.value
    if isinstance(message, ast.JoinedStr) and message.values and isinstance(message.values[0], ast.Constant):
        return message.values[0].value
    return None
