"""The official tester's steps, reproduced for mode "official": the picture squashed to the square as it reads
it (PIL's 8-bit bilinear), the mask sampled by PIL's nearest (a soft one dithered to 1 bit first), and the
blended square resized back bicubic, never antialiased. :func:`official_pixels` (the caller's own pixels) and
:func:`official_float` (a float picture) run them with a Harmonizer's network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from .corrections import Correction
from .fullres import downscale_in_bands, resize, unit_float
from .options import threshold_for
from .pipeline import low_precision_failed, run_network
from .tiling import tile_pixels

if TYPE_CHECKING:
    from .harmonizer import Harmonizer
else:  # phnet.harmonizer imports these steps: at run time (typing.get_type_hints) the hint reads Any
    Harmonizer = Any

__all__ = ["as_official_tester_reads", "official_square", "official_back", "official_mask_square", "dithered",
           "official_float", "official_pixels", "official_picture", "official_network"]


def as_official_tester_reads(image: Any) -> Any:
    """A PIL picture in a mode other than RGB, RGBA or grey (P, LA, CMYK...) as 8-bit RGB (RGBA where it has
    transparency), as the official tester's ``convert("RGB")`` reads it: converted to floats first, it was resized
    to the square otherwise than the tester's 8-bit PIL resize (a level apart)."""
    from .imageio.decode import is_pil, unpremultiplied

    if not is_pil(image) or image.mode in ("RGB", "RGBA", "L", "I;16", "I;16B", "I;16L", "I", "F"):
        return image
    alpha = image.mode in ("LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info)
    return unpremultiplied(image).convert("RGBA" if alpha else "RGB")


def official_square(picture: torch.Tensor, peak: float, size: int) -> torch.Tensor:
    """One H×W×C picture as the official tester squashes it: 1×3×size×size float32 in [0, 1]. An 8-bit
    picture on the host goes through PIL's bilinear resize, as the tester reads it (torch's own 8-bit kernel
    differs from PIL's by a level in a fifth of the values, which the network turns into up to 3/255); other
    pictures are resized as floats, as the float pipeline does, a band of rows at a time."""
    if picture.dtype == torch.uint8 and picture.device.type == "cpu":
        import numpy as np
        from PIL import Image

        rgb = np.ascontiguousarray(picture[..., :3].numpy())
        square = np.array(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))
        return torch.from_numpy(square).permute(2, 0, 1)[None].float().div_(255).contiguous()
    return downscale_in_bands(picture[..., :3], peak, (size, size), tile_pixels(picture.device))


def official_back(square: torch.Tensor, shape: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The whole blended 1×3×s×s square resized back to the picture's ``shape``, as the official tester's tensor
    resize under its torchvision 0.15 does: bicubic, never antialiased (it matters where the picture is smaller
    than the square). Float, not clamped."""
    return torch.nn.functional.interpolate(square, size=tuple(shape), mode="bicubic", align_corners=False,
                                           antialias=False)


def official_mask_square(mask: torch.Tensor, size: int) -> torch.Tensor:
    """A binary 1×1×H×W mask (any dtype) sampled to the square as the tester's nearest resize does: 1×1×s×s
    float. On the host through PIL itself: its nearest rounds a source position that lands on a whole number
    down, where torch's "nearest-exact" does not, so at a size such as 240 whole rows of the subject's edge
    moved by one (on a device, torch's)."""
    if mask.device.type != "cpu":
        return (resize(mask, (size, size), "nearest-exact").float() >= 0.5).float()
    import numpy as np
    from PIL import Image

    bits = ((mask[0, 0].float() >= 0.5).to(torch.uint8) * 255).numpy()
    square = np.asarray(Image.fromarray(bits).resize((size, size), Image.Resampling.NEAREST)) >= 128
    return torch.from_numpy(square)[None, None].float()


def dithered(mask: torch.Tensor) -> torch.Tensor:
    """A 1×1×H×W soft mask as PIL's ``convert("1")`` makes it: 8-bit levels, Floyd-Steinberg dithered to 0/1."""
    import numpy as np
    from PIL import Image

    levels = (mask[0, 0] * 255).round().to(torch.uint8).cpu().numpy()
    bits = np.asarray(Image.fromarray(levels).convert("1"), dtype=np.float32)
    return torch.from_numpy(bits)[None, None].to(mask.device)


def official_float(harmonizer: Harmonizer, image: torch.Tensor, mask: torch.Tensor, size: int,
                   strength: float = 1.0, threshold: float | None = None) -> tuple[torch.Tensor, Correction]:
    """Square resize (bilinear, antialiased like PIL), binary nearest mask, blend, bicubic back: one B=1 float
    picture and its mask. A picture left unchanged is not resampled: it comes back as it was."""
    home = image.device
    image = image.to(harmonizer.device, torch.float32)
    mask = mask.to(harmonizer.device, torch.float32)
    if bool(((mask > 0) & (mask < 1)).any()):
        mask = dithered(mask)  # the official tester reads a soft mask as 1 bit: PIL's convert("1")
    image_sq = resize(image, (size, size), "bilinear")
    blended, correction = official_network(harmonizer, image_sq, official_mask_square(mask, size), strength, threshold)
    if correction.unchanged:
        return image.to(home), correction
    result = official_back(blended, image.shape[-2:]).clamp_(0, 1).to(home)
    if strength < 1:
        result = image.to(home) + strength * (result - image.to(home))
    return result, correction


@torch.inference_mode()
def official_pixels(harmonizer: Harmonizer, pixels: torch.Tensor, peak: float, masks: torch.Tensor,
                    mask_peak: float, out: torch.Tensor, strength: float, size: int,
                    progress: Callable[[int, int], None] | None, threshold: float | None) -> list[Correction]:
    """:func:`official_float` on the caller's own B×H×W×C pixels (any dtype, ``peak`` = full intensity), written
    into ``out`` in their dtype, one picture at a time, and as in the official tester only the bicubic result
    is float at full size (see :func:`official_square` for the square)."""
    harmonizer._check_weights()  # mode "official" runs the model itself: in the Harmonizer's precision, in eval mode
    corrections = []
    for i in range(pixels.shape[0]):
        if pixels.shape[0] > 1 and not bool(masks[i].any()):  # no subject in this picture of the batch
            corrections.append(Correction.no_subject(threshold_for(harmonizer.config, threshold), float(strength)))
        else:
            corrections.append(official_picture(harmonizer, pixels[i], peak, masks[i], mask_peak, out[i], strength,
                                                size, threshold))
        if progress is not None:
            progress(i + 1, pixels.shape[0])
    return corrections


def official_picture(harmonizer: Harmonizer, picture: torch.Tensor, peak: float, mask: torch.Tensor,
                     mask_peak: float, out: torch.Tensor, strength: float, size: int,
                     threshold: float | None) -> Correction:
    """One H×W×C picture of :func:`official_pixels` into ``out`` (a copy of it, left so when unchanged)."""
    image_sq = official_square(picture, peak, size).to(harmonizer.device)  # only the squares move
    if bool(((mask > 0) & (mask < mask_peak)).any()):
        mask = dithered(mask[None, None].float() / mask_peak)
    else:  # binary: nearest sampling reads it as it is (uint8 on the CPU, no float copy)
        mask = (mask > 0)[None, None].to(torch.uint8 if mask.device.type == "cpu" else torch.float32)
    blended, correction = official_network(harmonizer, image_sq, official_mask_square(mask, size).to(harmonizer.device),
                                           strength, threshold)
    if correction.unchanged:  # not resampled
        return correction
    result = official_back(blended, picture.shape[:2]).clamp_(0, 1)
    if strength < 1:
        base = unit_float(picture[..., :3].to(harmonizer.device), peak)
        result = base.add_(result.sub_(base).mul_(strength))
    if peak != 1.0:
        result = result.mul_(peak).round_()
    out[..., :3] = result[0].permute(1, 2, 0).to(out.dtype).to(out.device)
    return correction


def official_network(harmonizer: Harmonizer, image_sq: torch.Tensor, mask_sq: torch.Tensor, strength: float,
                     threshold: float | None) -> tuple[torch.Tensor, Correction]:
    """The network on the 1×3×s×s square and its binary mask, blended there (see :func:`official_back`)."""
    threshold = threshold_for(harmonizer.config, threshold)
    if not bool(mask_sq.any()):  # nearest sampling stepped over a small or thin subject: nothing to match
        return image_sq, Correction(0.0, threshold, 0.0, float(strength), empty_mask=True, lost=True)

    def network(x: torch.Tensor, m: torch.Tensor) -> Any:
        return harmonizer.model.estimate(x, m, threshold=threshold)

    # the official tester's fp32, unless asked otherwise
    pred, correction_size, kept = run_network(harmonizer, network, image_sq, mask_sq, exact=True)
    if harmonizer.dtype != torch.float32 and not bool(torch.isfinite(pred).all()):
        low_precision_failed(harmonizer.dtype)
        pred, correction_size, kept = run_network(harmonizer, network, image_sq, mask_sq, fp32=True)
    if harmonizer.config.output == "transform":  # the official pipeline has no transform head: apply it here
        pred = harmonizer.model.transform_output(image_sq, pred)
    blended = pred * mask_sq + image_sq * (1 - mask_sq)
    return blended, Correction(float(correction_size[0]), threshold, float(kept[0]), float(strength))
