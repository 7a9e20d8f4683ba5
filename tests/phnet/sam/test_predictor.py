"""phnet.sam.predictor and prompts: prompting, caching, checks before encoding, Cancel between blocks."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.sam import SamSegmenter, make_prompt
from tests.helpers.tiny_sam import TINY_SAM


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
    pil = Image.fromarray((alpha * 255).astype(np.uint8))
    np.testing.assert_array_equal(seg.predict(mask_prompt=pil, soft=True), from_mask)
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


@pytest.mark.parametrize("multimask", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_only_the_best_candidate_is_enlarged_to_the_same_mask(seg, image, multimask, soft):
    """SamPredictor.predict enlarges all three candidates to the picture's size before the best is picked: 3 x
    96 MB float32 at 24 MP, copied to the host too. The mask is SamPredictor.predict's best one, enlarged alone."""
    seg.set_image(image)
    prompts = [dict(box=(10, 5, 40, 30)), dict(points=[(20, 20), (60, 40)], point_labels=[1, 0]),
               dict(box=(10, 5, 40, 30), points=[(20, 20)])]
    enlarged, postprocess = [], seg.model.postprocess_masks

    def spy(masks, *args, **kwargs):
        enlarged.append(masks.shape[1])
        return postprocess(masks, *args, **kwargs)

    seg.model.postprocess_masks = spy
    for kwargs in prompts:
        enlarged.clear()
        got = seg.predict(**kwargs, multimask=multimask, soft=soft, threshold=0.25)
        assert enlarged == [1]
        prompt = make_prompt((48, 80), kwargs.get("box"), kwargs.get("points"), kwargs.get("point_labels"), None)
        logits, scores, _ = seg._predictor.predict(point_coords=prompt.points, point_labels=prompt.labels,
                                                   box=prompt.box, multimask_output=multimask, return_logits=True)
        logit = torch.from_numpy(logits[int(np.argmax(scores)) if multimask else 0])
        want = torch.sigmoid(logit).numpy() if soft else (logit > 0.25).numpy().astype(np.float32)
        assert got.dtype == np.float32 and np.array_equal(got, want)


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
    assert seg.image_embedding.shape == (1, TINY_SAM["prompt_embed_dim"], 4, 4)
    seg.set_image((255 - image).reshape(80, 48, 3))  # the same bytes in another shape: another picture
    assert len(calls) == 3 and seg.image_size == (80, 48)


def test_segment_is_set_image_plus_predict(seg, image):
    seg.set_image(image)
    ref = seg.predict(box=(10, 5, 40, 30), points=[(20, 20)], soft=True)
    seg.reset_image()
    out = seg.segment(image, box=(10, 5, 40, 30), points=[(20, 20)], soft=True)
    np.testing.assert_array_equal(out, ref)


def test_prompt_is_checked_before_the_image_is_encoded(tiny_path, image):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    calls = []
    seg.model.image_encoder.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="no area inside the 80x48 image"):
        seg.segment(image, box=(100, 60, 200, 90))
    with pytest.raises(ValueError, match="outside the 80x48 image"):
        seg.segment(image, points=[(90, 10)])
    with pytest.raises(ValueError, match="empty prompt"):
        seg.segment(image)
    assert calls == [] and not seg.is_image_set


class Cancelled(Exception):
    """Stands in for a host's 'processing interrupted' exception."""


def test_interrupt_is_called_inside_every_encoder_block_and_every_global_attention_head(tiny_path, image):
    from phnet.sam.predictor import interrupt_points

    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    blocks_run = []
    for block in seg.model.image_encoder.blocks:
        block.register_forward_hook(lambda *a: blocks_run.append(1))
    checks = []
    seg.set_image(image, interrupt=lambda: checks.append(len(blocks_run)))
    # before each block's attention and MLP, and before each head of a global-attention block
    heads = TINY_SAM["num_heads"]
    expected = [k for k in range(TINY_SAM["depth"])
                for _ in range(2 + (heads if k in TINY_SAM["global_attn_indexes"] else 0))]
    assert checks == expected and len(checks) == interrupt_points(seg.model)

    def cancel_after_first_block():
        if blocks_run:
            raise Cancelled

    blocks_run.clear()
    with pytest.raises(Cancelled):
        seg.segment(255 - image, box=(10, 5, 40, 30), interrupt=cancel_after_first_block)
    assert len(blocks_run) == 1  # the second block never ran
    assert not seg.is_image_set and seg.image_size is None
    # the hooks are gone: a later encode without interrupt runs through
    seg.set_image(255 - image)
    assert seg.is_image_set


def test_make_prompt_clips_and_sorts():
    p = make_prompt((48, 80), box=(90, 60, -5, 10), points=[(1, 2)], point_labels=[0])
    np.testing.assert_array_equal(p.box, np.array([0, 10, 80, 48], np.float32))
    assert p.points.dtype == np.float32 and p.labels.tolist() == [0]


def test_no_image_set(tiny_path):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    with pytest.raises(RuntimeError, match="call SamSegmenter.set_image"):
        seg.predict(box=(0, 0, 10, 10))


def test_bad_prompts(seg, image):
    seg.set_image(image)
    with pytest.raises(ValueError, match="empty prompt"):
        seg.predict()
    with pytest.raises(ValueError, match="empty prompt"):
        seg.predict(points=[])
    with pytest.raises(ValueError, match="no area inside the 80x48 image"):
        seg.predict(box=(100, 60, 200, 90))
    with pytest.raises(ValueError, match="no area"):
        seg.predict(box=(10, 10, 10, 30))
    with pytest.raises(ValueError, match="four finite numbers"):
        seg.predict(box=(1, 2, 3))
    with pytest.raises(ValueError, match="four finite numbers"):  # a string and dicts were float()'s errors
        seg.predict(box="1,2,30,30")
    with pytest.raises(ValueError, match="a list of \\(x, y\\) pairs"):
        seg.predict(points=[{"x": 5, "y": 6}])
    with pytest.raises(ValueError, match="point_labels given without points"):  # len() of an int
        seg.predict(point_labels=1)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        seg.predict(box=(1, 2, 30, 30), threshold="0.5")
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
    with pytest.raises(ValueError, match="resize the mask to the same size as the image"):
        seg.predict(mask_prompt=np.ones((10, 10)))


def test_bad_images(seg):
    # Images are read by phnet.imageio's rules (one boundary for every host), so its messages apply.
    with pytest.raises(ValueError, match="channels"):
        seg.set_image(np.zeros((3, 32, 32), np.uint8))  # channel-first
    with pytest.raises(ValueError, match="(?i)unsupported image dtype"):
        seg.set_image(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        seg.set_image(np.full((8, 8, 3), 2.0, np.float32))


def test_attention_head_by_head_is_the_same_encode(tiny_path, image):
    """The interruptible encode computes the global attention one head at a time: the same embedding, up to
    the float rounding of one GEMM per head instead of a batched one."""
    from phnet.sam.interruptible import interruptible

    encoder = SamSegmenter.from_pretrained(tiny_path, device="cpu").model.image_encoder
    x = torch.randn(1, 3, TINY_SAM["img_size"], TINY_SAM["img_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = encoder(x)
        with interruptible(encoder, lambda: None):
            by_head = encoder(x)
    torch.testing.assert_close(by_head, batched, rtol=0, atol=1e-5)  # float rounding only
    assert "forward" not in vars(encoder.blocks[1].attn)  # the class's own forward is back


def test_a_cpu_encode_computes_global_attention_head_by_head_even_without_an_interrupt(tiny_path, image,
                                                                                     monkeypatch):
    import phnet.sam.interruptible as interruptible

    calls = []
    by_head = interruptible.attention_by_head
    monkeypatch.setattr(interruptible, "attention_by_head", lambda *a: calls.append(1) or by_head(*a))
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    seg.set_image(image)
    assert calls == [1] * len(TINY_SAM["global_attn_indexes"])


def test_a_strip_too_narrow_for_sams_input_is_named(seg):
    """At SAM's input size (64 px here, 1024 for the real ones) a 1x129 strip's short side rounds to 0: PIL
    failed with 'height and width must be > 0'."""
    with pytest.raises(ValueError, match=r"1x129 .*short side would be 0; crop it to at most 128:1"):
        seg.set_image(np.zeros((129, 1, 3), np.uint8))
    seg.set_image(np.zeros((128, 1, 3), np.uint8))  # 0.5 rounds up to one pixel


def test_a_threshold_that_is_not_a_number_is_refused(seg, image):
    seg.set_image(image)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        seg.predict(box=(10, 10, 40, 30), threshold=float("nan"))  # gave an empty mask without a word
    with pytest.raises(ValueError, match="threshold must be a finite number"):  # True is no logit
        seg.predict(box=(10, 10, 40, 30), threshold=True)


def test_one_segmenter_serves_several_threads(tiny_path, image):
    """Two threads segmenting their own pictures: an encode patches the model's attention and caches its
    embedding, and without a lock 140 of 300 calls failed or came back with the other thread's mask."""
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    pictures = [image, image[::-1].copy()]
    expected = [seg.segment(p, box=(10, 5, 60, 40), soft=True) for p in pictures]
    assert _segment_in_threads([(seg, [(pictures[k], expected[k])]) for k in range(2)], rounds=8) == []


def _segment_in_threads(jobs, rounds: int) -> list[str]:
    """Each job (segmenter, [(picture, its expected mask), ...]) in a thread of its own, ``rounds`` calls
    cycling through its pictures; the failures of any kind."""
    import threading

    failures = []

    def work(seg, pairs) -> None:
        for i in range(rounds):
            picture, expected = pairs[i % len(pairs)]
            try:
                if not np.array_equal(seg.segment(picture, box=(10, 5, 60, 40), soft=True), expected):
                    failures.append("another picture's mask")
            except Exception as e:  # noqa: BLE001 - a failure of any kind is what these tests look for
                failures.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_labels_that_are_not_0_or_1_are_refused_before_rounding(seg, image):
    """0.9 was rounded to 0: a point meant on the subject became a background point."""
    seg.set_image(image)
    for labels in ([0.9], [1.5], [-0.5], ["x"]):
        with pytest.raises(ValueError, match="point_labels must be 1 .* or 0"):
            seg.predict(points=[(10, 10)], point_labels=labels)


def test_background_points_alone_are_refused(seg, image):
    """Points all labelled 0 with no box gave SAM's guess of a mask, as if the subject had been shown."""
    seg.set_image(image)
    with pytest.raises(ValueError, match=r"background points alone \(label 0\) say where the subject is not"):
        seg.predict(points=[(10, 10), (5, 5)], point_labels=[0, 0])
    seg.predict(points=[(10, 10), (5, 5)], point_labels=[1, 0])
    seg.predict(box=(2, 2, 20, 20), points=[(10, 10)], point_labels=[0])


def test_an_interrupt_check_that_returns_a_value_is_fine(tiny_path, image):
    """A forward pre-hook that returns something replaces the block's input: Event.is_set crashed the encode."""
    import threading

    expected = SamSegmenter.from_pretrained(tiny_path, device="cpu").segment(image, box=(10, 5, 60, 40), soft=True)
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")  # no embedding cached: it encodes
    stop = threading.Event()
    assert np.array_equal(seg.segment(image, box=(10, 5, 60, 40), soft=True, interrupt=stop.is_set), expected)


def test_two_segmenters_sharing_one_model_do_not_unpatch_each_other(tiny_path, image):
    """A host wraps one model in a new segmenter per run: each had its own lock while both patched the
    model's attention, and 17 of 40 calls failed."""
    first = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    segmenters = [first, SamSegmenter(first.model, device="cpu")]
    pictures = [image, image[::-1].copy()]  # alternated, so that every call encodes
    expected = [first.segment(p, box=(10, 5, 60, 40), soft=True) for p in pictures]
    assert _segment_in_threads([(seg, list(zip(pictures, expected))) for seg in segmenters], rounds=16) == []


def test_to_the_same_device_keeps_the_image_and_a_device_torch_lacks_changes_nothing(tiny_path, image):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    seg.set_image(image)
    assert seg.to("cpu").is_image_set
    with pytest.raises(ValueError, match=r"SamSegmenter.to\('nonsense'\): not a device name torch knows"):
        seg.to("nonsense")
    assert seg.device.type == "cpu" and seg.is_image_set


def test_a_move_cut_short_goes_back_whole(seg, image, monkeypatch):
    """A full GPU stopped Module.to halfway: the segmenter still said "cpu", so moving it back did nothing, and
    the weights left on the GPU broke every later call ("Input type (float) and bias type (double)")."""
    import torch

    before = seg.segment(image, box=(10, 5, 50, 40))
    real_to = type(seg.model).to
    calls = []

    def half_way(module, target, *args, **kwargs):
        calls.append(str(target))
        if str(target) != "cpu":
            module.image_encoder.double()  # what had moved before the allocation failed
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_to(module.float(), target, *args, **kwargs)

    monkeypatch.setattr(type(seg.model), "to", half_way)
    monkeypatch.setattr("phnet.devices.device_problem", lambda device: None)
    with pytest.raises(RuntimeError, match="out of memory"):
        seg.to("cuda")
    assert calls == ["cuda", "cpu"] and seg.device == torch.device("cpu")
    assert (seg.segment(image, box=(10, 5, 50, 40)) == before).all()


def test_a_device_this_machine_lacks_is_named_when_the_segmenter_is_made(monkeypatch):
    import phnet.devices
    from tests.helpers.tiny_sam import build_tiny_sam

    monkeypatch.setattr(phnet.devices, "device_problem", lambda device: "no CUDA GPU is visible to torch here; use cpu")
    with pytest.raises(ValueError, match=r"SamSegmenter\(device='cuda'\): no CUDA GPU is visible"):
        SamSegmenter(build_tiny_sam(), device="cuda")


def test_when_the_move_back_fails_too_the_first_error_is_raised(seg, monkeypatch, caplog):
    def out_of_memory(module, target, *args, **kwargs):
        raise RuntimeError(f"CUDA out of memory moving to {target}")

    monkeypatch.setattr(type(seg.model), "to", out_of_memory)
    monkeypatch.setattr("phnet.devices.device_problem", lambda device: None)
    with pytest.raises(RuntimeError, match="moving to cuda"):
        seg.to("cuda")
    assert "moving the SAM weights back to cpu failed too" in caplog.text and not seg.is_image_set


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_sam_is_refused_by_name_when_the_segmenter_is_made(dtype):
    """The node refused it; the library met it mid-encode with torch's dtype error."""
    from tests.helpers.tiny_sam import build_tiny_sam

    with pytest.raises(ValueError, match="holds (float16|bfloat16) weights; SAM runs in fp32 here"):
        SamSegmenter(build_tiny_sam().to(dtype), device="cpu")


def test_without_segment_anything_the_segmenter_and_its_encode_name_the_pip_command_that_installs_it(seg,
                                                                                                  monkeypatch):
    from phnet.sam.interruptible import attention_by_head
    from phnet.sam.predictor import check_encodable

    attn = seg.model.image_encoder.blocks[TINY_SAM["global_attn_indexes"][0]].attn
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # import raises as where it is not installed
    for call in (lambda: SamSegmenter(seg.model, device="cpu"), lambda: check_encodable(seg.model, 48, 80),
                 lambda: attention_by_head(attn, torch.zeros(1, 4, 4, TINY_SAM["embed_dim"]), lambda: None)):
        with pytest.raises(ImportError, match=r"^PHNet's Segment Anything needs the segment-anything package: .* -m "
                                              r"pip install \"segment-anything>=1\.0\""):
            call()


def test_a_segmenter_can_be_pickled_and_deep_copied(tiny_path, image):
    """Both failed on its thread lock ("cannot pickle '_thread.RLock' object"): no copy for another process."""
    import copy
    import pickle

    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    expected = seg.segment(image, box=(10, 5, 50, 40), soft=True)
    for twin in (pickle.loads(pickle.dumps(seg)), copy.deepcopy(seg)):
        assert twin._lock is not seg._lock and twin.model is not seg.model
        assert twin.is_image_set and twin.image_size == seg.image_size  # the cached embedding travels
        assert np.array_equal(twin.predict(box=(10, 5, 50, 40), soft=True), expected)
        assert np.array_equal(twin.segment(image[::-1].copy(), box=(10, 5, 50, 40)),
                              seg.segment(image[::-1].copy(), box=(10, 5, 50, 40)))


def test_segment_reads_a_channels_first_tensor(seg, image):
    """The C×H×W tensor a Harmonizer takes was refused ("channels last")."""
    chw = torch.from_numpy(image).permute(2, 0, 1)
    assert np.array_equal(seg.segment(chw.float() / 255, box=(10, 5, 50, 40)), seg.segment(image, box=(10, 5, 50, 40)))
