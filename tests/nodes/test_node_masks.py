"""The mask mistakes ComfyUI users make, each shown with the message the user reads in the frontend.

Pictures go through the Load Image stand-in (same MASK rules as ComfyUI's: 1 - alpha, and a 64x64
zero mask for a picture without alpha), like in a real graph.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

core_nodes = sys.modules["phnet_nodes_test_core_nodes"]  # loaded by conftest.py


@pytest.fixture(scope="module")
def cutout(comfy_env, helpers):
    """An RGBA composite whose alpha is the subject, and the same picture saved as a JPG (no alpha)."""
    img, subject = helpers.portrait(b=1, h=48, w=64)
    rgb = np.round(img[0].numpy() * 255).astype(np.uint8)
    alpha = np.round(subject[0].numpy() * 255).astype(np.uint8)
    d = comfy_env.fp.get_input_directory()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(f"{d}/mask_test_cutout.png")
    Image.fromarray(rgb).save(f"{d}/mask_test_cutout.jpg")
    return "mask_test_cutout"


def load(name):
    return core_nodes.LoadImage().load_image(name)


def invert(mask):
    return core_nodes.InvertMask().invert(mask)[0]


def test_cutout_with_invert_mask_works(nodes, phnet_model, cutout):
    image, mask = load(cutout + ".png")
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, image, invert(mask))["result"]
    assert out.shape == image.shape


def test_forgotten_invert_mask_is_refused_naming_invert_mask(nodes, phnet_model, cutout):
    image, mask = load(cutout + ".png")  # MASK = 1 on the transparent background
    with pytest.raises(ValueError) as e:
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask)
    msg = str(e.value)
    assert msg.startswith("PHNet Harmonize: 'mask' covers") and "of its border, so it looks inverted" in msg
    assert "Put an InvertMask node in front of PHNet Harmonize" in msg and "RGBA cut-out" in msg


def test_a_black_subject_mask_file_gets_advice_for_its_own_case(nodes, phnet_model):
    image = torch.rand(1, 48, 64, 3)
    mask = torch.ones(1, 48, 64)  # Load Image (as Mask) of a file painted black-on-white
    mask[:, 12:36, 20:44] = 0
    with pytest.raises(ValueError, match=r"a mask file painted with a black subject on white, loaded with "
                                         r"Load Image \(as Mask\)"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask)


def test_forgotten_invert_mask_on_the_paste_subject_mask(nodes, cutout):
    image, mask = load(cutout + ".png")
    with pytest.raises(ValueError, match=r"PHNet Paste Subject: 'subject_mask' covers .* InvertMask"):
        nodes["PHNetPasteSubject"].paste(image, image, x=0, y=0, subject_mask=mask)
    comp, pasted = nodes["PHNetPasteSubject"].paste(image, image, x=0, y=0, subject_mask=invert(mask))
    assert comp.shape == image.shape and 0 < pasted.mean() < 0.5


def test_the_library_s_inverted_subject_mask_refusal_is_worded_for_the_node(nodes, pack, cutout, monkeypatch):
    """The node's own mask check refuses it first; the library's refusal (phnet.compositing.plan_paste) says the
    same in the node's words, not the library's alpha_as_given."""
    composite = sys.modules[pack.__name__ + ".nodes.composite"]
    monkeypatch.setattr(composite, "check_mask", lambda *a, **k: None)
    image, mask = load(cutout + ".png")
    with pytest.raises(ValueError, match=r"^PHNet Paste Subject: 'subject_mask' covers \d+% of the picture and 100% of "
                                         r"its border, so it looks inverted: 1 \(white\) must mark the subject, 0 "
                                         r"\(black\) the background. Put an InvertMask node in front of subject_mask, "
                                         r"or, .* turn on mask_as_given$"):
        nodes["PHNetPasteSubject"].paste(image, image, x=0, y=0, subject_mask=mask)
    _, pasted = nodes["PHNetPasteSubject"].paste(image, image, x=0, y=0, subject_mask=mask, mask_as_given=True)
    assert pasted.mean() > 0.5


def test_a_subject_joined_with_its_mask_as_alpha_is_refused_naming_join_image_with_alpha(nodes, helpers):
    """Core JoinImageWithAlpha stores 1 - its alpha input: joined with the subject's mask, the scene around the
    subject was pasted, with a subject-shaped hole, and nothing said why."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    joined = torch.cat([image, 1 - subject[..., None]], -1)  # JoinImageWithAlpha(image, alpha=subject)
    paste = nodes["PHNetPasteSubject"].paste
    for cut in (joined, (joined * 255).round().to(torch.uint8), torch.cat([joined, joined])):
        with pytest.raises(ValueError, match=r"^PHNet Paste Subject: the subject's alpha( \(subject 0 of the "
                                             r"batch\))? covers .* so it looks inverted: .*JoinImageWithAlpha stores "
                                             r"1 - its alpha input, so put an InvertMask node in front of its alpha "
                                             r"input .*turn on mask_as_given$"):
            paste(image, cut)
    assert torch.equal(paste(image, joined, mask_as_given=True)[1], 1 - subject)
    assert torch.equal(paste(image, torch.cat([image, invert(1 - subject)[..., None]], -1))[1], subject)


def test_a_subject_placed_off_the_background_is_named_by_the_node(nodes):
    """The library's words came without the node's name, as no other message of the node does."""
    subject = torch.cat([torch.rand(1, 16, 12, 3), torch.ones(1, 16, 12, 1)], -1)
    with pytest.raises(ValueError, match=r"^PHNet Paste Subject: the subject \(12x16 px after scale 1.0\) placed "
                                         r"with its top-left at \(90, 10\) lies entirely outside the 64x48 "
                                         r"background; move x/y inside it$"):
        nodes["PHNetPasteSubject"].paste(torch.rand(1, 48, 64, 3), subject, x=90, y=10, anchor="top-left")


def test_a_picture_without_alpha_says_no_alpha(nodes, phnet_model, cutout):
    image, mask = load(cutout + ".jpg")
    assert mask.shape == (1, 64, 64) and image.shape[1:3] != (64, 64)
    for m, inverted in ((mask, ""), (invert(mask), " (inverted by InvertMask)")):
        with pytest.raises(ValueError) as e:
            nodes["PHNetHarmonize"].harmonize(phnet_model, image, m)
        assert str(e.value).startswith(
            f"PHNet Harmonize: 'mask' is the empty 64x64 mask{inverted} that Load Image gives for a picture with "
            "no alpha channel")
        assert "'Load Image (as Mask)'" in str(e.value)
        assert "through an InvertMask node" in str(e.value)  # else the advice led into the inverted-mask refusal


def test_a_mask_of_another_size_is_an_error_naming_both_sizes(nodes, phnet_model, helpers):
    image, subject = helpers.portrait(b=1, h=48, w=64)
    other = torch.nn.functional.interpolate(subject[:, None], size=(24, 40))[:, 0]
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'mask' is 40x24 pixels but the image is 64x48, "
                                         r"another shape"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, other)


def test_a_tiny_mask_of_the_images_shape_is_named_too_small_not_another_shape(nodes, phnet_model, helpers):
    """A 15x12 mask of a 120x96 image was called "another shape (a mask of the image's shape at another size is
    resized to it)": it has the image's shape, and is not resized because it is under 16 pixels a side."""
    image, _ = helpers.portrait(b=1, h=96, w=120)
    tiny = torch.zeros(1, 12, 15)
    tiny[:, 3:9, 4:11] = 1
    with pytest.raises(ValueError) as refused:
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, tiny)
    assert str(refused.value).startswith("PHNet Harmonize: 'mask' is 15x12 pixels but the image is 120x96: the image's "
                                         "shape, but too small to be resized to it (under 16 pixels a side")
    assert "another shape" not in str(refused.value)
    with pytest.raises(ValueError, match=r"'mask' is 15x10 pixels but the image is 120x96, another shape"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, torch.ones(1, 10, 15))


def test_only_likely_inverted_masks_are_refused(pack):
    """A big subject that reaches the bottom and the sides is fine; the background of a cut-out is not."""
    from importlib import import_module

    check = import_module(pack.__name__ + ".nodes.masks").check_mask
    image = torch.zeros(1, 100, 100, 3)
    close_up = torch.zeros(1, 100, 100)
    close_up[:, 20:, 5:95] = 1  # head and shoulders filling the frame: 72% of the picture, 54% of the border
    check(close_up, image, "mask", "PHNet Harmonize")
    background = 1 - torch.nn.functional.pad(torch.ones(1, 60, 40), (30, 30, 40, 0))  # cut-out subject at the bottom
    with pytest.raises(ValueError, match="looks inverted"):
        check(background, image, "mask", "PHNet Harmonize")
    batch = torch.cat([close_up, background])
    with pytest.raises(ValueError, match=r"\(image 1 of the batch\)"):
        check(batch, image.expand(2, -1, -1, -1), "mask", "PHNet Harmonize")
    with pytest.raises(ValueError, match=r"\(mask 1 of the batch\)"):  # one picture, two masks: no image 1
        check(batch, image, "mask", "PHNet Harmonize")
    # a mask of the whole picture is no inverted one: an InvertMask would leave nothing
    with pytest.raises(ValueError, match="covers the whole picture, so no background is left") as refused:
        check(torch.ones(1, 100, 100), image, "mask", "PHNet Harmonize")
    assert "InvertMask" not in str(refused.value)
    # a subject cut out as its picture but for rounded corners (99.9 %): no InvertMask to add, it has one
    rounded = torch.ones(1, 100, 100)
    rounded[:, :2, :2] = rounded[:, :2, -2:] = rounded[:, -2:, :2] = rounded[:, -2:, -2:] = 0
    check(rounded, image, "subject_mask", "PHNet Paste Subject", whole_ok=True)
    with pytest.raises(ValueError, match="looks inverted"):
        check(background, image, "subject_mask", "PHNet Paste Subject", whole_ok=True)


def test_a_clip_is_judged_as_a_whole_a_subject_may_fill_a_frame(nodes, phnet_model):
    """Someone walking into the camera: a frame or two whose mask covers (nearly) all of it is no inverted mask;
    those frames are left as they were (too little background), the others harmonized."""
    image = torch.rand(4, 48, 64, 3)
    mask = torch.zeros(4, 48, 64)
    mask[:, 10:40, 15:50] = 1
    mask[2] = 1
    mask[3, 1:, 1:] = 1  # 96 % of the picture, most of its border
    frames, report = nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, image, mask, threshold=0)["result"]
    assert torch.equal(frames[2], image[2]) and "1 with under 3% background" in report
    assert not torch.equal(frames[0], image[0])
    with pytest.raises(ValueError, match="covers the whole picture in every frame"):
        nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, image, torch.ones(4, 48, 64))
    with pytest.raises(ValueError, match=r"3 of the 4 frames' masks cover most of the picture and its border, so "
                                         r"they look inverted"):
        nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, image, 1 - mask[[0, 0, 0, 3]])
    # separate pictures, as the library takes them: a whole mask beside others is left as it was, and said
    out, report = nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask, threshold=0)["result"]
    assert torch.equal(out[2], image[2]) and not torch.equal(out[0], image[0])
    assert "1 with under 3% background" in report
    with pytest.raises(ValueError, match="covers the whole picture in every picture of the batch"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, torch.ones(4, 48, 64))
    with pytest.raises(ValueError, match=r"in every picture of the batch that has a subject \(the other masks are "
                                         r"empty\), so no background"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image[:2], torch.stack([torch.zeros(48, 64),
                                                                             torch.ones(48, 64)]))


def test_mask_as_given_uses_a_mask_that_looks_inverted_as_it_is(nodes, phnet_model):
    """Two subjects at the picture's sides with the scene between them look like a cut-out's transparent part:
    refused with the fix and the way round it, and used as it is with mask_as_given on."""
    image = torch.rand(3, 48, 64, 3)
    sides = torch.zeros(3, 48, 64)
    sides[:, :, :20] = sides[:, :, 44:] = 1
    harmonize, frames = nodes["PHNetHarmonize"].harmonize, nodes["PHNetHarmonizeFrames"].harmonize
    runs = {"PHNet Harmonize": lambda **kw: harmonize(phnet_model, image, sides, threshold=0, **kw)["result"][0],
            "PHNet Harmonize Frames": lambda **kw: frames(phnet_model, image, sides, threshold=0, **kw)["result"][0],
            "PHNet Paste Subject": lambda **kw: nodes["PHNetPasteSubject"].paste(image, image, subject_mask=sides,
                                                                                 **kw)[1]}
    for node, run in runs.items():
        with pytest.raises(ValueError, match=rf"Put an InvertMask node in front of {node}, or, if (it is|they are) "
                                             r"right \(subjects at the picture's sides with the scene between "
                                             r"them\), turn on mask_as_given\."):
            run()
    assert torch.equal(runs["PHNet Paste Subject"](mask_as_given=True), sides)
    for node in ("PHNet Harmonize", "PHNet Harmonize Frames"):
        out = runs[node](mask_as_given=True)
        assert torch.equal(out[..., 25:40, :], image[..., 25:40, :]) and not torch.equal(out, image)
    with pytest.raises(ValueError, match="covers the whole picture"):  # the other checks still hold
        harmonize(phnet_model, image, torch.ones(3, 48, 64), mask_as_given=True)


def test_an_inverted_clip_whose_subject_leaves_a_frame_is_named_inverted(nodes, phnet_model):
    """The frame without the subject has an all-1 inverted mask: it is no reason to call the clip's masks whole."""
    image = torch.rand(4, 48, 64, 3)
    mask = torch.zeros(4, 48, 64)
    mask[:3, 10:40, 15:50] = 1
    for node in ("PHNetHarmonizeFrames", "PHNetHarmonize"):
        with pytest.raises(ValueError, match="inverted.*InvertMask"):
            nodes[node].harmonize(phnet_model, image, 1 - mask)


@pytest.mark.parametrize("node", ["PHNetHarmonize", "PHNetHarmonizeFrames"])
def test_a_uint8_mask_is_judged_on_its_0_to_255_scale(nodes, phnet_model, node):
    image = torch.rand(1, 48, 64, 3)
    mask = torch.full((1, 48, 64), 10, dtype=torch.uint8)  # a faint haze around the subject, as 8 bits
    mask[:, 10:40, 15:50] = 255
    out, _ = nodes[node].harmonize(phnet_model, image, mask, threshold=0)["result"]
    assert not torch.equal(out, image)


def test_a_channels_first_image_is_named_as_such_not_as_a_mask_of_the_wrong_size(nodes, phnet_model):
    image = torch.rand(1, 3, 40, 56)
    mask = torch.zeros(1, 40, 56)
    mask[:, 10:30, 15:40] = 1
    with pytest.raises(ValueError, match=r"channels first \(B×C×H×W\); ComfyUI IMAGEs are B×H×W×C"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask)


@pytest.mark.parametrize("layout", ["B1HW", "BHW1"])
def test_masks_with_a_channel_axis_get_the_same_checks(nodes, phnet_model, cutout, layout):
    """Some nodes emit B×1×H×W or B×H×W×1 masks, which the library reads; the checks look at them too."""
    image, mask = load(cutout + ".png")  # 1 on the transparent background: a forgotten InvertMask
    four_d = mask[:, None] if layout == "B1HW" else mask[..., None]
    with pytest.raises(ValueError, match="looks inverted"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, four_d)
    with pytest.raises(ValueError, match="looks inverted"):
        nodes["PHNetPasteSubject"].paste(image, image, x=0, y=0, subject_mask=four_d)
    small = torch.zeros(1, 1, 24, 40) if layout == "B1HW" else torch.zeros(1, 24, 40, 1)
    with pytest.raises(ValueError, match="is 40x24 pixels but the image is 64x48"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, small)


def test_an_h_w_1_mask_is_one_mask_of_the_image_in_every_node(nodes, phnet_model, sam_model, cutout):
    """The library reads an H×W×1 mask as one mask; the checks read it as H masks of W×1 pixels."""
    image, mask = load(cutout + ".png")
    subject = invert(mask)[0, ..., None]
    with pytest.raises(ValueError, match="'mask' covers .* looks inverted"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask[0, ..., None])
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, image, subject)["result"]
    assert out.shape == image.shape
    comp, pasted = nodes["PHNetPasteSubject"].paste(image, image, subject_mask=subject)
    assert pasted.shape == (1, 48, 64)
    (segmented,) = nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=subject)
    assert segmented.shape == (1, 48, 64)


def test_an_h_w_1_mask_of_the_images_shape_at_another_size_is_resized(nodes, phnet_model, sam_model, helpers):
    """A half-size H×W×1 mask was read as H masks of W×1 pixels and refused as "1x32 pixels", while its H×W and
    B×H×W×1 forms were resized with a note. A B×H×1 batch of masks of another shape stays one."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    half = torch.nn.functional.interpolate(subject[:, None], size=(24, 32))[:, 0]
    want, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, image, half[0])["result"]
    out, line = nodes["PHNetHarmonize"].harmonize(phnet_model, image, half[0, ..., None])["result"]
    assert torch.equal(out, want) and line.endswith("; 'mask' was 32x24, resized to the image's 64x48")
    _, pasted = nodes["PHNetPasteSubject"].paste(image, image, subject_mask=half[0, ..., None])
    assert torch.equal(pasted, nodes["PHNetPasteSubject"].paste(image, image, subject_mask=half[0])[1])
    (segmented,) = nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=half[0, ..., None])
    assert segmented.shape == (1, 48, 64)
    with pytest.raises(ValueError, match=r"'mask' is 8x6 pixels but the image is 64x48: the image's shape, but too "):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, torch.ones(6, 8, 1))
    with pytest.raises(ValueError, match=r"'mask' is 1x48 pixels but the image is 64x48, another shape"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, subject[:, :, :1])


def test_an_integer_mask_on_no_known_scale_is_named_by_the_node_and_its_input(nodes, phnet_model, cutout):
    """SAM Segment named its guide_mask; Paste Subject and Harmonize spoke of 'mask' and of no node."""
    image, mask = load(cutout + ".png")
    int32 = (invert(mask) * 255).round().to(torch.int32)
    with pytest.raises(ValueError, match=r"^PHNet Paste Subject: subject_mask has dtype torch.int32 with values "
                                         r"0..255: use 0/1, uint8 0..255"):
        nodes["PHNetPasteSubject"].paste(image, image, subject_mask=int32)
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: mask has dtype torch.int32"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, int32)


def test_an_upscaled_mask_overshooting_0_1_is_clamped_where_it_is_used(nodes, phnet_model, sam_model, helpers):
    """The pack's own advice for a mask of another size is Upscale Image, whose bicubic overshoots 0..1."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    small = subject[:, ::2, ::2]
    upscaled = torch.nn.functional.interpolate(small[:, None], size=(48, 64), mode="bicubic")[:, 0]
    assert upscaled.min() < -0.05 and upscaled.max() > 1.05
    (out, line), exact = (nodes["PHNetHarmonize"].harmonize(phnet_model, image, m, reference_mask=m)["result"]
                          for m in (upscaled, upscaled.clamp(0, 1)))
    assert torch.equal(out, exact[0])
    assert "the mask held values from -0." in line and "the reference_mask held values from" in line
    comp, pasted = nodes["PHNetPasteSubject"].paste(image, image, subject_mask=upscaled)
    assert 0 <= pasted.min() and pasted.max() <= 1
    (guided,) = nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=upscaled)
    assert guided.shape == (1, 48, 64)


def test_an_overshoot_of_a_quarter_is_still_clamped_and_a_single_value_too(nodes, phnet_model, pack, helpers):
    """The limit of an upscaler's overshoot, -0.25 and 1.25, is within it; a one-value tensor is clamped as any other
    (each went to the library unclamped, and was refused, under a hand-made mutant)."""
    from importlib import import_module

    image, subject = helpers.portrait(b=1, h=48, w=64)
    edge = image.clone()
    edge[0, 0, 0], edge[0, -1, -1] = -0.25, 1.25  # corners: background
    out, line = nodes["PHNetHarmonize"].harmonize(phnet_model, edge, subject)["result"]
    assert "the image held values from -0.25 to 1.25" in line
    assert torch.equal(out[:, subject[0] == 0], edge.clamp(0, 1)[:, subject[0] == 0])
    clamped = import_module(pack.__name__ + ".nodes.masks").clamped
    one, note = clamped(torch.tensor([1.1]), "mask")
    assert torch.equal(one, torch.tensor([1.0])) and "clamped to 0..1" in note
    assert clamped(torch.zeros(0), "mask")[1] == ""


def test_an_empty_reference_mask_gets_advice_for_a_reference(nodes, phnet_model, cutout):
    image, _ = load(cutout + ".png")
    mask = torch.zeros(1, 48, 64)
    mask[:, 10:30, 20:40] = 1
    with pytest.raises(ValueError) as e:
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask, reference_mask=torch.zeros(1, 64, 64))
    assert "'reference_mask' is the empty 64x64 mask" in str(e.value)
    assert "leave reference_mask unconnected to match the whole background" in str(e.value)
    assert "subject apart" not in str(e.value)


def test_an_upscaled_image_overshooting_0_1_is_clamped_by_every_node(nodes, phnet_model, sam_model, helpers):
    """Upscale Image (bicubic) leaves values a little outside 0..1: Harmonize clamped them, while Paste Subject
    and SAM Segment stopped the run with advice in Python (x.clamp) a ComfyUI user cannot follow."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    up = torch.nn.functional.interpolate(image[:, ::2, ::2].movedim(-1, 1), size=(48, 64), mode="bicubic")
    up = up.movedim(1, -1)
    assert up.max() > 1 + 1e-3 or up.min() < -1e-3
    comp, pasted = nodes["PHNetPasteSubject"].paste(up, up, subject_mask=subject)
    assert torch.equal(comp, nodes["PHNetPasteSubject"].paste(up.clamp(0, 1), up.clamp(0, 1), subject_mask=subject)[0])
    (mask,) = nodes["PHNetSAMSegment"].segment(sam_model, up, box="10,5,50,40")
    assert mask.shape == (1, 48, 64)


def test_image_layouts_and_types_a_custom_node_may_send(nodes, phnet_model, sam_model, helpers):
    image, subject = helpers.portrait(b=1, h=48, w=64)
    empty = "is an empty batch \\(0 images\\): the node before it produced no picture"
    with pytest.raises(ValueError, match="PHNet SAM Segment: 'image' is 64x0 pixels, an empty picture"):
        nodes["PHNetSAMSegment"].segment(sam_model, image[:, :0], box="1,1,5,5")  # was called a bad box
    with pytest.raises(ValueError, match="PHNet SAM Segment: 'image' " + empty):
        nodes["PHNetSAMSegment"].segment(sam_model, image[:0], guide_mask=subject)
    with pytest.raises(ValueError, match="PHNet Harmonize: 'image' " + empty):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image[:0], subject)
    with pytest.raises(ValueError, match="PHNet Paste Subject: 'subject' " + empty):
        nodes["PHNetPasteSubject"].paste(image, image[:0])
    for empty in (subject[:0], torch.zeros(0, 64, 64)):  # 64x64: the size of Load Image's mask of no alpha
        with pytest.raises(ValueError, match="PHNet Harmonize: 'mask' is an empty batch \\(0 masks\\)"):
            nodes["PHNetHarmonize"].harmonize(phnet_model, image, empty)
    with pytest.raises(ValueError, match="PHNet Harmonize: 'reference_mask' is an empty batch \\(0 masks\\)"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, subject, reference_mask=subject[:0])
    grey = image[:, :3].mean(-1, keepdim=True)  # B×H×W×1 three rows tall: a grey IMAGE, not channels first
    strip = torch.zeros(1, 3, 64)
    strip[:, :, 20:30] = 1
    with pytest.raises(ValueError, match="the picture is 64×3 pixels: PHNet needs at least 8 on each side"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, grey, strip)
    with pytest.raises(ValueError, match="PHNet SAM Segment: 'image' is \\(1, 3, 48, 64\\), channels first"):
        nodes["PHNetSAMSegment"].segment(sam_model, image.permute(0, 3, 1, 2), box="10,5,50,40")
    with pytest.raises(ValueError, match="PHNet Paste Subject: 'background' is \\(1, 3, 48, 64\\), channels first"):
        nodes["PHNetPasteSubject"].paste(image.permute(0, 3, 1, 2), image)
    # an 8-bit IMAGE came back as float 0..255, which the next node took for a burnt-out picture
    eight_bit = (image * 255).round().to(torch.uint8)
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, eight_bit, subject)["result"]
    assert out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    expected, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, eight_bit.float() / 255, subject)["result"]
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="holds torch.int32 values; a ComfyUI IMAGE is float32 in 0..1"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, eight_bit.int(), subject)


def test_a_16_bit_image_is_read_on_its_scale_by_harmonize_as_by_paste_subject_and_sam_segment(
        nodes, phnet_model, sam_model, helpers):
    """Paste Subject and SAM Segment read a uint16 IMAGE by its 65535 peak; Harmonize refused it."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    sixteen = (image.double() * 65535).round().to(torch.uint16)
    as_float = sixteen.double().div(65535).float()
    out, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, sixteen, subject)["result"]
    expected, _ = nodes["PHNetHarmonize"].harmonize(phnet_model, as_float, subject)["result"]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    comp, _ = nodes["PHNetPasteSubject"].paste(sixteen, sixteen, subject_mask=subject)
    torch.testing.assert_close(comp, nodes["PHNetPasteSubject"].paste(as_float, as_float, subject_mask=subject)[0],
                               atol=1e-6, rtol=0)
    (mask,) = nodes["PHNetSAMSegment"].segment(sam_model, sixteen, box="10,5,50,40")
    assert mask.shape == (1, 48, 64)


def test_a_picture_without_its_batch_axis_is_refused_by_every_node(nodes, phnet_model, sam_model, helpers):
    """A custom node returning image[0] (H×W×C): Paste Subject made a composite of the wrong shape, SAM Segment
    48 masks of 64x3 (with a box it blamed the box)."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    single = r"is \(48, 64, 3\), one picture \(H×W×C\) without the batch axis .* it should return image\[None\]"
    with pytest.raises(ValueError, match="^PHNet Paste Subject: 'background' " + single):
        nodes["PHNetPasteSubject"].paste(image[0], image, subject_mask=subject)
    with pytest.raises(ValueError, match="^PHNet Paste Subject: 'subject' " + single):
        nodes["PHNetPasteSubject"].paste(image, image[0], subject_mask=subject[0])
    with pytest.raises(ValueError, match="^PHNet SAM Segment: 'image' " + single):
        nodes["PHNetSAMSegment"].segment(sam_model, image[0], box="10,5,50,40")
    with pytest.raises(ValueError, match="^PHNet SAM Segment: 'image' " + single):
        nodes["PHNetSAMSegment"].segment(sam_model, image[0], guide_mask=subject)
    with pytest.raises(ValueError, match="^PHNet Harmonize: 'image' " + single):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image[0], subject)
    with pytest.raises(ValueError, match=r"^PHNet Paste Subject: 'background' is \(1, 1, 48, 64, 3\), a 5-D tensor; "
                                         r"a ComfyUI IMAGE is 4-D"):
        nodes["PHNetPasteSubject"].paste(image[None], image, subject_mask=subject)
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'image' is \(48, 64\), a 2-D tensor"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image[0, ..., 0], subject)
    rgba = torch.cat([image[0], torch.ones(48, 64, 1)], -1)  # an RGBA picture without its batch axis, as RGB
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'image' is \(48, 64, 4\), one picture \(H×W×C\) "
                                         r"without the batch axis"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, rgba, subject)


def test_paste_subject_keeps_an_rgba_backgrounds_alpha_and_says_when_no_subject_lands(nodes, helpers):
    image, subject = helpers.portrait(b=1, h=48, w=64)
    alpha = torch.zeros(1, 48, 64)
    alpha[:, :, :32] = 1
    comp, pasted = nodes["PHNetPasteSubject"].paste(torch.cat([image, alpha[..., None]], -1), image,
                                                    subject_mask=subject)
    assert comp.shape == (1, 48, 64, 4)
    opaque = alpha[..., None] == 1
    rgb = nodes["PHNetPasteSubject"].paste(image, image, subject_mask=subject)[0]
    assert torch.equal(torch.where(opaque, comp[..., :3], 0), torch.where(opaque, rgb, 0))
    torch.testing.assert_close(comp[..., 3], pasted + alpha * (1 - pasted))
    rgba8 = (torch.cat([image, alpha[..., None]], -1) * 255).round().to(torch.uint8)  # an 8-bit IMAGE
    comp8, _ = nodes["PHNetPasteSubject"].paste(rgba8, image, subject_mask=subject)
    torch.testing.assert_close(comp8[..., 3], pasted + alpha * (1 - pasted))
    # the rectangle overlaps the background but only its transparent part does: the error was Harmonize's
    corner = torch.zeros(1, 48, 64)
    corner[:, -10:, -10:] = 1  # the part of the subject that lands (its top-left corner) is transparent
    with pytest.raises(ValueError, match="PHNet Paste Subject: no opaque part of the subject lands on the background"):
        nodes["PHNetPasteSubject"].paste(image, image, x=60, y=40, subject_mask=corner)


def test_a_subject_transparent_everywhere_is_named_as_such(nodes, helpers):
    """It was told to move x/y, which no place would help."""
    image, _ = helpers.portrait(b=1, h=48, w=64)
    with pytest.raises(ValueError, match="PHNet Paste Subject: the subject's alpha is transparent everywhere") as e:
        nodes["PHNetPasteSubject"].paste(image, torch.cat([image, torch.zeros(1, 48, 64, 1)], -1))
    assert "connect a cut-out whose subject is opaque" in str(e.value)  # the node's words, not the library's "give"



def test_an_almost_fully_transparent_subject_is_named_as_such(nodes, helpers):
    """A subject whose strongest alpha (or subject_mask value) is under 4/255 marks no subject: Harmonize told of
    16-bit masks and ones divided by 255 twice, without the node's name. A batch is judged as a whole, as the
    library judges its masks: one subject faint beside an opaque one (the trace of one leaving a clip) is pasted."""
    image, _ = helpers.portrait(b=1, h=48, w=64)
    paste = nodes["PHNetPasteSubject"].paste
    faint = torch.zeros(1, 20, 16)
    faint[:, 4:16, 4:12] = 3 / 255
    cut = torch.cat([torch.rand(1, 20, 16, 3), faint[..., None]], -1)
    with pytest.raises(ValueError, match=r"PHNet Paste Subject: the subject is almost fully transparent \(its "
                                         r"strongest alpha is 3/255\).*connect a cut-out whose subject is opaque"):
        paste(image, cut, x=10, y=8)
    with pytest.raises(ValueError, match=r"PHNet Paste Subject: the subject is almost fully transparent \(its "
                                         r"strongest subject_mask value is 3/255\)"):
        paste(image, cut[..., :3], x=10, y=8, subject_mask=faint)
    eight = (cut * 255).round().to(torch.uint8)  # an 8-bit IMAGE, read on its scale
    with pytest.raises(ValueError, match="its strongest alpha is 3/255"):
        paste(image, eight, x=10, y=8)
    with pytest.raises(ValueError, match="every subject is almost fully transparent"):
        paste(image, torch.cat([cut, cut]), x=10, y=8)
    opaque = cut.clone()
    opaque[..., 3] = (faint > 0).float()
    comp, mask = paste(image, torch.cat([opaque, cut]), x=10, y=8)
    assert mask.shape == (2, 48, 64) and float(mask[0].amax()) == 1 and 0 < float(mask[1].amax()) < 4 / 255


def test_a_16_bit_cut_out_is_pasted_and_judged_on_its_scale(nodes, helpers):
    """A uint16 RGBA subject: torch has no max for uint16 on the CPU (NotImplementedError 'max_values_cpu' not
    implemented for 'UInt16'). It is pasted as its float copy is, and a faint or a transparent one is named."""
    image, _ = helpers.portrait(b=1, h=48, w=64)
    paste = nodes["PHNetPasteSubject"].paste
    alpha = torch.zeros(1, 20, 16, 1)
    alpha[:, 4:16, 4:12] = 1
    cut = torch.cat([torch.rand(1, 20, 16, 3), alpha], -1)
    sixteen = (cut * 65535).round().to(torch.int64).to(torch.uint16)
    comp, mask = paste(image, sixteen, x=10, y=8)
    want, want_mask = paste(image, sixteen.float() / 65535, x=10, y=8)
    assert torch.allclose(comp, want, atol=1e-6) and torch.equal(mask, want_mask)
    faint = sixteen.clone()
    faint[..., 3] = (alpha[..., 0] * 771).to(torch.uint16)  # 3/255
    with pytest.raises(ValueError, match="the subject is almost fully transparent \\(its strongest alpha is 3/255"):
        paste(image, faint, x=10, y=8)
    faint[..., 3] = 0
    with pytest.raises(ValueError, match="the subject's alpha is transparent everywhere"):
        paste(image, faint, x=10, y=8)


def test_a_soft_subject_is_laid_over_an_rgba_background(nodes):
    """A feathered subject on a transparent canvas got the canvas's colour in its edge and too little alpha."""
    white = torch.ones(1, 8, 8, 3)
    edge = torch.full((1, 8, 8), 0.5)
    for canvas_alpha, want_alpha in ((0.0, 0.5), (0.5, 0.75), (1.0, 1.0)):
        canvas = torch.cat([torch.zeros(1, 8, 8, 3), torch.full((1, 8, 8, 1), canvas_alpha)], -1)
        comp, _ = nodes["PHNetPasteSubject"].paste(canvas, white, subject_mask=edge)
        torch.testing.assert_close(comp[..., 3], torch.full((1, 8, 8), want_alpha))
        torch.testing.assert_close(comp[..., :3], torch.full((1, 8, 8, 3), 0.5 / want_alpha))  # white over black
    background = torch.rand(1, 20, 30, 4, generator=torch.Generator().manual_seed(3))
    for faint in (1 / 65535, 1e-6, 1e-7):  # a feathered alpha's tail: undoing the blend there magnified rounding
        background[..., 3] = faint
        comp, m = nodes["PHNetPasteSubject"].paste(background, torch.rand(1, 5, 5, 3), x=0, y=0)
        off = m[0] == 0
        assert torch.equal(comp[0][off], background[0][off]), faint  # untouched where no subject lands


def test_a_resized_mask_keeps_what_its_values_mean(pack):
    """A uint8 0..255 mask stays one, a soft float value stays soft; a tiny mask, or one of another shape
    within an upscaler's rounding only, is not taken for this picture's."""
    from importlib import import_module

    fitted = import_module(pack.__name__ + ".nodes.masks").fitted
    image = torch.zeros(1, 96, 128, 3)
    soft = torch.full((1, 48, 64), 0.25)
    out, note = fitted(soft, image, "mask")
    assert out.shape == (1, 96, 128) and torch.allclose(out, torch.full_like(out, 0.25)) and "48" in note
    eight = torch.full((48, 64), 40, dtype=torch.uint8)
    out, _ = fitted(eight, image, "mask")
    assert out.dtype == torch.uint8 and out.shape == (96, 128) and bool((out == 40).all())
    assert fitted(torch.ones(1, 3, 4), image, "mask")[1] == ""  # 4x3: no picture's mask
    assert fitted(torch.ones(1, 48, 60), image, "mask")[1] == ""  # another shape
    assert fitted(torch.ones(1, 97, 128), torch.zeros(1, 194, 257, 3), "mask")[1] != ""  # an upscaler's rounding


def test_a_64x64_mask_with_a_subject_is_resized_to_a_square_image_like_any_other(nodes, phnet_model, helpers):
    """64x64 is also a 512x512 picture's latent size: a real subject mask of that size was refused as "another
    shape" while the message said such masks are resized; only Load Image's flat no-alpha mask is kept as it is."""
    image, subject = helpers.portrait(b=1, h=128, w=128)
    small = torch.nn.functional.interpolate(subject[:, None], size=(64, 64), mode="bilinear")[:, 0]
    _, line = nodes["PHNetHarmonize"].harmonize(phnet_model, image, small)["result"]
    assert "'mask' was 64x64, resized to the image's 128x128" in line


def test_a_mask_larger_than_the_image_is_resized_with_a_note_naming_cropmask(nodes, phnet_model, helpers):
    """A square picture cropped to a smaller square keeps its shape, so its uncropped mask is resized onto the
    wrong pixels: the note said only that it was resized, as for a mask made before an upscale."""
    image, subject = helpers.portrait(b=1, h=64, w=64)
    large = torch.nn.functional.interpolate(subject[:, None], size=(96, 96), mode="bilinear")[:, 0]
    _, line = nodes["PHNetHarmonize"].harmonize(phnet_model, image, large)["result"]
    assert line.endswith("; 'mask' was 96x96, resized to the image's 64x64 (if the image was cropped, crop the mask "
                         "the same way with CropMask)")
    assert "CropMask" in nodes["PHNetHarmonize"].DESCRIPTION
    assert "CropMask" in nodes["PHNetPasteSubject"].INPUT_TYPES()["optional"]["subject_mask"][1]["tooltip"]


def test_one_picture_with_several_masks_gives_one_result_per_mask_in_every_mask_node(nodes, sam_model, helpers):
    """Harmonize ran once per mask of one image; Paste Subject and SAM Segment refused the same inputs with a
    message naming no node ("3 masks for 1 image")."""
    image, subject = helpers.portrait(b=1, h=40, w=56)
    masks = torch.stack([subject[0], subject[0].roll(12, 1), subject[0].roll(-12, 1)])
    background = torch.rand(1, 40, 56, 3)
    comps, pasted = nodes["PHNetPasteSubject"].paste(background, image, x=0, y=0, subject_mask=masks)
    assert comps.shape == (3, 40, 56, 3) and pasted.shape == (3, 40, 56)
    for k in range(3):
        alone, _ = nodes["PHNetPasteSubject"].paste(background, image, x=0, y=0, subject_mask=masks[k : k + 1])
        torch.testing.assert_close(comps[k : k + 1], alone)
    (segmented,) = nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=masks)
    assert segmented.shape == (3, 40, 56)
    for k in range(3):
        (alone,) = nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=masks[k : k + 1])
        assert torch.equal(segmented[k : k + 1], alone)


def test_an_empty_mask_is_named_with_its_usual_causes_in_comfyui(nodes, phnet_model, helpers):
    image, _ = helpers.portrait(b=1, h=40, w=56)
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'mask' is empty \(all 0\), so nothing marks the "
                                         r"subject. The usual causes: Load Image's MASK of a PNG with no transparent"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, torch.zeros(1, 40, 56))


@pytest.mark.parametrize("node", ["PHNetHarmonize", "PHNetHarmonizeFrames"])
def test_a_mask_holding_nan_is_named_as_such_not_as_whole_or_empty(nodes, phnet_model, helpers, node):
    """A NaN (a blank mask divided by its maximum) made the mask 'cover the whole picture', or 'be empty'."""
    image, subject = helpers.portrait(b=2, h=40, w=56)
    one_pixel, every_pixel = subject.clone(), subject * float("nan")
    one_pixel[:, 0, 0] = float("nan")
    for mask in (one_pixel, every_pixel):
        with pytest.raises(ValueError, match="NaN"):
            nodes[node].harmonize(phnet_model, image, mask)


def test_subjects_and_masks_that_do_not_pair_up_are_named_by_the_paste_node(nodes, helpers):
    image, subject = helpers.portrait(b=2, h=40, w=56)
    with pytest.raises(ValueError, match=r"^PHNet Paste Subject: 3 masks for 2 images: give one subject_mask"):
        nodes["PHNetPasteSubject"].paste(torch.rand(1, 40, 56, 3), image, x=0, y=0,
                                         subject_mask=subject[:1].repeat(3, 1, 1))


def test_a_tensor_on_the_meta_device_is_named_by_every_node(nodes, phnet_model, sam_model, helpers):
    """A placeholder tensor (a shape, no values) failed with torch's "Tensor.item() cannot be called on meta
    tensors" in every node, from the first check that read a value."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    meta = "is a tensor on the meta device, a shape without values, so it holds no "
    for name, kwargs in (("image", {"image": image.to("meta")}), ("mask", {"mask": subject.to("meta")}),
                         ("reference_mask", {"reference_mask": subject.to("meta")})):
        inputs = {"image": image, "mask": subject, **kwargs}
        what = "picture" if name == "image" else "mask"
        for node in ("PHNet Harmonize", "PHNet Harmonize Frames"):
            with pytest.raises(ValueError, match=f"^{node}: '{name}' {meta}{what}: .* Connect a node that returns"):
                nodes[node.replace(" ", "")].harmonize(phnet_model, **inputs)
    with pytest.raises(ValueError, match=f"^PHNet Paste Subject: 'background' {meta}picture"):
        nodes["PHNetPasteSubject"].paste(image.to("meta"), image, subject_mask=subject)
    with pytest.raises(ValueError, match=f"^PHNet Paste Subject: 'subject' {meta}picture"):
        nodes["PHNetPasteSubject"].paste(image, image.to("meta"), subject_mask=subject)
    with pytest.raises(ValueError, match=f"^PHNet Paste Subject: 'subject_mask' {meta}mask"):
        nodes["PHNetPasteSubject"].paste(image, image, subject_mask=subject.to("meta"))
    with pytest.raises(ValueError, match=f"^PHNet SAM Segment: 'image' {meta}picture"):
        nodes["PHNetSAMSegment"].segment(sam_model, image.to("meta"), box="10,5,50,40")
    for guide in (subject.to("meta"), torch.zeros(1, 64, 64, device="meta")):  # 64x64: no-alpha mask's size
        with pytest.raises(ValueError, match=f"^PHNet SAM Segment: 'guide_mask' {meta}mask"):
            nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=guide)


def test_a_list_in_place_of_an_image_or_a_mask_is_named_by_every_node(nodes, phnet_model, sam_model, helpers):
    """A custom node's list of pictures failed with "AttributeError: 'list' object has no attribute 'shape'", or
    for a mask with the library's "unsupported mask type list: pass a PIL image, numpy array or tensor"."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    pictures = r"is a list of 1 Tensors, not a ComfyUI IMAGE \(one torch tensor, B×H×W×C\): the node that made it"
    masks = r"is a list of 1 Tensors, not a ComfyUI MASK \(one torch tensor, H×W or B×H×W\): the node that made it"
    for node in ("PHNet Harmonize", "PHNet Harmonize Frames"):
        harmonize = nodes[node.replace(" ", "")].harmonize
        with pytest.raises(ValueError, match=f"^{node}: 'image' {pictures}"):
            harmonize(phnet_model, [image[0]], subject)
        with pytest.raises(ValueError, match=f"^{node}: 'mask' {masks}"):
            harmonize(phnet_model, image, [subject[0]])
        with pytest.raises(ValueError, match=f"^{node}: 'reference_mask' {masks}"):
            harmonize(phnet_model, image, subject, reference_mask=[subject[0]])
    with pytest.raises(ValueError, match=f"^PHNet Paste Subject: 'background' {pictures}"):
        nodes["PHNetPasteSubject"].paste([image[0]], image, subject_mask=subject)
    with pytest.raises(ValueError, match=f"^PHNet Paste Subject: 'subject_mask' {masks}"):
        nodes["PHNetPasteSubject"].paste(image, image, subject_mask=[subject[0]])
    with pytest.raises(ValueError, match=f"^PHNet SAM Segment: 'image' {pictures}"):
        nodes["PHNetSAMSegment"].segment(sam_model, [image[0]], box="10,5,50,40")
    with pytest.raises(ValueError, match=f"^PHNet SAM Segment: 'guide_mask' {masks}"):
        nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=[subject[0]])
    with pytest.raises(ValueError, match=r"^PHNet Harmonize: 'image' is a ndarray, not a ComfyUI IMAGE"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image.numpy(), subject)


def test_an_fp8_image_or_mask_is_named_by_every_node(nodes, phnet_model, sam_model, helpers):
    """torch has no min, max or isfinite for fp8 on the CPU: an fp8 IMAGE or MASK failed with a bare
    'NotImplementedError: "aminmax_cpu" not implemented for 'Float8_e4m3fn'' in every node."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    f8 = torch.float8_e4m3fn
    told = "holds torch.float8_e4m3fn values; a ComfyUI {} is float32 in 0..1: the node that made it returns the wrong"
    for node in ("PHNet Harmonize", "PHNet Harmonize Frames"):
        harmonize = nodes[node.replace(" ", "")].harmonize
        with pytest.raises(ValueError, match=f"^{node}: 'image' " + told.format("IMAGE")):
            harmonize(phnet_model, image.to(f8), subject)
        with pytest.raises(ValueError, match=f"^{node}: 'mask' " + told.format("MASK")):
            harmonize(phnet_model, image, subject.to(f8))
        with pytest.raises(ValueError, match=f"^{node}: 'reference_mask' " + told.format("MASK")):
            harmonize(phnet_model, image, subject, reference_mask=(1 - subject).to(f8))
    with pytest.raises(ValueError, match="^PHNet Paste Subject: 'subject' " + told.format("IMAGE")):
        nodes["PHNetPasteSubject"].paste(image, image.to(f8), subject_mask=subject)
    with pytest.raises(ValueError, match="^PHNet Paste Subject: 'subject_mask' " + told.format("MASK")):
        nodes["PHNetPasteSubject"].paste(image, image, subject_mask=subject.to(f8))
    with pytest.raises(ValueError, match="^PHNet SAM Segment: 'image' " + told.format("IMAGE")):
        nodes["PHNetSAMSegment"].segment(sam_model, image.to(f8), box="10,5,50,40")
    for guide in (subject, torch.zeros(1, 64, 64)):  # 64x64: the size of Load Image's mask of no alpha
        with pytest.raises(ValueError, match="^PHNet SAM Segment: 'guide_mask' " + told.format("MASK")):
            nodes["PHNetSAMSegment"].segment(sam_model, image, guide_mask=guide.to(f8))


def test_the_library_s_refusals_of_an_image_name_the_node(nodes, phnet_model, sam_model, helpers):
    """Paste Subject named itself before the library's words; Harmonize, Harmonize Frames and SAM Segment passed
    them on bare ("the image contains NaN ..."), unlike their own checks."""
    image, subject = helpers.portrait(b=1, h=48, w=64)
    nan = image.clone()
    nan[0, 0, 0, 0] = float("nan")
    small, dot = torch.rand(1, 7, 9, 3), torch.zeros(1, 7, 9)
    dot[:, 2:5, 3:6] = 1
    for node in ("PHNet Harmonize", "PHNet Harmonize Frames"):
        harmonize = nodes[node.replace(" ", "")].harmonize
        with pytest.raises(ValueError, match=f"^{node}: the image contains NaN or infinite values; replace them"):
            harmonize(phnet_model, nan, subject)
        with pytest.raises(ValueError, match=f"^{node}: the image must hold float values in 0..1, .* looks like a "
                                             r"0..255 image\); divide 0..255 images by 255"):
            harmonize(phnet_model, image * 255, subject)
        with pytest.raises(ValueError, match=f"^{node}: the picture is 9×7 pixels: PHNet needs at least 8"):
            harmonize(phnet_model, small, dot)
    with pytest.raises(ValueError, match="^PHNet Harmonize Frames: cut_threshold must be a number > 0"):
        nodes["PHNetHarmonizeFrames"].harmonize(phnet_model, image, subject, cut_threshold=0.0)
    with pytest.raises(ValueError, match="^PHNet SAM Segment: the image contains NaN or infinite values; replace"):
        nodes["PHNetSAMSegment"].segment(sam_model, nan, box="10,5,50,40")
    with pytest.raises(ValueError, match="^PHNet SAM Segment: the image must hold float values in 0..1"):
        nodes["PHNetSAMSegment"].segment(sam_model, image * 255, box="10,5,50,40")
