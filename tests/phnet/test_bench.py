import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_module_entry_names_itself_in_its_usage_and_runs_the_repository_benchmark():
    done = subprocess.run([sys.executable, "-m", "phnet.bench", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m phnet.bench ") and "--device" in done.stdout
