"""Paste a (masked) subject onto a background -> composite IMAGE + its MASK, ready to harmonize."""

from __future__ import annotations

import logging

import comfy.utils

from .masks import MASK_AS_GIVEN, check_image, check_mask, clamped, one_per_mask, prepared

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
        from ..phnet.compositing import plan_paste

        check_image(background, NODE, "background")
        check_image(subject, NODE, "subject")
        background, notes = clamped(background, "background")  # an upscaled picture's overshoot, as in Harmonize
        subject, note = clamped(subject, "subject")
        notes += note
        subjects = subject.shape[0]
        if subject_mask is not None:
            subject_mask, note = prepared(subject_mask, subject, "subject_mask",  # a subject upscaled after SAM
                                          lambda m: check_mask(m, subject, "subject_mask", NODE, whole_ok=True,
                                                               as_given=bool(mask_as_given)))
            notes += note
            subject = one_per_mask(subject, subject_mask)  # several subjects cut from one picture: one paste each
        try:
            batch = plan_paste(background, subject, subject_mask, alpha_as_given=bool(mask_as_given))
        except ValueError as e:
            raise _refusal(e, per_mask=subject.shape[0] != subjects) from None
        if notes:
            log.info("comfyui-phnet: %s%s", NODE, notes)
        bar = comfy.utils.ProgressBar(batch.count)
        try:
            return batch.paste(int(x), int(y), float(scale), anchor, progress=bar.update_absolute)
        except ValueError as e:
            raise _refusal(e) from None


def _refusal(error: ValueError, per_mask: bool = False) -> ValueError:
    """The library's refusal in this node's words: its inputs' names, the nodes that fix it, and whether the
    subjects were made one per subject_mask."""
    from ..phnet.compositing import AlphaLooksInverted, BatchesDiffer, FaintSubject, TransparentSubject

    if isinstance(error, BatchesDiffer):
        return ValueError(f"{NODE}: a batch of {error.backgrounds} backgrounds and {error.subjects} subjects"
                          f"{' (one per subject_mask)' if per_mask else ''}; give one of them, or the same number of "
                          "both")
    if isinstance(error, FaintSubject):
        fix = "a subject_mask that is white on the subject" if error.masked else "a cut-out whose subject is opaque"
        return ValueError(f"{NODE}: {error.whom} is {error.words}: connect {fix}")
    if isinstance(error, AlphaLooksInverted) and error.masked:
        which = f" (subject {error.index} of the batch)" if error.several else ""
        return ValueError(
            f"{NODE}: 'subject_mask'{which} covers {error.area:.0%} of the picture and {error.border:.0%} of its "
            "border, so it looks inverted: 1 (white) must mark the subject, 0 (black) the background. Put an "
            "InvertMask node in front of subject_mask, or, if it is right (subjects at the picture's sides with the "
            "scene between them), turn on mask_as_given")
    if isinstance(error, AlphaLooksInverted):
        which = f" (subject {error.index} of the batch)" if error.several else ""
        return ValueError(
            f"{NODE}: the subject's alpha{which} covers {error.area:.0%} of the picture and {error.border:.0%} of its "
            "border, so it looks inverted: the subject must be opaque, its surroundings transparent. The usual cause: "
            "JoinImageWithAlpha stores 1 - its alpha input, so put an InvertMask node in front of its alpha input "
            "(or connect the subject's mask to subject_mask); if it is right (subjects at the picture's sides with "
            "the scene between them), turn on mask_as_given")
    if isinstance(error, TransparentSubject):
        return ValueError(f"{NODE}: the subject's alpha is transparent everywhere, so there is nothing to paste: "
                          "connect a cut-out whose subject is opaque, or a subject_mask that marks it")
    return ValueError(f"{NODE}: {error}")  # the library's own words, naming the node as its other checks do
