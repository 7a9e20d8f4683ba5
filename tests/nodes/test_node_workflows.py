"""The example workflows: generated files up to date, UI and API forms describe the same graph, every
node / input / widget / link type-checks against the node definitions, and the workflows that need no
diffusion weights run end to end through our nodes (core LoadImage/SaveImage replaced by stand-ins)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
core_nodes = sys.modules["phnet_nodes_test_core_nodes"]        # loaded by conftest.py
workflow_exec = sys.modules["phnet_nodes_test_workflow_exec"]  # loaded by conftest.py

UI_DIR = REPO / "example_workflows"
API_DIR = REPO / "workflows" / "api"
COMPOSITE = "PHNet-harmonize-a-composite-whose-alpha-is-the-subject"
PASTE = "PHNet-cut-out-with-SAM-paste-onto-a-photo-and-harmonize"
GENERATE = "PHNet-generate-a-background-with-SD-then-paste-and-harmonize"
REFERENCE = "PHNet-harmonize-toward-a-chosen-region-of-the-background"
FRAMES = "PHNet-harmonize-video-frames-with-steady-colours-across-a-scene-cut"
NAMES = [COMPOSITE, PASTE, GENERATE, REFERENCE, FRAMES]
RUNNABLE = [COMPOSITE, PASTE, REFERENCE, FRAMES]
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@pytest.fixture(scope="module")
def build():
    from workflows import build

    return build


@pytest.fixture(scope="module")
def classes(pack):
    return {**core_nodes.NODE_CLASS_MAPPINGS, **pack.NODE_CLASS_MAPPINGS}


def _ui(name):
    return json.loads((UI_DIR / f"{name}.json").read_text())


def _api(name):
    return json.loads((API_DIR / f"{name}.api.json").read_text())


def test_files_are_generated_and_up_to_date(build):
    files = build.render()
    assert {p.name for p in files} == {f"{n}.json" for n in NAMES} | {f"{n}.api.json" for n in NAMES}
    for path, text in files.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m workflows.build"
    # only UI-format files where ComfyUI's template browser looks (it also scans workflows/*.json)
    assert not list((REPO / "workflows").glob("*.json"))
    assert sorted(p.stem for p in UI_DIR.glob("*.json")) == sorted(NAMES)


def test_every_node_is_demonstrated(pack):
    used = {n["type"] for name in NAMES for n in _ui(name)["nodes"]}
    assert set(pack.NODE_CLASS_MAPPINGS) <= used


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    return [(n, d) for s in ("required", "optional") for n, d in spec.get(s, {}).items()]


def _is_widget(decl):
    return isinstance(decl[0], list) or decl[0] in WIDGET_TYPES


def ui_to_api(ui: dict, classes: dict, saved_before: bool = False) -> dict:
    """Convert like the frontend does: widget values by position (skipping UI-only extras), links by id.
    ``saved_before``: a widget past the saved values keeps its default, as the frontend leaves a widget added
    after the workflow was saved."""
    links = {l[0]: l for l in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        cls = classes[node["type"]]
        values = list(node.get("widgets_values", []))
        inputs = {}
        socket_links = {i["name"]: i["link"] for i in node.get("inputs", [])}
        upload = False
        for name, decl in _inputs(cls):
            if socket_links.get(name) is not None:
                link = links[socket_links[name]]
                inputs[name] = [str(link[1]), link[2]]
            elif _is_widget(decl):
                opts = decl[1] if len(decl) > 1 else {}
                inputs[name] = opts["default"] if saved_before and not values else values.pop(0)
                if opts.get("control_after_generate"):
                    values.pop(0)  # "fixed"/"randomize", right after its widget
                upload = upload or bool(opts.get("image_upload"))
        if upload:
            values.pop(0)  # the upload button's value, after the node's last widget
        assert not values, f"{node['type']} #{node['id']}: {len(values)} unused widget values"
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


@pytest.mark.parametrize("name", NAMES)
def test_ui_format_is_consistent(name, classes):
    ui = _ui(name)
    assert ui["version"] == 0.4
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert ui["last_node_id"] == max(nodes) and ui["last_link_id"] == max(l[0] for l in ui["links"])
    for n in ui["nodes"]:
        assert n["type"] in classes or n["type"] == "Note", n["type"]
        if n["type"] == "Note":
            continue
        cls = classes[n["type"]]
        decl = dict(_inputs(cls))
        for i in n.get("inputs", []):
            assert i["name"] in decl and not _is_widget(decl[i["name"]]), (n["type"], i["name"])
            assert i["type"] == decl[i["name"]][0]
        outs = cls.RETURN_TYPES
        assert [o["type"] for o in n.get("outputs", [])] == list(outs)
        assert n["properties"]["Node name for S&R"] == n["type"]
        assert n["properties"]["cnr_id"] in ("comfy-core", "comfyui-phnet")
        for m in n["properties"].get("models", []):
            assert m["url"].startswith("https://huggingface.co/") and m["directory"] in ("sams", "checkpoints")
            assert m["name"] in n["widgets_values"]
    for link_id, src, src_slot, dst, dst_slot, typ in ui["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert out["type"] == typ and (typ in inp["type"].split(",") or inp["type"] == "*"), (name, link_id)
        assert link_id in out["links"] and inp["link"] == link_id
    orders = sorted(n["order"] for n in ui["nodes"])
    assert orders == list(range(len(ui["nodes"])))


@pytest.mark.parametrize("name", NAMES)
def test_the_note_names_every_model_file_the_template_needs(name):
    """A template opens with its Note: each weights file it names for download is named there too, with its folder,
    so a user without the Missing Models dialog (or offline) knows what to put where."""
    nodes = _ui(name)["nodes"]
    notes = " ".join(n["widgets_values"][0] for n in nodes if n["type"] == "Note")
    for m in (m for n in nodes for m in n["properties"].get("models", [])):
        assert m["name"] in notes and f"ComfyUI/models/{m['directory']}" in notes, (name, m["name"])


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_describe_the_same_graph(name, classes):
    api = _api(name)
    stripped = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
    assert ui_to_api(_ui(name), classes) == stripped


@pytest.mark.parametrize("name", NAMES)
def test_a_workflow_saved_before_the_newest_widgets_keeps_its_values(name, classes):
    """A saved workflow holds its widgets' values by position: mask_as_given and mask_is_alpha, added after them
    all, leave every saved value on its widget and come in off."""
    newest = ("mask_as_given", "mask_is_alpha")
    ui, expected = _ui(name), ui_to_api(_ui(name), classes)
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        names = [n for n, _ in _inputs(classes[node["type"]])]
        added = [n for n in names if n in newest]
        if added:
            assert names[-len(added):] == added
            del node["widgets_values"][-len(added):]
            expected[str(node["id"])]["inputs"].update(dict.fromkeys(added, False))
    assert ui_to_api(ui, classes, saved_before=True) == expected


@pytest.mark.parametrize("name", NAMES)
def test_api_prompt_validates(name, classes, tiny_sam, comfy_env, pack):
    _scene(comfy_env, pack)
    assert workflow_exec.validate_prompt(_api(name), classes) == []


def test_validator_catches_mistakes(classes, tiny_sam, comfy_env, pack):
    _scene(comfy_env, pack)
    api = _api(PASTE)
    bad = copy.deepcopy(api)
    bad["8"]["inputs"]["mask"] = ["6", 0]  # IMAGE into MASK
    bad["8"]["inputs"]["strength"] = 1.5
    bad["6"]["inputs"]["anchor"] = "middle"
    del bad["5"]["inputs"]["image"]
    bad["4"]["inputs"]["model_name"] = "missing.pth"
    errors = " | ".join(workflow_exec.validate_prompt(bad, classes))
    for expected in ("wants MASK, gets IMAGE", "1.5 > max", "'middle' not in", "required input 'image'",
                     "VALIDATE_INPUTS"):
        assert expected in errors


def _scene(comfy_env, pack):
    """The input pictures the workflows name, put into the (stand-in) ComfyUI input folder by the pack."""
    import importlib

    importlib.import_module(pack.__name__ + ".nodes.template_inputs").install()


def test_template_pictures_ship_and_reach_the_input_folder(comfy_env, pack, build):
    shipped = REPO / "examples" / "comfyui"
    named = {n["widgets_values"][0] for name in NAMES for n in _ui(name)["nodes"]
             if n["type"] in ("LoadImage", "LoadImageMask")}
    assert named == {"phnet_composite.png", "phnet_background.png", "phnet_subject.png", "phnet_reference.png",
                     "phnet_frame_1.jpg", "phnet_frame_2.jpg", "phnet_frame_3.jpg", "phnet_frame_4.jpg",
                     "phnet_frames_mask.png"}
    assert sum((shipped / f).stat().st_size for f in named) < 800_000
    with Image.open(shipped / "phnet_composite.png") as composite:
        assert composite.mode == "RGBA"
    _scene(comfy_env, pack)
    d = Path(comfy_env.fp.get_input_directory())
    for f in named:
        assert (d / f).read_bytes() == (shipped / f).read_bytes()
    # a user's own file of that name is never overwritten
    (d / "phnet_subject.png").write_bytes(b"mine")
    import importlib

    inputs = importlib.import_module(pack.__name__ + ".nodes.template_inputs")
    marker = inputs.record_path()
    assert marker.parent.parent == Path(comfy_env.fp.get_user_directory())
    assert not [f for f in d.iterdir() if f.name.startswith(".")]  # Load Image (as Mask) lists every file there
    marker.unlink()
    assert inputs.install() == []
    assert (d / "phnet_subject.png").read_bytes() == b"mine"
    (d / "phnet_subject.png").write_bytes((shipped / "phnet_subject.png").read_bytes())
    # copied once: a picture the user deletes stays deleted, until the marker goes too
    assert marker.is_file()
    (d / "phnet_frame_4.jpg").unlink()
    assert inputs.install() == [] and not (d / "phnet_frame_4.jpg").exists()
    marker.unlink()
    assert inputs.install() == ["phnet_frame_4.jpg"] and marker.is_file()
    # a picture a later version adds (not in the marker's list) still comes
    marker.write_text(marker.read_text().replace('"phnet_frame_4.jpg",', ""))
    (d / "phnet_frame_4.jpg").unlink()
    assert inputs.install() == ["phnet_frame_4.jpg"] and "phnet_frame_4.jpg" in marker.read_text()
    # an earlier version's record in the input folder is still honoured, and moved out of there
    marker.unlink()
    (d / "phnet_frame_4.jpg").unlink()
    (d / inputs.OLD_MARKER).write_text("old words\nphnet_frame_4.jpg\n")
    assert inputs.install() == [] and not (d / inputs.OLD_MARKER).exists()
    assert "phnet_frame_4.jpg" in marker.read_text()
    shutil.copyfile(shipped / "phnet_frame_4.jpg", d / "phnet_frame_4.jpg")  # for the workflows run after this


def test_a_read_only_input_folder_is_logged_not_fatal(comfy_env, pack, monkeypatch, tmp_path, caplog):
    """A read-only filesystem refuses even removing a file that is not there: the clean-up after a failed copy
    raised, and the pack's import with it (every PHNet node gone)."""
    import errno
    import importlib
    import logging

    inputs = importlib.import_module(pack.__name__ + ".nodes.template_inputs")
    monkeypatch.setattr(comfy_env.fp, "get_input_directory", lambda: str(tmp_path / "input"))
    monkeypatch.setattr(inputs, "record_path", lambda: tmp_path / "user" / "record.json")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(inputs.shutil, "copyfile", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with caplog.at_level(logging.WARNING):
        assert inputs.install() == []
    assert "could not copy the template picture" in caplog.text


def test_layout_has_no_overlaps_no_hidden_wires_and_cards_describe_themselves(build):
    for wf in build.workflows():
        assert build.overlaps(wf, gap=10) == []
        assert build.hidden_wires(wf) == []
        assert build.clipped_titles(wf) == []
        # where the shipped file opens in a 1920x1080 browser window (measured in frontends 1.27.10 and 1.58.1):
        # every node whole and clear of the menus, sidebars and toolbars, no title bar under the minimap's
        # corner, and the zoom high enough that the frontends draw the nodes' text
        view = json.loads((REPO / "example_workflows" / f"{wf.name}.json").read_text())["extra"]["ds"]
        assert view == build.opening_view(wf)
        assert view["scale"] >= build.READABLE_ZOOM > 8 / 14, (wf.name, view)
        x0, y0, x1, y1 = build.VIEW_BOX
        for node, (left, top, right, bottom) in zip(wf.nodes, build.on_screen(wf, view)):
            assert x0 - 0.5 <= left and y0 - 0.5 <= top and right <= x1 + 0.5 and bottom <= y1 + 0.5, (wf.name, node)
            title_bottom = top + build.TITLE_HEIGHT * view["scale"]
            assert right <= build.VIEW_CORNER[0] or title_bottom <= build.VIEW_CORNER[1], (wf.name, node)
        assert build.hidden_at_open(wf) == []
        # frontend 1.58's template browser ignores that view and fits the graph into 0.75 of its 1920x937 page
        # (title bars and 10 px of padding counted): the graph is small enough for that fit to draw the text too
        left, top, right, bottom = build.graph_box(wf)
        assert build.BROWSER_BOX_MAX == pytest.approx((0.75 * 1920 / 0.58 - 20, 0.75 * 937 / 0.58 - 20))
        assert right - left <= build.BROWSER_BOX_MAX[0] and bottom - top <= build.BROWSER_BOX_MAX[1], wf.name
        assert build.browser_zoom(wf) >= build.READABLE_ZOOM > 8 / 14, (wf.name, build.browser_zoom(wf))
        assert build.unreadable_from_browser(wf) == []
        # the template browser builds a card from the file name alone (frontend 1.27 shows it, dashes as
        # spaces, as the card's description; 1.58 as its title, whole on hover)
        assert len(wf.name.split("-")) >= 6 and wf.name.startswith("PHNet-")
        assert (REPO / "example_workflows" / f"{wf.name}.jpg").is_file()


@pytest.mark.parametrize("name", RUNNABLE)
def test_api_workflow_runs_end_to_end(name, classes, comfy_env, tiny_phnet, tiny_sam, pack):
    _scene(comfy_env, pack)
    prompt = _api(name)
    for node in prompt.values():  # the templates use the bundled default; the test uses the tiny model
        if node["class_type"] == "PHNetModelLoader":
            node["inputs"]["model_name"] = tiny_phnet
    results = workflow_exec.run_prompt(prompt, classes)
    saved = [r for k, r in results.items() if k.endswith(":ui") and r]
    files = [img for ui in saved for img in ui.get("images", [])]
    reports = [line for ui in saved for line in ui.get("text", [])]
    assert reports and all(line.startswith("PHNet Harmonize") for line in reports)
    out = [f for f in files if f["type"] == "output"]
    count = 4 if name == FRAMES else 1
    assert len(out) == count
    for f in out:
        out_dir = comfy_env.fp.get_output_directory()
        result = np.asarray(Image.open(os.path.join(out_dir, f["subfolder"], f["filename"])))
        assert result.shape == {COMPOSITE: (384, 384, 3), PASTE: (320, 480, 3), REFERENCE: (384, 384, 3),
                                FRAMES: (320, 320, 3)}[name]
    previews = [f for f in files if f["type"] == "temp"]
    # before | after in one preview; the frames template previews the frames before, its save node shows after
    assert len(previews) == (count if name == FRAMES else 2 * count)
    if name == PASTE:
        harmonize = next(k for k, v in prompt.items() if v["class_type"] == "PHNetHarmonize")
        paste = next(k for k, v in prompt.items() if v["class_type"] == "PHNetPasteSubject")
        assert results[paste][1].sum() > 100  # SAM found a subject that was pasted
        assert results[harmonize][0].shape == (1, 320, 480, 3)


def _snapshot():
    return json.loads((REPO / "tests" / "nodes" / "data" / "core_object_info.json").read_text())["nodes"]


def test_core_specs_match_real_comfyui(build):
    """build.CORE_NODES and the test stand-ins agree with a real ComfyUI's /object_info (captured by
    tests/comfyui_live/run_live.py --snapshot)."""
    snap = _snapshot()
    ours = set(build.load_pack().NODE_CLASS_MAPPINGS)
    used = {n["type"] for name in NAMES for n in _ui(name)["nodes"]} - {"Note"} - ours
    assert used <= set(snap) and used <= set(build.CORE_NODES) and used <= set(core_nodes.NODE_CLASS_MAPPINGS)
    for name in used:
        real = snap[name]
        real_inputs = [(n, real["input"][s][n])
                       for s in ("required", "optional") for n in real["input_order"].get(s, [])]
        real_types = [(n, "COMBO" if isinstance(d[0], list) else d[0]) for n, d in real_inputs]
        assert [(n, t) for n, t, _ in build.CORE_NODES[name]["inputs"]] == real_types, name
        assert [t for _, t in build.CORE_NODES[name]["outputs"]] == real["output"], name
        assert [n for n, _ in build.CORE_NODES[name]["outputs"]] == real["output_name"], name
        stand_in = core_nodes.NODE_CLASS_MAPPINGS[name]
        spec = stand_in.INPUT_TYPES()
        mine = [(n, d) for s in ("required", "optional") for n, d in spec.get(s, {}).items()]
        assert [n for n, _ in mine] == [n for n, _ in real_inputs], name
        assert list(stand_in.RETURN_TYPES) == real["output"], name
        for (n, d), (_, r) in zip(mine, real_inputs):
            if isinstance(r[0], list):
                assert isinstance(d[0], list) and (not r[0] or set(d[0]) <= set(r[0])), (name, n)
            else:
                assert d[0] == r[0], (name, n)
            ro, do = (r[1] if len(r) > 1 else {}), (d[1] if len(d) > 1 else {})
            for flag in ("control_after_generate", "image_upload"):
                assert bool(ro.get(flag)) == bool(do.get(flag)), (name, n, flag)
        assert bool(getattr(stand_in, "OUTPUT_NODE", False)) == real["output_node"], name


def test_the_builder_sees_a_wire_under_a_node_as_litegraph_draws_it(build):
    """A wire that runs behind a third node, and one that loops back under its own nodes, are both found."""
    Node, Workflow = build.Node, build.Workflow
    behind = Workflow("t", "t", "t", [
        Node(1, "LoadImage", (0, 100), {"image": "x.png"}, size=(300, 300)),
        Node(2, "ImageBatch", (400, 60), size=(200, 400)),  # in the way
        Node(3, "PreviewImage", (800, 100), links={"images": (1, 0)}, size=(300, 300)),
    ])
    assert any("LoadImage#1 -> PreviewImage#3.images passes under node(s) [2]" in p for p in build.hidden_wires(behind))
    backwards = Workflow("t", "t", "t", [
        Node(1, "LoadImage", (0, 100), {"image": "x.png"}, size=(300, 300)),
        Node(2, "ImageBatch", (0, 500), links={"image1": (1, 0)}, size=(300, 100)),  # below its source
    ])
    wire = "LoadImage#1 -> ImageBatch#2.image1 passes under node(s) [1]"
    assert any(wire in p for p in build.hidden_wires(backwards))


def test_the_builder_sees_a_graph_the_template_browser_would_open_without_text(build):
    """The SAM template once spanned 2800 x 1220 px (title bars included): frontend 1.58.1's template browser
    opened it at zoom 0.5106 (measured), below the 8/14 at which nodes get their text."""
    Node, Workflow = build.Node, build.Workflow

    def spanning(width, height):
        return Workflow("t", "t", "", [Node(1, "PreviewImage", (0, 30), size=(300, 300)),
                                       Node(2, "PreviewImage", (width - 300, height - 300), size=(300, 300))])

    wide = spanning(2800, 1220)
    assert build.browser_zoom(wide) == pytest.approx(0.5106, abs=1e-4)
    assert "without the nodes' text" in " ".join(build.unreadable_from_browser(wide))
    assert build.unreadable_from_browser(spanning(2460, 1190)) == []
    assert build.unreadable_from_browser(spanning(2460, 1200)) != []


def test_the_builder_sees_a_title_the_frontend_would_cut(build):
    """The weights loader's title tells the user what to pick; at 360 px wide its end was cut with an ellipsis."""
    Node, Workflow = build.Node, build.Workflow
    narrow = Workflow("t", "t", "", [Node(1, "PHNetModelLoader", (0, 0), build.PHNET_DEFAULT, size=(360, 160),
                                          title=build.LOADER_TITLE)])
    assert "does not fit its width 360" in " ".join(build.clipped_titles(narrow))
    narrow.nodes[0].size = build.LOADER_SIZE
    assert build.clipped_titles(narrow) == []
    # the earlier title was cut at 420 px in both frontends ("...for full correcti..."), which give a title its
    # node's width less 60 px
    narrow.nodes[0].title = "PHNet weights: pick official-ffhqh512 for full corrections"
    assert "does not fit its width 420" in " ".join(build.clipped_titles(narrow))


@pytest.mark.parametrize("title, inter, arial", [
    ("PHNet weights: pick official-ffhqh512 for full corrections", 373.2, 391.7),
    ("Weights: pick official-ffhqh512 for full corrections", 329.0, 346.1),
    ("Alpha -> subject mask", 148.8, 158.3),
    ("Load composite (RGBA)", 158.3, 166.1),
])
def test_title_width_is_at_least_what_the_frontends_measure(build, title, inter, arial):
    """Measured with measureText in headless Chromium: 14 px Inter (frontend 1.58) and 14 px Arial (1.27) where
    the browser has no Arial and draws DejaVu Sans, the wider of the two; the estimate keeps a small margin."""
    assert max(inter, arial) <= build.title_width(title) <= 1.05 * max(inter, arial)


def test_the_build_check_names_a_template_no_workflow_makes(tmp_path, monkeypatch, capsys):
    """A renamed or dropped workflow left its old JSON behind, which ComfyUI still listed; --check passed."""
    from workflows import build

    ui, api = tmp_path / "ui", tmp_path / "api"
    ui.mkdir()
    api.mkdir()
    files = {ui / "Kept.json": "{}\n", api / "Kept.api.json": "{}\n"}
    for path, text in files.items():
        path.write_text(text)
    (ui / "PHNet-old-name.json").write_text("{}\n")
    monkeypatch.setattr(build, "render", lambda: files)
    monkeypatch.setattr(build, "UI_DIR", ui)
    monkeypatch.setattr(build, "API_DIR", api)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    assert build.main(["--check"]) == 1 and "made by no workflow: ui/PHNet-old-name.json" in capsys.readouterr().out
    assert build.main([]) == 0 and (ui / "PHNet-old-name.json").exists()  # named, never deleted (a user's own?)
    assert "made by no workflow; remove it if it is a stale template" in capsys.readouterr().out


def test_the_templates_name_the_pack_by_the_id_and_version_pyproject_gives_it():
    """Each template's nodes carry the pack's registry id and version (the frontend offers to install the pack by
    them): a release that bumps pyproject's version must bump the builder's too."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from workflows import build

    project = tomllib.loads((build.ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert (build.PACK_ID, build.PACK_VERSION) == (project["name"], project["version"])


SAVED = REPO / "tests" / "nodes" / "data" / "saved_workflows"
# Templates as earlier releases wrote them (UI and API form, unchanged): the first release's (whose SAM socket was
# SAM_MODEL, and whose Harmonize had two widgets), and the last before the appended mask widgets.
SAVED_NAMES = sorted(p.name[: -len(".api.json")] for p in SAVED.glob("*.api.json"))


@pytest.mark.parametrize("name", SAVED_NAMES)
def test_a_workflow_an_earlier_release_saved_loads_with_every_value_on_its_widget(name, classes, comfy_env, pack,
                                                                                 tiny_sam):
    ui = json.loads((SAVED / f"{name}.json").read_text())
    then = json.loads((SAVED / f"{name}.api.json").read_text())  # what each saved value meant, by name
    now = ui_to_api(ui, classes, saved_before=True)  # by position, as the frontend reads it today
    for node_id, node in then.items():
        assert now[node_id]["class_type"] == node["class_type"]
        for key, value in node["inputs"].items():
            assert now[node_id]["inputs"][key] == value, (name, node["class_type"], key)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for _, _, _, dst, dst_slot, typ in ui["links"]:  # a saved wire's type still fits the input it feeds
        wanted = dict(_inputs(classes[nodes[dst]["type"]]))[nodes[dst]["inputs"][dst_slot]["name"]][0]
        assert wanted == "*" or typ in wanted.split(","), (name, nodes[dst]["type"], typ)
    _scene(comfy_env, pack)
    for node in now.values():  # the user's own SAM file, under the name the template gave it
        if node["class_type"] == "PHNetSAMLoader":
            node["inputs"]["model_name"] = tiny_sam
    assert workflow_exec.validate_prompt(now, classes) == []


def test_the_saved_workflows_include_the_first_releases_sam_socket():
    ui = json.loads((SAVED / "2026-11-25-paste-and-harmonize.json").read_text())
    assert [link[5] for link in ui["links"]].count("SAM_MODEL") == 1
