"""Model loaders: PHNet (-> PHNET_MODEL) and Segment Anything (-> SAM_MODEL)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from . import _env, paths

log = logging.getLogger("comfyui-phnet")

DEVICES = ["auto", "cpu"]
DTYPES = ["auto", "fp32", "fp16", "bf16"]
SAM_TYPES = ["auto", "vit_b", "vit_l", "vit_h"]


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(name)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _mtime(path: str | None) -> str:
    try:
        return f"{path}:{os.path.getmtime(path)}" if path else ""
    except OSError:
        return f"{path}:missing"


# --------------------------------------------------------------------------------------------------
# PHNet
# --------------------------------------------------------------------------------------------------
@dataclass
class PHNetModel:
    """What travels on a PHNET_MODEL socket.

    ``harmonizer`` is a ``phnet.Harmonizer``. It is parked on ``offload_device`` between runs and moved
    to ``load_device`` by the Harmonize node while it works (``keep_loaded`` skips the move back).
    """

    harmonizer: Any
    load_device: Any
    offload_device: Any
    source: str
    info: dict = field(default_factory=dict)

    @property
    def config(self):
        return self.harmonizer.config

    def __repr__(self) -> str:  # shown in ComfyUI error messages
        return f"PHNetModel(source={self.source!r}, device={self.load_device})"


def resolve_phnet_source(model_name: str, hub_repo_id: str = "") -> str | None:
    """The ``source`` for ``Harmonizer.from_pretrained``: None for the bundled default, a local path, or a
    Hub repo id."""
    repo = (hub_repo_id or "").strip()
    if repo:
        return repo
    if not model_name or model_name == paths.BUNDLED_DEFAULT:
        return None
    # A file; a config.json next to it (a folder written by save_pretrained) is picked up by the core.
    return paths.full_path(paths.PHNET_FOLDER, model_name)


class PHNetModelLoader:
    DESCRIPTION = (
        "Loads PHNet harmonization weights: the default model bundled with this node pack, a file from "
        "ComfyUI/models/phnet (a .safetensors/.pth file or a saved folder with config.json + "
        "model.safetensors), or a Hugging Face Hub repo id."
    )
    CATEGORY = "PHNet/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("PHNET_MODEL",)
    RETURN_NAMES = ("phnet_model",)
    OUTPUT_TOOLTIPS = ("The loaded PHNet model; connect it to 'PHNet Harmonize'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (paths.phnet_choices(), {
                    "default": paths.BUNDLED_DEFAULT,
                    "tooltip": "Weights to load. 'default (bundled)' ships with the node pack; other entries are "
                               "files found in ComfyUI/models/phnet (and extra_model_paths.yaml 'phnet' paths). "
                               "Ignored when hub_repo_id is set.",
                }),
                "hub_repo_id": ("STRING", {
                    "default": "",
                    "multiline": False,
                    "tooltip": "Optional Hugging Face Hub repo id ('owner/name', or 'owner/name@revision') or a "
                               "local folder/file path. When set it is used instead of model_name. Set "
                               "HF_HUB_OFFLINE=1 to use only the local Hub cache.",
                }),
                "device": (DEVICES, {
                    "default": "auto",
                    "tooltip": "'auto' runs on ComfyUI's compute device (GPU when available) and parks the "
                               "weights on the offload device between runs; 'cpu' always runs on the CPU.",
                }),
                "dtype": (DTYPES, {
                    "default": "auto",
                    "tooltip": "Compute precision. 'auto' = fp32 (safest colours); fp16/bf16 run the convolutions "
                               "under autocast on GPUs that support them (normalisation statistics stay fp32).",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name=None, hub_repo_id=None):
        # Accept a model that is not listed (yet) when a Hub repo id replaces it; check the list otherwise.
        if isinstance(hub_repo_id, str) and hub_repo_id.strip():
            return True
        if model_name is None or model_name in paths.phnet_choices():
            return True
        return (
            f"PHNet model {model_name!r} is not in ComfyUI/models/phnet (or the extra 'phnet' paths); "
            "download it there, pick another model, or set hub_repo_id"
        )

    @classmethod
    def IS_CHANGED(cls, model_name, hub_repo_id="", device="auto", dtype="auto"):
        # Reload when the weights file changes on disk.
        if (hub_repo_id or "").strip() or model_name == paths.BUNDLED_DEFAULT:
            return f"{model_name}|{hub_repo_id}"
        fp = _env.folder_paths()
        path = fp.get_full_path(paths.PHNET_FOLDER, model_name) if fp is not None else None
        return _mtime(path)

    def load(self, model_name, hub_repo_id="", device="auto", dtype="auto"):
        Harmonizer = _env.phnet_module("harmonizer").Harmonizer
        source = resolve_phnet_source(model_name, hub_repo_id)
        load_device = _env.compute_device(device)
        offload = load_device if device == "cpu" else _env.offload_device()
        torch_dtype = _torch_dtype(dtype) or _torch_dtype("fp32")
        kwargs = {"device": offload, "dtype": torch_dtype}
        if source is not None and (hub_repo_id or "").strip() and not os.path.exists(os.path.expanduser(source)):
            repo, _, revision = source.partition("@")  # "owner/name@revision"
            source = repo.strip()
            kwargs["revision"] = revision.strip() or None
            kwargs["local_files_only"] = _offline()
        h = Harmonizer.from_pretrained(source, **kwargs)  # the core's errors already say what to do
        log.info("comfyui-phnet: loaded PHNet %s (%s)", source or paths.BUNDLED_DEFAULT, h.config.name)
        return (PHNetModel(h, load_device, offload, source or paths.BUNDLED_DEFAULT),)


# --------------------------------------------------------------------------------------------------
# Segment Anything
# --------------------------------------------------------------------------------------------------
def _download_sam(repo_id: str, filename: str) -> str:
    """Download ``filename`` from a Hub repo into ComfyUI/models/sams (so it also shows in the list)."""
    from huggingface_hub import hf_hub_download

    target = paths.default_dir(paths.SAM_FOLDER)
    kwargs = {"repo_id": repo_id, "filename": filename, "local_files_only": _offline()}
    if target:
        kwargs["local_dir"] = target
    try:
        return hf_hub_download(**kwargs)
    except Exception as e:
        raise RuntimeError(
            f"could not get {filename!r} from the Hugging Face Hub repo {repo_id!r} "
            f"(https://huggingface.co/{repo_id}/blob/main/{filename}): {e}. Download it by hand into "
            f"{target or 'ComfyUI/models/sams'} and pick it in model_name instead"
        ) from e


class PHNetSAMLoader:
    DESCRIPTION = (
        "Loads a Segment Anything (SAM v1) checkpoint from ComfyUI/models/sams, or downloads one file from a "
        "Hugging Face Hub repo into that folder. The model size (vit_b/l/h or custom) is read from the weights."
    )
    CATEGORY = "PHNet/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("SAM_MODEL",)
    RETURN_NAMES = ("sam_model",)
    OUTPUT_TOOLTIPS = ("The loaded SAM predictor; connect it to 'PHNet SAM Segment'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (paths.sam_choices(), {
                    "tooltip": "SAM checkpoint in ComfyUI/models/sams (shared with Impact Pack and other SAM "
                               "packs), e.g. sam_vit_b_01ec64.pth. Ignored when hub_repo_id is set.",
                }),
                "hub_repo_id": ("STRING", {
                    "default": "",
                    "tooltip": "Optional Hugging Face Hub repo id holding a SAM checkpoint; the file named in "
                               "hub_filename is downloaded into ComfyUI/models/sams and used instead of model_name.",
                }),
                "hub_filename": ("STRING", {
                    "default": "",
                    "tooltip": "File to download from hub_repo_id (e.g. 'sam_vit_b_01ec64.pth'). Leave empty to "
                               "let the library pick the checkpoint in the repo.",
                }),
                "model_type": (SAM_TYPES, {
                    "default": "auto",
                    "tooltip": "SAM architecture. 'auto' infers it from the checkpoint (works for vit_b/l/h and "
                               "custom sizes); set it only if detection fails.",
                }),
                "device": (DEVICES, {
                    "default": "auto",
                    "tooltip": "'auto' runs SAM on ComfyUI's compute device (GPU when available); 'cpu' forces CPU.",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name=None, hub_repo_id=None):
        if isinstance(hub_repo_id, str) and hub_repo_id.strip():
            return True
        if model_name is None or model_name in paths.sam_choices():
            return True
        return (
            f"SAM checkpoint {model_name!r} is not in ComfyUI/models/sams (or the extra 'sams' paths); download "
            "it there (e.g. sam_vit_b_01ec64.pth), pick another file, or set hub_repo_id + hub_filename"
        )

    @classmethod
    def IS_CHANGED(cls, model_name, hub_repo_id="", hub_filename="", model_type="auto", device="auto"):
        if (hub_repo_id or "").strip():
            return f"{hub_repo_id}|{hub_filename}"
        fp = _env.folder_paths()
        path = fp.get_full_path(paths.SAM_FOLDER, model_name) if fp is not None else None
        return _mtime(path)

    def load(self, model_name, hub_repo_id="", hub_filename="", model_type="auto", device="auto"):
        SamSegmenter = _env.phnet_module("segmentation").SamSegmenter
        repo = (hub_repo_id or "").strip()
        filename = (hub_filename or "").strip() or None
        if repo and filename:
            source = _download_sam(repo, filename)
            filename = None
        elif repo:
            source = repo
        else:
            if not model_name:
                raise ValueError(
                    "no SAM checkpoint selected: put one into ComfyUI/models/sams (e.g. sam_vit_b_01ec64.pth) "
                    "and refresh, or set hub_repo_id"
                )
            source = paths.full_path(paths.SAM_FOLDER, model_name)
        dev = _env.compute_device(device)
        offload = dev if device == "cpu" else _env.offload_device()
        # Park the weights on the offload device; 'PHNet SAM Segment' moves them to ``dev`` while it runs.
        kwargs = {"device": offload}
        if model_type != "auto":
            kwargs["model_type"] = model_type
        if repo and not hub_filename:
            kwargs["local_files_only"] = _offline()
        seg = SamSegmenter.from_pretrained(source, filename=filename, **kwargs)
        seg.comfy_load_device = dev
        seg.comfy_offload_device = offload
        log.info("comfyui-phnet: loaded SAM %s on %s", source, dev)
        return (seg,)
