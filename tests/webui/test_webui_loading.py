"""The extension script is executed the way the WebUI executes it (see conftest.py), not imported.

Issue 15: a real WebUI refused ``phnet_webui.py`` because a dataclass under
``from __future__ import annotations`` needs its module in ``sys.modules``, and the WebUI's loader
never puts it there. Importing the file as a normal module hid that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.webui.harness import EXTENSION, FAKE_SITE, REPO, SCRIPT, build_webui_root


def test_script_loads_like_in_the_webui(webui_env, capsys):
    webui_env.scripts.load_scripts()
    assert webui_env.errors.exception_records == [], capsys.readouterr().err
    (data,) = [d for d in webui_env.scripts.scripts_data if Path(d.path).name == SCRIPT.name]
    module = data.module
    # executed under the file's name, never registered, extension folder off sys.path again
    assert module.__name__ == "phnet_webui.py"
    assert all(getattr(m, "__file__", None) != module.__file__ for m in list(sys.modules.values()))
    assert webui_env.script_loading.loaded_scripts[data.path] is module
    extension_dir = str(webui_env.root / "extensions" / EXTENSION)
    assert extension_dir not in sys.path
    assert data.basedir == extension_dir
    assert issubclass(data.script_class, webui_env.scripts.Script)
    assert data.script_class.__name__ == "PHNetHarmonizeScript"


def test_the_standin_loader_reproduces_issue_15(webui_env, capsys):
    """The stand-in loader is strict where the real one is: an unregistered module breaks a
    dataclass with string annotations, while the same file imported normally works."""
    (webui_env.root / "extensions" / EXTENSION).unlink()  # only the probe extension
    scripts_dir = webui_env.root / "extensions" / "probe" / "scripts"
    scripts_dir.mkdir(parents=True)
    (scripts_dir / "probe.py").write_text(textwrap.dedent("""\
        from __future__ import annotations
        import dataclasses

        @dataclasses.dataclass
        class Settings:
            enable: bool = False
    """))
    webui_env.scripts.load_scripts()
    err = capsys.readouterr().err
    assert "*** Error loading script: probe.py" in err
    assert "AttributeError" in err and "__dict__" in err
    assert [r["type"] for r in webui_env.errors.exception_records] == ["AttributeError"]


def test_every_file_in_scripts_is_a_webui_script():
    """The WebUI executes every scripts/*.py on its own; a helper module there would run as a script
    and could not be imported by its neighbour (scripts/ is never on sys.path)."""
    assert sorted(p.name for p in (REPO / "scripts").glob("*.py")) == [SCRIPT.name]


# A fresh interpreter, started like the WebUI: working directory and sys.path[0] = the WebUI root,
# nothing of this repository importable except through extensions/comfyui-phnet while it loads.
_SESSION = r'''
import json, sys
ROOT, FAKE_SITE, REPO = sys.argv[1:4]
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p not in ("", REPO)]
sys.path[:0] = [ROOT, FAKE_SITE]
import importlib.util
assert importlib.util.find_spec("phnet") is None, "phnet must only be importable from the extension"

import numpy as np
from PIL import Image
from modules import errors, processing, scripts

scripts.load_scripts()
runner = scripts.ScriptRunner()
runner.initialize_scripts(False)
runner.setup_ui()
script = next(s for s in runner.alwayson_scripts if s.title() == "PHNet harmonize")
module = next(d.module for d in scripts.scripts_data if d.script_class is type(script))
names = list(module.Settings._fields)
args = runner.default_script_args()
subject = np.zeros((16, 12, 4), np.uint8)
subject[..., :3] = (230, 40, 40)
subject[2:14, 2:10, 3] = 255
for name, value in dict(enable=True, mask_source="Pasted subject (alpha)", subject=Image.fromarray(subject),
                        x=30, y=20, anchor="top-left").items():
    args[script.args_from + names.index(name)] = value
p = processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
p.scripts, p.script_args = runner, args
ramp = np.linspace(40, 200, 64, dtype=np.float32)[None, :, None] * np.ones((48, 1, 3), np.float32)
before = Image.fromarray(ramp.astype(np.uint8))
(after,) = processing.postprocess_generated(p, [before])
diff = np.abs(np.asarray(after, np.int16) - np.asarray(before, np.int16)).max(axis=-1)
print(json.dumps({
    "errors": errors.exception_records,
    "module_name": module.__name__,
    "phnet_file": sys.modules["phnet"].__file__,
    "extension_on_path": any(p.endswith("/extensions/comfyui-phnet") for p in sys.path),
    "infotext": p.extra_generation_params,
    "changed_outside": int(diff[np.ix_(range(0, 20), range(64))].max()),
    "changed_inside": int(diff[22:34, 32:40].max()),
}))
'''


def _fresh_process(script: str, root):
    """Run ``script`` in a new Python started in the WebUI folder ``root``; its last line's JSON, checked to
    record no script errors."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-c", script, str(root), str(FAKE_SITE), str(REPO)]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == [], result.stderr
    return report


def test_generation_in_a_fresh_webui_process(tmp_path, tiny_models):
    root = build_webui_root(tmp_path / "webui", tiny_models)
    report = _fresh_process(_SESSION, root)
    assert report["module_name"] == "phnet_webui.py"
    assert report["phnet_file"].startswith(str(root / "extensions" / EXTENSION))
    assert not report["extension_on_path"]
    assert report["infotext"]["PHNet weights"] == "default (bundled)"
    assert report["changed_outside"] == 0 and report["changed_inside"] > 0


_START = r'''
import json, sys
ROOT, FAKE_SITE, REPO = sys.argv[1:4]
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p not in ("", REPO)]
sys.path[:0] = [ROOT, FAKE_SITE]
from modules import errors, scripts

scripts.load_scripts()
for is_img2img in (False, True):
    runner = scripts.ScriptRunner()
    runner.initialize_scripts(is_img2img)
    runner.setup_ui()
print(json.dumps({"errors": errors.exception_records, "loaded": sorted({n.split(".")[0] for n in sys.modules})}))
'''


def test_the_webui_starts_without_loading_sam_the_hub_client_or_the_trainer(tmp_path):
    """The WebUI runs every extension's script at start-up: SAM (seconds to import), the Hub client, safetensors
    and the trainer load when a generation uses them, never to build the accordion."""
    report = _fresh_process(_START, build_webui_root(tmp_path / "webui"))
    assert "phnet" in report["loaded"]
    heavy = {"segment_anything", "huggingface_hub", "safetensors", "transformers", "trainer"}
    assert heavy.isdisjoint(report["loaded"]), sorted(heavy & set(report["loaded"]))
