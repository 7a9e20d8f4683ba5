"""Paste a cut-out subject onto a background: the composite PHNet then harmonizes.

:func:`paste_subject` pastes one picture; :func:`plan_paste` pairs a batch of backgrounds with a batch of subjects
and checks it before anything is pasted (the cut-outs' alpha by :func:`check_cut_outs`, which a caller holding one
picture may use alone), and :meth:`PastePlan.paste` pastes it picture by picture (:func:`paste_batch` does both).
Refusals a caller may want to word in its own terms are typed.

No host imports here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .compat import widened
from .corrections import MIN_BACKGROUND
from .errors import ByFields
from .fullres import resize
from .imageio import image_to_array, mask_to_array, mask_to_tensor
from .imageio.images import _tensor_view, _where, integer_peak
from .imageio.masks import FAINT, trace_bar
from .mask_tools import finite_real, inverted_masks

__all__ = ["paste_subject", "paste_batch", "plan_paste", "check_cut_outs", "PastePlan", "BatchesDiffer",
           "FaintSubject", "AlphaLooksInverted", "TransparentSubject", "over_background", "cut_out_colour",
           "visible_scene", "ANCHORS"]

# Where on the (scaled) subject the (x, y) point sits, as fractions of its width / height.
ANCHORS: dict[str, tuple[float, float]] = {
    "top-left": (0.0, 0.0),
    "center": (0.5, 0.5),
    "bottom-center": (0.5, 1.0),
}


def over_background(composite: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """A :func:`paste_subject` composite (H x W x 3 float, its ``mask`` H x W) laid over an RGBA ``background``
    (H x W x 4: float 0..1, or 8- or 16-bit on its scale) as "over" lays a straight-alpha picture: H x W x 4
    float32 whose alpha is the subject's added to the background's. Where no subject lands, the background is
    as it was."""
    under = background.float().cpu()
    if not background.is_floating_point():
        under /= integer_peak(background.dtype) or 1.0
    alpha, seen = under[..., 3], (1 - mask)[..., None]
    covered = mask + alpha * (1 - mask)
    # the composite is subject·m + background·(1−m); "over" weighs the background by its alpha too
    over = (composite - under[..., :3] * seen * (1 - alpha[..., None])) / covered.clamp(min=1e-6)[..., None]
    # (over a faint alpha, the division above magnified the rounding of what it undid)
    over = torch.where(mask[..., None] > 0, over.clamp(0, 1), under[..., :3])
    return torch.cat([torch.where(covered[..., None] > 0, over, composite), covered[..., None]], -1)


def cut_out_colour(pixels: Any, background: Any, share: float = 0.03) -> tuple[float, ...] | None:
    """The one flat colour under a cut-out's transparent part, or None for a composite. ``pixels``: an H×W×C
    picture (numpy or torch, its first three channels read); ``background``: H×W booleans, where the mask says
    "scene". A cut-out saved as RGBA holds one colour there (black, mostly) over ``share`` of the picture or
    more: no scene for a subject to be matched to, and matching it to that colour harms it."""
    background = np.asarray(background, dtype=bool)
    hidden = np.asarray(pixels)[..., :3][background]
    if len(hidden) < max(1, share * background.size) or not (hidden == hidden[0]).all():
        return None
    return tuple(hidden[0].tolist())


def visible_scene(alpha: torch.Tensor, masks: torch.Tensor,
                  references: tuple[torch.Tensor, float] | None = None, mask_peak: float = 1.0
                  ) -> tuple[tuple[torch.Tensor, float], list[bool]] | None:
    """The scene an RGBA composite's subject is matched to: its visible part. ``alpha``: B×H×W (0 = not shown);
    ``masks``: the subjects, 1×H×W or B×H×W in any dtype (``mask_peak`` = fully subject); ``references``: None or
    (1×H×W or B×H×W reference masks, their full value). What lies under alpha 0 (black, mostly: a background with
    a transparent part) is seen by nobody, and the subject must not be matched to it.

    → (reference masks B×H×W, their full value) and which pictures they narrow: those whose background (the
    mask at most a trace, :func:`~phnet.imageio.masks.trace_bar`: a matting model's or a JPEG mask's floor is
    background, beside a weak subject too) is partly hidden and still shows over :data:`MIN_BACKGROUND` of the
    picture, within the given region where one is given; elsewhere the references are as given (the whole picture
    where none is). None where no picture is narrowed: a cut-out, whose alpha is its subject, has no visible scene
    to match and is judged as one."""
    n, h, w = alpha.shape
    subject = widened(masks)
    # the bool temporaries are worked in place: a long clip's pictures are large
    background = (subject <= trace_bar(subject.flatten(1).amax(1)[:, None, None], mask_peak)).expand(n, h, w).clone()
    shown = widened(alpha) > 0
    hidden = (~shown).logical_and_(background)
    found = hidden.flatten(1).any(1)
    del hidden
    visible = background.logical_and_(shown)
    found &= visible.flatten(1).sum(1) >= MIN_BACKGROUND * h * w
    if references is not None:
        found &= visible.logical_and_(widened(references[0].to(alpha.device)) > 0).flatten(1).any(1)
    del visible
    if not bool(found.any()):
        return None
    keep = shown.logical_or_(~found[:, None, None])  # the whole picture where the scene is not narrowed
    if references is None:
        return (keep.to(torch.uint8), 1.0), found.tolist()
    given, peak = references
    given = given.expand(n, h, w)
    return (_where(keep.to(given.device), given, torch.zeros_like(given)), peak), found.tolist()


def _resize(rgb: np.ndarray, alpha: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased resize of colour + alpha.

    Colour is resized premultiplied by alpha and divided back afterwards, so the (often
    garbage) colour of fully transparent pixels does not bleed into the subject's edge.
    """
    if size_hw == alpha.shape:
        return rgb, alpha
    t_rgb = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    t_a = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    both = torch.cat([t_rgb * t_a, t_a], dim=1)
    out = resize(both, size_hw)  # (torch's own kernel gave a 1 px wide subject its top row's colour all the way)
    a = out[:, 3:].clamp(0.0, 1.0)
    col = torch.where(a > 1e-6, out[:, :3] / a.clamp_min(1e-6), torch.zeros_like(out[:, :3])).clamp(0.0, 1.0)
    return col[0].permute(1, 2, 0).numpy(), a[0, 0].numpy()


def _enlarge_window(rgb: np.ndarray, alpha: np.ndarray, size_hw: tuple[int, int],
                    rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` and columns ``cols`` of ``_resize(rgb, alpha, size_hw)`` for an enlargement, computed
    alone: an enlargement is plain bilinear (half-pixel centres, edges held), so each output pixel reads
    two rows and two columns of the source, and a subject scaled far past the background costs only the
    part that lands on it."""
    (sh, sw), (nh, nw) = alpha.shape, size_hw

    def grid(lo: int, hi: int, n_in: int, n_out: int) -> torch.Tensor:
        src = (torch.arange(lo, hi, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
        return ((src.clamp(0, n_in - 1) + 0.5) / n_in * 2 - 1).float()  # grid_sample's unit, pixel centres

    gy, gx = grid(*rows, sh, nh), grid(*cols, sw, nw)
    where = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)[None]
    t_rgb = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    t_a = torch.from_numpy(np.ascontiguousarray(alpha))[None, None]
    out = F.grid_sample(torch.cat([t_rgb * t_a, t_a], dim=1), where, mode="bilinear", padding_mode="border",
                        align_corners=False)
    a = out[:, 3:].clamp(0.0, 1.0)
    col = torch.where(a > 1e-6, out[:, :3] / a.clamp_min(1e-6), torch.zeros_like(out[:, :3])).clamp(0.0, 1.0)
    return col[0].permute(1, 2, 0).numpy(), a[0, 0].numpy()


def faint_subject(strongest: float, what: str = "alpha", whose: str = "its") -> str | None:
    """Words for a subject whose strongest alpha (or mask value, ``what``; 0..1 of full) is above 0 and under
    1/64: it marks no subject to harmonize, and the Harmonizer would blame the mask's scale (16 bits, divided by
    255 twice). None for any other subject. ``whose``: "its", or "the" for a batch."""
    if not 0 < strongest < FAINT:
        return None
    return (f"almost fully transparent ({whose} strongest {what} is {strongest * 255:.3g}/255), so it marks no "
            "subject to harmonize")


def paste_subject(
    background: Any,
    subject: Any,
    subject_mask: Any = None,
    x: float = 0,
    y: float = 0,
    scale: float = 1.0,
    anchor: str = "top-left",
    *,
    allow_empty: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite ``subject`` onto ``background``.

    background: H x W (x C) numpy uint8 / uint16 / float 0..1, torch, or PIL. Alpha is ignored.
    subject: same kinds; an RGBA / LA subject's alpha is its mask unless ``subject_mask``
        is given; with neither, the whole subject rectangle is pasted.
    Images and masks follow the rules of :mod:`phnet.imageio` (a float outside 0..1 is an error).
    x, y: background pixel where the ``anchor`` point of the scaled subject lands.
    anchor: "top-left", "center" or "bottom-center" (feet on the floor).
    scale: resize factor for subject and mask (antialiased).

    Returns ``(composite, mask)``: float32 H x W x 3 in [0, 1] and float32 H x W in [0, 1]
    in background coordinates (soft alpha kept). Parts of the subject outside the
    background are clipped; a subject entirely outside raises ``ValueError``, and so does one whose part on the
    background is transparent (its margin), or one almost fully transparent (under 1/64 of full), unless
    ``allow_empty`` (a batch whose subject leaves some pictures, judged as a whole).
    """
    _check_placement(x, y, scale, anchor)
    bg, _ = image_to_array(background, "background")
    rgb, alpha = _subject_and_alpha(subject, subject_mask, allow_empty)
    size = (bg.shape[0], bg.shape[1])  # (a pair, as every numpy's types say; shape[:2] is typed as any length)
    box = _overlap(size, (rgb.shape[0], rgb.shape[1]), x, y, scale, anchor)
    part, part_alpha, scaled_alpha = _scaled_part(rgb, alpha, box, size)
    if not allow_empty and not (part_alpha > 0).any():
        _refuse_a_transparent_part(scaled_alpha, subject_mask is not None, size, x, y, scale, anchor)
    return _blend(bg, part, part_alpha, box)


def _check_placement(x: Any, y: Any, scale: Any, anchor: Any) -> None:
    """The placement's numbers and anchor, refused before any picture is read."""
    if not isinstance(anchor, str) or anchor not in ANCHORS:  # (a list or dict is unhashable)
        raise ValueError(f"anchor must be one of {list(ANCHORS)}, got {anchor!r}")
    if not (finite_real(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if not (finite_real(x) and finite_real(y)):
        raise ValueError(f"x and y must be finite numbers, got ({x!r}, {y!r})")


def _subject_and_alpha(subject: Any, subject_mask: Any, allow_empty: bool) -> tuple[np.ndarray, np.ndarray]:
    """The subject's colour and its alpha: ``subject_mask``, else its own alpha, else its whole rectangle. One
    almost fully transparent is refused unless ``allow_empty``."""
    rgb, alpha = image_to_array(subject, "subject")
    sh, sw = rgb.shape[:2]
    if subject_mask is not None:
        alpha = mask_to_array(subject_mask, "subject_mask", size=(sh, sw), against="subject")
    elif alpha is None:
        alpha = np.ones((sh, sw), np.float32)
    faint = faint_subject(float(alpha.max()), "subject_mask value" if subject_mask is not None else "alpha")
    if faint and not allow_empty:
        raise ValueError(f"the subject is {faint}: give a cut-out whose subject is opaque (or a subject_mask that is "
                         "white on the subject)")
    return rgb, alpha


@dataclasses.dataclass(frozen=True)
class _Overlap:
    """Where the subject scaled to ``size`` (h, w) lands: its top-left corner at (``top``, ``left``) on the
    background, which it overlaps in rows ``y0:y1`` and columns ``x0:x1`` (``rows`` and ``cols`` of the scaled
    subject)."""

    size: tuple[int, int]
    top: int
    left: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def rows(self) -> tuple[int, int]:
        return self.y0 - self.top, self.y1 - self.top

    @property
    def cols(self) -> tuple[int, int]:
        return self.x0 - self.left, self.x1 - self.left


def _overlap(background_hw: tuple[int, int], subject_hw: tuple[int, int], x: float, y: float, scale: float,
             anchor: str) -> _Overlap:
    """The subject scaled by ``scale`` with its ``anchor`` at (x, y): where it overlaps the background. A subject
    entirely outside it is refused."""
    (bh, bw), (sh, sw) = background_hw, subject_hw
    new_h = max(1, int(round(sh * scale)))
    new_w = max(1, int(round(sw * scale)))
    ax, ay = ANCHORS[anchor]
    left = int(math.floor(x - ax * new_w + 0.5))
    top = int(math.floor(y - ay * new_h + 0.5))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + new_w, bw), min(top + new_h, bh)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"the subject ({new_w}x{new_h} px after scale {scale}) placed with its {anchor} at "
            f"({x}, {y}) lies entirely outside the {bw}x{bh} background; move x/y inside it"
        )
    return _Overlap((new_h, new_w), top, left, y0, y1, x0, x1)


def _scaled_part(rgb: np.ndarray, alpha: np.ndarray, box: _Overlap, background_hw: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The colour and alpha of the scaled subject's part that lands on the background, and the alpha it was cut
    from: the whole scaled one, or the unscaled one where only the part of an enlargement was computed."""
    (sh, sw), (new_h, new_w), (bh, bw) = rgb.shape[:2], box.size, background_hw
    if new_h > sh and new_w > sw and new_h * new_w > bh * bw:  # enlarged past the background: its part only
        part, part_alpha = _enlarge_window(rgb, alpha, box.size, box.rows, box.cols)
        return part, part_alpha, alpha
    rgb, alpha = _resize(rgb, alpha, box.size)
    return rgb[slice(*box.rows), slice(*box.cols)], alpha[slice(*box.rows), slice(*box.cols)], alpha


def _refuse_a_transparent_part(alpha: np.ndarray, masked: bool, background_hw: tuple[int, int], x: float, y: float,
                               scale: float, anchor: str) -> None:
    """No opaque part of the subject lands on the background: its ``alpha`` is 0 everywhere, or only its margin
    overlaps."""
    bh, bw = background_hw
    if not (alpha > 0).any():  # nowhere opaque: no place would show it
        what = "subject_mask is empty" if masked else "subject's alpha is transparent everywhere"
        raise ValueError(f"the {what}, so there is nothing to paste: give a cut-out whose subject is opaque "
                         "(or a subject_mask that marks it)")
    raise ValueError(
        f"no opaque part of the subject lands on the {bw}x{bh} background (its {anchor} at ({x}, {y}), after "
        f"scale {scale}): only its transparent margin overlaps it; move x/y so its visible part does")


def _blend(bg: np.ndarray, part: np.ndarray, part_alpha: np.ndarray, box: _Overlap) -> tuple[np.ndarray, np.ndarray]:
    """The background with the subject's part laid over it by its alpha, and that alpha as the mask."""
    comp = bg.copy()
    mask = np.zeros(bg.shape[:2], np.float32)
    region = comp[box.y0:box.y1, box.x0:box.x1]
    comp[box.y0:box.y1, box.x0:box.x1] = region * (1.0 - part_alpha[..., None]) + part * part_alpha[..., None]
    mask[box.y0:box.y1, box.x0:box.x1] = part_alpha
    return np.ascontiguousarray(comp, dtype=np.float32), mask


class BatchesDiffer(ByFields, ValueError):
    """A batch of ``backgrounds`` backgrounds and one of ``subjects`` subjects that do not pair up: neither is one
    picture, and their counts differ."""

    def __init__(self, backgrounds: int, subjects: int):
        super().__init__(f"a batch of {backgrounds} backgrounds and {subjects} subjects; give one of them, or the same "
                         "number of both")
        self.backgrounds, self.subjects = backgrounds, subjects


class FaintSubject(ByFields, ValueError):
    """The batch's strongest alpha (or subject_mask value, where ``masked``) is above 0 and under 1/64 of full
    (:func:`faint_subject`, whose ``words`` it keeps): no subject to harmonize. ``whom``: "the subject", or
    "every subject" where the batch has several."""

    def __init__(self, strongest: float, masked: bool, several: bool):
        self.strongest, self.masked, self.several = strongest, masked, several
        self.whom = "every subject" if several else "the subject"
        self.words = faint_subject(strongest, "subject_mask value" if masked else "alpha", "the" if several else "its")
        fix = "a subject_mask that is white on the subject" if masked else "a cut-out whose subject is opaque"
        super().__init__(f"{self.whom} is {self.words}: give {fix}")


class AlphaLooksInverted(ByFields, ValueError):
    """Subject ``index``'s alpha, or its subject_mask where ``masked``, covers ``area`` of its picture and
    ``border`` of its border (:func:`phnet.mask_tools.inverted_masks`): its surroundings are opaque, not it.
    ``several``: the batch has more than one subject."""

    def __init__(self, index: int, area: float, border: float, several: bool, masked: bool = False):
        self.index, self.area, self.border, self.several, self.masked = index, area, border, several, masked
        which = f" (subject {index} of the batch)" if several else ""
        what, rule = (("subject_mask", "1 must mark the subject, 0 its surroundings") if masked else
                      ("the subject's alpha", "the subject must be opaque, its surroundings transparent"))
        super().__init__(f"{what}{which} covers {area:.0%} of the picture and {border:.0%} of its border, so it looks "
                         f"inverted: {rule}; invert the {'mask' if masked else 'alpha'}, or pass alpha_as_given=True "
                         "if it is right")


class TransparentSubject(ByFields, ValueError):
    """No subject_mask, and the subjects' alpha is 0 everywhere: there is nothing to paste."""

    def __init__(self):
        super().__init__("the subject's alpha is transparent everywhere, so there is nothing to paste: give a cut-out "
                         "whose subject is opaque, or a subject_mask that marks it")


@dataclasses.dataclass(frozen=True, eq=False)
class PastePlan:
    """Backgrounds and subjects paired for pasting (made by :func:`plan_paste`): ``count`` pictures, the one
    background or subject of a batch of one used for each. ``masks``: one per subject (B x h x w float, 0..1), or
    None for the subjects' alpha (or their whole rectangle)."""

    backgrounds: torch.Tensor
    subjects: torch.Tensor
    masks: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """How many pictures :meth:`paste` makes: the larger of the two batches."""
        return max(self.backgrounds.shape[0], self.subjects.shape[0])

    def paste(self, x: float = 0, y: float = 0, scale: float = 1.0, anchor: str = "top-left",
              progress: Callable[[int, int], Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste each subject at (x, y) as :func:`paste_subject` places it, one picture at a time; over an RGBA
        background the subject is laid as :func:`over_background` lays it, keeping its alpha. ``progress(done,
        total)`` is called after each picture.

        Returns (composites B x H x W x 3, or x 4 over RGBA backgrounds, float32; masks B x H x W float32), on the
        backgrounds' device. A subject may leave some pictures (a clip's subject walking out); a batch where no
        opaque part of any subject lands on its background raises a ``ValueError``, as does a placement
        :func:`paste_subject` refuses."""
        n, last_bg, last_subject = self.count, self.backgrounds.shape[0] - 1, self.subjects.shape[0] - 1
        composites: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for i in range(n):
            background = self.backgrounds[min(i, last_bg)]
            mask = None if self.masks is None else self.masks[min(i, self.masks.shape[0] - 1)]
            made = paste_subject(background, self.subjects[min(i, last_subject)], mask, x=x, y=y, scale=scale,
                                 anchor=anchor, allow_empty=True)  # judged for the batch
            composite, pasted = torch.from_numpy(made[0]), torch.from_numpy(made[1])
            if background.shape[-1] == 4:
                composite = over_background(composite, pasted, background)
            composites.append(composite)
            masks.append(pasted)
            if progress is not None:
                progress(i + 1, n)
        if all(not bool((m > 0).any()) for m in masks):
            raise ValueError(
                "no opaque part of the subject lands on the background (the part inside it is transparent"
                f"{' in subject_mask' if self.masks is not None else ''}), so the composite has no subject: move x/y "
                "so the subject's visible part overlaps the background, or check subject_mask")
        device = self.backgrounds.device
        return torch.stack(composites).to(device), torch.stack(masks).to(device)


def plan_paste(backgrounds: torch.Tensor, subjects: torch.Tensor, subject_mask: Any = None, *,
               alpha_as_given: bool = False) -> PastePlan:
    """Pair a batch of backgrounds (B x H x W x C tensor, C 3 or 4) with a batch of subjects (B x h x w x C: float
    0..1 or 8- or 16-bit) before anything is pasted: one of either goes with each of the other, or the counts
    match. ``subject_mask``: one mask for all subjects or one each, any layout :func:`phnet.imageio.mask_to_tensor`
    reads; without it an RGBA subject's alpha is its mask.

    The batch's masks, or its alpha, are judged by :func:`check_cut_outs` (``alpha_as_given`` lets an alpha that
    looks inverted pass). Raises :class:`BatchesDiffer`, or a ``ValueError`` for masks that do not pair with the
    subjects, first."""
    masks = None
    if subject_mask is not None:
        masks = mask_to_tensor(subject_mask, subjects.shape[0], subjects.shape[1], subjects.shape[2],
                               "subject_mask")[:, 0]
    n = max(backgrounds.shape[0], subjects.shape[0])
    if min(backgrounds.shape[0], subjects.shape[0]) not in (1, n):
        raise BatchesDiffer(backgrounds.shape[0], subjects.shape[0])
    alpha = masks if masks is not None else subjects[..., 3] if subjects.shape[-1] == 4 else None
    if alpha is None:
        return PastePlan(backgrounds, subjects)
    peak = 1.0 if alpha.is_floating_point() else integer_peak(subjects.dtype) or 1.0
    check_cut_outs(alpha, peak, masked=masks is not None, as_given=alpha_as_given)
    return PastePlan(backgrounds, subjects, masks)


def check_cut_outs(alpha: Any, peak: float = 1.0, *, masked: bool = False, as_given: bool = False) -> None:
    """The rule a batch of cut-outs' ``alpha`` (B x h x w, numpy or torch; ``peak`` = opaque), or their subject
    masks where ``masked``, meets before anything is pasted. Judged as a whole (a clip's subject may fade out), it
    must reach 1/64 of full somewhere (:class:`FaintSubject`), an alpha must not be 0 everywhere
    (:class:`TransparentSubject`), and none may look inverted (:class:`AlphaLooksInverted`) unless ``as_given``."""
    alpha = widened(_tensor_view(alpha) if isinstance(alpha, np.ndarray) else alpha)
    strongest = float(alpha.amax()) / peak
    several = alpha.shape[0] > 1
    if faint_subject(strongest):
        raise FaintSubject(strongest, masked, several)
    if not masked and not strongest > 0:
        raise TransparentSubject()
    inverted = [] if as_given else inverted_masks(alpha / peak)
    if inverted:
        raise AlphaLooksInverted(*inverted[0], several=several, masked=masked)


def paste_batch(backgrounds: torch.Tensor, subjects: torch.Tensor, subject_mask: Any = None, x: float = 0,
                y: float = 0, scale: float = 1.0, anchor: str = "top-left", *, alpha_as_given: bool = False,
                progress: Callable[[int, int], Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`plan_paste` then :meth:`PastePlan.paste`: a batch of composites and their masks."""
    return plan_paste(backgrounds, subjects, subject_mask, alpha_as_given=alpha_as_given).paste(
        x, y, scale, anchor, progress=progress)
