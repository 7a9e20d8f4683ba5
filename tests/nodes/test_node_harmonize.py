"""PHNet loader + Harmonize node on a tiny random PHNet saved to models/phnet."""

from __future__ import annotations

import logging
from importlib import import_module

import pytest
import torch



@pytest.fixture(scope="module")
def portrait(helpers):
    return helpers.portrait


def test_loader_lists_and_loads(pack, phnet_model, tiny_phnet):
    # the pack's own copy of the core (reached by a relative import), not whatever `phnet` is installed
    Harmonizer = import_module(pack.__name__ + ".phnet.harmonizer").Harmonizer
    assert isinstance(phnet_model, Harmonizer)
    assert phnet_model.config.image_size == 64
    assert phnet_model.device.type == "cpu"


def test_loader_loads_fp16_on_cpu_and_says_it_is_slow(nodes, caplog):
    """The library's rule (phnet.precision.slow_on): slower than fp32, said, and run, as the phnet command runs it
    and as the loader runs bf16 on a CPU without AMX; the loader alone refused it."""
    with caplog.at_level(logging.WARNING, logger="phnet"):
        model = nodes["PHNetModelLoader"].load("default (bundled)", "", "cpu", "fp16")[0]
    assert model.dtype == torch.float16 and model.device.type == "cpu"
    assert ("phnet: fp16 on the CPU has no fast convolutions and runs slower than fp32: choose dtype 'fp32' or "
            "'auto'") in caplog.messages


def test_loader_validation(pack, tiny_phnet):
    cls = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"]
    assert cls.VALIDATE_INPUTS(model_name=tiny_phnet) is True
    assert cls.VALIDATE_INPUTS(model_name="default (bundled)") is True
    assert "models/phnet" in cls.VALIDATE_INPUTS(model_name="gone.safetensors")
    assert cls.VALIDATE_INPUTS(model_name=None) is True  # a link (a switch node's output): checked when it runs
    # a shared workflow's stale file name is unused when hub_repo_id is set: not refused before it runs
    assert cls.VALIDATE_INPUTS(model_name="gone.safetensors", hub_repo_id="owner/name") is True
    assert "give hub_repo_id" in cls.VALIDATE_INPUTS(model_name="gone.safetensors", hub_repo_id="  ")


def test_loader_hub_id_may_be_a_local_folder(nodes, comfy_env, tiny_phnet):
    folder = comfy_env.base / "models" / "phnet" / tiny_phnet.split("/")[0]
    (m,) = nodes["PHNetModelLoader"].load("default (bundled)", str(folder), "cpu", "fp32")
    assert m.config.image_size == 64


def test_loader_reloads_weights_changed_on_disk_in_a_folder_or_given_as_a_path(pack, comfy_env, tiny_phnet, nodes):
    """A folder's config.json is read with the weights picked in it, and a local path in hub_repo_id is watched
    like a picked file (it was cached by its text: replaced weights were never reloaded)."""
    import os
    import time

    cls = pack.NODE_CLASS_MAPPINGS["PHNetModelLoader"]
    folder = comfy_env.base / "models" / "phnet" / tiny_phnet.split("/")[0]
    config = folder / "config.json"
    assert (folder / "model.safetensors").is_file() and config.is_file()
    text = config.read_text()
    as_picked, as_path = cls.IS_CHANGED(tiny_phnet, ""), cls.IS_CHANGED("default (bundled)", str(folder))
    file_path = cls.IS_CHANGED("default (bundled)", str(folder / "model.safetensors"))
    quoted = cls.IS_CHANGED("default (bundled)", f'"{folder}"')  # as Explorer's "Copy as path" gives it
    assert quoted == as_path
    try:
        (m,) = nodes["PHNetModelLoader"].load(tiny_phnet, "", "cpu", "fp32")
        assert m.config.image_size == 64
        config.write_text(text.replace('"image_size": 64', '"image_size": 48'))
        later = time.time() + 5
        os.utime(config, (later, later))
        assert cls.IS_CHANGED(tiny_phnet, "") != as_picked
        assert cls.IS_CHANGED("default (bundled)", str(folder)) != as_path
        assert cls.IS_CHANGED("default (bundled)", f'"{folder}"') != quoted
        assert cls.IS_CHANGED("default (bundled)", str(folder / "model.safetensors")) != file_path
        (m,) = nodes["PHNetModelLoader"].load(tiny_phnet, "", "cpu", "fp32")
        assert m.config.image_size == 48  # the folder's config.json, with the file picked in it
    finally:
        config.write_text(text)


def test_the_loader_given_a_sam_checkpoint_names_it(nodes, comfy_env, tiny_sam):
    sam_file = comfy_env.base / "models" / "sams" / tiny_sam
    with pytest.raises(ValueError) as e:
        nodes["PHNetModelLoader"].load("default (bundled)", str(sam_file), "cpu", "fp32")
    assert str(e.value) == (f"{sam_file}: this is not a PHNet state_dict (no 'encoder.0.0.weight' tensor; it holds a "
                            "Segment Anything (SAM) model's weights): give a file of PHNet weights")


def test_loader_offline_hub_error_is_clear(nodes, monkeypatch, own_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        nodes["PHNetModelLoader"].load("default (bundled)", "nobody/no-such-phnet", "auto", "auto")
    # a mistyped Windows path or a pasted URL is no owner/name:file: kept as typed, named as not found
    for typed in (r"D:\ComfyUI\models\phnet\mine.safetensors", "https://huggingface.co/someone/phnet-x"):
        with pytest.raises(FileNotFoundError) as refused:
            nodes["PHNetModelLoader"].load("default (bundled)", typed, "auto", "auto")
        assert repr(typed) in str(refused.value) or typed in str(refused.value)


def test_harmonize_batch_and_broadcast(nodes, phnet_model, comfy_env, portrait):
    img, subject = portrait(b=2, h=40, w=56)
    comfy_env.calls.clear()
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject[:1], strength=1.0, working_size=0)["result"]
    assert out.shape == img.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert 0 <= out.min() and out.max() <= 1
    outside = subject[0] == 0
    assert torch.equal(out[:, outside], img[:, outside])  # background bit-identical
    assert not torch.allclose(out[:, ~outside], img[:, ~outside])


def test_one_image_is_harmonized_once_per_mask_of_a_batch(nodes, phnet_model, portrait):
    """Several subjects' masks (SAM, a mask batch) for one image were refused: "3 masks for 1 image"."""
    img, subject = portrait(b=1, h=40, w=56)
    masks = torch.stack([subject[0], subject[0].roll(12, 1), torch.zeros_like(subject[0])])
    out, report = nodes["PHNetHarmonize"].harmonize(phnet_model, img, masks)["result"]
    assert out.shape == (3, *img.shape[1:])
    for k in range(2):
        alone, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, img, masks[k : k + 1])["result"]
        torch.testing.assert_close(out[k : k + 1], alone, atol=1e-6, rtol=0)
    assert torch.equal(out[2:], img) and "1 with an empty mask" in report
    for channel_last in (subject[:1, ..., None], masks[..., None]):  # B×H×W×1 is B masks, not B·H
        out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, img, channel_last)["result"]
        assert out.shape == (channel_last.shape[0], *img.shape[1:])


def test_the_working_size_widget_steps_between_sizes_the_network_takes(nodes):
    spec = nodes["PHNetHarmonize"].INPUT_TYPES()["optional"]["working_size"][1]
    assert spec["min"] == 0 and spec["step"] >= 16 and spec["step"] % 8 == 0  # 0, then 16: never 8


def test_harmonize_strength_and_working_size(nodes, phnet_model, portrait):
    img, subject = portrait(b=1)
    node = nodes["PHNetHarmonize"]
    zero, _ = node.harmonize(phnet_model, img, subject, strength=0.0)["result"]
    assert torch.equal(zero, img)
    full, _ = node.harmonize(phnet_model, img, subject, strength=1.0)["result"]
    half, _ = node.harmonize(phnet_model, img, subject, strength=0.5)["result"]
    torch.testing.assert_close(half, (img + full) / 2, atol=2e-3, rtol=0)
    small, _ = node.harmonize(phnet_model, img, subject, working_size=32)["result"]
    assert small.shape == img.shape
    with pytest.raises(ValueError, match="multiple of 8"):
        node.harmonize(phnet_model, img, subject, working_size=30)


def test_harmonize_resizes_a_mask_made_before_the_image_was_scaled_and_refuses_another_shape(nodes, phnet_model,
                                                                                             portrait):
    """An upscaler or hires fix after the paste: the mask of the smaller picture is resized to it and the report
    says so; a mask of another shape is someone else's."""
    img, _ = portrait(b=1, h=80, w=112)
    mask = torch.zeros(1, 40, 56)
    mask[:, 10:30, 15:40] = 1
    (out, line), (exact, _) = (nodes["PHNetHarmonize"].harmonize(phnet_model, img, m, threshold=0.0)["result"]
                               for m in (mask, torch.nn.functional.interpolate(mask[:, None], size=(80, 112),
                                                                               mode="bilinear")[:, 0]))
    assert torch.equal(out, exact) and "'mask' was 56x40, resized to the image's 112x80" in line
    with pytest.raises(ValueError, match=r"'mask' is 56x50 pixels but the image is 112x80, another shape"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, img, torch.ones(1, 50, 56))


def test_harmonize_rejects_nonsense(nodes, phnet_model, portrait):
    img, subject = portrait(b=2)
    node = nodes["PHNetHarmonize"]
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        node.harmonize(phnet_model, img, subject[:1].repeat(3, 1, 1))
    with pytest.raises(ValueError, match=r"2 reference masks for 3 masks \(the one image is harmonized once per "
                                         r"mask\): give one reference mask, or one per mask"):
        node.harmonize(phnet_model, img[:1], subject[:1].repeat(3, 1, 1), reference_mask=1 - subject)
    with pytest.raises(ValueError, match="one channel"):
        node.harmonize(phnet_model, img, img)


def test_masks_that_do_not_pair_up_with_the_images_are_named_by_the_node_and_its_input(nodes, phnet_model, portrait):
    """The library's words came through bare: reference masks called masks, frames called images."""
    img, subject = portrait(b=3)
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'reference_mask' holds 2 reference masks for 3 images: "
                                         r"give one reference mask, or one per image$"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject, reference_mask=1 - subject[:2])
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'mask' holds 2 masks for 3 images: give one mask, or "
                                         r"one per image$"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject[:2])
    frames = nodes["PHNetHarmonizeFrames"]
    with pytest.raises(ValueError, match=r"^PHNet Harmonize Frames: 'mask' holds 3 masks for 1 frame: give one mask, "
                                         r"or one per frame$"):
        frames.harmonize(phnet_model, img[:1], subject)
    with pytest.raises(ValueError, match=r"^PHNet Harmonize Frames: 'reference_mask' holds 2 reference masks for 3 "
                                         r"frames: give one reference mask, or one per frame$"):
        frames.harmonize(phnet_model, img, subject, reference_mask=1 - subject[:2])


def test_one_image_with_one_or_two_masks_names_the_unit_its_reference_masks_pair_with(nodes, phnet_model, portrait):
    """One image and one mask is one image; one image and two masks is harmonized once per mask, and its reference
    masks are counted against the masks (the wording followed the wrong branch under a hand-made mutant)."""
    img, subject = portrait(b=1)
    node = nodes["PHNetHarmonize"]
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'reference_mask' holds 3 reference masks for 1 image: "
                                         r"give one reference mask, or one per image$"):
        node.harmonize(phnet_model, img, subject[:1], reference_mask=(1 - subject[:1]).repeat(3, 1, 1))
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'reference_mask' holds 3 reference masks for 2 masks "
                                         r"\(the one image is harmonized once per mask\): give one reference mask, "
                                         r"or one per mask$"):
        node.harmonize(phnet_model, img, subject[:1].repeat(2, 1, 1), reference_mask=(1 - subject[:1]).repeat(3, 1, 1))


def test_harmonize_rgba_and_4d_mask(nodes, phnet_model, portrait):
    img, subject = portrait(b=1)
    rgba = torch.cat([img, torch.ones_like(img[..., :1])], -1)
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, rgba, subject[:, None])["result"]
    assert out.shape == rgba.shape and torch.equal(out[..., 3], rgba[..., 3])  # alpha passes through


def test_the_transparent_part_of_an_rgba_composite_is_left_out_of_the_scene_to_match(nodes, phnet_model, portrait):
    """Paste Subject over an RGBA background gives an RGBA composite: what lies under its alpha 0 (black,
    mostly) is seen by nobody, and the subject was matched to it too."""
    img, subject = portrait(b=1, h=40, w=56)
    alpha = torch.ones(1, 40, 56)
    alpha[:, :, 42:] = 0  # the right quarter transparent, black under it
    rgba = torch.cat([img * alpha[..., None], alpha[..., None]], -1)
    node = nodes["PHNetHarmonize"]
    out, line = node.harmonize(phnet_model, rgba, subject, threshold=0.0)["result"]
    seen, _ = node.harmonize(phnet_model, rgba[..., :3], subject, threshold=0.0, reference_mask=alpha)["result"]
    everything, _ = node.harmonize(phnet_model, rgba[..., :3], subject, threshold=0.0)["result"]
    assert torch.equal(out[..., :3], seen) and not torch.equal(seen, everything)
    assert torch.equal(out[..., 3], alpha)
    assert line.endswith("; the transparent part was left out of the scene to match")
    # within a reference mask, and in a batch only where some of the transparent part lies outside the mask
    left = torch.zeros(1, 40, 56)
    left[:, :, :10] = left[:, :, 46:] = 1
    both, line = node.harmonize(phnet_model, rgba, subject, threshold=0.0, reference_mask=left)["result"]
    own, _ = node.harmonize(phnet_model, rgba[..., :3], subject, threshold=0.0, reference_mask=left * alpha)["result"]
    assert torch.equal(both[..., :3], own) and "transparent part" in line
    opaque = torch.cat([img, torch.ones_like(img[..., :1])], -1)
    batch, line = node.harmonize(phnet_model, torch.cat([rgba, opaque]), subject, threshold=0.0)["result"]
    alone, plain_line = node.harmonize(phnet_model, opaque, subject, threshold=0.0)["result"]
    assert torch.equal(batch[:1], out) and torch.equal(batch[1:], alone)
    assert line.endswith("; 1 of 2: the transparent part was left out of the scene to match")
    assert "left out of the scene" not in plain_line
    # a cut-out (nothing visible outside the mask) is judged as before: one flat colour, left as it was
    cut = torch.cat([img * subject[..., None], subject[..., None]], -1)
    out, line = node.harmonize(phnet_model, cut, subject)["result"]
    assert torch.equal(out, cut) and "left out of the scene" not in line and "one flat colour (0, 0, 0)" in line



def test_a_mask_with_a_faint_floor_leaves_the_transparent_part_out_of_the_scene_too(nodes, phnet_model, portrait):
    """A matting model's or a JPEG mask's floor (1/255, 1e-4 everywhere) is background, as the library reads it:
    only a mask exactly 0 outside the subject had the transparent part left out."""
    img, subject = portrait(b=1, h=40, w=56)
    alpha = torch.ones(1, 40, 56)
    alpha[:, :, 42:] = 0
    rgba = torch.cat([img * alpha[..., None], alpha[..., None]], -1)
    node = nodes["PHNetHarmonize"]
    for floor in (1 / 255, 1e-4):
        mask = subject.clamp(min=floor)
        out, line = node.harmonize(phnet_model, rgba, mask, threshold=0.0)["result"]
        seen, _ = node.harmonize(phnet_model, rgba[..., :3], mask, threshold=0.0, reference_mask=alpha)["result"]
        assert torch.equal(out[..., :3], seen), floor
        assert line.endswith("; the transparent part was left out of the scene to match"), floor


def test_a_16_bit_mask_on_an_rgba_composite_leaves_its_transparent_part_out_too(nodes, phnet_model, portrait):
    """A uint16 mask or reference_mask (and a 0/1 uint32 one) on an RGBA composite: torch has no max or > for
    them on the CPU (NotImplementedError 'max_values_cpu' not implemented for 'UInt16')."""
    img, subject = portrait(b=1, h=40, w=56)
    alpha = torch.ones(1, 40, 56)
    alpha[:, :, 42:] = 0
    rgba = torch.cat([img * alpha[..., None], alpha[..., None]], -1)
    region = torch.zeros(1, 40, 56)
    region[:, :, :20] = 1
    sixteen = (lambda m: (m * 65535).to(torch.int64).to(torch.uint16))
    for name in ("PHNetHarmonize", "PHNetHarmonizeFrames"):
        node = nodes[name]
        want, _ = node.harmonize(phnet_model, rgba, subject, threshold=0.0)["result"]
        for mask in (sixteen(subject), subject.to(torch.int64).to(torch.uint32)):
            out, line = node.harmonize(phnet_model, rgba, mask, threshold=0.0)["result"]
            assert torch.equal(out, want) and line.endswith("left out of the scene to match"), (name, mask.dtype)
        want, _ = node.harmonize(phnet_model, rgba, subject, threshold=0.0, reference_mask=region)["result"]
        for wide in (sixteen(region), region.to(torch.int64).to(torch.uint32)):  # torch 2.4: no where for them
            out, line = node.harmonize(phnet_model, rgba, subject, threshold=0.0, reference_mask=wide)["result"]
            assert torch.equal(out, want) and line.endswith("left out of the scene to match"), (name, wide.dtype)


def test_harmonize_interrupt_and_progress(nodes, phnet_model, comfy_env, portrait):
    img, subject = portrait(b=3)
    ticks = []

    def hook(value, total, preview, node_id=None):  # what ComfyUI's main.py installs
        ticks.append((value, total))
        comfy_env.mm.throw_exception_if_processing_interrupted()

    comfy_env.utils.set_progress_bar_global_hook(hook)
    try:
        nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject)
        assert ticks == [(1, 3), (2, 3), (3, 3)]
        comfy_env.mm.interrupt_current_processing(True)
        with pytest.raises(comfy_env.mm.InterruptProcessingException):
            nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject)
    finally:
        comfy_env.utils.set_progress_bar_global_hook(None)


@pytest.mark.parametrize("node", ["PHNetHarmonize", "PHNetHarmonizeFrames"])
def test_cancel_stops_inside_a_network_call(nodes, phnet_model, comfy_env, portrait, node):
    """Not only between pictures: a call at a large working size on a CPU takes seconds to minutes."""
    img, subject = portrait(b=2)
    ticks = []
    comfy_env.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: ticks.append(value))
    comfy_env.mm.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy_env.mm.InterruptProcessingException):
            getattr(nodes[node], "harmonize")(phnet_model, img, subject)
        assert ticks == []  # stopped before the first picture was done
    finally:
        comfy_env.mm.interrupt_current_processing(False)
        comfy_env.utils.set_progress_bar_global_hook(None)
    assert not any(stage._forward_pre_hooks for stage in phnet_model._net.modules())  # the checks are gone
    nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject)


def test_bundled_default_loads(nodes, portrait):
    from phnet.weights import DEFAULT_DIR

    if not (DEFAULT_DIR / "model.safetensors").is_file():
        pytest.skip("bundled default weights not present yet")
    (m,) = nodes["PHNetModelLoader"].load("default (bundled)", "", "auto", "auto")
    img, subject = portrait(b=1)
    out, report = nodes["PHNetHarmonize"].harmonize(m, img, subject)["result"]
    assert out.shape == img.shape and torch.equal(out[:, subject[0] == 0], img[:, subject[0] == 0])
    assert m.config.correction_threshold > 0 and "PHNet Harmonize:" in report  # calibrated (docs/default-weights.md)


def test_harmonize_reference_mask(nodes, phnet_model, portrait):
    img, subject = portrait(b=2, h=40, w=56)
    node = nodes["PHNetHarmonize"]
    plain, _ = node.harmonize(phnet_model, img, subject[:1])["result"]
    unset, _ = node.harmonize(phnet_model, img, subject[:1], reference_mask=None)["result"]
    assert torch.equal(plain, unset)
    reference = torch.zeros(1, 40, 56)
    reference[:, :, :28] = 1  # the left half (it may cover most of the picture: no "inverted" refusal)
    whole, _ = node.harmonize(phnet_model, img, subject[:1], reference_mask=1 - subject[:1])["result"]
    assert torch.equal(whole, plain)  # the whole background as the reference is no reference at all
    left, _ = node.harmonize(phnet_model, img, subject[:1], reference_mask=reference)["result"]
    assert not torch.equal(left, plain)
    outside = subject[0] == 0
    assert torch.equal(left[:, outside], img[:, outside])
    with pytest.raises(ValueError, match="'reference_mask' is 28x24 pixels .* another shape"):
        node.harmonize(phnet_model, img, subject[:1], reference_mask=torch.ones(1, 24, 28))


@pytest.mark.parametrize("node", ["PHNetHarmonize", "PHNetHarmonizeFrames"])
def test_mask_is_alpha_reads_the_soft_edge_as_the_library_does(nodes, phnet_model, portrait, node):
    img, subject = portrait(b=2, h=40, w=56)
    soft = torch.nn.functional.avg_pool2d(subject[:1, None], 7, 1, 3)[:, 0]  # a soft edge, as a pasted alpha's
    plain, _ = nodes[node].harmonize(phnet_model, img, soft, threshold=0.0)["result"]
    pasted, _ = nodes[node].harmonize(phnet_model, img, soft, threshold=0.0, mask_is_alpha=True)["result"]
    temporal = {"temporal": 3.0} if node == "PHNetHarmonizeFrames" else {}
    expected, _ = phnet_model.harmonize(img, soft, layout="BHWC", threshold=0.0, mask_is_alpha=True, **temporal)
    torch.testing.assert_close(pasted, expected, atol=1e-6, rtol=0)
    assert not torch.equal(plain, pasted)


def test_harmonize_frames(nodes, phnet_model, comfy_env, portrait):
    img, subject = portrait(b=4, h=40, w=56)
    frames = img[:1].repeat(4, 1, 1, 1)
    frames[2:] = frames[2:].flip(1).flip(2) * 0.5  # a cut before frame 2
    ticks = []

    def hook(value, total, preview, node_id=None):
        ticks.append((value, total))

    comfy_env.utils.set_progress_bar_global_hook(hook)
    try:
        out, _ = nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, frames, subject[:1], smoothing=2.0)["result"]
    finally:
        comfy_env.utils.set_progress_bar_global_hook(None)
    assert out.shape == frames.shape and ticks[-1] == (8, 8)
    outside = subject[0] == 0
    assert torch.equal(out[:, outside], frames[:, outside])
    # identical frames within a shot get identical results, and the shot after the cut is its own
    torch.testing.assert_close(out[0], out[1], atol=1e-6, rtol=0)
    second_shot, _ = nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, frames[2:], subject[:1],
                                                              smoothing=2.0)["result"]
    torch.testing.assert_close(out[2:], second_shot, atol=1e-6, rtol=0)
    zero, _ = nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, frames, subject[:1], smoothing=0.0)["result"]
    single, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, frames, subject[:1])["result"]
    torch.testing.assert_close(zero, single, atol=1e-4, rtol=0)


@pytest.mark.parametrize("node, options, unit", [("PHNetHarmonizeFrames", {"smoothing": 1.0}, "frame"),
                                                 ("PHNetHarmonize", {"threshold": 0.0}, "picture")])
def test_a_picture_without_its_subject_is_passed_through(nodes, phnet_model, portrait, node, options, unit):
    """Per-frame masks from a segmenter are empty where the subject has left the picture; SAM Segment's mask is
    empty where its guide_mask is, and a detector may find nobody in one picture of a batch: the rest is
    harmonized, and a queue run goes on."""
    img, subject = portrait(b=1, h=40, w=56)
    frames, masks = img.repeat(3, 1, 1, 1), subject[:1].repeat(3, 1, 1)
    masks[1] = 0
    out, line = nodes[node].harmonize(phnet_model, frames, masks, **options)["result"]
    assert torch.equal(out[1], frames[1]) and not torch.equal(out[0], frames[0])
    assert "1 with an empty mask (no subject in it), left as it was" in line
    with pytest.raises(ValueError, match=f"every {unit}'s mask is empty"):
        nodes[node].harmonize(phnet_model, frames, torch.zeros_like(masks))


def test_harmonize_leaves_its_input_image_and_mask_as_they_were(nodes, phnet_model, portrait):
    """ComfyUI hands a node the cached outputs of the nodes before it: a run at strength 0.5 must not dim
    the mask that the next run (or a preview of the mask) receives."""
    img, subject = portrait(b=1)
    img_before, subject_before = img.clone(), subject.clone()
    node = nodes["PHNetHarmonize"]
    first, _ = node.harmonize(phnet_model, img, subject, strength=0.5)["result"]
    assert torch.equal(img, img_before) and torch.equal(subject, subject_before)
    again, _ = node.harmonize(phnet_model, img, subject, strength=0.5)["result"]
    assert torch.equal(first, again)
    frames = torch.cat([img, img.flip(1)])
    frames_before = frames.clone()
    nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, frames, subject, strength=0.5)
    assert torch.equal(frames, frames_before) and torch.equal(subject, subject_before)


def test_an_image_a_little_outside_0_1_is_clamped_and_the_report_says_so(nodes, phnet_model, portrait):
    """Some nodes do not clamp their output; a 0..255 image is still refused with the library's fix."""
    img, subject = portrait(b=1)
    unclamped = img.clone()
    unclamped[0, 0, 0], unclamped[0, -1, -1] = 1.08, -0.02  # corners: background
    out, line = nodes["PHNetHarmonize"].harmonize(phnet_model, unclamped, subject)["result"]
    assert 0 <= out.min() and out.max() <= 1
    outside = subject[0] == 0
    assert torch.equal(out[:, outside], unclamped.clamp(0, 1)[:, outside])
    assert "clamped to 0..1 first" in line and "-0.02" in line
    _, line = nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject)["result"]
    assert "clamped" not in line
    with pytest.raises(ValueError, match="divide 0..255 images by 255"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, img * 255, subject)
    with pytest.raises(ValueError, match="clamp the image to 0..1"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, img * 1.6, subject)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_harmonize_returns_a_float32_image_whatever_the_input_dtype(nodes, phnet_model, portrait, dtype):
    """ComfyUI IMAGEs are float32: SaveImage cannot write a bf16 tensor."""
    img, subject = portrait(b=1)
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, img.to(dtype), subject)["result"]
    assert out.dtype == torch.float32 and out.is_contiguous()
    outside = subject[0] == 0
    assert torch.equal(out[:, outside], img.to(dtype).float()[:, outside])


def test_a_batch_at_strength_0_says_why_nothing_changed(nodes, phnet_model, portrait):
    img, subject = portrait(b=2)
    out, line = nodes["PHNetHarmonize"].harmonize(phnet_model, img, subject, strength=0.0)["result"]
    assert torch.equal(out, img)
    assert "0 of 2 images changed" in line and "2 at strength 0, left unchanged" in line


def test_a_cut_out_or_a_flat_backdrop_is_left_as_it_was_and_the_report_says_why(nodes, phnet_model, portrait):
    """A user's RGBA cut-out through Load Image and InvertMask has black under its transparent part: the
    subject was matched to black while the report read as a success. A black frame of a clip, or a paste onto
    a plain backdrop, is no scene either: left as it was, the rest of the batch harmonized."""
    img, masks = portrait(b=1, h=40, w=56)
    cut = img.clone()
    cut[0][masks[0] == 0] = 0.0
    batch = torch.cat([img, cut])
    out, line = nodes["PHNetHarmonize"].harmonize(phnet_model, batch, masks[:1], threshold=0.0)["result"]
    assert torch.equal(out[1], cut[0]) and not torch.equal(out[0], img[0])
    assert "1 with a background of one flat colour (0, 0, 0), no scene to match to, left unchanged" in line
    _, line = nodes["PHNetHarmonize"].harmonize(phnet_model, cut, masks[:1])["result"]
    assert "unchanged: its background is one flat colour (0, 0, 0)" in line and "paste the subject" in line
