"""The SAM box mask source: SAM's checkpoints, its device and its box, one request at a time or several at once."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from tests.webui.harness import SAM, _args, _changed_only_inside, _fails, _generated, _postprocess, _runner


def test_sam_box_is_harmonized(webui):
    from phnet.sam import SamSegmenter

    script, runner = _runner(webui, False)
    box = (8, 4, 40, 30)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=box[0], box_y0=box[1], box_x1=box[2],
                          box_y1=box[3])  # fmt: skip
    before = _generated()
    seg = SamSegmenter.from_pretrained(webui.models_path / "sam" / "tiny_sam.safetensors", device="cpu")
    seg.set_image(before)
    expected = seg.predict(box=box)
    assert expected.sum() > 0
    _changed_only_inside(before, _postprocess(webui, runner, p, before), expected)
    assert p.extra_generation_params["PHNet SAM"] == "tiny_sam.safetensors, box (8, 4, 40, 30)"


def test_a_box_sent_as_floats_is_rounded_once_for_sam_and_the_infotext(webui, monkeypatch):
    # SAM segmented the box as sent, and the infotext recorded it rounded down: another box when pasted back
    from phnet.sam import SamSegmenter

    boxes = []
    real = SamSegmenter.segment
    monkeypatch.setattr(SamSegmenter, "segment", lambda self, image, *a, box=None, **k: boxes.append(box) or
                        real(self, image, *a, box=box, **k))
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=8.6, box_y0=4.4, box_x1=40.7,
                          box_y1=29.5)  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert boxes == [(9, 4, 41, 30)]
    assert p.extra_generation_params["PHNet SAM"] == "tiny_sam.safetensors, box (9, 4, 41, 30)"


def test_sam_waits_on_the_cpu_between_images(webui, monkeypatch):
    """The cached SAM stayed on the WebUI's GPU for the whole session (a vit_h holds 2.5 GB that the next
    generation needs): it now runs on the WebUI's device and goes back to the CPU after each image, and a
    new SAM choice drops the old model before the new one loads."""
    import torch
    from phnet.sam import SamSegmenter

    m = webui.script_module
    harmonizer = m.load_harmonizer("tiny-phnet", m._models_dirs()[0])  # PHNet on the CPU: only SAM's moves count
    monkeypatch.setattr(m, "load_harmonizer", lambda choice, phnet_dir: harmonizer)
    # the stand-in WebUI generates on the CPU, where a move to its device and none could not be told apart
    monkeypatch.setattr(importlib.import_module("modules.devices"), "device", torch.device("cuda", 7))
    moves = []
    monkeypatch.setattr(SamSegmenter, "to", lambda self, device: moves.append(str(device)) or self)
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=8, box_y0=4, box_x1=40, box_y1=30)  # fmt: skip
    for seed in range(2):
        _postprocess(webui, runner, p, _generated(seed=seed))
        assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")
    assert moves == ["cuda:7", "cpu"] * 2
    seg = webui.script_module._loaded["sam"][1]
    assert seg.device.type == "cpu" and next(seg.model.parameters()).device.type == "cpu"

    built = []
    monkeypatch.setattr(webui.script_module, "_loaded", {"sam": (("old",), seg)})
    webui.script_module._cached("sam", ("new",), lambda: built.append(dict(webui.script_module._loaded)) or seg)
    assert built == [{}]


def test_a_sam_box_outside_the_picture_is_refused_before_sam_moves_or_encodes(webui, capsys, monkeypatch):
    """The box was checked only after SAM had gone to the WebUI's device and encoded the picture."""
    from phnet.sam import SamSegmenter

    calls = []
    real_to, real_encode = SamSegmenter.to, SamSegmenter._encode
    monkeypatch.setattr(SamSegmenter, "to", lambda self, device: calls.append(f"to {device}") or real_to(self, device))
    monkeypatch.setattr(SamSegmenter, "_encode",
                        lambda self, *a, **k: calls.append("encode") or real_encode(self, *a, **k))
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=70, box_y0=4, box_x1=90, box_y1=30)  # fmt: skip
    _fails(webui, capsys, runner, p, r"^PHNet: box \(70.0, 4.0, 90.0, 30.0\) has no area inside the 64x48 image .*"
                                     r"in pixels\.$")  # the library's refusal as the WebUI's own sentence
    assert p.extra_generation_params["PHNet result"].startswith("not run: box (70.0, 4.0, 90.0, 30.0) has no area")
    assert p.extra_generation_params["PHNet result"].endswith("in pixels.")
    assert calls == []


def test_two_requests_at_once_each_get_the_sam_mask_of_their_own_picture(webui, monkeypatch):
    """The cached SAM encoded one request's picture and decoded its box in two calls: another request's picture,
    encoded in between, gave the first its mask (a wrong region harmonized, and the infotext said it changed)."""
    import threading

    m = webui.script_module
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    box = (8, 4, 40, 30)
    first, second = _generated(seed=0), _generated(seed=5)
    alone = [seg.segment(picture, box=box) for picture in (first, second)]
    assert not np.array_equal(*alone)
    seg.reset_image()
    other = []

    class Lock:  # SAM's lock, which lets the second request in once the first lets go of it with its picture set
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            self.lock.acquire()

        def __exit__(self, *exc):
            self.lock.release()
            if not other and seg.is_image_set and threading.current_thread() is threading.main_thread():
                other.append(threading.Thread(target=lambda: other.append(m._segment(seg, second, box))))
                other[0].start()
                other[0].join(timeout=30)

    seg._lock = Lock(seg._lock)
    got = m._segment(seg, first, box)
    other[0].join(timeout=30)
    assert np.array_equal(got, alone[0]) and np.array_equal(other[1], alone[1])


def test_sam_stays_on_the_device_until_the_last_request_at_once_is_done(webui, monkeypatch):
    """Each request moved SAM back to the CPU when it was done: one still to segment then ran there (a vit_h encode
    on the CPU takes a minute)."""
    import threading

    import torch

    m = webui.script_module
    monkeypatch.setattr(importlib.import_module("modules.devices"), "device", torch.device("cuda", 7))
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    where, ran_on, second_moved, first_done = ["cpu"], [], threading.Event(), threading.Event()

    def to(device):
        where[0] = str(device)
        if threading.current_thread() is not threading.main_thread():
            second_moved.set()
        return seg

    def segment(image, box):
        if threading.current_thread() is threading.main_thread():  # the first request lets the second move SAM in
            second.start()
            second_moved.wait(5)
        else:  # the second segments once the first is done
            first_done.wait(5)
        ran_on.append(where[0])
        return np.zeros((image.height, image.width), np.float32)

    monkeypatch.setattr(seg, "to", to)
    monkeypatch.setattr(seg, "segment", segment)
    picture, box = _generated(seed=0), (8, 4, 40, 30)
    second = threading.Thread(target=lambda: m._segment(seg, picture, box))
    m._segment(seg, picture, box)
    first_done.set()
    second.join(10)
    assert ran_on == ["cuda:7", "cuda:7"] and where == ["cpu"]


def test_a_picture_sam_cannot_encode_is_refused_before_sam_moves(webui, monkeypatch):
    """A picture too narrow for SAM (its short side scaled to 0) moved SAM to the device and failed in its encode."""
    from PIL import Image

    m = webui.script_module
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    moved = []
    monkeypatch.setattr(seg, "to", lambda device: moved.append(device))
    with pytest.raises(ValueError, match="short side would be 0"):
        m._segment(seg, Image.new("RGB", (4000, 1)), (0, 0, 10, 1))
    assert moved == []


def test_sam_choices(webui):
    m = webui.script_module
    sam_dirs = [str(webui.models_path / "sam"), str(webui.models_path / "sams")]
    assert m.sam_choices(sam_dirs) == ["tiny_sam.safetensors"]
    seg = m.load_segmenter("tiny_sam.safetensors", sam_dirs)
    assert m.load_segmenter("tiny_sam.safetensors", sam_dirs) is seg
    import os

    weights = webui.models_path / "sam" / "tiny_sam.safetensors"
    later = weights.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(later, later))  # downloaded again, or replaced under the same name
    assert m.load_segmenter("tiny_sam.safetensors", sam_dirs) is not seg  # the old model was served on
    quoted = f'"{weights}"'  # Explorer's "Copy as path", as the Weights field takes it
    assert m.load_segmenter(quoted, sam_dirs) is not None


def test_a_sam_repo_with_several_checkpoints_is_met_with_the_webuis_way_to_choose(webui, monkeypatch):
    from phnet.sam import SamSegmenter, SeveralCheckpoints

    def several(*args, **kwargs):
        raise SeveralCheckpoints("Hugging Face repo 'someone/sams'", ["a.pth", "b.pth"])

    monkeypatch.setattr(SamSegmenter, "from_pretrained", several)
    with pytest.raises(SeveralCheckpoints, match=r"; choose one: type the file after the repo, someone/sams:FILE\.$"):
        webui.script_module.load_segmenter("someone/sams", [str(webui.models_path / "sam")])
    with pytest.raises(SeveralCheckpoints, match=r"; choose one: pick the file itself, or give its full path\.$"):
        webui.script_module.load_segmenter("tiny_sam.safetensors", [str(webui.models_path / "sam")])
