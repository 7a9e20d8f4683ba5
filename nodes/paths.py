"""Model folders: ``models/phnet`` (PHNet weights) and ``models/sams`` (Segment Anything weights).

Registration is additive: paths a user configured in ``extra_model_paths.yaml`` (applied by ComfyUI
before custom nodes load) or that another pack registered are kept, and our default folder is only
appended. ``"sams"`` is the folder Impact Pack, comfyui_segment_anything and LayerStyle already use,
so SAM checkpoints a user already has show up in our loader too.
"""

from __future__ import annotations

import os

import folder_paths

PHNET_FOLDER = "phnet"
SAM_FOLDER = "sams"

# Files a model picker lists (config.json and friends are not models).
WEIGHT_EXTENSIONS = {".safetensors", ".sft", ".pth", ".pt", ".bin", ".ckpt"}

# The library's phnet.sources.DEFAULT_LABEL, written out because loading the pack must not import the core
# (a test holds the two equal).
BUNDLED_DEFAULT = "default (bundled)"
SAM_FROM_HUB = "(from hub_repo_id)"  # always listed, so a Hub-only setup passes validation


def _register(name: str) -> None:
    table = folder_paths.folder_names_and_paths
    existed = name in table
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, exts = table[name]
    if existed and not exts:
        return  # someone registered it for "every file": leave that alone
    if not existed:
        # add_model_folder_path created the entry for "every file"; list only weights, so the
        # config.json / README of a saved model folder does not show up in the picker
        exts = set(getattr(folder_paths, "supported_pt_extensions", ()))
    table[name] = (paths, set(exts) | WEIGHT_EXTENSIONS)


def register_model_folders() -> None:
    """Register ``phnet`` and ``sams`` with ComfyUI's folder_paths."""
    for name in (PHNET_FOLDER, SAM_FOLDER):
        _register(name)


def list_models(folder: str) -> list[str]:
    """Weight files (relative paths, sorted) in every configured folder of ``folder``."""
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:
        return []
    # hidden ones are left out: a Mac's ._name copy metadata, an official conversion's .official-*.converting folder;
    # and a training run's checkpoint state (optimizer, not weights: its model.safetensors is beside it)
    return [n for n in names if os.path.splitext(n)[1].lower() in WEIGHT_EXTENSIONS
            and not any(part.startswith(".") for part in n.replace("\\", "/").split("/"))
            and os.path.basename(n) != "training_state.pt"]


def official_names() -> tuple[str, ...]:
    from ..phnet.sources import OFFICIAL_NAMES

    return OFFICIAL_NAMES


def phnet_choices() -> list[str]:
    """The bundled default, the official weights by name (downloaded when picked), then the files in
    models/phnet, less the official weights' own converted copies (``official-*/model.safetensors``)."""
    official = official_names()
    files = [n for n in list_models(PHNET_FOLDER) if n.replace("\\", "/").split("/")[0] not in official]
    return [BUNDLED_DEFAULT, *official, *files]


def listed_name(model_name):
    """``model_name`` as the PHNet list names it now. Before the official weights were listed by name, their
    converted copy was listed as a file (``official-ffhqh512/model.safetensors``), and workflows saved then hold
    that: it is the official name, whose copy is that same folder."""
    if isinstance(model_name, str):
        first, _, rest = model_name.replace("\\", "/").partition("/")
        if rest == "model.safetensors" and first in official_names():
            return first
    return model_name


def phnet_folders() -> list[str]:
    """Every configured 'phnet' folder, the one downloads go into first (:func:`download_dir`)."""
    first = download_dir(PHNET_FOLDER)
    return [first] + [f for f in _configured(PHNET_FOLDER) if os.path.abspath(f) != os.path.abspath(first)]


def download_dir(folder: str) -> str:
    """Where a download for ``folder`` goes: the first of ComfyUI's folders for it that can be written (an
    extra_model_paths.yaml folder marked ``is_default`` comes first, as ComfyUI orders them), else
    models/<folder>."""
    for path in _configured(folder) or [default_dir(folder)]:
        existing = path
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)  # a folder not made yet: its nearest existing parent
        if _writable(existing):
            return path
    return default_dir(folder)


def _writable(folder: str) -> bool:
    """Whether files can be made in ``folder``. On Windows ``os.access`` says yes for every folder (read-only
    and UAC-protected ones too), so a file is made there and removed."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    if os.name != "nt":
        return True
    import tempfile

    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".phnet-write-test-")
    except OSError:
        return False
    os.close(handle)
    os.unlink(probe)
    return True


def _configured(folder: str) -> list[str]:
    try:
        return list(folder_paths.get_folder_paths(folder))
    except KeyError:
        return []


def sam_choices() -> list[str]:
    return list_models(SAM_FOLDER) + [SAM_FROM_HUB]


def full_path(folder: str, name: str) -> str:
    """Absolute path of a listed model file; a FileNotFoundError naming the folders otherwise."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise FileNotFoundError(
            f"model file {name!r} was not found in the {folder!r} model folders "
            f"{folder_paths.get_folder_paths(folder)}; put the file into ComfyUI/models/{folder}/ (or a path "
            "configured in extra_model_paths.yaml) and refresh the page"
        )
    return path


def placed(folder: str, name: str) -> str | None:
    """The file ``name`` in any of ComfyUI's folders for ``folder``, or None."""
    path = folder_paths.get_full_path(folder, name)
    return path if path is not None and os.path.isfile(path) else None


def mtime(folder: str, name: str) -> str:
    """A value that changes when the file changes on disk (for IS_CHANGED)."""
    from ..phnet.sources import stamp

    path = folder_paths.get_full_path(folder, name)
    return stamp(path) if path else f"{name}:missing"


def default_dir(folder: str) -> str:
    return os.path.join(folder_paths.models_dir, folder)
