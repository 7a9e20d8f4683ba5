"""Running the network at its working resolution and applying its result at full resolution.

The network sees a downscaled copy (aspect ratio kept, sides multiples of 8). What comes back is
not upscaled as a picture: we upscale the *change* it made and add that to the full-resolution
composite, inside the mask only, so hair and skin keep their native detail and the background is
untouched. Three ways of carrying the change up are offered; ``benchmarks`` measures them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .choices import METHODS
from .compat import widened
from .imageio.masks import trace_bar
from .tiling import TILE_PIXELS, one_thread, tile_pixels


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """About size² pixels with the input's aspect ratio; both sides multiples of 8."""
    scale = size / math.sqrt(height * width)
    return max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8)


def resize(x: torch.Tensor, shape: tuple[int, int] | torch.Size, mode: str = "bilinear") -> torch.Tensor:
    """``x`` (…×H×W) resized to ``shape`` (height, width) with torch's ``mode``, antialiased when it shrinks; ``x``
    itself when it already has that size."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    if mode in ("nearest", "nearest-exact"):
        return F.interpolate(x, size=shape, mode=mode)
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    if shrinking and shape[1] == 1 < shape[0]:  # torch's antialiased kernel gives every row the first row's
        return resize(x.mT, (1, shape[0]), mode).mT  # value when the output is one pixel wide (2.14, CPU)
    return F.interpolate(x, size=shape, mode=mode, align_corners=False, antialias=shrinking)


def fill_outside(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Extend ``values`` from where ``weight`` > 0 over the rest (push-pull), keeping them where weight = 1.

    Upscaling a correction that drops to zero at the mask edge would fade the subject's rim; filled
    in from the inside, the correction stays whole up to the edge.
    """
    levels = [(values * weight, weight)]
    while max(levels[-1][1].shape[-2:]) > 1:  # down to one cell: a top row of cells with no subject in some
        num, den = levels[-1]                 # would fill them with 0, and that 0 would spread down (a fade)
        kernel = tuple(2 if side > 1 else 1 for side in den.shape[-2:])
        levels.append((F.avg_pool2d(num, kernel, ceil_mode=True), F.avg_pool2d(den, kernel, ceil_mode=True)))
    num, den = levels[-1]
    filled = num / den.clamp(min=1e-8)
    for num, den in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=num.shape[-2:], mode="bilinear", align_corners=False)
        cover = den.clamp(0, 1)
        filled = cover * (num / den.clamp(min=1e-8)) + (1 - cover) * coarse
    return filled


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean of each pixel's (2·radius + 1)² neighbourhood, the borders replicated outward."""
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)


def local_affine(
    source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, radius: int, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel a, b with target ≈ a·source + b in each (2r+1)² window, weighted (guided-filter fit). The gain
    is pulled toward 1, not 0: where the window is flat at this size the fit is the local change (b), and the
    full-resolution detail the window cannot see is kept."""
    w = box_mean(weight, radius).clamp(min=1e-6)
    mean_s = box_mean(source * weight, radius) / w
    mean_t = box_mean(target * weight, radius) / w
    cov = box_mean(source * target * weight, radius) / w - mean_s * mean_t
    var = box_mean(source * source * weight, radius) / w - mean_s * mean_s
    a = (cov + eps) / (var + eps)
    b = mean_t - a * mean_s
    return box_mean(a, radius), box_mean(b, radius)


MIN_COVERAGE = 0.25  # see unmix: a working pixel's change is multiplied by at most 4


def subject_coverage(mask: torch.Tensor, peak: float, shape: tuple[int, int],
                     own: torch.Tensor | None = None) -> torch.Tensor:
    """How much of each pixel at the working ``shape`` (1×1×h×w, 0..1) the subject covers: where its H×W mask
    (any dtype, ``peak`` = full) holds more than a trace (:func:`~phnet.imageio.masks.trace_bar`: 1/64 of its
    strongest value, and at least 1.5/255 of full), soft or not. A mask's own softness (a feather, a mask of 0.4)
    is for the full-resolution blend to apply, once: read as coverage, it was undone. ``own``: the mask's own
    ``downscale(mask[..., None], peak, shape)``, returned for a uint8 mask of 0 and 255 alone (it is then that
    map: one full-size resize fewer)."""
    wide = widened(mask)
    strongest = wide.amax()
    if wide.device.type == "cpu" and not wide.is_floating_point():  # a whole-number bar: compared in the mask's dtype
        bar = math.floor(trace_bar(int(strongest), peak))  # (a float one took as long again, 6 ms)
    else:  # nothing read back from a GPU
        bar = trace_bar(strongest.float(), peak)
    if wide.device.type == "cpu" and wide.dtype == torch.uint8:  # torch.gt is slow on uint8 (4K: 12 ms against 3)
        solid = wide.clamp(bar, bar + 1).sub_(bar).mul_(255)  # bar ≤ 3: 0 or 1, then 0 or 255
        if own is not None and peak == 255 and _same_bytes(solid, wide):
            return own
    else:
        solid = torch.gt(wide, bar).view(torch.uint8).mul_(255)
    return downscale(solid[..., None], 255.0, shape)


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a contiguous uint8 ``a`` equals ``b`` of its shape, compared 8 bytes at a time where ``b`` allows
    (torch.equal on uint8 took 5 times as long); False where it does not."""
    if not b.is_contiguous() or b.numel() % 8 or b.storage_offset() % 8:
        return False
    return torch.equal(a.view(-1).view(torch.int64), b.view(-1).view(torch.int64))


def unmix(change: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """A working-size change (B×3×h×w) as the subject's own: divided by how much of each pixel the subject covers
    (``coverage``, B×1×h×w, 0..1). A pixel the subject covers in part mixes its colours with the background's,
    and its change is that part of the subject's: carried up as it was, the subject's rim and a subject thinner
    than a working pixel got only that part of the correction at full resolution. The floor,
    ``MIN_COVERAGE``, keeps the network's noise on a pixel the subject barely covers from being blown up; a pixel
    it does not cover at all (a mask's traces alone: a faint part beside a speck 64 times stronger) is left as
    it is."""
    return torch.where(coverage > 0, change / coverage.clamp(min=MIN_COVERAGE), change)


def subject_change(prediction_low: torch.Tensor, composite_low: torch.Tensor, mask_low: torch.Tensor,
                   coverage: torch.Tensor | None = None) -> torch.Tensor:
    """The working-size change, the subject's own where ``coverage`` is given (see :func:`unmix`), filled outward
    from the subject (:func:`fill_outside`): what method "correction" carries to full resolution."""
    change = prediction_low - composite_low
    return fill_outside(change if coverage is None else unmix(change, coverage), mask_low)


def remix(change: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """:func:`unmix` undone: the subject's own change as the working pixels show it (what the network proposed)."""
    return torch.where(coverage > 0, change * coverage.clamp(min=MIN_COVERAGE), change)


GUIDED_MIN_PIXELS = 64  # working-size subject pixels a gain is fitted on; fewer lean to the plain change


def guided_fit(composite_low: torch.Tensor, prediction_low: torch.Tensor, mask_low: torch.Tensor,
               coverage: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Method "guided"'s per-pixel gain a and offset b (1×3×h×w, filled outward from the subject), fitted to the
    subject's own change where ``coverage`` is given (see :func:`unmix`). A subject of
    a few working pixels (a wire, a subject that all but vanishes there) holds too few colours to fit a gain to.
    Below ``GUIDED_MIN_PIXELS`` it leans, by the share it lacks, to gain 1 and the subject's mean change."""
    if coverage is not None:
        prediction_low = composite_low + unmix(prediction_low - composite_low, coverage)
    radius = max(1, round(min(composite_low.shape[-2:]) / 64))
    a, b = local_affine(composite_low, prediction_low, mask_low, radius)
    pixels = mask_low.sum(dim=(-2, -1), keepdim=True)
    share = ((pixels - 1) / (GUIDED_MIN_PIXELS - 1)).clamp(0.0, 1.0)  # one pixel: the plain change alone
    change = ((prediction_low - composite_low) * mask_low).sum(dim=(-2, -1), keepdim=True) / pixels.clamp(min=1e-6)
    a = share * a + (1 - share)
    b = share * b + (1 - share) * change
    return fill_outside(a, mask_low), fill_outside(b, mask_low)


def apply_full_resolution(
    composite: torch.Tensor,
    mask: torch.Tensor,
    composite_low: torch.Tensor,
    prediction_low: torch.Tensor,
    mask_low: torch.Tensor,
    method: str = "correction",
    coverage: torch.Tensor | None = None,
) -> torch.Tensor:
    """The full-resolution harmonized foreground (to be blended with ``mask`` by the caller). ``coverage``: how much
    of each working pixel the subject covers, to carry up the subject's own change (see :func:`unmix`)."""
    shape = composite.shape[-2:]
    if method == "resize":  # the prediction itself, upscaled: loses the subject's fine detail
        return resize(prediction_low, shape, "bicubic")
    if method == "correction":
        delta = subject_change(prediction_low, composite_low, mask_low, coverage)
        return composite + resize(delta, shape, "bilinear")
    if method == "guided":
        a, b = guided_fit(composite_low, prediction_low, mask_low, coverage)
        return resize(a, shape, "bilinear") * composite + resize(b, shape, "bilinear")
    raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")


# --------------------------------------------------------------------------------------------------
# The full-resolution step without full-size float copies.
#
# A 4K photo is 25 MB as uint8 and 100 MB as float32; every full-size float temporary costs a pass
# over memory plus the page faults of fresh allocations, which is what made the full-resolution step
# cost more than the network. Here the pixels stay in the caller's dtype: the working-resolution copy
# is taken straight from them (uint8 antialiased resize, or a float one band by band for other dtypes),
# and the change is applied in tiles of rows of the mask's bounding box, each tile converted to float,
# mapped, blended and written back in the caller's dtype. Pixels outside the mask are never rewritten,
# so they stay bit-identical.
# --------------------------------------------------------------------------------------------------

def to_uint8(pixels: torch.Tensor, peak: float) -> torch.Tensor:
    """H×W×C pixels of any dtype → uint8 (rounded), converted in bands so no full-size float copy exists."""
    if pixels.dtype == torch.uint8 and peak == 255:
        return pixels
    out = torch.empty(pixels.shape, dtype=torch.uint8, device=pixels.device)
    rows = max(1, TILE_PIXELS // max(1, pixels.shape[1]))
    with one_thread(pixels.device):
        for r0 in range(0, pixels.shape[0], rows):
            out[r0 : r0 + rows] = torch.mul(pixels[r0 : r0 + rows], 255.0 / peak).clamp_(0, 255).round_()
    return out


def unit_float(pixels: torch.Tensor, peak: float) -> torch.Tensor:
    """H×W×C pixels (``peak`` = full intensity) → a new 1×C×H×W float32 copy in [0, 1]."""
    return pixels.permute(2, 0, 1)[None].to(torch.float32, copy=True).div_(peak).clamp_(0, 1)


def downscale(pixels: torch.Tensor, peak: float, shape: tuple[int, int]) -> torch.Tensor:
    """H×W×C pixels (any dtype, ``peak`` = full intensity) → 1×C×h×w float32 in [0, 1] at ``shape``.

    Small images are resized as floats, exactly as ``resize`` does. Larger ones (over 4× the working
    area) in uint8 take torch's uint8 antialiased kernel on the CPU, which reads the interleaved H×W×C
    memory as it is and is ~20× faster than the float one. Other dtypes (16-bit, float) are never
    rounded to 8 bits: they, and pictures on other devices (CUDA), are resized as floats, in bands
    (``downscale_in_bands``), as exactly as small ones.
    """
    if pixels.shape[0] * pixels.shape[1] <= 4 * shape[0] * shape[1]:
        return resize(unit_float(pixels, peak), shape).contiguous()
    if pixels.device.type != "cpu" or pixels.dtype != torch.uint8:  # the uint8 kernel: CPU only, 8 bits only
        with one_thread(pixels.device):  # hundreds of band-sized ops: 14 s against 0.4 s for 8K on 2 busy cores
            return downscale_in_bands(pixels, peak, shape, tile_pixels(pixels.device))
    small = to_uint8(pixels, peak)
    grouped = 1
    if small.shape[2] == 1:  # one channel takes a slow generic kernel: read k neighbours as k channels
        grouped = next((k for k in (3, 4) if small.shape[1] % k == 0 and small.shape[1] // k >= shape[1]), 1)
        small = small.reshape(small.shape[0], small.shape[1] // grouped, grouped)
    view = small.permute(2, 0, 1)[None]  # channels_last: no copy
    low = F.interpolate(view, size=shape, mode="bilinear", align_corners=False, antialias=True)
    low = low.to(torch.float32).div_(255.0)
    if grouped > 1:  # a k-pixel box average before the same antialiased resize: as good for a coverage map
        low = low.mean(dim=1, keepdim=True)
    return low.contiguous()


def downscale_in_bands(
    pixels: torch.Tensor, peak: float, shape: tuple[int, int], pixels_per_band: int
) -> torch.Tensor:
    """``downscale``'s float resize without a full-size float copy: torch's antialiased resize is
    separable, so the columns are resized one band of ``pixels_per_band`` pixels at a time and the
    rows once, on the narrow result. Equal to resizing the whole picture as floats."""
    height, width = pixels.shape[:2]
    antialias = shape[0] < height or shape[1] < width
    rows = max(1, pixels_per_band // width)
    bands = []
    for r0 in range(0, height, rows):
        band = unit_float(pixels[r0 : r0 + rows], peak)
        bands.append(F.interpolate(band, size=(band.shape[-2], shape[1]), mode="bilinear", align_corners=False,
                                   antialias=antialias))
    narrow = torch.cat(bands, dim=-2)
    return F.interpolate(narrow, size=shape, mode="bilinear", align_corners=False, antialias=antialias).contiguous()


def _linear_taps(out_size: int, in_size: int, start: int, stop: int, device: torch.device):
    """Source indices and weights of outputs start..stop of a bilinear resize (align_corners=False)."""
    scale = in_size / out_size
    src = ((torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0)
    i0 = src.long().clamp_(max=in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    return i0, i1, (src - i0).clamp_(0, 1)


def _cubic_taps(out_size: int, in_size: int, start: int, stop: int, device: torch.device):
    """The four source indices and weights of outputs start..stop of torch's bicubic resize (align_corners=False,
    no antialiasing: Keys' kernel with a = −0.75, sources clamped at the borders)."""
    scale = in_size / out_size
    src = (torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5) * scale - 0.5
    floor = src.floor()
    t = src - floor
    a = -0.75
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731  1 < |x| < 2
    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    first = floor.long()
    indices = tuple((first + k).clamp_(0, in_size - 1) for k in (-1, 0, 1, 2))
    return indices, weights


class RowUpsampler:
    """Rows of a low-resolution H'×W'×C map resized to H×W, computed a band at a time.

    Bilinear and bicubic upscaling (what ``resize`` does for a larger target) are separable: the horizontal
    pass is done once on the few low-resolution rows, the vertical pass per band of output rows. Shrinking is
    done whole; it only occurs for pictures smaller than the working size.
    """

    def __init__(self, low: torch.Tensor, shape: tuple[int, int], columns: tuple[int, int], mode: str = "bilinear"):
        height, width = shape
        c0, c1 = columns
        self.mode = mode
        self.banded = mode in ("bilinear", "bicubic") and height >= low.shape[0] and width >= low.shape[1]
        if self.banded and mode == "bilinear":
            i0, i1, f = _linear_taps(width, low.shape[1], c0, c1, low.device)
            rows = torch.lerp(low[:, i0], low[:, i1], f[None, :, None])  # H'×(c1−c0)×C
            self.rows_low = rows
            self.steps = torch.cat([rows[1:] - rows[:-1], torch.zeros_like(rows[:1])])  # to the next row
            self.taps = _linear_taps(height, low.shape[0], 0, height, low.device)
        elif self.banded:
            indices, weights = _cubic_taps(width, low.shape[1], c0, c1, low.device)
            self.rows_low = sum(low[:, i] * w[None, :, None] for i, w in zip(indices, weights))
            self.taps = _cubic_taps(height, low.shape[0], 0, height, low.device)
        else:
            full = resize(low.permute(2, 0, 1)[None], shape, mode)[0].permute(1, 2, 0)
            self.full = full[:, c0:c1]

    def rows(self, r0: int, r1: int) -> torch.Tensor:
        """Output rows r0..r1 of the box's columns: (r1 − r0)×(c1 − c0)×C."""
        if not self.banded:
            return self.full[r0:r1]
        if self.mode == "bicubic":
            indices, weights = self.taps
            out = self.rows_low.index_select(0, indices[0][r0:r1]).mul_(weights[0][r0:r1, None, None])
            for i, w in zip(indices[1:], weights[1:]):
                out.addcmul_(self.rows_low.index_select(0, i[r0:r1]), w[r0:r1, None, None])
            return out
        i0, _, f = (t[r0:r1] for t in self.taps)
        return self.rows_low.index_select(0, i0).addcmul_(self.steps.index_select(0, i0), f[:, None, None])


def bounding_box(weight: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1) of the nonzero entries of an H×W map (end exclusive), None if all zero.

    Read back from the map's device once: on a GPU each read makes the host wait for the queued work."""
    rows, cols = (weight.amax(dim=1) > 0).to(torch.uint8), (weight.amax(dim=0) > 0).to(torch.uint8)
    found, r0, r_last, c0, c_last = torch.stack([
        rows.amax().long(), rows.argmax(), rows.shape[0] - 1 - rows.flip(0).argmax(), cols.argmax(),
        cols.shape[0] - 1 - cols.flip(0).argmax(),
    ]).tolist()
    return (r0, r_last + 1, c0, c_last + 1) if found else None


def apply_in_tiles(
    source: torch.Tensor,
    out: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: float,
    peak: float,
    colour_map: Callable[[torch.Tensor, int, int], torch.Tensor],
    box: tuple[int, int, int, int],
    pixels_per_tile: int | None = None,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """``out = source + w·(clamp(colour_map(source)) − source)`` inside ``box``, tile by tile
    (``pixels_per_tile`` each; by default what suits the device, see ``tile_pixels``). ``out`` may hold
    only part of the picture: the rows and columns from ``origin`` (its top-left pixel in ``source``) on.

    ``source`` and ``out`` are H×W×3 views in the caller's dtype (``peak`` = full intensity),
    ``weight`` is the H×W mask in its own dtype, scaled by ``weight_scale`` (strength / the mask's
    peak). ``colour_map(x, r0, r1)`` gets the float32 pixels of rows r0..r1 of the box's columns
    (0..peak units) and returns the harmonized pixels. Where the weight is 0 the result is the
    source pixel itself, bit for bit.
    """
    r_start, r_stop, c0, c1 = box
    rows = max(1, (pixels_per_tile or tile_pixels(source.device)) // (c1 - c0))
    integer = not source.dtype.is_floating_point
    with one_thread(source.device):
        for r0 in range(r_start, r_stop, rows):
            r1 = min(r0 + rows, r_stop)
            tile = source[r0:r1, c0:c1]
            x = tile.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
            if not integer:
                x.clamp_(0, peak)
            y = colour_map(x, r0, r1).clamp_(0, peak)
            w = weight[r0:r1, c0:c1, None].to(torch.float32, copy=weight_scale != 1.0)  # the caller's mask stays
            if weight_scale != 1.0:
                w.mul_(weight_scale)
            y.sub_(x).mul_(w).add_(x)  # exactly x where w = 0 (lerp would be slower: w broadcasts over channels)
            if integer:
                y.round_()
            else:  # floats were clamped (and float64 rounded): outside the mask keep the caller's own values
                y = torch.where(w > 0, y, tile)
            out[r0 - origin[0] : r1 - origin[0], c0 - origin[1] : c1 - origin[1]] = y


def lift(
    method: str,
    composite_low: torch.Tensor,
    prediction_low: torch.Tensor,
    mask_low: torch.Tensor,
    shape: tuple[int, int],
    box: tuple[int, int, int, int],
    peak: float,
    coverage: torch.Tensor | None = None,
) -> Callable[[torch.Tensor, int, int], torch.Tensor]:
    """``apply_full_resolution`` as a colour map for ``apply_in_tiles``: rows r0..r1 of the box's
    columns, H×W×3 float pixels in 0..peak units → the harmonized pixels."""
    columns = (box[2], box[3])
    if method == "correction":
        return lift_change(subject_change(prediction_low, composite_low, mask_low, coverage), shape, box, peak)
    if method == "guided":
        a, b = guided_fit(composite_low, prediction_low, mask_low, coverage)
        gain, offset = RowUpsampler(_hwc(a), shape, columns), RowUpsampler(_hwc(b), shape, columns)
        return lambda x, r0, r1: torch.addcmul(offset.rows(r0, r1) * peak, gain.rows(r0, r1), x)
    if method == "resize":
        up = RowUpsampler(_hwc(prediction_low), shape, columns, mode="bicubic")
        return lambda x, r0, r1: up.rows(r0, r1) * peak
    raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")


def lift_change(change_low: torch.Tensor, shape: tuple[int, int], box: tuple[int, int, int, int],
                peak: float) -> Callable[[torch.Tensor, int, int], torch.Tensor]:
    """Method "correction" as a colour map for ``apply_in_tiles``, from its 1×3×h×w change at the working
    resolution already filled outward from the subject (``fill_outside``): the change, upscaled, is added."""
    delta = RowUpsampler(_hwc(change_low), shape, (box[2], box[3]))

    def colour_map(x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        rows = delta.rows(r0, r1)
        return torch.add(x, rows, alpha=peak, out=rows)  # written over the rows: one tile-sized copy fewer

    return colour_map


def _hwc(t: torch.Tensor) -> torch.Tensor:
    return t[0].permute(1, 2, 0).to(torch.float32).contiguous()
