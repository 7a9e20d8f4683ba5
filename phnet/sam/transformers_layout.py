"""Meta's Hub repos in the transformers layout (``facebook/sam-vit-base``, ``-large``, ``-huge``).

Those repos hold the same network as the original checkpoints, saved from transformers' ``SamModel``:
a ``config.json`` with the sizes and a ``model.safetensors`` whose keys start with ``vision_encoder.``,
``prompt_encoder.``, ``mask_decoder.`` and ``shared_image_embedding.``. Here the keys are renamed to
segment_anything's module tree and the config is turned into a :class:`SamArchitecture`, so one model
class serves both layouts. No transformers import is needed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Mapping

import torch

from .architecture import SamArchitecture, mlp_ratio_for

# What transformers writes into (or assumes for) a SAM config.json when a key is absent.
_VISION_DEFAULTS: dict[str, Any] = dict(
    hidden_size=768, output_channels=256, num_hidden_layers=12, num_attention_heads=12, num_channels=3,
    image_size=1024, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True, mlp_ratio=4.0,
    use_abs_pos=True, use_rel_pos=True, window_size=14, global_attn_indexes=(2, 5, 8, 11),
    num_pos_feats=128, mlp_dim=None,
)
_PROMPT_DEFAULTS: dict[str, Any] = dict(
    hidden_size=256, image_size=1024, patch_size=16, mask_input_channels=16, num_point_embeddings=4,
    hidden_act="gelu", layer_norm_eps=1e-6,
)
_DECODER_DEFAULTS: dict[str, Any] = dict(
    hidden_size=256, hidden_act="relu", mlp_dim=2048, num_hidden_layers=2, num_attention_heads=8,
    attention_downsample_rate=2, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256,
    layer_norm_eps=1e-6,
)

#: The norm epsilons transformers uses for this layout when no config.json says otherwise.
TRANSFORMERS_NORM_EPS = dict(encoder_norm_eps=1e-6, mask_embed_norm_eps=1e-6, decoder_norm_eps=1e-6)

_POSITIONAL = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_SHARED = "shared_image_embedding.positional_embedding"
_SHARED_COPY = "prompt_encoder.shared_embedding.positional_embedding"

# (pattern, replacement), tried in order on every key; several may apply to one key.
_RENAMES: tuple[tuple[str, str], ...] = (
    # image encoder
    (r"^vision_encoder\.", "image_encoder."),
    (r"^image_encoder\.patch_embed\.projection\.", "image_encoder.patch_embed.proj."),
    (r"^image_encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"image_encoder.blocks.\1.norm\2."),
    (r"^image_encoder\.layers\.", "image_encoder.blocks."),
    (r"^image_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
    (r"^image_encoder\.neck\.layer_norm1\.", "image_encoder.neck.1."),
    (r"^image_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
    (r"^image_encoder\.neck\.layer_norm2\.", "image_encoder.neck.3."),
    # prompt encoder: the mask embedding is one nn.Sequential (conv, norm, act, conv, norm, act, conv)
    (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "prompt_encoder.mask_downscaling.6."),
    (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
    # mask decoder: the upscaler is one nn.Sequential (deconv, norm, act, deconv, act)
    (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
    (r"^mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.", r"mask_decoder.transformer.layers.\1.norm\2."),
    (r"^mask_decoder\.transformer\.layer_norm_final_attn\.", "mask_decoder.transformer.norm_final_attn."),
)

# transformers splits segment_anything's MLP(layers.0 .. layers.N-1) into proj_in, layers.*, proj_out.
_FEEDFORWARD = re.compile(
    r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.(proj_in|proj_out|layers\.(\d+))\.(.+)$"
)


def is_transformers_layout(state_dict: Mapping[str, Any]) -> bool:
    """True for a state_dict saved from transformers' ``SamModel``."""
    return any(k.startswith("vision_encoder.") for k in state_dict) and any(
        k.startswith("mask_decoder.") for k in state_dict
    )


def _feedforward_key(key: str, hidden_layers: Mapping[str, int]) -> str:
    m = _FEEDFORWARD.match(key)
    if m is None:
        return key
    prefix, part, index, rest = m.groups()
    if part == "proj_in":
        position = 0
    elif part == "proj_out":
        position = hidden_layers[prefix] + 1
    else:
        position = int(index) + 1
    return f"{prefix}.layers.{position}.{rest}"


def convert_transformers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers ``SamModel`` state_dict to segment_anything's ``Sam`` keys.

    Keys it does not know are passed through unchanged, so a strict load reports them.
    """
    hidden_layers: Counter[str] = Counter()
    for key in state_dict:
        m = _FEEDFORWARD.match(key)
        if m is not None and m.group(3) is not None and m.group(4) == "weight":
            hidden_layers[m.group(1)] += 1

    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == _SHARED_COPY and _SHARED in state_dict:
            continue  # older saves store the tied table twice; transformers uses the shared one
        if key in (_SHARED, _SHARED_COPY):
            out[_POSITIONAL] = value
            continue
        new = key
        for pattern, replacement in _RENAMES:
            new = re.sub(pattern, replacement, new)
        out[_feedforward_key(new, hidden_layers)] = value
    return out


def _single_size(value: Any, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"config.json: {what} {list(value)} is not square; SAM needs a square input")
        value = value[0]
    return int(value)


def architecture_from_config(config: Mapping[str, Any]) -> SamArchitecture:
    """The :class:`SamArchitecture` of a transformers SAM ``config.json`` (absent keys take transformers' defaults)."""
    model_type = config.get("model_type", "sam")
    if model_type != "sam":
        raise ValueError(
            f"config.json describes a {model_type!r} model; only Segment Anything v1 ('sam') is supported"
        )
    vision = {**_VISION_DEFAULTS, **(config.get("vision_config") or {})}
    prompt = {**_PROMPT_DEFAULTS, **(config.get("prompt_encoder_config") or {})}
    decoder = {**_DECODER_DEFAULTS, **(config.get("mask_decoder_config") or {})}

    hidden = int(vision["hidden_size"])
    width = int(vision["output_channels"])
    img_size = _single_size(vision["image_size"], "vision_config.image_size")
    patch_size = _single_size(vision["patch_size"], "vision_config.patch_size")
    mlp_dim = vision["mlp_dim"] if vision["mlp_dim"] is not None else hidden * float(vision["mlp_ratio"])
    unsupported = {
        "vision_config.hidden_act": (vision["hidden_act"], "gelu"),
        "vision_config.use_abs_pos": (bool(vision["use_abs_pos"]), True),
        "vision_config.num_channels": (int(vision["num_channels"]), 3),
        "vision_config.num_pos_feats": (int(vision["num_pos_feats"]), width // 2),
        "prompt_encoder_config.hidden_act": (prompt["hidden_act"], "gelu"),
        "prompt_encoder_config.hidden_size": (int(prompt["hidden_size"]), width),
        "prompt_encoder_config.image_size": (_single_size(prompt["image_size"], "image_size"), img_size),
        "prompt_encoder_config.patch_size": (_single_size(prompt["patch_size"], "patch_size"), patch_size),
        "prompt_encoder_config.num_point_embeddings": (int(prompt["num_point_embeddings"]), 4),
        "mask_decoder_config.hidden_act": (decoder["hidden_act"], "relu"),
        "mask_decoder_config.hidden_size": (int(decoder["hidden_size"]), width),
    }
    wrong = [f"{name} = {got!r} (expected {want!r})" for name, (got, want) in unsupported.items() if got != want]
    if wrong:
        raise ValueError("config.json describes a SAM variant this loader cannot build: " + "; ".join(wrong))
    counts = {"vision_config.hidden_size": hidden, "vision_config.num_hidden_layers": vision["num_hidden_layers"],
              "vision_config.num_attention_heads": vision["num_attention_heads"],
              "mask_decoder_config.num_hidden_layers": decoder["num_hidden_layers"],
              "mask_decoder_config.num_attention_heads": decoder["num_attention_heads"],
              "mask_decoder_config.mlp_dim": decoder["mlp_dim"], "vision_config.output_channels": width}
    below = [f"{name} = {value!r}" for name, value in counts.items() if int(value) < 1]
    if below:
        raise ValueError("config.json gives sizes below 1: " + "; ".join(below))
    return SamArchitecture(
        embed_dim=hidden,
        depth=int(vision["num_hidden_layers"]),
        num_heads=int(vision["num_attention_heads"]),
        global_attn_indexes=tuple(int(i) for i in vision["global_attn_indexes"]),
        img_size=img_size,
        patch_size=patch_size,
        window_size=int(vision["window_size"]),
        mlp_ratio=mlp_ratio_for(mlp_dim, hidden),
        use_rel_pos=bool(vision["use_rel_pos"]),
        qkv_bias=bool(vision["qkv_bias"]),
        prompt_embed_dim=width,
        mask_in_chans=int(prompt["mask_input_channels"]),
        decoder_depth=int(decoder["num_hidden_layers"]),
        decoder_heads=int(decoder["num_attention_heads"]),
        decoder_mlp_dim=int(decoder["mlp_dim"]),
        attention_downsample_rate=int(decoder["attention_downsample_rate"]),
        num_multimask_outputs=int(decoder["num_multimask_outputs"]),
        iou_head_depth=int(decoder["iou_head_depth"]),
        iou_head_hidden_dim=int(decoder["iou_head_hidden_dim"]),
        encoder_norm_eps=float(vision["layer_norm_eps"]),
        mask_embed_norm_eps=float(prompt["layer_norm_eps"]),
        decoder_norm_eps=float(decoder["layer_norm_eps"]),
    )
