"""PHNet Harmonize: PHNET_MODEL + IMAGE + MASK -> IMAGE, one call into ``phnet.Harmonizer``."""

from __future__ import annotations

import comfy.utils

from .masks import check_mask


class PHNetHarmonize:
    DESCRIPTION = (
        "Harmonizes the colours and lighting of the masked subject (mask = 1) to match the rest of the image "
        "with PHNet. Pixels outside the mask are returned unchanged. The network runs at its working resolution "
        "and the correction is applied at full resolution. A single mask is shared by a whole batch; the mask "
        "must have the image's size."
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
                    "tooltip": "Foreground mask (1 = pasted subject to adjust, 0 = background to keep), the size "
                               "of the image. Load Image's mask is 1 where the PNG is transparent: invert it "
                               "first (a mask that looks inverted is refused).",
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
        check_mask(mask, image, "mask", "PHNet Harmonize")
        bar = comfy.utils.ProgressBar(image.shape[0])  # its hook also raises when the user presses Cancel
        out = phnet_model(image, mask, strength=strength, working_size=working_size or None, layout="BHWC",
                          progress=lambda done, total: bar.update_absolute(done, total))
        return (out,)
