"""Model folders: ``models/phnet`` (PHNet weights) and ``models/sams`` (Segment Anything weights).

Registration is additive: paths a user configured in ``extra_model_paths.yaml`` (applied by ComfyUI
before custom nodes load) or that another pack registered are kept, and our default folder is only
appended. ``"sams"`` is the folder Impact Pack, comfyui_segment_anything and LayerStyle already use,
so SAM checkpoints a user already has show up in our loader too.
"""

from __future__ import annotations

import os

from . import _env

PHNET_FOLDER = "phnet"
SAM_FOLDER = "sams"

# Files a model picker lists (config.json and friends are not models).
WEIGHT_EXTENSIONS = {".safetensors", ".sft", ".pth", ".pt", ".bin", ".ckpt"}

BUNDLED_DEFAULT = "default (bundled)"


def _register(folder_paths, name: str) -> None:
    default_dir = os.path.join(folder_paths.models_dir, name)
    table = folder_paths.folder_names_and_paths
    if name in table:
        # Keep the user's/other packs' paths; add ours at the end; make sure our weight types are listed
        # (an empty extension set means "every file", leave that alone).
        folder_paths.add_model_folder_path(name, default_dir)
        paths, exts = table[name]
        if exts and not WEIGHT_EXTENSIONS <= set(exts):
            if isinstance(exts, set):
                exts.update(WEIGHT_EXTENSIONS)
            else:
                table[name] = (paths, set(exts) | WEIGHT_EXTENSIONS)
    else:
        folder_paths.add_model_folder_path(name, default_dir)
        # add_model_folder_path creates the entry with an empty extension set ("every file"); restrict it
        # to weight files so config.json / README files of saved model folders are not listed.
        paths, _ = table[name]
        exts = set(getattr(folder_paths, "supported_pt_extensions", set())) | WEIGHT_EXTENSIONS
        table[name] = (paths, exts)


def register_model_folders() -> bool:
    """Register ``phnet`` and ``sams`` with ComfyUI's folder_paths. Returns False outside ComfyUI."""
    fp = _env.folder_paths()
    if fp is None or not hasattr(fp, "folder_names_and_paths"):
        return False
    for name in (PHNET_FOLDER, SAM_FOLDER):
        _register(fp, name)
    return True


def list_models(folder: str) -> list[str]:
    """Weight files (relative paths, sorted) in every configured folder of ``folder``."""
    fp = _env.folder_paths()
    if fp is None:
        return []
    try:
        names = fp.get_filename_list(folder)
    except KeyError:
        return []
    return [n for n in names if os.path.splitext(n)[1].lower() in WEIGHT_EXTENSIONS]


def phnet_choices() -> list[str]:
    return [BUNDLED_DEFAULT] + list_models(PHNET_FOLDER)


def sam_choices() -> list[str]:
    return list_models(SAM_FOLDER)


def full_path(folder: str, name: str) -> str:
    """Absolute path of a listed model file; a clear FileNotFoundError naming the folders otherwise."""
    fp = _env.folder_paths()
    path = fp.get_full_path(folder, name) if fp is not None else None
    if path is None:
        where = fp.get_folder_paths(folder) if fp is not None and folder in fp.folder_names_and_paths else []
        raise FileNotFoundError(
            f"model file {name!r} was not found in the {folder!r} model folders {where}; "
            f"put the file into ComfyUI/models/{folder}/ (or a path configured in extra_model_paths.yaml) "
            "and refresh the page"
        )
    return path


def default_dir(folder: str) -> str | None:
    fp = _env.folder_paths()
    if fp is None:
        return None
    return os.path.join(fp.models_dir, folder)
