"""ComfyUI nodes of comfyui-phnet (V1 node API).

The pack folder is a Python package when ComfyUI loads it, so the nodes reach the core library
bundled next to them with relative imports (``from ..phnet.harmonizer import Harmonizer``): the
copy in this folder is used even when another ``phnet`` is installed, and nothing is added to
``sys.path`` or ``sys.modules``. ComfyUI's own modules (``folder_paths``, ``comfy.*``) are imported
by name, as every node pack does. The core is imported when a node runs, so loading the pack is cheap.

Node ids are prefixed ``PHNet`` and are stable: never rename an id or an input, add new optional inputs
instead, after all the others (a saved workflow holds its widgets' values by position).
"""

from __future__ import annotations

import logging

from . import paths, template_inputs
from .composite import PHNetPasteSubject
from .harmonize import PHNetHarmonize, PHNetHarmonizeFrames
from .loaders import PHNetModelLoader, PHNetSAMLoader
from .segment import PHNetSAMSegment

NODE_CLASS_MAPPINGS = {
    "PHNetModelLoader": PHNetModelLoader,
    "PHNetSAMLoader": PHNetSAMLoader,
    "PHNetSAMSegment": PHNetSAMSegment,
    "PHNetPasteSubject": PHNetPasteSubject,
    "PHNetHarmonize": PHNetHarmonize,
    "PHNetHarmonizeFrames": PHNetHarmonizeFrames,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PHNetModelLoader": "PHNet Model Loader",
    "PHNetSAMLoader": "PHNet SAM Loader",
    "PHNetSAMSegment": "PHNet SAM Segment",
    "PHNetPasteSubject": "PHNet Paste Subject",
    "PHNetHarmonize": "PHNet Harmonize",
    "PHNetHarmonizeFrames": "PHNet Harmonize Frames",
}

paths.register_model_folders()  # models/phnet and models/sams, added to what the user configured
try:  # the example workflows' pictures, into ComfyUI's input folder if missing: a convenience, never the
    template_inputs.install()  # reason the nodes are missing
except Exception as exc:  # noqa: BLE001
    logging.getLogger("comfyui-phnet").warning("comfyui-phnet: the template pictures were not copied (%s)", exc)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
