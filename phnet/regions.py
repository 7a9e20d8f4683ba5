"""The regions of a picture as the network sees it at its working size: where the subject is (from half of its
mask's strength), the reference region it should match, and whether the background is a scene or one flat
colour (a cut-out on its canvas). Everything stays on the device: nothing is read back to the host."""

from __future__ import annotations

from typing import Any

import torch

from .corrections import FLAT_MIN_SCENE, FLAT_SPREAD
from .fullres import downscale
from .imageio import mask_to_tensor
from .imageio.fast import mask_pixels
from .imageio.masks import trace_bar


def working_mask(mask: torch.Tensor, mask_peak: float, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """An H×W mask at the working ``shape``: its coverage (1×1×h×w, 0..1) and where that counts as subject,
    from half of full, or from half the coverage's own strongest value where it never reaches full: a soft mask
    under 0.5 everywhere is its region, not its one largest pixel (nor is it where one stronger speck of it, which
    the working size averages away, would raise the bar above the rest). Nothing is read back from the device."""
    coverage = downscale(mask[..., None], mask_peak, shape)
    return coverage, coverage >= subject_bar(coverage)


def subject_bar(coverage: torch.Tensor) -> torch.Tensor:
    """Where a working-size ``coverage`` (0..1) counts as subject: half of full, or half its strongest value."""
    return (coverage.amax().float() * 0.5).clamp(min=1e-6, max=0.5).to(coverage.device)


IGNORED_REFERENCE = ("the reference mask was ignored: it holds no background (it is empty, or lies under the "
                     "subject), so the whole background was matched")


def reference_pixels(reference_mask: Any, shape: tuple[int, int, int]) -> tuple[torch.Tensor, float]:
    """The reference mask(s) for B×H×W frames as B×H×W in their own dtype (a full-size float copy of an 8K uint8
    mask is 130 MB), with the value meaning "fully in the region"."""
    found = mask_pixels(reference_mask, *shape)
    return found if found is not None else (mask_to_tensor(reference_mask, *shape, "reference mask")[:, 0], 1.0)


def reference_at(reference: torch.Tensor, shape: tuple[int, int], subject: torch.Tensor | None = None,
                 subject_peak: float = 1.0, reference_peak: float = 1.0) -> torch.Tensor:
    """An H×W reference mask (0..reference_peak) as the 1×1×h×w binary region the network takes at the working
    ``shape``.

    Read off the ``subject`` (its H×W mask, ``subject_peak`` = fully subject; under it nothing is matched
    anyway), relative to its own strongest value where the subject does not reach, pixels at least half as
    strong counting: a soft mask (0.4 everywhere in the region) is that region, also when it was painted over
    the subject at full strength, and a region too small to survive the resize as a whole pixel still keeps
    its strongest one. An empty mask stays empty (and is reported as ignored).
    """
    if subject is None:
        weight = off = downscale(reference[..., None], reference_peak, shape)
    else:  # the region is read without the subject, cut where the network reads subject (from half, see
        # working_mask: a band drawn in a wide feather is background to it), its strength where no trace of the
        # subject is: a pixel the subject covers would count the strength painted over it, not the region's. A
        # trace (a matting model's or a JPEG mask's floor of 1/255) is trace_bar's
        trace = trace_bar(subject.amax().float(), subject_peak).to(reference.device)
        coverage = downscale(subject[..., None], subject_peak, shape).to(reference.device)
        half = subject_bar(coverage) * subject_peak
        weight = downscale(torch.where(subject.to(reference.device) >= half, 0, reference)[..., None], reference_peak,
                           shape)
        clear = (weight * (coverage <= 0)).max()  # the region's strength where no trace of the subject is,
        faint = (weight * (coverage <= (trace / subject_peak).to(weight.device))).max()  # else where a floor is,
        off = torch.where(clear > 0, clear, torch.where(faint > 0, faint, weight.max()))  # else in a feather
    peak = off.max()  # the strongest value where the subject does not reach
    return (weight >= 0.5 * peak).float() if peak > 0 else torch.zeros_like(weight)


def flat_colours(image: torch.Tensor, mask: torch.Tensor, untouched: torch.Tensor | None = None) -> torch.Tensor:
    """B×3: the one colour (0..1) of each B×3×h×w working-size picture's background where it has only one
    (:data:`~phnet.corrections.FLAT_SPREAD`), else NaN. The background is read away from the subject (a pixel
    beside it holds some of the subject's colours at this size), and must be a real share of the picture
    (:data:`~phnet.corrections.FLAT_MIN_SCENE`): a few pixels say nothing. ``untouched`` (B×1×h×w) is read too,
    where given: a feathered edge mixes the subject into pixels well outside its binary mask, and where no trace
    of the mask reaches is what remains of the scene. Nothing is read back to the host."""
    scenes = [torch.nn.functional.max_pool2d(mask.float(), 5, stride=1, padding=2) < 0.5]
    if untouched is not None:
        scenes.append(untouched.to(image.device, torch.bool))
    colour = torch.full(image.shape[:2], float("nan"), device=image.device)
    for scene in reversed(scenes):  # the binary mask's reading first, where both find one colour
        top = torch.where(scene, image.float(), -1.0).amax(dim=(2, 3))
        bottom = torch.where(scene, image.float(), 2.0).amin(dim=(2, 3))
        flat = (top - bottom).abs().amax(dim=1) <= FLAT_SPREAD
        flat &= scene.float().mean(dim=(1, 2, 3)) >= FLAT_MIN_SCENE
        colour = torch.where(flat[:, None], top, colour)
    return colour


def off_canvas(image: torch.Tensor, untouched: torch.Tensor) -> torch.Tensor:
    """1×1×h×w: how far each pixel of a 1×3×h×w working-size picture lies from the colour of its ``untouched``
    part (where no trace of the mask reaches), its largest channel's difference."""
    canvas = torch.where(untouched, image, -1.0).amax(dim=(2, 3), keepdim=True)
    return (image - canvas).abs().amax(dim=1, keepdim=True)


def mixed_from_one_colour(off: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Whether a working-size picture's background, where its mask's ``coverage`` is under half, is the colour
    of its untouched part mixed with the subject by that coverage and no more (``off``: :func:`off_canvas`):
    a feathered cut-out on its canvas is (each pixel c × subject + (1 - c) × canvas lies within c of the
    canvas); a real scene under a wide feather's faint tail, with only its sky or its black bars beyond the
    tail, is not. A 0-dim bool tensor, on the device (nothing read back)."""
    return ((off <= FLAT_SPREAD + 1 / 255 + coverage) | (coverage >= 0.5)).all()


def tail_on_one_colour(off: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Whether what a mask's tail (coverage from 0 to half) holds off its untouched part's colour (by more than
    0.1; ``off``: :func:`off_canvas`) is a rim of the subject, not a scene: under 0.7 of the subject's own
    area. A cut-out's grown, feathered or shrunk mask leaves its thin limbs and its mixed edge there (0.01 to
    0.57 of it), a real scene under a wide feather's tail leaves the scene between the subject and black bars
    beside the picture (0.8 to 2.5). A 0-dim bool tensor, on the device."""
    far = off > FLAT_SPREAD + 1 / 255 + 0.1
    tail = (coverage > 0) & (coverage < 0.5)
    return (far & tail).sum() * 10 < (coverage >= 0.5).sum() * 7
