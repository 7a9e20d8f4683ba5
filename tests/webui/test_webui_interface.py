"""The script's controls as API clients and saved settings know them, frozen in data/script_interface.json.

``/sdapi/v1/txt2img``'s ``alwayson_scripts`` passes the controls' values as a list, by position; a pasted
infotext restores them by its keys; ui-config.json keeps saved defaults under each control's label. A control
inserted among the others puts every later value of an API client on the wrong setting, and a key renamed leaves
the settings of images made before it behind. New controls go after the last one (``Settings`` and ``ui()``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.webui.harness import open_tab

FILE = Path(__file__).resolve().parent / "data" / "script_interface.json"
RECORD = "PHNET_RECORD_INTERFACE"
FIX = ("API clients pass the values by position: append new controls after the last one (ui() and Settings) "
       "instead, and change tests/webui/data/script_interface.json only with the change")


def current(webui, is_img2img):
    script, _ = open_tab(webui, is_img2img)
    prefix = f"script_{script.tabname}_phnet_harmonize_"
    controls = [[c.elem_id[len(prefix):], c.kind, c.label] for c in script.controls]
    # the choices API clients send by value; of the weights, the fixed ones (the rest are the user's files)
    fixed = {"weights": lambda v: v == webui.script_module.DEFAULT_WEIGHTS or v.startswith("official-")}
    choices = {name: [v for v in c.choices if fixed.get(name, lambda v: True)(v)]
               for name, c in ((c.elem_id[len(prefix):], c) for c in script.controls)
               if c.kind in ("Radio", "Dropdown") and name != "sam_weights"}
    settings = webui.script_module.Settings
    keys = sorted({key for source in choices["mask_source"]  # what every kind of run writes, and pastes back
                   for key in settings(enable=True, mask_source=source, grow=1, threshold=5.0).infotext()})
    return {"controls": controls, "choices": choices, "infotext_keys": keys}


@pytest.mark.parametrize("is_img2img", [False, True])
def test_the_script_keeps_the_interface_api_clients_and_saved_settings_use(webui, is_img2img):
    tab = "img2img" if is_img2img else "txt2img"
    saved = json.loads(FILE.read_text())[tab]
    now = current(webui, is_img2img)
    names = [c[0] for c in now["controls"]]
    assert names[: len(saved["controls"])] == [c[0] for c in saved["controls"]], f"{names}: {FIX}"
    assert now["controls"][: len(saved["controls"])] == saved["controls"], (
        "a control's kind or label changed (a label keys the defaults saved in ui-config.json): " + FIX)
    for name, choices in saved["choices"].items():
        assert set(choices) <= set(now["choices"][name]), f"{name} lost choices that API clients send: {FIX}"
    assert set(saved["infotext_keys"]) <= set(now["infotext_keys"]), (
        "an infotext key is gone, and images made before it no longer give their settings back")
    if now != saved and os.environ.get(RECORD):
        whole = json.loads(FILE.read_text())
        FILE.write_text(json.dumps({**whole, tab: now}, indent=1) + "\n")
        return
    assert now == saved, f"the script grew in a way old settings survive: record it with {RECORD}=1 pytest {__file__}"


def test_the_do_no_harm_threshold_says_its_unit_and_that_it_is_not_sams(webui):
    """The label is frozen (saved defaults key by it); its help says the unit, and that SAM's mask threshold (in
    logits on the ComfyUI node) is another one."""
    info = webui.script_module.THRESHOLD_INFO
    assert info.startswith("In 8-bit levels") and "not SAM's mask threshold" in info
