"""phnet.segmentation: loading, size inference, prompting, caching, refinement, errors.

Everything runs on the tiny random SAM from tests/helpers/tiny_sam.py (64 px, dim 32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.segmentation import (
    SAM_PRESETS,
    SamSegmenter,
    build_sam,
    infer_sam_architecture,
    mask_bbox,
    refine_mask,
)
from tests.helpers.tiny_sam import TINY_SAM, build_tiny_sam, save_tiny_sam


class NotATensor:
    """Pickled into a .pth to check that arbitrary objects are refused."""


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.safetensors")


@pytest.fixture(scope="module")
def seg(tiny_path):
    return SamSegmenter.from_pretrained(tiny_path, device="cpu")


@pytest.fixture
def image():
    rng = np.random.RandomState(0)
    return (rng.rand(48, 80, 3) * 255).astype(np.uint8)


def _same_weights(seg: SamSegmenter) -> bool:
    ref = build_tiny_sam().state_dict()
    got = seg.model.state_dict()
    return ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


# ---- loading -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,name", [("safetensors", "tiny.safetensors"), ("pth", "tiny.pth")])
def test_load_file_formats(tmp_path, fmt, name):
    path = save_tiny_sam(tmp_path / name, fmt=fmt)
    seg = SamSegmenter.from_pretrained(path, device="cpu")
    assert _same_weights(seg)
    assert seg.model_type == "custom"
    assert str(seg.device) == "cpu"


def test_pth_is_loaded_weights_only(tmp_path, monkeypatch):
    path = save_tiny_sam(tmp_path / "tiny.pth")
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    SamSegmenter.from_pretrained(path, device="cpu")
    assert seen.get("weights_only") is True


def test_load_wrapped_state_dict(tmp_path):
    state = build_tiny_sam().state_dict()
    wrapped = {"module." + k: v for k, v in state.items()}
    wrapped["module.pixel_mean"] = torch.zeros(3, 1, 1)  # stored by some conversions; ignored
    torch.save({"model": wrapped}, tmp_path / "wrapped.pth")
    assert _same_weights(SamSegmenter.from_pretrained(tmp_path / "wrapped.pth", device="cpu"))


def test_load_from_folder(tmp_path):
    save_tiny_sam(tmp_path / "sam_tiny.safetensors")
    assert _same_weights(SamSegmenter.from_pretrained(tmp_path, device="cpu"))
    # a .pth twin of the same weights: the safetensors file is preferred
    save_tiny_sam(tmp_path / "sam_tiny.pth")
    assert _same_weights(SamSegmenter.from_pretrained(str(tmp_path), device="cpu"))


def test_folder_with_several_checkpoints_needs_filename(tmp_path):
    save_tiny_sam(tmp_path / "a.safetensors")
    save_tiny_sam(tmp_path / "b.safetensors", seed=1)
    with pytest.raises(ValueError, match="Several SAM checkpoints.*filename="):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")
    seg = SamSegmenter.from_pretrained(tmp_path, filename="a.safetensors", device="cpu")
    assert _same_weights(seg)


def _fake_hub_cache(cache_dir, repo_id, files, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay out the huggingface_hub cache by hand: models--o--n/{refs/main, snapshots/<rev>/...}."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    for name in files:
        save_tiny_sam(snap / name)
    return revision


def test_load_from_hub_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rev = _fake_hub_cache(tmp_path, "someone/tiny-sam", ["sam_tiny.safetensors"])
    seg = SamSegmenter.from_pretrained(
        "someone/tiny-sam", filename="sam_tiny.safetensors", cache_dir=tmp_path, device="cpu"
    )
    assert _same_weights(seg)
    # without filename the single checkpoint of the cached snapshot is found
    assert _same_weights(SamSegmenter.from_pretrained("someone/tiny-sam", cache_dir=tmp_path, device="cpu"))
    # an explicit revision works too
    seg = SamSegmenter.from_pretrained(
        "someone/tiny-sam", filename="sam_tiny.safetensors", revision=rev, cache_dir=tmp_path, device="cpu"
    )
    assert _same_weights(seg)


def test_hub_not_cached_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE.*hf download"):
        SamSegmenter.from_pretrained("someone/missing", filename="sam.safetensors", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        SamSegmenter.from_pretrained("someone/missing", cache_dir=tmp_path, local_files_only=True)


# ---- size inference ------------------------------------------------------------------


def test_infer_tiny_architecture():
    arch = infer_sam_architecture(build_tiny_sam().state_dict())
    assert arch.img_size == TINY_SAM["img_size"]
    assert arch.patch_size == TINY_SAM["patch_size"]
    assert arch.embed_dim == TINY_SAM["embed_dim"]
    assert arch.depth == TINY_SAM["depth"]
    assert arch.num_heads == TINY_SAM["num_heads"]
    assert arch.window_size == TINY_SAM["window_size"]
    assert arch.global_attn_indexes == TINY_SAM["global_attn_indexes"]
    assert arch.prompt_embed_dim == TINY_SAM["prompt_embed_dim"]
    assert arch.mask_in_chans == TINY_SAM["mask_in_chans"]
    assert arch.decoder_mlp_dim == TINY_SAM["decoder_mlp_dim"]
    assert arch.iou_head_hidden_dim == TINY_SAM["iou_head_hidden_dim"]
    assert arch.name == "custom"


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_infer_real_sizes(name):
    with torch.device("meta"):  # shapes only, no memory
        sam = build_sam(name)
    arch = infer_sam_architecture(sam.state_dict())
    assert arch == SAM_PRESETS[name]
    assert arch.name == name
    assert arch.img_size == 1024 and arch.window_size == 14


def test_model_type_mismatch(tiny_path):
    with pytest.raises(ValueError, match="holds a custom SAM.*not the requested vit_b"):
        SamSegmenter.from_pretrained(tiny_path, model_type="vit_b")
    with pytest.raises(ValueError, match="Unknown SAM model_type"):
        SamSegmenter.from_pretrained(tiny_path, model_type="vit_x")


# ---- prompting -----------------------------------------------------------------------


def test_predict_box(seg, image):
    seg.set_image(image)
    m = seg.predict(box=(10, 5, 40, 30))
    assert m.shape == (48, 80) and m.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0}
    soft = seg.predict(box=(10, 5, 40, 30), soft=True)
    assert soft.dtype == np.float32 and 0.0 <= soft.min() and soft.max() <= 1.0
    # the binary mask is the soft one thresholded at logit 0 (= probability 0.5)
    np.testing.assert_array_equal(m, (soft > 0.5).astype(np.float32))
    # a higher logit threshold keeps fewer pixels
    assert seg.predict(box=(10, 5, 40, 30), threshold=0.5).sum() <= m.sum()


def test_box_is_clipped(seg, image):
    seg.set_image(image)
    inside = seg.predict(box=(0, 0, 40, 30), soft=True)
    np.testing.assert_array_equal(seg.predict(box=(-20, -7, 40, 30), soft=True), inside)
    # corners in any order
    np.testing.assert_array_equal(seg.predict(box=(40, 30, -20, -7), soft=True), inside)


def test_predict_points_and_labels(seg, image):
    seg.set_image(image)
    pos = seg.predict(points=[(20, 20)], soft=True)
    assert pos.shape == (48, 80)
    both = seg.predict(points=[(20, 20), (60, 40)], point_labels=[1, 0], soft=True)
    assert not np.array_equal(pos, both)
    combined = seg.predict(box=(10, 5, 40, 30), points=[(20, 20)], soft=True)
    assert combined.shape == (48, 80)


def test_predict_mask_prompt_uses_its_box(seg, image):
    seg.set_image(image)
    alpha = np.zeros((48, 80), np.float32)
    alpha[6:30, 12:41] = 1.0
    from_mask = seg.predict(mask_prompt=alpha, soft=True)
    np.testing.assert_array_equal(from_mask, seg.predict(box=(12, 6, 41, 30), soft=True))
    # PIL and torch masks work the same
    np.testing.assert_array_equal(seg.predict(mask_prompt=Image.fromarray((alpha * 255).astype(np.uint8)), soft=True), from_mask)
    np.testing.assert_array_equal(seg.predict(mask_prompt=torch.from_numpy(alpha)[None], soft=True), from_mask)


def test_multimask_picks_best_score(seg, image):
    seg.set_image(image)
    logits, scores, _ = seg._predictor.predict(
        point_coords=np.array([[20.0, 20.0]], np.float32),
        point_labels=np.array([1]),
        multimask_output=True,
        return_logits=True,
    )
    best = torch.sigmoid(torch.from_numpy(logits[int(np.argmax(scores))])).numpy()
    np.testing.assert_allclose(seg.predict(points=[(20, 20)], multimask=True, soft=True), best, rtol=0, atol=1e-6)


def test_image_kinds_agree(seg, image):
    seg.set_image(image)
    ref = seg.predict(box=(10, 5, 40, 30), soft=True)
    for variant in (
        Image.fromarray(image),
        image.astype(np.float32) / 255.0,
        torch.from_numpy(image.astype(np.float32) / 255.0),
        torch.from_numpy(image)[None],  # a 1 x H x W x C batch of one
        np.concatenate([image, np.full((48, 80, 1), 255, np.uint8)], axis=-1),  # RGBA
    ):
        seg.set_image(variant)
        np.testing.assert_array_equal(seg.predict(box=(10, 5, 40, 30), soft=True), ref)
    seg.set_image(image[..., 0])  # greyscale works
    assert seg.predict(box=(10, 5, 40, 30)).shape == (48, 80)


def test_embedding_is_cached(tiny_path, image):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    calls = []
    seg.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    seg.set_image(image)
    seg.predict(box=(10, 5, 40, 30))
    seg.predict(points=[(20, 20)])
    seg.predict(box=(0, 0, 20, 20), multimask=True, soft=True)
    assert len(calls) == 1
    seg.set_image(image.copy())  # same pixels: nothing to recompute
    seg.predict(points=[(5, 5)])
    assert len(calls) == 1
    seg.set_image(255 - image)
    seg.predict(points=[(5, 5)])
    assert len(calls) == 2


# ---- refinement ----------------------------------------------------------------------


def _square(size=40, lo=15, hi=25):
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1.0
    return m


def test_refine_identity():
    m = _square()
    out = refine_mask(m)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, m)


def test_refine_grow_and_shrink():
    m = _square()
    assert mask_bbox(refine_mask(m, grow=3)) == (12, 12, 28, 28)
    assert mask_bbox(refine_mask(m, grow=-2)) == (17, 17, 23, 23)
    assert refine_mask(m, grow=3).sum() > m.sum() > refine_mask(m, grow=-2).sum()
    # a subject touching the border is not eaten from the border side
    edge = np.zeros((20, 20), np.float32)
    edge[:, :10] = 1
    assert refine_mask(edge, grow=-2)[:, :8].min() == 1.0


def test_refine_feather():
    m = _square(lo=10, hi=30)
    soft = refine_mask(m, feather=2.0)
    assert soft.dtype == np.float32 and soft.min() >= 0.0 and soft.max() <= 1.0
    assert 0.0 < soft[10, 20] < 1.0 and 0.0 < soft[9, 20] < 1.0  # edges are soft on both sides
    assert soft[20, 20] == pytest.approx(1.0, abs=1e-3)
    assert soft.sum() == pytest.approx(m.sum(), rel=1e-3)  # blur moves mass, keeps it
    with pytest.raises(ValueError, match="feather must be >= 0"):
        refine_mask(m, feather=-1)


def test_refine_accepts_other_kinds():
    m = _square()
    np.testing.assert_array_equal(refine_mask(torch.from_numpy(m), grow=1), refine_mask(m, grow=1))
    np.testing.assert_array_equal(refine_mask(Image.fromarray((m * 255).astype(np.uint8)), grow=1), refine_mask(m, grow=1))


def test_mask_bbox():
    assert mask_bbox(_square()) == (15, 15, 25, 25)
    assert mask_bbox(np.zeros((5, 5))) is None
    assert mask_bbox(np.full((5, 5), 0.4)) is None
    assert mask_bbox(np.full((5, 5), 0.4), threshold=0.3) == (0, 0, 5, 5)


# ---- bad inputs ----------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        SamSegmenter.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        SamSegmenter.from_pretrained("models/sams/sam_vit_b_01ec64.pth")
    with pytest.raises(FileNotFoundError, match="No SAM checkpoint"):
        SamSegmenter.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found in folder"):
        SamSegmenter.from_pretrained(tmp_path, filename="x.pth")


def test_corrupt_files(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="corrupt: download it again"):
        SamSegmenter.from_pretrained(tmp_path / "bad.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"not a zip or pickle")
    with pytest.raises(ValueError, match="corrupt: download it again"):
        SamSegmenter.from_pretrained(tmp_path / "bad.pth")
    full = save_tiny_sam(tmp_path / "full.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        SamSegmenter.from_pretrained(tmp_path / "truncated.pth")


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(1), "extra": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="pickled Python objects.*safetensors"):
        SamSegmenter.from_pretrained(tmp_path / "evil.pth")


def test_not_a_sam_state_dict(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="Not a Segment Anything"):
        SamSegmenter.from_pretrained(tmp_path / "other.safetensors")
    save_file({"vision_encoder.patch_embed.weight": torch.zeros(2, 2)}, str(tmp_path / "hf.safetensors"))
    with pytest.raises(ValueError, match="transformers `SamModel`"):
        SamSegmenter.from_pretrained(tmp_path / "hf.safetensors")
    state = {k: v.contiguous() for k, v in build_tiny_sam().state_dict().items()}
    state["mask_decoder.hf_token.weight"] = torch.zeros(1, 32)  # SAM-HQ style extra
    save_file(state, str(tmp_path / "hq.safetensors"))
    with pytest.raises(ValueError, match="unexpected mask_decoder.hf_token.weight.*not supported"):
        SamSegmenter.from_pretrained(tmp_path / "hq.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not contain a state_dict"):
        SamSegmenter.from_pretrained(tmp_path / "list.pth")
    (tmp_path / "weights.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="Unsupported SAM checkpoint type"):
        SamSegmenter.from_pretrained(tmp_path / "weights.onnx")


def test_no_image_set(tiny_path):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    with pytest.raises(RuntimeError, match="call SamSegmenter.set_image"):
        seg.predict(box=(0, 0, 10, 10))


def test_bad_prompts(seg, image):
    seg.set_image(image)
    with pytest.raises(ValueError, match="Empty prompt"):
        seg.predict()
    with pytest.raises(ValueError, match="Empty prompt"):
        seg.predict(points=[])
    with pytest.raises(ValueError, match="no area inside the 80x48 image"):
        seg.predict(box=(100, 60, 200, 90))
    with pytest.raises(ValueError, match="no area"):
        seg.predict(box=(10, 10, 10, 30))
    with pytest.raises(ValueError, match="four finite numbers"):
        seg.predict(box=(1, 2, 3))
    with pytest.raises(ValueError, match="outside the 80x48 image"):
        seg.predict(points=[(10, 10), (90, 10)])
    with pytest.raises(ValueError, match="one label per point"):
        seg.predict(points=[(10, 10)], point_labels=[1, 0])
    with pytest.raises(ValueError, match="must be 1 .* or 0"):
        seg.predict(points=[(10, 10)], point_labels=[2])
    with pytest.raises(ValueError, match="either box or mask_prompt"):
        seg.predict(box=(0, 0, 5, 5), mask_prompt=np.ones((48, 80)))
    with pytest.raises(ValueError, match="mask_prompt is empty"):
        seg.predict(mask_prompt=np.zeros((48, 80)))
    with pytest.raises(ValueError, match="resize the mask to the image"):
        seg.predict(mask_prompt=np.ones((10, 10)))


def test_bad_images(seg):
    with pytest.raises(ValueError, match="H x W x C"):
        seg.set_image(np.zeros((3, 32, 32), np.uint8))  # channel-first
    with pytest.raises(ValueError, match="Unsupported image dtype"):
        seg.set_image(np.zeros((8, 8, 3), np.int32))
