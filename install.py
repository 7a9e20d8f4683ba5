"""Dependency check run by the SD-WebUI launcher and by ComfyUI-Manager.

- Inside the SD-WebUI (AUTOMATIC1111 / Forge) launcher, ``import launch`` works: missing
  requirements are installed the WebUI way (``launch.is_installed`` / ``launch.run_pip``); one that
  is too old is named, not upgraded (the WebUI's own packages pin theirs).
- Under ComfyUI-Manager (it sets ``COMFYUI_PATH`` and has already pip-installed
  requirements.txt) or any other host without ``launch``: only check and print what is
  missing. Nothing is installed.
- torch / torchvision / torchaudio are never installed: the host owns its CUDA build.

Idempotent and fast: a metadata lookup or two per requirement, nothing when all are present at versions
requirements.txt allows.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))

# Used when requirements.txt is absent; keep in step with it.
FALLBACK_REQUIREMENTS = ("numpy", "pillow", "safetensors", "huggingface-hub", "segment-anything", "tqdm", "filelock")
HOST_OWNED = {"torch", "torchvision", "torchaudio", "xformers"}


def _name(requirement: str) -> str:
    """Distribution name of a requirement line: 'huggingface-hub>=0.20' → 'huggingface-hub'."""
    return re.split(r"[\s<>=!~;\[@]", requirement.strip(), maxsplit=1)[0]


def requirements(path: str | None = None) -> list[str]:
    """Requirement lines of requirements.txt (comments, options and host-owned packages dropped)."""
    path = path or os.path.join(HERE, "requirements.txt")
    lines: list[str] = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for raw in f:
                line = raw.split("#", 1)[0].strip()
                if line and not line.startswith("-"):
                    lines.append(line)
    else:
        lines = list(FALLBACK_REQUIREMENTS)
    return [r for r in lines if _name(r).lower() not in HOST_OWNED]


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def _met(requirement: str) -> bool:
    """Installed, at a version the line allows (an old WebUI venv's huggingface-hub 0.17 is not >=0.23).
    Without ``packaging`` (it comes with huggingface-hub and pip) only whether it is installed."""
    name = _name(requirement)
    if not _installed(name):
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return True
    try:
        return Requirement(requirement).specifier.contains(metadata.version(name), prereleases=True)
    except Exception:  # a line or a version packaging cannot read ('unknown'): presence is all we can tell
        return True


def _webui_launch():
    """The WebUI launcher module, or None outside it (ComfyUI-Manager, plain Python)."""
    if os.environ.get("COMFYUI_PATH"):
        return None
    try:
        import launch  # provided by the SD-WebUI launcher (PYTHONPATH = webui root)
    except Exception:
        return None
    if not (hasattr(launch, "is_installed") and hasattr(launch, "run_pip")):
        return None
    return launch


def pip_commands(args: str) -> list[str]:
    """``python -m pip <args>`` for this Python as a shell takes it, its path quoted only where it must be. A quoted
    path on Windows gets two labelled lines: PowerShell runs a line that starts with a string only after its call
    operator &, which cmd.exe reads as a command separator."""
    exe = sys.executable
    if os.name != "nt":
        return [f"{shlex.quote(exe)} -m pip {args}"]
    if re.fullmatch(r"[\w:.\\/-]+", exe):
        return [f"{exe} -m pip {args}"]
    powershell = exe.replace("'", "''")  # in single quotes: in double ones PowerShell expands $name and `
    return [f"in PowerShell: & '{powershell}' -m pip {args}", f'in cmd.exe:    "{exe}" -m pip {args}']


def main(path: str | None = None) -> int:
    reqs = requirements(path)
    if not _installed("torch"):
        print("[PHNet] torch is not installed; install the PyTorch build for your GPU first (not done here).")
    launch = _webui_launch()
    if launch is None:
        missing = [r for r in reqs if not _met(r)]
        if missing:
            quoted = " ".join(f'"{r}"' for r in missing)
            print(f"[PHNet] missing or too old: {', '.join(missing)}. Install them with:")
            for command in pip_commands(f"install {quoted}"):
                print(f"    {command}")
        return 0
    old = []
    for req in reqs:
        if not launch.is_installed(_name(req)):
            launch.run_pip(f'install "{req}"', f"PHNet requirement: {req}")
        elif not _met(req):
            old.append(req)
    if old:  # not upgraded here: the WebUI pins what its own packages need (transformers 4.30: huggingface-hub < 1)
        print(f"[PHNet] older than PHNet needs: {', '.join(old)}. PHNet may fail until they are upgraded; "
              f"check that the WebUI's own packages allow it first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
