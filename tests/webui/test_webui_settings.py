"""The script's settings: its controls, the infotext that brings them back, and the values API clients send."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from tests.webui.harness import (DEFAULT, INPAINT, SAM, SUBJECT, _args, _fails, _generated, _postprocess, _runner,
                                 _subject)


def test_script_imports_and_is_always_visible(webui):
    cls = webui.script_module.PHNetHarmonizeScript
    assert issubclass(cls, webui.scripts.Script)
    s = cls()
    assert s.title() == "PHNet harmonize"
    assert s.show(False) is webui.scripts.AlwaysVisible
    assert s.show(True) is webui.scripts.AlwaysVisible


@pytest.mark.parametrize("is_img2img", [False, True])
def test_ui_builds(webui, is_img2img):
    script, runner = _runner(webui, is_img2img)
    controls = script.controls
    assert len(controls) == 17 and script.args_to - script.args_from == 17
    built = webui.gradio.built
    accordion = next(c for c in built if c.kind == "Accordion")
    assert accordion.label == "PHNet harmonize" and accordion.kwargs["open"] is False
    enable, weights, strength, mask_source = controls[:4]
    assert enable.kind == "Checkbox" and enable.value is False  # off by default
    assert weights.choices[0] == DEFAULT and weights.value == DEFAULT and "tiny-phnet" in weights.choices
    assert weights.kwargs["allow_custom_value"] is True  # a Hub repo id can be typed
    assert strength.value == 1.0 and strength.kwargs["maximum"] == 1.0
    expected = [INPAINT, SUBJECT, SAM] if is_img2img else [SUBJECT, SAM]
    assert mask_source.choices == expected
    sam = controls[9]
    assert "tiny_sam.safetensors" in sam.choices
    # Enable is the accordion's header (InputAccordion: a closed accordion still shows PHNet is on), every
    # other control lives inside it, and ids are unique per tab
    assert enable.accordion is accordion and enable.accordion_label == "PHNet harmonize"
    assert all(c in accordion.descendants() for c in controls[1:])
    ids = [c.elem_id for c in controls]
    prefix = f"script_{script.tabname}_phnet_harmonize_"
    assert all(i.startswith(prefix) for i in ids)
    # the hooks read the values back in Settings' field order
    assert [i[len(prefix):] for i in ids] == list(webui.script_module.Settings._fields)
    # what the WebUI's runner derives from the controls for /sdapi/v1/scripts
    assert script.api_info["is_alwayson"] is True and len(script.api_info["args"]) == 17
    assert script.api_info["args"][3]["choices"] == expected
    assert script.group.visible is True and accordion in script.group.descendants()
    # switching the mask source shows the matching settings group
    (event, fn, inputs, outputs), = mask_source.events
    subject_vis, sam_vis = fn(SAM)
    assert subject_vis["visible"] is False and sam_vis["visible"] is True
    # kept out of the saved defaults (ui-config.json), which are set after the UI is built and fire no change
    assert mask_source.do_not_save_to_config is True
    assert [k for _, k in script.infotext_fields[1:3]] == ["PHNet strength", "PHNet weights"]


@pytest.mark.parametrize("is_img2img", [False, True])
def test_pasted_generation_parameters_restore_the_settings_this_tab_has(webui, is_img2img):
    """What the WebUI does with infotext_fields: a callable's None leaves the control as it is."""
    script, _ = _runner(webui, is_img2img)
    fields = {control.elem_id.rsplit("_harmonize_", 1)[1]: key for control, key in script.infotext_fields}
    read = {name: (key(params) if callable(key) else params.get(key)) for name, key in fields.items()
            for params in [{"PHNet strength": 0.8, "PHNet weights": "tiny-phnet", "PHNet mask": INPAINT}]}
    # the threshold goes back to the weights' own when none was written; an inpaint mask is img2img's alone
    unwritten = {**dict.fromkeys(["x", "y", "scale", "anchor", "sam_weights", "box_x0", "box_y0", "box_x1",
                                  "box_y1"]), "grow": 0, "feather": 0.0}  # refine is written only when not 0
    assert read == {"enable": True, "strength": 0.8, "weights": "tiny-phnet", "threshold": -1.0,
                    "mask_source": INPAINT if is_img2img else None, **unwritten}
    threshold = dict(fields)["threshold"]
    assert threshold({"PHNet strength": 1.0, "PHNet threshold": 0.0}) == 0.0 and threshold({"Steps": 20}) is None


def _as_pasted(control, value):
    """A value read back from the infotext as the WebUI's paste sets it (infotext_utils.connect_paste): converted
    to the type of the control's value, and the control left as it is (None) where that fails."""
    if value is None:
        return None
    kind = type(control.value)
    try:
        return False if kind is bool and value == "False" else float(value) if kind is int else kind(value)
    except Exception:
        return None


def test_the_subject_sam_and_refine_settings_come_back_from_the_infotext(webui):
    """Pasting parameters back restored strength and weights only: a SAM run came back with the default box
    and no checkpoint, and failed; x and y were not even written."""
    script, _ = _runner(webui, False)
    m = webui.script_module
    fields = {control.elem_id.rsplit("_harmonize_", 1)[1]: (control, key) for control, key in script.infotext_fields}
    for settings in (m.Settings(True, "tiny-phnet", 0.5, SUBJECT, None, 40, -12.5, 1.5, "bottom-center", grow=3,
                                feather=1.5),
                     m.Settings(True, None, 1.0, SAM, sam_weights="owner/sam, v2:sam_vit_b.pth", box_x0=8, box_y0=4,
                                box_x1=40, box_y1=30)):
        params = {k: str(v) for k, v in settings.infotext().items()}  # the infotext holds text
        read = {name: _as_pasted(control, key(params)) for name, (control, key) in fields.items() if callable(key)}
        restored = {name: value for name, value in read.items() if value is not None}
        expected = {name: getattr(settings, name) for name in restored if name not in ("enable", "mask_source",
                                                                                         "threshold")}
        assert {name: restored[name] for name in expected} == expected
        assert len(expected) == (6 if settings.mask_source == SUBJECT else 7)  # SAM: grow and feather back to 0


def test_no_sam_checkpoint_is_recorded_as_none_chosen_not_as_a_file_named_none(webui):
    # the API's null was written as "None", which pasted back as a file name and was then not found
    script, _ = _runner(webui, False)
    m = webui.script_module
    settings = m.Settings.from_args([True, None, None, SAM, None, None, None, None, None, None, 8, 4, 40, 30])
    params = {k: str(v) for k, v in settings.infotext().items()}
    assert params["PHNet SAM"] == ", box (8, 4, 40, 30)"
    control, key = next((c, k) for c, k in script.infotext_fields if c.elem_id.endswith("_sam_weights"))
    pasted = _as_pasted(control, key(params))
    assert pasted == ""
    with pytest.raises(ValueError, match="No SAM checkpoint chosen"):
        m.load_segmenter(pasted, m._models_dirs()[1])


def test_a_webui_without_input_accordion_gets_enable_inside_the_accordion(webui, monkeypatch):
    """A1111 before 1.7 has no modules.ui_components.InputAccordion."""
    import sys

    monkeypatch.setitem(sys.modules, "modules.ui_components", None)
    script, _ = _runner(webui, False)
    accordion = [c for c in webui.gradio.built if c.kind == "Accordion"][-1]
    enable = script.controls[0]
    assert enable.kind == "Checkbox" and enable.label == "Enable" and enable in accordion.descendants()
    assert all(c in accordion.descendants() for c in script.controls)


def test_disabled_does_nothing(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = runner.default_script_args()
    image = _generated()
    assert _postprocess(webui, runner, p, image) is image
    assert p.extra_generation_params == {}


def test_grow_and_feather_are_recorded(webui):
    script, runner = _runner(webui, False)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = 255
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=20, y=20, grow=2, feather=1.5)  # fmt: skip
    before = _generated()
    after = _postprocess(webui, runner, p, before)
    assert after.size == before.size
    assert p.extra_generation_params["PHNet mask refine"] == "grow 2, feather 1.5"
    # the API may send a whole number as a string or a float (int("2.0") raised)
    for grow, same_as in (("2.0", 2), (-2.0, -2), ("-2", -2)):
        results = []
        for value in (same_as, grow):
            p.extra_generation_params.clear()
            p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                                  subject=Image.fromarray(rgba), x=20, y=20, grow=value, feather=1.5)  # fmt: skip
            results.append(np.asarray(_postprocess(webui, runner, p, before)))
            assert p.extra_generation_params["PHNet mask refine"] == f"grow {same_as}, feather 1.5"
        np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("grow", ["1.5", 1.5], ids=["str", "float"])
def test_a_grow_of_a_fraction_of_a_pixel_is_named_once(webui, capsys, grow):
    # "1.5" ended in int()'s own words, and 1.5 was taken as 1 without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=20, y=20, grow=grow)  # fmt: skip
    _fails(webui, capsys, runner, p, rf"^PHNet: grow must be a whole number, got {re.escape(repr(grow))}\.$")
    assert p.extra_generation_params["PHNet result"] == f"not run: grow must be a whole number, got {grow!r}."


@pytest.mark.parametrize("source, field, value", [(SUBJECT, "x", "abc"), (SUBJECT, "scale", float("inf")),
                                                  (SAM, "box_x0", float("nan")), (SAM, "box_y1", "a"),
                                                  (SUBJECT, "feather", "wide"), (SUBJECT, "strength", float("nan")),
                                                  (SUBJECT, "scale", 2**2000)])  # OverflowError's words, twice
def test_a_setting_sent_as_no_number_is_named_once(webui, capsys, source, field, value):
    # a raw int() or float() error, raised by process() and again by postprocess_image, with no result line (one
    # report of the error: process() records nothing)
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    settings = {"box_x0": 8, "box_y0": 4, "box_x1": 40, "box_y1": 30, field: value}
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=source,
                          subject=_subject(), sam_weights="tiny_sam.safetensors", **settings)  # fmt: skip
    name = field.replace("_", " ")
    _fails(webui, capsys, runner, p, rf"^PHNet: {name} must be a number, got {re.escape(repr(value))}\.$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {name} must be a number, got {value!r}."


@pytest.mark.parametrize("source, field, value", [(SUBJECT, "weights", 3), (SUBJECT, "weights", 0),
                                                  (SAM, "weights", True), (SAM, "sam_weights", [1]),
                                                  (SAM, "sam_weights", {"a": 1})])
def test_a_model_sent_as_no_string_is_named_once(webui, capsys, source, field, value):
    # 3 ended in "'int' object has no attribute 'strip'", and 0 took the bundled weights without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    settings = {"weights": "tiny-phnet", "sam_weights": "tiny_sam.safetensors", field: value}
    p.script_args = _args(webui, runner, script, enable=True, mask_source=source, subject=_subject(), box_x0=8,
                          box_y0=4, box_x1=40, box_y1=30, **settings)  # fmt: skip
    label = {"weights": "Weights", "sam_weights": "SAM checkpoint"}[field]
    message = f"{label} must be a name or a path (a string), got {value!r}."
    _fails(webui, capsys, runner, p, rf"^PHNet: {re.escape(message)}$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {message}"


@pytest.mark.parametrize("value", ["false", "word", [1], -5, 2, ""])
def test_an_enable_sent_as_neither_true_nor_false_is_named_once(webui, capsys, value):
    # a truthy one ("false" too) turned PHNet on, a falsy one ("") left it off without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=value, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=20, y=20)  # fmt: skip
    runner.process(p)
    assert "PHNet weights" not in p.extra_generation_params  # process() records nothing: the error is said once
    sent = f"not the string {value!r}" if isinstance(value, str) else f"got {value!r}"
    message = f"enable must be JSON true or false (or 1 or 0), {sent}."
    _fails(webui, capsys, runner, p, rf"^PHNet: {re.escape(message)}$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {message}"


def test_an_enable_sent_as_0_or_1_is_off_or_on(webui):
    script, runner = _runner(webui, False)
    for value in (0, 1):
        p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
        p.script_args = _args(webui, runner, script, enable=value, weights="tiny-phnet", mask_source=SUBJECT,
                              subject=_subject(), x=20, y=20)  # fmt: skip
        before = _generated()
        after = _postprocess(webui, runner, p, before)
        assert (after is before) == (value == 0)
        assert ("PHNet result" in p.extra_generation_params) == (value == 1)


def test_the_api_null_takes_the_default(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), strength=None, scale=None, grow=None, feather=1.0, threshold=None)
    settings = webui.script_module.Settings.from_args(p.script_args[script.args_from:script.args_to], p)
    assert (settings.strength, settings.scale, settings.grow, settings.threshold) == (1.0, 1.0, 0, -1.0)
    assert not np.array_equal(np.asarray(_postprocess(webui, runner, p, _generated())), np.asarray(_generated()))
    # as the controls show them: the tab's first mask source, SAM's box 0,0 to 512,512
    nulls = webui.script_module.Settings.from_args([True] + [None] * 16, p)
    assert nulls.mask_source == SUBJECT and nulls.box == (0, 0, 512, 512)
    img2img = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated()])
    assert webui.script_module.Settings.from_args([True] + [None] * 16, img2img).mask_source == INPAINT
