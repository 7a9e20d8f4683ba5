"""SD-WebUI (AUTOMATIC1111 / Forge) extension: a "PHNet harmonize" accordion in txt2img / img2img.

Every generated image passes through ``postprocess_image``; when enabled, the region given
by the chosen mask source is harmonized with PHNet. The WebUI imports this file with the
extension folder on ``sys.path``; ComfyUI never scans ``scripts/``. All logic lives in
``phnet`` (``phnet.integrations``); this file only declares the UI and forwards values.
"""

import os
import sys
from typing import NamedTuple

from modules import scripts

# The WebUI puts the extension folder on sys.path only while importing this file, so the
# package is imported now (cheap: phnet's heavy parts load lazily on first use).
_EXT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _EXT_DIR not in sys.path:
    sys.path.insert(0, _EXT_DIR)
import phnet  # noqa: E402,F401
from phnet import integrations as _phnet  # noqa: E402

TITLE = "PHNet harmonize"
ANCHORS = ("center", "bottom-center", "top-left")


def _models_dirs():
    """(models/PHNet, [models/sam, models/sams]) under the WebUI's models path."""
    from modules import paths

    root = paths.models_path
    return os.path.join(root, "PHNet"), [os.path.join(root, "sam"), os.path.join(root, "sams")]


def _device():
    try:
        from modules import devices

        return devices.device
    except (ImportError, AttributeError):
        return None


class PHNetHarmonizeScript(scripts.Script):
    def title(self):
        return TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr

        phnet_dir, sam_dirs = _models_dirs()
        sources = list(_phnet.MASK_SOURCES) if is_img2img else [_phnet.MASK_SUBJECT, _phnet.MASK_SAM]
        with gr.Accordion(TITLE, open=False, elem_id=self.elem_id("accordion")):
            with gr.Row():
                enable = gr.Checkbox(label="Enable", value=False, elem_id=self.elem_id("enable"))
                strength = gr.Slider(
                    label="Strength", minimum=0.0, maximum=1.0, step=0.05, value=1.0, elem_id=self.elem_id("strength")
                )
            weights = gr.Dropdown(
                label=f"Weights (bundled default, {phnet_dir}, or a Hugging Face repo id)",
                choices=_phnet.list_phnet_weights(phnet_dir),
                value=_phnet.DEFAULT_WEIGHTS,
                allow_custom_value=True,
                elem_id=self.elem_id("weights"),
            )
            mask_source = gr.Radio(
                label="Harmonize which region", choices=sources, value=sources[0], elem_id=self.elem_id("mask_source")
            )
            with gr.Group(visible=sources[0] == _phnet.MASK_SUBJECT) as subject_group:
                subject = gr.Image(
                    label="Subject cut-out (PNG with transparency)",
                    type="pil",
                    image_mode="RGBA",
                    elem_id=self.elem_id("subject"),
                )
                with gr.Row():
                    x = gr.Number(label="x (px)", value=0, precision=0, elem_id=self.elem_id("x"))
                    y = gr.Number(label="y (px)", value=0, precision=0, elem_id=self.elem_id("y"))
                    scale = gr.Slider(
                        label="Scale", minimum=0.05, maximum=4.0, step=0.05, value=1.0, elem_id=self.elem_id("scale")
                    )
                    anchor = gr.Dropdown(label="Anchor", choices=list(ANCHORS), value="center", elem_id=self.elem_id("anchor"))
            with gr.Group(visible=sources[0] == _phnet.MASK_SAM) as sam_group:
                sam_weights = gr.Dropdown(
                    label=f"SAM checkpoint ({' or '.join(sam_dirs)}, or owner/name:file)",
                    choices=_phnet.list_sam_weights(sam_dirs),
                    value=None,
                    allow_custom_value=True,
                    elem_id=self.elem_id("sam_weights"),
                )
                with gr.Row():
                    box_x0 = gr.Number(label="box x0", value=0, precision=0, elem_id=self.elem_id("box_x0"))
                    box_y0 = gr.Number(label="box y0", value=0, precision=0, elem_id=self.elem_id("box_y0"))
                    box_x1 = gr.Number(label="box x1", value=512, precision=0, elem_id=self.elem_id("box_x1"))
                    box_y1 = gr.Number(label="box y1", value=512, precision=0, elem_id=self.elem_id("box_y1"))
            with gr.Row():
                grow = gr.Slider(label="Grow mask (px)", minimum=-32, maximum=32, step=1, value=0, elem_id=self.elem_id("grow"))
                feather = gr.Slider(
                    label="Feather (px)", minimum=0.0, maximum=16.0, step=0.5, value=0.0, elem_id=self.elem_id("feather")
                )

        def _toggle(source):
            return (
                gr.update(visible=source == _phnet.MASK_SUBJECT),
                gr.update(visible=source == _phnet.MASK_SAM),
            )

        mask_source.change(fn=_toggle, inputs=[mask_source], outputs=[subject_group, sam_group])

        # Pasting generation parameters back into the UI restores these settings.
        self.infotext_fields = [
            (enable, lambda params: "PHNet strength" in params),
            (strength, "PHNet strength"),
            (weights, "PHNet weights"),
            (mask_source, "PHNet mask"),
        ]
        # Order matters: the WebUI passes the values back in this order (see Settings).
        return [enable, weights, strength, mask_source, subject, x, y, scale, anchor,
                sam_weights, box_x0, box_y0, box_x1, box_y1, grow, feather]  # fmt: skip

    # --- hooks -------------------------------------------------------------------------

    def process(self, p, *args):
        # Recorded before generation so every image's infotext carries the settings.
        settings = Settings.from_args(args)
        if settings.enable:
            p.extra_generation_params.update(settings.infotext())

    def postprocess_image(self, p, pp, *args):
        settings = Settings.from_args(args)
        if not settings.enable or pp.image is None:
            return
        params = settings.infotext()
        try:
            pp.image = _harmonize(p, pp.image, settings)
        except Exception:
            # The WebUI reports the error and keeps the image as generated: don't claim otherwise.
            for key in params:
                p.extra_generation_params.pop(key, None)
            raise
        p.extra_generation_params.update(params)


class Settings(NamedTuple):
    """The values of the controls ``ui()`` returns, in the same order.

    A NamedTuple, not a dataclass: the WebUI executes this file without registering it in
    ``sys.modules``, and ``dataclasses`` looks the module up there to read string annotations.
    """

    enable: bool = False
    weights: str | None = None
    strength: float = 1.0
    mask_source: str | None = None
    subject: object = None
    x: float = 0
    y: float = 0
    scale: float = 1.0
    anchor: str = "center"
    sam_weights: str | None = None
    box_x0: float = 0
    box_y0: float = 0
    box_x1: float = 0
    box_y1: float = 0
    grow: int = 0
    feather: float = 0.0

    @classmethod
    def from_args(cls, args):
        return cls(*args[: len(cls._fields)])

    @property
    def box(self):
        return tuple(float(v or 0) for v in (self.box_x0, self.box_y0, self.box_x1, self.box_y1))

    def infotext(self):
        params = {
            "PHNet weights": self.weights or _phnet.DEFAULT_WEIGHTS,
            "PHNet strength": round(float(self.strength), 3),
            "PHNet mask": self.mask_source,
        }
        if self.mask_source == _phnet.MASK_SUBJECT:
            params["PHNet subject"] = f"scale {float(self.scale):g}, anchor {self.anchor}"
        elif self.mask_source == _phnet.MASK_SAM:
            params["PHNet SAM"] = f"{self.sam_weights}, box {tuple(int(v) for v in self.box)}"
        if self.grow or self.feather:
            params["PHNet mask refine"] = f"grow {int(self.grow)}, feather {float(self.feather):g}"
        return params


def _harmonize(p, image, s: Settings):
    phnet_dir, sam_dirs = _models_dirs()
    device = _device()
    harmonizer = _phnet.resolve_harmonizer(s.weights, phnet_dir, device=device)
    kwargs = dict(strength=float(s.strength), grow=int(s.grow or 0), feather=float(s.feather or 0.0))
    if s.mask_source == _phnet.MASK_INPAINT:
        image_mask = getattr(p, "image_mask", None)
        if image_mask is None:
            raise ValueError("PHNet: 'Inpaint mask' needs img2img inpainting with a painted or uploaded mask.")
        # "Inpaint only masked" generates the crop p.paste_to = (x, y, w, h) at full size.
        crop = getattr(p, "paste_to", None) if getattr(p, "inpaint_full_res", False) else None
        invert = bool(getattr(p, "inpainting_mask_invert", 0))
        kwargs["mask"] = _phnet.mask_from_inpaint(image_mask, image.size, invert=invert, crop=crop)
    elif s.mask_source == _phnet.MASK_SUBJECT:
        if s.subject is None or s.subject == "":
            raise ValueError("PHNet: upload a subject cut-out (PNG with transparency) to paste.")
        kwargs.update(subject=_decode_image(s.subject), x=float(s.x or 0), y=float(s.y or 0), scale=float(s.scale), anchor=s.anchor)
    elif s.mask_source == _phnet.MASK_SAM:
        kwargs.update(segmenter=_phnet.resolve_segmenter(s.sam_weights, sam_dirs, device=device), box=s.box)
    else:
        raise ValueError(f"PHNet: unknown mask source {s.mask_source!r}; choose one of {list(_phnet.MASK_SOURCES)}.")
    out, _ = _phnet.harmonize_image(harmonizer, image, **kwargs)
    return out


def _decode_image(value):
    """The subject as the UI gives it (PIL), or as API clients send it (base64 / data URL)."""
    if not isinstance(value, str):
        return value
    import base64
    import binascii
    import io

    from PIL import Image

    data = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
    except (binascii.Error, ValueError, OSError) as exc:
        raise ValueError(f"PHNet: the subject is not a base64-encoded image ({exc}).") from exc
    return image
