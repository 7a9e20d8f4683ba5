"""Access to the host (ComfyUI) and to the ``phnet`` core library, both resolved lazily.

Nothing here imports torch or ComfyUI at module import time, so ``import`` of the node pack stays cheap
and works outside ComfyUI (tests, plain Python). Inside ComfyUI the real ``folder_paths``,
``comfy.model_management`` and ``comfy.utils`` are used; outside it the helpers fall back to plain
behaviour (CPU device, no progress bar, no interruption).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from types import ModuleType

log = logging.getLogger("comfyui-phnet")

# The repository root: the folder that holds this pack's __init__.py, nodes/ and phnet/.
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------------
# phnet core library
# --------------------------------------------------------------------------------------------------
def _load_bundled_phnet() -> ModuleType:
    """Import ``phnet`` from this repository without putting the repository root on ``sys.path``.

    Putting the root on ``sys.path`` would also expose our ``nodes/`` folder as a top-level module
    named ``nodes``, which would shadow ComfyUI's own ``nodes.py``. Instead, the package is loaded
    from its file under its normal name, so ``import phnet.segmentation`` etc. work afterwards.
    """
    init = os.path.join(PACK_ROOT, "phnet", "__init__.py")
    if not os.path.isfile(init):
        raise ImportError(
            f"the phnet core library was not found at {os.path.dirname(init)}; reinstall the comfyui-phnet node pack"
        )
    spec = importlib.util.spec_from_file_location(
        "phnet", init, submodule_search_locations=[os.path.dirname(init)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["phnet"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("phnet", None)
        raise
    return module


def phnet() -> ModuleType:
    """Return the ``phnet`` package, preferring the copy bundled with this node pack.

    Nodes call ``phnet_module(...)`` / ``phnet().Harmonizer`` only when they run, never at import time.
    """
    mod = sys.modules.get("phnet")
    if mod is not None:
        return mod
    ours = os.path.join(PACK_ROOT, "phnet")
    try:
        spec = importlib.util.find_spec("phnet")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        found = [os.path.realpath(p) for p in spec.submodule_search_locations]
        if os.path.realpath(ours) in found or not os.path.isdir(ours):
            return importlib.import_module("phnet")
        log.info("comfyui-phnet: using the bundled phnet at %s instead of %s", ours, found[0])
    return _load_bundled_phnet()


_PIP_NAMES = {"segment_anything": "segment-anything", "huggingface_hub": "huggingface-hub",
              "safetensors": "safetensors", "PIL": "pillow", "numpy": "numpy"}


def phnet_module(name: str) -> ModuleType:
    """``phnet_module("segmentation")`` -> ``phnet.segmentation`` (core package loaded first).

    A missing third-party dependency becomes an ImportError that says what to install, and where.
    """
    try:
        phnet()
        return importlib.import_module(f"phnet.{name}")
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top in _PIP_NAMES:
            raise ImportError(
                f"comfyui-phnet needs the Python package '{_PIP_NAMES[top]}': install it into ComfyUI's Python "
                f"({sys.executable} -m pip install {_PIP_NAMES[top]}) and restart ComfyUI"
            ) from e
        raise


# --------------------------------------------------------------------------------------------------
# ComfyUI host modules (optional)
# --------------------------------------------------------------------------------------------------
def _optional(name: str) -> ModuleType | None:
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def folder_paths() -> ModuleType | None:
    return _optional("folder_paths")


def model_management() -> ModuleType | None:
    return _optional("comfy.model_management")


def comfy_utils() -> ModuleType | None:
    return _optional("comfy.utils")


def compute_device(choice: str = "auto"):
    """The torch device to run a model on: ComfyUI's compute device for ``"auto"``."""
    import torch

    if choice and choice != "auto":
        return torch.device(choice)
    mm = model_management()
    if mm is not None:
        return mm.get_torch_device()
    return torch.device("cpu")


def offload_device():
    """Where to park weights between runs (ComfyUI's unet offload device, CPU outside ComfyUI)."""
    import torch

    mm = model_management()
    if mm is not None and hasattr(mm, "unet_offload_device"):
        return mm.unet_offload_device()
    return torch.device("cpu")


def intermediate_device():
    """Where IMAGE/MASK tensors live between nodes (CPU unless ComfyUI runs with --gpu-only)."""
    import torch

    mm = model_management()
    if mm is not None and hasattr(mm, "intermediate_device"):
        return mm.intermediate_device()
    return torch.device("cpu")


def check_interrupt() -> None:
    """Raise ComfyUI's InterruptProcessingException when the user pressed Cancel."""
    mm = model_management()
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


def free_memory(required_bytes: int, device) -> None:
    """Ask ComfyUI to evict the models it manages until ``required_bytes`` are free on ``device``."""
    mm = model_management()
    if mm is None or getattr(device, "type", "cpu") == "cpu":
        return
    try:
        mm.free_memory(int(required_bytes), device)
    except Exception as e:  # never fail a run because of memory bookkeeping
        log.debug("comfyui-phnet: free_memory failed: %s", e)


def soft_empty_cache() -> None:
    mm = model_management()
    if mm is not None:
        try:
            mm.soft_empty_cache()
        except Exception as e:
            log.debug("comfyui-phnet: soft_empty_cache failed: %s", e)


class _NullProgress:
    def __init__(self, total: int):
        self.total = total
        self.current = 0

    def update(self, n: int) -> None:
        self.current += n

    def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
        self.current = value


def progress_bar(total: int):
    """``comfy.utils.ProgressBar(total)`` inside ComfyUI, a no-op object elsewhere."""
    cu = comfy_utils()
    if cu is not None and hasattr(cu, "ProgressBar"):
        return cu.ProgressBar(total)
    return _NullProgress(total)


def oom_exception() -> type[BaseException]:
    mm = model_management()
    exc = getattr(mm, "OOM_EXCEPTION", None) if mm is not None else None
    if isinstance(exc, type) and issubclass(exc, BaseException) and exc is not Exception:
        return exc
    import torch

    return getattr(torch, "OutOfMemoryError", MemoryError)
