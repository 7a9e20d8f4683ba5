"""Minimal stand-ins for the ComfyUI host modules the node pack touches.

They follow the behaviour of ComfyUI's own ``folder_paths`` / ``comfy.model_management`` /
``comfy.utils`` (0.3.x) for the functions used here, so a pack that works against them works in
ComfyUI: e.g. ``add_model_folder_path`` creates an entry with an empty extension set ("every file")
or appends to an existing one, ``get_filename_list`` is recursive and returns sorted relative paths,
``ProgressBar`` forwards to a global hook.
"""

from __future__ import annotations

import os
import sys
import types


def make_folder_paths(base_dir: str) -> types.ModuleType:
    fp = types.ModuleType("folder_paths")
    fp.__file__ = os.path.join(base_dir, "folder_paths.py")
    fp.base_path = base_dir
    fp.models_dir = os.path.join(base_dir, "models")
    fp.supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
    fp.folder_names_and_paths = {
        "checkpoints": ([os.path.join(fp.models_dir, "checkpoints")], set(fp.supported_pt_extensions)),
        "vae": ([os.path.join(fp.models_dir, "vae")], set(fp.supported_pt_extensions)),
        "custom_nodes": ([os.path.join(base_dir, "custom_nodes")], set()),
    }
    fp.output_directory = os.path.join(base_dir, "output")
    fp.temp_directory = os.path.join(base_dir, "temp")
    fp.input_directory = os.path.join(base_dir, "input")
    fp.user_directory = os.path.join(base_dir, "user")
    for d in (fp.output_directory, fp.temp_directory, fp.input_directory, fp.user_directory):
        os.makedirs(d, exist_ok=True)

    legacy = {"unet": "diffusion_models", "clip": "text_encoders"}

    def map_legacy(name):
        return legacy.get(name, name)

    def add_model_folder_path(folder_name, full_folder_path, is_default=False):
        folder_name = map_legacy(folder_name)
        if folder_name in fp.folder_names_and_paths:
            paths, _ = fp.folder_names_and_paths[folder_name]
            if full_folder_path in paths:
                if is_default and paths[0] != full_folder_path:
                    paths.remove(full_folder_path)
                    paths.insert(0, full_folder_path)
            elif is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
        else:
            fp.folder_names_and_paths[folder_name] = ([full_folder_path], set())

    def get_folder_paths(folder_name):
        return fp.folder_names_and_paths[map_legacy(folder_name)][0][:]

    def get_filename_list(folder_name):
        paths, exts = fp.folder_names_and_paths[map_legacy(folder_name)]  # KeyError like the real one
        found = set()
        for root in paths:
            if not os.path.isdir(root):
                continue
            for dirpath, subdirs, files in os.walk(root, followlinks=True):
                subdirs[:] = [d for d in subdirs if d != ".git"]
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    if len(exts) == 0 or os.path.splitext(rel)[1].lower() in exts:
                        found.add(rel)
        return sorted(found)

    def get_full_path(folder_name, filename):
        folder_name = map_legacy(folder_name)
        if folder_name not in fp.folder_names_and_paths:
            return None
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for root in fp.folder_names_and_paths[folder_name][0]:
            full = os.path.join(root, filename)
            if os.path.isfile(full):
                return full
        return None

    def get_full_path_or_raise(folder_name, filename):
        p = get_full_path(folder_name, filename)
        if p is None:
            raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
        return p

    def get_input_directory():
        return fp.input_directory

    def get_output_directory():
        return fp.output_directory

    def get_temp_directory():
        return fp.temp_directory

    def get_user_directory():
        return fp.user_directory

    def get_annotated_filepath(name, default_dir=None):
        for suffix, d in ((" [output]", fp.output_directory), (" [input]", fp.input_directory),
                          (" [temp]", fp.temp_directory)):
            if name.endswith(suffix):
                return os.path.join(d, name[: -len(suffix)])
        return os.path.join(default_dir or fp.input_directory, name)

    def exists_annotated_filepath(name):
        return os.path.exists(get_annotated_filepath(name))

    for f in (map_legacy, add_model_folder_path, get_folder_paths, get_filename_list, get_full_path,
              get_full_path_or_raise, get_input_directory, get_output_directory, get_temp_directory,
              get_user_directory, get_annotated_filepath, exists_annotated_filepath):
        setattr(fp, f.__name__, f)
    return fp


def make_comfy(calls: list | None = None) -> dict[str, types.ModuleType]:
    """``comfy``, ``comfy.model_management`` and ``comfy.utils`` stand-ins (CPU only).

    ``calls`` (optional list) records memory-management calls so tests can assert on them.
    """
    import torch

    calls = calls if calls is not None else []
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []  # a package
    mm = types.ModuleType("comfy.model_management")

    class InterruptProcessingException(Exception):
        pass

    state = {"interrupted": False}

    def get_torch_device():
        return torch.device("cpu")

    def intermediate_device():
        return torch.device("cpu")

    def unet_offload_device():
        return torch.device("cpu")

    def soft_empty_cache(force=False):
        calls.append(("soft_empty_cache",))

    def free_memory(memory_required, device, keep_loaded=[]):
        calls.append(("free_memory", memory_required, device))

    def interrupt_current_processing(value=True):
        state["interrupted"] = value

    def processing_interrupted():
        return state["interrupted"]

    def throw_exception_if_processing_interrupted():
        if state["interrupted"]:
            state["interrupted"] = False
            raise InterruptProcessingException()

    def is_device_cpu(device):
        return getattr(device, "type", str(device)) == "cpu"

    mm.InterruptProcessingException = InterruptProcessingException
    mm.OOM_EXCEPTION = getattr(torch, "OutOfMemoryError", MemoryError)
    for f in (get_torch_device, intermediate_device, unet_offload_device, soft_empty_cache, free_memory,
              interrupt_current_processing, processing_interrupted, throw_exception_if_processing_interrupted,
              is_device_cpu):
        setattr(mm, f.__name__, f)
    mm.calls = calls

    utils = types.ModuleType("comfy.utils")
    utils.PROGRESS_BAR_HOOK = None

    def set_progress_bar_global_hook(function):
        utils.PROGRESS_BAR_HOOK = function

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total
            self.current = 0
            self.hook = utils.PROGRESS_BAR_HOOK
            self.node_id = node_id

        def update_absolute(self, value, total=None, preview=None):
            if total is not None:
                self.total = total
            if value > self.total:
                value = self.total
            self.current = value
            if self.hook is not None:
                self.hook(self.current, self.total, preview, node_id=self.node_id)

        def update(self, value):
            self.update_absolute(self.current + value)

    utils.ProgressBar = ProgressBar
    utils.set_progress_bar_global_hook = set_progress_bar_global_hook
    comfy.model_management = mm
    comfy.utils = utils
    return {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils}


def install(base_dir: str, calls: list | None = None) -> dict[str, types.ModuleType]:
    mods = {"folder_paths": make_folder_paths(base_dir), **make_comfy(calls)}
    sys.modules.update(mods)
    return mods
