"""``python -m phnet.bench``: runs the repository's ``benchmarks/pipeline_speed.py`` (speed and memory
against the official pipeline). The benchmark and its official-pipeline oracle are development
tools, so they live in the repository, not in the installed package."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pipeline_speed.py"

if __name__ == "__main__":
    if not SCRIPT.is_file():
        sys.exit("the benchmark lives in the comfyui-phnet repository: clone it and run "
                 "python benchmarks/pipeline_speed.py")
    benchmark = runpy.run_path(str(SCRIPT), run_name="pipeline_speed")
    sys.exit(benchmark["main"](prog="python -m phnet.bench"))
