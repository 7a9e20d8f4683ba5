"""install.py: installs the WebUI way inside the WebUI launcher, only checks anywhere else."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def install(monkeypatch):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.delitem(sys.modules, "launch", raising=False)
    spec = importlib.util.spec_from_file_location("phnet_install_under_test", REPO / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing must not run anything
    return module


def _fake_launch(monkeypatch, installed):
    launch = types.ModuleType("launch")
    launch.pip_calls = []
    launch.is_installed = lambda name: name in installed
    launch.run_pip = lambda args, desc=None: launch.pip_calls.append(args)
    monkeypatch.setitem(sys.modules, "launch", launch)
    return launch


def _reqs(tmp_path, text):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return str(path)


def test_requirements_parsing_drops_host_packages(install, tmp_path):
    path = _reqs(tmp_path, "# deps\ntorch>=2.1\nnumpy\nsafetensors>=0.4  # fast\n-e .\nTorchVision\nsegment-anything\n")
    assert install.requirements(path) == ["numpy", "safetensors>=0.4", "segment-anything"]
    assert install._name("huggingface-hub[cli]>=0.20") == "huggingface-hub"


def test_webui_installs_missing_with_run_pip(install, monkeypatch, tmp_path):
    launch = _fake_launch(monkeypatch, installed={"numpy", "safetensors"})
    path = _reqs(tmp_path, "torch\nnumpy\nsafetensors>=0.4\nsegment-anything\n")
    assert install.main(path) == 0
    assert launch.pip_calls == ['install "segment-anything"']


def test_webui_second_run_does_nothing(install, monkeypatch, tmp_path):
    launch = _fake_launch(monkeypatch, installed={"numpy", "safetensors", "segment-anything"})
    path = _reqs(tmp_path, "torch\nnumpy\nsafetensors\nsegment-anything\n")
    install.main(path)
    install.main(path)
    assert launch.pip_calls == []


def test_comfyui_manager_only_checks(install, monkeypatch, tmp_path, capsys):
    launch = _fake_launch(monkeypatch, installed=set())
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    path = _reqs(tmp_path, "torch\nnumpy\ndefinitely-not-installed-pkg-xyz\n")
    assert install.main(path) == 0
    assert launch.pip_calls == []  # the WebUI launcher is never used under ComfyUI
    out = capsys.readouterr().out
    assert "definitely-not-installed-pkg-xyz" in out and "-m pip install" in out
    advice = out.split("Install them with")[-1].replace(sys.executable, "PYTHON")  # a venv path may say "torch"
    assert "torch" not in advice


def test_without_launch_only_prints(install, tmp_path, capsys):
    path = _reqs(tmp_path, "numpy\n")
    assert install.main(path) == 0
    assert capsys.readouterr().out == ""  # all present: silent


def test_runs_as_a_script_under_comfyui_manager(tmp_path):
    # ComfyUI-Manager: `python install.py`, cwd = the node folder, COMFYUI_PATH set
    env = dict(os.environ, COMFYUI_PATH=str(tmp_path))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "install.py")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start < 15
    assert "Installing" not in result.stdout


def test_fallback_list_without_requirements_txt(install, tmp_path):
    reqs = install.requirements(str(tmp_path / "absent.txt"))
    assert "segment-anything" in reqs and "safetensors" in reqs
    assert not any(install._name(r) in install.HOST_OWNED for r in reqs)


def test_runs_as_the_webui_runs_it(tmp_path):
    """launch_utils.run_extension_installer: `python <ext>/install.py`, cwd = the WebUI root, the
    root on PYTHONPATH so `import launch` works; missing requirements go through launch.run_pip."""
    from tests.webui.harness import EXTENSION, build_webui_root

    root = build_webui_root(tmp_path / "webui")
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    env["PYTHONPATH"] = f"{root}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["PHNET_TEST_MISSING"] = "segment-anything"
    installer = root / "extensions" / EXTENSION / "install.py"
    result = subprocess.run([sys.executable, str(installer)], cwd=root, env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Installing PHNet requirement: segment-anything" in result.stdout
    assert (root / "pip-calls.txt").read_text().splitlines() == ['install "segment-anything>=1.0"']


def test_a_package_older_than_its_bound_is_named_not_upgraded(install, monkeypatch, tmp_path, capsys):
    """Only presence was checked: an old WebUI venv's huggingface-hub 0.17 stayed against >=0.23, unsaid. It is
    named, not upgraded: A1111 1.10's transformers 4.30 needs huggingface-hub < 1, which pip would pass."""
    path = _reqs(tmp_path, "numpy>=999\nsafetensors>=0.4\n")
    launch = _fake_launch(monkeypatch, installed={"numpy", "safetensors"})
    assert install.main(path) == 0
    assert launch.pip_calls == [] and "older than PHNet needs: numpy>=999." in capsys.readouterr().out
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    assert install.main(path) == 0
    out = capsys.readouterr().out
    assert "missing or too old: numpy>=999." in out and '"numpy>=999"' in out and "safetensors" not in out


def _interpreter(install, monkeypatch, exe, os_name):
    """install.py run by ``exe`` on ``os_name`` (its own os only: pytest's paths break on a global os.name)."""
    monkeypatch.setattr(sys, "executable", exe)
    monkeypatch.setattr(install, "os", types.SimpleNamespace(**{**vars(os), "name": os_name}))


@pytest.mark.parametrize("exe, os_name, lines", [
    ("/opt/comfy/venv/bin/python", "posix", ["/opt/comfy/venv/bin/python -m pip install X"]),
    ("/home/me/my env/bin/python", "posix", ["'/home/me/my env/bin/python' -m pip install X"]),
    (r"C:\ComfyUI_windows_portable\python_embeded\python.exe", "nt",
     [r"C:\ComfyUI_windows_portable\python_embeded\python.exe -m pip install X"]),
    (r"C:\Program Files\Python311\python.exe", "nt",
     [r"in PowerShell: & 'C:\Program Files\Python311\python.exe' -m pip install X",
      r'in cmd.exe:    "C:\Program Files\Python311\python.exe" -m pip install X']),
    (r"C:\Users\Jo$e O'Neil\python.exe", "nt",  # PowerShell expands $e in double quotes
     [r"in PowerShell: & 'C:\Users\Jo$e O''Neil\python.exe' -m pip install X",
      'in cmd.exe:    "C:\\Users\\Jo$e O\'Neil\\python.exe" -m pip install X']),
])
def test_the_pip_command_quotes_the_interpreter_only_where_it_must_and_runs_in_powershell(install, monkeypatch,
                                                                                           exe, os_name, lines):
    """A quoted path starting the line is an expression in PowerShell, Windows Terminal's shell: "Unexpected
    token '-m'"; cmd.exe and bash took it."""
    _interpreter(install, monkeypatch, exe, os_name)
    assert install.pip_commands("install X") == lines


def test_the_missing_packages_are_named_in_one_pip_command_per_shell(install, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    path = _reqs(tmp_path, "definitely-not-installed-pkg-xyz>=1.0\n")
    _interpreter(install, monkeypatch, r"C:\Program Files\Python311\python.exe", "nt")
    assert install.main(path) == 0
    advice = capsys.readouterr().out.split("Install them with:\n")[1].splitlines()
    assert advice == [r"    in PowerShell: & 'C:\Program Files\Python311\python.exe' -m pip install "
                      '"definitely-not-installed-pkg-xyz>=1.0"',
                      r'    in cmd.exe:    "C:\Program Files\Python311\python.exe" -m pip install '
                      '"definitely-not-installed-pkg-xyz>=1.0"']
