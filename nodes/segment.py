"""SAM segmentation: IMAGE + PHNET_SAM (or another pack's SAM_MODEL) + prompts
(box, points, or a guide MASK) -> MASK."""

from __future__ import annotations

import json
import logging
import math
import re

import comfy.model_management as mm
import comfy.utils
import torch

from .loaders import SAM_TYPE, PHNetSAM
from .masks import MASK_AS_GIVEN, check_image, check_mask_size, clamped, mask_count, one_per_mask, prepared

log = logging.getLogger("comfyui-phnet")

_NUM = r"(?<![\d.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # a sign right after a number is a typo, not minus


def parse_points(text: str | None, name: str = "points") -> list[tuple[float, float]]:
    """Parse pixel coordinates: ``"x,y; x,y"`` (also newlines, spaces), ``[[x,y], ...]`` or
    ``[{"x": .., "y": ..}, ...]`` (the JSON some point-editor nodes emit)."""
    text = (text or "").strip().rstrip(";,\n\t ")  # a trailing separator, as "x,y; x,y;" is read
    if not text:
        return []
    data = None
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:  # "[10,20]; [30,40]": the x,y list below reads it
            if text[0] == "{":
                data = _json_objects(text, name)
    if data is not None:
        if isinstance(data, dict) or (isinstance(data, list) and len(data) == 2
                                      and all(isinstance(v, (int, float)) for v in data)):
            data = [data]  # one point: {"x": .., "y": ..} or [x, y]
        out = []
        for p in data:
            try:
                if isinstance(p, dict) and "x" in p and "y" in p:
                    out.append((_coordinate(p["x"]), _coordinate(p["y"])))
                    continue
                if isinstance(p, (list, tuple)) and len(p) == 2:
                    out.append((_coordinate(p[0]), _coordinate(p[1])))
                    continue
            except (TypeError, ValueError):
                pass
            raise ValueError(f"{name}: each point must be [x, y] or {{'x':..,'y':..}} with finite numbers, got {p!r}")
        return out
    out = []
    for chunk in re.split(r"[;\n]+|(?<=[\])])\s*,\s*(?=[\[(])", text):  # "x,y; x,y", "[x,y],[x,y]"
        chunk = chunk.strip().strip("()[]")
        if not chunk:
            continue
        nums = re.findall(_NUM, chunk)
        if len(nums) != 2 or re.sub(_NUM, "", chunk).strip(" ,\t") != "":
            raise ValueError(f"{name}: {chunk!r} is not a point; write pixel coordinates as 'x,y; x,y'")
        if not all(math.isfinite(float(n)) for n in nums):
            raise ValueError(f"{name}: {chunk!r} holds a number too large to be a pixel coordinate; write pixel "
                             "coordinates as 'x,y; x,y'")
        out.append((float(nums[0]), float(nums[1])))
    return out


def _coordinate(value) -> float:
    """A JSON point's x or y: a finite number (JSON's true, NaN and Infinity are none), or its text."""
    if isinstance(value, bool):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _json_objects(text: str, name: str) -> list:
    """``{"x":1,"y":2}; {"x":3,"y":4}``: JSON objects one after another (a point editor's lines)."""
    try:
        return [json.loads(part) for part in re.split(r"(?<=})\s*[;,\n]?\s*(?={)", text)]
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: could not read {text!r} as JSON ({e}); write points as 'x,y; x,y'") from None


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """Parse ``"x0,y0,x1,y1"`` (pixels, any order of corners) or a JSON list of 4 numbers."""
    text = (text or "").strip()
    if not text:
        return None
    nums = re.findall(_NUM, text)
    if len(nums) != 4 or re.sub(_NUM, "", text).strip(" ,;\t[]()") != "":
        raise ValueError(f"box: {text!r} is not a box; write it as 'x0,y0,x1,y1' in pixels")
    x0, y0, x1, y1 = (float(n) for n in nums)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 - x0 < 1 or y1 - y0 < 1:
        if 0 <= x0 and 0 <= y0 and x1 <= 1 and y1 <= 1:
            raise ValueError(f"box: {text!r} has no area in pixels; these look like fractions of the image (0..1): "
                             "the box is in pixels, so multiply them by the image's width and height")
        raise ValueError(f"box: {text!r} has no area; give two opposite corners 'x0,y0,x1,y1'")
    return (x0, y0, x1, y1)


def as_phnet_sam(sam_model):
    """Our PHNET_SAM, or a plain ``segment_anything`` Sam (the SAM_MODEL of Impact Pack's and
    comfyui_segment_anything's loaders) wrapped for this run: it works on ComfyUI's compute device and goes
    back to the device it came on."""
    if isinstance(sam_model, PHNetSAM):
        return sam_model
    foreign = _not_segment_anything(sam_model)
    if foreign is None:
        from ..phnet.sam import SamSegmenter

        # Impact Pack parks its SAM on the CPU between its own runs: this run takes it to the compute
        # device like our own loader's SAM, and puts it back where it was.
        first = next(sam_model.parameters())
        if first.dtype != torch.float32:  # as SamSegmenter refuses it, in the words of a ComfyUI graph
            raise ValueError(f"sam_model holds {str(first.dtype).removeprefix('torch.')} weights; PHNet SAM Segment "
                             "runs SAM in fp32: load it in fp32 in its loader, or use 'PHNet SAM Loader'")
        return PHNetSAM(SamSegmenter(sam_model, device=first.device), mm.get_torch_device(), first.device)
    raise ValueError(
        f"sam_model is not Meta's Segment Anything: {foreign} (a SAM variant such as SAM-HQ or MobileSAM?), which "
        "PHNet SAM Segment cannot use: load a Segment Anything checkpoint with 'PHNet SAM Loader', or connect "
        "Impact Pack's or comfyui_segment_anything's plain SAM"
    )


def _not_segment_anything(model) -> str | None:
    """None for Meta's own ``segment_anything`` Sam with its own parts, else what is not. comfyui_segment_anything
    builds SAM-HQ (and MobileSAM) as that same Sam class around an encoder and a decoder of its own, which the
    predictor cannot use (SAM-HQ's encoder returns a tuple)."""
    try:
        from segment_anything.modeling import Sam
    except ImportError:
        return "segment_anything is not installed"
    if not isinstance(model, Sam):
        return f"it is a {type(model).__name__} from {type(model).__module__}"
    for name in ("image_encoder", "prompt_encoder", "mask_decoder"):
        kind = type(getattr(model, name, None))
        if not kind.__module__.startswith("segment_anything."):
            return f"its {name} is a {kind.__name__} from {kind.__module__}"
    return None


class PHNetSAMSegment:
    DESCRIPTION = (
        "Segments the subject with Segment Anything. Prompt with a box, with positive/negative points, or "
        "with a guide mask whose bounding box becomes the box prompt (any MASK works, e.g. a rough hand-drawn "
        "one or the output of another segmentation node). Each image of a batch is segmented on its own."
    )
    CATEGORY = "PHNet/masking"
    FUNCTION = "segment"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("Subject mask [B,H,W] (1 = subject), same size as the image.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sam_model": (f"{SAM_TYPE},SAM_MODEL", {
                    "tooltip": "SAM model from 'PHNet SAM Loader' (the SAM_MODEL of Impact Pack's or "
                               "comfyui_segment_anything's loaders works too).",
                }),
                "image": ("IMAGE", {"tooltip": "Image(s) to segment."}),
                "box": ("STRING", {
                    "default": "",
                    "tooltip": "Box prompt in pixels 'x0,y0,x1,y1'. Leave empty to use guide_mask or points only.",
                }),
                "positive_points": ("STRING", {
                    "default": "",
                    "multiline": False,
                    "tooltip": "Points on the subject in pixels: 'x,y; x,y' (JSON [[x,y],...] also accepted).",
                }),
                "negative_points": ("STRING", {
                    "default": "",
                    "multiline": False,
                    "tooltip": "Points that are NOT the subject (background), same format as positive_points.",
                }),
                "multimask": ("BOOLEAN", {
                    "default": False,
                    "label_on": "best of 3",
                    "label_off": "single",
                    "tooltip": "Let SAM propose 3 masks and keep the one it scores best (better for single "
                               "points); 'single' asks for one mask (often better for boxes).",
                }),
                "threshold": ("FLOAT", {
                    "default": 0.0, "min": -10.0, "max": 10.0, "step": 0.1,
                    "tooltip": "SAM's mask threshold, in logits (not PHNet Harmonize's do-no-harm threshold): a pixel "
                               "is in the mask where SAM's logit for it is above this. 0 = SAM's own cut-off "
                               "(probability 0.5); 2 is about 0.88, -2 about 0.12. Higher makes the mask tighter, "
                               "lower makes it larger.",
                }),
                "grow": ("INT", {
                    "default": 0, "min": -64, "max": 64, "step": 1,
                    "tooltip": "Grow (positive) or shrink (negative) the mask by this many pixels.",
                }),
                "feather": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 64.0, "step": 0.5,
                    "tooltip": "Soften the mask edge: the sigma in pixels of a Gaussian blur, which spreads the edge "
                               "over about 3x that on each side (0 = hard edge).",
                }),
            },
            "optional": {
                "guide_mask": ("MASK", {
                    "tooltip": "Optional rough mask; its bounding box is used as the box prompt (per image; one "
                               "mask is shared by the whole batch). Where it is empty, that image's mask is empty (no "
                               "subject there), whatever the points say.",
                }),
                "mask_as_given": (MASK_AS_GIVEN[0], {
                    **MASK_AS_GIVEN[1],
                    "tooltip": "Use a guide_mask that looks inverted as it is, e.g. two subjects at the picture's "
                               "sides with the scene between them, whose box spans them both (off: such a guide is "
                               "refused, to be put through InvertMask).",
                }),
            },
        }

    def segment(self, sam_model, image, box="", positive_points="", negative_points="", multimask=False,
                threshold=0.0, grow=0, feather=0.0, guide_mask=None, mask_as_given=False):
        from ..phnet.sam.batch import plan_batch

        sam = as_phnet_sam(sam_model)
        check_image(image, "PHNet SAM Segment")
        image, notes = clamped(image, "image")  # an upscaled picture's overshoot, as in Harmonize
        box_px = parse_box(box)
        pos = parse_points(positive_points, "positive_points")
        neg = parse_points(negative_points, "negative_points")
        guides, item, count = None, "image", 1
        if guide_mask is not None and box_px is None:  # the box widget wins: a guide would only copy the image
            image, guides, item, count, note = _guides(image, guide_mask)
            notes += note
        if notes:
            log.info("comfyui-phnet: PHNet SAM Segment%s", notes)
        if box_px is not None and guide_mask is not None:
            log.warning("comfyui-phnet: both 'box' and guide_mask are given; the box widget is used")
        b, h, w = image.shape[0], image.shape[1], image.shape[2]
        try:  # a prompt outside the image, or an image SAM cannot encode, is refused before SAM moves or encodes
            plan = plan_batch(sam.segmenter.model, (h, w), b, box=box_px, positive=pos, negative=neg, guides=guides,
                              guides_as_given=mask_as_given, multimask=bool(multimask), threshold=float(threshold),
                              grow=int(grow), feather=float(feather))
        except ValueError as e:
            raise _refusal(e, f" ({item} {getattr(e, 'index', 0)} of the batch)" if count > 1 else "") from None
        out = torch.zeros(b, h, w)
        try:
            with sam.on_device() as segmenter:
                progress = _Progress(segmenter.model, b)
                for picture in plan.run(segmenter, image, interrupt=progress.step):
                    _say(picture, item, int(grow), float(feather))
                    out[picture.index] = torch.from_numpy(picture.mask)
                    progress.picture_done(picture.index)
        except ValueError as e:  # the library's refusal of the image's values (NaN, 0..255) names no node
            raise ValueError(f"PHNet SAM Segment: {e}") from None
        return (out.to(image.device),)


class _Progress:
    """ComfyUI's progress bar and Cancel: a step at each of the encoder's interrupt points (each block's attention
    and MLP, each head of a global attention) and one for the prompt, per image. The encode is most of the time
    (~50 s for a ViT-B on a 2-core CPU), and Cancel is checked at each step."""

    def __init__(self, model, pictures: int):
        from ..phnet.sam.predictor import interrupt_points

        self.steps = interrupt_points(model) + 1
        self.total = pictures * self.steps
        self.bar, self.done = comfy.utils.ProgressBar(self.total), 0

    def step(self) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.done += 1
        self.bar.update_absolute(min(self.done, self.total), self.total)

    def picture_done(self, index: int) -> None:
        self.done = (index + 1) * self.steps
        self.bar.update_absolute(self.done, self.total)


def _guides(image, guide_mask):
    """The image (one copy per guide where one picture has several), its guides as B x H x W, the word for one of
    them ("mask" for one picture's several guides), how many guides were given, and the clamping note."""
    from ..phnet.imageio import mask_to_tensor

    guide_mask, note = prepared(guide_mask, image, "guide_mask",  # only its box is used: its size is checked
                                lambda m: check_mask_size(m, image, "guide_mask", "PHNet SAM Segment"))
    count = mask_count(guide_mask, image) or 1
    item = "mask" if image.shape[0] == 1 and count > 1 else "image"  # one picture, several guides: a mask each
    image = one_per_mask(image, guide_mask)  # several guides for one image: one mask per guide
    try:
        guides = mask_to_tensor(guide_mask, image.shape[0], image.shape[1], image.shape[2], "guide_mask")[:, 0]
    except ValueError as e:
        raise ValueError(f"PHNet SAM Segment: {e}") from None
    return image, guides, item, count, note


_POINTS = {"positive": "'positive_points': ", "negative": "'negative_points': "}


def _refusal(error: ValueError, which: str) -> ValueError:
    """The library's refusal in this node's words: its inputs' names, and ``which`` guide of the batch."""
    from ..phnet.sam.batch import GuideLooksInverted, NoPrompt, PromptRefused

    if isinstance(error, GuideLooksInverted):
        return ValueError(
            f"PHNet SAM Segment: 'guide_mask'{which} covers most of the picture and of its border, so it looks "
            "inverted and its box would be the whole picture: put an InvertMask node in front of guide_mask (Load "
            "Image's MASK is 1 where a PNG is transparent), or, if it is right (subjects at the picture's sides with "
            "the scene between them), turn on mask_as_given")
    if isinstance(error, NoPrompt):
        return ValueError(
            "PHNet SAM Segment needs a prompt: fill in 'box' (x0,y0,x1,y1) or 'positive_points' (x,y; x,y), "
            "or connect a guide_mask" + (" (negative points alone do not say where the subject is)"
                                         if error.background_only else ""))
    if isinstance(error, PromptRefused):
        return ValueError(f"PHNet SAM Segment: {_POINTS.get(error.points, '')}{error}")
    return ValueError(f"PHNet SAM Segment: {error}")


def _say(picture, item: str, grow: int, feather: float) -> None:
    """Why a picture's mask came out empty or too faint, said here: Harmonize, next, can only guess why."""
    from ..phnet.sam.batch import Outcome

    i = picture.index
    if picture.outcome == Outcome.NO_GUIDE:
        log.warning("comfyui-phnet: guide_mask is empty (or under 1/64 of the batch's strongest) for %s "
                    "%d of the batch; its mask is empty", item, i)
    elif picture.outcome == Outcome.FOUND_NOTHING:
        log.warning("comfyui-phnet: PHNet SAM Segment found nothing for %s %d of the batch: check "
                    "its box or points, or lower its threshold (SAM's, in logits)", item, i)
    elif picture.outcome == Outcome.GROWN_AWAY:
        log.warning("comfyui-phnet: PHNet SAM Segment: grow %d shrank %s %d's mask to nothing: "
                    "raise grow toward 0", grow, item, i)
    elif picture.outcome == Outcome.TOO_THIN:  # else Harmonize blames a 16-bit mask
        log.warning("comfyui-phnet: PHNet SAM Segment: feather %g spread %s %d's mask too thin to mark "
                    "a subject (its strongest value is %.2f%% of full): lower feather%s",
                    feather, item, i, 100 * float(picture.mask.max()), ", or raise grow toward 0" if grow < 0 else "")
