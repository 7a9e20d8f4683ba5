"""phnet.sam.batch: a batch's prompt checked before SAM runs, and what came of each picture."""

from __future__ import annotations

import numpy as np
import pytest

from phnet.mask_tools import refine_mask
from phnet.sam import SamSegmenter
from phnet.sam.batch import GuideLooksInverted, NoPrompt, Outcome, PromptRefused, plan_batch
from phnet.sam.predictor import interrupt_points


class Stub:
    """A segmenter that returns ``mask`` for every picture and records what it was asked."""

    def __init__(self, mask):
        self.mask, self.calls = mask, []

    def segment(self, image, **prompt):
        self.calls.append(prompt)
        return self.mask.copy()


def _pictures(n, h=48, w=80):
    rng = np.random.RandomState(1)
    return [(rng.rand(h, w, 3) * 255).astype(np.uint8) for _ in range(n)]


def _run(plan, mask, n):
    stub = Stub(mask)
    return list(plan.run(stub, _pictures(n))), stub.calls


def test_one_prompt_for_every_picture_gives_a_mask_each_with_its_outcome(seg):
    plan = plan_batch(seg.model, (48, 80), 2, box=(10, 5, 40, 30), positive=[(20, 20)], negative=[(70, 40)])
    assert plan.boxes == ((10, 5, 40, 30),) * 2 and plan.points == ((20, 20), (70, 40)) and plan.labels == (1, 0)
    subject = np.zeros((48, 80), np.float32)
    subject[10:30, 15:35] = 1
    got, calls = _run(plan, subject, 2)
    assert [(p.index, p.outcome) for p in got] == [(0, Outcome.SEGMENTED), (1, Outcome.SEGMENTED)]
    assert all(np.array_equal(p.mask, subject) for p in got)
    assert calls[0]["box"] == (10, 5, 40, 30) and calls[0]["points"] == [(20, 20), (70, 40)]
    assert calls[0]["point_labels"] == [1, 0]


def test_points_alone_prompt_every_picture_without_a_box(seg):
    """A batch prompted by points only has no box per picture, and is no guided batch: each picture is segmented."""
    plan = plan_batch(seg.model, (48, 80), 2, positive=[(20, 20)])
    subject = np.zeros((48, 80), np.float32)
    subject[10:30, 15:35] = 1
    got, calls = _run(plan, subject, 2)
    assert [p.outcome for p in got] == [Outcome.SEGMENTED] * 2 and len(calls) == 2
    assert calls[0]["box"] is None and calls[0]["points"] == [(20, 20)]


def test_what_came_of_a_picture_is_said_as_data():
    from tests.helpers.tiny_sam import build_tiny_sam

    model = build_tiny_sam()
    small = np.zeros((48, 80), np.float32)
    small[20:23, 30:33] = 1  # a subject a few pixels wide
    empty = np.zeros_like(small)
    cases = [
        (empty, {}, Outcome.FOUND_NOTHING),
        (small, {"grow": -2}, Outcome.GROWN_AWAY),
        (small, {"feather": 12.0}, Outcome.TOO_THIN),
        (small, {"feather": 1.0}, Outcome.SEGMENTED),
        (small, {"grow": 2}, Outcome.SEGMENTED),
    ]
    for mask, refine, outcome in cases:
        (picture,), _ = _run(plan_batch(model, (48, 80), box=(25, 15, 40, 30), **refine), mask, 1)
        assert picture.outcome == outcome, refine
        assert picture.outcome == outcome.value  # a str: a caller may word it by name
        if outcome == Outcome.TOO_THIN:
            assert 0 < picture.mask.max() < 1 / 64
    (grown,), _ = _run(plan_batch(model, (48, 80), box=(25, 15, 40, 30), grow=2), small, 1)
    np.testing.assert_array_equal(grown.mask, refine_mask(small, grow=2))  # grown, and nothing else done to it
    assert grown.mask.sum() > small.sum()


def test_an_empty_guide_gives_an_empty_mask_without_running_sam(seg):
    guides = np.zeros((3, 48, 80), np.float32)
    guides[0, 5:30, 10:40] = 1
    guides[2, 0:3, 0:3] = 0.001  # a detector's faint "nobody here" beside a real guide
    plan = plan_batch(seg.model, (48, 80), 3, positive=[(20, 20)], guides=guides)
    assert plan.boxes == ((10, 5, 40, 30), None, None)
    got, calls = _run(plan, np.ones((48, 80), np.float32), 3)
    assert [p.outcome for p in got] == [Outcome.SEGMENTED, Outcome.NO_GUIDE, Outcome.NO_GUIDE]
    assert got[1].mask.shape == (48, 80) and got[1].mask.sum() == 0 and got[2].mask.sum() == 0
    assert len(calls) == 1 and calls[0]["box"] == (10, 5, 40, 30)  # whatever the points say, SAM ran once


def test_a_prompt_is_refused_before_sam_runs_and_says_which_part(seg):
    size = (48, 80)
    with pytest.raises(NoPrompt) as none:
        plan_batch(seg.model, size)
    assert not none.value.background_only
    with pytest.raises(NoPrompt, match="background points alone") as background:
        plan_batch(seg.model, size, negative=[(1, 1)])
    assert background.value.background_only
    with pytest.raises(PromptRefused, match=r"^point \(90.0, 10.0\) lies outside the 80x48 image") as outside:
        plan_batch(seg.model, size, positive=[(90, 10)])
    assert outside.value.points == "positive"
    with pytest.raises(PromptRefused) as background_outside:
        plan_batch(seg.model, size, box=(1, 1, 30, 30), negative=[(70, 50)])
    assert background_outside.value.points == "negative"
    with pytest.raises(PromptRefused, match="no area inside the 80x48 image") as box:
        plan_batch(seg.model, size, 2, box=(100, 60, 200, 90))
    assert box.value.points is None
    with pytest.raises(ValueError, match="either box or guides"):
        plan_batch(seg.model, size, box=(1, 1, 30, 30), guides=np.ones((1, 48, 80)))
    with pytest.raises(ValueError, match="2 guides for 3 pictures"):
        plan_batch(seg.model, size, 3, guides=np.ones((2, 48, 80)))


def test_a_guide_that_looks_inverted_is_refused_by_index_unless_taken_as_given(seg):
    subject = np.zeros((48, 80), np.float32)
    subject[12:36, 25:55] = 1
    guides = np.stack([subject, 1 - subject])
    with pytest.raises(GuideLooksInverted, match="looks inverted") as refused:
        plan_batch(seg.model, (48, 80), 2, guides=guides)
    assert refused.value.index == 1
    plan = plan_batch(seg.model, (48, 80), 2, guides=guides, guides_as_given=True)
    assert plan.boxes[1] == (0, 0, 80, 48)


def test_a_picture_sam_cannot_encode_and_a_feather_too_wide_are_refused_before_sam_runs(seg):
    with pytest.raises(ValueError, match=r"the image is 200x1 pixels: .*short side would be 0"):
        plan_batch(seg.model, (1, 200), box=(0, 0, 200, 1))
    with pytest.raises(ValueError, match=r"^feather 80.5 is wider than the 80x48 image, .* at most 80 pixels$"):
        plan_batch(seg.model, (48, 80), box=(10, 5, 40, 30), feather=80.5)
    plan_batch(seg.model, (48, 80), box=(10, 5, 40, 30), feather=80)


def test_a_batch_with_the_tiny_sam_calls_interrupt_at_every_point_of_each_encode(tiny_path):
    seg = SamSegmenter.from_pretrained(tiny_path, device="cpu")
    pictures = _pictures(2)
    checks = []
    plan = plan_batch(seg.model, (48, 80), 2, box=(10, 5, 40, 30), threshold=-1e6)
    got = list(plan.run(seg, pictures, interrupt=lambda: checks.append(1)))
    assert len(checks) == 2 * interrupt_points(seg.model)
    assert [p.outcome for p in got] == [Outcome.SEGMENTED] * 2  # every logit is above -1e6: all subject
    np.testing.assert_array_equal(got[1].mask, seg.segment(pictures[1], box=(10, 5, 40, 30), threshold=-1e6))
    nothing = plan_batch(seg.model, (48, 80), 2, box=(10, 5, 40, 30), threshold=1e6)
    assert [p.outcome for p in nothing.run(seg, pictures)] == [Outcome.FOUND_NOTHING] * 2
    with pytest.raises(ValueError, match="1 pictures for a plan of 2"):
        list(plan.run(seg, pictures[:1]))


@pytest.mark.parametrize("refine, words", [
    ({"grow": 2.5}, r"^grow must be a whole number of pixels, got 2.5$"),
    ({"feather": -1.0}, r"^feather must be a number >= 0 \(a blur sigma in pixels\), got -1.0"),
    ({"feather": float("nan")}, r"^feather must be a number >= 0"),
    ({"feather": float("inf")}, r"^feather must be a number >= 0"),
    ({"threshold": float("nan")}, r"^threshold must be a finite number"),
])
def test_a_grow_feather_or_threshold_sam_cannot_use_is_refused_before_sam_runs(seg, refine, words):
    """They were refused by refine_mask (or the segmenter) only once SAM had moved and encoded the first picture:
    a minute of a ViT's work on a CPU for a typo."""
    with pytest.raises(ValueError, match=words):
        plan_batch(seg.model, (48, 80), 2, box=(10, 5, 40, 30), **refine)


def test_a_caller_catches_the_batch_refusals_from_phnet_sam_as_it_does_the_others(seg):
    """plan_batch and Outcome came from phnet.sam, but the refusals a caller words (as compositing's come from
    phnet.compositing, and SeveralCheckpoints from phnet.sam) only from phnet.sam.batch."""
    import phnet.sam as sam

    with pytest.raises(sam.NoPrompt):
        sam.plan_batch(seg.model, (48, 80))
    with pytest.raises(sam.PromptRefused):
        sam.plan_batch(seg.model, (48, 80), positive=[(90, 10)])
    inverted = np.ones((1, 48, 80), np.float32)
    inverted[0, 12:36, 25:55] = 0  # the scene marked, its subject not
    with pytest.raises(sam.GuideLooksInverted):
        sam.plan_batch(seg.model, (48, 80), guides=inverted)
    assert {"NoPrompt", "PromptRefused", "GuideLooksInverted", "PictureMask"} <= set(sam.__all__)
