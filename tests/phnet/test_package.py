"""The package as editors and type checkers read it: public names they can see without running it, and typing."""

import ast
from pathlib import Path

import pytest

import phnet

ROOT = Path(phnet.__file__).parent


def _static_names(tree: ast.Module) -> set[str]:
    """Names bound at the top of a module as a type checker reads it: imports and assignments, also under
    ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    for node in tree.body:
        body = node.body if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING") else [node]
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
            elif isinstance(stmt, ast.Assign):
                names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
            elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                names.add(stmt.name)
    return names


def test_every_public_name_is_visible_to_editors_and_type_checkers():
    """Harmonizer and PHNet came only from a module __getattr__, so an editor completed nothing on them and a type
    checker took them as Any."""
    tree = ast.parse((ROOT / "__init__.py").read_text(encoding="utf-8"))
    assert set(phnet.__all__) - _static_names(tree) == set()
    from phnet.harmonizer import Harmonizer
    from phnet.modeling import PHNet

    assert phnet.Harmonizer is Harmonizer and phnet.PHNet is PHNet


def test_the_package_says_it_carries_type_hints():
    """Without py.typed a type checker ignores the hints of an installed package (mypy: "missing library stubs")."""
    tomllib = pytest.importorskip("tomllib")
    assert (ROOT / "py.typed").is_file()
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["phnet"]
