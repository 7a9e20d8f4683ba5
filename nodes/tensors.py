"""ComfyUI tensor conventions and conversions.

IMAGE: float32 ``[B, H, W, C]`` in 0..1 (C is 3; RGBA from some third-party nodes is accepted and
its alpha dropped). MASK: float32 ``[B, H, W]`` in 0..1 (``[H, W]``, ``[B, 1, H, W]`` and
``[B, H, W, 1]`` are accepted too). A single mask broadcasts over an image batch; a mask of another
size is resized with a warning; anything that cannot be made to fit is a ValueError saying why.
"""

from __future__ import annotations

import logging

log = logging.getLogger("comfyui-phnet")


def _torch():
    import torch

    return torch


def as_image(image, name: str = "image"):
    """Validate an IMAGE and return it as float32 ``[B, H, W, 3]`` (alpha dropped, grey expanded)."""
    torch = _torch()
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a ComfyUI IMAGE tensor [B,H,W,C], got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"{name} must be an IMAGE tensor [B,H,W,C], got shape {tuple(image.shape)}")
    b, h, w, c = image.shape
    if b < 1 or h < 1 or w < 1:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")
    if c == 4:
        log.warning("comfyui-phnet: %s has 4 channels (RGBA); the alpha channel is ignored", name)
        image = image[..., :3]
    elif c == 1:
        image = image.expand(b, h, w, 3)
    elif c != 3:
        raise ValueError(
            f"{name} must have 3 (RGB) channels in the last dimension, got shape {tuple(image.shape)}; "
            "is a MASK or a channels-first tensor connected to an IMAGE input?"
        )
    return image.float()


def as_mask(mask, name: str = "mask"):
    """Validate a MASK and return it as float32 ``[B, H, W]``."""
    torch = _torch()
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a ComfyUI MASK tensor [B,H,W], got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    elif mask.ndim == 4:
        if mask.shape[1] == 1:
            mask = mask[:, 0]
        elif mask.shape[-1] == 1:
            mask = mask[..., 0]
        else:
            raise ValueError(
                f"{name} must be a MASK [B,H,W] (or [B,1,H,W] / [B,H,W,1]), got shape {tuple(mask.shape)}; "
                "is an IMAGE connected to a MASK input? Convert it with the core 'Convert Image to Mask' node"
            )
    if mask.ndim != 3:
        raise ValueError(f"{name} must be a MASK [B,H,W], got shape {tuple(mask.shape)}")
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(mask.shape)})")
    return mask.float().clamp(0.0, 1.0)


def resize_mask(mask, height: int, width: int, name: str = "mask", warn: bool = True):
    """Resize ``[B, H, W]`` to ``[B, height, width]`` (bilinear), with a warning saying what happened."""
    torch = _torch()
    if tuple(mask.shape[-2:]) == (height, width):
        return mask
    if warn:
        log.warning(
            "comfyui-phnet: %s is %dx%d but the image is %dx%d; the mask was resized to fit. "
            "(A 64x64 mask usually means LoadImage got a picture without alpha.)",
            name, mask.shape[-1], mask.shape[-2], width, height,
        )
    out = torch.nn.functional.interpolate(
        mask.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False
    )
    return out[:, 0].clamp(0.0, 1.0)


def match_batch(tensor, batch: int, name: str):
    """Broadcast a batch-1 tensor to ``batch``; error on any other mismatch."""
    n = tensor.shape[0]
    if n == batch:
        return tensor
    if n == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(
        f"{name} has a batch of {n} but the image batch is {batch}; give one {name} for all images "
        f"or exactly {batch}"
    )


def mask_for_image(mask, image, name: str = "mask"):
    """Normalise ``mask`` to ``[B, H, W]`` matching ``image`` ``[B, H, W, C]`` (resize + broadcast)."""
    mask = as_mask(mask, name)
    b, h, w = image.shape[0], image.shape[1], image.shape[2]
    mask = resize_mask(mask, h, w, name)
    mask = match_batch(mask, b, name)
    return mask.to(device=image.device, dtype=image.dtype)


def broadcast_pair(a, b, name_a: str, name_b: str):
    """Make two batched tensors the same batch size (one of them may be 1)."""
    na, nb = a.shape[0], b.shape[0]
    if na == nb:
        return a, b
    if na == 1:
        return a.expand(nb, *a.shape[1:]), b
    if nb == 1:
        return a, b.expand(na, *b.shape[1:])
    raise ValueError(f"{name_a} has a batch of {na} and {name_b} a batch of {nb}; they must match or one must be 1")


def image_to_bchw(image):
    return image.movedim(-1, 1).contiguous()


def bchw_to_image(x):
    return x.movedim(1, -1).clamp(0.0, 1.0).contiguous()


def image_to_numpy(image_hwc):
    """One ``[H, W, 3]`` tensor -> float32 numpy HWC in 0..1."""
    return image_hwc.detach().float().cpu().clamp(0.0, 1.0).numpy()


def numpy_to_tensor(array, device=None):
    torch = _torch()
    t = torch.from_numpy(array.astype("float32", copy=False).copy())
    return t.to(device) if device is not None else t
