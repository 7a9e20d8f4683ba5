"""The pack as ComfyUI sees it: import, registration, node definitions, model folders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def test_mappings(pack):
    m = pack.NODE_CLASS_MAPPINGS
    assert set(m) == {"PHNetModelLoader", "PHNetSAMLoader", "PHNetSAMSegment", "PHNetPasteSubject", "PHNetHarmonize",
                      "PHNetHarmonizeFrames"}
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(m)
    assert all(k.startswith("PHNet") for k in m)
    # one small frontend extension: the Harmonize nodes' report drawn under them
    assert pack.WEB_DIRECTORY == "./web"
    assert sorted(p.name for p in (Path(pack.__file__).parent / "web").iterdir()) == ["phnet_report.js"]


def test_each_threshold_says_which_one_it_is_and_its_unit(pack):
    """Two widgets are named threshold (saved workflows hold the name): SAM Segment's is a cut-off on SAM's logits,
    Harmonize's a do-no-harm threshold in 8-bit levels. Each tooltip says which, its unit, and that it is not the
    other."""
    m = pack.NODE_CLASS_MAPPINGS
    sam = m["PHNetSAMSegment"].INPUT_TYPES()["required"]["threshold"][1]["tooltip"]
    assert "SAM's mask threshold, in logits" in sam and "not PHNet Harmonize's do-no-harm threshold" in sam
    assert "probability 0.5" in sam
    for node_id in ("PHNetHarmonize", "PHNetHarmonizeFrames"):
        spec = m[node_id].INPUT_TYPES()
        tip = {**spec["required"], **spec.get("optional", {})}["threshold"][1]["tooltip"]
        assert tip.startswith("Do-no-harm threshold, in 8-bit levels") and "not SAM's mask threshold" in tip, node_id


def test_node_definitions_are_well_formed(pack):
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"}, node_id
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES, node_id
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS), node_id
        assert callable(getattr(cls, cls.FUNCTION)), node_id
        assert cls.CATEGORY.startswith("PHNet") and cls.DESCRIPTION, node_id
        names = []
        for section in ("required", "optional"):
            for name, decl in spec.get(section, {}).items():
                names.append(name)
                assert isinstance(decl, tuple) and 1 <= len(decl) <= 2, (node_id, name)
                typ = decl[0]
                opts = decl[1] if len(decl) > 1 else {}
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
                assert isinstance(typ, (str, list)), (node_id, name)
                if isinstance(typ, list):
                    assert all(isinstance(x, str) for x in typ)
                    if "default" in opts:
                        assert opts["default"] in typ
                if isinstance(typ, str) and typ in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts["max"], (node_id, name)
                if isinstance(typ, str) and typ in WIDGETS:
                    assert "default" in opts, (node_id, name)
        # the function accepts every input by name
        params = __import__("inspect").signature(getattr(cls, cls.FUNCTION)).parameters
        assert set(names) <= set(params), node_id


def test_stable_interface(pack):
    """Saved workflows refer to these ids and input names, and hold widget values by position: never rename, only
    add optional inputs, after the others."""
    expected = {
        "PHNetModelLoader": ["model_name", "hub_repo_id", "device", "dtype"],
        "PHNetSAMLoader": ["model_name", "hub_repo_id", "hub_filename", "model_type", "device"],
        "PHNetSAMSegment": ["sam_model", "image", "box", "positive_points", "negative_points", "multimask",
                            "threshold", "grow", "feather", "guide_mask", "mask_as_given"],
        "PHNetPasteSubject": ["background", "subject", "x", "y", "scale", "anchor", "subject_mask", "mask_as_given"],
        "PHNetHarmonize": ["phnet_model", "image", "mask", "strength", "working_size", "reference_mask", "threshold",
                           "mask_as_given", "mask_is_alpha"],
        "PHNetHarmonizeFrames": ["phnet_model", "image", "mask", "smoothing", "cut_threshold", "causal", "strength",
                                 "working_size", "reference_mask", "threshold", "mask_as_given",
                                 "mask_is_alpha"],
    }
    for node_id, names in expected.items():
        spec = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
        assert list(spec.get("required", {})) + list(spec.get("optional", {})) == names
    rt = {k: c.RETURN_TYPES for k, c in pack.NODE_CLASS_MAPPINGS.items()}
    assert rt == {"PHNetModelLoader": ("PHNET_MODEL",), "PHNetSAMLoader": ("PHNET_SAM",),
                  "PHNetSAMSegment": ("MASK",), "PHNetPasteSubject": ("IMAGE", "MASK"),
                  "PHNetHarmonize": ("IMAGE", "STRING"), "PHNetHarmonizeFrames": ("IMAGE", "STRING")}


def test_anchor_choices_match_core(pack):
    from phnet.compositing import ANCHORS

    spec = pack.NODE_CLASS_MAPPINGS["PHNetPasteSubject"].INPUT_TYPES()
    assert spec["required"]["anchor"][0] == list(ANCHORS)


def test_model_folders_registered(pack, comfy_env):
    fp = comfy_env.fp
    for name in ("phnet", "sams"):
        paths, exts = fp.folder_names_and_paths[name]
        assert os.path.join(fp.models_dir, name) in paths
        assert ".safetensors" in exts and ".pth" in exts


def test_model_lists(pack, tiny_phnet, tiny_sam):
    phnet_list = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    assert phnet_list[0] == "default (bundled)"
    assert tiny_phnet in phnet_list
    assert not any(n.endswith(".json") for n in phnet_list)
    sam_list = pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"].INPUT_TYPES()["required"]["model_name"][0]
    assert tiny_sam in sam_list


def test_registration_keeps_another_packs_extensions_and_gives_a_new_folder_comfyuis_own(pack, comfy_env, tmp_path):
    """A 'sams' entry another pack made for its .onnx files keeps them; a folder no one registered lists ComfyUI's
    weight extensions (.pkl, .pt2) besides ours (under a hand-made mutant each got the other's set)."""
    from importlib import import_module

    paths_mod = import_module(pack.__name__ + ".nodes.paths")
    fp = comfy_env.fp
    saved = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    try:
        del fp.folder_names_and_paths["phnet"]
        fp.folder_names_and_paths["sams"] = ([str(tmp_path / "other_sams")], {".onnx"})
        paths_mod.register_model_folders()
        assert {".onnx", ".pth", ".safetensors"} <= fp.folder_names_and_paths["sams"][1]
        assert ".pkl" not in fp.folder_names_and_paths["sams"][1]
        assert {".pkl", ".pt2", ".safetensors"} <= fp.folder_names_and_paths["phnet"][1]
    finally:
        fp.folder_names_and_paths.clear()
        fp.folder_names_and_paths.update(saved)


def test_registration_is_additive(pack, comfy_env, tmp_path):
    """A user's extra_model_paths.yaml entry (applied before packs load) survives; ours is appended."""
    from importlib import import_module

    paths_mod = import_module(pack.__name__ + ".nodes.paths")
    fp = comfy_env.fp
    saved = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    try:
        del fp.folder_names_and_paths["phnet"]
        user = str(tmp_path / "user_phnet")
        fp.add_model_folder_path("phnet", user)  # what ComfyUI does for a YAML entry: exts = set() ("all")
        fp.folder_names_and_paths["sams"] = ([str(tmp_path / "impact_sams")], {".pth"})  # another pack's entry
        paths_mod.register_model_folders()
        p, exts = fp.folder_names_and_paths["phnet"]
        assert p == [user, os.path.join(fp.models_dir, "phnet")] and exts == set()
        p, exts = fp.folder_names_and_paths["sams"]
        assert p == [str(tmp_path / "impact_sams"), os.path.join(fp.models_dir, "sams")]
        assert {".pth", ".safetensors"} <= exts
        paths_mod.register_model_folders()  # idempotent
        assert fp.folder_names_and_paths["phnet"][0] == [user, os.path.join(fp.models_dir, "phnet")]
        # a file in the user's folder is listed (config.json beside it is not, even with exts == "all")
        os.makedirs(os.path.join(user, "mine"))
        open(os.path.join(user, "mine", "model.safetensors"), "wb").close()
        open(os.path.join(user, "mine", "config.json"), "w").close()
        open(os.path.join(user, "mine", "._model.safetensors"), "wb").close()  # a Mac's metadata for it
        assert "mine/model.safetensors" in paths_mod.phnet_choices()
        assert "mine/config.json" not in paths_mod.phnet_choices()
        assert "mine/._model.safetensors" not in paths_mod.phnet_choices()
        os.makedirs(os.path.join(user, ".official-ffhqh512.converting"))  # a conversion under way, or killed
        open(os.path.join(user, ".official-ffhqh512.converting", "model.safetensors"), "wb").close()
        assert not any(".converting" in name for name in paths_mod.phnet_choices())
        run = os.path.join(user, "myrun", "checkpoints", "step-00000100")  # a copied training run
        os.makedirs(run)
        open(os.path.join(run, "model.safetensors"), "wb").close()
        open(os.path.join(run, "training_state.pt"), "wb").close()  # its optimizer state: offered, it failed to load
        assert "myrun/checkpoints/step-00000100/model.safetensors" in paths_mod.phnet_choices()
        assert not any(name.endswith("training_state.pt") for name in paths_mod.phnet_choices())
    finally:
        fp.folder_names_and_paths.clear()
        fp.folder_names_and_paths.update({k: (v[0], v[1]) for k, v in saved.items()})


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd="/", env=env,
                          capture_output=True, text=True, timeout=120)


def test_pack_uses_its_own_core_without_touching_sys_modules(tmp_path):
    """In ComfyUI the repo root is not on sys.path. Loading the pack must stay light (the core, SAM and
    the Hub client load when a node runs), must not add a top-level 'phnet' or 'nodes' module (ours
    would shadow ComfyUI's nodes.py), and a node must reach the core bundled beside it, even when a
    different 'phnet' is importable."""
    link = tmp_path / "custom_nodes" / "comfyui-phnet"
    link.parent.mkdir()
    os.symlink(REPO, link)
    decoy = tmp_path / "site" / "phnet"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the installed phnet must not be used')\n")
    r = _run_isolated(f"""
        import importlib, importlib.util, sys
        sys.path = [p for p in sys.path if p not in ('', {str(REPO)!r})] + [{str(decoy.parent)!r}]
        spec = importlib.util.spec_from_file_location('stubs', {str(REPO / 'workflows/comfy_standins.py')!r})
        stubs = importlib.util.module_from_spec(spec); spec.loader.exec_module(stubs)
        stubs.install({str(tmp_path)!r})
        before = set(sys.modules)
        path = {str(link)!r}
        spec = importlib.util.spec_from_file_location(path.replace('.', '_x_'), path + '/__init__.py')
        m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)
        assert len(m.NODE_CLASS_MAPPINGS) == 6
        new = set(sys.modules) - before
        assert not [n for n in new if not n.startswith(spec.name + '.') and n.split('.')[0] in
                    ('phnet', 'nodes', 'segment_anything', 'huggingface_hub', 'safetensors')], sorted(new)
        assert not [n for n in new if n.startswith(spec.name + '.phnet')], 'the core loaded at import'
        loaders = sys.modules[spec.name + '.nodes.loaders']
        (h,) = loaders.PHNetModelLoader().load('default (bundled)', '', 'cpu', 'auto')
        print(type(h).__module__, sys.modules[type(h).__module__].__file__)
        assert 'phnet' not in sys.modules and 'nodes' not in sys.modules
        print('ok')
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")
    module, file = r.stdout.splitlines()[0].split()
    assert module.endswith("comfyui-phnet.phnet.harmonizer")
    assert os.path.realpath(file) == str(REPO / "phnet" / "harmonizer.py")


def test_root_init_imports_outside_comfyui():
    """Plain `import phnet` with the repo root on sys.path, and the root __init__ run outside a package."""
    r = _run_isolated(f"""
        import sys, runpy
        sys.path.insert(0, {str(REPO)!r})
        import phnet
        ns = runpy.run_path({str(REPO / '__init__.py')!r})
        assert ns['NODE_CLASS_MAPPINGS'] == {{}}
        print('ok')
    """)
    assert r.returncode == 0, r.stderr


def test_the_pack_names_what_the_library_names(pack):
    """The default's label and the dtype choices are the library's own (the pack only spells the label out,
    so that loading it does not import the core)."""
    import importlib

    from phnet.precision import CHOICES
    from phnet.sources import DEFAULT_LABEL

    paths = importlib.import_module(pack.__name__ + ".nodes.paths")
    assert paths.BUNDLED_DEFAULT == DEFAULT_LABEL
    spec = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"].INPUT_TYPES()["required"]
    assert spec["dtype"][0] == list(CHOICES) and spec["model_name"][1]["default"] == DEFAULT_LABEL


def test_downloads_go_to_comfyuis_first_writable_folder(pack, comfy_env, tmp_path, monkeypatch):
    """An extra_model_paths.yaml folder marked is_default is where ComfyUI puts downloads; ours went to
    models/<folder> whatever the YAML said, and failed outright where that folder is read-only."""
    from importlib import import_module

    paths_mod = import_module(pack.__name__ + ".nodes.paths")
    fp = comfy_env.fp
    saved = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    try:
        shared = str(tmp_path / "nas" / "phnet")
        os.makedirs(shared)
        fp.add_model_folder_path("phnet", shared, is_default=True)
        assert paths_mod.download_dir("phnet") == shared and paths_mod.phnet_folders()[0] == shared
        real_access = os.access
        monkeypatch.setattr(paths_mod.os, "access", lambda p, mode: False if str(p).startswith(str(tmp_path / "nas"))
                            else real_access(p, mode))  # the share mounted read-only
        assert paths_mod.download_dir("phnet") == os.path.join(fp.models_dir, "phnet")
        assert paths_mod.phnet_folders() == [os.path.join(fp.models_dir, "phnet"), shared]
    finally:
        fp.folder_names_and_paths.clear()
        fp.folder_names_and_paths.update(saved)


def test_a_configured_folder_not_made_yet_gets_downloads_when_its_parent_is_writable(pack, comfy_env, tmp_path):
    """Its nearest existing parent is asked (under a hand-made mutant the folder itself was, and it was passed over
    for models/<folder>)."""
    from importlib import import_module

    paths_mod = import_module(pack.__name__ + ".nodes.paths")
    fp = comfy_env.fp
    saved = {k: (list(v[0]), set(v[1])) for k, v in fp.folder_names_and_paths.items()}
    try:
        planned = str(tmp_path / "not-yet" / "phnet")
        fp.add_model_folder_path("phnet", planned, is_default=True)
        assert paths_mod.download_dir("phnet") == planned
    finally:
        fp.folder_names_and_paths.clear()
        fp.folder_names_and_paths.update(saved)


def test_on_windows_a_folder_is_writable_when_a_probe_file_can_be_made_there(pack, tmp_path, monkeypatch):
    """os.access says yes for every folder on Windows: a probe file is made and removed, and a folder where none can
    be made is not chosen (each answer turned under a hand-made mutant the suite let pass)."""
    import tempfile
    from importlib import import_module

    paths_mod = import_module(pack.__name__ + ".nodes.paths")
    with monkeypatch.context() as windows:  # (pathlib, pytest's report among them, cannot run as on Windows)
        windows.setattr(paths_mod.os, "name", "nt")
        writable = paths_mod._writable(str(tmp_path))
        windows.setattr(tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(PermissionError("read-only share")))
        refused = paths_mod._writable(str(tmp_path))
    assert writable is True and list(tmp_path.iterdir()) == []
    assert refused is False


def test_the_core_imports_itself_relatively_so_the_pack_uses_its_own_copy():
    """ComfyUI loads the pack's phnet/ as a subpackage: an absolute ``from phnet...`` there (PHNetConfig.save had
    one) fails, or quietly uses another installed phnet."""
    import re

    core = Path(__file__).resolve().parents[2] / "phnet"
    found = [f"{path.relative_to(core.parent)}:{n}" for path in core.rglob("*.py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.match(r"\s*(from phnet[. ]|import phnet\b)", line)]
    assert found == []


def test_every_message_a_node_raises_ends_without_a_closing_period_as_the_librarys_do():
    """The nodes reword the library's refusals, and 12 of their messages ended with a period where the other 17 and
    the library's did not. (A message that ends with a value is read by hand.)"""
    from tests.helpers.messages import last_words, message_templates

    templates = list(message_templates(REPO / "nodes", returned=True))
    ends = [(where, (last_words(message) or "").rstrip()) for where, message, _ in templates]
    assert len(templates) > 30 and [where for where, end in ends if end.endswith(".")] == []


def test_the_nodes_widget_defaults_are_the_librarys_defaults(pack):
    """A widget's default and the library's default it stands for are written in two places: they must agree
    (the README documents the library's)."""
    import inspect

    from phnet import Harmonizer
    from phnet.temporal import Temporal

    m = pack.NODE_CLASS_MAPPINGS
    call = inspect.signature(Harmonizer.harmonize).parameters
    for node in ("PHNetHarmonize", "PHNetHarmonizeFrames"):
        optional = m[node].INPUT_TYPES()["optional"]
        assert optional["strength"][1]["default"] == call["strength"].default == 1.0
        assert optional["threshold"][1]["default"] == -1.0 and call["threshold"].default is None  # the weights' own
        assert optional["working_size"][1]["default"] == 0 and call["working_size"].default is None
        assert optional["mask_is_alpha"][1]["default"] is call["mask_is_alpha"].default is False
    frames = m["PHNetHarmonizeFrames"].INPUT_TYPES()["required"]
    assert frames["smoothing"][1]["default"] == Temporal().window == 3.0
    assert frames["cut_threshold"][1]["default"] == Temporal().cut_threshold == 20.0
    assert frames["causal"][1]["default"] is Temporal().causal is False
    loader = m["PHNetModelLoader"].INPUT_TYPES()["required"]
    assert loader["dtype"][1]["default"] == inspect.signature(Harmonizer.__init__).parameters["dtype"].default == "auto"
    for node_id, cls in m.items():  # a third place: the node function's own default, for a caller that leaves it out
        spec = cls.INPUT_TYPES()
        widgets = {**spec["required"], **spec.get("optional", {})}
        for name, p in inspect.signature(getattr(cls, cls.FUNCTION)).parameters.items():
            opts = widgets.get(name, (None, {}))[1] if len(widgets.get(name, ())) > 1 else {}
            if p.default is not p.empty and "default" in opts:
                assert p.default == opts["default"], (node_id, name)
