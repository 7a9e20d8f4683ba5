"""Paste a (masked) subject onto a background -> composite IMAGE + its MASK, ready to harmonize."""

from __future__ import annotations

from . import _env, tensors

ANCHORS = ["top-left", "center", "bottom-center"]  # = phnet.compositing.ANCHORS


class PHNetPasteSubject:
    DESCRIPTION = (
        "Pastes the subject (cut out by subject_mask, e.g. from 'PHNet SAM Segment') onto the background at "
        "(x, y), scaled by 'scale'. Parts outside the background are clipped. Outputs the composite and the mask "
        "of the pasted subject in background coordinates, which is what 'PHNet Harmonize' needs."
    )
    CATEGORY = "PHNet/compositing"
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("composite", "mask")
    OUTPUT_TOOLTIPS = (
        "Background with the subject pasted on it (background size).",
        "Where the subject is in the composite (1 = subject), background size.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "background": ("IMAGE", {"tooltip": "Background image(s); the composite has this size."}),
                "subject": ("IMAGE", {"tooltip": "Image that contains the subject to paste."}),
                "x": ("INT", {
                    "default": 0, "min": -16384, "max": 16384, "step": 1,
                    "tooltip": "Horizontal position in background pixels of the anchor point of the pasted subject.",
                }),
                "y": ("INT", {
                    "default": 0, "min": -16384, "max": 16384, "step": 1,
                    "tooltip": "Vertical position in background pixels of the anchor point of the pasted subject.",
                }),
                "scale": ("FLOAT", {
                    "default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01,
                    "tooltip": "Resize the subject image (and its mask) by this factor before pasting.",
                }),
                "anchor": (ANCHORS, {
                    "default": "top-left",
                    "tooltip": "Which point of the (scaled) subject image lands on (x, y): its top-left corner, "
                               "its centre, or the middle of its bottom edge (feet on the floor).",
                }),
            },
            "optional": {
                "subject_mask": ("MASK", {
                    "tooltip": "Mask of the subject inside the subject image (1 = keep), e.g. from 'PHNet SAM "
                               "Segment'. Without it the whole subject image is pasted as a rectangle. Resized to "
                               "the subject image if needed. LoadImage's MASK of an RGBA cut-out is 1 where it is "
                               "transparent: put an InvertMask in between.",
                }),
            },
        }

    def paste(self, background, subject, x=0, y=0, scale=1.0, anchor="top-left", subject_mask=None):
        import numpy as np

        paste_subject = _env.phnet_module("compositing").paste_subject
        bg = tensors.as_image(background, "background")
        sub = tensors.as_image(subject, "subject")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        bg, sub = tensors.broadcast_pair(bg, sub, "background", "subject")
        masks = tensors.mask_for_image(subject_mask, sub, "subject_mask") if subject_mask is not None else None
        n = bg.shape[0]
        pbar = _env.progress_bar(n)
        comps, outs = [], []
        for i in range(n):
            _env.check_interrupt()
            comp, m = paste_subject(
                tensors.image_to_numpy(bg[i]),
                tensors.image_to_numpy(sub[i]),
                masks[i].cpu().numpy() if masks is not None else None,
                x=int(x), y=int(y), scale=float(scale), anchor=anchor,
            )
            comps.append(np.asarray(comp, dtype=np.float32))
            outs.append(np.asarray(m, dtype=np.float32))
            pbar.update(1)
        dev = _env.intermediate_device()
        image = tensors.numpy_to_tensor(np.stack(comps, 0), dev).clamp(0.0, 1.0)
        mask = tensors.numpy_to_tensor(np.stack(outs, 0), dev).clamp(0.0, 1.0)
        return (image, mask)
