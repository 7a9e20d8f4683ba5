"""Building a WebUI folder around the stand-ins, and driving one tab's scripts like the WebUI."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "standin"
FAKE_SITE = STANDIN / "site-packages"  # where the stand-in gradio lives
SCRIPT = REPO / "scripts" / "phnet_webui.py"
EXTENSION = "comfyui-phnet"
TINY_PHNET = dict(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
HOST_PACKAGES = ("modules", "gradio")


def build_webui_root(root: Path, models: Path | None = None) -> Path:
    """A WebUI folder: stand-in ``modules/``, this repository as an extension, and ``models/``."""
    shutil.copytree(STANDIN / "webui", root)
    (root / "extensions").mkdir()
    (root / "extensions" / EXTENSION).symlink_to(REPO, target_is_directory=True)
    if models is not None:
        shutil.copytree(models, root / "models")
    return root


def open_tab(webui, is_img2img):
    """Build one tab's always-on scripts like the WebUI: (the PHNet script, its runner)."""
    webui.gradio.reset()
    runner = webui.scripts.ScriptRunner()
    runner.initialize_scripts(is_img2img)
    runner.setup_ui()
    (script,) = [s for s in runner.alwayson_scripts if s.title() == "PHNet harmonize"]
    return script, runner


def script_args(webui, runner, script, **values):
    """``p.script_args`` as the API builds it: every control's default, some changed by name."""
    names = list(webui.script_module.Settings._fields)
    args = runner.default_script_args()
    for name, value in values.items():
        args[script.args_from + names.index(name)] = value
    return args
