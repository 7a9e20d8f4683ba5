"""``launch.py``: the two helpers an extension's ``install.py`` uses (from ``modules/launch_utils.py``).

The WebUI runs ``python <extension>/install.py`` with the WebUI root on ``PYTHONPATH``, so
``import launch`` finds this file. ``run_pip`` records what it would install in ``pip-calls.txt``
next to it instead of running pip; ``PHNET_TEST_MISSING`` (comma-separated) names distributions
``is_installed`` should pretend are absent.
"""

import importlib.metadata
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def is_installed(package):
    if package in os.environ.get("PHNET_TEST_MISSING", "").split(","):
        return False
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def run_pip(command, desc=None):
    print(f"Installing {desc}")
    with open(os.path.join(_HERE, "pip-calls.txt"), "a", encoding="utf-8") as f:
        f.write(command + "\n")
