"""Paste a (masked) subject onto a background -> composite IMAGE + its MASK, ready to harmonize."""

from __future__ import annotations

import logging

import comfy.utils
import torch

from .masks import MASK_AS_GIVEN, check_alpha, check_image, check_mask, clamped, one_per_mask, prepared

NODE = "PHNet Paste Subject"
log = logging.getLogger("comfyui-phnet")
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
                               "Segment'. Without it an RGBA subject's alpha is the mask, and an RGB one is pasted "
                               "whole, as a rectangle. It has the "
                               "subject image's size (a mask of its shape at another size, made before the picture "
                               "was scaled up or down, is resized to it; crop a mask with CropMask when you crop the "
                               "picture). LoadImage's MASK of an RGBA cut-out is 1 where it is "
                               "transparent: put an InvertMask in between.",
                }),
                "mask_as_given": MASK_AS_GIVEN,
            },
        }

    def paste(self, background, subject, x=0, y=0, scale=1.0, anchor="top-left", subject_mask=None,
              mask_as_given=False):
        from ..phnet.compositing import faint_subject, over_background, paste_subject
        from ..phnet.imageio import mask_to_tensor
        from ..phnet.compat import widened
        from ..phnet.imageio.images import integer_peak

        check_image(background, NODE, "background")
        check_image(subject, NODE, "subject")
        background, notes = clamped(background, "background")  # an upscaled picture's overshoot, as in Harmonize
        subject, note = clamped(subject, "subject")
        notes += note
        masks, subjects = None, subject.shape[0]
        if subject_mask is not None:
            subject_mask, note = prepared(subject_mask, subject, "subject_mask",  # a subject upscaled after SAM
                                          lambda m: check_mask(m, subject, "subject_mask", NODE, whole_ok=True,
                                                               as_given=bool(mask_as_given)))
            notes += note
            subject = one_per_mask(subject, subject_mask)  # several subjects cut from one picture: one paste each
            try:
                masks = mask_to_tensor(subject_mask, subject.shape[0], subject.shape[1], subject.shape[2],
                                       "subject_mask")[:, 0]
            except ValueError as e:  # counts that do not pair up: the node names itself, as its other checks do
                raise ValueError(f"{NODE}: {e}") from None
        n = max(background.shape[0], subject.shape[0])
        if min(background.shape[0], subject.shape[0]) not in (1, n):
            raise ValueError(
                f"{NODE}: a batch of {background.shape[0]} backgrounds and {subject.shape[0]} subjects"
                f"{' (one per subject_mask)' if subject.shape[0] != subjects else ''}; give one of them, or the same "
                "number of both"
            )
        if masks is not None or subject.shape[-1] == 4:  # a subject's mask is its alpha unless subject_mask is given
            alpha = masks if masks is not None else subject[..., 3]
            peak = 1.0 if alpha.is_floating_point() else integer_peak(subject.dtype) or 1.0
            strongest = float(widened(alpha).amax()) / peak
            which, its = ("every subject", "the") if subject.shape[0] > 1 else ("the subject", "its")
            what, fix = (("subject_mask value", "a subject_mask that is white on the subject") if masks is not None
                         else ("alpha", "a cut-out whose subject is opaque"))
            faint = faint_subject(strongest, what, its)  # (the batch as a whole: a clip's subject may fade out)
            if faint:
                raise ValueError(f"{NODE}: {which} is {faint}: connect {fix}.")
            if masks is None:  # (subject_mask had check_mask's inverted-mask check)
                check_alpha(widened(alpha) / peak, NODE, as_given=bool(mask_as_given))
        if notes:
            log.info("comfyui-phnet: %s%s", NODE, notes)
        bar = comfy.utils.ProgressBar(n)
        comps, outs = [], []
        for i in range(n):
            try:
                comp, m = paste_subject(
                    background[min(i, background.shape[0] - 1)],
                    subject[min(i, subject.shape[0] - 1)],
                    masks[min(i, masks.shape[0] - 1)] if masks is not None else None,
                    x=int(x), y=int(y), scale=float(scale), anchor=anchor, allow_empty=True,  # judged for the batch
                )
            except ValueError as e:  # (a subject placed off the background): the node names itself, as elsewhere
                raise ValueError(f"{NODE}: {e}") from None
            comp, m = torch.from_numpy(comp), torch.from_numpy(m)
            if background.shape[-1] == 4:  # an RGBA background: the subject laid over it, keeping its alpha
                comp = over_background(comp, m, background[min(i, background.shape[0] - 1)])
            comps.append(comp)
            outs.append(m)
            bar.update_absolute(i + 1, n)
        if all(not bool((m > 0).any()) for m in outs):
            if subject_mask is None and subject.shape[-1] == 4 and not strongest > 0:  # (the alpha's, above)
                raise ValueError(f"{NODE}: the subject's alpha is transparent everywhere, so there is nothing to paste: "
                                 "connect a cut-out whose subject is opaque, or a subject_mask that marks it.")
            raise ValueError(
                f"{NODE}: no opaque part of the subject lands on the background (the part inside it is transparent"
                f"{' in subject_mask' if subject_mask is not None else ''}), so the composite has no subject: move "
                "x/y so the subject's visible part overlaps the background, or check subject_mask.")
        return (torch.stack(comps).to(background.device), torch.stack(outs).to(background.device))
