"""The official weights in the loader's list, downloaded into models/phnet with ComfyUI's progress bar, and
the Harmonize node's report when the bundled weights' do-no-harm threshold leaves a subject unchanged."""
from __future__ import annotations

import importlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.file_server import FileServer

NAME, FILE = "official-ffhqh512", "best_ffhqh512.pth"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _core(pack, module: str):
    return importlib.import_module(f"{pack.__name__}.phnet.{module}")  # the pack's own copy of the library


def test_the_list_offers_the_official_names_and_hides_their_converted_copies(pack, comfy_env):
    copy = comfy_env.base / "models" / "phnet" / "official-iharmony512"
    copy.mkdir(parents=True, exist_ok=True)
    (copy / "model.safetensors").write_bytes(b"")
    try:
        choices = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    finally:
        (copy / "model.safetensors").unlink()
    assert choices[:5] == ["default (bundled)", "official-iharmony512", "official-ffhqh256", NAME, "official-ffhqh1024"]
    assert not any(c.startswith("official-iharmony512/") for c in choices)
    tooltip = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"].INPUT_TYPES()["required"]["model_name"][1]["tooltip"]
    assert "non-commercial" in tooltip and "CC BY-SA 4.0" in tooltip


def test_picking_an_official_name_downloads_it_into_models_phnet_with_progress(pack, nodes, comfy_env, monkeypatch,
                                                                             tmp_path):
    official, config = _core(pack, "official"), _core(pack, "config")
    tiny = config.PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    monkeypatch.setitem(config.PRESETS, "tiny-official", tiny)
    monkeypatch.setitem(official.OFFICIAL, NAME, official.OfficialWeights(NAME, FILE, "x.pth", "tiny-official", 64,
                                                                          "FFHQH"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    modeling = _core(pack, "modeling")
    buffer = io.BytesIO()
    torch.save(modeling.PHNet(tiny).state_dict(), buffer)
    seen = []
    monkeypatch.setattr(comfy_env.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        seen.append((value, total)))
    target = comfy_env.base / "models" / "phnet" / NAME
    with FileServer() as site:
        site.files[FILE] = buffer.getvalue()
        monkeypatch.setenv(official.BASE_URL_ENV, site.url)
        loader = nodes["PHNetModelLoader"]
        assert loader.VALIDATE_INPUTS(model_name=NAME) is True
        cls = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"]
        try:
            first = cls.IS_CHANGED(NAME, "")
            (model,) = loader.load(NAME, "", "cpu", "auto")
            assert (target / "model.safetensors").is_file() and model.config.name == NAME
            # the copy just written is the one loaded: the next run is not a change (ComfyUI would load it again
            # and run every node after it), and a load finds the same model
            assert cls.IS_CHANGED(NAME, "") == first and loader.load(NAME, "", "cpu", "auto")[0] is model
            assert seen[-1] == (len(buffer.getvalue()),) * 2
        finally:
            import shutil

            shutil.rmtree(target, ignore_errors=True)


def test_a_models_phnet_that_cannot_be_written_is_told_in_comfyui_s_words(pack, nodes, monkeypatch):
    """The library's advice (PHNET_HOME, cache_dir=) does nothing for the folders ComfyUI gives it."""
    official = _core(pack, "official")
    monkeypatch.setattr(official.tempfile, "mkstemp",
                        lambda **kw: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(PermissionError) as e:
        nodes["PHNetModelLoader"].load(NAME, "", "cpu", "auto")
    message = str(e.value)
    assert "PHNET_HOME" not in message and "cache_dir" not in message
    assert "make it writable. In ComfyUI: list a writable folder under 'phnet:' in extra_model_paths.yaml" in message
    assert f"put {FILE} (from {official.OFFICIAL[NAME].url}) into a phnet folder by hand" in message



def test_a_refusal_ending_as_a_sentence_is_followed_by_comfyui_s_words_after_one_period(pack, nodes, monkeypatch):
    """ComfyUI's advice follows the library's words as a clause: a closing period of theirs is not doubled."""
    harmonizer = _core(pack, "harmonizer").Harmonizer

    def refuse(cls, source, **kw):
        raise PermissionError("cannot write the download here.")

    monkeypatch.setattr(harmonizer, "from_pretrained", classmethod(refuse))
    with pytest.raises(PermissionError) as e:
        nodes["PHNetModelLoader"].load(NAME, "", "cpu", "auto")
    assert str(e.value).startswith("cannot write the download here. In ComfyUI: list a writable folder")


def test_an_official_name_typed_as_the_hub_repo_is_kept_in_models_phnet_too(pack, comfy_env):
    loaders = importlib.import_module(f"{pack.__name__}.nodes.loaders")
    source, extra = loaders.resolve_phnet_source("default (bundled)", f" {NAME} ")
    assert source == NAME and str(comfy_env.base / "models" / "phnet") in map(str, extra["cache_dir"])


def test_the_harmonize_node_says_how_much_of_the_correction_the_bundled_weights_applied(nodes):
    (model,) = nodes["PHNetModelLoader"].load("default (bundled)", "", "cpu", "auto")
    image = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "composite.png").convert("RGB"))[None] / 255.0).float()
    mask = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "mask.png").convert("L"))[None] / 255.0).float()
    out = nodes["PHNetHarmonize"].harmonize(model, image, mask)
    result, report = out["result"]
    shortened = float((result - image).abs().mean())
    assert out["ui"]["text"] == [report] and report.startswith("PHNet Harmonize: changed by RMS")
    assert "which is below the do-no-harm threshold" in report and "threshold 0" in report and NAME in report
    result, report = nodes["PHNetHarmonize"].harmonize(model, image, mask, threshold=0.0)["result"]
    assert 0 < shortened < float((result - image).abs().mean()) and "below the do-no-harm" not in report
    frames = nodes["PHNetHarmonizeFrames"].harmonize(model, image.repeat(2, 1, 1, 1), mask)["result"][1]
    assert (frames.startswith("PHNet Harmonize Frames: 2 of 2 frames changed")
            and "2 below the do-no-harm threshold" in frames)


def _tiny_official_copy(pack, comfy_env, monkeypatch):
    """A tiny network registered as the official weights NAME, saved where the loader keeps their converted copy:
    → that folder (64-pixel working size)."""
    import dataclasses

    official, config, weights = _core(pack, "official"), _core(pack, "config"), _core(pack, "weights")
    tiny = config.PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    monkeypatch.setitem(config.PRESETS, "tiny-official", tiny)
    monkeypatch.setitem(official.OFFICIAL, NAME, official.OfficialWeights(NAME, FILE, "x.pth", "tiny-official", 64,
                                                                          "FFHQH"))
    target = comfy_env.base / "models" / "phnet" / NAME
    weights.save_pretrained(_core(pack, "modeling").PHNet(dataclasses.replace(tiny, name=NAME)), target)
    return target


def test_an_official_copy_whose_config_json_is_tuned_is_loaded_again(pack, nodes, comfy_env, monkeypatch):
    """Picked by name, the official weights were cached by the name alone: a threshold or working size tuned in
    their copy's config.json (as the README invites) never reached a running ComfyUI."""
    import os
    import shutil
    import time

    target = _tiny_official_copy(pack, comfy_env, monkeypatch)
    cls = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"]
    try:
        before = cls.IS_CHANGED(NAME, "")
        assert nodes["PHNetModelLoader"].load(NAME, "", "cpu", "fp32")[0].config.image_size == 64
        # a copy that was there before is no change once loaded (under a hand-made mutant it was then known by its
        # name, which reads as a change: ComfyUI ran the loader and every node after it again)
        assert cls.IS_CHANGED(NAME, "") == before
        text = (target / "config.json").read_text()
        (target / "config.json").write_text(text.replace('"image_size": 64', '"image_size": 48'))
        later = time.time() + 5
        os.utime(target / "config.json", (later, later))
        assert cls.IS_CHANGED(NAME, "") != before and cls.IS_CHANGED("default (bundled)", NAME) != before
        assert nodes["PHNetModelLoader"].load(NAME, "", "cpu", "fp32")[0].config.image_size == 48
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_workflow_that_picked_the_official_copy_as_a_file_loads_it_by_its_name(pack, nodes, comfy_env,
                                                                                  monkeypatch):
    """Before the official names were listed, their converted copy was listed as a file
    (official-ffhqh512/model.safetensors), and a workflow saved then holds that name: it must validate and load the
    same weights, not fail as a model missing from models/phnet."""
    import shutil

    target = _tiny_official_copy(pack, comfy_env, monkeypatch)
    cls, saved = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"], f"{NAME}/model.safetensors"
    try:
        assert saved not in cls.INPUT_TYPES()["required"]["model_name"][0]
        assert cls.VALIDATE_INPUTS(saved, "") is True
        assert cls.IS_CHANGED(saved, "") == cls.IS_CHANGED(NAME, "")
        assert nodes["PHNetModelLoader"].load(saved, "", "cpu", "fp32")[0].config.name == NAME
        assert cls.VALIDATE_INPUTS("official-ffhqh512/other.safetensors", "") is not True  # only the copy's name
    finally:
        shutil.rmtree(target, ignore_errors=True)
