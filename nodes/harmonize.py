"""PHNet Harmonize and PHNet Harmonize Frames: PHNET_MODEL + IMAGE + MASK -> IMAGE, one call into
``phnet.Harmonizer``."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch

from .loaders import make_room, phnet_memory
from .masks import (MASK_AS_GIVEN, check_image, check_mask, check_mask_size, clamped, mask_count, one_per_mask,
                    plain_mask, prepared)


def _masks(node: str, image, mask, reference_mask, clip: bool = False, as_given: bool = False) -> tuple:
    """(mask, reference_mask, notes): both made ready for ``image`` (see ``masks.prepared``); ``clip``: the masks
    of a clip's frames, judged together; ``as_given``: a mask that looks inverted is used as it is."""
    check_image(image, node)
    mask, notes = prepared(mask, image, "mask",
                           lambda m: check_mask(m, image, "mask", node, clip=clip, as_given=as_given))
    reference_mask, note = prepared(reference_mask, image, "reference_mask",
                                    lambda m: check_mask_size(m, image, "reference_mask", node))
    return mask, reference_mask, notes + note


def _check_counts(node: str, image, unit: str, why: str = "", **masks) -> None:
    """Each of ``masks`` holds one mask or one per ``unit`` of ``image`` (an image, a frame, or a mask of one
    image), said here with the node's and the input's names, which the library's check does not know."""
    n = image.shape[0]
    for name, mask in masks.items():
        count = mask_count(mask, image) if plain_mask(mask) is not None else None
        if count not in (None, 1, n):
            kind = "reference mask" if name == "reference_mask" else "mask"
            raise ValueError(f"{node}: '{name}' holds {count} {kind}s for {n} {unit}{'s' if n != 1 else ''}{why}: "
                             f"give one {kind}, or one per {unit}")


def _run(node: str, phnet_model, image, bar, notes: str, **options) -> dict:
    """The library call, and its report (with ``notes`` on the inputs) as a STRING output and as text on the
    node."""
    from ..phnet.corrections import OFFICIAL_HINT, report, weights_hint
    from ..phnet.imageio.images import integer_peak

    threshold = options.pop("threshold", -1.0)
    if isinstance(image, torch.Tensor) and not image.is_floating_point():
        peak = integer_peak(image.dtype)
        if peak is None:
            raise ValueError(f"{node}: 'image' holds {image.dtype} values; a ComfyUI IMAGE is float32 in 0..1: the "
                             "node that made it returns the wrong type")
        image = image.float() / peak  # a custom node's 8- or 16-bit IMAGE: the output is a ComfyUI IMAGE, 0..1
    image, note = clamped(image, "image")
    unit = "frames" if options.get("temporal") is not None else "images"
    notes = note + notes
    on_gpu = phnet_model.device.type != "cpu"
    if on_gpu:
        make_room(phnet_memory(phnet_model, image, options.get("working_size")), phnet_model.device)
    try:
        with phnet_model.interruptible(mm.throw_exception_if_processing_interrupted):  # Cancel within a call too
            result, corrections = phnet_model.harmonize(
                image, layout="BHWC", threshold=None if threshold < 0 else float(threshold),
                progress=lambda done, total: bar.update_absolute(done, total), **options,
            )
    except ValueError as e:  # the library's refusal (NaN, a 0..255 image, a picture too small) names no node
        raise ValueError(f"{node}: {e}") from None
    finally:
        if on_gpu:  # the activations' memory back to the diffusion model that comes next
            mm.soft_empty_cache()
    result = result.float().contiguous()  # an fp16/bf16 IMAGE came back as it went in; SaveImage cannot write bf16
    hint = weights_hint(phnet_model.config.name, f"PHNet Model Loader: {OFFICIAL_HINT}")
    line = node + ": " + report(corrections, "threshold 0", hint, unit) + notes
    return {"ui": {"text": [line]}, "result": (result, line)}


REFERENCE_TOOLTIP = (
    "Optional: the part of the background the subject should match (1 = match this region, e.g. the lit side "
    "of the room or the person next to the subject). Same size as the image; one mask or one per image. "
    "Leave it unconnected to match the whole background (of an RGBA image, the part its alpha shows)."
)


def _inputs(image_tooltip: str, masks_taken: str) -> dict:
    return {
        "phnet_model": ("PHNET_MODEL", {"tooltip": "PHNet model from 'PHNet Model Loader'."}),
        "image": ("IMAGE", {"tooltip": image_tooltip}),
        "mask": ("MASK", {
            "tooltip": "Foreground mask (1 = pasted subject to adjust, 0 = background to keep), the size "
                       f"of the image; {masks_taken}. Load Image's mask is 1 where the PNG is transparent: "
                       "invert it first (a mask that looks inverted is refused, unless mask_as_given is on).",
        }),
    }


STRENGTH = ("FLOAT", {
    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "display": "slider",
    "tooltip": "How much of the correction to apply: 0 = unchanged composite, 1 = full PHNet result.",
})
THRESHOLD = ("FLOAT", {
    "default": -1.0, "min": -1.0, "max": 255.0, "step": 0.5,
    "tooltip": "Do-no-harm threshold, in 8-bit levels (the RMS change of the subject on 0-255; not SAM's mask "
               "threshold): corrections smaller than it are dropped (the "
               "bundled weights keep part of them), those just above it shortened. -1 = the weights' own ("
               "calibrated for the bundled weights, 0 for the official ones). Lower it to apply more "
               "of each correction (0 = the raw network, which may harm near-right composites); raise it to hold "
               "back all but large ones. The 'report' output says what happened.",
})
REPORT_TOOLTIP = ("One line per run: how much each subject changed, and when the do-no-harm threshold held it back, "
                  "why and what to do. Also shown on the node.")
MASK_IS_ALPHA = ("BOOLEAN", {
    "default": False,
    "tooltip": "On: the subject was pasted with this mask as its alpha, as PHNet Paste Subject's composite and mask "
               "are (turn it on after Paste Subject), so its soft edge, part background, gets the subject's whole "
               "change. Off: a soft edge is a feather, which blends the change by its value (a pasted subject's "
               "wide soft edge then gets about 0.8 of it). On a feathered mask it undoes the feather.",
})
WORKING_SIZE = ("INT", {
    "default": 0, "min": 0, "max": 4096, "step": 16,  # from 0 a step of 8 reached 8, which the network refuses
    "tooltip": "The network runs at about this size squared, the image's aspect ratio kept (sides in multiples of "
               "8); 0 = the resolution the weights were trained at. Lower it to save memory.",
})


class PHNetHarmonize:
    DESCRIPTION = (
        "Harmonizes the colours and lighting of the masked subject (mask = 1) to match the rest of the image "
        "with PHNet. Pixels outside the mask are returned unchanged. The network runs at its working resolution "
        "and the correction is applied at full resolution. A single mask is shared by a whole batch, and a single "
        "image is harmonized once for each mask of a batch. The mask has the image's size (a mask of its shape at "
        "another size, made before the image was scaled up or down, is resized to it; crop a mask with CropMask "
        "when you crop the image). An optional reference mask picks the part of the background to match."
    )
    CATEGORY = "PHNet"
    FUNCTION = "harmonize"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "report")
    OUTPUT_TOOLTIPS = ("The harmonized image(s), the input's size; one per image, or per mask for one image and a "
                       "batch of masks.", REPORT_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": _inputs("Composite image(s) to harmonize.",
                                "one mask for the batch or one per image (one image and a batch of masks: "
                                "the image is harmonized once per mask)"),
            "optional": {
                "strength": STRENGTH,
                "working_size": WORKING_SIZE,
                "reference_mask": ("MASK", {"tooltip": REFERENCE_TOOLTIP}),
                "threshold": THRESHOLD,
                "mask_as_given": MASK_AS_GIVEN,
                "mask_is_alpha": MASK_IS_ALPHA,
            },
        }

    def harmonize(self, phnet_model, image, mask, strength=1.0, working_size=0, reference_mask=None, threshold=-1.0,
                  mask_as_given=False, mask_is_alpha=False):
        mask, reference_mask, notes = _masks("PHNet Harmonize", image, mask, reference_mask,
                                             as_given=bool(mask_as_given))
        pictures = image.shape[0] if isinstance(image, torch.Tensor) and image.ndim == 4 else None
        image = one_per_mask(image, mask)
        if pictures == 1 and image.shape[0] > 1:
            _check_counts("PHNet Harmonize", image, "mask", " (the one image is harmonized once per mask)",
                          reference_mask=reference_mask)
        else:
            _check_counts("PHNet Harmonize", image, "image", mask=mask, reference_mask=reference_mask)
        bar = comfy.utils.ProgressBar(image.shape[0])  # its hook also raises when the user presses Cancel
        return _run("PHNet Harmonize", phnet_model, image, bar, notes, mask=mask, strength=strength,
                    working_size=working_size or None, reference_mask=reference_mask, threshold=threshold,
                    mask_is_alpha=bool(mask_is_alpha))


class PHNetHarmonizeFrames:
    DESCRIPTION = (
        "Harmonizes a batch of video frames (in time order) with steady colours: PHNet's correction is "
        "estimated for every frame, averaged over neighbouring frames, then applied, so the subject does not "
        "flicker when the per-frame estimate wobbles. A scene cut (the background changing abruptly) starts a "
        "new average, so one shot's colour never leaks into the next. Pixels outside the mask are unchanged."
    )
    CATEGORY = "PHNet"
    FUNCTION = "harmonize"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("frames", "report")
    OUTPUT_TOOLTIPS = ("The harmonized frames, same size and count as the input.", REPORT_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **_inputs("The frames of a clip as one image batch, in time order (e.g. from a video loader).",
                          "one mask for every frame or one per frame"),
                "smoothing": ("FLOAT", {
                    "default": 3.0, "min": 0.0, "max": 100.0, "step": 0.5,
                    "tooltip": "The spread of the correction's average over frames (a Gaussian's σ: it reaches "
                               "about 3× this many frames on each side; with causal, the time constant of an "
                               "average of past frames); 0 = every frame on its own.",
                }),
                "cut_threshold": ("FLOAT", {
                    "default": 20.0, "min": 1.0, "max": 255.0, "step": 1.0,
                    "tooltip": "How much the background must change from one frame to the next (0-255, mean over "
                               "a 4x4 grid of background colours) to count as a scene cut. Lower it if a cut is "
                               "smeared, raise it if a fast pan is treated as a cut.",
                }),
                "causal": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Average past frames only (as a live stream would); off = frames on both sides, "
                               "no lag.",
                }),
            },
            "optional": {
                "strength": STRENGTH,
                "working_size": WORKING_SIZE,
                "reference_mask": ("MASK", {"tooltip": REFERENCE_TOOLTIP}),
                "threshold": THRESHOLD,
                "mask_as_given": MASK_AS_GIVEN,
                "mask_is_alpha": MASK_IS_ALPHA,
            },
        }

    def harmonize(self, phnet_model, image, mask, smoothing=3.0, cut_threshold=20.0, causal=False, strength=1.0,
                  working_size=0, reference_mask=None, threshold=-1.0, mask_as_given=False,
                  mask_is_alpha=False):
        from ..phnet.temporal import Temporal

        mask, reference_mask, notes = _masks("PHNet Harmonize Frames", image, mask, reference_mask, clip=True,
                                             as_given=bool(mask_as_given))
        _check_counts("PHNet Harmonize Frames", image, "frame", mask=mask, reference_mask=reference_mask)
        bar = comfy.utils.ProgressBar(2 * image.shape[0])  # estimate every frame, then apply
        try:
            temporal = Temporal(window=smoothing, causal=causal, cut_threshold=cut_threshold)
        except ValueError as e:  # a value linked in past the widget's limits
            raise ValueError(f"PHNet Harmonize Frames: {e}") from None
        return _run("PHNet Harmonize Frames", phnet_model, image, bar, notes, mask=mask, strength=strength,
                    working_size=working_size or None, temporal=temporal, reference_mask=reference_mask,
                    threshold=threshold, mask_is_alpha=bool(mask_is_alpha))
