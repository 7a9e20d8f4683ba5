#!/usr/bin/env python3
"""By-hand check: the extension's UI built with a real gradio, through the stand-in WebUI loader.

The stand-in gradio in the tests records whatever it is given, so it cannot tell whether a real
gradio accepts the script's components. This check puts a real gradio in its place: gradio 3.41.2
is what A1111 1.10 ships, and Forge ships gradio 4. Everything else is as in ``tests/webui``: a
WebUI folder with the stand-in ``modules``, this repository as ``extensions/comfyui-phnet``, and
``modules.scripts.load_scripts()``. Then both tabs are built inside a ``gr.Blocks``, the Blocks
config is serialized (gradio checks every component there), the mask-source event is fired, and
one image is harmonized with the default values the real components hold.

Not run by CI. It needs a Python that has gradio plus this repository's requirements, e.g.:

    python -m venv /tmp/g341 && /tmp/g341/bin/pip install gradio==3.41.2 -r requirements.txt torch
    /tmp/g341/bin/python tests/webui/real_gradio_check.py

It prints one JSON report. Exit code 0 means every check passed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # as the WebUI does: no calls home
    import gradio as gr
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from tests.webui.harness import build_webui_root

    root = build_webui_root(Path(tempfile.mkdtemp()) / "webui")
    sys.path.remove(str(REPO))
    os.chdir(root)
    sys.path.insert(0, str(root))
    from modules import errors, processing, scripts

    scripts.load_scripts()
    (data,) = [d for d in scripts.scripts_data if Path(d.path).name == "phnet_webui.py"]
    module = data.module
    runners = {}
    with gr.Blocks() as demo:
        for tab, is_img2img in (("txt2img", False), ("img2img", True)):
            with gr.Tab(tab):
                runners[tab] = runner = scripts.ScriptRunner()
                runner.initialize_scripts(is_img2img)
                runner.setup_ui()
    config = demo.get_config_file()
    report = {"gradio": gr.__version__, "errors": list(errors.exception_records)}

    for tab, runner in runners.items():
        (script,) = [s for s in runner.alwayson_scripts if s.title() == "PHNet harmonize"]
        labels = [c.label for c in script.controls]
        toggle = next(fn for fn in _event_fns(demo) if getattr(fn, "__name__", "") == "_toggle")
        report[tab] = {
            "controls": len(script.controls),
            "labels": labels,
            "mask_sources": script.api_info["args"][3].get("choices"),
            "toggle_sam": toggle(module.MASK_SAM),
        }

    # one txt2img image with the real components' default values, subject pasted, bundled weights
    runner = runners["txt2img"]
    (script,) = runner.alwayson_scripts
    args = runner.default_script_args()
    subject = np.zeros((16, 12, 4), np.uint8)
    subject[..., :3] = (230, 40, 40)
    subject[2:14, 2:10, 3] = 255
    values = dict(enable=True, mask_source=module.MASK_SUBJECT, subject=Image.fromarray(subject), x=30, y=20,
                  anchor="top-left")  # fmt: skip
    for name, value in values.items():
        args[script.args_from + module.Settings._fields.index(name)] = value
    p = processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.scripts, p.script_args = runner, args
    ramp = np.linspace(40, 200, 64, dtype=np.float32)[None, :, None] * np.ones((48, 1, 3), np.float32)
    before = Image.fromarray(ramp.astype(np.uint8))
    (after,) = processing.postprocess_generated(p, [before])
    diff = np.abs(np.asarray(after, np.int16) - np.asarray(before, np.int16)).max(axis=-1)
    report["generation"] = {
        "infotext": p.extra_generation_params,
        "changed_outside_subject": int(diff[:20].max()),
        "changed_inside_subject": int(diff[22:34, 32:40].max()),
    }
    report["errors"] = list(errors.exception_records)
    report["components_in_config"] = len(config["components"])
    report["phnet_imported_from"] = sys.modules["phnet"].__file__

    ok = (
        not report["errors"]
        and report["txt2img"]["controls"] == 17
        and report["img2img"]["controls"] == 17
        and report["img2img"]["mask_sources"] == list(module.MASK_SOURCES)
        and report["generation"]["changed_outside_subject"] == 0
        and report["generation"]["changed_inside_subject"] > 0
        and report["phnet_imported_from"].startswith(str(root / "extensions"))
    )
    report["ok"] = bool(ok)
    print(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


def _event_fns(demo):
    """The Python functions bound to the Blocks' events (gradio 3: ``fns`` is a list, 4: a dict)."""
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return [f.fn for f in fns]


if __name__ == "__main__":
    sys.exit(main())
