"""The weights the script loads: its list and default, paths, Hub repos and official names, loaded once and again
when they change."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.webui.harness import DEFAULT, INPAINT, OFFICIAL, _args, _generated, _postprocess, _runner


def test_models_are_loaded_once(webui, monkeypatch):
    from phnet import Harmonizer

    calls = []
    real = Harmonizer.from_pretrained.__func__

    def counting(cls, *a, **k):
        calls.append(a)
        return real(cls, *a, **k)

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(counting))
    script, runner = _runner(webui, True)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(mask),
                                                          inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    for seed in range(3):  # a batch of three images
        _postprocess(webui, runner, p, _generated(seed=seed))
    assert len(calls) == 1


def test_weights_list_and_default(webui, tmp_path):
    m = webui.script_module
    phnet_dir = webui.models_path / "PHNet"
    (phnet_dir / "official.pth").write_bytes(b"")
    (phnet_dir / "notes.txt").write_text("ignored")
    assert m.phnet_choices(str(phnet_dir)) == [DEFAULT, *OFFICIAL, "official.pth", "tiny-phnet"]
    assert m.phnet_choices(str(tmp_path / "missing")) == [DEFAULT, *OFFICIAL]
    (phnet_dir / "official-ffhqh512").mkdir()
    (phnet_dir / "official-ffhqh512" / "config.json").write_text("{}")  # a downloaded copy: listed once
    assert m.phnet_choices(str(phnet_dir)).count("official-ffhqh512") == 1
    # the bundled default loads with no download (HF offline for the whole test run in CI)
    h = m.load_harmonizer(DEFAULT, str(phnet_dir))
    assert h.config.name == "default-cpu" and h.device.type == "cpu"  # modules.devices.device
    assert m.load_harmonizer("", str(phnet_dir)) is h  # cached


def test_missing_default_weights_say_what_to_do(webui, monkeypatch, tmp_path):
    import phnet.weights

    monkeypatch.setattr(phnet.weights, "DEFAULT_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no bundled default PHNet weights.*models.PHNet.*Hugging Face repo id"):
        webui.script_module.load_harmonizer(DEFAULT, str(webui.models_path / "PHNet"))


def test_weights_by_path_and_by_repo_id(webui, monkeypatch):
    from phnet import Harmonizer

    m = webui.script_module
    h = m.load_harmonizer(str(webui.models_path / "PHNet" / "tiny-phnet"), str(webui.models_path / "PHNet"))
    assert h.config.image_size == 64
    asked = []
    monkeypatch.setattr(Harmonizer, "from_pretrained",
                        classmethod(lambda cls, source, **kw: asked.append((source, kw))))
    m.load_harmonizer("someone/phnet-weights@v1", str(webui.models_path / "PHNet"))
    assert asked[0][0] == "someone/phnet-weights" and asked[0][1]["revision"] == "v1"
    m.load_harmonizer("official-ffhqh512", str(webui.models_path / "PHNet"))  # downloaded into models/PHNet
    assert asked[1][0] == "official-ffhqh512" and asked[1][1]["cache_dir"] == str(webui.models_path / "PHNet")


def test_a_weights_path_that_does_not_exist_is_named_as_a_path(webui, tmp_path):
    """A mistyped path was 'not found in models/PHNet, and it is neither an official name nor a Hugging Face repo
    id', as if it were meant for one of those."""
    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    missing = tmp_path / "runs" / "best.safetensors"
    for choice, said in ((str(missing), f"no file or folder at {missing};"), ("mine.pth", f"no file or folder at "
                         f"mine.pth or in {phnet_dir};"), ("runs/a/b", "no file or folder at runs/a/b or in")):
        with pytest.raises(FileNotFoundError) as refused:
            m.load_harmonizer(choice, phnet_dir)
        assert said in str(refused.value) and "check the path, or pick an entry from the list" in str(refused.value)
    with pytest.raises(FileNotFoundError, match="neither an official name nor a Hugging Face repo id"):
        m.load_harmonizer("no such weights", phnet_dir)


def test_an_official_name_whose_folder_exists_goes_through_the_official_fetch(webui, monkeypatch):
    """models/PHNet/official-X was loaded as a plain folder: a .pth put there by hand was unpickled on every load
    and never converted, and a damaged converted copy, once deleted, could not be made again by picking the name."""
    import torch

    from phnet import PHNet, PHNetConfig, config, official, state_dicts

    name, file = "official-ffhqh512", "best_ffhqh512.pth"
    tiny = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    monkeypatch.setitem(config.PRESETS, "tiny-official", tiny)
    monkeypatch.setitem(official.OFFICIAL, name, official.OfficialWeights(name, file, "x.pth", "tiny-official", 64,
                                                                          "FFHQH"))
    m = webui.script_module
    phnet_dir = webui.models_path / "PHNet"
    (phnet_dir / name).mkdir()
    torch.save(PHNet(tiny).state_dict(), phnet_dir / name / file)
    unpickled = []
    load = state_dicts.safe_torch_load
    monkeypatch.setattr(state_dicts, "safe_torch_load", lambda *a, **k: unpickled.append(a[0]) or load(*a, **k))
    assert m.load_harmonizer(name, str(phnet_dir)).config.name == name
    assert (phnet_dir / name / "model.safetensors").is_file()  # converted once
    m.clear_loaded_models()
    assert m.load_harmonizer(name, str(phnet_dir)).config.name == name and len(unpickled) == 1
    copy = phnet_dir / name / "model.safetensors"
    copy.write_bytes(copy.read_bytes()[:100])
    m.clear_loaded_models()
    with pytest.raises(state_dicts.DamagedFile, match="Delete that file and load official-ffhqh512 again"):
        m.load_harmonizer(name, str(phnet_dir))
    copy.unlink()  # as that says: converted again from the .pth beside it
    converted = m.load_harmonizer(name, str(phnet_dir))
    assert converted.config.name == name and copy.is_file()
    assert m.load_harmonizer(name, str(phnet_dir)) is converted  # kept under its new copy: it was read again


def test_requests_arriving_together_load_the_weights_once(webui, monkeypatch):
    """Each request built its own model outside the lock: four at once read the same weights four times and held
    four copies (a SAM vit_h is 2.5 GB each)."""
    import threading
    import time

    from phnet import Harmonizer

    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    built = []
    load = Harmonizer.from_pretrained.__func__

    def slow_load(cls, *args, **kwargs):
        built.append(1)
        time.sleep(0.2)  # a large checkpoint being read: the other requests arrive meanwhile
        return load(cls, *args, **kwargs)

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(slow_load))
    together = threading.Barrier(4, timeout=5)
    got = []

    def request():
        together.wait()
        got.append(m.load_harmonizer("tiny-phnet", phnet_dir))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 4 and all(h is got[0] for h in got)
    # official weights are keyed by their copy, which the first build downloads: the others find it once built
    copy = []
    m.clear_loaded_models()
    got.clear()

    def download():
        time.sleep(0.2)
        copy.append("stamp")
        return object()

    def official_request():
        together.wait()
        got.append(m._cached("phnet", lambda: tuple(copy), download))

    threads = [threading.Thread(target=official_request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert copy == ["stamp"] and len(got) == 4 and all(h is got[0] for h in got)


def test_weights_retrained_under_the_same_name_are_loaded_again(webui):
    import os

    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    first = m.load_harmonizer("tiny-phnet", phnet_dir)
    assert m.load_harmonizer("tiny-phnet", phnet_dir) is first
    weights = webui.models_path / "PHNet" / "tiny-phnet" / "model.safetensors"
    later = weights.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(later, later))  # written again by a training run
    assert m.load_harmonizer("tiny-phnet", phnet_dir) is not first


def test_the_bundled_weights_say_how_much_of_the_correction_they_applied(webui, capsys):
    from pathlib import Path

    from phnet import PHNetConfig
    from phnet.sources import BUNDLED_DIR

    examples = Path(__file__).resolve().parents[2] / "examples"
    image = Image.open(examples / "composite.png").convert("RGB")
    mask = Image.open(examples / "mask.png").convert("L")
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=image.width, height=image.height, init_images=[image],
                                                          mask=mask, inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights=DEFAULT, mask_source=INPAINT)
    shortened = np.abs(np.asarray(_postprocess(webui, runner, p, image), float) - np.asarray(image, float)).mean()
    result = p.extra_generation_params["PHNet result"]
    threshold = PHNetConfig.load(BUNDLED_DIR / "config.json").correction_threshold
    assert result.startswith("changed by RMS") and f"which is below the do-no-harm threshold {threshold:g}" in result
    assert "official-ffhqh512" in result and f"PHNet: {result}" in capsys.readouterr().out
    p.extra_generation_params.clear()
    p.script_args = _args(webui, runner, script, enable=True, weights=DEFAULT, mask_source=INPAINT, threshold=0.0)
    raw = np.abs(np.asarray(_postprocess(webui, runner, p, image), float) - np.asarray(image, float)).mean()
    assert 0 < shortened < raw
    assert p.extra_generation_params["PHNet threshold"] == 0.0
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


def test_hub_weights_missing_offline_point_at_the_webui_s_folder(webui, monkeypatch, tmp_path, own_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    webui.script_module.clear_loaded_models()
    with pytest.raises(FileNotFoundError, match="put the weights in .* and pick them under 'Weights'"):
        webui.script_module.load_harmonizer("someone/phnet-portraits", str(tmp_path / "PHNet"))


@pytest.mark.parametrize("choice, advice", [("someone/phnet-gone", "In the WebUI you may also put the weights"),
                                            ("", "In the WebUI: put weights in")])
def test_missing_weights_ending_as_a_sentence_are_followed_by_the_webui_s_words_after_one_period(
        webui, monkeypatch, tmp_path, choice, advice):
    """The WebUI's advice follows the library's words as a clause: a closing period of theirs is not doubled."""
    from phnet import Harmonizer

    def missing(cls, source, **kw):
        raise FileNotFoundError("the weights are gone.")

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(missing))
    webui.script_module.clear_loaded_models()
    with pytest.raises(FileNotFoundError) as e:
        webui.script_module.load_harmonizer(choice, str(tmp_path / "PHNet"))
    assert str(e.value).startswith(f"the weights are gone. {advice}")
