"""The code's types, as editors and type checkers read them (phnet ships py.typed): mypy, with pyproject.toml's
[tool.mypy] settings, finds nothing to say."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed: pip install -e '.[test]'")
def test_the_code_type_checks(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_shipped_code_narrows_its_types_without_assert():
    """``python -O`` drops assert statements: an invariant stated by one vanished there and the next line failed on
    None. The code users run states them with code (a raised error), which runs either way."""
    import ast

    found = []
    for folder in ("phnet", "nodes", "scripts", "trainer"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            found += [f"{path.relative_to(REPO)}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Assert)]
    assert found == []
