"""The official tester's steps, reproduced for mode "official": the picture squashed to the square as it reads
it (PIL's 8-bit bilinear), the mask sampled by PIL's nearest (a soft one dithered to 1 bit first), and the
blended square resized back bicubic, never antialiased."""

from __future__ import annotations

from typing import Any

import torch

from .fullres import downscale_in_bands, resize
from .tiling import tile_pixels


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
        square = np.array(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
        return torch.from_numpy(square).permute(2, 0, 1)[None].float().div_(255).contiguous()
    return downscale_in_bands(picture[..., :3], peak, (size, size), tile_pixels(picture.device))


def official_back(square: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
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
    square = np.asarray(Image.fromarray(bits).resize((size, size), Image.NEAREST)) >= 128
    return torch.from_numpy(square)[None, None].float()


def dithered(mask: torch.Tensor) -> torch.Tensor:
    """A 1×1×H×W soft mask as PIL's ``convert("1")`` makes it: 8-bit levels, Floyd-Steinberg dithered to 0/1."""
    import numpy as np
    from PIL import Image

    levels = (mask[0, 0] * 255).round().to(torch.uint8).cpu().numpy()
    bits = np.asarray(Image.fromarray(levels).convert("1"), dtype=np.float32)
    return torch.from_numpy(bits)[None, None].to(mask.device)
