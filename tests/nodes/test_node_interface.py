"""The nodes' interface as saved workflows know it, frozen in data/node_interface.json.

A workflow saved in ComfyUI's UI format holds each node's widget values as a list, by position; the API format
holds them by name; both name the node by its id and link outputs by slot number. So an input inserted among the
others, renamed or moved puts every later saved value on the wrong widget (silently), a combo choice taken away
fails validation of the workflows that picked it, a renamed node id makes the node vanish, and a new required input
fails every API prompt written before it. This test compares the pack with the file and tells which it is.

Additions that keep old workflows right (an optional input appended after the last one, a new combo choice, a new
output after the others, a new node, a changed default, a wider range) are recorded by running this file with
PHNET_RECORD_INTERFACE=1; the breaking kinds are refused even then.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = Path(__file__).resolve().parent / "data" / "node_interface.json"
RECORD = "PHNET_RECORD_INTERFACE"
FIX = ("a saved workflow holds widget values by position: append new inputs (optional, after the last one) "
       "instead, or keep the old form working (a hidden DEPRECATED node under the old id, an old combo value still "
       "accepted, a migration in web/) and then change tests/nodes/data/node_interface.json by hand")
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".pth", ".pt", ".bin", ".ckpt")


def _input(section: str, name: str, decl: tuple) -> dict:
    typ, opts = decl[0], (decl[1] if len(decl) > 1 else {})
    entry = {"name": name, "section": section}
    if isinstance(typ, list):
        # model pickers list files as well: only their fixed entries (the bundled default, official names) are
        # an interface; a file's name is the user's
        entry["type"] = "COMBO"
        entry["choices"] = [c for c in typ if not c.lower().endswith(WEIGHT_SUFFIXES)]
    else:
        entry["type"] = typ
    for key in ("default", "min", "max"):
        if key in opts:
            entry[key] = opts[key]
    return entry


def current(pack) -> dict:
    nodes = {}
    for node_id, cls in sorted(pack.NODE_CLASS_MAPPINGS.items()):
        spec = cls.INPUT_TYPES()
        nodes[node_id] = {
            "display_name": pack.NODE_DISPLAY_NAME_MAPPINGS[node_id],
            "inputs": [_input(s, n, d) for s in ("required", "optional") for n, d in spec.get(s, {}).items()],
            "outputs": list(cls.RETURN_TYPES),
        }
    return nodes


def dump(nodes: dict) -> str:
    """The file's text: one input per line, so a change reads as one line in a diff."""
    lines = []
    for node_id, node in nodes.items():
        inputs = ",\n".join(f"   {json.dumps(i)}" for i in node["inputs"])
        lines.append(f' {json.dumps(node_id)}: {{"display_name": {json.dumps(node["display_name"])}, '
                     f'"outputs": {json.dumps(node["outputs"])}, "inputs": [\n{inputs}\n ]}}')
    return "{\n" + ",\n".join(lines) + "\n}\n"


def breaking(saved: dict, now: dict) -> list[str]:
    """What in ``now`` would load a workflow saved against ``saved`` wrongly, or not at all."""
    problems = []
    for node_id, old in saved.items():
        new = now.get(node_id)
        if new is None:
            problems.append(f"node {node_id} is gone: workflows that use it lose the node")
            continue
        old_names = [i["name"] for i in old["inputs"]]
        new_names = [i["name"] for i in new["inputs"]]
        if new_names[: len(old_names)] != old_names:
            problems.append(f"{node_id}: inputs renamed, removed or reordered: saved {old_names}, now {new_names}")
        else:
            for o, n in zip(old["inputs"], new["inputs"]):
                where = f"{node_id}.{o['name']}"
                if o["type"] != n["type"]:
                    problems.append(f"{where}: type {o['type']} is now {n['type']}")
                lost = [c for c in o.get("choices", []) if c not in n.get("choices", [])]
                if lost:
                    problems.append(f"{where}: choices {lost} are gone, and workflows that picked them fail")
                if n.get("min", float("-inf")) > o.get("min", float("-inf")) or \
                        n.get("max", float("inf")) < o.get("max", float("inf")):
                    problems.append(f"{where}: range {o.get('min')}..{o.get('max')} narrowed to {n.get('min')}.."
                                    f"{n.get('max')}, and saved values outside it fail validation")
                if o["section"] == "optional" and n["section"] == "required":
                    problems.append(f"{where}: optional became required, and API prompts without it fail")
            for n in new["inputs"][len(old_names):]:
                if n["section"] == "required":
                    problems.append(f"{node_id}.{n['name']}: a new input must be optional (API prompts written "
                                    "before it do not name it)")
        if new["outputs"][: len(old["outputs"])] != old["outputs"]:
            problems.append(f"{node_id}: outputs {old['outputs']} are now {new['outputs']} (links are by slot)")
    return problems


def test_the_nodes_keep_the_interface_saved_workflows_use(pack):
    saved = json.loads(FILE.read_text())
    now = current(pack)
    problems = breaking(saved, now)
    assert not problems, "; ".join(problems) + f". {FIX}"
    if saved != now:
        if os.environ.get(RECORD):
            FILE.write_text(dump(now))
            return
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise AssertionError(
            f"the interface of {changed} grew in a way old workflows survive (an appended optional input, a new "
            f"choice, output or node, another default, a wider range): record it with {RECORD}=1 pytest {__file__}")


def test_every_node_is_in_the_file(pack):
    assert set(json.loads(FILE.read_text())) == set(pack.NODE_CLASS_MAPPINGS)


def _node(*inputs, outputs=("IMAGE",)):
    return {"X": {"display_name": "X", "inputs": [dict(i) for i in inputs], "outputs": list(outputs)}}


A = {"name": "a", "section": "required", "type": "FLOAT", "default": 1.0}
B = {"name": "b", "section": "optional", "type": "COMBO", "choices": ["one", "two"]}
C = {"name": "c", "section": "optional", "type": "BOOLEAN", "default": False}


def test_the_check_tells_a_breaking_change_from_an_addition():
    saved = _node(A, B)
    assert breaking(saved, _node(A, B, C, outputs=("IMAGE", "STRING"))) == []  # appended: fine
    assert breaking(saved, {**_node(A, B), "Y": _node(A)["X"]}) == []
    assert "reordered" in breaking(saved, _node(B, A))[0]
    assert "reordered" in breaking(saved, _node(A, C, B))[0]  # inserted in the middle
    assert "reordered" in breaking(saved, _node(A, {**B, "name": "bb"}))[0]  # renamed
    assert "gone" in breaking(saved, _node(A, {**B, "choices": ["one"]}))[0]
    assert "type" in breaking(saved, _node({**A, "type": "INT"}, B))[0]
    assert "must be optional" in breaking(saved, _node(A, B, {**C, "section": "required"}))[0]
    assert "became required" in breaking(saved, _node(A, {**B, "section": "required"}))[0]
    assert "outputs" in breaking(saved, _node(A, B, outputs=("MASK",)))[0]
    ranged = _node({**A, "min": 0.0, "max": 2.0})
    assert breaking(ranged, _node({**A, "min": -1.0, "max": 4.0})) == []  # widened: fine
    assert "narrowed" in breaking(ranged, _node({**A, "min": 0.0, "max": 1.0}))[0]
    assert "is gone" in breaking(saved, {"Y": saved["X"]})[0]
