"""Building a WebUI folder around the stand-ins, and driving one tab's scripts like the WebUI; the mask sources'
names, the stand-in pictures and the steps the script's tests share."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

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


# The mask sources and the default weights as API clients send them: these strings are an interface.
INPAINT, SUBJECT, SAM = "Inpaint mask", "Pasted subject (alpha)", "SAM box"
DEFAULT = "default (bundled)"
OFFICIAL = ["official-iharmony512", "official-ffhqh256", "official-ffhqh512", "official-ffhqh1024"]


def _generated(w=64, h=48, seed=0):
    """A stand-in for a freshly generated image (what pp.image holds)."""
    rng = np.random.RandomState(seed)
    base = np.linspace(40, 200, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return Image.fromarray(np.clip(base + rng.randint(0, 30, (h, w, 3)), 0, 255).astype(np.uint8))


def _subject():
    """A red cut-out with transparent edges, for the "Pasted subject" mask source."""
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255
    return Image.fromarray(rgba)


def _runner(webui, is_img2img):
    return open_tab(webui, is_img2img)


def _args(webui, runner, script, **values):
    return script_args(webui, runner, script, **values)


def _postprocess(webui, runner, p, image):
    """One generated image through the always-on scripts, the way process_images hands it over."""
    p.scripts = runner
    (out,) = webui.processing.postprocess_generated(p, [image])
    return out


def _reported(webui, capsys):
    """The errors the WebUI printed (it reports a failing hook and carries on)."""
    err = capsys.readouterr().err
    records = list(webui.errors.exception_records)
    webui.errors.exception_records.clear()
    return err, records


def _changed_only_inside(before: Image.Image, after: Image.Image, mask: np.ndarray):
    a, b = np.asarray(before), np.asarray(after)
    assert after.size == before.size and after.mode == "RGB"
    outside = mask == 0
    np.testing.assert_array_equal(b[outside], a[outside])  # bit-identical outside
    assert np.abs(b[mask > 0.5].astype(int) - a[mask > 0.5].astype(int)).max() > 0  # harmonized inside


def _fails(webui, capsys, runner, p, message):
    """The WebUI reports the error, names the hook, and keeps the image as generated."""
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    err, records = _reported(webui, capsys)
    assert "*** Error running postprocess_image:" in err and "phnet_webui.py" in err
    assert len(records) == 1 and re.search(message, records[0]["exception"]), records
