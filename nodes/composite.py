"""Paste a (masked) subject onto a background -> composite IMAGE + its MASK, ready to harmonize."""

from __future__ import annotations

import comfy.utils
import torch

from .masks import check_mask, clamped

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
                               "Segment'. Without it the whole subject image is pasted as a rectangle. It must be "
                               "the subject image's size. LoadImage's MASK of an RGBA cut-out is 1 where it is "
                               "transparent: put an InvertMask in between.",
                }),
            },
        }

    def paste(self, background, subject, x=0, y=0, scale=1.0, anchor="top-left", subject_mask=None):
        from ..phnet.compositing import paste_subject
        from ..phnet.imageio import mask_to_tensor

        n = max(background.shape[0], subject.shape[0])
        if min(background.shape[0], subject.shape[0]) not in (1, n):
            raise ValueError(
                f"PHNet Paste Subject: a batch of {background.shape[0]} backgrounds and {subject.shape[0]} subjects; "
                "give one of them, or the same number of both"
            )
        masks = None
        if subject_mask is not None:
            check_mask(subject_mask, subject, "subject_mask", "PHNet Paste Subject", whole_ok=True)
            subject_mask, _ = clamped(subject_mask, "subject_mask")  # an upscaled mask's overshoot
            masks = mask_to_tensor(subject_mask, subject.shape[0], subject.shape[1], subject.shape[2])[:, 0]
        bar = comfy.utils.ProgressBar(n)
        comps, outs = [], []
        for i in range(n):
            comp, m = paste_subject(
                background[min(i, background.shape[0] - 1)],
                subject[min(i, subject.shape[0] - 1)],
                masks[min(i, masks.shape[0] - 1)] if masks is not None else None,
                x=int(x), y=int(y), scale=float(scale), anchor=anchor,
            )
            comps.append(torch.from_numpy(comp))
            outs.append(torch.from_numpy(m))
            bar.update_absolute(i + 1, n)
        return (torch.stack(comps).to(background.device), torch.stack(outs).to(background.device))
