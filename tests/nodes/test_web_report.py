"""web/phnet_report.js, run under Node.js with a stand-in for the frontend's app: the report a Harmonize
node returns is drawn under it, wrapped to its width, and nothing is added to the saved widgets."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import { registered } from "./scripts/app.js";
await import("./extensions/comfyui-phnet/phnet_report.js");
const ext = registered[0];
function NodeType() {}
await ext.beforeRegisterNodeDef(NodeType, { name: process.argv[2] });
const node = Object.assign(new NodeType(), { size: [200, 100], widgets: [], setDirtyCanvas() {},
                                             computeSize() { return [200, 80]; },
                                             setSize(size) { this.size = size; } });
node.onExecuted?.(process.argv[4] === "string" ? { text: process.argv[3] } : { text: [process.argv[3]] });
const drawn = [];
const ctx = { save() {}, restore() {}, measureText: (t) => ({ width: 6 * t.length }),
              fillText: (t, x, y) => drawn.push([t, y]) };
node.onDrawForeground?.(ctx);
console.log(JSON.stringify({ drawn, widgets: node.widgets.length, colour: ctx.fillStyle ?? null, size: node.size }));
"""


def _run(tmp_path: Path, node_name: str, report: str, form: str = "list") -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(
        "export const registered = []; export const app = { registerExtension: (e) => registered.push(e) };\n")
    (tmp_path / "extensions" / "comfyui-phnet").mkdir(parents=True)
    shutil.copy(ROOT / "web" / "phnet_report.js", tmp_path / "extensions" / "comfyui-phnet")
    (tmp_path / "driver.mjs").write_text(DRIVER)
    done = subprocess.run([node, "driver.mjs", node_name, report, form], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_report_is_drawn_inside_the_node_below_its_widgets_wrapped_to_its_width(tmp_path):
    """Drawn under the node, it lay over whatever node was below: the node grows to hold it."""
    report = "PHNet Harmonize: unchanged: the correction (RMS 13.3 of 255) is below the threshold 17"
    shown = _run(tmp_path, "PHNetHarmonize", report)
    lines = [text for text, _ in shown["drawn"]]
    assert " ".join(lines) == report and len(lines) > 1
    assert all(6 * len(line) <= 188 for line in lines[:-1])
    assert all(80 < y < shown["size"][1] for _, y in shown["drawn"]) and shown["size"][0] == 200
    assert shown["widgets"] == 0


@pytest.mark.parametrize("report, amber", [
    ("PHNet Harmonize: changed by RMS 2.1 of 255", False),
    ("PHNet Harmonize: changed by RMS 0.4 of 255, at strength 0.2 (under half a level: too small to see)", True),
    ("PHNet Harmonize: unchanged: the correction (RMS 13.3 of 255) is below the threshold 17", True),
    ("PHNet Harmonize Frames: 0 of 2 frames changed; 2 with an empty mask (no subject in them), left as they were",
     True),
    ("PHNet Harmonize Frames: 2 of 3 frames changed by RMS 3.0 to 9.0; 1 with an empty mask (no subject in it), "
     "left as it was", True),
    ("PHNet Harmonize Frames: 0 of 2 frames changed; corrections 3.0 to 9.0", True),
    ("PHNet Harmonize: 0 of 3 images changed; 3 below the do-no-harm threshold 40.5", True),
    ("PHNet Harmonize Frames: 10 of 12 frames changed; corrections 3.0 to 9.0", False),
])
def test_a_subject_left_as_it_was_is_drawn_in_amber(tmp_path, report, amber):
    assert _run(tmp_path, "PHNetHarmonize", report)["colour"] == ("#e8b04a" if amber else "#9fd39f")


def test_other_nodes_are_left_alone(tmp_path):
    assert _run(tmp_path, "PHNetSAMSegment", "anything")["drawn"] == []


def test_a_report_as_a_string_and_a_word_wider_than_the_node_are_drawn_within_it(tmp_path):
    """A string where the node sends a list threw (join is not a function); a long path ran off the node."""
    word = "x" * 100  # 600 px at 6 px a character, in a node 188 px wide inside
    shown = _run(tmp_path, "PHNetHarmonize", f"PHNet Harmonize: note: {word}", form="string")
    lines = [text for text, _ in shown["drawn"]]
    assert "".join(lines).replace(" ", "") == f"PHNetHarmonize:note:{word}"
    assert all(6 * len(line) <= 188 for line in lines)
