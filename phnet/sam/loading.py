"""Find a SAM checkpoint (file, folder or Hub repo), read it safely and turn it into a model.

Two layouts are read:

- segment_anything's own state_dicts (``sam_vit_b_01ec64.pth`` and friends) as ``.safetensors`` or
  ``.pth``; a ``.pth`` is only ever opened with ``torch.load(weights_only=True)``. The size is read
  from the tensor shapes, so file names don't matter.
- Meta's transformers-layout Hub repos (``facebook/sam-vit-base``, ``-large``, ``-huge``): the
  ``model.safetensors`` keys are renamed at load time and the sizes come from the ``config.json``
  beside it (or from the shapes when the file travels alone).
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .. import sources
from ..errors import ByFields
from ..sources import SAFETENSORS_SUFFIXES, WEIGHT_SUFFIXES, hub_offline, looks_like_repo_id, unquoted
from ..state_dicts import read_tensors
from .architecture import SamArchitecture, build_sam, infer_sam_architecture
from .transformers_layout import (
    TRANSFORMERS_NORM_EPS,
    architecture_from_config,
    convert_transformers_state_dict,
    is_transformers_layout,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam
else:  # segment_anything loads on first use, not with the package: at run time (get_type_hints) the hints read Any
    Sam = Any

# The one list of weights suffixes (phnet.sources), so every picker lists only files this loader reads.
CHECKPOINT_SUFFIXES = WEIGHT_SUFFIXES


@dataclasses.dataclass(frozen=True)
class CheckpointFile:
    """A located checkpoint, and where its neighbours (``config.json``) can be found."""

    path: Path
    repo_id: str | None = None
    repo_filename: str | None = None
    revision: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    offline: bool = False

    def sibling(self, name: str) -> Path | None:
        """``name`` from the checkpoint's own folder (local, or the same folder of its Hub repo), or None."""
        local = self.path.parent / name
        if local.is_file():
            return local
        if self.repo_id is None:
            return None
        import huggingface_hub

        folder = posixpath.dirname(self.repo_filename or "")
        try:
            found = huggingface_hub.hf_hub_download(
                self.repo_id,
                posixpath.join(folder, name) if folder else name,
                revision=self.revision,
                cache_dir=os.fspath(self.cache_dir) if self.cache_dir is not None else None,
                local_files_only=self.offline,
            )
        except Exception:  # absent, not cached, offline: the caller falls back to what the weights show
            return None
        return Path(found)


# --------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------


def load_sam_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a SAM checkpoint file (:func:`phnet.state_dicts.read_tensors`: safetensors, or a pickle opened
    with ``weights_only=True`` only)."""
    state, _ = read_tensors(path, "SAM checkpoint")
    # Normalisation constants are non-persistent buffers in segment_anything; some
    # conversions still store them. They are fixed numbers, not weights.
    for key in ("pixel_mean", "pixel_std"):
        state.pop(key, None)
    return state


# --------------------------------------------------------------------------------------
# Locating: local path / folder / Hugging Face Hub
# --------------------------------------------------------------------------------------


def _twins(safe: str, other: str) -> bool:
    a, b = Path(safe), Path(other)
    if a.parent != b.parent:
        return False
    return a.stem.lower() == b.stem.lower() or (a.name == "model.safetensors" and b.name == "pytorch_model.bin")


def _pick_checkpoint(names: Sequence[str], where: str, model_type: str | None) -> str:
    candidates = sorted(n for n in names if n.lower().endswith(CHECKPOINT_SUFFIXES))
    if model_type:
        def plain(text: str) -> str:
            return text.lower().replace("-", "_").replace("\\", "/")

        # vit_b also in Meta's transformers names (sam-vit-base.safetensors): '-' read as '_'; and in a folder's
        # name (vit_b/model.safetensors beside vit_h/model.safetensors), unless that names several
        key = plain(model_type)
        typed = [n for n in candidates if key in plain(n)]
        named = [n for n in typed if key in plain(n).rsplit("/", 1)[-1]]
        if len(typed) > 1 and named:
            typed = named
        if typed:
            candidates = typed
        elif len(candidates) > 1 and all(any(t in plain(n) for t in ("vit_b", "vit_l", "vit_h")) for n in candidates):
            raise FileNotFoundError(f"no SAM checkpoint in {where} is a {model_type} ({', '.join(candidates)}): "
                                    f"choose the model type of one of them, or add a {model_type} checkpoint")
    if len(candidates) > 1:
        # A .safetensors twin of a .pth (the same name), or transformers' model.safetensors beside its
        # pytorch_model.bin, holds the same weights: prefer the safe format. Another SAM beside it is a choice.
        safe = [n for n in candidates if n.lower().endswith(".safetensors")]
        if len(safe) == 1 and all(_twins(safe[0], n) for n in candidates if n != safe[0]):
            candidates = safe
    if not candidates:
        raise FileNotFoundError(f"no SAM checkpoint (.safetensors / .pth) found in {where}")
    if len(candidates) > 1:
        raise SeveralCheckpoints(where, candidates, model_type=model_type)
    return candidates[0]


class SeveralCheckpoints(ByFields, ValueError):
    """A folder or Hub repo holding more than one SAM checkpoint: ``choose`` says how to pick one, in the words
    of whoever catches this (a host names its own control, and ends the sentence as its other messages do)."""

    def __init__(self, where: str, names: Sequence[str], choose: str | None = None,
                 model_type: str | None = None) -> None:
        self.where, self.names, self.model_type = where, list(names), model_type
        if choose is None:
            choose = "name its file (filename=)" + (
                "" if model_type else ", or a model type (vit_b, vit_l, vit_h) that only one of them names")
        untold = f" (model type {model_type} does not tell them apart)" if model_type else ""
        super().__init__(f"several SAM checkpoints in {where}{untold}: {', '.join(names)}; choose one: {choose}")

    def choosing(self, choose: str) -> "SeveralCheckpoints":
        """The same refusal, saying how to choose in a host's own words (``model_type``: the one that was set)."""
        return SeveralCheckpoints(self.where, self.names, choose, self.model_type)


def _download_from_hub(
    repo_id: str,
    filename: str | None,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    model_type: str | None,
) -> CheckpointFile:
    """A checkpoint of a Hub repo through the resolver's Hub access (``phnet.sources``): the one named, or
    the one the repo's file list holds."""
    offline = local_files_only or hub_offline()
    if filename is None:
        names = sources.list_files(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=offline,
                                   what="SAM weights")
        where = f"Hugging Face repo {repo_id!r}" + (f" (revision {revision})" if revision else "")
        filename = _pick_checkpoint(names, where, model_type)
    path = sources.download(repo_id, filename=filename, revision=revision, cache_dir=cache_dir,
                            local_files_only=offline, what="SAM weights")
    return CheckpointFile(path, repo_id, filename, revision, cache_dir, offline)


def locate_checkpoint(
    source: str | os.PathLike[str],
    *,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    model_type: str | None = None,
) -> CheckpointFile:
    """A checkpoint file from a file path (quoted or not), a folder holding one, or a Hub repo id (+ ``filename``)."""
    if isinstance(source, str):
        source = unquoted(source)
    path = Path(os.path.expanduser(str(source)))
    if path.is_file():
        if filename is not None:
            raise ValueError(f"{path} is a file, and filename={filename!r} names a file inside a folder or Hub repo: "
                             "leave filename out to load that file, or give its folder")
        return CheckpointFile(path)
    if path.is_dir():
        if filename is not None:
            target = path / filename
            if not target.is_file():
                raise FileNotFoundError(f"SAM checkpoint {filename!r} not found in folder {path}")
            return CheckpointFile(target)
        names = sources.visible_files(path)
        return CheckpointFile(path / _pick_checkpoint(names, f"folder {path}", model_type))
    text = str(source)
    looks_like_path = (
        isinstance(source, os.PathLike)
        or text.startswith((".", "/", "~", "\\"))
        or text.lower().endswith(CHECKPOINT_SUFFIXES)
        or os.path.isabs(text)
        or not looks_like_repo_id(text)
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"SAM checkpoint not found: {text}. Give an existing .safetensors/.pth file, a folder "
            "holding one, or a Hugging Face repo id like 'owner/name' (with filename=...)"
        )
    return _download_from_hub(
        text,
        filename,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        model_type=model_type,
    )


# --------------------------------------------------------------------------------------
# From a file to a model
# --------------------------------------------------------------------------------------


def _sam_config(checkpoint: CheckpointFile) -> dict | None:
    """The transformers ``config.json`` beside the weights, when there is one that describes a SAM and the
    weights are a repo's own ``model.safetensors`` (a Hub download, or a repo folder): a file saved alone into
    a shared folder (ComfyUI's models/sams, under a longer name) is not described by whatever config.json
    another model left there."""
    if checkpoint.repo_id is None and checkpoint.path.name != "model.safetensors":
        return None
    found = checkpoint.sibling("config.json")
    if found is None:
        return None
    try:
        config = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{found} is not a readable JSON file ({exc}); download it again or remove it") from None
    if not isinstance(config, dict) or not str(config.get("model_type", "")).startswith("sam"):
        return None  # some other model's config that happens to share the folder
    return config


def _infer(path: Path, state: dict[str, torch.Tensor], **overrides: Any) -> SamArchitecture:
    try:
        return infer_sam_architecture(state, **overrides)
    except (KeyError, IndexError, ZeroDivisionError) as exc:  # (a tensor of size 0 among its shapes)
        raise ValueError(f"{path}: not a supported SAM state_dict (missing or odd tensor {exc})") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _from_transformers_layout(
    checkpoint: CheckpointFile, state: dict[str, torch.Tensor]
) -> tuple[SamArchitecture, dict[str, torch.Tensor]]:
    path = checkpoint.path
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ValueError(
            f"{path} is a transformers-layout SAM in a pickle file; that layout is read from the repo's "
            "model.safetensors only. Download model.safetensors from the same repo instead"
        )
    converted = convert_transformers_state_dict(state)
    config = _sam_config(checkpoint)
    if config is None:
        # A lone model.safetensors (e.g. saved into models/sams by a UI): sizes from the shapes,
        # epsilons as transformers uses them.
        return _infer(path, converted, **TRANSFORMERS_NORM_EPS), converted
    try:
        arch = architecture_from_config(config)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise ValueError(f"config.json beside {path}: {exc}") from None
    _check_config_against_weights(arch, converted, path)  # before a model of the config's sizes is built
    return arch, converted


def _check_config_against_weights(arch: SamArchitecture, state: dict[str, torch.Tensor], path: Path) -> None:
    """The sizes the tensors show, against the config.json's: a config of another SAM (or of absurd sizes)
    would build a model of its own first, gigabytes for a few numbers."""
    def count(prefix: str) -> int | None:
        found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return len(found) or None

    patch = state.get("image_encoder.patch_embed.proj.weight")
    lin1 = state.get("mask_decoder.transformer.layers.0.mlp.lin1.weight")
    shown = {"embed_dim": None if patch is None else patch.shape[0],
             "depth": count("image_encoder.blocks."),
             "decoder_depth": count("mask_decoder.transformer.layers."),
             "decoder_mlp_dim": None if lin1 is None else lin1.shape[0]}
    wrong = [f"{name} {getattr(arch, name)} in it, {value} in the weights" for name, value in shown.items()
             if value is not None and getattr(arch, name) != value]
    if wrong:
        raise ValueError(f"config.json beside {path} does not describe these weights ({'; '.join(wrong)}): "
                         "download the repo's config.json again, or remove it to read the sizes off the weights")


def _load_weights(sam: Sam, state: dict[str, torch.Tensor], path: Path, arch: SamArchitecture) -> None:
    expected = set(sam.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:3]))
        raise ValueError(
            f"{path} does not match a plain SAM {arch.name} ({'; '.join(parts)}). Variants such as "
            "SAM-HQ, MobileSAM or SAM 2 are not supported; use an original segment-anything checkpoint "
            "or one of Meta's facebook/sam-vit-* repos"
        )
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: tensor shapes do not fit a SAM {arch.name}: {exc}") from exc


def load_sam(checkpoint: CheckpointFile, model_type: str | None = None) -> tuple[Sam, SamArchitecture]:
    """Build the SAM stored in ``checkpoint`` (on the CPU, eval mode) and return it with its size.

    ``model_type`` (``"vit_b"``...) is checked against the weights when given.
    """
    path = checkpoint.path
    state = load_sam_state_dict(path)
    if is_transformers_layout(state):
        arch, state = _from_transformers_layout(checkpoint, state)
    else:
        arch = _infer(path, state)
    if model_type is not None and arch.name != model_type:
        raise ValueError(
            f"{path} holds a {arch.name} SAM (embed dim {arch.embed_dim}, {arch.depth} blocks), "
            f"not the requested {model_type}. Leave model_type unset ('auto') to use the file's own size"
        )
    with torch.random.fork_rng(devices=[]):  # its random start, overwritten: the caller's random numbers untouched
        sam = build_sam(arch)
    _load_weights(sam, state, path, arch)
    return sam, arch
