"""Every node run on small tensors through the pack's classes (tiny random PHNet and SAM on disk)."""

from __future__ import annotations

import importlib
import re
import os
import sys
from pathlib import Path

import pytest
import torch



@pytest.fixture(scope="module")
def portrait(helpers):
    return helpers.portrait


# ---------------------------------------------------------------- loaders
def test_sam_loader(pack, sam_model, nodes, tiny_sam):
    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    SamSegmenter = importlib.import_module(pack.__name__ + ".phnet.sam").SamSegmenter
    assert isinstance(sam_model, loaders.PHNetSAM) and isinstance(sam_model.segmenter, SamSegmenter)
    assert str(sam_model.load_device) == "cpu" and str(sam_model.offload_device) == "cpu"
    assert pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"].RETURN_TYPES == ("PHNET_SAM",)


def test_a_sam_repo_with_several_checkpoints_is_met_with_the_nodes_way_to_choose(nodes, pack, monkeypatch):
    sam = importlib.import_module(pack.__name__ + ".phnet.sam")

    def several(*args, **kwargs):
        raise sam.SeveralCheckpoints("Hugging Face repo 'someone/sams'", ["a.pth", "b.pth"])

    monkeypatch.setattr(sam.SamSegmenter, "from_pretrained", several)
    with pytest.raises(ValueError, match=r"; choose one: name its file in hub_filename, or set model_type"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", "someone/sams", "", "auto", "cpu")


def test_a_sam_folder_of_one_checkpoint_per_model_type_is_picked_from_by_model_type(nodes, tmp_path):
    """vit_b/model.safetensors beside vit_h/model.safetensors: model_type vit_b was refused, and the refusal said
    to set model_type although it was set."""
    from tests.helpers.tiny_sam import save_tiny_sam

    save_tiny_sam(tmp_path / "vit_b" / "model.safetensors")
    save_tiny_sam(tmp_path / "vit_h" / "model.safetensors", seed=1)
    with pytest.raises(ValueError, match=r"vit_b[/\\]model\.safetensors holds a custom SAM .*not the requested vit_b"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", str(tmp_path), "", "vit_b", "cpu")
    save_tiny_sam(tmp_path / "vit_b" / "other.safetensors", seed=2)
    with pytest.raises(ValueError, match=r"does not tell them apart.*; choose one: name its file in hub_filename$"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", str(tmp_path), "", "vit_b", "cpu")


def test_a_sam_file_picked_in_model_name_loads_with_a_hub_filename_left_over(nodes, tiny_sam):
    """hub_filename names a file of hub_repo_id: left filled in after a download, it made the file picked in
    model_name fail with the library's 'filename=' refusal."""
    seg = nodes["PHNetSAMLoader"].load(tiny_sam, "", "sam_vit_b_01ec64.pth", "auto", "cpu")[0]
    assert seg is not None


def test_sam_loader_missing_file(nodes, pack):
    cls = pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]
    msg = cls.VALIDATE_INPUTS(model_name="nope.pth")
    assert isinstance(msg, str) and "models/sams" in msg
    assert cls.VALIDATE_INPUTS(model_name="(from hub_repo_id)") is True  # a Hub-only setup validates
    assert cls.VALIDATE_INPUTS(model_name=None) is True  # a link: ComfyUI validates it before it has a value
    assert cls.VALIDATE_INPUTS(model_name="sender's.pth", hub_repo_id="owner/sams") is True  # unused then
    with pytest.raises(ValueError, match="set hub_repo_id"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", "", "", "auto", "auto")
    with pytest.raises(FileNotFoundError, match="sams"):
        nodes["PHNetSAMLoader"].load("nope.pth", "", "", "auto", "auto")


def test_sam_loader_is_changed_tracks_file(pack, tiny_sam):
    cls = pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]
    a = cls.IS_CHANGED(tiny_sam, "", "", "auto", "auto")
    assert a == cls.IS_CHANGED(tiny_sam, "", "", "auto", "auto") and "sam-vit-base" in a


def test_sam_loader_takes_a_quoted_path_and_names_its_own_fields_for_a_mistyped_one(nodes, pack, tiny_sam,
                                                                                 comfy_env):
    """A path quoted by Explorer's "Copy as path" was refused (the PHNet loader took it), and a mistyped one got
    the library's advice to pass filename=, which the node has no field for."""
    path = str(comfy_env.base / "models" / "sams" / tiny_sam)
    cls = pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]
    assert cls.IS_CHANGED("(from hub_repo_id)", f'"{path}"', "", "auto", "auto") == cls.IS_CHANGED(
        "(from hub_repo_id)", path, "", "auto", "auto")
    (sam,) = nodes["PHNetSAMLoader"].load("(from hub_repo_id)", f'"{path}"', "", "auto", "cpu")
    assert sam.segmenter.model_type == "custom"  # the tiny SAM
    with pytest.raises(FileNotFoundError, match="hub_repo_id .* no file or folder on this machine.*hub_filename"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", path + "x", "", "auto", "cpu")


@pytest.mark.parametrize("loader", ["PHNetSAMLoader", "PHNetModelLoader"])
def test_a_linked_input_runs_the_loader_each_time_which_shares_a_model_still_held(pack, nodes, loader, comfy_env):
    """Linked from another node (a String node's path), the input reaches IS_CHANGED as None, and the file it
    names could not be watched: retrained weights at that path were never reloaded. The loader now runs each
    time; a model still held (by another loader's output) is shared while its files have not changed."""
    import math

    import torch
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained

    cls = pack.NODE_CLASS_MAPPINGS[loader]
    assert math.isnan(cls.IS_CHANGED(None, "")) and math.isnan(cls.IS_CHANGED("x", None))
    if loader == "PHNetSAMLoader":
        return
    folder = comfy_env.base / "models" / "phnet" / "retrained"
    cfg = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    save_pretrained(PHNet(cfg).eval(), folder)
    first = nodes[loader].load("default (bundled)", str(folder), "cpu", "fp32")[0]
    assert nodes[loader].load("default (bundled)", str(folder), "cpu", "fp32")[0] is first  # unchanged: kept
    torch.manual_seed(5)
    save_pretrained(PHNet(cfg).eval(), folder)  # retrained: new weights at the same path
    again = nodes[loader].load("default (bundled)", str(folder), "cpu", "fp32")[0]
    assert again is not first and any(not torch.equal(a, b) for a, b in zip(again.model.parameters(),
                                                                             first.model.parameters()))


# ---------------------------------------------------------------- segment
def test_parse_prompts(pack):
    seg = importlib.import_module(pack.__name__ + ".nodes.segment")
    assert seg.parse_points("10,20; 30.5, 40\n 1 2") == [(10, 20), (30.5, 40), (1, 2)]
    assert seg.parse_points("[[1,2],[3,4]]") == [(1, 2), (3, 4)]
    assert seg.parse_points('[{"x": 5, "y": 6}]') == [(5, 6)]
    assert seg.parse_points("[10, 20.5]") == seg.parse_points("(10, 20.5)") == [(10, 20.5)]  # one point as JSON
    assert seg.parse_points("") == []
    # bracketed points one after another read as their parenthesised twins did
    for text in ("[10,20]; [30,40]", "[10,20],[30,40]", '{"x":10,"y":20}; {"x":30,"y":40}', "(10,20), (30,40)",
                 '{"x":10,"y":20};{"x":30,"y":40};', "[10,20], [30,40],", "10,20; 30,40;"):
        assert seg.parse_points(text) == [(10, 20), (30, 40)], text
    for bad in ("[[null,2]]", "[[1,2,3]]", '[{"y": 6}]', '{"x": 5}'):  # a point without its x or y
        with pytest.raises(ValueError, match="each point must be"):
            seg.parse_points(bad)
    # NaN, an infinity and a boolean reached SAM's check as "a list of (x, y) pairs, got [(nan, 5.0)]", or, true,
    # as x = 1
    for bad in ("[[NaN, 5]]", '[{"x": Infinity, "y": 5}]', "[[1e999, 5]]", "[[true, 5]]", '["nan", 5]'):
        with pytest.raises(ValueError, match=r"each point must be \[x, y\] .* with finite numbers, got "):
            seg.parse_points(bad)
    with pytest.raises(ValueError, match="^points: '1e999,5' holds a number too large to be a pixel coordinate"):
        seg.parse_points("10,20; 1e999,5")
    assert seg.parse_box("40,30,10,5") == (10, 5, 40, 30)
    assert seg.parse_box(" ") is None
    for parse, bad, told in ((seg.parse_box, "1,2,3", "box: '1,2,3' is not a box; write it as 'x0,y0,x1,y1'"),
                             (seg.parse_points, "a,b; c", "points: 'a,b' is not a point; write pixel coordinates"),
                             (seg.parse_box, "1,2,3,4,5", "box: '1,2,3,4,5' is not a box")):
        with pytest.raises(ValueError, match=re.escape(told)):
            parse(bad)
    for flat in ("5,5,5,9", "5,5,9,5", "5,5,9,5.5"):  # no width, no height, half a pixel of height
        with pytest.raises(ValueError, match="no area"):
            seg.parse_box(flat)
    # a box in fractions of the image, as some detectors give it, was only said to have no area
    with pytest.raises(ValueError, match=r"^box: '0.1,0.2,0.9,0.8' has no area in pixels; these look like fractions "
                                         r"of the image \(0..1\): the box is in pixels, so multiply them"):
        seg.parse_box("0.1,0.2,0.9,0.8")
    # a dash for a comma is a typo, not a minus sign: '10-20,30,40' became a box from y -20, clipped to the top
    with pytest.raises(ValueError, match="is not a box"):
        seg.parse_box("10-20,30,40")
    with pytest.raises(ValueError, match="is not a point"):
        seg.parse_points("10-20")
    assert seg.parse_box("-5,-5,1e1,2e+1") == (-5, -5, 10, 20) and seg.parse_points("-1.5,2") == [(-1.5, 2)]


def test_segment_box_points_and_guide(nodes, sam_model, comfy_env, portrait):
    img, subject = portrait(b=2)
    node = nodes["PHNetSAMSegment"]
    (m,) = node.segment(sam_model, img, box="20,10,44,38")
    assert m.shape == (2, 48, 64) and m.dtype == torch.float32 and m.min() >= 0 and m.max() <= 1
    (m2,) = node.segment(sam_model, img, positive_points="32,24", negative_points="2,2", multimask=True,
                         grow=2, feather=1.5)
    assert m2.shape == (2, 48, 64) and bool((m2[:, 24, 32] > 0.5).all())  # the positive point is in
    assert bool(((m2 > 0) & (m2 < 1)).any())  # feathered
    unrefined, = node.segment(sam_model, img, positive_points="32,24", negative_points="2,2", multimask=True)
    assert float((m2 > 0).sum()) > float((unrefined > 0.5).sum())  # grown
    # a single guide mask is broadcast over the batch; its bbox becomes the box prompt
    (m3,) = node.segment(sam_model, img, guide_mask=subject[:1])
    (m4,) = node.segment(sam_model, img, box="{},{},{},{}".format(*_bbox(subject[0])))
    assert torch.equal(m3, m4)


def _bbox(m):
    ys, xs = torch.nonzero(m > 0.5, as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_several_guide_masks_for_one_image_give_one_mask_each(nodes, sam_model, portrait):
    img, subject = portrait(b=1)
    guides = torch.stack([subject[0], subject[0].roll(-16, 1)])
    (masks,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=guides)
    assert masks.shape == (2, 48, 64)
    for k in range(2):
        (alone,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=guides[k : k + 1])
        assert torch.equal(masks[k : k + 1], alone)


def test_segment_empty_guide_gives_empty_mask(nodes, sam_model, caplog, portrait):
    img, _ = portrait(b=1)
    (m,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=torch.zeros(1, 48, 64))
    assert m.shape == (1, 48, 64) and m.sum() == 0
    assert "empty" in caplog.text


def test_a_faint_guide_mask_is_a_guide_not_an_empty_one(nodes, sam_model, caplog, portrait):
    """A guide at 50 % opacity (feathered, or ImageToMask of a grey drawing) was taken for an empty one: the
    output mask was empty, with a warning that the guide was."""
    img, _ = portrait(b=1)
    guide = torch.zeros(1, 48, 64)
    guide[:, 10:40, 20:44] = 0.5
    (m,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=guide)
    (full,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=(guide > 0).float())
    assert torch.equal(m, full) and "empty" not in caplog.text


def test_segment_needs_a_prompt(nodes, sam_model, portrait):
    img, _ = portrait()
    with pytest.raises(ValueError, match="needs a prompt"):
        nodes["PHNetSAMSegment"].segment(sam_model, img)
    with pytest.raises(ValueError, match=r"needs a prompt.*negative points alone"):
        nodes["PHNetSAMSegment"].segment(sam_model, img, negative_points="1,1")


def test_segment_guide_masks_are_boxes_of_any_size(nodes, sam_model, caplog, portrait):
    """An empty guide gives an empty mask even with negative points (SAM ran on the negative click alone), and
    a guide of the whole picture is the box of the whole picture (it was refused as a harmonization mask)."""
    img, _ = portrait(b=1)
    (m,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=torch.zeros(1, 48, 64), negative_points="1,1")
    assert m.sum() == 0 and "empty" in caplog.text
    (whole,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=torch.ones(1, 48, 64))
    (boxed,) = nodes["PHNetSAMSegment"].segment(sam_model, img, box="0,0,64,48")
    assert torch.equal(whole, boxed)


def test_paste_subject_takes_a_subject_mask_of_the_whole_cut_out(nodes):
    bg, sub = torch.rand(1, 40, 50, 3), torch.rand(1, 10, 12, 3)
    comp, mask = nodes["PHNetPasteSubject"].paste(bg, sub, x=5, y=7, scale=1.0, anchor="top-left",
                                                   subject_mask=torch.ones(1, 10, 12))
    plain, plain_mask = nodes["PHNetPasteSubject"].paste(bg, sub, x=5, y=7, scale=1.0, anchor="top-left")
    assert torch.equal(comp, plain) and torch.equal(mask, plain_mask)


def test_segment_accepts_plain_sam_model(nodes, tiny_sam, portrait):
    """Other packs' SAM loaders put a segment_anything Sam on the SAM_MODEL socket."""
    from tests.helpers.tiny_sam import build_tiny_sam

    img, _ = portrait()
    (m,) = nodes["PHNetSAMSegment"].segment(build_tiny_sam(), img, box="20,10,44,38")
    assert m.shape == (1, 48, 64)
    with pytest.raises(ValueError, match="cannot use"):
        nodes["PHNetSAMSegment"].segment(object(), img, box="20,10,44,38")


def test_segment_honours_interrupt(nodes, sam_model, comfy_env, portrait):
    img, _ = portrait(b=2)
    comfy_env.utils.set_progress_bar_global_hook(
        lambda v, t, p, node_id=None: comfy_env.mm.throw_exception_if_processing_interrupted())
    comfy_env.mm.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy_env.mm.InterruptProcessingException):
            nodes["PHNetSAMSegment"].segment(sam_model, img, box="20,10,44,38")
    finally:
        comfy_env.utils.set_progress_bar_global_hook(None)
    assert not comfy_env.mm.processing_interrupted()


def _points(sam_model) -> int:
    from phnet.sam.interruptible import interrupt_points

    return interrupt_points(sam_model.segmenter.model.image_encoder)


def test_progress_bar_ticks_per_encoder_block_and_prompt(nodes, sam_model, comfy_env, portrait):
    ticks = []
    comfy_env.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: ticks.append((v, t)))
    sam_model.segmenter.reset_image()  # an image encoded by an earlier test would not be encoded again
    try:
        img, _ = portrait(b=3)
        nodes["PHNetSAMSegment"].segment(sam_model, img, box="20,10,44,38")
    finally:
        comfy_env.utils.set_progress_bar_global_hook(None)
    steps = _points(sam_model) + 1  # the encoder's interrupt points, then the prompt
    assert ticks == [(k, 3 * steps) for k in range(1, 3 * steps + 1)]


# ---------------------------------------------------------------- paste
def test_paste_subject_moves_the_progress_bar_once_per_composite(nodes, comfy_env):
    """The bar went untouched under a hand-made mutant the suite let pass (its hook also carries Cancel)."""
    ticks = []
    comfy_env.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: ticks.append((v, t)))
    try:
        nodes["PHNetPasteSubject"].paste(torch.zeros(3, 20, 20, 3), torch.ones(1, 6, 6, 3), x=2, y=3)
    finally:
        comfy_env.utils.set_progress_bar_global_hook(None)
    assert ticks == [(1, 3), (2, 3), (3, 3)]


def test_paste_subject(nodes):
    bg = torch.zeros(1, 40, 50, 3)
    sub = torch.ones(2, 10, 10, 3)
    sm = torch.zeros(1, 10, 10)
    sm[:, 2:8, 2:8] = 1
    comp, mask = nodes["PHNetPasteSubject"].paste(bg, sub, x=5, y=7, scale=1.0, anchor="top-left", subject_mask=sm)
    assert comp.shape == (2, 40, 50, 3) and mask.shape == (2, 40, 50)
    assert mask.sum() == 2 * 36 and torch.all(comp[:, 9:15, 7:13] == 1)
    assert torch.equal(comp[..., 0] > 0.5, mask > 0.5)
    # without a mask the rectangle is pasted; clipping at the border; centre anchor; scale
    comp, mask = nodes["PHNetPasteSubject"].paste(bg, sub[:1], x=48, y=0, scale=2.0, anchor="center")
    assert mask.shape == (1, 40, 50) and 0 < mask.sum() < 400
    with pytest.raises(ValueError, match="outside"):
        nodes["PHNetPasteSubject"].paste(bg, sub, x=500, y=500)
    with pytest.raises(ValueError, match="batch"):
        nodes["PHNetPasteSubject"].paste(torch.zeros(2, 8, 8, 3), torch.zeros(3, 4, 4, 3))
    # a subject upscaled after SAM cut it out: its mask is resized to it, as Harmonize does
    big = torch.ones(1, 20, 20, 3)
    sm16 = torch.zeros(1, 16, 16)
    sm16[:, 4:12, 4:12] = 1
    comp, mask = nodes["PHNetPasteSubject"].paste(bg, big, x=0, y=0, scale=1.0, anchor="top-left", subject_mask=sm16)
    assert mask.shape == (1, 40, 50) and 0 < float(mask.sum()) < 20 * 20
    # an RGBA subject without a subject_mask is cut out by its alpha, as the tooltip says
    rgba = torch.ones(1, 20, 20, 4)
    rgba[..., 3] = 0
    rgba[:, 5:15, 5:15, 3] = 1
    comp, mask = nodes["PHNetPasteSubject"].paste(bg, rgba, x=0, y=0)
    assert float(mask.sum()) == 100 and "RGBA subject's alpha" in nodes["PHNetPasteSubject"].INPUT_TYPES()[
        "optional"]["subject_mask"][1]["tooltip"]


def test_paste_subject_says_one_per_subject_mask_only_where_the_masks_made_the_subjects(nodes):
    """3 subject pictures and one subject_mask on 2 backgrounds were "3 subjects (one per subject_mask)"."""
    paste, one = nodes["PHNetPasteSubject"].paste, torch.ones(1, 4, 4)
    with pytest.raises(ValueError, match=r"2 backgrounds and 3 subjects; give one of them"):
        paste(torch.zeros(2, 8, 8, 3), torch.zeros(3, 4, 4, 3), subject_mask=one)
    with pytest.raises(ValueError, match=r"2 backgrounds and 3 subjects \(one per subject_mask\); give one of them"):
        paste(torch.zeros(2, 8, 8, 3), torch.zeros(1, 4, 4, 3), subject_mask=one.repeat(3, 1, 1))


def test_sam_loader_safetensors_and_model_type(nodes, comfy_env):
    from tests.helpers.tiny_sam import save_tiny_sam

    save_tiny_sam(comfy_env.base / "models" / "sams" / "sub" / "tiny.safetensors")
    (sam,) = nodes["PHNetSAMLoader"].load("sub/tiny.safetensors", "", "", "auto", "cpu")
    assert sam.segmenter.model_type == "custom"
    with pytest.raises(ValueError, match="not the requested vit_b"):
        nodes["PHNetSAMLoader"].load("sub/tiny.safetensors", "", "", "vit_b", "cpu")


def test_the_sam_loader_without_segment_anything_names_the_pip_command_that_installs_it(nodes, comfy_env,
                                                                                      monkeypatch):
    """ComfyUI does not ship segment-anything: a pack cloned without its requirements.txt showed Python's bare
    "No module named 'segment_anything'"."""
    from tests.helpers.tiny_sam import save_tiny_sam

    save_tiny_sam(comfy_env.base / "models" / "sams" / "without_segment_anything.safetensors")
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # import raises as where it is not installed
    with pytest.raises(ImportError, match=r"^PHNet's Segment Anything needs the segment-anything package: .* -m pip "
                                          r"install \"segment-anything>=1\.0\" \(a node pack or an extension: install "
                                          r"its requirements\.txt\)$"):
        nodes["PHNetSAMLoader"].load("without_segment_anything.safetensors", "", "", "auto", "cpu")


def test_a_sam_file_in_a_local_folder_given_as_hub_repo_id(nodes, tmp_path):
    """A folder holding several checkpoints asks for a filename; given one, it made a Hub URL of the folder."""
    from tests.helpers.tiny_sam import save_tiny_sam

    for name in ("a.safetensors", "b.safetensors"):
        save_tiny_sam(tmp_path / name)
    (sam,) = nodes["PHNetSAMLoader"].load("(from hub_repo_id)", str(tmp_path), "b.safetensors", "auto", "cpu")
    assert sam.segmenter.model_type == "custom"


def test_a_sam_file_from_the_hub_lands_in_models_sams_under_its_repo_and_name(pack, comfy_env, monkeypatch, tmp_path):
    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    before = set(p.relative_to(sams) for p in sams.rglob("*"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as e:
        loaders._download_sam("someone/sam", "checkpoints/sam_vit_x.pth")
    assert "https://huggingface.co/someone/sam/resolve/main/checkpoints/sam_vit_x.pth" in str(e.value)
    assert "as someone--sam--checkpoints--sam_vit_x.pth" in str(e.value) and "--local-dir" not in str(e.value)
    assert set(p.relative_to(sams) for p in sams.rglob("*")) == before  # no stray folders
    # owner/name@revision[:file], as the PHNet loader takes it: the revision goes into the URL and the name
    for repo, filename in (("someone/sam@v2", "sam_vit_x.pth"), ("someone/sam@v2:sam_vit_x.pth", "")):
        with pytest.raises(FileNotFoundError) as e:
            pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]().load("(from hub_repo_id)", repo, filename)
        assert "https://huggingface.co/someone/sam/resolve/v2/sam_vit_x.pth" in str(e.value)
        assert "as someone--sam@v2--sam_vit_x.pth" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:  # a pull request's revision, a space: quoted as the Hub needs them
        pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]().load("(from hub_repo_id)", "someone/sam@refs/pr/1", "a b.pth")
    assert "https://huggingface.co/someone/sam/resolve/refs%2Fpr%2F1/a%20b.pth by hand" in str(e.value)
    for path in ("C:\\sams\\sam_vit_b_01ec64.pth", "/home/me/sams/sam_vit_b@2.pth"):  # mistyped paths: no Hub
        with pytest.raises(FileNotFoundError, match=re.escape(repr(path)) + " is no file or folder on this machine"):
            pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"]().load("(from hub_repo_id)", path, "")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    cached = tmp_path / "blob"
    cached.write_bytes(b"weights")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(cached))
    try:
        got = loaders._download_sam("someone/sam", "checkpoints/sam_vit_x.pth")
        placed = sams / "someone--sam--checkpoints--sam_vit_x.pth"
        assert got == str(placed) and placed.read_bytes() == b"weights"
        assert set(p.relative_to(sams) for p in sams.rglob("*")) == before | {Path(placed.name)}
        # another repo's file of the same name is its own download, not the first one reused
        other = tmp_path / "other-blob"
        other.write_bytes(b"other weights")
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(other))
        got = loaders._download_sam("someone-else/sam", "sam_vit_x.pth")
        assert Path(got).read_bytes() == b"other weights" and placed.read_bytes() == b"weights"
    finally:
        for placed in sams.glob("someone*--sam--*sam_vit_x.pth"):
            placed.unlink()


def test_a_sam_file_in_the_hub_cache_is_placed_whole_offline_and_two_folders_files_stay_apart(
        pack, comfy_env, monkeypatch, own_hub_cache):
    """The Hub cache's snapshot entries are relative links into its blobs: a hard link to the link dangled, so
    every download ended "not found" (and a stale .part stayed). Offline, a cached file was refused unasked,
    and vit_b/model.safetensors and vit_h/model.safetensors of one repo were saved under one name."""
    import hashlib

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    sams.mkdir(parents=True, exist_ok=True)  # (run alone, no earlier test has made it)
    repo = own_hub_cache / "models--someone--sams"
    commit = "c" * 40
    for path, data in (("vit_b/model.safetensors", b"weights of ViT-B"), ("vit_h/model.safetensors", b"ViT-H"),
                       ("vit_b/sam.pth", b"ViT-B sam.pth")):
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        entry = repo / "snapshots" / commit / path
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.symlink_to(Path("..", "..", "..", "blobs", blob.name))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stale = sams / "someone--sams--vit_b--model.safetensors.part"
    stale.symlink_to(Path("..", "..", "..", "blobs", "gone"))  # left by the broken link of an earlier version
    try:
        b = loaders._download_sam("someone/sams", "vit_b/model.safetensors")
        h = loaders._download_sam("someone/sams", "/vit_h\\model.safetensors")  # pasted from Windows, with a /
        assert Path(b).name == "someone--sams--vit_b--model.safetensors" and not Path(b).is_symlink()
        assert Path(b).read_bytes() == b"weights of ViT-B" and Path(h).read_bytes() == b"ViT-H"
        assert not os.path.lexists(stale)
    finally:
        for placed in sams.glob("someone--sams--*"):
            placed.unlink()
    # a file an earlier release placed under its base name alone is still found, offline, unless that name is
    # one that another folder's file of the repo may have
    (sams / "someone--sams--sam_vit_b_01ec64.pth").write_bytes(b"placed before")
    (sams / "someone--sams--model.safetensors").write_bytes(b"placed before")
    try:
        got = loaders._download_sam("someone/sams", "checkpoints/sam_vit_b_01ec64.pth")
        assert Path(got).name == "someone--sams--sam_vit_b_01ec64.pth"
        assert Path(loaders._download_sam("someone/sams", "vit_h/model.safetensors")).read_bytes() == b"ViT-H"
        # a name that does not say what it holds may be the repo's top-level file: vit_b/sam.pth was given it
        (sams / "someone--sams--sam.pth").write_bytes(b"the top-level sam.pth")
        assert Path(loaders._download_sam("someone/sams", "vit_b/sam.pth")).read_bytes() == b"ViT-B sam.pth"
    finally:
        for placed in sams.glob("someone--sams--*"):
            placed.unlink()


def test_a_sam_copy_cut_short_leaves_no_half_file(pack, comfy_env, monkeypatch, tmp_path, caplog):
    """A copy from the Hub cache that failed (a full disk) left a <name>.part of up to 2.5 GB in models/sams
    for good: now it goes, and the cached file is used, with a log line saying where it should go."""
    import errno

    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    before = set(sams.rglob("*"))
    cached = tmp_path / "blob"
    cached.write_bytes(b"weights")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # CI runs offline; the Hub client is faked here
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(cached))

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    def copy_until_full(src, dst):
        Path(dst).write_bytes(b"wei")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loaders.os, "link", no_link)
    monkeypatch.setattr(loaders.shutil, "copyfile", copy_until_full)
    assert loaders._download_sam("someone/sam", "sam_vit_x.pth") == str(cached)
    assert set(sams.rglob("*")) == before
    assert "could not place someone--sam--sam_vit_x.pth in" in caplog.text and "No space left on device" in caplog.text


def test_the_half_copies_killed_tries_left_go_and_a_long_name_is_placed(pack, comfy_env, monkeypatch, tmp_path):
    """Each try copies to a partial file of its own: a try killed mid-copy left one that no later try removed (up
    to 2.5 GB each), and a name of 238-250 characters, with the suffix, passed 255 bytes and was never placed."""
    import time

    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    sams.mkdir(parents=True, exist_ok=True)
    cached = tmp_path / "blob"
    cached.write_bytes(b"weights")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # CI runs offline; the Hub client is faked here
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(cached))
    name = "someone--sam--sam_vit_x.pth"
    killed = [sams / f".{name[:40]}.0123456789ab.part", sams / f"{name}.part"]  # this release's, an earlier one's
    running = sams / f".{name[:40]}.ba9876543210.part"  # another process's, copying now
    for part in (*killed, running):
        part.write_bytes(b"wei")
    later = time.time() + loaders.STALE_PART_S + 60
    monkeypatch.setattr(loaders.time, "time", lambda: later)
    os.utime(running, (later, later))  # written to a moment ago
    try:
        assert loaders._download_sam("someone/sam", "sam_vit_x.pth") == str(sams / name)
        assert sorted(p.name for p in sams.iterdir() if "sam_vit_x" in p.name) == sorted([name, running.name])
        killed[0].write_bytes(b"wei")  # a try killed after the file was placed by another: a later load clears it
        monkeypatch.setattr(loaders.time, "time", lambda: later + loaders.STALE_PART_S + 60)
        assert loaders._download_sam("someone/sam", "sam_vit_x.pth") == str(sams / name)
        assert not killed[0].exists() and not running.exists()  # (untouched for as long: a killed try's too)
        long = "f" * 220 + ".pth"
        placed = loaders._download_sam("someone/sam", long)
        assert placed == str(sams / f"someone--sam--{long}") and Path(placed).read_bytes() == b"weights"
        assert len(Path(placed).name) == 238 and not [p for p in sams.iterdir() if p.name.endswith(".part")]
    finally:
        for made in sams.glob("*someone--sam--*"):
            made.unlink()


def test_two_loaders_copying_one_sam_from_the_hub_cache_each_get_it_whole(pack, comfy_env, monkeypatch, tmp_path):
    """Two ComfyUI processes placing one Hub SAM (the cache on another disk: a copy) shared one .part: the second
    removed the first one's and copied anew, and the first renamed the second one's half file into place."""
    import errno
    import threading

    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    sams.mkdir(parents=True, exist_ok=True)
    before = set(sams.rglob("*"))
    cached = tmp_path / "blob"
    cached.write_bytes(bytes(range(256)) * 64)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # CI runs offline; the Hub client is faked here
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(cached))

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    copies, halves, first_read = [], [threading.Event(), threading.Event()], threading.Event()

    def copy_in_two(src, dst):  # the first copy ends after the second has begun, the second after the first is read
        me = len(copies)
        copies.append(dst)
        data = Path(src).read_bytes()
        with open(dst, "wb") as f:
            f.write(data[:len(data) // 2])
            f.flush()
            halves[me].set()
            (halves[1] if me == 0 else first_read).wait(5)
            f.write(data[len(data) // 2:])

    monkeypatch.setattr(loaders.os, "link", no_link)
    monkeypatch.setattr(loaders.shutil, "copyfile", copy_in_two)
    got = {}

    def load(who):
        if who == "second":
            halves[0].wait(5)
        path = loaders._download_sam("someone/sam", "sam_vit_x.pth")
        got[who] = Path(path).read_bytes()
        if who == "first":
            first_read.set()

    threads = [threading.Thread(target=load, args=(who,)) for who in ("first", "second")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(copies) == 2 and got == {"first": cached.read_bytes(), "second": cached.read_bytes()}
        assert set(sams.rglob("*")) == before | {sams / "someone--sam--sam_vit_x.pth"}  # no partial file left
    finally:
        for placed in sams.glob("*someone--sam--sam_vit_x.pth*"):
            placed.unlink()


def test_a_sam_from_the_hub_is_loaded_from_the_hub_cache_where_no_sams_folder_can_be_made(
        pack, nodes, comfy_env, monkeypatch, tmp_path, caplog):
    """The folder was made outside the step that turns a failure into advice: a bare OSError stopped the run,
    though the file was in the cache."""
    from tests.helpers.tiny_sam import save_tiny_sam

    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    blob = save_tiny_sam(tmp_path / "blobs" / "0123abcd", fmt="safetensors")  # no extension, as in the cache
    entry = tmp_path / "snapshots" / "main" / "sam_vit_x.safetensors"
    entry.parent.mkdir(parents=True)
    entry.symlink_to(Path("..", "..", "blobs", blob.name))
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr(loaders.paths, "download_dir", lambda folder: str(tmp_path / "not-a-folder" / "sams"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # CI runs offline; the Hub client is faked here
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(entry))
    (sam,) = nodes["PHNetSAMLoader"].load(loaders.paths.SAM_FROM_HUB, "someone/sam", "sam_vit_x.safetensors",
                                          "auto", "cpu")
    assert sam.segmenter.model_type
    assert f"could not place someone--sam--sam_vit_x.safetensors in {tmp_path / 'not-a-folder' / 'sams'}" in caplog.text
    assert f"loading it from the Hugging Face cache, {entry}, instead" in caplog.text


def test_the_sam_picker_lists_only_files_the_sam_loader_reads(pack, comfy_env):
    from tests.helpers.tiny_sam import save_tiny_sam

    sams = comfy_env.base / "models" / "sams"
    save_tiny_sam(sams / "renamed.sft", fmt="safetensors")
    try:
        choices = pack.NODE_CLASS_MAPPINGS["PHNetSAMLoader"].INPUT_TYPES()["required"]["model_name"][0]
        assert "renamed.sft" in choices
        loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
        (sam,) = loaders.PHNetSAMLoader().load("renamed.sft", "", "", "auto", "cpu")
        assert sam.segmenter.model_type  # its size read from the weights
    finally:
        (sams / "renamed.sft").unlink()


def test_cancel_stops_sam_segment_between_encoder_parts_with_progress_at_each(nodes, sam_model, comfy_env,
                                                                                  monkeypatch):
    seen = []
    monkeypatch.setattr(comfy_env.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: seen.append((value, total)))
    image = torch.rand(2, 48, 64, 3)
    points = _points(sam_model)  # each block's attention and MLP, and each head of a global attention
    (mask,) = nodes["PHNetSAMSegment"].segment(sam_model, image, box="8,8,40,30")
    assert seen[-1] == (2 * (points + 1),) * 2 and len(seen) >= 2 * points  # a tick per half block
    calls = []

    def press_cancel_during_the_first_block(*_):
        calls.append(1)
        comfy_env.mm.interrupt_current_processing()

    monkeypatch.setattr(comfy_env.utils, "PROGRESS_BAR_HOOK", lambda *a, **k: press_cancel_during_the_first_block())
    with pytest.raises(comfy_env.mm.InterruptProcessingException) as stopped:
        nodes["PHNetSAMSegment"].segment(sam_model, image, box="8,8,40,30")
    assert "Interrupt" in type(stopped.value).__name__ and len(calls) == 1  # stopped before the next block


@pytest.mark.parametrize("prompt", [{"positive_points": "500,500"}, {"box": "1000,1000,2000,2000"}])
def test_a_prompt_outside_the_image_is_refused_before_sam_moves_or_encodes(nodes, sam_model, portrait,
                                                                            monkeypatch, prompt):
    img, _ = portrait(b=2)
    seen = []
    monkeypatch.setattr(sam_model.segmenter, "_encode", lambda *a: seen.append("encode"))
    monkeypatch.setattr(sam_model.segmenter, "to", lambda *a: seen.append("moved"))
    with pytest.raises(ValueError, match="outside the 64x48 image|no area inside the 64x48 image"):
        nodes["PHNetSAMSegment"].segment(sam_model, img, **prompt)
    assert seen == []


def test_sam_segment_says_when_feather_spreads_a_small_mask_too_thin(nodes, sam_model, portrait, caplog,
                                                                    monkeypatch):
    """Its mask went out at a fraction of a percent of full with no word, and Harmonize blamed a 16-bit mask."""
    import logging

    import numpy as np

    img, _ = portrait(b=1)
    small = np.zeros(img.shape[1:3], np.float32)
    small[20:23, 30:33] = 1  # a subject a few pixels wide, as SAM finds in a small box
    monkeypatch.setattr(sam_model.segmenter, "segment", lambda *a, **k: small.copy())
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):
        (thin,) = nodes["PHNetSAMSegment"].segment(sam_model, img, box="28,18,36,26", grow=-1, feather=8.0)
    assert 0 < float(thin.max()) < 1 / 64
    assert ("feather 8 spread image 0's mask too thin to mark a subject (its strongest value is 0.2" in caplog.text
            and "of full): lower feather, or raise grow toward 0" in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):
        (thin,) = nodes["PHNetSAMSegment"].segment(sam_model, img, box="28,18,36,26", feather=12.0)
    assert "feather 12 spread image 0's mask too thin" in caplog.text and "raise grow" not in caplog.text
    assert f"its strongest value is {100 * float(thin.max()):.2f}% of full" in caplog.text  # 1.00 %, not 1.01
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):
        nodes["PHNetSAMSegment"].segment(sam_model, img, box="28,18,36,26", feather=1.0)
    assert "too thin" not in caplog.text


def test_a_feather_wider_than_the_image_is_refused_before_sam_moves_or_encodes(nodes, sam_model, portrait,
                                                                             monkeypatch):
    """refine_mask refused it only after the first picture's encode (minutes with a ViT-H on a CPU), unnamed."""
    img, _ = portrait(b=2)
    seen = []
    monkeypatch.setattr(sam_model.segmenter, "_encode", lambda *a: seen.append("encode"))
    monkeypatch.setattr(sam_model.segmenter, "to", lambda *a: seen.append("moved"))
    with pytest.raises(ValueError, match=r"^PHNet SAM Segment: feather 64.5 is wider than the 64x48 image, .*: "
                                         r"give a feather of at most 64 pixels$"):
        nodes["PHNetSAMSegment"].segment(sam_model, img, box="5,5,30,30", feather=64.5)
    assert seen == []


def test_where_the_guide_mask_is_empty_the_mask_is_empty_whatever_the_points_say(nodes, sam_model, portrait):
    """A clip's frame that its subject has left: Harmonize Frames then passes it through as it was."""
    img, subject = portrait(b=2)
    guides = torch.stack([subject[0], torch.zeros_like(subject[0])])
    (m,) = nodes["PHNetSAMSegment"].segment(sam_model, img, positive_points="32,24", guide_mask=guides)
    (first,) = nodes["PHNetSAMSegment"].segment(sam_model, img[:1], positive_points="32,24", guide_mask=guides[:1])
    assert m[1].sum() == 0 and torch.equal(m[0], first[0])


def test_another_packs_sam_works_on_the_compute_device_and_goes_back(nodes, pack, comfy_env, monkeypatch):
    """Impact Pack parks its SAM on the CPU between its own runs; a GPU machine should not encode there."""
    from tests.helpers.tiny_sam import build_tiny_sam

    segment = importlib.import_module(pack.__name__ + ".nodes.segment")
    monkeypatch.setattr(comfy_env.mm, "get_torch_device", lambda: torch.device("meta"))  # no CUDA call needed
    wrapped = segment.as_phnet_sam(build_tiny_sam())
    assert wrapped.load_device == torch.device("meta") and wrapped.offload_device == torch.device("cpu")
    look_alike = type("Sam", (torch.nn.Module,), {"__module__": "sam_hq.modeling.sam"})()  # a class of its own
    look_alike.image_encoder, look_alike.mask_decoder = torch.nn.Identity(), torch.nn.Identity()
    with pytest.raises(ValueError, match="it is a Sam from sam_hq.modeling.sam .*SAM-HQ.*PHNet SAM Loader"):
        segment.as_phnet_sam(look_alike)
    hq = build_tiny_sam()  # how comfyui_segment_anything builds SAM-HQ: Meta's Sam around an encoder of its own
    hq.image_encoder = type("ImageEncoderViTHQ", (torch.nn.Module,), {"__module__": "sam_hq.modeling.image_encoder"})()
    with pytest.raises(ValueError, match="its image_encoder is a ImageEncoderViTHQ from sam_hq.modeling.image_encoder"):
        segment.as_phnet_sam(hq)


def test_a_local_sam_file_with_a_hub_filename_says_which_to_leave_out(nodes, comfy_env, tiny_sam):
    local = comfy_env.base / "models" / "sams" / tiny_sam
    with pytest.raises(ValueError, match="is a file, and hub_filename 'x.pth' names a file inside a Hub repo"):
        nodes["PHNetSAMLoader"].load("(from hub_repo_id)", str(local), "x.pth", "auto", "cpu")


def test_sam_asks_comfyui_for_room_before_it_moves_to_the_gpu(pack, comfy_env):
    """SAM ViT-H (2.5 GB) went onto a GPU that a diffusion model may fill without ComfyUI's free_memory first."""
    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")

    class Parked:  # a segmenter waiting on the CPU
        device = torch.device("cpu")
        model = torch.nn.Linear(100, 100)

        def to(self, device):
            self.device = device

    sam = loaders.PHNetSAM(Parked(), load_device=torch.device("meta"), offload_device=torch.device("cpu"))
    comfy_env.calls.clear()
    with sam.on_device() as segmenter:
        assert segmenter.device == torch.device("meta")
    weights = 100 * 100 * 4 + 100 * 4
    assert ("free_memory", 2 * weights, torch.device("meta")) in comfy_env.calls
    assert sam.segmenter.device == torch.device("cpu")


def test_a_sam_move_cut_short_by_a_full_gpu_is_undone(pack, comfy_env):
    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")

    class HalfMoved:
        device = torch.device("cpu")
        model = torch.nn.Linear(4, 4)
        moves = []

        def to(self, device):
            self.moves.append(device)
            if device.type == "meta":
                raise torch.OutOfMemoryError("CUDA out of memory") if hasattr(torch, "OutOfMemoryError") else \
                    RuntimeError("out of memory")
            self.device = device

    sam = loaders.PHNetSAM(HalfMoved(), load_device=torch.device("meta"), offload_device=torch.device("cpu"))
    with pytest.raises(RuntimeError, match="out of memory"):
        with sam.on_device():
            pass
    assert HalfMoved.moves == [torch.device("meta"), torch.device("cpu")]


def test_harmonize_asks_comfyui_for_room_on_the_gpu_and_gives_it_back(pack, nodes, phnet_model, comfy_env,
                                                                     monkeypatch):
    """PHNet's activations (up to ~2 GB for 8 pictures a call at 512 px) went onto a GPU that a diffusion model may
    fill, without ComfyUI's free_memory first: an out-of-memory error failed the prompt."""
    from phnet.fullres import working_shape

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    image = torch.rand(3, 48, 64, 3)
    mask = torch.zeros(3, 48, 64)
    mask[:, 10:40, 15:50] = 1
    height, width = working_shape(48, 64, phnet_model.config.image_size)  # one picture a call on the CPU
    assert loaders.phnet_memory(phnet_model, image, None) == height * width * loaders.NETWORK_BYTES_PER_PIXEL
    height, width = working_shape(48, 64, 2 * phnet_model.config.image_size)
    doubled = loaders.phnet_memory(phnet_model, image, 2 * phnet_model.config.image_size)
    assert doubled == height * width * loaders.NETWORK_BYTES_PER_PIXEL
    # as on a GPU, with 8 pictures a call: one picture asks for one picture's room, a batch for its call's
    with monkeypatch.context() as patch:
        pipeline = importlib.import_module(pack.__name__ + ".phnet.pipeline")
        patch.setattr(pipeline, "pictures_per_call", lambda harmonizer, pixels, size: 8)
        one = loaders.phnet_memory(phnet_model, image[:1], None)
        assert loaders.phnet_memory(phnet_model, image, None) == 3 * one
        # the full-resolution work on the model's device: each picture and its float mask copied there, and a tile
        patch.setattr(pipeline, "full_resolution_device", lambda harmonizer, picture: torch.device("meta"))
        picture = 48 * 64 * image.shape[-1] * image.element_size()
        copies = loaders.phnet_memory(phnet_model, image, None) - 3 * one
        assert copies == 3 * (picture + 48 * 64 * 4) + picture
    comfy_env.calls.clear()
    nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask)
    assert not [c for c in comfy_env.calls if c[0] in ("free_memory", "soft_empty_cache")]  # a CPU run asks nothing
    monkeypatch.setattr(phnet_model, "device", torch.device("meta"))  # as if on a GPU: the network is not run
    monkeypatch.setattr(phnet_model, "harmonize", lambda image, **kw: (_ for _ in ()).throw(RuntimeError("OOM")))
    with pytest.raises(RuntimeError, match="OOM"):
        nodes["PHNetHarmonize"].harmonize(phnet_model, image, mask)
    asked = [c for c in comfy_env.calls if c[0] == "free_memory"]
    assert asked == [("free_memory", loaders.phnet_memory(phnet_model, image, None), torch.device("meta"))]
    assert comfy_env.calls[-1] == ("soft_empty_cache",)


def test_a_half_copy_left_by_a_killed_comfyui_is_replaced_by_the_next_download(pack, comfy_env, monkeypatch,
                                                                             tmp_path):
    """A kill during the copy leaves the part; the next try writes over it and leaves no half file."""
    import huggingface_hub

    loaders = importlib.import_module(pack.__name__ + ".nodes.loaders")
    sams = comfy_env.base / "models" / "sams"
    sams.mkdir(parents=True, exist_ok=True)
    (sams / "someone--sam--sam_vit_x.pth.part").write_bytes(b"half")
    cached = tmp_path / "blob"
    cached.write_bytes(b"weights")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: str(cached))
    try:
        loaders._download_sam("someone/sam", "sam_vit_x.pth")
        assert [p.name for p in sams.glob("someone--sam--sam_vit_x.pth*")] == ["someone--sam--sam_vit_x.pth"]
        assert (sams / "someone--sam--sam_vit_x.pth").read_bytes() == b"weights"
    finally:
        for placed in sams.glob("someone--sam--sam_vit_x.pth*"):
            placed.unlink()


def test_an_inverted_or_faint_guide_mask_and_a_half_precision_sam_are_named(nodes, sam_model, portrait):
    """An inverted guide (Load Image's MASK of a cut-out) prompted SAM with the whole picture; a detector's faint
    "nobody here" got a box around its noise; a half-precision SAM from another pack failed in torch's words."""
    from tests.helpers.tiny_sam import build_tiny_sam

    img, subject = portrait(b=2)
    with pytest.raises(ValueError, match="looks inverted .* InvertMask node in front of guide_mask"):
        nodes["PHNetSAMSegment"].segment(sam_model, img[:1], guide_mask=1 - subject[:1])
    guides = torch.stack([subject[0], 0.001 * torch.rand_like(subject[0])])
    (masks,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=guides)
    assert masks[0].sum() > 0 and masks[1].sum() == 0  # the faint one beside a subject is "no subject here"
    (alone,) = nodes["PHNetSAMSegment"].segment(sam_model, img[:1], guide_mask=0.01 * subject[:1])
    assert alone.sum() > 0  # a faint guide on its own is still a guide
    close_up = torch.ones_like(subject[:1])
    close_up[:, :12, :16] = close_up[:, :12, -16:] = 0  # a face filling the frame: background in the upper corners
    (face,) = nodes["PHNetSAMSegment"].segment(sam_model, img[:1], guide_mask=close_up)
    assert face.shape == (1, *img.shape[1:3])
    with pytest.raises(ValueError, match="holds bfloat16 weights; .* load it in fp32"):
        nodes["PHNetSAMSegment"].segment(build_tiny_sam().to(torch.bfloat16), img[:1], box="10,5,50,40")


def test_a_guide_mask_that_looks_inverted_is_used_as_given_when_asked(nodes, sam_model, portrait):
    """Two subjects at the picture's sides: the guide looks inverted, is refused with the way round it, and with
    mask_as_given its box (spanning both) prompts SAM."""
    img, _ = portrait(b=1)
    sides = torch.zeros(img.shape[:3])
    sides[:, :, :20] = sides[:, :, -20:] = 1
    with pytest.raises(ValueError, match=r"InvertMask node in front of guide_mask .*, or, if it is right \(subjects "
                                         r"at the picture's sides with the scene between them\), turn on "
                                         r"mask_as_given"):
        nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=sides)
    (masks,) = nodes["PHNetSAMSegment"].segment(sam_model, img, guide_mask=sides, mask_as_given=True)
    assert masks.shape == sides.shape


def test_sam_segment_names_its_own_inputs_and_says_why_a_mask_came_out_empty(nodes, sam_model, portrait, caplog,
                                                                            monkeypatch):
    """An empty result (SAM found nothing, or grow shrank it away) was left for Harmonize to blame on the box; one
    picture's guides were called images; guide and point errors spoke of 'the mask' and of no input; a box with N
    guides gave N copies of one mask; a strip SAM cannot encode was refused after SAM moved to the GPU."""
    import logging

    node = nodes["PHNetSAMSegment"]
    img, subject = portrait(b=1)
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):
        (shrunk,) = node.segment(sam_model, img, box="20,10,44,38", grow=-40)
    assert shrunk.sum() == 0 and "grow -40 shrank image 0's mask to nothing" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):  # one picture's two guides: masks, not images
        node.segment(sam_model, img, guide_mask=torch.stack([subject[0], subject[0]]), grow=-40)
    assert "shrank mask 1's mask to nothing" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="comfyui-phnet"):  # one picture's one guide: an image
        node.segment(sam_model, img, guide_mask=subject[:1], grow=-40)
    assert "shrank image 0's mask to nothing" in caplog.text
    guides = torch.stack([subject[0], subject[0], 1 - subject[0]])
    with pytest.raises(ValueError, match=r"'guide_mask' \(mask 2 of the batch\) covers"):
        node.segment(sam_model, img, guide_mask=guides)
    with pytest.raises(ValueError, match="PHNet SAM Segment: .*guide_mask"):
        node.segment(sam_model, img.expand(2, -1, -1, -1), guide_mask=subject.expand(3, -1, -1))
    with pytest.raises(ValueError, match=r"PHNet SAM Segment: 'negative_points': point \(70.0, 5.0\) lies outside"):
        node.segment(sam_model, img, box="1,1,30,30", negative_points="70,5")
    (boxed,) = node.segment(sam_model, img, box="20,10,44,38", guide_mask=guides[:2])
    assert boxed.shape[0] == 1  # the box widget wins: no copies for the guides it ignores
    moved = []
    monkeypatch.setattr(type(sam_model), "on_device", lambda self: moved.append(1) or (_ for _ in ()).throw(
        AssertionError("moved")), raising=False)
    with pytest.raises(ValueError, match="PHNet SAM Segment: the image is 200x1 pixels"):
        node.segment(sam_model, torch.rand(1, 1, 200, 3), box="0,0,200,1")
    assert not moved
