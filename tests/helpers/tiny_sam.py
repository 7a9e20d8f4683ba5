"""A tiny, randomly initialised Segment Anything model for fast CPU tests.

It has the same module tree as the real SAM (so checkpoint loading, size
inference and ``SamPredictor`` are exercised for real) but works at 64 px with
an embedding dimension of 32, and runs in a few milliseconds.

Shared by tests/phnet, tests/nodes and tests/webui::

    from tests.helpers.tiny_sam import build_tiny_sam, save_tiny_sam
    path = save_tiny_sam(tmp_path / "tiny_sam.safetensors")
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

# a dependency of the package, but a GPU image may lack it: the tests that need it skip there, the rest run
pytest.importorskip("segment_anything", reason="segment-anything is not installed (pip install segment-anything)")

from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

# The numbers the loader must rediscover from the state_dict alone.
TINY_SAM = dict(
    img_size=64,
    patch_size=16,
    embed_dim=32,
    depth=2,
    num_heads=2,
    window_size=2,
    global_attn_indexes=(1,),
    prompt_embed_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=64,
    decoder_heads=8,
    iou_head_depth=3,
    iou_head_hidden_dim=32,
)


def build_tiny_sam(seed: int = 0) -> Sam:
    """Return a tiny SAM in eval mode, deterministic for a given seed."""
    c = TINY_SAM
    grid = c["img_size"] // c["patch_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=c["img_size"],
                patch_size=c["patch_size"],
                embed_dim=c["embed_dim"],
                depth=c["depth"],
                num_heads=c["num_heads"],
                mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                qkv_bias=True,
                use_rel_pos=True,
                window_size=c["window_size"],
                global_attn_indexes=c["global_attn_indexes"],
                out_chans=c["prompt_embed_dim"],
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=c["prompt_embed_dim"],
                image_embedding_size=(grid, grid),
                input_image_size=(c["img_size"], c["img_size"]),
                mask_in_chans=c["mask_in_chans"],
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=c["decoder_depth"],
                    embedding_dim=c["prompt_embed_dim"],
                    mlp_dim=c["decoder_mlp_dim"],
                    num_heads=c["decoder_heads"],
                ),
                transformer_dim=c["prompt_embed_dim"],
                iou_head_depth=c["iou_head_depth"],
                iou_head_hidden_dim=c["iou_head_hidden_dim"],
            ),
        )
        # Relative position tables start at zero in SAM; randomise them so a
        # wrongly sized or wrongly placed table would change the output.
        for name, p in sam.named_parameters():
            if "rel_pos" in name:
                torch.nn.init.normal_(p, std=0.02)
    return sam.eval()


def save_tiny_sam(path, fmt: str | None = None, seed: int = 0) -> Path:
    """Write a tiny SAM checkpoint to ``path`` and return the path.

    ``fmt`` is ``"safetensors"`` or ``"pth"``; by default it follows the
    file suffix (``.safetensors`` → safetensors, anything else → pth).
    """
    path = Path(path)
    if fmt is None:
        fmt = "safetensors" if path.suffix == ".safetensors" else "pth"
    if fmt not in ("safetensors", "pth"):
        raise ValueError(f"fmt must be 'safetensors' or 'pth', got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in build_tiny_sam(seed).state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path


def has_tiny_sam_weights(model: torch.nn.Module, seed: int = 0) -> bool:
    """True when ``model`` holds exactly the tiny SAM of ``seed`` (same keys, equal tensors)."""
    ref = build_tiny_sam(seed).state_dict()
    got = model.state_dict()
    return ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)

# The same tiny sizes written as a transformers ``SamConfig`` (Meta's Hub repos use this layout).
TINY_TRANSFORMERS_SAM = dict(
    vision_config=dict(
        hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2, image_size=64,
        patch_size=16, window_size=2, global_attn_indexes=[1], num_pos_feats=16, mlp_dim=128,
    ),
    prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=8),
    mask_decoder_config=dict(
        hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=8, iou_head_hidden_dim=32,
    ),
)


def build_tiny_transformers_sam(seed: int = 0):
    """A tiny transformers ``SamModel`` in eval mode with random weights that matter.

    transformers starts norms at 1, tables and positions at 0; every tensor is randomised here so
    that a key mapped to the wrong place, or a wrong epsilon, changes the output.
    """
    import math

    from transformers import SamConfig, SamModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SamModel(SamConfig(**TINY_TRANSFORMERS_SAM)).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "layer_norm" in name and name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                elif p.ndim > 1 and not name.split(".")[-1].endswith("embed"):
                    p.copy_(torch.randn_like(p) / math.sqrt(p[0].numel()))
                else:
                    p.copy_(0.5 * torch.randn_like(p))
    return model


def save_tiny_transformers_sam(folder, seed: int = 0):
    """Write a tiny transformers-layout SAM (``config.json`` + ``model.safetensors``); return (folder, model)."""
    folder = Path(folder)
    model = build_tiny_transformers_sam(seed)
    model.save_pretrained(folder)
    return folder, model
