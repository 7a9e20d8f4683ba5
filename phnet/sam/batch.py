"""Segmenting a batch of pictures: one prompt for all of them, or a box per picture from its guide mask.

:func:`plan_batch` checks everything a batch can be refused for before SAM moves or encodes (a prompt outside the
pictures, a guide that looks inverted, a picture SAM cannot encode, a threshold, grow or feather it cannot use);
:meth:`BatchPlan.run` then segments picture by picture, grows or shrinks and feathers each mask, and says of each
what came of it (:class:`Outcome`), as data for the caller to word.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import ByFields
from ..imageio.masks import FAINT
from ..mask_tools import _check_width, looks_inverted, refine_mask, refine_numbers
from .predictor import SamSegmenter, _check_threshold, check_encodable
from .prompts import guide_boxes, make_prompt

if TYPE_CHECKING:
    from segment_anything.modeling import Sam
else:  # segment_anything loads on first use, not with the package: at run time (get_type_hints) the hints read Any
    Sam = Any


class Outcome(str, enum.Enum):
    """What came of one picture of a batch."""

    SEGMENTED = "segmented"  # a mask that marks a subject
    NO_GUIDE = "no_guide"  # its guide is empty (or faint beside the batch's strongest): SAM did not run, mask empty
    FOUND_NOTHING = "found_nothing"  # SAM found nothing in its prompt: mask empty
    GROWN_AWAY = "grown_away"  # SAM found a subject, and a negative grow shrank it to nothing
    TOO_THIN = "too_thin"  # the feather spread it below FAINT of full: too thin to mark a subject


class NoPrompt(ByFields, ValueError):
    """No box, no point on the subject and no guides; ``background_only``: background points were given."""

    def __init__(self, background_only: bool):
        super().__init__("no prompt: give a box, points on the subject or guide masks"
                         + (" (background points alone do not say where the subject is)" if background_only else ""))
        self.background_only = background_only


class PromptRefused(ByFields, ValueError):
    """A prompt that does not fit the pictures; ``points`` is "positive" or "negative" where those points alone
    are at fault, None where it is the prompt as a whole (a box, or a guide's box with the points)."""

    def __init__(self, message: str, points: str | None = None):
        super().__init__(message)
        self.points = points


class GuideLooksInverted(ByFields, ValueError):
    """Guide ``index`` covers most of its picture and of its border (:func:`phnet.mask_tools.looks_inverted`): its
    box would be the whole picture."""

    def __init__(self, index: int):
        super().__init__(f"guide {index} covers most of the picture and of its border, so it looks inverted and its "
                         "box would be the whole picture: invert it, or pass guides_as_given=True if it is right")
        self.index = index


@dataclasses.dataclass(frozen=True)
class PictureMask:
    """One picture's result: its mask (float32 H x W in [0, 1]) and what came of it."""

    index: int
    mask: np.ndarray
    outcome: Outcome


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """A checked batch: the box prompt of each picture (None: its guide is empty, so no SAM), the points shared by
    all, and how each mask is made and refined. Made by :func:`plan_batch`."""

    size: tuple[int, int]
    boxes: tuple[Any, ...]
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    guided: bool = False
    multimask: bool = False
    threshold: float = 0.0
    grow: int = 0
    feather: float = 0.0

    def run(self, segmenter: SamSegmenter, images: Sequence[Any], interrupt: Callable[[], Any] | None = None
            ) -> Iterator[PictureMask]:
        """Segment ``images`` (one per box, each of ``size``) with ``segmenter`` (a :class:`SamSegmenter`, already
        on its device), one picture at a time: a caller can report each as it comes. ``interrupt`` is called at
        each of the encoder's interrupt points (see :func:`phnet.sam.predictor.interrupt_points`)."""
        if len(images) != len(self.boxes):
            raise ValueError(f"{len(images)} pictures for a plan of {len(self.boxes)}; give one picture per box")
        for i, box in enumerate(self.boxes):
            if box is None and self.guided:
                yield PictureMask(i, np.zeros(self.size, np.float32), Outcome.NO_GUIDE)
                continue
            m = segmenter.segment(images[i], box=box, points=list(self.points) or None,
                                  point_labels=list(self.labels) or None, multimask=self.multimask,
                                  threshold=self.threshold, interrupt=interrupt)
            found = bool((m > 0).any())
            if self.grow or self.feather:
                m = refine_mask(m, grow=self.grow, feather=self.feather)
            if not found:
                outcome = Outcome.FOUND_NOTHING
            elif not (m > 0).any():
                outcome = Outcome.GROWN_AWAY
            elif float(m.max()) < FAINT:
                outcome = Outcome.TOO_THIN
            else:
                outcome = Outcome.SEGMENTED
            yield PictureMask(i, m, outcome)


def plan_batch(
    model: Sam,
    size: tuple[int, int],
    count: int = 1,
    *,
    box: Sequence[float] | None = None,
    positive: Sequence[Sequence[float]] = (),
    negative: Sequence[Sequence[float]] = (),
    guides: Any = None,
    guides_as_given: bool = False,
    multimask: bool = False,
    threshold: float = 0.0,
    grow: int = 0,
    feather: float = 0.0,
) -> BatchPlan:
    """Check a batch of ``count`` pictures of ``size`` (H, W) against its prompt and SAM ``model``, before SAM moves
    or encodes anything, and return the plan that segments it.

    box: (x0, y0, x1, y1) in pixels for every picture. positive / negative: (x, y) points on the subject / on the
        background, for every picture.
    guides: instead of a box, one guide mask per picture (B x H x W, 0..1, numpy or torch): its box
        (:func:`phnet.sam.prompts.guide_boxes`) prompts SAM; where a guide is empty, that picture's mask is empty
        whatever the points say. A guide that looks inverted is refused unless ``guides_as_given``.
    grow, feather: :func:`phnet.mask_tools.refine_mask` of each mask; ``feather`` at most the pictures' longest side.

    Raises :class:`GuideLooksInverted`, :class:`NoPrompt`, :class:`PromptRefused`, or a ``ValueError`` for a picture
    SAM cannot encode, a threshold that is no finite number, or a grow or feather :func:`refine_mask` refuses (a
    feather too wide among them), in that order.
    """
    height, width = (int(v) for v in size)
    if box is not None and guides is not None:
        raise ValueError("give either box or guides, not both (each guide is turned into a box)")
    if guides is not None:
        if len(guides) != count:
            raise ValueError(f"{len(guides)} guides for {count} pictures; give one guide per picture")
        inverted = [] if guides_as_given else [i for i, g in enumerate(guides) if looks_inverted(g)]
        if inverted:
            raise GuideLooksInverted(inverted[0])
    positive, negative = [tuple(p) for p in positive], [tuple(p) for p in negative]
    if box is None and not positive and guides is None:
        raise NoPrompt(background_only=bool(negative))
    points = positive + negative
    labels = [1] * len(positive) + [0] * len(negative)
    boxes = [box] * count if guides is None else guide_boxes(guides)
    for which, given in (("positive", positive), ("negative", negative)):
        if given:
            try:
                make_prompt((height, width), None, given, None, None)
            except ValueError as e:
                raise PromptRefused(str(e), which) from None
    for each in boxes:
        if each is not None or guides is None:
            try:
                make_prompt((height, width), each, points or None, labels or None, None)
            except ValueError as e:
                raise PromptRefused(str(e)) from None
    check_encodable(model, height, width)
    # the segmenter's and refine_mask's own refusals, said before SAM moves, not after the first encode
    _check_threshold(threshold)
    grow, feather = refine_numbers(grow, feather)
    _check_width(feather, (height, width), "feather", "image")
    pairs = tuple((float(x), float(y)) for x, y in points)  # each checked above as two finite numbers
    return BatchPlan((height, width), tuple(boxes), pairs, tuple(labels), guides is not None,
                     bool(multimask), threshold, grow, feather)
