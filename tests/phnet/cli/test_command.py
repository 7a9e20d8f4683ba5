"""The command's parsing answered before torch loads, and torch loaded once a command runs (quietly under Ctrl-C)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from phnet import console
from phnet.cli import command

REPO = Path(__file__).resolve().parents[3]
# the `phnet` command in a fresh process; its last line: whether torch loaded, and the exit code
RUN = ("import sys\nfrom phnet.console import entry\nsys.argv = ['phnet', *sys.argv[1:]]\ntry:\n    entry()\n"
       "except SystemExit as stop:\n    print('torch' in sys.modules, stop.code)\n")


def _phnet(*argv: str, cwd: Path = REPO) -> tuple[bool, object]:
    done = subprocess.run([sys.executable, "-c", RUN, *argv], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=_env())
    loaded, code = done.stdout.splitlines()[-1].split()
    return loaded == "True", None if code == "None" else int(code)


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["harmonize", "--help"], 0),
    (["convert", "--help"], 0),
    (["harmonize", "a.png", "-o", "x.png", "--bogus"], 2),  # a mistyped option
    (["harmonize", "a.png"], 2),  # -o missing
    (["harmonize", "a.png", "-o", "x.png", "--mode", "square"], 2),  # not one of the choices
    (["harmonize", "a.png", "-o", "x.png", "--method", "sharp"], 2),
    (["harmonize", "a.png", "-o", "x.png", "--dtype", "fp8"], 2),
    ([], 2),
])
def test_help_and_a_parse_error_load_no_torch(argv, code):
    """`phnet --help` or a mistyped option took 2-4 s, loading torch to say what argparse says."""
    assert _phnet(*argv) == (False, code)


@pytest.mark.parametrize("argv", [["--version"], ["harmonize", "missing.png", "-o", "out.png"]])
def test_a_command_that_runs_loads_torch(argv, tmp_path):
    loaded, code = _phnet(*argv, cwd=tmp_path)
    assert loaded and code == (0 if argv == ["--version"] else 2)


def _handler_while_loading(monkeypatch, run) -> list:
    """The SIGINT handler in place while the command parses and while it loads its work, ``run`` being the
    command's entry or main."""
    seen = []
    parsed = command._parsed

    def parsing(argv):
        seen.append(signal.getsignal(signal.SIGINT))
        return parsed(argv)

    def work(name):
        seen.append(signal.getsignal(signal.SIGINT))
        raise KeyboardInterrupt  # Ctrl-C while torch loads

    monkeypatch.setattr(command, "_parsed", parsing)
    monkeypatch.setattr(command, "_work", work)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal gives it
    try:
        with pytest.raises((SystemExit, KeyboardInterrupt)) as stop:
            run(["harmonize", "a.png", "-o", "x.png"])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, outer)
    return [*seen, stop.type, getattr(stop.value, "code", None)]


def test_ctrl_c_while_the_command_loads_its_work_ends_it_quietly(monkeypatch):
    """torch now loads after parsing, out of the console's import: Ctrl-C there (or while it parses) must still end
    the command with 130, not a traceback from torch's native import code."""
    def entry(argv):
        monkeypatch.setattr(sys, "argv", ["phnet", *argv])
        command.entry()

    assert _handler_while_loading(monkeypatch, entry) == [console._end_now, console._end_now, SystemExit, 130]


def test_a_program_that_calls_main_keeps_its_own_ctrl_c_while_the_work_loads(monkeypatch):
    """Ending the process at once is for the command: a program that calls main gets its KeyboardInterrupt."""
    handler = signal.default_int_handler
    assert _handler_while_loading(monkeypatch, command.main) == [handler, handler, KeyboardInterrupt, None]


def test_version_loads_torch_quietly_under_the_command(monkeypatch, capsys):
    import builtins

    seen = []
    real_import = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "torch":
            seen.append(signal.getsignal(signal.SIGINT))
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    monkeypatch.setattr(sys, "argv", ["phnet", "--version"])
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as stop:
            command.entry()
    finally:
        signal.signal(signal.SIGINT, outer)
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("phnet ")
    assert seen[:1] == [console._end_now]


@pytest.mark.parametrize("name", ["harmonize", "convert"])
def test_each_sub_command_s_work_loads_torch_before_it_runs(name):
    """Torch loads where the command's Ctrl-C is quiet (while the work loads), not later inside the run."""
    code = f"import sys\nfrom phnet.cli import command\ncommand._work({name!r})\nprint('torch' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=_env())
    assert done.stdout.split() == ["True"], done.stderr


@pytest.mark.parametrize("option, values", [("--mode", ["full", "official"]),
                                            ("--method", ["correction", "guided", "resize"]),
                                            ("--dtype", ["auto", "fp32", "fp16", "bf16"])])
def test_the_parser_takes_every_mode_method_and_precision(option, values):
    for value in values:
        args = command._parsed(["harmonize", "a.png", "-o", "x.png", option, value])
        assert getattr(args, option[2:]) == value
