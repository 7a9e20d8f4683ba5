"""The package as editors and type checkers read it: public names they can see without running it, and typing."""

import ast
import collections.abc
import dataclasses
import importlib
import inspect
import os
import typing
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
    try:
        import tomllib
    except ImportError:  # Python 3.10: the package's own dependency
        tomllib = pytest.importorskip("tomli")
    assert (ROOT / "py.typed").is_file()
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["phnet"]


def _written_doc(obj) -> str:
    """``obj``'s own docstring: not one a class inherits, nor the signature a dataclass or named tuple makes up."""
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else obj.__doc__
    if isinstance(obj, type) and doc and (dataclasses.is_dataclass(obj) or hasattr(obj, "_fields")):
        made_up = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
        if doc == made_up or (hasattr(obj, "_fields") and doc.startswith(f"{obj.__name__}(")):
            return ""
    return (doc or "").strip()


def _modules() -> list[str]:
    """Every module of the package, from its files (``__main__`` runs the command, so it is not imported)."""
    import pkgutil

    found = [info.name for info in pkgutil.walk_packages([str(ROOT)], "phnet.")]
    return ["phnet"] + [name for name in found if not any(part.startswith("_") for part in name.split("."))]


def test_the_walk_finds_every_module():
    modules = _modules()
    files = {p.relative_to(ROOT.parent).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
             for p in ROOT.rglob("*.py") if not any(part.startswith("_") for part in p.stem.split(".")
                                                    if part != "__init__")}
    assert files - {"phnet.__main__"} <= set(modules) and {"phnet.pipeline", "phnet.frames"} <= set(modules)


def _public_api():
    """(name, object) for every function and class a user meets, and the methods and properties classes define:
    a module's ``__all__`` and what it defines under a name without a leading underscore."""
    found = []
    for module_name in _modules():  # every module: one added later is checked from its first commit
        module = importlib.import_module(module_name)
        listed = [(f"{module_name}.{n}", getattr(module, n)) for n in getattr(module, "__all__", ())]
        found += listed + [(f"{module_name}.{n}", v) for n, v in vars(module).items()
                           if not n.startswith("_") and getattr(v, "__module__", None) == module_name
                           and n not in getattr(module, "__all__", ())]
    found = [(name, obj) for name, obj in found if inspect.isroutine(obj) or inspect.isclass(obj)]
    for name, cls in [(name, obj) for name, obj in found if inspect.isclass(obj)]:
        for attr, value in vars(cls).items():
            value = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if not attr.startswith("_") and (inspect.isfunction(value) or isinstance(value, property)):
                found.append((f"{name}.{attr}", value))
    return found


def test_every_public_name_says_what_it_is():
    """A name without a docstring shows nothing in an editor's tooltip or help(): write one or two sentences on
    what it is or does (argument shapes and ranges where they matter)."""
    api = _public_api()
    assert {"phnet.Harmonizer.harmonize", "phnet.PHNetConfig.save", "phnet.sam.SamSegmenter.model_type",
            "phnet.metrics.mse", "phnet.corrections.Correction.unchanged"} <= {name for name, _ in api}
    assert [name for name, obj in api if not _written_doc(obj)] == []


_BARE = (dict, list, tuple, set, frozenset, type, os.PathLike, typing.Callable, typing.Iterable, typing.Iterator,
         typing.Sequence, typing.Mapping, collections.abc.Callable, collections.abc.Iterable,
         collections.abc.Iterator, collections.abc.Sequence, collections.abc.Mapping)


def _bare_generics(hint) -> list:
    """The containers in ``hint`` that say nothing of what they hold (``dict``, ``os.PathLike``): a type checker
    reads their contents as unknown."""
    if typing.get_origin(hint) is None and any(hint is bare for bare in _BARE):
        return [hint]
    return [found for arg in typing.get_args(hint) if not isinstance(arg, list) for found in _bare_generics(arg)]


def _annotated(obj):
    """(the function whose signature a caller meets, the fields a caller reads) of a public object."""
    if isinstance(obj, property):
        return obj.fget, {}
    if inspect.isclass(obj):
        fields = typing.get_type_hints(obj) if dataclasses.is_dataclass(obj) or hasattr(obj, "_fields") else {}
        return (obj.__init__ if "__init__" in vars(obj) else None), fields
    return obj, {}


def test_every_public_signature_is_typed_in_full():
    """py.typed makes type checkers trust these annotations: a name that exists only for a type checker
    (``if TYPE_CHECKING:``) breaks ``typing.get_type_hints`` at run time, a parameter or result without one is
    ``Any``, and a bare ``dict`` or ``os.PathLike`` is a container of unknowns to a strict checker."""
    untyped, bare = set(), {}
    for name, obj in _public_api():
        function, fields = _annotated(obj)
        hints = dict(fields)
        if function is not None:
            hints.update(typing.get_type_hints(function))  # raises NameError for a name bound only for checkers
            signature = inspect.signature(function)
            skipped = {"self", "cls"}
            named = [p for p in signature.parameters.values()
                     if p.name not in skipped and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            no_return = "return" not in hints and function.__name__ != "__init__"
            if no_return or any(p.name not in hints for p in named):
                untyped.add(name)
        found = {what: kinds for what, hint in hints.items() if (kinds := _bare_generics(hint))}
        if found:
            bare[name] = found
    assert sorted(untyped) == []
    assert bare == {}


def test_the_core_knows_no_host():
    """phnet/ is shared by ComfyUI, the WebUI and plain Python: no host imports, and the WebUI is
    named only where a module says it does not import it."""
    import re
    from pathlib import Path

    import phnet

    core = Path(phnet.__file__).resolve().parent
    host_import = re.compile(r"^\s*(from|import)\s+(gradio|modules|launch|comfy|folder_paths)\b", re.M)
    offenders = []
    for path in sorted(core.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if host_import.search(text):
            offenders.append(f"{path.name}: imports a host module")
        offenders += [f"{path.name}: {line.strip()}" for line in text.splitlines()
                      if re.search(r"web\s*ui|gradio|a1111", line, re.I) and "import" not in line]  # fmt: skip
    assert offenders == []
    assert not (core / "integrations.py").exists()
