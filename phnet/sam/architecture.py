"""SAM sizes as data, read back from a state_dict, and built with segment_anything's modules.

Presets are rows of one table; a custom size is just other numbers. Nothing here reads files.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shlex
import sys
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch

if TYPE_CHECKING:
    from segment_anything.modeling import Sam
else:  # segment_anything loads on first use, not with the package: at run time (get_type_hints) the hints read Any
    Sam = Any

_REQUIRED_KEYS = (
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.pos_embed",
    "image_encoder.neck.0.weight",
    "prompt_encoder.mask_downscaling.0.weight",
    "mask_decoder.mask_tokens.weight",
)


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
    # LayerNorm epsilons. segment_anything hard-codes them; the transformers port reads them from its
    # config and uses 1e-6 in the decoder's two-way blocks where the original uses torch's 1e-5.
    encoder_norm_eps: float = 1e-6
    mask_embed_norm_eps: float = 1e-6
    decoder_norm_eps: float = 1e-5

    @property
    def name(self) -> str:
        """``"vit_b"``, ``"vit_l"``, ``"vit_h"`` when the encoder matches a preset, else ``"custom"``."""
        for name, preset in SAM_PRESETS.items():
            if _encoder_shape(self) == _encoder_shape(preset):
                return name
        return "custom"


def mlp_ratio_for(mlp_dim: float, embed_dim: int) -> float:
    """The ratio segment_anything rebuilds an MLP width of ``mlp_dim`` from, as int(embed_dim × ratio): the plain
    quotient lands a hair under the whole number for some sizes (120 / 88), and int() takes a row off. The
    plain one where it holds (4.0 for vit_b/l/h, whose presets compare equal)."""
    plain = int(mlp_dim) / embed_dim
    return plain if int(embed_dim * plain) == int(mlp_dim) else (int(mlp_dim) + 0.5) / embed_dim


def _encoder_shape(arch: SamArchitecture) -> tuple:
    return arch.embed_dim, arch.depth, arch.num_heads, arch.global_attn_indexes


SAM_PRESETS: dict[str, SamArchitecture] = {
    "vit_b": SamArchitecture(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamArchitecture(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamArchitecture(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def _foreign_format_hint(keys: Iterable[str]) -> str:
    keys = list(keys)
    # SAM 2: the original layout's trunk, or transformers' backbone (its vision_encoder read as image_encoder)
    if any(k.startswith(("image_encoder.trunk.", "image_encoder.backbone.")) or k == "no_memory_embedding"
           for k in keys):
        return " It looks like a SAM 2 checkpoint, which this loader does not support; use a SAM 1 checkpoint."
    if any(k.startswith("image_encoder.layers.") for k in keys):
        return " It looks like a MobileSAM / TinyViT checkpoint, which this loader does not support."
    return ""


def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k)) is not None}
    return sorted(found)


def _infer_encoder(state_dict: Mapping[str, torch.Tensor]) -> dict:
    embed_dim, _, patch_size, _ = state_dict["image_encoder.patch_embed.proj.weight"].shape
    pos = state_dict["image_encoder.pos_embed"]
    if pos.ndim != 4 or pos.shape[1] != pos.shape[2]:
        raise ValueError(
            f"not a supported SAM state_dict: image_encoder.pos_embed has shape {tuple(pos.shape)}, "
            "expected 1 x G x G x C"
        )
    grid = int(pos.shape[1])
    blocks = _indices(state_dict, r"image_encoder\.blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError("not a supported SAM state_dict: image encoder blocks are missing or not numbered 0..N-1")
    depth = len(blocks)
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in state_dict
    mlp_dim = state_dict["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]

    global_idx: list[int] = []
    window_size = 0
    if use_rel_pos:
        # A block's relative table spans 2 * window - 1 positions; a global block spans the whole grid.
        head_dim = int(state_dict["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
        if head_dim < 1 or embed_dim % head_dim:
            raise ValueError(
                f"not a supported SAM state_dict: image_encoder.blocks.0.attn.rel_pos_h is {head_dim} wide, which does "
                f"not split the embed dim {int(embed_dim)} into whole attention heads"
            )
        num_heads = int(embed_dim // head_dim)
        for i in range(depth):
            span = (state_dict[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] + 1) // 2
            if span == grid:
                global_idx.append(i)
            else:
                window_size = int(span)
    else:
        # Without relative tables the head count is invisible in the weights; take the preset of this width.
        presets = [p for p in SAM_PRESETS.values() if p.embed_dim == embed_dim]
        if not presets:
            raise ValueError(
                f"cannot infer the number of attention heads of a SAM with embed dim {embed_dim} "
                "and no relative position tables"
            )
        num_heads = presets[0].num_heads
        global_idx = list(range(depth))
    return dict(
        embed_dim=int(embed_dim),
        depth=depth,
        num_heads=num_heads,
        global_attn_indexes=tuple(global_idx),
        img_size=grid * int(patch_size),
        patch_size=int(patch_size),
        window_size=int(window_size),
        mlp_ratio=mlp_ratio_for(mlp_dim, embed_dim),
        use_rel_pos=use_rel_pos,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in state_dict,
        prompt_embed_dim=int(state_dict["image_encoder.neck.0.weight"].shape[0]),
    )


def _infer_decoder(state_dict: Mapping[str, torch.Tensor], prompt_embed_dim: int) -> dict:
    first = "mask_decoder.transformer.layers.0."
    internal = state_dict[first + "cross_attn_token_to_image.q_proj.weight"].shape[0]
    return dict(
        mask_in_chans=int(state_dict["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_depth=len(_indices(state_dict, r"mask_decoder\.transformer\.layers\.(\d+)\.")),
        # The head count of the two-way transformer is not visible in the weights; SAM uses 8.
        decoder_heads=8,
        decoder_mlp_dim=int(state_dict[first + "mlp.lin1.weight"].shape[0]),
        attention_downsample_rate=int(prompt_embed_dim // internal),
        num_multimask_outputs=int(state_dict["mask_decoder.mask_tokens.weight"].shape[0] - 1),
        iou_head_depth=len(_indices(state_dict, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.")),
        iou_head_hidden_dim=int(state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )


def infer_sam_architecture(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> SamArchitecture:
    """Read the SAM size from a segment_anything state_dict's tensor shapes.

    ``overrides`` set fields the weights cannot show (e.g. ``decoder_norm_eps``).
    Raises ``ValueError`` when the mapping is not a segment_anything SAM state_dict.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in state_dict]
    if missing:
        raise ValueError(
            "not a Segment Anything (SAM) state_dict: missing "
            + ", ".join(repr(k) for k in missing[:3])
            + "."
            + _foreign_format_hint(state_dict.keys())
        )
    encoder = _infer_encoder(state_dict)
    decoder = _infer_decoder(state_dict, encoder["prompt_embed_dim"])
    return SamArchitecture(**{**encoder, **decoder, **overrides})


def _pip_install(requirement: str) -> str:
    """This Python's pip command for ``requirement``, to paste: the path quoted only where it must be, and a quoted
    Windows path for PowerShell (where a line starting with a string is no command without &) and cmd.exe."""
    exe = sys.executable
    if os.name != "nt":
        return f'{shlex.quote(exe)} -m pip install "{requirement}"'
    if re.fullmatch(r"[\w:.\\/-]+", exe):
        return f'{exe} -m pip install "{requirement}"'
    powershell = exe.replace("'", "''")  # in single quotes: in double ones PowerShell expands $name and `
    return (f"& '{powershell}' -m pip install \"{requirement}\" in PowerShell, "
            f'"{exe}" -m pip install "{requirement}" in cmd.exe')


def import_segment_anything(submodule: str = "") -> ModuleType:
    """``segment_anything`` or one of its modules (``"modeling"``); without the package, an ImportError that says
    how to install it instead of Python's bare "No module named 'segment_anything'"."""
    try:
        importlib.import_module("segment_anything")
    except ImportError as e:
        if e.name != "segment_anything":  # installed, but something it needs is not: Python's error names that
            raise
        raise ImportError(
            f"PHNet's Segment Anything needs the segment-anything package: {_pip_install('segment-anything>=1.0')} "
            "(a node pack or an extension: install its requirements.txt)") from None
    return importlib.import_module(f"segment_anything.{submodule}" if submodule else "segment_anything")


def build_sam(arch: SamArchitecture | str) -> Sam:
    """Build an (untrained) SAM in eval mode with segment_anything's modeling classes."""
    modeling = import_segment_anything("modeling")

    if isinstance(arch, str):
        if arch not in SAM_PRESETS:
            raise ValueError(f"unknown SAM model_type {arch!r}; choose one of {sorted(SAM_PRESETS)}")
        arch = SAM_PRESETS[arch]
    grid = arch.img_size // arch.patch_size
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            img_size=arch.img_size,
            patch_size=arch.patch_size,
            embed_dim=arch.embed_dim,
            depth=arch.depth,
            num_heads=arch.num_heads,
            mlp_ratio=arch.mlp_ratio,
            out_chans=arch.prompt_embed_dim,
            qkv_bias=arch.qkv_bias,
            norm_layer=partial(torch.nn.LayerNorm, eps=arch.encoder_norm_eps),
            use_rel_pos=arch.use_rel_pos,
            window_size=arch.window_size,
            global_attn_indexes=arch.global_attn_indexes,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.img_size, arch.img_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=modeling.MaskDecoder(
            transformer_dim=arch.prompt_embed_dim,
            transformer=modeling.TwoWayTransformer(
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
    # The modules take no epsilon arguments for these norms; set them after construction.
    for norm in (sam.prompt_encoder.mask_downscaling[1], sam.prompt_encoder.mask_downscaling[4]):
        norm.eps = arch.mask_embed_norm_eps
    for block in sam.mask_decoder.transformer.layers:
        for norm in (block.norm1, block.norm2, block.norm3, block.norm4):
            norm.eps = arch.decoder_norm_eps
    return sam.eval()
