"""What the Harmonizer did to each subject, in numbers and in one line a person can read.

The network proposes a correction of the subject; the weights' do-no-harm threshold (``PHNetConfig.
correction_threshold``, or a caller's ``threshold=``) drops a correction smaller than itself and
shortens one just above it (``phnet.modeling.transform.kept_fraction``). A :class:`Correction`
records both sides, so that no surface leaves a picture unchanged without saying so.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

log = logging.getLogger("phnet")

OFFICIAL_HINT = "official-ffhqh512"  # the weights a user is pointed at when ours leave a subject as it was
# Below this share of background at the working size the network's background statistics are a few rows of
# pixels and the picture's padded border: an untouched 2880×1620 photo whose only background was a 16 px
# strip came back changed by RMS 83, and a subject with a 40 px strip (1.4 %) was blown out by RMS 62.
MIN_BACKGROUND = 0.03
# A background whose colours at the working size all lie within this (0..1 units) of each other is one flat
# colour: a cut-out's transparent part (black, mostly), a black frame, a plain backdrop. It is no scene to match
# a subject to, and the network pulls the subject toward that one colour
FLAT_SPREAD = 0.5 / 255
FLAT_MIN_SCENE = 0.01  # the share of the working-size picture such a background must cover away from the subject
# A change under half a level of 255 cannot be seen, and 8-bit output rounds most of it away
INVISIBLE = 0.5
# A mask that lets through less than this of the change over the subject is named in the report: the figure is
# that much smaller than the network's correction. A feathered edge costs up to a fifth (a subject 40 px across,
# feather 8: 0.82), so only a faint mask reaches it
FAINT_WEIGHT = 0.7
# The note on an RGBA composite's picture whose transparent part was not matched (see compositing.visible_scene)
TRANSPARENT_SCENE = "the transparent part was left out of the scene to match"
MATTE_UNUSED = ("mask_is_alpha changed nothing: only methods correction and guided, in mode full with a model "
                "that outputs a picture, carry a change up to a soft edge")


@dataclass(frozen=True)
class Correction:
    """One image's correction. ``size``: the RMS change (0–255) over the subject that the network proposed;
    ``threshold``: the do-no-harm threshold it was held against; ``kept``: the fraction of it applied before
    ``strength`` (0 = the subject is left as it was); ``strength``: the caller's blend with the composite;
    ``notes``: what else the user should know (e.g. that a reference mask was ignored); ``empty_mask``: a
    frame of a clip or a picture of a batch whose mask is empty (no subject in it), left as it was;
    ``background``: the share of the picture (at the working size) that is background, set when it is under
    :data:`MIN_BACKGROUND` and the subject was therefore left as it was; ``resampled``: where the result went
    through the working size (the whole picture in mode "official", the subject with methods "resize" and
    "guided"), losing fine detail, the (subject, background) RMS change measured in it, which the network's
    correction alone understates; ``smoothed``: a frame of a clip, the RMS change (before ``strength``) applied
    to its subject after smoothing over its shot, where that differs from its own correction (a frame whose own
    correction the threshold dropped still gets its neighbours'); ``weight``: how much of the change the mask
    lets through over the subject (:func:`phnet.metrics.blend_weight`: 1 for a hard mask, less for a faint one);
    ``flat``: the background's one colour (0–255) when it has only one, and the subject was therefore left as
    it was; ``shown``: the RMS change over the subject measured in the result, where it was measured (a
    correction that pushes colours past 0 or 255 shows less than it proposed: a saturated subject, 1.8 times
    less); ``lost``: with ``empty_mask``, a subject that vanished from the official pipeline's square mask (too
    small or thin for the working size), not one the caller's mask lacks; ``trace``: with ``empty_mask``, a
    frame of a clip whose mask holds only a trace of a subject (under 1/64 of full: a matte's specks)."""

    size: float
    threshold: float
    kept: float
    strength: float = 1.0
    notes: tuple[str, ...] = ()
    empty_mask: bool = False
    background: float | None = None
    resampled: tuple[float, float] | None = None
    smoothed: float | None = None
    weight: float = 1.0
    flat: tuple[int, int, int] | None = None
    shown: float | None = None
    lost: bool = False
    trace: bool = False

    @classmethod
    def no_subject(cls, threshold: float, strength: float = 1.0, trace: bool = False) -> "Correction":
        """A frame or picture whose mask is empty (``trace``: holds only a trace of a subject): nothing was
        proposed or applied."""
        return cls(0.0, threshold, 0.0, strength, empty_mask=True, trace=trace)

    @property
    def unchanged(self) -> bool:
        """Whether the subject was left as it was: ``strength`` 0, or nothing kept (for a smoothed frame of a clip,
        no change left after smoothing)."""
        return self.strength == 0 or not (self.kept if self.smoothed is None else self.smoothed)

    @property
    def applied(self) -> float:
        """RMS change (0–255) applied to the subject: as measured in the result (``shown``), else
        ``at_full_strength × strength``."""
        return self.shown if self.shown is not None else self.at_full_strength * self.strength

    @property
    def at_full_strength(self) -> float:
        """RMS change (0–255) strength 1 applies to the subject: ``size × kept × weight``, or after smoothing
        ``smoothed × weight``."""
        return (self.size * self.kept if self.smoothed is None else self.smoothed) * self.weight

    @property
    def floored(self) -> bool:
        """Applied in part as a correction below the do-no-harm threshold (the weights' floor), not shortened
        by it."""
        return 0 < self.kept < 1 and self.size <= self.threshold

    @property
    def held_back(self) -> bool:
        """Left as it was because its correction is below the do-no-harm threshold (and, in a clip, so are its
        shot's)."""
        return (self.kept == 0 and not self.smoothed and not self.empty_mask and self.background is None
                and self.flat is None)

    @property
    def invisible(self) -> bool:
        """Changed, but by less than :data:`INVISIBLE` (half a level of 255): too little to see."""
        seen = self.applied if self.resampled is None else max(self.resampled)
        return not self.unchanged and seen < INVISIBLE

    def describe(self) -> str:
        """One line: whether the subject changed, by how much, and why not when it did not."""
        return "; ".join((self._verdict(), *self._resampling(), *self.notes))

    def _resampling(self) -> tuple[str, ...]:
        if self.resampled is None:
            return ()
        subject, background = self.resampled
        line = (f"the result went through the working size (fine detail lost): the subject differs by RMS "
                f"{subject:.1f}")
        return (line + (f" and the background by RMS {background:.1f}" if background >= 0.05 else ""),)

    def label(self) -> str:
        """A few words for a picture's caption (the before/after image): whether it changed, and why not."""
        if self.lost:
            return "unchanged: subject lost in the square"
        if self.empty_mask:
            return "unchanged: only a trace in the mask" if self.trace else "unchanged: empty mask"
        if self.background is not None:
            return "unchanged: too little background"
        if self.flat is not None:
            return "unchanged: a flat background"
        if self.held_back:
            return "unchanged: correction below the do-no-harm threshold"
        if self.strength == 0:
            return "unchanged: strength 0"
        if self.invisible:
            return "harmonized (PHNet), by too little to see"
        if self.smoothed is not None:
            return "harmonized (PHNet), smoothed over its shot"
        if self.floored:
            return "harmonized (PHNet), a share of a correction below the do-no-harm threshold"
        if self.kept < 1:
            return "harmonized (PHNet), part of the correction, held back by the do-no-harm threshold"
        return "harmonized (PHNet)"

    def _verdict(self) -> str:
        if self.lost:
            return ("unchanged: the subject vanished from the square mask of mode 'official' (too small or thin "
                    "for the working size); mode 'full' keeps it")
        if self.trace:
            return "unchanged: its mask holds only a trace of a subject (under 1/64 of full), left out of the smoothing"
        if self.empty_mask:
            return "unchanged: its mask is empty (no subject in it)"
        if self.background is not None:
            return (f"unchanged: only {self.background:.1%} of the picture is background, too little to match the "
                    f"subject to (at least {MIN_BACKGROUND:.0%}); give it more of the scene around the subject")
        if self.flat is not None:
            return (f"unchanged: its background is one flat colour {self.flat}, no scene to match the subject to "
                    "(a cut-out's transparent part? paste the subject onto its scene first)")
        if self.held_back:
            return (f"unchanged: the correction (RMS {self.size:.1f} of 255) is below the do-no-harm "
                    f"threshold {self.threshold:g}")
        if self.strength == 0:
            return (f"unchanged: strength 0 (at strength 1 the subject would change by RMS "
                    f"{self.at_full_strength:.1f} of 255)")
        line = f"changed by RMS {self.applied:.1f} of 255"
        if self.smoothed is not None:
            own = "below the do-no-harm threshold" if self.kept == 0 else f"{self.size * self.kept:.1f}"
            line += f" after smoothing over its shot (its own correction: {own})"
        elif self.floored:
            line += (f": {_share(self.kept)} of the correction {self.size:.1f}, which is below the do-no-harm "
                     f"threshold {self.threshold:g}")
        elif self.kept < 1:
            line += (f": {_share(self.kept)} of the correction {self.size:.1f}, held back by the do-no-harm threshold "
                     f"{self.threshold:g}")
        line += f", at strength {self.strength:g}" if self.strength < 1 else ""
        line += f", through a faint mask (weight {self.weight:.2f})" if self.weight < FAINT_WEIGHT else ""
        return line + (" (under half a level: too small to see)" if self.invisible else "")


def summary(corrections: Sequence[Correction], unit: str = "images") -> str:
    """One line for a batch: the single image's :meth:`~Correction.describe`, or counts and the range
    (``unit``: what the batch holds, "images" or a clip's "frames")."""
    if len(corrections) == 1:
        return corrections[0].describe()
    notes = [note if count == len(corrections) else f"{count} of {len(corrections)}: {note}"
             for note, count in sorted(Counter(note for c in corrections for note in set(c.notes)).items())]
    left = sum(c.unchanged for c in corrections)
    def judged(c: Correction) -> bool:  # the network judged it: a subject with a scene to match
        return not c.empty_mask and c.background is None and c.flat is None

    muted = [c for c in corrections if c.strength == 0 and not c.held_back and judged(c)]
    sizes = [c.size for c in corrections  # the network's proposals (a muted one's: strength 1 would apply less)
             if judged(c) and (c.strength != 0 or c.held_back)]
    line = f"{len(corrections) - left} of {len(corrections)} {unit} changed"
    applied = [c.applied for c in corrections if not c.unchanged]  # what the pictures show
    if applied:
        line += f" by RMS {_span(applied)}"
        strengths = sorted({c.strength for c in corrections if not c.unchanged})
        line += f", at strength {_span(strengths, '{:g}')}" if strengths[0] < 1 else ""
        proposed = _span(c.size for c in corrections if not c.unchanged)
        line += f" (the network's corrections {proposed})" if proposed != _span(applied) else ""
    elif sizes:
        line += f"; corrections {_span(sizes)}"
    lost = sum(c.lost for c in corrections)
    if lost:
        line += f"; {lost} whose subject vanished from the square mask of mode 'official', {_left_as(lost)}"
    empty = sum(c.empty_mask and not c.lost and not c.trace for c in corrections)
    if empty:
        line += f"; {empty} with an empty mask (no subject in {'it' if empty == 1 else 'them'}), {_left_as(empty)}"
    traces = sum(c.trace for c in corrections)
    if traces:
        line += f"; {traces} whose mask holds only a trace of a subject (under 1/64 of full), {_left_as(traces)}"
    cramped = sum(c.background is not None for c in corrections)
    if cramped:
        line += f"; {cramped} with under {MIN_BACKGROUND:.0%} background, too little to match to, left unchanged"
    flat = sorted({c.flat for c in corrections if c.flat is not None})
    if flat:
        line += (f"; {sum(c.flat is not None for c in corrections)} with a background of one flat colour "
                 f"{', '.join(map(str, flat[:3]))}, no scene to match to, left unchanged")
    below = [c for c in corrections if c.held_back]
    if below:
        line += f"; {len(below)} below the do-no-harm threshold {below[0].threshold:g}, left unchanged"
    # a frame the threshold held back (wholly or in part) that its shot's smoothing changed says so
    lifted = [c for c in corrections if c.kept < 1 and c.smoothed and c.strength > 0]
    if lifted:
        own = "on its own" if len(lifted) == 1 else "on their own"
        line += (f"; {len(lifted)} held back by the do-no-harm threshold {lifted[0].threshold:g} {own}, changed by "
                 f"{'its' if len(lifted) == 1 else 'their'} shot's smoothed correction")
    if muted:
        line += (f"; {len(muted)} at strength 0, left unchanged (at strength 1: RMS "
                 f"{_span(c.at_full_strength for c in muted)})")
    floored = [c for c in corrections if c.floored and c.strength > 0 and c.smoothed is None]
    if floored:
        line += (f"; {len(floored)} below the do-no-harm threshold {floored[0].threshold:g}, a share of the "
                 "correction applied")
    shortened = [c for c in corrections if 0 < c.kept < 1 and not c.floored and c.strength > 0 and c.smoothed is None]
    if shortened:
        line += f"; {len(shortened)} held back in part by the do-no-harm threshold {shortened[0].threshold:g}"
    invisible = sum(c.invisible for c in corrections)
    if invisible:
        line += f"; {invisible} by under half a level (too small to see)"
    resampled = [c.resampled for c in corrections if c.resampled is not None]
    if resampled:
        line += (f"; {len(resampled)} went through the working size (fine detail lost): their subjects differ by "
                 f"RMS {_span(r[0] for r in resampled)}")
        backgrounds = [r[1] for r in resampled]
        line += f" and their backgrounds by RMS {_span(backgrounds)}" if max(backgrounds) >= 0.05 else ""
    return "; ".join((line, *notes))


def _left_as(count: int) -> str:
    return "left as it was" if count == 1 else "left as they were"


def _share(kept: float) -> str:
    """A share held back in part, never shown as the whole: 0.996 is "0.99", not "1"."""
    shown = f"{kept:.2g}"
    return f"{min(kept, 0.99):.2f}" if shown == "1" else shown


def _span(values, style: str = "{:.1f}") -> str:
    values = sorted(values)
    low, high = style.format(values[0]), style.format(values[-1])
    return low if low == high else f"{low} to {high}"


def report(corrections: Sequence[Correction], threshold_option: str, weights_option: str | None,
           unit: str = "images") -> str:
    """:func:`summary`, followed, when the threshold held corrections back, by what a user can do, in a
    host's own words for its options (e.g. ``--threshold 0`` and ``--weights official-ffhqh512``; None when
    the official weights are the ones in use, see :func:`weights_hint`)."""
    line = summary(corrections, unit)
    if any(c.kept < 1 and c.threshold > 0 and c.strength > 0 and not c.empty_mask and c.background is None
           and c.flat is None for c in corrections):
        line += f"; {threshold_option} applies the raw correction (it may do harm on near-right composites)"
        line += f", or try {weights_option}" if weights_option else ""
    return line


def weights_hint(model_name: str, option: str) -> str | None:
    """``option`` (a host's words for choosing the official weights), or None when ``model_name`` (a
    ``PHNetConfig.name``) says they are already in use."""
    return None if model_name.startswith("official-") else option


def log_corrections(corrections: Sequence[Correction], unit: str = "images") -> None:
    """A ``logging`` line on the ``phnet`` logger: a warning when a subject was left unchanged (``unit``: as
    for :func:`summary`)."""
    if not corrections:
        return
    # unchanged, for whatever reason, or with a note of something ignored
    left = any((c.kept == 0 and not c.smoothed) or set(c.notes) - {TRANSPARENT_SCENE} for c in corrections)
    level = logging.WARNING if left else logging.INFO
    log.log(level, "PHNet: %s", summary(corrections, unit))
