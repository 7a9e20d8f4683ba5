"""The WebUI's own passes around the script: batches and grids, upscale passes and tiles, colour correction,
another extension's RGBA picture, and refusals reaching the page in the WebUI's words."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from phnet.sam.loading import SeveralCheckpoints
from phnet.sources import NotInCache
from tests.webui.harness import (INPAINT, SAM, SUBJECT, _args, _fails, _generated, _postprocess, _reported, _runner,
                                 _subject)


def test_the_webuis_colour_correction_is_named_when_it_will_undo_part_of_the_change(webui, monkeypatch):
    script, runner = _runner(webui, True)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    monkeypatch.setattr(importlib.import_module("modules.shared").opts, "img2img_color_correction", True)
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(mask), inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    _postprocess(webui, runner, p, _generated())
    assert "'Apply color correction to img2img results' runs after this" in p.extra_generation_params["PHNet result"]


def test_clear_errors(webui, capsys):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    _fails(webui, capsys, runner, p, "needs img2img inpainting")
    # process() recorded the settings; the failed image's infotext and page say it was not run, and why
    assert p.extra_generation_params["PHNet result"].startswith("not run: 'Inpaint mask' needs img2img inpainting")
    assert any(c.startswith("PHNet: not run: 'Inpaint mask'") for c in p.comments)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT)
    _fails(webui, capsys, runner, p, "upload a subject")
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM)
    _fails(webui, capsys, runner, p, "No SAM checkpoint chosen")
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="sam_vit_b_01ec64.pth")
    _fails(webui, capsys, runner, p, r"SAM checkpoint 'sam_vit_b_01ec64.pth' not found in .*sam.*: put it there and "
                                     r"pick it, .* owner/name:filename")
    for path in ("~/sam_vit_b_01ec64.pth", "sub/sam_vit_b_01ec64.pth"):  # mistyped paths, not Hub repos
        p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                              sam_weights=path)
        _fails(webui, capsys, runner, p, r"not found in .*sam.*: put it there and pick it, give its full path")
    p.script_args = _args(webui, runner, script, enable=True, weights="not-there", mask_source=SUBJECT)
    _fails(webui, capsys, runner, p, "'not-there' not found in .*PHNet")


def test_the_upscale_pass_of_an_image_already_harmonized_leaves_it_alone(webui, capsys):
    """The txt2img Upscale button (and Forge's later hires pass) runs the scripts again on the first pass's
    output: the subject was pasted a second time, off its place at the new size."""
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject())
    p.txt2img_upscale = True
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    # no infotext kept with it (PNG info off): whether PHNet ran there is not known
    assert "not run again: the upscale pass starts from the first pass's picture, harmonized there if PHNet ran" \
        in capsys.readouterr().out
    assert p.extra_generation_params["PHNet result"].startswith("not run again")
    p.firstpass_image = _generated()
    p.firstpass_image.info["parameters"] = 'a portrait\nSteps: 20, PHNet weights: tiny-phnet, PHNet result: "changed"'
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run again: the upscale pass starts from the "
                                                                "first pass's harmonized picture")
    # PHNet on but not run (no subject uploaded yet): that first pass was not harmonized either
    p.firstpass_image.info["parameters"] = ('a portrait\nSteps: 20, PHNet weights: tiny-phnet, PHNet result: '
                                            '"not run: upload a subject cut-out"')
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run: PHNet did not run on the first pass")
    # a first pass made with PHNet off (its infotext, read back from the gallery's file, has no PHNet in it)
    p.firstpass_image = _generated()
    p.firstpass_image.info["parameters"] = "a portrait\nSteps: 20, Sampler: Euler a, Seed: 1"
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run: the upscale pass starts from a first "
                                                                "pass made with PHNet off")


def _inpainting_run(webui):
    """The script on for an img2img run whose inpaint mask marks a box: its runner and processing."""
    full = np.zeros((48, 64), np.uint8)
    full[10:40, 20:44] = 255
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(full),
                                                          inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    return runner, p


def test_an_image_of_a_batch_that_fails_does_not_carry_the_result_of_the_one_before(webui, capsys, monkeypatch):
    runner, p = _inpainting_run(webui)
    _postprocess(webui, runner, p, _generated(seed=0))
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")

    def out_of_memory(*args):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(webui.script_module, "_harmonize", out_of_memory)
    _fails(webui, capsys, runner, p, "out of memory")
    assert p.extra_generation_params["PHNet result"] == "not run: CUDA out of memory (simulated)"


class _Refusal(ValueError):
    pass


@pytest.mark.parametrize("error, shown", [
    (FileNotFoundError("no file x.safetensors: put it in models/PHNet"),
     "PHNet: no file x.safetensors: put it in models/PHNet."),
    (ValueError("is this a mask?"), "PHNet: is this a mask?"),
    (ValueError("words end here.\n"), "PHNet: words end here."),
    (ValueError(""), ""),
    (_Refusal("PHNet: already in the WebUI's words."), "PHNet: already in the WebUI's words."),
    # the library's own kinds stay (they were raised as ValueError and FileNotFoundError), as do its capitals
    (SeveralCheckpoints("d", ["a.pth", "b.pth"], choose="pick one"),
     "PHNet: several SAM checkpoints in d: a.pth, b.pth; choose one: pick one."),
    (NotInCache("weights", "o/n", None, None, "offline", [None]), None),
    (FileNotFoundError("SAM checkpoint 'x.pth' not found in folder d"),
     "PHNet: SAM checkpoint 'x.pth' not found in folder d."),
    (ValueError("'x' is not a file of the repo"), "PHNet: 'x' is not a file of the repo."),
    (ValueError("No SAM checkpoint chosen: pick one."), "No SAM checkpoint chosen: pick one."),
    # an OSError that names its file is no refusal: its errno, file and words stay
    (FileNotFoundError(2, "No such file or directory", "x.png"), "[Errno 2] No such file or directory: 'x.png'"),
])
def test_a_refusal_reaches_the_page_in_the_webui_s_words_and_keeps_its_kind(webui, capsys, monkeypatch, error, shown):
    """A refusal of the library, lower-case with no closing period, reads as the script's own messages do; one in
    those words already, and one with no words, are raised as they came."""
    def refused(*args):
        raise error

    runner, p = _inpainting_run(webui)
    monkeypatch.setattr(webui.script_module, "_harmonize", refused)
    if shown is None:  # its words are long: the library's, as the WebUI's sentence
        shown = f"PHNet: {error}."
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    err, records = _reported(webui, capsys)
    assert "*** Error running postprocess_image:" in err
    assert [(r["type"], r["exception"]) for r in records] == [(type(error).__name__, shown)]
    assert p.extra_generation_params["PHNet result"] == f"not run: {shown.removeprefix('PHNet: ')}"


def test_each_image_of_a_batch_and_the_grid_carry_their_own_result(webui, monkeypatch):
    import copy
    import json

    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48, batch_size=2, n_iter=2)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=30, y=20, scale=1.0, anchor="top-left")
    p.scripts = runner
    real, calls = webui.script_module._harmonize, []

    def every_third_fails(p, image, s):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated")
        return real(p, image, s)

    monkeypatch.setattr(webui.script_module, "_harmonize", every_third_fails)
    texts = []
    for n in range(4):  # the WebUI makes each image's infotext right after its postprocess_image
        p.iteration, p.batch_index = divmod(n, 2)
        pp = webui.scripts.PostprocessImageArgs(_generated(seed=n))
        try:
            runner.postprocess_image(p, pp)
        except RuntimeError:
            pass
        texts.append(webui.processing.create_infotext(p, index=p.batch_index)["PHNet result"])
    assert texts[2] == "not run: simulated" and all(t.startswith("changed by RMS") for t in texts[:2] + texts[3:])
    grid = webui.processing.create_infotext(p, use_main_prompt=True)["PHNet result"]
    assert grid.startswith("image 1: changed by RMS") and "| image 3: not run: simulated | image 4: " in grid
    # older WebUIs read the value as the string it is; the WebUI copies and serialises its parameters
    result = p.extra_generation_params["PHNet result"]
    assert str(result) == texts[3] and json.loads(json.dumps(result)) == texts[3]
    assert copy.deepcopy(result)(p=p, index=0) == texts[2]


def test_an_rgba_image_from_another_extension_keeps_its_alpha(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=40, y=20, anchor="top-left")
    before = _generated()
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255
    before.putalpha(Image.fromarray(alpha))
    after = _postprocess(webui, runner, p, before)
    assert after.mode == "RGBA" and np.array_equal(np.asarray(after)[..., 3], alpha)


def test_the_subject_is_matched_to_what_an_rgba_images_alpha_shows(webui):
    """The script harmonized the picture's RGB, matching the subject to what lies under alpha 0 too (black here),
    as the library does not."""
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=40, y=20, anchor="top-left", threshold=0.0)
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 20:] = 255
    rgb = np.asarray(_generated()).copy()
    rgb[alpha == 0] = 0
    before = Image.fromarray(rgb)
    before.putalpha(Image.fromarray(alpha))
    after = _postprocess(webui, runner, p, before)
    assert p.extra_generation_params["PHNet result"].endswith("the transparent part was left out of the scene to "
                                                              "match")
    m = webui.script_module
    pasted, mask, _ = m._paste_subject(Image.fromarray(rgb), m.Settings(True, "tiny-phnet", 1.0, SUBJECT, _subject(),
                                                                       40, 20, 1.0, "top-left"))
    seen = m.load_harmonizer("tiny-phnet", m._models_dirs()[0])(np.asarray(pasted), mask, threshold=0,
                                                                 reference_mask=alpha > 0)
    assert np.array_equal(np.asarray(after)[..., :3], seen)


def test_sd_upscale_tiles_are_left_alone_with_a_pasted_subject(webui, capsys):
    """The SD upscale script runs the always-on scripts per tile: the subject was pasted into every tile."""
    script, runner = _runner(webui, True)
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[2:14, 2:10] = (230, 40, 40, 255)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated(seed=1)])
    p.extra_generation_params["SD upscale overlap"] = 64  # what the SD upscale script sets before its tiles
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=30, y=20)  # fmt: skip
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    assert "not run on SD upscale's tiles" in capsys.readouterr().out
    assert p.extra_generation_params["PHNet result"].startswith("not run on SD upscale's tiles")  # not "applied"


def test_sd_upscale_tiles_are_left_alone_with_the_inpaint_mask_source_too(webui, capsys):
    """SD upscale from the img2img tab with PHNet's default source, "Inpaint mask": every tile failed with a
    traceback asking for a painted mask, where the other sources get one line saying what to do."""
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated(seed=1)])
    p.extra_generation_params["SD upscale overlap"] = 64
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet")
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    out = capsys.readouterr().out
    assert "not run on SD upscale's tiles (a tile has no inpaint mask of its own); harmonize the picture first, " \
           "then upscale it with PHNet off" in out
    assert p.extra_generation_params["PHNet result"].startswith("not run on SD upscale's tiles")
    assert _reported(webui, capsys)[1] == []


@pytest.mark.parametrize("source", [INPAINT, SUBJECT])
def test_ultimate_sd_upscale_tiles_are_left_alone_whatever_the_mask_source(webui, capsys, source):
    """Ultimate SD upscale runs img2img once per tile with a tile mask: a subject landed in every tile, and the
    inpaint source matched each tile to its own padding."""
    script, runner = _runner(webui, True)
    tile_mask = np.zeros((48, 64), np.uint8)
    tile_mask[8:40, 8:56] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(tile_mask),
                                                          inpaint_full_res=True)
    p.extra_generation_params["Ultimate SD upscale upscaler"] = "R-ESRGAN 4x+"  # set before its tiles
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=source,
                          subject=_subject(), x=30, y=20)
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    result = p.extra_generation_params["PHNet result"]
    assert result.startswith("not run on Ultimate SD upscale's tiles")
    assert ("tile mask is not your inpaint mask" in result) == (source == INPAINT)


def test_every_message_the_script_raises_ends_as_a_sentence():
    """The WebUI shows a message as its own line: each of the script's ends with a period, as nearly all did. (A
    message that ends with a value is read by hand.)"""
    from tests.helpers.messages import last_words, message_templates
    from tests.webui.harness import SCRIPT

    templates = list(message_templates(SCRIPT, returned=True))
    ends = [(where, last_words(message)) for where, message, _ in templates]
    assert len(templates) > 20 and [where for where, end in ends if end is not None and not end.endswith(".")] == []
