"""ComfyUI nodes of comfyui-phnet (V1 node API).

Node ids are prefixed ``PHNet`` and are stable: never rename an id or an input, add new optional inputs
instead. Importing this package is cheap: torch, SAM and the PHNet network load only when a node runs.
"""

from __future__ import annotations

from . import paths
from .composite import PHNetPasteSubject
from .harmonize import PHNetHarmonize
from .loaders import PHNetModelLoader, PHNetSAMLoader
from .segment import PHNetSAMSegment

NODE_CLASS_MAPPINGS = {
    "PHNetModelLoader": PHNetModelLoader,
    "PHNetSAMLoader": PHNetSAMLoader,
    "PHNetSAMSegment": PHNetSAMSegment,
    "PHNetPasteSubject": PHNetPasteSubject,
    "PHNetHarmonize": PHNetHarmonize,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PHNetModelLoader": "PHNet Model Loader",
    "PHNetSAMLoader": "PHNet SAM Loader",
    "PHNetSAMSegment": "PHNet SAM Segment",
    "PHNetPasteSubject": "PHNet Paste Subject",
    "PHNetHarmonize": "PHNet Harmonize",
}

# Register models/phnet and models/sams (additively) when running inside ComfyUI.
paths.register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
