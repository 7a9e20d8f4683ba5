#!/usr/bin/env python3
"""Generate the example workflows of the node pack in both ComfyUI formats from one description.

    python -m workflows.build            # (re)write example_workflows/*.json and workflows/api/*.json
    python -m workflows.build --check    # exit 1 if the files on disk differ from what would be written

* ``example_workflows/<name>.json``: UI (litegraph) format, what the template browser (Workflow ->
  Browse Templates -> comfyui-phnet) and drag-and-drop load. Model download hints live in
  ``properties.models``.
* ``workflows/api/<name>.api.json``: API ("prompt") format, what ``POST /prompt`` accepts.

Input order, socket types and widget order of our nodes are read from the pack itself (imported the
way ComfyUI imports it), those of ComfyUI core nodes from ``CORE_NODES`` below (checked against a
real ComfyUI's /object_info by tests/nodes and tests/comfyui_live), so the files cannot drift from the
node definitions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from examples import make_template_media as media  # where the template pictures put the subject
from workflows import comfy_standins

ROOT = Path(__file__).resolve().parents[1]

UI_DIR = ROOT / "example_workflows"
API_DIR = ROOT / "workflows" / "api"

PACK_ID = "comfyui-phnet"          # Comfy Registry id (pyproject [project].name)
PACK_VERSION = "0.1.0"
CORE_VERSION = "0.3.64"

SAM_VIT_B = {
    # A .safetensors, so the frontend's Missing Models list offers to download it: Meta's SAM ViT-B in the
    # transformers layout, which the SAM loader reads under any file name.
    "name": "sam-vit-base.safetensors",
    "url": "https://huggingface.co/facebook/sam-vit-base/resolve/main/model.safetensors",
    "directory": "sams",
}
SD15 = {
    "name": "v1-5-pruned-emaonly-fp16.safetensors",
    "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
           "v1-5-pruned-emaonly-fp16.safetensors?download=true",
    "directory": "checkpoints",
}

# ------------------------------------------------------------------------------------------------
# Core node specs (ComfyUI 0.3.64 nodes.py / comfy_extras): inputs in INPUT_TYPES order as
# (name, type, default); a list type is a combo; ``ui_extra`` = UI-only widget values inserted after
# the named widget (KSampler's control_after_generate, LoadImage's upload button).
# ------------------------------------------------------------------------------------------------
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

CORE_NODES: dict[str, dict] = {
    "LoadImage": {
        "inputs": [("image", "COMBO", None)],
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
        "ui_extra": {"image": "image"},
    },
    "LoadImageMask": {  # the frontend appends the upload button's value after the node's last widget
        "inputs": [("image", "COMBO", None), ("channel", "COMBO", "alpha")],
        "outputs": [("MASK", "MASK")],
        "ui_extra": {"channel": "image"},
    },
    "SaveImage": {
        "inputs": [("images", "IMAGE", None), ("filename_prefix", "STRING", "ComfyUI")],
        "outputs": [],
        "output_node": True,
    },
    "PreviewImage": {"inputs": [("images", "IMAGE", None)], "outputs": [], "output_node": True},
    # shows a STRING on the node (comfy_extras/nodes_preview_any.py): the Harmonize nodes' report
    "PreviewAny": {"inputs": [("source", "*", None)], "outputs": [], "output_node": True},
    "InvertMask": {"inputs": [("mask", "MASK", None)], "outputs": [("MASK", "MASK")]},
    "ImageBatch": {"inputs": [("image1", "IMAGE", None), ("image2", "IMAGE", None)], "outputs": [("IMAGE", "IMAGE")]},
    "CheckpointLoaderSimple": {
        "inputs": [("ckpt_name", "COMBO", None)],
        "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    },
    "CLIPTextEncode": {
        "inputs": [("text", "STRING", ""), ("clip", "CLIP", None)],
        "outputs": [("CONDITIONING", "CONDITIONING")],
    },
    "EmptyLatentImage": {
        "inputs": [("width", "INT", 512), ("height", "INT", 512), ("batch_size", "INT", 1)],
        "outputs": [("LATENT", "LATENT")],
    },
    "KSampler": {
        "inputs": [
            ("model", "MODEL", None), ("seed", "INT", 0), ("steps", "INT", 20), ("cfg", "FLOAT", 8.0),
            ("sampler_name", "COMBO", "euler"), ("scheduler", "COMBO", "normal"),
            ("positive", "CONDITIONING", None), ("negative", "CONDITIONING", None),
            ("latent_image", "LATENT", None), ("denoise", "FLOAT", 1.0),
        ],
        "outputs": [("LATENT", "LATENT")],
        "ui_extra": {"seed": "fixed"},
    },
    "VAEDecode": {"inputs": [("samples", "LATENT", None), ("vae", "VAE", None)], "outputs": [("IMAGE", "IMAGE")]},
}
UI_ONLY_NODES = {"Note"}  # frontend-only nodes: in the UI file, never in the API prompt


def load_pack():
    """Import the pack like ComfyUI does (package loaded from its __init__.py under a path-like name).

    Outside ComfyUI the host modules the nodes import (``folder_paths``, ``comfy.*``) are the stand-ins of
    :mod:`workflows.comfy_standins`, installed here first.
    """
    name = str(ROOT / "__init__.py").replace(".", "_x_") + "-build"
    if name in sys.modules:
        return sys.modules[name]
    if "folder_paths" not in sys.modules:
        import atexit
        import shutil
        import tempfile

        base = tempfile.mkdtemp(prefix="phnet-build-")
        atexit.register(shutil.rmtree, base, True)
        comfy_standins.install(base)
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def node_spec(class_type: str, pack=None) -> dict:
    """{"inputs": [(name, type, default)], "outputs": [(name, type)], "ui_extra": {}} for a node type."""
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]
    pack = pack or load_pack()
    cls = pack.NODE_CLASS_MAPPINGS[class_type]
    it = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for name, spec in it.get(section, {}).items():
            typ, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            inputs.append((name, "COMBO" if isinstance(typ, list) else typ, opts.get("default")))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return {
        "inputs": inputs,
        "outputs": list(zip(names, cls.RETURN_TYPES)),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }


# ------------------------------------------------------------------------------------------------
# Graph description
# ------------------------------------------------------------------------------------------------
@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)      # input name -> (source node id, output slot)
    title: str | None = None
    size: tuple[int, int] = (320, 110)
    models: list = field(default_factory=list)     # download hints (properties.models)


@dataclass
class Workflow:
    key: str           # short handle (thumbnails, tests)
    name: str          # file name; the frontend shows it as the card title and, dashes as spaces, as its description
    description: str
    nodes: list[Node]


def accepts(input_type: str, output_type: str) -> bool:
    """ComfyUI's rule for a link: an input declared "A,B" takes an output of type A or B; "*" takes any."""
    return input_type == "*" or output_type in {t.strip() for t in input_type.split(",")}


def _note(id_, pos, text, size=(420, 240)):
    return Node(id_, "Note", pos, widgets={"text": text}, size=size, title="Read me")


def _report(id_, pos, harmonize, size=(380, 200)):
    """The Harmonize node's report on the canvas: how much the subject changed, or why it did not."""
    return Node(id_, "PreviewAny", pos, links={"source": (harmonize, 1)}, size=size, title="Report")


PHNET_DEFAULT = {"model_name": "default (bundled)", "hub_repo_id": "", "device": "auto", "dtype": "auto"}
LOADER_TITLE = "Weights: pick official-ffhqh512 for full corrections"  # the switch, on the canvas
# wide enough for that title (346 px in 1.27's Arial drawn as DejaVu Sans, 329 px in 1.58's Inter; the room is
# 360 px): see clipped_titles
LOADER_SIZE = (420, 160)
SAM_FILE = {"model_name": SAM_VIT_B["name"], "hub_repo_id": "", "hub_filename": "", "model_type": "auto",
            "device": "auto"}
SEGMENT = {"box": media.SUBJECT_BOX, "positive_points": "", "negative_points": "", "multimask": False,
           "threshold": 0.0, "grow": 0, "feather": 1.0}
SAM_WEIGHTS = ("SAM weights: " + SAM_VIT_B["name"] + " in ComfyUI/models/sams (the frontend's Missing Models "
               "list offers the download; save " + SAM_VIT_B["url"] + " there under that name). ")
PICTURES = ("Its pictures ship with the pack (copied into ComfyUI/input); pick your own in Load Image.\n\n"
            "Weights: 'default (bundled)' works offline and applies only part of a correction it is unsure "
            "of (a small one); the Report node says how much. For full corrections pick "
            "official-ffhqh512 in "
            "PHNet Model Loader (downloaded once into ComfyUI/models/phnet; the authors' CC BY-SA 4.0-variant "
            "licence, FFHQ's non-commercial terms).")

# Layout: columns about 440 px apart, every node at least 20 px clear of the next (title bars included); a chain
# longer than BROWSER_BOX_MAX allows steps down into the column before it, well below its source (a wire may
# enter a node left of its source's right edge when it drops far enough to pass beside both);
# tests/comfyui_live/frontend_check.py measures the sizes the real frontend gives them.


def workflows() -> list[Workflow]:
    harmonize_composite = Workflow(
        "composite",
        "PHNet-harmonize-a-composite-whose-alpha-is-the-subject",
        "Harmonize an existing composite: an RGBA PNG whose alpha is the pasted subject.",
        [
            _note(1, (40, 60),
                  "Harmonize a composite\n\n1. Load Image reads an RGBA PNG whose alpha channel is the pasted "
                  "subject (opaque = subject).\n2. Its MASK is 1 where the PNG is transparent, so InvertMask turns "
                  "it into the subject mask.\n3. PHNet Harmonize adjusts the subject's colours to the background; "
                  "pixels outside the mask are unchanged.\n\n" + PICTURES),
            Node(2, "LoadImage", (40, 350), {"image": "phnet_composite.png"}, size=(360, 380),
                 title="Load composite (RGBA)"),
            Node(3, "InvertMask", (480, 640), links={"mask": (2, 1)}, size=(240, 60),
                 title="Alpha -> subject mask"),
            Node(4, "PHNetModelLoader", (480, 60), PHNET_DEFAULT, size=LOADER_SIZE,
                 title=LOADER_TITLE),
            Node(5, "PHNetHarmonize", (920, 350), {"strength": 1.0, "working_size": 0},
                 links={"phnet_model": (4, 0), "image": (2, 0), "mask": (3, 0)}, size=(330, 230)),
            Node(6, "SaveImage", (1800, 350), {"filename_prefix": "phnet/harmonized"},
                 links={"images": (5, 0)}, size=(360, 400)),
            Node(7, "ImageBatch", (1360, 740), links={"image1": (2, 0), "image2": (5, 0)}, size=(220, 70),
                 title="Before | after"),
            Node(8, "PreviewImage", (1800, 820), links={"images": (7, 0)}, size=(360, 400),
                 title="Preview before/after"),
            _report(9, (1360, 60), harmonize=5),
        ],
    )

    paste_and_harmonize = Workflow(
        "paste",
        "PHNet-cut-out-with-SAM-paste-onto-a-photo-and-harmonize",
        "Cut a subject out with SAM, paste it onto a background and harmonize it (with a before/after preview).",
        [
            _note(1, (40, 60),
                  "Paste and harmonize\n\n1. PHNet SAM Segment cuts the subject out: 'box' is x0,y0,x1,y1 around "
                  "the person in the SUBJECT image (pixels); points work too.\n2. PHNet Paste Subject places it "
                  "(x, y, scale, anchor).\n3. PHNet Harmonize matches its colours to the background.\n\n"
                  + SAM_WEIGHTS + PICTURES),
            # the subject, its SAM loader and cut-out on the left, the background above the cut-out, so the
            # chain to the preview fits BROWSER_BOX_MAX
            Node(2, "LoadImage", (500, 60), {"image": "phnet_background.png"}, size=(360, 360),
                 title="Load background"),
            Node(3, "LoadImage", (40, 470), {"image": "phnet_subject.png"}, size=(360, 380), title="Load subject"),
            Node(4, "PHNetSAMLoader", (40, 910), SAM_FILE, size=(360, 190), models=[SAM_VIT_B]),
            Node(5, "PHNetSAMSegment", (500, 620), SEGMENT, links={"sam_model": (4, 0), "image": (3, 0)},
                 size=(360, 330)),
            Node(6, "PHNetPasteSubject", (920, 480), media.PASTE_ON_PHOTO,
                 links={"background": (2, 0), "subject": (3, 0), "subject_mask": (5, 0)}, size=(330, 230)),
            Node(7, "PHNetModelLoader", (920, 800), PHNET_DEFAULT, size=LOADER_SIZE,
                 title=LOADER_TITLE),
            Node(8, "PHNetHarmonize", (1320, 200), {"strength": 1.0, "working_size": 0, "mask_is_alpha": True},
                 links={"phnet_model": (7, 0), "image": (6, 0), "mask": (6, 1)}, size=(330, 230)),
            Node(9, "SaveImage", (1690, 60), {"filename_prefix": "phnet/paste_harmonized"},
                 links={"images": (8, 0)}, size=(360, 400)),
            Node(10, "ImageBatch", (1690, 560), links={"image1": (6, 0), "image2": (8, 0)}, size=(220, 70),
                 title="Before | after"),
            Node(11, "PreviewImage", (1950, 560), links={"images": (10, 0)}, size=(360, 400),
                 title="Preview before/after"),
            _report(12, (1690, 720), harmonize=8, size=(220, 200)),
        ],
    )

    generate_and_harmonize = Workflow(
        "generate",
        "PHNet-generate-a-background-with-SD-then-paste-and-harmonize",
        "Generate a background with Stable Diffusion, paste a SAM-masked subject onto it and harmonize.",
        [
            _note(1, (40, 60),
                  "Generate and harmonize\n\n1. A text-to-image background is generated (any SD1.5 checkpoint in "
                  "ComfyUI/models/checkpoints).\n2. PHNet SAM Segment cuts the subject out of the subject photo "
                  "('box' around it).\n3. The subject is pasted onto the generated background and harmonized.\n\n"
                  "Checkpoint: " + SD15["name"] + " in ComfyUI/models/checkpoints (the Missing Models list "
                  "offers the download). " + SAM_WEIGHTS + PICTURES),
            # SD on top, the subject and its SAM cut-out in a row below (short enough to open readable), paste
            # and harmonize to the right; the checkpoint's model and VAE wires run in a free corridor above the
            # prompts and the sampler. Eight nodes in a chain do not fit BROWSER_BOX_MAX side by side: the paste
            # steps down under VAE Decode, harmonize up beside it, and the before | after batch down again.
            Node(2, "CheckpointLoaderSimple", (40, 360), {"ckpt_name": SD15["name"]}, size=(360, 110), models=[SD15]),
            Node(3, "CLIPTextEncode", (500, 490),
                 {"text": "a sunny beach at golden hour, empty scene, photograph, detailed"},
                 links={"clip": (2, 1)}, size=(380, 130), title="Background prompt"),
            Node(4, "CLIPTextEncode", (500, 680), {"text": "people, person, text, watermark, blurry"},
                 links={"clip": (2, 1)}, size=(380, 130), title="Negative prompt"),
            Node(5, "EmptyLatentImage", (500, 60), {"width": 512, "height": 512, "batch_size": 1}, size=(360, 120)),
            Node(6, "KSampler", (940, 450),
                 {"seed": 42, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
                 links={"model": (2, 0), "positive": (3, 0), "negative": (4, 0), "latent_image": (5, 0)},
                 size=(360, 300)),
            Node(7, "VAEDecode", (1340, 350), links={"samples": (6, 0), "vae": (2, 2)}, size=(220, 70)),
            Node(8, "LoadImage", (40, 800), {"image": "phnet_subject.png"}, size=(360, 380), title="Load subject"),
            Node(9, "PHNetSAMLoader", (500, 1000), SAM_FILE, size=(360, 190), models=[SAM_VIT_B]),
            Node(10, "PHNetSAMSegment", (940, 880), SEGMENT, links={"sam_model": (9, 0), "image": (8, 0)},
                 size=(360, 330)),
            Node(11, "PHNetPasteSubject", (1360, 800), media.PASTE_ON_GENERATED,
                 links={"background": (7, 0), "subject": (8, 0), "subject_mask": (10, 0)}, size=(330, 230)),
            Node(12, "PHNetModelLoader", (1280, 60), PHNET_DEFAULT, size=LOADER_SIZE,
                 title=LOADER_TITLE),
            Node(13, "PHNetHarmonize", (1730, 200), {"strength": 1.0, "working_size": 0, "mask_is_alpha": True},
                 links={"phnet_model": (12, 0), "image": (11, 0), "mask": (11, 1)}, size=(330, 230)),
            Node(14, "SaveImage", (2100, 60), {"filename_prefix": "phnet/generated_harmonized"},
                 links={"images": (13, 0)}, size=(330, 400)),
            Node(15, "ImageBatch", (1960, 800), links={"image1": (11, 0), "image2": (13, 0)}, size=(220, 70),
                 title="Before | after"),
            Node(16, "PreviewImage", (2220, 780), links={"images": (15, 0)}, size=(280, 340),
                 title="Preview before/after"),
            _report(17, (2100, 520), harmonize=13, size=(220, 200)),  # left of the minimap's corner
        ],
    )

    reference = Workflow(
        "reference",
        "PHNet-harmonize-toward-a-chosen-region-of-the-background",
        "Harmonize the subject toward one part of the background (a reference mask), not the whole background.",
        [
            _note(1, (40, 60),
                  "Match a chosen region\n\n1. Load Image reads the RGBA composite; InvertMask turns its alpha "
                  "into the subject mask.\n2. Load Image (as Mask) reads the reference mask: white = the part of "
                  "the background the subject should match (here the flag on the left).\n3. PHNet Harmonize takes "
                  "its background statistics from that region only. Unplug reference_mask to match the whole "
                  "background.\n\n" + PICTURES),
            Node(2, "LoadImage", (40, 350), {"image": "phnet_composite.png"}, size=(360, 380),
                 title="Load composite (RGBA)"),
            Node(3, "InvertMask", (480, 640), links={"mask": (2, 1)}, size=(240, 60),
                 title="Alpha -> subject mask"),
            Node(4, "PHNetModelLoader", (480, 60), PHNET_DEFAULT, size=LOADER_SIZE,
                 title=LOADER_TITLE),
            Node(5, "LoadImageMask", (480, 780), {"image": "phnet_reference.png", "channel": "red"},
                 size=(320, 360), title="Load reference mask"),
            Node(6, "PHNetHarmonize", (920, 350), {"strength": 1.0, "working_size": 0},
                 links={"phnet_model": (4, 0), "image": (2, 0), "mask": (3, 0), "reference_mask": (5, 0)},
                 size=(330, 250)),
            Node(7, "SaveImage", (1800, 350), {"filename_prefix": "phnet/reference_harmonized"},
                 links={"images": (6, 0)}, size=(360, 400)),
            Node(8, "ImageBatch", (1360, 790), links={"image1": (2, 0), "image2": (6, 0)}, size=(220, 70),
                 title="Before | after"),
            Node(9, "PreviewImage", (1800, 820), links={"images": (8, 0)}, size=(360, 400),
                 title="Preview before/after"),
            _report(10, (1360, 60), harmonize=6),
        ],
    )

    # The frontend gives Load Image at least 314 px of height: the frames stand in two columns (one shot
    # each), and the batch is built in a staircase beside them, so no wire runs back under the node it
    # came from or through a frame.
    frame_places = [(40, 60), (40, 424), (340, 420), (340, 800)]
    frame_loaders = [
        Node(2 + i, "LoadImage", frame_places[i], {"image": name}, size=(260, 314), title=f"Frame {i + 1}")
        for i, name in enumerate(media.FRAMES)
    ]
    frames = Workflow(
        "frames",
        "PHNet-harmonize-video-frames-with-steady-colours-across-a-scene-cut",
        "Harmonize a batch of video frames with colours smoothed over time; a scene cut starts afresh.",
        [
            _note(1, (40, 800),
                  "Harmonize frames\n\n1. Four frames are batched in time order (two shots; a cut after frame "
                  "2). With a video, use a video loader's IMAGE output instead.\n2. Load Image (as Mask) reads "
                  "the subject mask shared by all frames (one mask per frame works too).\n3. PHNet Harmonize "
                  "Frames estimates the correction per frame, averages it over its neighbours (a Gaussian of σ "
                  "'smoothing' frames, reaching 3× that on each side), and starts a new average at a cut. The "
                  "frames before (top) and after (below) line up.\n\n"
                  + PICTURES, size=(280, 330)),
            *frame_loaders,
            Node(6, "ImageBatch", (340, 60), links={"image1": (2, 0), "image2": (3, 0)}, size=(220, 70)),
            Node(7, "ImageBatch", (600, 130), links={"image1": (6, 0), "image2": (4, 0)}, size=(220, 70)),
            Node(8, "ImageBatch", (860, 200), links={"image1": (7, 0), "image2": (5, 0)}, size=(220, 70),
                 title="Frames 1-4"),
            Node(9, "LoadImageMask", (860, 560), {"image": media.FRAMES_MASK, "channel": "red"},
                 size=(320, 360), title="Load subject mask"),
            Node(10, "PHNetModelLoader", (860, 1000), PHNET_DEFAULT, size=LOADER_SIZE,
                 title=LOADER_TITLE),
            Node(11, "PHNetHarmonizeFrames", (1240, 350),
                 {"smoothing": 3.0, "cut_threshold": 20.0, "causal": False, "strength": 1.0, "working_size": 0},
                 links={"phnet_model": (10, 0), "image": (8, 0), "mask": (9, 0)}, size=(330, 320)),
            Node(12, "SaveImage", (1640, 560), {"filename_prefix": "phnet/frames"},
                 links={"images": (11, 0)}, size=(360, 400), title="After (saved)"),
            Node(13, "PreviewImage", (1640, 60), links={"images": (8, 0)}, size=(360, 400), title="Before"),
            _report(14, (1600, 1020), harmonize=11),
        ],
    )
    return [harmonize_composite, paste_and_harmonize, generate_and_harmonize, reference, frames]


TITLE_HEIGHT = 30  # litegraph draws the title bar above a node's pos


# A title's letter widths (per 1000 em of the 14 px title font), measured with the canvas's measureText in
# headless Chromium, each the wider of the frontends' two title fonts: Inter (1.58 ships it as a web font) and
# the Arial of 1.27 as a browser without Arial draws it (DejaVu Sans, wider than Arial); rounded up to 25, which
# puts a title about 4 % over those measurements. Any other character counts as 1000.
TITLE_EM = {**dict.fromkeys("'Iijl", 300), **dict.fromkeys(" ,.", 325), **dict.fromkeys(":;|", 350),
            **dict.fromkeys("/\\f", 375), **dict.fromkeys("()[]t", 400), **dict.fromkeys("!r", 425),
            **dict.fromkeys('"-', 475), **dict.fromkeys("_`", 500), "*": 525, **dict.fromkeys("?s", 550),
            **dict.fromkeys("JLcz", 575), **dict.fromkeys("Fkvxy", 600), **dict.fromkeys("aeo", 625),
            **dict.fromkeys("$0123456789EPSTbdghnpqu{}", 650), "K": 675, **dict.fromkeys("ABRVXYZ", 700),
            **dict.fromkeys("CU", 750), **dict.fromkeys("DGHN", 775), **dict.fromkeys("&OQ", 800), "w": 825,
            **dict.fromkeys("#+<=>^~", 850), "M": 925, "m": 975, **dict.fromkeys("%@W", 1000)}


# Where a template opens (its extra.ds), measured in a 1920x1080 browser window (a 1920x937 page) in both
# frontends. 1.27.10's canvas starts right of its 64 px sidebar and below its 78 px top bar; 1.58.1's fills
# the page under its 56 px sidebar, 40 px of tabs and the floating Graph and Run toolbars (down to y 88).
# In 1.58's canvas pixels (1.27's are 64 px to the right and 78 px lower on the page) every node lies in
# VIEW_BOX, 8 px clear of all that, and no title bar reaches into VIEW_CORNER, where the minimap (1.27:
# from x 1626, y 672 on the page; 1.58: from x 1660, y 676) and the zoom menu sit.
VIEW_BOX = (64, 96, 1840, 851)     # left, top, right, bottom
VIEW_CORNER = (1528, 586)          # left, top; it runs to the box's right and bottom
MAX_ZOOM = 0.65
# Below 8 px / 14 px (about 0.571) both frontends draw nodes without their text at a device pixel ratio of 1
# (their default minimum font size for full detail); a template is laid out to open above it.
READABLE_ZOOM = 0.58
# Frontend 1.58 ignores extra.ds when a template is opened from its template browser and fits the graph itself
# (its app.ts: a load from 'template' calls litegraphService.fitView, i.e. DragAndScale.fitToBounds): the nodes'
# bounding box, title bars included, padded by 10 px on each side (measure.ts createBounds), is fitted into 0.75
# of the canvas, which fills the 1920x937 page, on its tighter side. For that zoom to reach READABLE_ZOOM the
# box may be at most BROWSER_BOX_MAX wide and high (about 2462 x 1191).
BROWSER_CANVAS = (1920, 937)
BROWSER_FILL = 0.75
BROWSER_PADDING = 10
BROWSER_BOX_MAX = tuple(BROWSER_FILL * side / READABLE_ZOOM - 2 * BROWSER_PADDING for side in BROWSER_CANVAS)


def graph_box(wf: Workflow) -> tuple[int, int, int, int]:
    """left, top, right, bottom of all nodes, title bars included."""
    return (min(n.pos[0] for n in wf.nodes), min(n.pos[1] - TITLE_HEIGHT for n in wf.nodes),
            max(n.pos[0] + n.size[0] for n in wf.nodes), max(n.pos[1] + n.size[1] for n in wf.nodes))


def browser_zoom(wf: Workflow) -> float:
    """The zoom frontend 1.58 opens the template at from its template browser (see BROWSER_BOX_MAX)."""
    left, top, right, bottom = graph_box(wf)
    return min(BROWSER_FILL * side / max(extent + 2 * BROWSER_PADDING, 300)
               for side, extent in zip(BROWSER_CANVAS, (right - left, bottom - top)))


def unreadable_from_browser(wf: Workflow) -> list[str]:
    """The template when 1.58's template browser would open it below READABLE_ZOOM (without the nodes' text)."""
    left, top, right, bottom = graph_box(wf)
    width, height = BROWSER_BOX_MAX
    if right - left <= width and bottom - top <= height:
        return []
    return [f"{wf.name} is {right - left} x {bottom - top} px, more than {width:.0f} x {height:.0f}: frontend 1.58's "
            f"template browser would open it at zoom {browser_zoom(wf):.3f}, without the nodes' text"]


def opening_view(wf: Workflow) -> dict:
    """The extra.ds a template opens with: the largest zoom up to MAX_ZOOM (two decimals) at which every node,
    title bar included, lies in VIEW_BOX, the graph's top left corner at the box's."""
    left, top, right, bottom = graph_box(wf)
    x0, y0, x1, y1 = VIEW_BOX
    zoom = int(min(MAX_ZOOM, (x1 - x0) / (right - left), (y1 - y0) / (bottom - top)) * 100) / 100
    return {"scale": zoom, "offset": [round(x0 / zoom - left, 1), round(y0 / zoom - top, 1)]}


def on_screen(wf: Workflow, view: dict) -> list[tuple[float, float, float, float]]:
    """Each node's box (title bar included) in 1.58's canvas pixels when the template opens with ``view``."""
    zoom, (ox, oy) = view["scale"], view["offset"]
    return [((n.pos[0] + ox) * zoom, (n.pos[1] - TITLE_HEIGHT + oy) * zoom,
             (n.pos[0] + n.size[0] + ox) * zoom, (n.pos[1] + n.size[1] + oy) * zoom) for n in wf.nodes]


def hidden_at_open(wf: Workflow) -> list[str]:
    """Nodes that open partly outside VIEW_BOX, or with their title bar in VIEW_CORNER, or below READABLE_ZOOM."""
    view = opening_view(wf)
    out = [] if view["scale"] >= READABLE_ZOOM else [f"{wf.name} opens at zoom {view['scale']}"]
    x0, y0, x1, y1 = VIEW_BOX
    for n, (a, b, c, d) in zip(wf.nodes, on_screen(wf, view)):
        if a < x0 - 0.5 or b < y0 - 0.5 or c > x1 + 0.5 or d > y1 + 0.5:
            out.append(f"{n.type} #{n.id} opens outside the view")
        elif c > VIEW_CORNER[0] and b + TITLE_HEIGHT * view["scale"] > VIEW_CORNER[1]:
            out.append(f"{n.type} #{n.id} opens with its title bar under the minimap's corner")
    return out


def title_width(text: str) -> float:
    """Width in px of a node title in the frontends' 14 px title font, at least what either frontend measures."""
    return sum(TITLE_EM.get(ch, 1000) for ch in text) * 14 / 1000


def clipped_titles(wf: Workflow, pack=None) -> list[str]:
    """Nodes whose title does not fit their width: the frontend cuts such a title with an ellipsis, and a title
    that tells the user what to pick loses its end. Both frontends (litegraph's drawTitleText) give the title
    the node's width less a title bar's height on each side: 30 px for the dot on the left, as much on the right."""
    out = []
    for n in wf.nodes:
        title = n.title or node_title(n.type, pack)
        room = n.size[0] - 2 * TITLE_HEIGHT
        if title_width(title) > room:
            out.append(f"{wf.name}: node {n.id}'s title {title!r} (about {title_width(title):.0f} px) does not fit "
                       f"its width {n.size[0]} (room for {room} px of title)")
    return out


def overlaps(wf: Workflow, sizes: dict[int, tuple[float, float]] | None = None, gap: float = 0) -> list[str]:
    """Pairs of nodes whose boxes (title bar included) touch; ``sizes`` overrides the declared sizes
    (e.g. with what the frontend made of them)."""
    boxes = {}
    for n in wf.nodes:
        w, h = (sizes or {}).get(n.id, n.size)
        boxes[n.id] = (n.pos[0] - gap, n.pos[1] - TITLE_HEIGHT - gap, n.pos[0] + w + gap, n.pos[1] + h + gap)
    out = []
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes[a], boxes[b]
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                out.append(f"{wf.name}: node {a} overlaps node {b}")
    return out


SLOT_HEIGHT = 20  # litegraph: one row per slot, the first at 0.7 rows below pos, 10 px in from the side


def _slot_rows(node: Node, pack=None) -> tuple[dict[str, int], int]:
    """(row of each socket input by name, number of outputs) as litegraph lays the slots out."""
    spec = node_spec(node.type, pack)
    sockets = [n for n, t, _ in spec["inputs"] if t not in WIDGET_TYPES]
    return {name: row for row, name in enumerate(sockets)}, len(spec["outputs"])


def _spline(a: tuple[float, float], b: tuple[float, float], samples: int = 64) -> list[tuple[float, float]]:
    """Points of the wire from output ``a`` to input ``b`` as litegraph draws it: a cubic Bézier leaving
    ``a`` to the right and entering ``b`` from the left, its handles a quarter of the distance long."""
    reach = 0.25 * ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5
    c1, c2 = (a[0] + reach, a[1]), (b[0] - reach, b[1])
    points = []
    for k in range(samples + 1):
        t = k / samples
        u = 1 - t
        points.append(tuple(u**3 * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t**3 * p3
                            for p0, p1, p2, p3 in zip(a, c1, c2, b)))
    return points


def hidden_wires(wf: Workflow, sizes: dict[int, tuple[float, float]] | None = None, pack=None) -> list[str]:
    """Wires that pass under a node (title bars included), with the share of the wire that is hidden;
    ``sizes`` overrides the declared sizes. Litegraph draws wires behind nodes, so a wire that loops back
    under its own source or target is hidden too; only the slot's own 20 px at each end are allowed."""
    boxes = {}
    for n in wf.nodes:
        w, h = (sizes or {}).get(n.id, n.size)
        boxes[n.id] = (n.pos[0], n.pos[1] - TITLE_HEIGHT, n.pos[0] + w, n.pos[1] + h)
    by_id = {n.id: n for n in wf.nodes}
    out = []
    for node in wf.nodes:
        if not node.links:
            continue
        rows, _ = _slot_rows(node, pack)
        for name, (src, slot) in sorted(node.links.items()):
            source = by_id[src]
            a = (boxes[src][2] - SLOT_HEIGHT / 2, source.pos[1] + (slot + 0.7) * SLOT_HEIGHT)
            b = (node.pos[0] + SLOT_HEIGHT / 2, node.pos[1] + (rows[name] + 0.7) * SLOT_HEIGHT)
            points = _spline(a, b)
            own = dict(boxes)
            own[src] = (*boxes[src][:2], boxes[src][2] - SLOT_HEIGHT, boxes[src][3])  # the output's end is fine
            own[node.id] = (boxes[node.id][0] + SLOT_HEIGHT, *boxes[node.id][1:])  # and so is the input's
            if src == node.id:
                continue
            hits = [[i for i, (x0, y0, x1, y1) in own.items() if x0 < x < x1 and y0 < y < y1] for x, y in points]
            under = {i for hit in hits for i in hit}
            if under:
                share = sum(bool(hit) for hit in hits) / len(points)
                out.append(f"{wf.name}: the wire {source.type}#{src} -> {node.type}#{node.id}.{name} passes under "
                           f"node(s) {sorted(under)} ({share:.0%} of it)")
    return out


# ------------------------------------------------------------------------------------------------
# Emitters
# ------------------------------------------------------------------------------------------------
def _widget_values(node: Node, spec: dict) -> dict:
    """All widget values of ``node`` by name (given or default), in input order."""
    sockets = {n for n, t, _ in spec["inputs"] if t not in WIDGET_TYPES}
    unknown = set(node.widgets) - {n for n, _, _ in spec["inputs"]}
    if unknown:
        raise ValueError(f"{node.type} #{node.id}: unknown widget(s) {sorted(unknown)}")
    bad = set(node.links) - {n for n, _, _ in spec["inputs"]}
    if bad:
        raise ValueError(f"{node.type} #{node.id}: unknown input(s) {sorted(bad)}")
    out = {}
    for name, typ, default in spec["inputs"]:
        if name in sockets or name in node.links:
            continue
        value = node.widgets.get(name, default)
        if value is None:
            raise ValueError(f"{node.type} #{node.id}: widget {name!r} needs a value")
        out[name] = value
    return out


def _topo_order(nodes: list[Node]) -> list[Node]:
    by_id = {n.id: n for n in nodes}
    done: list[int] = []

    def visit(n: Node, stack=()):
        if n.id in done:
            return
        if n.id in stack:
            raise ValueError(f"cycle at node {n.id}")
        for src, _ in n.links.values():
            visit(by_id[src], stack + (n.id,))
        done.append(n.id)

    for n in sorted(nodes, key=lambda n: n.id):
        visit(n)
    return [by_id[i] for i in done]


def to_api(wf: Workflow, pack=None) -> dict:
    prompt = {}
    for node in sorted(wf.nodes, key=lambda n: n.id):
        if node.type in UI_ONLY_NODES:
            continue
        spec = node_spec(node.type, pack)
        inputs: dict = {}
        widgets = _widget_values(node, spec)
        for name, _typ, _ in spec["inputs"]:
            if name in node.links:
                src, slot = node.links[name]
                inputs[name] = [str(src), slot]
            elif name in widgets:
                inputs[name] = widgets[name]
        prompt[str(node.id)] = {
            "class_type": node.type,
            "inputs": inputs,
            "_meta": {"title": node.title or node_title(node.type, pack)},
        }
    return prompt


def node_title(class_type: str, pack=None) -> str:
    if class_type in CORE_NODES or class_type in UI_ONLY_NODES:
        return {"LoadImage": "Load Image", "LoadImageMask": "Load Image (as Mask)", "SaveImage": "Save Image",
                "PreviewImage": "Preview Image", "PreviewAny": "Preview Any",
                "InvertMask": "InvertMask", "ImageBatch": "Batch Images",
                "CheckpointLoaderSimple": "Load Checkpoint", "CLIPTextEncode": "CLIP Text Encode (Prompt)",
                "EmptyLatentImage": "Empty Latent Image", "KSampler": "KSampler", "VAEDecode": "VAE Decode",
                "Note": "Note"}[class_type]
    pack = pack or load_pack()
    return pack.NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type)


def to_ui(wf: Workflow, pack=None) -> dict:
    order = {n.id: i for i, n in enumerate(_topo_order(wf.nodes))}
    links = []
    link_of: dict[tuple[int, str], int] = {}
    out_links: dict[tuple[int, int], list[int]] = {}
    specs = {n.id: (None if n.type in UI_ONLY_NODES else node_spec(n.type, pack)) for n in wf.nodes}
    by_id = {n.id: n for n in wf.nodes}
    for node in sorted(wf.nodes, key=lambda n: n.id):
        spec = specs[node.id]
        if spec is None:
            continue
        sockets = [(n, t) for n, t, _ in spec["inputs"] if t not in WIDGET_TYPES]
        for slot, (name, typ) in enumerate(sockets):
            if name not in node.links:
                continue
            src, src_slot = node.links[name]
            src_type = specs[src]["outputs"][src_slot][1]
            if not accepts(typ, src_type):
                raise ValueError(f"{wf.name}: {by_id[src].type}#{src}:{src_slot} is {src_type}, "
                                 f"{node.type}#{node.id}.{name} wants {typ}")
            link_id = len(links) + 1
            links.append([link_id, src, src_slot, node.id, slot, src_type])
            link_of[(node.id, name)] = link_id
            out_links.setdefault((src, src_slot), []).append(link_id)

    ui_nodes = []
    for node in sorted(wf.nodes, key=lambda n: n.id):
        spec = specs[node.id]
        entry = {
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": list(node.size),
            "flags": {},
            "order": order[node.id],
            "mode": 0,
        }
        if node.title:
            entry["title"] = node.title
        if spec is None:  # Note
            entry["properties"] = {}
            entry["widgets_values"] = [node.widgets["text"]]
            entry["color"] = "#432"
            entry["bgcolor"] = "#653"
            ui_nodes.append(entry)
            continue
        entry["inputs"] = [
            {"name": n, "type": t, "link": link_of.get((node.id, n))}
            for n, t, _ in spec["inputs"] if t not in WIDGET_TYPES
        ]
        entry["outputs"] = [
            {"name": n, "type": t, "links": out_links.get((node.id, i), []), "slot_index": i}
            for i, (n, t) in enumerate(spec["outputs"])
        ]
        core = node.type in CORE_NODES
        props = {"Node name for S&R": node.type, "cnr_id": "comfy-core" if core else PACK_ID,
                 "ver": CORE_VERSION if core else PACK_VERSION}
        if node.models:
            props["models"] = [dict(m) for m in node.models]
        entry["properties"] = props
        widgets = _widget_values(node, spec)
        values = []
        extra = spec.get("ui_extra", {})
        for name, value in widgets.items():
            values.append(value)
            if name in extra:
                values.append(extra[name])
        if values:
            entry["widgets_values"] = values
        ui_nodes.append(entry)

    return {
        "last_node_id": max(n.id for n in wf.nodes),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": opening_view(wf), "info": {"description": wf.description}},
        "version": 0.4,
    }


def render() -> dict[Path, str]:
    pack = load_pack()
    files = {}
    for wf in workflows():
        problems = (overlaps(wf, gap=10) + hidden_wires(wf, pack=pack) + clipped_titles(wf, pack) + hidden_at_open(wf)
                    + unreadable_from_browser(wf))
        if problems:
            raise ValueError("; ".join(problems))
        files[UI_DIR / f"{wf.name}.json"] = json.dumps(to_ui(wf, pack), indent=2) + "\n"
        files[API_DIR / f"{wf.name}.api.json"] = json.dumps(to_api(wf, pack), indent=2) + "\n"
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args(argv)
    files = render()
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    # a template no workflow makes any more (renamed, dropped) would still be listed by ComfyUI
    orphans = sorted(p for folder in (UI_DIR, API_DIR) for p in folder.glob("*.json") if p not in files)
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)}")
        for p in orphans:
            print(f"made by no workflow: {p.relative_to(ROOT)}")
        return 1 if stale or orphans else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    for p in orphans:  # a user's own file, or a stale template: only said, never deleted
        print(f"note: {p.relative_to(ROOT)} is made by no workflow; remove it if it is a stale template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
