"""SD-WebUI (AUTOMATIC1111 / Forge) extension: a "PHNet harmonize" accordion in txt2img / img2img.

Every generated image passes through ``postprocess_image``; when enabled, the region given by the
chosen mask source is harmonized with PHNet. ComfyUI never scans ``scripts/``.

How the WebUI runs this file decides its shape (``modules/scripts.py::load_scripts`` and
``modules/script_loading.py::load_module``, the same in A1111 1.10 and Forge):

- The file is executed with ``importlib.util.spec_from_file_location("phnet_webui.py", path)`` +
  ``exec_module`` and is never registered in ``sys.modules``. Nothing here may look its own module
  up by name: a dataclass under ``from __future__ import annotations`` does exactly that and fails
  (issue 15), so there is no future import and ``Settings`` is a NamedTuple.
- The extension folder is on ``sys.path`` only while the file executes (A1111 restores the list
  afterwards), so ``phnet`` is imported now; its submodules load later through the package itself.
- Every ``.py`` in ``scripts/`` is executed as a script of its own, and ``scripts/`` is never on
  ``sys.path``: a helper module next to this file could not be imported by it. So the WebUI side of
  the extension (labels, the inpaint-mask rule, model folders, the model cache) lives here, and the
  ``phnet`` library knows nothing about the WebUI.
"""

import contextlib
import math
import os
import re
import threading
from typing import NamedTuple

from modules import scripts

# imported now, while the WebUI has the extension folder on sys.path
from phnet.compositing import ANCHORS
from phnet.sources import DEFAULT_LABEL, OFFICIAL_NAMES

TITLE = "PHNet harmonize"
RESULT_KEY = "PHNet result"  # the infotext line that says how much the subject changed
DEFAULT_WEIGHTS = DEFAULT_LABEL
WEIGHTS_INFO = (
    "default (bundled): offline, tuned to do no harm: a fifth of a small correction is applied, a large one whole, "
    "so every subject changes a little (the infotext and the console say how much). official-*: the PHNet "
    "authors' weights, downloaded once into models/PHNet when picked; official-ffhqh512 for portraits. Licence: "
    "the authors' CC BY-SA 4.0 variant; the ffhqh ones are also bound by FFHQ's non-commercial terms."
)
THRESHOLD_INFO = (
    "In 8-bit levels: corrections whose RMS change of the subject (0-255) is smaller than this are dropped (the "
    "bundled weights keep part of them), those just above it shortened; not SAM's mask threshold (the SAM box "
    "uses SAM's own). Lower it to apply more of each correction (0 = the raw network, which may "
    "harm near-right composites)."
)
# UI labels, and also the values API clients send for "Harmonize which region".
MASK_INPAINT = "Inpaint mask"
MASK_SUBJECT = "Pasted subject (alpha)"
MASK_SAM = "SAM box"
MASK_SOURCES = (MASK_INPAINT, MASK_SUBJECT, MASK_SAM)


class PHNetHarmonizeScript(scripts.Script):
    def title(self):
        return TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr

        phnet_dir, sam_dirs = _models_dirs()
        sources = list(MASK_SOURCES) if is_img2img else [MASK_SUBJECT, MASK_SAM]
        with _enable_accordion(gr, self.elem_id) as enable:
            strength = gr.Slider(
                label="Strength", minimum=0.0, maximum=1.0, step=0.05, value=1.0, elem_id=self.elem_id("strength")
            )
            weights = gr.Dropdown(  # labels name no folder: the WebUI keys saved defaults (ui-config.json) on them
                label="Weights (bundled default, official, your own, or a Hugging Face repo id)",
                choices=phnet_choices(phnet_dir),
                value=DEFAULT_WEIGHTS,
                allow_custom_value=True,
                info=f"{WEIGHTS_INFO} Your own: in {phnet_dir}.",
                elem_id=self.elem_id("weights"),
            )
            threshold = gr.Slider(
                label="Do-no-harm threshold (below 0 = the weights' own)", minimum=-1.0, maximum=64.0, step=0.5,
                value=-1.0, info=THRESHOLD_INFO, elem_id=self.elem_id("threshold"),
            )
            mask_source = gr.Radio(
                label="Harmonize which region", choices=sources, value=sources[0], elem_id=self.elem_id("mask_source")
            )
            with gr.Group(visible=sources[0] == MASK_SUBJECT) as subject_group:
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
                    anchor = gr.Dropdown(label="Anchor", choices=list(ANCHORS), value="top-left",
                                         elem_id=self.elem_id("anchor"))  # at x = y = 0 the whole subject shows
            with gr.Group(visible=sources[0] == MASK_SAM) as sam_group:
                sam_weights = gr.Dropdown(  # a str value: pasting parameters back converts to the value's type
                    label="SAM checkpoint (a file in models/sam, or owner/name:file)",
                    info=f"Looked for in {' and '.join(sam_dirs)}.",
                    choices=sam_choices(sam_dirs),
                    value="",
                    allow_custom_value=True,
                    elem_id=self.elem_id("sam_weights"),
                )
                with gr.Row():
                    box_x0 = gr.Number(label="box x0", value=0, precision=0, elem_id=self.elem_id("box_x0"))
                    box_y0 = gr.Number(label="box y0", value=0, precision=0, elem_id=self.elem_id("box_y0"))
                    box_x1 = gr.Number(label="box x1", value=512, precision=0, elem_id=self.elem_id("box_x1"))
                    box_y1 = gr.Number(label="box y1", value=512, precision=0, elem_id=self.elem_id("box_y1"))
            with gr.Row():
                grow = gr.Slider(
                    label="Grow mask (px)", minimum=-32, maximum=32, step=1, value=0, elem_id=self.elem_id("grow")
                )
                feather = gr.Slider(
                    label="Feather (px)", minimum=0.0, maximum=16.0, step=0.5, value=0.0,
                    elem_id=self.elem_id("feather")
                )

        def _toggle(source):
            return gr.update(visible=source == MASK_SUBJECT), gr.update(visible=source == MASK_SAM)

        mask_source.change(fn=_toggle, inputs=[mask_source], outputs=[subject_group, sam_group])
        # a default saved in ui-config.json is set after this UI is built, and fires no change: it would show
        # one source with the other's settings group
        mask_source.do_not_save_to_config = True

        # Pasting generation parameters back into the UI restores these settings (None: leave the control as it
        # is). A threshold not written is the weights' own; a mask source of the other tab is not offered here.
        self.infotext_fields = [
            (enable, lambda params: "PHNet strength" in params),
            (strength, "PHNet strength"),
            (weights, "PHNet weights"),
            (mask_source, lambda params: params.get("PHNet mask") if params.get("PHNet mask") in sources else None),
            (threshold, lambda params: params.get("PHNet threshold", -1.0) if "PHNet strength" in params else None),
            (x, lambda params: _recorded(params, "PHNet subject", r"\bx (-?[\d.]+)", float)),
            (y, lambda params: _recorded(params, "PHNet subject", r"\by (-?[\d.]+)", float)),
            (scale, lambda params: _recorded(params, "PHNet subject", r"scale ([\d.]+)", float)),
            (anchor, lambda params: _recorded(params, "PHNet subject", r"anchor ([\w-]+)", str)),
            (sam_weights, lambda params: _recorded(params, "PHNet SAM", r"^(.*), box \(", str)),
            *((box, lambda params, i=i: _recorded(params, "PHNet SAM", BOX_PATTERN, int, i + 1))
              for i, box in enumerate((box_x0, box_y0, box_x1, box_y1))),
            (grow, lambda params: _recorded(params, "PHNet mask refine", r"grow (-?\d+)", int, unwritten=0)),
            (feather, lambda params: _recorded(params, "PHNet mask refine", r"feather ([\d.]+)", float,
                                               unwritten=0.0)),
        ]
        # Order matters: the WebUI passes the values back in this order (see Settings).
        return [enable, weights, strength, mask_source, subject, x, y, scale, anchor,
                sam_weights, box_x0, box_y0, box_x1, box_y1, grow, feather, threshold]  # fmt: skip

    # --- hooks -------------------------------------------------------------------------

    def process(self, p, *args):
        # Recorded before generation so every image's infotext carries the settings.
        settings = Settings.from_args(args, p)
        if settings.enable:
            try:
                p.extra_generation_params.update(settings.infotext())
            except ValueError:  # a setting that is no number: postprocess_image says which, once per image
                pass

    def postprocess_image(self, p, pp, *args):
        settings = Settings.from_args(args, p)
        if settings.enable is False or pp.image is None:  # (any other value than True is refused below, by check)
            return
        if getattr(p, "txt2img_upscale", False):
            # the Upscale button (and Forge's later hires pass) starts from an image this script already
            # harmonized: pasting or harmonizing it again would add a second subject or move the first
            first = getattr(getattr(p, "firstpass_image", None), "info", None) or {}
            told = str(first.get("parameters", ""))
            placed = "a subject or box placed in its pixels would land elsewhere at this size"
            if "parameters" in first and "PHNet weights:" not in told:
                _say(p, f"not run: the upscale pass starts from a first pass made with PHNet off, and {placed}; "
                        "generate with PHNet on, then upscale")
            elif re.search(rf'{RESULT_KEY}: "?not run[:,]', told):
                _say(p, f"not run: PHNet did not run on the first pass (its result says why), and {placed}; "
                        "generate again with PHNet set up, then upscale")
            elif told:
                _say(p, "not run again: the upscale pass starts from the first pass's harmonized picture")
            else:  # its infotext was not kept (PNG info off): harmonized there if PHNet ran
                _say(p, "not run again: the upscale pass starts from the first pass's picture, harmonized there "
                        "if PHNet ran on it")
            return
        ultimate = any(str(key).startswith("Ultimate SD upscale") for key in p.extra_generation_params)
        if ultimate or "SD upscale overlap" in p.extra_generation_params:
            # the SD upscale scripts run the always-on scripts once per tile: x, y and the box would be read in
            # tile pixels, a subject pasted into every tile, Ultimate SD upscale's tile mask taken for the
            # inpaint mask (each tile matched to its own padding), and SD upscale's tiles have none of their own
            why = ("a subject or box would land in every tile" if settings.mask_source != MASK_INPAINT else
                   "its tile mask is not your inpaint mask: each tile would be matched to its own padding"
                   if ultimate else "a tile has no inpaint mask of its own")
            _say(p, f"not run on {'Ultimate ' if ultimate else ''}SD upscale's tiles ({why}); harmonize the picture "
                    "first, then upscale it with PHNet off")
            return
        try:
            params = settings.infotext()
            pp.image, corrections, model_name, notes = _harmonize(p, pp.image, settings)
        except Exception as exc:
            # The WebUI reports the error and keeps the image as generated; its infotext and the page say so
            # (and no earlier image of the batch's result is left in this one's)
            _in_webui_words(exc)
            _say(p, f"not run: {str(exc).removeprefix('PHNet: ')}", console=False)
            raise
        result = "; ".join((_report(corrections, model_name, p), *notes))
        print(f"PHNet: {result}")  # the WebUI console
        p.extra_generation_params.update(params)
        _record(p, result)


class BatchResults(str):
    """The infotext's "PHNet result" for every image of a run. A1111 1.9 and later and Forge call a callable
    value for each image's infotext (``index`` in the batch, ``p.iteration`` the batch) and for the grid's
    (``use_main_prompt``), which lists the images whose results differ; older WebUIs read the string: the
    latest image's result."""

    def __new__(cls, latest, lines=None):  # (the order copy and pickle rebuild a str subclass in)
        text = super().__new__(cls, latest)
        text.lines = dict(lines or {})
        return text

    def __call__(self, p=None, index=0, use_main_prompt=False, **_):
        if not use_main_prompt:
            return self.lines.get(_image_number(p, index or 0), str(self))
        if len(set(self.lines.values())) <= 1:
            return str(self)
        return " | ".join(f"image {number + 1}: {line}" for number, line in sorted(self.lines.items()))


def _record(p, line):
    """This image's result, kept beside those of the run's earlier images."""
    before = p.extra_generation_params.get(RESULT_KEY)
    lines = dict(before.lines) if isinstance(before, BatchResults) else {}
    lines[_image_number(p, getattr(p, "batch_index", 0))] = line
    p.extra_generation_params[RESULT_KEY] = BatchResults(line, lines)


def _image_number(p, index):
    """The run's number of image ``index`` of the current batch (``p.iteration``)."""
    return getattr(p, "iteration", 0) * getattr(p, "batch_size", 1) + index


def _in_webui_words(exc) -> None:
    """``exc``, a refusal of the library (no closing period: words for any caller to follow), reworded in place as
    this script's own messages read, "PHNet: ... ."; the script's own (a capitalised sentence), errors that are no
    refusal, and an OSError that names its file (its words are its errno's) as they are. In place, so that the
    WebUI's report still names the refusal's own kind (SeveralCheckpoints, NotInCache) and its fields stay."""
    text = str(exc).strip()
    if not isinstance(exc, (ValueError, FileNotFoundError)) or not text or exc.args != (str(exc),):
        return
    ended = text.endswith((".", "?", "!"))
    if not (text[0].isupper() and ended):
        exc.args = (("" if text.startswith("PHNet") else "PHNet: ") + text + ("" if ended else "."),)


def _say(p, line, console=True):
    """Why PHNet left this image as generated: the infotext's result, a comment under the image (A1111 1.6 and
    later, Forge) and, unless the WebUI prints the error itself, the console."""
    _record(p, line)
    comment = getattr(p, "comment", None)
    if callable(comment):
        comment(f"PHNet: {line}")
    if console:
        print(f"PHNet: {line}")


@contextlib.contextmanager
def _enable_accordion(gr, elem_id):
    """The script's accordion, yielding its Enable checkbox: in the header where the WebUI has InputAccordion
    (A1111 1.7 and later, Forge), so that a closed accordion still shows PHNet is on; else inside it."""
    try:
        from modules.ui_components import InputAccordion
    except ImportError:
        InputAccordion = None
    if InputAccordion is not None:
        with InputAccordion(False, label=TITLE, elem_id=elem_id("enable")) as enable:
            yield enable
        return
    with gr.Accordion(TITLE, open=False, elem_id=elem_id("accordion")):
        yield gr.Checkbox(label="Enable", value=False, elem_id=elem_id("enable"))


BOX_PATTERN = r"box \((-?\d+), (-?\d+), (-?\d+), (-?\d+)\)"


def _recorded(params, key, pattern, cast, group=1, unwritten=None):
    """A setting read back from the infotext's ``key``. Not written: ``unwritten`` for a PHNet run (a setting
    written only when it is not 0), else None (the control stays as it is)."""
    found = re.search(pattern, str(params.get(key) or ""))
    if found:
        return cast(found.group(group))
    return unwritten if "PHNet strength" in params else None


class Settings(NamedTuple):
    """The values of the controls ``ui()`` returns, in the same order (also the API's ``args``)."""

    enable: bool = False
    weights: str | None = None
    strength: float = 1.0
    mask_source: str | None = None
    subject: object = None
    x: float = 0
    y: float = 0
    scale: float = 1.0
    anchor: str = "top-left"
    sam_weights: str | None = None
    box_x0: float = 0
    box_y0: float = 0
    box_x1: float = 512
    box_y1: float = 512
    grow: int = 0
    feather: float = 0.0
    threshold: float = -1.0  # below 0: the weights' own

    @classmethod
    def from_args(cls, args, p=None):
        """The API's ``null`` (None) takes the control's default, as a value left out does: for the mask
        source the tab's first choice (the inpaint mask in img2img, the pasted subject in txt2img)."""
        given = args[: len(cls._fields)]
        settings = cls(*(cls._field_defaults[name] if value is None else value
                         for name, value in zip(cls._fields, given)))
        if settings.mask_source is None:
            settings = settings._replace(mask_source=MASK_INPAINT if getattr(p, "init_images", None) else MASK_SUBJECT)
        if isinstance(settings.enable, int) and settings.enable in (0, 1):  # an API client's 0 or 1 (a bool is one)
            settings = settings._replace(enable=bool(settings.enable))
        return settings

    @property
    def box(self):
        """In whole pixels, as the UI's controls give it: SAM segments the box the infotext records."""
        return tuple(round(float(v or 0)) for v in (self.box_x0, self.box_y0, self.box_x1, self.box_y1))

    def check(self):
        """A ValueError naming the first setting this run reads as a number that holds none (NaN, inf or a word,
        sent through the API), or a Grow that is no whole number of pixels; also one naming a model by no string, and
        an Enable that is neither true nor false (the string "false" turned PHNet on)."""
        if not isinstance(self.enable, bool):
            sent = f"not the string {self.enable!r}" if isinstance(self.enable, str) else f"got {self.enable!r}"
            raise ValueError(f"PHNet: enable must be JSON true or false (or 1 or 0), {sent}.")
        named = {"weights": "Weights", **({"sam_weights": "SAM checkpoint"} if self.mask_source == MASK_SAM else {})}
        for name, label in named.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):  # (0 took the bundled weights, 3 raised in .strip)
                raise ValueError(f"PHNet: {label} must be a name or a path (a string), got {value!r}.")
        used = ["strength", "grow", "feather", "threshold"]
        if self.mask_source == MASK_SUBJECT:
            used += ["x", "y", "scale"]
        elif self.mask_source == MASK_SAM:
            used += ["box_x0", "box_y0", "box_x1", "box_y1"]
        for name in used:
            value = getattr(self, name)
            try:
                finite = value is None or math.isfinite(float(value))
            except (TypeError, ValueError, OverflowError):  # (an integer past any float)
                finite = False
            if not finite:
                raise ValueError(f"PHNet: {name.replace('_', ' ')} must be a number, got {value!r}.")
        if not float(self.grow or 0).is_integer():
            raise ValueError(f"PHNet: grow must be a whole number, got {self.grow!r}.")

    def infotext(self):
        self.check()
        params = {
            "PHNet weights": self.weights or DEFAULT_WEIGHTS,
            "PHNet strength": round(float(self.strength), 3),
            "PHNet mask": self.mask_source,
        }
        if self.mask_source == MASK_SUBJECT:
            params["PHNet subject"] = (f"x {float(self.x or 0):g}, y {float(self.y or 0):g}, "
                                       f"scale {float(self.scale):g}, anchor {self.anchor}")
        elif self.mask_source == MASK_SAM:
            params["PHNet SAM"] = f"{self.sam_weights or ''}, box {self.box}"
        if self.grow_px or float(self.feather or 0):
            params["PHNet mask refine"] = f"grow {self.grow_px}, feather {float(self.feather or 0):g}"
        if self.threshold_override is not None:
            params["PHNet threshold"] = self.threshold_override
        return params

    @property
    def grow_px(self):
        """Grow as a whole number of pixels (the API may send it as a float or a string, e.g. 3.0 or "-2")."""
        return int(float(self.grow or 0))

    @property
    def threshold_override(self):
        value = float(self.threshold if self.threshold is not None else -1.0)
        return None if value < 0 else value


# --- one generated image ------------------------------------------------------------------


def _harmonize(p, image, s):
    from phnet.imageio import mask_to_tensor
    from phnet.imageio.masks import FAINT
    from phnet.mask_tools import refine_mask

    phnet_dir, sam_dirs = _models_dirs()
    harmonizer = load_harmonizer(s.weights, phnet_dir)
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None  # another extension's RGBA image
    image = image.convert("RGB")
    notes = []
    reach = None
    if s.mask_source == MASK_INPAINT:
        mask = inpaint_mask(p, image.size)
        reach = overlay_reach(p, image.size)
    elif s.mask_source == MASK_SUBJECT:
        image, mask, notes = _paste_subject(image, s)
    elif s.mask_source == MASK_SAM:
        mask = _segment(load_segmenter(s.sam_weights, sam_dirs), image, s.box)
    else:
        raise ValueError(f"PHNet: unknown mask source {s.mask_source!r}; choose one of {list(MASK_SOURCES)}.")
    given = mask_to_tensor(mask, 1, image.height, image.width)
    if not bool((given > 0).any()):
        raise ValueError("PHNet: the mask is empty, there is nothing to harmonize.")
    mask = given
    if s.grow_px or float(s.feather or 0):
        mask = mask_to_tensor(refine_mask(mask.reshape(image.height, image.width), grow=s.grow_px,
                                          feather=float(s.feather or 0.0)), 1, image.height, image.width)
        if not bool((mask > 0).any()):
            raise ValueError(f"PHNet: Grow {s.grow_px} shrank the mask to nothing: raise Grow toward 0.")
        if float(given.max()) >= 0.5 and float(mask.max()) < FAINT:  # else blamed on the mask's scale, downstream
            raise ValueError(
                f"PHNet: Feather {float(s.feather or 0):g} spread the mask too thin to mark a subject (its strongest "
                f"value is {float(mask.max()):.2%} of full): lower Feather"
                + (", or raise Grow toward 0." if s.grow_px < 0 else "."))
    if s.mask_source != MASK_INPAINT and getattr(p, "mask_for_overlay", None) is not None and \
            _option("overlay_inpaint", True):  # (a blank mask with 'Only masked': the WebUI pastes nothing back)
        # the subject's own mask: Grow and Feather's halo of background may fall where the original comes back
        lost = _share_outside_inpaint_mask(p, given)
        if lost > 0.01:
            raise ValueError(
                f"PHNet: {lost:.0%} of the {'pasted subject' if s.mask_source == MASK_SUBJECT else 'SAM mask'} lies "
                "outside the inpaint mask, and after this step the WebUI pastes the original picture back there, so "
                "that part of the change would be lost. Paint the inpaint mask over the whole subject, choose the "
                "mask source 'Inpaint mask', or paste the subject in txt2img (or img2img without a mask).")
    if s.mask_source == MASK_INPAINT and getattr(p, "inpaint_full_res", False) and bool((mask >= 0.5).all()):
        if not bool((given >= 0.5).all()):
            raise ValueError(
                f"PHNet: Grow {s.grow_px} / Feather {float(s.feather or 0):g} filled the whole generated crop "
                "('Inpaint area: Only masked'), so no background is left to match the subject to: lower Grow and "
                "Feather.")
        raise ValueError(
            f"PHNet: with 'Inpaint area: Only masked' the generated crop is all mask (padding "
            f"{getattr(p, 'inpaint_full_res_padding', 0)} px), so no background is left to match the subject to: "
            "raise 'Only masked padding, pixels', or inpaint the whole picture.")
    scene = image
    if alpha is not None:  # the subject is matched to what the alpha shows of the background
        scene = image.copy()
        scene.putalpha(alpha)
    # a pasted subject's mask is the alpha it was pasted with, unless Grow or Feather made it another (and weights
    # that map the subject's colours as a whole read no edge: their report would name an option this tab has not)
    matte = (s.mask_source == MASK_SUBJECT and not (s.grow_px or float(s.feather or 0))
             and harmonizer.carries_soft_edges())
    result, corrections = harmonizer.harmonize(scene, mask, strength=float(s.strength),
                                               threshold=s.threshold_override, mask_is_alpha=matte)
    result = result.convert("RGB")
    # a ring Grow < 0 takes off the mask stays as generated, and so does the band beyond it: corrected past an
    # uncorrected ring, it would stand apart from the subject
    if reach is not None and not s.grow_px < 0:
        result = carry_into_band(image, result, mask.reshape(image.height, image.width).numpy(), reach)
    if alpha is not None:
        result.putalpha(alpha)
    return result, corrections, harmonizer.config.name, notes


def _segment(segmenter, image, box):
    """SAM's mask of ``box``, computed on the WebUI's device. Between images SAM waits on the CPU: a vit_h
    holds 2.5 GB of GPU memory that the next generation needs more."""
    from phnet.sam import plan_batch

    # a box outside the picture, or a picture too narrow for SAM to encode, is refused before SAM moves or encodes
    plan_batch(segmenter.model, (image.height, image.width), box=box)
    device = _device()
    with _sam_users_lock:
        _sam_users[id(segmenter)] = _sam_users.get(id(segmenter), 0) + 1
    try:
        if device is not None:
            segmenter.to(device)
        return segmenter.segment(image, box=box)  # one call: another request's picture cannot come between
    finally:
        # the last request out moves it back: the first one's move put a request that was still to segment on the
        # CPU (a vit_h encode there takes a minute); under the lock, so that none moves it in between
        with _sam_users_lock:
            _sam_users[id(segmenter)] -= 1
            if not _sam_users[id(segmenter)]:
                del _sam_users[id(segmenter)]
                segmenter.to("cpu")


_sam_users: dict[int, int] = {}  # id of a segmenter: how many requests are using it now
_sam_users_lock = threading.Lock()


def _share_outside_inpaint_mask(p, mask):
    """The share of ``mask`` (1×1×H×W, the generated image's size) where the WebUI's inpaint overlay will put
    the original picture back."""
    import numpy as np
    import torch

    height, width = mask.shape[-2:]
    inpainted = torch.from_numpy(np.asarray(inpaint_mask(p, (width, height))) > 128)  # inside, as the WebUI keeps it
    return float((mask[0, 0] * ~inpainted).sum() / mask.sum())


def _option(name, default):
    try:
        from modules import shared

        return getattr(shared.opts, name, default)
    except (ImportError, AttributeError):
        return default


def _report(corrections, model_name, p=None):
    """The infotext's "PHNet result": how much the subject changed, and why not when it did not."""
    from phnet.corrections import OFFICIAL_HINT, report, weights_hint

    line = report(corrections, "a do-no-harm threshold of 0", weights_hint(model_name, f"Weights {OFFICIAL_HINT}"))
    if getattr(p, "init_images", None) and _option("img2img_color_correction", False):
        line += ("; the WebUI's 'Apply color correction to img2img results' runs after this and pulls the colours "
                 "back toward the init image: turn it off to keep the harmonization")
    return line


def inpaint_mask(p, size):
    """The img2img inpaint mask as an "L" mask of ``size`` (W, H), read the way the WebUI reads it.

    ``p.image_mask`` is what the user painted or uploaded, untouched by processing. Like the WebUI's
    ``create_binary_mask``, an RGBA mask (gradio's sketch) holds the strokes in its alpha unless it
    is fully opaque, and it is rounded to all or nothing at 128 (a sketch's "Mask transparency" makes it grey),
    unless ``p.mask_round`` is off (soft inpainting). "Mask mode: inpaint not masked" inverts it, and
    "Inpaint only masked" generates the crop ``p.paste_to`` = (x, y, w, h) fitted into the output size and padded, so
    the mask is cut to that crop and fitted the same way (where the crop meets the picture's border it is not the
    output's shape). "Whole
    picture" brings the mask to the output size with the WebUI's own ``images.resize_image`` and the
    img2img resize mode, as the WebUI does for the mask it pastes the original back through ("Crop and
    resize" crops the mask's middle, "Resize and fill" pads it).
    """
    from PIL import ImageOps

    mask = getattr(p, "image_mask", None)
    if mask is None:
        raise ValueError("PHNet: 'Inpaint mask' needs img2img inpainting with a painted or uploaded mask.")
    if mask.mode == "RGBA" and mask.getchannel("A").getextrema() != (255, 255):  # as the WebUI: not "LA"
        mask = mask.getchannel("A")
    mask = mask.convert("L")
    if getattr(p, "mask_round", True):  # as create_binary_mask rounds it (all but soft inpainting): over 128 is in
        mask = mask.point(lambda v: 255 if v > 128 else 0)
    if getattr(p, "inpainting_mask_invert", 0):
        mask = ImageOps.invert(mask)
    return _in_generated_frame(p, mask, size)


def _in_generated_frame(p, mask, size):
    """An "L" mask of the init picture (or already of the generated size) brought to the generated image of
    ``size`` (W, H) as the WebUI brings its own: "Inpaint only masked" cuts the crop ``p.paste_to`` and fits it
    into the generated size, padded (resize mode 2); "Whole picture" resizes by the img2img resize mode."""
    from PIL import Image

    crop = getattr(p, "paste_to", None) if getattr(p, "inpaint_full_res", False) else None
    if crop is not None:
        x, y, w, h = crop
        mask = _webui_resize(2, mask.crop((x, y, x + w, y + h)), p.width, p.height)
    elif mask.size != (p.width, p.height):
        mask = _webui_resize(getattr(p, "resize_mode", 0), mask, p.width, p.height)
    if mask.size != tuple(size):
        mask = mask.resize(tuple(size), Image.Resampling.BILINEAR)
    return mask


def overlay_reach(p, size):
    """Where the generated picture still shows once the WebUI pastes the original back through its blurred
    overlay mask (``p.mask_for_overlay``: the painted mask widened by "Mask blur"), as a binary "L" mask of
    ``size``; None without one. Harmonizing the painted mask alone left the blur band's generated pixels
    uncorrected: a seam around the subject."""
    overlay = getattr(p, "mask_for_overlay", None)
    if overlay is None or not _option("overlay_inpaint", True):  # off: no original comes back, no band shows it
        return None
    return _in_generated_frame(p, overlay.convert("L"), size).point(lambda v: 255 if v > 0 else 0)


CARRIED_GAIN = (0.5, 2.0)  # a harmonization scales a channel by far less; past this the fit reads noise


def carry_into_band(image, result, mask, reach):
    """``result`` with the subject's correction carried into the blur band (``reach`` beyond ``mask``, H×W in
    0..1), where the WebUI's overlay still shows generated pixels. The correction is estimated on the painted
    mask alone: with the band inside the mask, its background colours made the subject look matched already
    (a correction of 29 fell to 3). Here it is carried over as the gain and offset per channel that best map
    the subject's pixels before onto after (least squares), applied to the band as far as it lies beyond the
    mask. A pixel at 0 or 255 before or after says nothing of the map (a white shirt brightened stays 255, which
    read as a gain of 0 and painted the band white): the fit reads the others, its gain kept within
    ``CARRIED_GAIN``, and falls back to the mean shift where too few are left. A band pixel's change stays
    within the changes the subject's pixels got: the band's colours lie outside the subject's range, where a
    gain's line reaches far (a dark subject brightened by 12 levels raised a bright band by 55)."""
    import numpy as np
    from PIL import Image

    subject = mask >= 0.5
    reach_box = reach.getbbox()
    if reach_box is None or subject.sum() < 2:
        return result
    # the band lies within the reach: only the box around the reach and the subject is read, the band's pixels alone
    # as floats
    rows, cols = np.flatnonzero(subject.any(1)), np.flatnonzero(subject.any(0))
    left, top, right, bottom = reach_box
    box = (min(left, int(cols[0])), min(top, int(rows[0])), max(right, int(cols[-1]) + 1),
           max(bottom, int(rows[-1]) + 1))
    mask, subject = mask[box[1]:box[3], box[0]:box[2]], subject[box[1]:box[3], box[0]:box[2]]
    band = np.clip(np.asarray(reach.crop(box), np.float32) / 255 - mask, 0, 1)
    ring = band > 0
    if not ring.any():
        return result
    before, after = np.asarray(image.crop(box)), np.array(result.crop(box))
    band, ring_before, ring_after = band[ring][:, None], before[ring].astype(np.float32), after[ring]
    carried = ring_before.copy()
    for c in range(3):
        x, y = before[..., c][subject].astype(np.float32), after[..., c][subject].astype(np.float32)
        change = y - x
        inside = (x > 0) & (x < 255) & (y > 0) & (y < 255)
        if inside.sum() >= 2:
            x, y = x[inside], y[inside]
        mx, my = x.mean(), y.mean()
        spread = ((x - mx) ** 2).mean()
        gain = ((x - mx) * (y - my)).mean() / spread if spread > 1 and inside.sum() >= 2 else 1.0
        gain = float(np.clip(gain, *CARRIED_GAIN))
        low, high = min(float(change.min()), 0.0), max(float(change.max()), 0.0)  # a bound, not a least change
        carried[:, c] += np.clip(ring_before[:, c] * (gain - 1) + (my - gain * mx), low, high)
    carried = np.clip(carried, 0, 255)
    # the band's share of the carried change comes on top of the subject's own share: drawn from the harmonized
    # pixel toward the carried one, a feathered edge lost part of the subject's change (a quarter at m = 0.5)
    after[ring] = np.round(np.clip(ring_after + band * (carried - ring_before), 0, 255)).astype(np.uint8)
    result = result.copy()
    result.paste(Image.fromarray(after), box[:2])
    return result


def _webui_resize(mode, mask, width, height):
    """``mask`` brought to width × height by the WebUI's own ``images.resize_image`` in resize ``mode``; outside
    a WebUI it is returned as it is (a plain resize follows)."""
    try:
        from modules import images
    except ImportError:
        return mask
    return images.resize_image(mode, mask, width, height).convert("L")


def _paste_subject(image, s):
    """(the image with the subject pasted on it, the subject's mask, notes); pixels off the subject are kept."""
    import numpy as np
    from PIL import Image

    from phnet.compositing import paste_subject
    from phnet.imageio import image_to_uint8
    from phnet.imageio.images import pil_info

    if s.subject is None or (isinstance(s.subject, str) and not s.subject.strip()):
        raise ValueError("PHNet: upload a subject cut-out (PNG with transparency) to paste.")
    subject = _decode_image(s.subject)
    notes = []
    if _animated(subject):  # sent through the API: the WebUI's image box keeps an upload's first frame alone
        subject = subject.copy()
        notes.append("the subject is animated: its first frame is pasted")
        print(f"PHNet: {notes[-1]}")
    mode = getattr(subject, "mode", None)
    if mode in ("P", "L", "RGB") and "transparency" in subject.info:  # a palette entry or a key colour (tRNS)
        subject, mode = subject.convert("RGBA"), "RGBA"
    alpha = subject.getchannel("A") if mode in ("RGBA", "LA", "PA") else None
    if alpha is not None:
        _check_cut_out(alpha)
    if mode is not None and (alpha is None or alpha.getextrema()[0] == 255):
        print("PHNet: the subject has no transparency: its whole rectangle is pasted. Upload a cut-out PNG whose "
              "background is transparent to paste the subject alone.")
    composite, mask = paste_subject(
        image, subject, x=float(s.x or 0), y=float(s.y or 0), scale=float(s.scale), anchor=s.anchor, allow_empty=True
    )  # (an empty paste is said below, with the settings' names)
    # the subject's area as pasted whole: its cover times its scaled size, rounded as paste_subject rounds it
    cover = float(np.asarray(alpha, np.float64).mean() / 255) if alpha is not None else 1.0
    whole = cover * max(1, round(subject.width * float(s.scale))) * max(1, round(subject.height * float(s.scale)))
    shown = float(mask.sum())
    if shown == 0:  # only its transparent margin overlaps the picture
        raise ValueError(f"PHNet: no opaque part of the pasted subject lands on the picture (its {s.anchor} at "
                         f"x {float(s.x or 0):g}, y {float(s.y or 0):g}): move it onto the picture.")
    if whole > 0 and shown < 0.95 * whole:
        notes.append(f"{1 - shown / whole:.0%} of the pasted subject lies outside the picture (its {s.anchor} at "
                     f"x {float(s.x or 0):g}, y {float(s.y or 0):g}): move it, or scale it down")
        print(f"PHNet: {notes[-1]}")
    # the picture's own 8-bit pixels off the subject; the composite's, rounded as the library rounds them, on it
    pasted, inside = image_to_uint8(image), mask > 0
    levels = composite[inside].astype(np.float64)
    np.clip(levels, 0, 1, out=levels)
    levels *= 255
    pasted[inside] = np.round(levels, out=levels)
    pasted = Image.fromarray(pasted)
    pasted.info.update(pil_info(image))
    return pasted, mask, notes


def _check_cut_out(alpha):
    """The library's rule for a cut-out's alpha (:func:`phnet.compositing.check_cut_outs`), refused in this script's
    words: it has no setting that takes an alpha that looks inverted as given, so a right one is told how to pass."""
    import numpy as np

    from phnet.compositing import AlphaLooksInverted, FaintSubject, TransparentSubject, check_cut_outs

    upload = "upload a cut-out whose subject is opaque."
    try:
        check_cut_outs(np.asarray(alpha)[None], 255)
    except TransparentSubject:
        raise ValueError(f"PHNet: the subject is fully transparent, so there is nothing to paste: {upload}") from None
    except FaintSubject as e:
        raise ValueError(f"PHNet: the subject is {e.words}: {upload}") from None
    except AlphaLooksInverted as e:
        raise ValueError(
            f"PHNet: the subject's alpha covers {e.area:.0%} of the cut-out and {e.border:.0%} of its edge, so it "
            "looks inverted (the subject must be opaque, its surroundings transparent): invert the cut-out's "
            "transparency in an image editor and upload it again, or, if it is right (subjects at its sides with a "
            "transparent gap between them), give it a transparent margin.") from None


def _animated(image):
    """Whether a subject holds frames past its first (a camera JPEG's previews, a PSD's layers and a TIFF's pages
    are left to the library, which reads or names them)."""
    from phnet.imageio.decode import is_animation, is_pil

    try:
        return is_pil(image) and is_animation(image)
    except Exception:  # a damaged later frame: the library names it
        return False


def _decode_image(value):
    """The subject as the UI gives it (PIL), as API clients send it (base64 / data URL), or as an array."""
    import numpy as np

    if isinstance(value, np.ndarray):
        from PIL import Image

        return Image.fromarray(value)
    if not isinstance(value, str):
        return value
    import base64
    import binascii
    import io

    from PIL import Image

    data = value.split(",", 1)[1] if value.startswith("data:") else value
    data = "".join(data.split())  # `base64 file.png` and MIME encoders wrap lines at 76 columns
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
    except Image.DecompressionBombError as exc:
        raise ValueError(f"PHNet: the subject holds more pixels than PIL opens ({exc}); send a smaller cut-out, "
                         "e.g. half its width and height.") from None
    except (binascii.Error, ValueError, OSError) as exc:
        raise ValueError(f"PHNet: the subject is not a base64-encoded image, or a damaged one ({exc}).") from exc
    return image


# --- model folders and the loaded models ----------------------------------------------------


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


def phnet_choices(phnet_dir):
    """The Weights dropdown: the bundled default, the official weights (downloaded when picked), then what
    models/PHNet holds (an official name's converted copy there is that name)."""
    from phnet.sources import list_weights

    return [DEFAULT_WEIGHTS, *OFFICIAL_NAMES] + [n for n in list_weights(phnet_dir) if n not in OFFICIAL_NAMES]


def sam_choices(sam_dirs):
    from phnet.sources import list_weights

    names = []
    for folder in sam_dirs:
        names += [n for n in list_weights(folder, folder_marker=None) if n not in names]
    return names


def _local(choice, folders):
    for folder in folders:
        if os.path.exists(os.path.join(folder, choice)):
            return os.path.join(folder, choice)
    path = os.path.expanduser(choice)
    return path if os.path.exists(path) else None


# The WebUI calls once per generated image; one model of each kind stays loaded so a batch (or a
# SAM vit_h, 2.5 GB) is not read from disk again for every image.
_loaded: dict[str, tuple[object, object]] = {}  # kind: (its key, its model)
_loaded_lock = threading.Lock()
_building: dict[str, threading.Lock] = {}  # kind: its lock, held over a build (another kind's build goes on beside it)


def _cached(kind, key, build):
    """``build()``'s model, kept under ``key``, or under ``key()`` where it is a function (asked before the build
    and again after it: official weights downloaded by the build have a copy to stamp only then). Requests
    arriving together for a kind wait for one build and share its model."""
    with _loaded_lock:
        building = _building.setdefault(kind, threading.Lock())
    with building:
        wanted = key() if callable(key) else key
        with _loaded_lock:
            hit = _loaded.get(kind)
            if hit is not None and hit[0] == wanted:
                return hit[1]
            _loaded.pop(kind, None)  # the model being replaced goes first: never two of a kind in memory
        value = build()
        built = key() if callable(key) else key
        with _loaded_lock:
            _loaded[kind] = (built, value)
        return value


def clear_loaded_models():
    with _loaded_lock:
        _loaded.clear()


def load_harmonizer(choice, phnet_dir):
    """A Harmonizer for a Weights choice: the bundled default, an official name, a models/PHNet entry, a
    path, or a Hub repo id, told apart by the library's resolver (phnet.sources.resolve)."""
    from phnet import Harmonizer
    from phnet.errors import clause
    from phnet.sources import Source, is_weights_file, resolve, stamp, unquoted

    try:
        # an official name goes through its fetch even where models/PHNet holds its folder: a .pth put there by
        # hand is converted, a deleted copy made again
        name = unquoted(choice or "")
        found = Source("official", name=name) if name in OFFICIAL_NAMES else resolve(name, search_dirs=[phnet_dir])
    except FileNotFoundError:
        if re.search(r"[/\\]", name) or re.match(r"~|[A-Za-z]:", name) or is_weights_file(name):  # meant as a path
            path = os.path.expanduser(name)
            searched = "" if os.path.isabs(path) else f" or in {phnet_dir}"
            raise FileNotFoundError(f"PHNet weights {choice!r}: no file or folder at {path}{searched}; check the "
                                    "path, or pick an entry from the list.") from None
        raise FileNotFoundError(
            f"PHNet weights {choice!r} not found in {phnet_dir}, and it is neither an official name nor a Hugging "
            "Face repo id ('owner/name'). Pick an entry from the list or type a repo id."
        ) from None
    source, options = found.arguments()
    if found.kind == "official":  # found in, or downloaded into, models/PHNet
        options["cache_dir"] = phnet_dir
    device = _device()

    def build():
        try:
            return Harmonizer.from_pretrained(source, device=device, **options)
        except FileNotFoundError as exc:
            if found.kind == "hub":
                raise FileNotFoundError(f"{clause(exc)}. In the WebUI you may also put the weights in {phnet_dir} and "
                                        "pick them under 'Weights'.") from exc
            if source is not None:
                raise
            raise FileNotFoundError(
                f"{clause(exc)}. In the WebUI: put weights in {phnet_dir} and pick them under 'Weights', or type a "
                "Hugging Face repo id there."
            ) from exc

    # local weights retrained or replaced under the same name are loaded again
    if found.kind == "official":  # its converted copy, whose config.json may be tuned
        from phnet import official

        def official_key():
            copy = official.find(found.name, [phnet_dir])
            return found.label, str(device), None if copy is None else stamp(copy)

        return _cached("phnet", official_key, build)
    changed = stamp(found.path) if found.kind in ("file", "folder") else None
    return _cached("phnet", (found.label, str(device), changed), build)


def load_segmenter(choice, sam_dirs):
    """A SamSegmenter for a SAM choice: a file in models/sam(s), a path, or ``owner/name[@rev]:file``."""
    from phnet.sam import SamSegmenter, SeveralCheckpoints
    from phnet.sources import looks_like_repo_id, parse_hub_ref, stamp, unquoted

    choice = unquoted(choice or "")  # a path Explorer's "Copy as path" quoted, as the Weights field takes it
    if not choice:
        raise ValueError(
            f"No SAM checkpoint chosen: put e.g. sam_vit_b_01ec64.pth in {' or '.join(sam_dirs)} and pick it, "
            "or type a Hub repo id as owner/name:filename."
        )
    local = _local(choice, sam_dirs)  # loaded on the CPU: _segment moves it to the WebUI's device per image
    if local is not None:  # a file replaced under the same name is loaded again
        try:
            return _cached("sam", (local, stamp(local)), lambda: SamSegmenter.from_pretrained(local, device="cpu"))
        except SeveralCheckpoints as e:
            raise e.choosing("pick the file itself, or give its full path.") from None
    repo, revision, filename = parse_hub_ref(choice)
    if not looks_like_repo_id(repo):  # a file name or a path, not a Hub repo: say where it was looked for
        raise FileNotFoundError(
            f"SAM checkpoint {choice!r} not found in {' or '.join(sam_dirs)}: put it there and pick it, give its "
            "full path, or type a Hub repo as owner/name:filename (e.g. ybelkada/segment-anything:"
            "checkpoints/sam_vit_b_01ec64.pth).")
    try:
        return _cached(
            "sam",
            (repo, filename, revision),
            lambda: SamSegmenter.from_pretrained(
                repo, filename=filename or None, revision=revision or None, device="cpu"
            ),
        )
    except SeveralCheckpoints as e:
        raise e.choosing(f"type the file after the repo, {repo}:FILE.") from None
