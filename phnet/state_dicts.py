"""Reading a file of tensors safely: the one reader for PHNet weights and SAM checkpoints.

``.safetensors`` (and ``.sft``) files are read with safetensors; the pickle formats (``.pth``, ``.pt``,
``.bin``, ``.ckpt``) only ever with ``torch.load(weights_only=True)``, which refuses anything but
tensors and plain containers. ``what`` names the file's kind ("PHNet weights", "SAM checkpoint") in
every message, and every failure says what to do.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from .compat import catching_warnings
from .errors import ByFields
from .sources import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, WEIGHT_SUFFIXES

_WRAPPERS = ("state_dict", "model", "model_state_dict")  # how training scripts commonly wrap the tensors


class DamagedFile(ByFields, ValueError):
    """A safetensors file that cannot be read (truncated, corrupt): ``path``."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def read_tensors(path: str | os.PathLike[str], what: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors by name, the safetensors metadata, ``{}`` for a pickle). A trainer's wrapper dict and
    the wrappers' prefixes (DDP's ``module.``, Lightning's ``model.``, ...) are taken off."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. Check the path, or download the file there")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        tensors, metadata = _read_safetensors(path, what)
        return _without_wrapper_prefixes(tensors), metadata
    if suffix in PICKLE_SUFFIXES:
        return _without_wrapper_prefixes(_state_dict(safe_torch_load(path, what), path, what)), {}
    raise ValueError(
        f"unsupported {what} file type {path.name!r}: use a .safetensors file, or a .pth state_dict "
        f"(accepted: {', '.join(WEIGHT_SUFFIXES)})"
    )


def _read_safetensors(path: Path, what: str, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise DamagedFile(
            f"{path} is not a readable safetensors file ({e}); it is probably truncated or corrupt: download it "
            "again", path
        ) from None
    return found, metadata


def read_metadata(path: str | Path, what: str = "weights") -> dict[str, str]:
    """A .safetensors file's metadata, without its tensors; a damaged file is named as :func:`read_tensors` names
    it."""
    return _read_safetensors(Path(path), what, tensors=False)[1]


def safe_torch_load(path: str | Path, what: str = "weights") -> Any:
    """``torch.load(weights_only=True)`` with one readable error: what was refused (e.g. ``unsupported GLOBAL
    posix.system``) or that the file is damaged. Never passes on torch's advice to load unsafely."""
    _refuse_archives(Path(path), what)
    try:
        return weights_only_load(path)
    except Exception as e:  # torch raises many kinds here: truncated zip, unpickling refused, ...
        raise ValueError(
            f"could not read {path} as plain {what} ({type(e).__name__}: {load_failure(e)}). Only tensors are "
            "loaded (torch.load with weights_only=True): if it holds pickled Python objects besides tensors, "
            "convert it to .safetensors with code you trust; if it is truncated or corrupt: download it again"
        ) from None


def weights_only_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)``, without torch's warning that a plain pickle of protocol 3 or more may hold
    what it cannot read ("please file an issue"): the caller's own error says what is wrong with such a file."""
    with catching_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


def _refuse_archives(path: Path, what: str) -> None:
    """A zip-format .pth that is a TorchScript archive (torch.load hands it to torch.jit.load, or refuses it in
    words about weights_only), or whose entries would unpack to far more than the file holds (torch.save stores
    them uncompressed): a megabyte could ask for gigabytes before anything is checked."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load names what is wrong with it
    if any(name.partition("/")[2] == "constants.pkl" for name in names):  # torch's own test for TorchScript
        raise ValueError(f"could not read {path} as plain {what}: it is a TorchScript archive (torch.jit.save), not a "
                         "state_dict: save model.state_dict() (or .safetensors) instead")
    size = path.stat().st_size
    if unpacked > 4 * size + (64 << 20):
        raise ValueError(
            f"could not read {path} as plain {what}: its entries would unpack to {unpacked / 2**20:,.0f} MB from a "
            f"{size / 2**20:,.1f} MB file (torch.save writes them uncompressed); it is not a checkpoint as saved. "
            "Download it again from its source")


def load_failure(e: Exception) -> str:
    """The informative part of a torch.load failure, without torch's suggestion to turn weights_only off."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    refused = re.search(r"unsupported global:?\s*(?:GLOBAL\s+)?([\w.]+)", text, re.IGNORECASE)
    if refused:
        return f"unsupported GLOBAL {refused.group(1)} refused"
    other = re.search(r"unsupported (?:operand|opcode)[^\n.]*", text, re.IGNORECASE)
    if other:
        return other.group(0)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "weights_only" not in ln.lower() and "trusted source" not in ln.lower()]
    if not lines:
        return "empty file"
    first = re.match(r".{0,200}?[.!?](?=\s|$)", lines[0])  # its first sentence, where one ends soon enough
    return first.group(0).rstrip(".!?") if first else lines[0][:200]


def _of_tensors(obj: Any) -> bool:
    """A mapping of names (str: ``{1: tensor}`` is not a state_dict) to tensors."""
    return isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _state_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _WRAPPERS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and _of_tensors(inner):
                obj = inner
                break
    if not _of_tensors(obj):
        raise ValueError(f"{path} does not contain a state_dict of tensors (a mapping of names to tensors): it is "
                         f"not {what}")
    return dict(obj)


_HOLDERS = ("model.", "net.", "network.", "phnet.", "sam.")  # a training module's attribute holding the model
_WRAPPED = re.compile(r"^(?:module\.|_orig_mod\.)+")  # DDP's, torch.compile's


def _without_wrapper_prefixes(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A file saved from a wrapped model has its names under the wrappers': DDP's ``module.``, torch.compile's
    ``_orig_mod.``, an averaged model's (EMA: ``module.``, and its ``n_averaged`` count dropped), or a training
    module's attribute holding the whole model (Lightning's ``model.``: every name under it)."""
    if "n_averaged" in tensors and len(tensors) > 1 and all(k.startswith("module.") for k in tensors
                                                            if k != "n_averaged"):
        tensors = {k: v for k, v in tensors.items() if k != "n_averaged"}
    tensors = {_WRAPPED.sub("", k): v for k, v in tensors.items()}
    holder = next((h for h in _HOLDERS if tensors and all(k.startswith(h) for k in tensors)), None)
    if holder is not None:
        tensors = {_WRAPPED.sub("", k[len(holder):]): v for k, v in tensors.items()}
    return tensors
