"""Small stand-ins for the SD-WebUI ``modules`` package and for ``gradio``.

They mirror the interfaces the extension touches in AUTOMATIC1111's
``modules/scripts.py`` (``Script``, ``AlwaysVisible``, ``PostprocessImageArgs``, how the
ScriptRunner slices ``p.script_args`` for each always-on script), ``modules/processing.py``
(the processing objects' attribute names), ``modules/paths.py`` (``models_path``) and
``modules/shared.py``. Written from the public interface, not copied.
"""

from __future__ import annotations

import re
import sys
import types
from types import SimpleNamespace


# ---- fake gradio: records every component ui() builds ------------------------------------


class FakeComponent:
    kind = "component"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.label = kwargs.get("label", args[0] if args and isinstance(args[0], str) else None)
        self.value = kwargs.get("value")
        self.choices = kwargs.get("choices")
        self.visible = kwargs.get("visible", True)
        self.events = []
        self.children = []
        _registry.built.append(self)
        if _registry.stack:
            _registry.stack[-1].children.append(self)

    def __enter__(self):
        _registry.stack.append(self)
        return self

    def __exit__(self, *exc):
        _registry.stack.pop()
        return False

    def change(self, fn=None, inputs=None, outputs=None, **kwargs):
        self.events.append(("change", fn, inputs, outputs))
        return self

    def __repr__(self):
        return f"<{type(self).__name__} {self.label!r}>"


class _Registry:
    def __init__(self):
        self.built = []
        self.stack = []


_registry = _Registry()


def make_fake_gradio():
    gr = types.ModuleType("gradio")
    gr.__version__ = "3.41.2"
    for name in (
        "Accordion", "Row", "Column", "Group", "Blocks",  # layouts
        "Checkbox", "Slider", "Dropdown", "Radio", "Image", "Number", "Textbox", "Markdown", "Button",
    ):  # fmt: skip
        setattr(gr, name, type(name, (FakeComponent,), {"kind": name}))
    gr.update = lambda **kwargs: dict(kwargs, __type__="update")
    gr.registry = _registry
    gr.reset = lambda: (_registry.built.clear(), _registry.stack.clear())
    return gr


# ---- fake modules.* ----------------------------------------------------------------------


def make_fake_modules(models_path: str, script_path: str):
    """Return {module name: module} for modules, modules.scripts/.processing/.paths/.shared."""
    pkg = types.ModuleType("modules")
    pkg.__path__ = []  # a package, so ``from modules import scripts`` works

    paths = types.ModuleType("modules.paths")
    paths.script_path = script_path
    paths.models_path = models_path
    paths.data_path = script_path

    shared = types.ModuleType("modules.shared")
    shared.opts = SimpleNamespace(overlay_inpaint=True, samples_format="png")
    shared.cmd_opts = SimpleNamespace(lowvram=False, medvram=False)
    shared.state = SimpleNamespace(interrupted=False, skipped=False)

    scripts = types.ModuleType("modules.scripts")
    scripts.AlwaysVisible = object()

    class PostprocessImageArgs:
        def __init__(self, image):
            self.image = image

    class Script:
        name = None
        section = None
        filename = None
        args_from = None
        args_to = None
        alwayson = False
        is_txt2img = False
        is_img2img = False
        tabname = None
        group = None
        create_group = True
        infotext_fields = None
        paste_field_names = None
        controls = None

        def title(self):
            raise NotImplementedError()

        def ui(self, is_img2img):
            pass

        def show(self, is_img2img):
            return True

        def run(self, p, *args):
            pass

        def setup(self, p, *args):
            pass

        def before_process(self, p, *args):
            pass

        def process(self, p, *args):
            pass

        def process_batch(self, p, *args, **kwargs):
            pass

        def postprocess_batch(self, p, *args, **kwargs):
            pass

        def postprocess_image(self, p, pp, *args):
            pass

        def postprocess(self, p, processed, *args):
            pass

        def elem_id(self, item_id):
            need_tabname = self.show(True) == self.show(False)
            tabkind = "img2img" if self.is_img2img else "txt2img"
            tabname = f"{tabkind}_" if need_tabname else ""
            title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
            return f"script_{tabname}{title}_{item_id}"

    class ScriptRunner:
        """Just the part of the real runner that hands UI values to always-on scripts."""

        def __init__(self):
            self.inputs = [None]  # slot 0 is the script dropdown
            self.alwayson_scripts = []

        def add(self, script, is_img2img):
            script.is_img2img = is_img2img
            script.is_txt2img = not is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            if script.show(is_img2img) is scripts.AlwaysVisible:
                script.alwayson = True
                self.alwayson_scripts.append(script)
            script.args_from = len(self.inputs)
            controls = script.ui(is_img2img)
            script.controls = controls
            self.inputs += list(controls or [])
            script.args_to = len(self.inputs)

        def default_args(self):
            return [None] + [c.value for c in self.inputs[1:]]

        def process(self, p):
            for s in self.alwayson_scripts:
                s.process(p, *p.script_args[s.args_from : s.args_to])

        def postprocess_image(self, p, pp):
            for s in self.alwayson_scripts:
                s.postprocess_image(p, pp, *p.script_args[s.args_from : s.args_to])

    scripts.PostprocessImageArgs = PostprocessImageArgs
    scripts.Script = Script
    scripts.ScriptRunner = ScriptRunner
    scripts.basedir = lambda: script_path

    processing = types.ModuleType("modules.processing")

    class StableDiffusionProcessing:
        def __init__(self, width=64, height=64, prompt="", seed=-1, **kwargs):
            self.width = width
            self.height = height
            self.prompt = prompt
            self.seed = seed
            self.extra_generation_params = {}
            self.scripts = None
            self.script_args = []
            self.batch_index = 0
            for k, v in kwargs.items():
                setattr(self, k, v)

    class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
        pass

    class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
        def __init__(self, init_images=None, image_mask=None, mask_blur=4, inpaint_full_res=False,
                     inpaint_full_res_padding=0, inpainting_mask_invert=0, denoising_strength=0.75, **kwargs):  # fmt: skip
            super().__init__(**kwargs)
            self.init_images = init_images or []
            self.image_mask = image_mask
            self.mask_blur = mask_blur
            self.inpaint_full_res = inpaint_full_res
            self.inpaint_full_res_padding = inpaint_full_res_padding
            self.inpainting_mask_invert = inpainting_mask_invert
            self.denoising_strength = denoising_strength
            self.paste_to = None
            self.mask_for_overlay = None

    processing.StableDiffusionProcessing = StableDiffusionProcessing
    processing.StableDiffusionProcessingTxt2Img = StableDiffusionProcessingTxt2Img
    processing.StableDiffusionProcessingImg2Img = StableDiffusionProcessingImg2Img

    for name, mod in (("scripts", scripts), ("processing", processing), ("paths", paths), ("shared", shared)):
        setattr(pkg, name, mod)
    return {
        "modules": pkg,
        "modules.scripts": scripts,
        "modules.processing": processing,
        "modules.paths": paths,
        "modules.shared": shared,
    }


def install(monkeypatch, models_path, script_path):
    """Put the fakes into sys.modules for one test (monkeypatch undoes it)."""
    for name in [n for n in sys.modules if n == "modules" or n.startswith("modules.")]:
        monkeypatch.delitem(sys.modules, name)
    fakes = make_fake_modules(str(models_path), str(script_path))
    fakes["gradio"] = make_fake_gradio()
    for name, mod in fakes.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return fakes
