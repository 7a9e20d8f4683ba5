"""The ``phnet`` command's entry point: quiet while the library loads."""
from __future__ import annotations

import builtins
import signal
import sys
import types


def test_ctrl_c_while_the_library_loads_ends_the_process_at_once_and_the_handler_is_put_back(monkeypatch):
    """Raised inside torch's or numpy's native import code, Ctrl-C came out as numpy's 'cannot load module more
    than once per process' with a traceback, or aborted the process; the command promises a quiet exit (130)."""
    from phnet import console

    seen = []
    real_import = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "cli" or name.endswith(".cli"):
            seen.append(signal.getsignal(signal.SIGINT))
            return types.SimpleNamespace(entry=lambda: seen.append("ran"))
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    monkeypatch.delitem(sys.modules, "phnet.cli", raising=False)
    # as a terminal gives it: a suite run as a background job inherits Ctrl-C ignored (the next test's case)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        console.entry()
        assert seen == [console._end_now, "ran"]  # the library loaded under the quiet handler; the run under the old
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_an_ignored_ctrl_c_stays_ignored_while_the_library_loads(monkeypatch):
    from phnet import console

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # (nohup, a background job)
    try:
        assert console.quiet_interrupt() is None and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_command_runs_as_python_m_phnet_and_python_m_phnet_cli():
    """The command line was one module, run as `python -m phnet.cli` too; as a package it had no __main__."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for module in ("phnet", "phnet.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"], cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.startswith("phnet "), (module, done.stderr)


def test_importing_the_command_line_package_loads_no_torch():
    """`python -m phnet.cli` imports the package before its __main__: torch loaded there, before the quiet Ctrl-C,
    and an interrupt while it loaded printed a traceback, or was lost and the whole run went on. The command itself
    loads none either: torch loads once a command line parsed and runs (tests/phnet/cli/test_command.py)."""
    import subprocess
    from pathlib import Path

    code = ("import sys, phnet.cli; assert 'torch' not in sys.modules, 'torch'; phnet.cli.main; "
            "phnet.cli.build_parser(); assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_the_command_and_the_harmonizer_load_no_sam_hub_client_or_trainer_until_used():
    """Every `phnet` command and every program that makes a Harmonizer pays what their imports load: SAM (seconds),
    the Hub client, safetensors and the trainer load when a call needs them."""
    import subprocess
    from pathlib import Path

    code = ("import sys, phnet.cli.command; from phnet import Harmonizer; "
            "heavy = {'segment_anything', 'huggingface_hub', 'safetensors', 'transformers', 'trainer'}; "
            "loaded = heavy & {n.split('.')[0] for n in sys.modules}; assert not loaded, sorted(loaded)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_ctrl_c_out_of_code_run_from_a_string_ends_python_m_with_130(tmp_path):
    """CPython notes a KeyboardInterrupt that came out of code it ran from a string (the methods a dataclass makes
    while a module imports), caught or not, and python -m then ended the process by SIGINT itself (status -2)."""
    import os
    import subprocess
    from pathlib import Path

    (tmp_path / "loads.py").write_text("from phnet.console import loading_quietly\n\nwith loading_quietly():\n"
                                       "    exec('raise KeyboardInterrupt', {})\n")
    (tmp_path / "runs.py").write_text("from phnet.cli import command\nfrom phnet.console import entry\n\n"
                                      "command._work = lambda name: lambda args: exec('raise KeyboardInterrupt', {})\n"
                                      "entry()\n")
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    for module, said in (("loads", ""), ("runs", "interrupted; files written so far are complete\n")):
        done = subprocess.run([sys.executable, "-m", module, "convert", "a.pth", "out"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (130, said), (module, done.returncode, done.stderr)
