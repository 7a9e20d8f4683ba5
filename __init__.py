"""ComfyUI entry point of the comfyui-phnet node pack.

ComfyUI imports this folder as a package (named after its path), so the nodes are reached with a
relative import. Outside ComfyUI (pytest collecting the repository, ``import phnet`` from the repo
root, the SD-WebUI extension) nothing here is needed, and importing this file must never fail or do
heavy work: the node modules only import torch / SAM / PHNet when a node runs.
"""

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError as _e:  # imported as a top-level module (no parent package): not inside ComfyUI
    if __package__:
        raise
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
