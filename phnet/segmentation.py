"""Segment Anything (SAM) wrapper: load any SAM checkpoint, prompt it, refine masks.

The expensive step is explicit: :meth:`SamSegmenter.set_image` runs the image
encoder once and caches the embedding; every :meth:`SamSegmenter.predict`
afterwards only runs the light prompt encoder and mask decoder.

Checkpoints are the original ``segment_anything`` state_dicts (``sam_vit_b_01ec64.pth``
and friends) as ``.safetensors`` or ``.pth``. A ``.pth`` is only ever opened with
``torch.load(weights_only=True)``. The architecture (vit_b / vit_l / vit_h or a custom
size) is read from the tensor shapes, so file names don't matter.

No ComfyUI, WebUI or training imports here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .imageio import image_to_uint8, mask_to_array

__all__ = [
    "SamSegmenter",
    "SamArchitecture",
    "SAM_PRESETS",
    "infer_sam_architecture",
    "build_sam",
    "load_sam_state_dict",
    "refine_mask",
    "mask_bbox",
    "gaussian_blur",
]

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_PICKLE_SUFFIXES = (".pth", ".pt", ".bin")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENCODER = "image_encoder."
_REQUIRED_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.pos_embed",
    "image_encoder.neck.0.weight",
    "prompt_encoder.mask_downscaling.0.weight",
    "mask_decoder.mask_tokens.weight",
)


# --------------------------------------------------------------------------------------
# Architecture: presets are data, a custom size is just other numbers
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SamArchitecture:
    """Every number needed to rebuild a SAM with segment_anything's modeling classes."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    use_rel_pos: bool = True
    qkv_bias: bool = True
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def name(self) -> str:
        """``"vit_b"``, ``"vit_l"``, ``"vit_h"`` when the encoder matches a preset, else ``"custom"``."""
        for name, preset in SAM_PRESETS.items():
            if (self.embed_dim, self.depth, self.num_heads, self.global_attn_indexes) == (
                preset.embed_dim,
                preset.depth,
                preset.num_heads,
                preset.global_attn_indexes,
            ):
                return name
        return "custom"


SAM_PRESETS: dict[str, SamArchitecture] = {
    "vit_b": SamArchitecture(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamArchitecture(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamArchitecture(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def _foreign_format_hint(keys: Iterable[str]) -> str:
    keys = list(keys)
    if any(k.startswith("vision_encoder.") for k in keys):
        return (
            " It looks like a Hugging Face transformers `SamModel` checkpoint (keys start with "
            "'vision_encoder.'); use the original segment-anything checkpoint instead, e.g. "
            "sam_vit_b_01ec64.pth."
        )
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        return " It looks like a SAM 2 checkpoint, which this loader does not support; use a SAM 1 checkpoint."
    if any(k.startswith("image_encoder.layers.") for k in keys):
        return " It looks like a MobileSAM / TinyViT checkpoint, which this loader does not support."
    return ""


def infer_sam_architecture(state_dict: Mapping[str, torch.Tensor]) -> SamArchitecture:
    """Read the SAM size from a state_dict's tensor shapes.

    Raises ``ValueError`` when the mapping is not a segment_anything SAM state_dict.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in state_dict]
    if missing:
        raise ValueError(
            "Not a Segment Anything (SAM) state_dict: missing "
            + ", ".join(repr(k) for k in missing[:3])
            + "."
            + _foreign_format_hint(state_dict.keys())
        )

    patch_w = state_dict["image_encoder.patch_embed.proj.weight"]
    embed_dim, _, patch_size, _ = patch_w.shape
    pos = state_dict["image_encoder.pos_embed"]
    if pos.ndim != 4 or pos.shape[1] != pos.shape[2]:
        raise ValueError(
            f"Not a supported SAM state_dict: image_encoder.pos_embed has shape {tuple(pos.shape)}, "
            "expected 1 x G x G x C."
        )
    grid = int(pos.shape[1])
    img_size = grid * int(patch_size)

    block_ids = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)) is not None
    }
    if not block_ids or sorted(block_ids) != list(range(len(block_ids))):
        raise ValueError("Not a supported SAM state_dict: image encoder blocks are missing or not numbered 0..N-1.")
    depth = len(block_ids)

    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in state_dict
    qkv_bias = "image_encoder.blocks.0.attn.qkv.bias" in state_dict
    mlp_dim = state_dict["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    mlp_ratio = mlp_dim / embed_dim

    global_idx: list[int] = []
    window_size = 0
    if use_rel_pos:
        head_dim = state_dict["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        num_heads = int(embed_dim // head_dim)
        for i in range(depth):
            span = (state_dict[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] + 1) // 2
            if span == grid:
                global_idx.append(i)
            else:
                window_size = int(span)
    else:
        # Without relative tables the head count is invisible in the weights; fall back to
        # the preset with this width.
        presets = [p for p in SAM_PRESETS.values() if p.embed_dim == embed_dim]
        if not presets:
            raise ValueError(
                f"Cannot infer the number of attention heads of a SAM with embed dim {embed_dim} "
                "and no relative position tables."
            )
        num_heads = presets[0].num_heads
        global_idx = list(range(depth))

    prompt_embed_dim = state_dict["image_encoder.neck.0.weight"].shape[0]
    mask_in_chans = state_dict["prompt_encoder.mask_downscaling.3.weight"].shape[0]
    layer_ids = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k)) is not None
    }
    decoder_mlp_dim = state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
    internal = state_dict["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
    iou_layers = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.", k)) is not None
    }
    return SamArchitecture(
        embed_dim=int(embed_dim),
        depth=depth,
        num_heads=num_heads,
        global_attn_indexes=tuple(global_idx),
        img_size=int(img_size),
        patch_size=int(patch_size),
        window_size=int(window_size),
        mlp_ratio=float(mlp_ratio),
        use_rel_pos=use_rel_pos,
        qkv_bias=qkv_bias,
        prompt_embed_dim=int(prompt_embed_dim),
        mask_in_chans=int(mask_in_chans),
        decoder_depth=len(layer_ids),
        # Head count of the two-way transformer is not visible in the weights; SAM uses 8.
        decoder_heads=8,
        decoder_mlp_dim=int(decoder_mlp_dim),
        attention_downsample_rate=int(prompt_embed_dim // internal),
        num_multimask_outputs=int(state_dict["mask_decoder.mask_tokens.weight"].shape[0] - 1),
        iou_head_depth=len(iou_layers),
        iou_head_hidden_dim=int(state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )


def build_sam(arch: SamArchitecture | str) -> torch.nn.Module:
    """Build an (untrained) SAM with segment_anything's modeling classes."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if isinstance(arch, str):
        if arch not in SAM_PRESETS:
            raise ValueError(f"Unknown SAM model_type {arch!r}; choose one of {sorted(SAM_PRESETS)}.")
        arch = SAM_PRESETS[arch]
    grid = arch.img_size // arch.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=arch.img_size,
            patch_size=arch.patch_size,
            embed_dim=arch.embed_dim,
            depth=arch.depth,
            num_heads=arch.num_heads,
            mlp_ratio=arch.mlp_ratio,
            out_chans=arch.prompt_embed_dim,
            qkv_bias=arch.qkv_bias,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=arch.use_rel_pos,
            window_size=arch.window_size,
            global_attn_indexes=arch.global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.img_size, arch.img_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=arch.prompt_embed_dim,
            transformer=TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_embed_dim,
                num_heads=arch.decoder_heads,
                mlp_dim=arch.decoder_mlp_dim,
                attention_downsample_rate=arch.attention_downsample_rate,
            ),
            num_multimask_outputs=arch.num_multimask_outputs,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
    )
    return sam.eval()


# --------------------------------------------------------------------------------------
# Files: local path / folder / Hugging Face Hub
# --------------------------------------------------------------------------------------


def load_sam_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM checkpoint file (``.safetensors`` or a ``.pth`` loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM checkpoint not found: {path}. Check the path or download the file there.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...
            raise ValueError(
                f"SAM checkpoint {path} is not a readable .safetensors file ({exc}). "
                "It is probably truncated or corrupt: download it again."
            ) from exc
    elif suffix in _PICKLE_SUFFIXES:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "Unsupported global" in str(exc) or "GLOBAL " in str(exc):
                raise ValueError(
                    f"SAM checkpoint {path} contains pickled Python objects besides tensors, and is not "
                    "loaded for safety (only torch.load(weights_only=True) is used). Convert it to "
                    ".safetensors with a trusted script, or use the official checkpoint."
                ) from exc
            raise ValueError(
                f"SAM checkpoint {path} is not a readable PyTorch file ({exc}). It is probably "
                "truncated or corrupt: download it again."
            ) from exc
        except Exception as exc:  # RuntimeError (bad zip), EOFError, ...
            raise ValueError(
                f"SAM checkpoint {path} is not a readable PyTorch file ({type(exc).__name__}: {exc}). "
                "It is probably truncated or corrupt: download it again."
            ) from exc
    else:
        raise ValueError(
            f"Unsupported SAM checkpoint type {path.name!r}: use a .safetensors or .pth file."
        )

    # Some training scripts wrap the weights: {"model": {...}} or {"state_dict": {...}}.
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not contain a state_dict (a mapping of names to tensors).")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # Normalisation constants are non-persistent buffers in segment_anything; some
    # conversions still store them. They are fixed numbers, not weights.
    for key in ("pixel_mean", "pixel_std"):
        state.pop(key, None)
    return state


def _pick_checkpoint(names: Sequence[str], where: str, model_type: str | None) -> str:
    candidates = sorted(n for n in names if n.lower().endswith(CHECKPOINT_SUFFIXES))
    if model_type:
        typed = [n for n in candidates if model_type.lower() in Path(n).name.lower()]
        if typed:
            candidates = typed
    if len(candidates) > 1:
        # A .safetensors twin of a .pth is the same weights; prefer the safe format.
        safe = [n for n in candidates if n.lower().endswith(".safetensors")]
        if len(safe) == 1:
            candidates = safe
    if not candidates:
        raise FileNotFoundError(f"No SAM checkpoint (.safetensors / .pth) found in {where}.")
    if len(candidates) > 1:
        raise ValueError(
            f"Several SAM checkpoints in {where}: {', '.join(candidates)}. Pass filename=... to choose one."
        )
    return candidates[0]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download_from_hub(
    repo_id: str,
    filename: str | None,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    model_type: str | None,
) -> Path:
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    offline = local_files_only or _hub_offline()
    where = f"Hugging Face repo {repo_id!r}" + (f" (revision {revision})" if revision else "")
    try:
        if filename is None:
            if offline:
                folder = huggingface_hub.snapshot_download(
                    repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
                )
                names = [str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file()]
            else:
                names = huggingface_hub.list_repo_files(repo_id, revision=revision)
            filename = _pick_checkpoint(names, where, model_type)
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir, local_files_only=offline
        )
    except hf_errors.LocalEntryNotFoundError as exc:
        what = f"{repo_id}/{filename}" if filename else repo_id
        raise FileNotFoundError(
            f"SAM weights {what!r} are not in the Hugging Face cache"
            + (f" ({cache_dir})" if cache_dir else "")
            + " and downloading is disabled (HF_HUB_OFFLINE=1 or local_files_only=True) or the Hub is "
            "unreachable. Download them once while online, e.g. `hf download "
            + repo_id
            + (f" {filename}" if filename else "")
            + "`, or pass a local file path."
        ) from exc
    except hf_errors.GatedRepoError as exc:
        raise PermissionError(
            f"{where} is gated: accept its licence on https://huggingface.co/{repo_id} and log in "
            "(`hf auth login`), or download the checkpoint manually and pass its path."
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise FileNotFoundError(
            f"{where} does not exist (or is private). Check the repo id, or pass a local file path."
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise FileNotFoundError(f"Revision {revision!r} not found in {where}.") from exc
    except hf_errors.EntryNotFoundError as exc:
        raise FileNotFoundError(
            f"File {filename!r} not found in {where}. Check filename=... against the repo's file list."
        ) from exc
    except (OSError, hf_errors.HfHubHTTPError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConnectionError(
            f"Could not download SAM weights from {where}: {exc}. Check your connection, set "
            "HF_HUB_OFFLINE=1 to use the local cache only, or pass a local file path."
        ) from exc
    return Path(path)


def _resolve_checkpoint(
    source: str | os.PathLike,
    *,
    filename: str | None,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    model_type: str | None,
) -> Path:
    path = Path(os.path.expanduser(str(source)))
    if path.is_file():
        return path
    if path.is_dir():
        if filename is not None:
            target = path / filename
            if not target.is_file():
                raise FileNotFoundError(f"SAM checkpoint {filename!r} not found in folder {path}.")
            return target
        names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        return path / _pick_checkpoint(names, f"folder {path}", model_type)
    text = str(source)
    looks_like_path = (
        isinstance(source, os.PathLike)
        or text.startswith((".", "/", "~", "\\"))
        or text.lower().endswith(CHECKPOINT_SUFFIXES)
        or os.path.isabs(text)
        or not _REPO_ID.match(text)
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"SAM checkpoint not found: {text}. Give an existing .safetensors/.pth file, a folder "
            "holding one, or a Hugging Face repo id like 'owner/name' (with filename=...)."
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
# Input conversion
# --------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").float().numpy() if x.dtype == torch.bfloat16 else x.detach().cpu().numpy()
    return np.asarray(x)


def _to_rgb_uint8(image: Any) -> np.ndarray:
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
    except ImportError:  # pragma: no cover
        pass
    arr = _to_numpy(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"Expected an image as H x W x C (C = 1, 3 or 4) or a PIL image, got shape {tuple(arr.shape)}. "
            "Channel-first tensors must be permuted to H x W x C first."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"The image is empty (shape {tuple(arr.shape)}).")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool:
        return np.ascontiguousarray(arr.astype(np.uint8) * 255)
    if np.issubdtype(arr.dtype, np.floating):
        return np.ascontiguousarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8))
    raise ValueError(f"Unsupported image dtype {arr.dtype}: use uint8 (0..255) or float (0..1).")


def _to_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """Any mask-like (numpy / torch / PIL, HW or HW1 or 1HW) → float32 HW in [0, 1]."""
    try:
        from PIL import Image

        if isinstance(mask, Image.Image):
            if mask.mode in ("RGBA", "LA", "PA"):
                mask = mask.getchannel("A")
            elif mask.mode not in ("L", "1", "F", "I", "I;16"):
                mask = mask.convert("L")
            arr = np.asarray(mask)
            if arr.dtype == bool:
                return arr.astype(np.float32)
            if arr.dtype == np.uint8:
                return arr.astype(np.float32) / 255.0
            return np.clip(arr.astype(np.float32), 0.0, 1.0)
    except ImportError:  # pragma: no cover
        pass
    arr = _to_numpy(mask)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} as H x W, got shape {tuple(arr.shape)}.")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


# --------------------------------------------------------------------------------------
# The segmenter
# --------------------------------------------------------------------------------------


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SamSegmenter:
    """A SAM model plus the cached embedding of the current image.

    >>> seg = SamSegmenter.from_pretrained("models/sams/sam_vit_b_01ec64.pth")
    >>> seg.set_image(image)                      # runs the image encoder once
    >>> person = seg.predict(box=(40, 10, 200, 300))
    >>> face = seg.predict(points=[(120, 60)])    # reuses the cached embedding
    """

    def __init__(self, sam_model: torch.nn.Module, device: str | torch.device | None = None):
        from segment_anything import SamPredictor

        self.device = torch.device(device) if device is not None else _default_device()
        self.model = sam_model.to(self.device).eval()
        self.architecture: SamArchitecture | None = None
        self._predictor = SamPredictor(self.model)
        self._fingerprint: str | None = None
        self._size: tuple[int, int] | None = None

    # ---- loading ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike,
        *,
        filename: str | None = None,
        model_type: str | None = None,
        device: str | torch.device | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
    ) -> "SamSegmenter":
        """Load a SAM from a file, a folder holding one, or a Hub repo id (+ ``filename``).

        ``model_type`` (``"vit_b"``, ``"vit_l"``, ``"vit_h"``) is optional: the size is
        read from the weights; when given it is checked against them and used to pick a
        file in a folder or repo holding several.
        """
        if model_type is not None and model_type not in SAM_PRESETS:
            raise ValueError(f"Unknown SAM model_type {model_type!r}; choose one of {sorted(SAM_PRESETS)} or None.")
        path = _resolve_checkpoint(
            source,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            model_type=model_type,
        )
        state = load_sam_state_dict(path)
        try:
            arch = infer_sam_architecture(state)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        except (KeyError, IndexError) as exc:
            raise ValueError(f"{path}: not a supported SAM state_dict (missing or odd tensor {exc}).") from exc
        if model_type is not None and arch.name != model_type:
            raise ValueError(
                f"{path} holds a {arch.name} SAM (embed dim {arch.embed_dim}, {arch.depth} blocks), "
                f"not the requested {model_type}. Drop model_type to use the file's own size."
            )
        sam = build_sam(arch)
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
                "SAM-HQ, MobileSAM or SAM 2 are not supported; use an original segment-anything checkpoint."
            )
        try:
            sam.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: tensor shapes do not fit a SAM {arch.name}: {exc}") from exc
        seg = cls(sam, device=device)
        seg.architecture = arch
        return seg

    @property
    def model_type(self) -> str:
        return self.architecture.name if self.architecture is not None else "custom"

    def to(self, device: str | torch.device) -> "SamSegmenter":
        """Move the model; the cached embedding is dropped (it lives on the old device)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.reset_image()
        return self

    # ---- image ------------------------------------------------------------------------

    @property
    def is_image_set(self) -> bool:
        return self._predictor.is_image_set

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the current image, or None."""
        return self._size

    def reset_image(self) -> None:
        self._predictor.reset_image()
        self._fingerprint = None
        self._size = None

    def set_image(self, image: Any) -> None:
        """Encode ``image`` (PIL, numpy HWC uint8 / float 0..1, torch HWC) and cache the embedding.

        Setting the same pixels again is free: the encoder only runs for a new image.
        """
        rgb = image_to_uint8(image)
        digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
        digest.update(repr(rgb.shape).encode())
        fingerprint = digest.hexdigest()
        if self._predictor.is_image_set and fingerprint == self._fingerprint:
            return
        self.reset_image()
        self._predictor.set_image(rgb, image_format="RGB")
        self._fingerprint = fingerprint
        self._size = (int(rgb.shape[0]), int(rgb.shape[1]))

    # ---- prompts ----------------------------------------------------------------------

    def predict(
        self,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        point_labels: Sequence[int] | None = None,
        mask_prompt: Any = None,
        multimask: bool = False,
        soft: bool = False,
        threshold: float = 0.0,
    ) -> np.ndarray:
        """Mask for the current image as float32 H x W in [0, 1].

        box: (x0, y0, x1, y1) in pixels, clipped to the image.
        points: [(x, y), ...] with point_labels 1 = on the subject, 0 = not (default all 1).
        mask_prompt: an existing mask / alpha of the image; its bounding box becomes the box.
        multimask: let SAM propose three masks and keep the best-scoring one.
        soft: return sigmoid(logits) instead of the binary mask ``logits > threshold``.
        """
        if not self._predictor.is_image_set or self._size is None:
            raise RuntimeError("No image set: call SamSegmenter.set_image(image) before predict().")
        h, w = self._size

        if mask_prompt is not None:
            if box is not None:
                raise ValueError("Give either box or mask_prompt, not both (mask_prompt is turned into a box).")
            m = mask_to_array(mask_prompt, "mask_prompt")
            if m.shape != (h, w):
                raise ValueError(
                    f"mask_prompt is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}; resize the mask to the image."
                )
            box = mask_bbox(m)
            if box is None:
                raise ValueError("mask_prompt is empty (no pixel above 0.5): nothing to segment.")

        box_arr = None
        if box is not None:
            b = np.asarray(box, dtype=np.float64).reshape(-1)
            if b.size != 4 or not np.all(np.isfinite(b)):
                raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {box!r}.")
            x0, x1 = sorted((b[0], b[2]))
            y0, y1 = sorted((b[1], b[3]))
            cx0, cx1 = np.clip([x0, x1], 0, w)
            cy0, cy1 = np.clip([y0, y1], 0, h)
            if cx1 - cx0 < 1 or cy1 - cy0 < 1:
                raise ValueError(
                    f"box {tuple(float(v) for v in b)} has no area inside the {w}x{h} image "
                    "(after clipping); boxes are (x0, y0, x1, y1) in pixels."
                )
            box_arr = np.array([cx0, cy0, cx1, cy1], dtype=np.float32)

        coords = labels = None
        if points is not None and len(points) > 0:
            coords = np.asarray(points, dtype=np.float64)
            if coords.ndim == 1 and coords.size == 2:
                coords = coords[None]
            if coords.ndim != 2 or coords.shape[1] != 2 or not np.all(np.isfinite(coords)):
                raise ValueError(f"points must be a list of (x, y) pairs, got {points!r}.")
            if point_labels is None:
                labels = np.ones(len(coords), dtype=np.int64)
            else:
                labels = np.asarray(point_labels, dtype=np.int64).reshape(-1)
                if labels.shape[0] != coords.shape[0]:
                    raise ValueError(
                        f"{coords.shape[0]} points but {labels.shape[0]} point_labels; give one label per point."
                    )
                if not np.isin(labels, (0, 1)).all():
                    raise ValueError("point_labels must be 1 (on the subject) or 0 (background).")
            outside = (coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h)
            if outside.any():
                bad = tuple(float(v) for v in coords[np.argmax(outside)])
                raise ValueError(f"point {bad} lies outside the {w}x{h} image; points are (x, y) in pixels.")
            coords = coords.astype(np.float32)
        elif point_labels is not None and len(point_labels) > 0:
            raise ValueError("point_labels given without points.")

        if box_arr is None and coords is None:
            raise ValueError("Empty prompt: give a box, points or a mask_prompt.")

        logits, scores, _ = self._predictor.predict(
            point_coords=coords,
            point_labels=labels,
            box=box_arr,
            multimask_output=bool(multimask),
            return_logits=True,
        )
        best = int(np.argmax(scores)) if multimask else 0
        logit = torch.from_numpy(np.asarray(logits[best], dtype=np.float32))
        if soft:
            return torch.sigmoid(logit).numpy().astype(np.float32)
        return (logit > float(threshold)).numpy().astype(np.float32)


# --------------------------------------------------------------------------------------
# Mask post-processing
# --------------------------------------------------------------------------------------


def _gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2.0 * sigma * sigma))
    return k / k.sum()


def gaussian_blur(mask_hw: Any, sigma: float) -> np.ndarray:
    """Separable gaussian blur of a H x W mask (edge pixels replicated), float32 out."""
    m = mask_to_array(mask_hw)
    if sigma <= 0:
        return m
    k = _gaussian_kernel1d(float(sigma))
    r = (k.numel() - 1) // 2
    t = torch.from_numpy(m)[None, None]
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return t[0, 0].clamp_(0.0, 1.0).numpy()


def _dilate(t: torch.Tensor, radius: int) -> torch.Tensor:
    # Alternating 3x3 square and 3x3 cross steps grow an octagon, a cheap stand-in for a
    # disc that keeps corners from turning into squares. Works on soft masks too (grey dilation).
    for i in range(radius):
        if i % 2 == 0:
            t = F.max_pool2d(t, 3, stride=1, padding=1)
        else:
            p = F.pad(t, (1, 1, 1, 1), mode="replicate")
            t = torch.stack(
                [t, p[..., :-2, 1:-1], p[..., 2:, 1:-1], p[..., 1:-1, :-2], p[..., 1:-1, 2:]]
            ).amax(0)
    return t


def refine_mask(mask_hw: Any, grow: int = 0, feather: float = 0.0) -> np.ndarray:
    """Grow (``grow`` > 0, dilate) or shrink (< 0, erode) by that many pixels, then feather.

    ``feather`` is the gaussian sigma in pixels. Returns float32 H x W in [0, 1].
    """
    if feather < 0:
        raise ValueError(f"feather must be >= 0 (a blur sigma in pixels), got {feather}.")
    m = mask_to_array(mask_hw)
    grow = int(round(grow))
    if grow != 0:
        t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
        if grow > 0:
            t = _dilate(t, grow)
        else:
            # Erosion is dilation of the background; the image border counts as inside
            # (replicate padding) so a subject touching the edge is not eaten from there.
            t = 1.0 - _dilate(1.0 - t, -grow)
        m = t[0, 0].numpy()
    if feather > 0:
        m = gaussian_blur(m, feather)
    return np.ascontiguousarray(m, dtype=np.float32)


def mask_bbox(mask_hw: Any, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of pixels above ``threshold``; x1/y1 are exclusive.

    None when no pixel is above the threshold.
    """
    m = mask_to_array(mask_hw)
    on = m > threshold
    if not on.any():
        return None
    ys = np.flatnonzero(on.any(axis=1))
    xs = np.flatnonzero(on.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
