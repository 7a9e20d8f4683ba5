"""PHNet harmonization: PHNET_MODEL + IMAGE + MASK -> IMAGE."""

from __future__ import annotations

import logging

from . import _env, tensors

log = logging.getLogger("comfyui-phnet")


def _move(harmonizer, device) -> None:
    """Move a Harmonizer's weights (and its notion of its device) to ``device``."""
    import torch

    if harmonizer.device != torch.device(device):
        harmonizer.to(device)


def _unwrap(phnet_model):
    """(harmonizer, load_device, offload_device) from a PHNET_MODEL value (or a bare Harmonizer)."""
    h = getattr(phnet_model, "harmonizer", None)
    if h is not None:
        return h, phnet_model.load_device, phnet_model.offload_device
    if hasattr(phnet_model, "harmonize_tensor"):
        dev = getattr(phnet_model, "device", None) or _env.compute_device()
        return phnet_model, dev, dev
    raise ValueError(
        f"phnet_model is a {type(phnet_model).__name__}, not a PHNet model; connect 'PHNet Model Loader'"
    )


def _model_bytes(module) -> int:
    try:
        return sum(p.numel() * p.element_size() for p in module.parameters())
    except Exception:
        return 0


class PHNetHarmonize:
    DESCRIPTION = (
        "Harmonizes the colours and lighting of the masked subject (mask = 1) to match the rest of the image "
        "with PHNet. Pixels outside the mask are returned unchanged. The network runs at its working resolution "
        "and the correction is applied at full resolution. Batches are processed image by image; a single mask "
        "is shared by the whole batch, and a mask of another size is resized (with a warning)."
    )
    CATEGORY = "PHNet"
    FUNCTION = "harmonize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The harmonized image(s), same size and batch as the input image.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "phnet_model": ("PHNET_MODEL", {"tooltip": "PHNet model from 'PHNet Model Loader'."}),
                "image": ("IMAGE", {"tooltip": "Composite image(s) to harmonize."}),
                "mask": ("MASK", {
                    "tooltip": "Foreground mask (1 = pasted subject to adjust, 0 = background to keep). Note that "
                               "LoadImage's mask is 1 where the PNG is transparent: invert it first.",
                }),
            },
            "optional": {
                "strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "display": "slider",
                    "tooltip": "How much of the correction to apply: 0 = unchanged composite, 1 = full PHNet result.",
                }),
                "working_size": ("INT", {
                    "default": 0, "min": 0, "max": 4096, "step": 8,
                    "tooltip": "Resolution (square side, multiple of 8) the network runs at; 0 = the resolution the "
                               "weights were trained at. Lower it to save memory.",
                }),
            },
        }

    def harmonize(self, phnet_model, image, mask, strength=1.0, working_size=0):
        import torch

        h, load_device, offload_device = _unwrap(phnet_model)
        image = tensors.as_image(image)
        masks = tensors.mask_for_image(mask, image, "mask")
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        working_size = int(working_size or 0)
        if working_size and working_size % 8:
            raise ValueError(f"working_size must be 0 or a multiple of 8, got {working_size}")
        out_device = _env.intermediate_device()
        if strength == 0.0:
            return (image.to(out_device).clamp(0.0, 1.0),)

        b, hgt, wid = image.shape[0], image.shape[1], image.shape[2]
        side = working_size or int(getattr(h.config, "image_size", 512))
        # weights + activations of one item at the working size (rough, generous) + the full-res item.
        estimate = _model_bytes(h.model) * 2 + side * side * 4 * 512 + hgt * wid * 4 * 16
        _env.free_memory(estimate, load_device)
        pbar = _env.progress_bar(b)
        results = []
        try:
            _move(h, load_device)
            for i in range(b):
                _env.check_interrupt()
                x = tensors.image_to_bchw(image[i : i + 1]).to(load_device)
                m = masks[i : i + 1].unsqueeze(1).to(load_device)
                with torch.inference_mode():
                    y = h.harmonize_tensor(x, m, strength=strength, working_size=working_size or None)
                results.append(y.float().to(out_device))
                pbar.update(1)
        except _env.oom_exception() as e:
            raise RuntimeError(
                f"out of memory while harmonizing on {load_device}: lower working_size, use smaller images, "
                f"or load the model with device='cpu' ({e})"
            ) from e
        finally:
            if offload_device is not None and str(offload_device) != str(load_device):
                _move(h, offload_device)
            _env.soft_empty_cache()
        return (tensors.bchw_to_image(torch.cat(results, 0)),)
