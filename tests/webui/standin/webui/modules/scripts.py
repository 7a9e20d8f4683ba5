"""``modules/scripts.py``: finding, executing and running scripts.

Mirrored parts: ``Script`` (attributes, hooks, ``elem_id``), ``AlwaysVisible``,
``PostprocessImageArgs``, ``ScriptFile``, ``basedir``, ``list_scripts`` (without the metadata
ordering), ``load_scripts`` (the sys.path swap, one ``errors.report`` per failing file, Script
subclasses registered by scanning the executed module) and the ``ScriptRunner`` steps an always-on
script goes through (instantiate, ``show``, ``ui`` inside a ``gr.Group``, the API argument info,
slicing ``p.script_args`` per hook, errors reported instead of raised).
"""

import inspect
import os
import re
import sys
from collections import namedtuple

import gradio as gr

from modules import errors, extensions, paths, script_loading

AlwaysVisible = object()


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
    api_info = None
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

    def postprocess_image_after_composite(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def elem_id(self, item_id):
        # the tab name is only part of the id when the script shows in both tabs the same way
        tab = ("img2img" if self.is_img2img else "txt2img") + "_" if self.show(True) == self.show(False) else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tab}{title}_{item_id}"


current_basedir = paths.script_path


def basedir():
    """The folder of the extension whose script is executing (the WebUI root otherwise)."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data = []


def list_scripts(scriptdirname, extension):
    found = []
    root_dir = os.path.join(paths.script_path, scriptdirname)
    if os.path.isdir(root_dir):
        for name in sorted(os.listdir(root_dir)):
            path = os.path.join(root_dir, name)
            if os.path.isfile(path) and os.path.splitext(name)[1].lower() == extension:
                found.append(ScriptFile(paths.script_path, name, path))
    for ext in extensions.active():
        found += ext.list_files(scriptdirname, extension)
    return found


def load_scripts():
    global current_basedir
    scripts_data.clear()
    saved_path = sys.path
    for scriptfile in list_scripts("scripts", ".py"):
        try:
            # a fresh list with the extension folder in front, for the time this one file executes
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            for value in module.__dict__.values():
                if inspect.isclass(value) and issubclass(value, Script):
                    scripts_data.append(ScriptClassData(value, scriptfile.path, scriptfile.basedir, module))
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = saved_path
            current_basedir = paths.script_path


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]  # slot 0 is the "Script" dropdown of selectable scripts

    def initialize_scripts(self, is_img2img):
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()
        for data in scripts_data:
            try:
                script = data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {data.module}: ", exc_info=True)
                continue
            script.filename = data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def create_script_ui(self, script):
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self._create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def _create_script_ui_inner(self, script):
        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return
        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()
        api_args = []
        for control in controls:
            # what the real runner reads from each control to describe the script to the API
            control.custom_script_source = os.path.basename(script.filename)
            arg = {"label": control.label or ""}
            for field in ("value", "minimum", "maximum", "step"):
                if getattr(control, field, None) is not None:
                    arg[field] = getattr(control, field)
            choices = getattr(control, "choices", None)
            if choices is not None:
                arg["choices"] = [c[0] if isinstance(c, tuple) else c for c in choices]
            api_args.append(arg)
        script.api_info = {"name": script.name, "is_img2img": script.is_img2img,
                           "is_alwayson": script.alwayson, "args": api_args}  # fmt: skip
        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names
        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui(self):
        for script in self.alwayson_scripts:
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def default_script_args(self):
        """What the API starts from (``init_default_script_args``): every control's default value."""
        args = [None] * len(self.inputs)
        args[0] = 0
        for script in self.scripts:
            if script.controls:
                args[script.args_from : script.args_to] = [c.value for c in script.controls]
        return args

    def _each(self, hook, p, *extra):
        for script in self.alwayson_scripts:
            try:
                getattr(script, hook)(p, *extra, *p.script_args[script.args_from : script.args_to])
            except Exception:
                errors.report(f"Error running {hook}: {script.filename}", exc_info=True)

    def process(self, p):
        self._each("process", p)

    def postprocess_image(self, p, pp):
        self._each("postprocess_image", p, pp)
