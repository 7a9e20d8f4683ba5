"""ComfyUI entry point of the comfyui-phnet node pack: node mappings only.

One folder serves every way of installing it:
- ComfyUI (git clone into custom_nodes/, ComfyUI-Manager, the Comfy Registry) imports this folder as
  a package under a name derived from its path; ``nodes/`` is reached with a relative import and
  reaches the core library ``phnet/`` beside it the same way, so the pack always uses its own copy
  and never touches ``sys.path`` or ``sys.modules``.
- ``pip install`` of the repository installs only the library (``phnet``) and the trainer, which use
  relative imports inside themselves; ``nodes/`` and this file are not part of the wheel (a top-level
  ``nodes`` package would shadow ComfyUI's own ``nodes.py``).
"""

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError as _e:
    # Outside ComfyUI (pytest collecting the repository, a plain import of the folder) there is no
    # parent package or no ComfyUI to import: no nodes then. Inside ComfyUI every error is raised.
    if __package__ and getattr(_e, "name", None) not in ("folder_paths", "comfy"):
        raise
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"  # phnet_report.js: PHNet Harmonize's report, drawn under the node after a run

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
