"""Decoding pictures: files and PIL images → numpy arrays, upright by EXIF, 16-bit grey kept at 16 bits.

The rules are in :mod:`phnet.imageio`'s docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # files read_image is meant for



def native(array: np.ndarray) -> np.ndarray:
    """``array`` C-contiguous and in this machine's byte order: torch reads no other (a big-endian array,
    from FITS or some TIFF readers, is converted rather than refused)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))

def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file: uint8, or uint16 for 16-bit files (grey, and PNG's 48/64-bit colour), H×W,
    H×W×3 or H×W×4, upright by EXIF."""
    image = open_picture(path)
    if image.info.get(_RAWMODE) in _LOW_BYTES:
        return _sixteen_bit_colour(path, image)
    return pil_image_pixels(image, str(path), allow_16bit=True)


# PNG's 16-bit colour: PIL decodes it to 8 bits (the high byte of each sample). Decoding it a second time
# as little-endian data gives the other byte of each sample; the two make the 16-bit value.
_RAWMODE = "phnet_rawmode"
_LOW_BYTES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}


def _sixteen_bit_colour(path: str | Path, high) -> np.ndarray:
    from PIL import Image

    low = Image.open(path)
    low.tile = [tile._replace(args=_LOW_BYTES[tile.args]) for tile in low.tile]
    low.load()
    wide = (np.asarray(_upright(high), dtype=np.uint16) << 8) | np.asarray(_upright(low), dtype=np.uint16)
    return np.ascontiguousarray(wide)


def open_picture(path: str | Path):
    """A loaded PIL image of one frame; ``FileNotFoundError`` / ``ValueError`` naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        if len(image.tile) >= 1 and all(isinstance(t.args, str) and t.args in _LOW_BYTES for t in image.tile):
            image.info[_RAWMODE] = image.tile[0].args
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
    _single_frame(image, str(path))
    return image


def _single_frame(image, name: str) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise ValueError(
            f"{name} is animated ({frames} frames); only its first frame would be used. Save the frames as "
            "separate pictures in a folder and harmonize them as a clip: phnet harmonize frames/ masks/ -o out/ "
            "--temporal (in ComfyUI, a video loader's IMAGE batch into PHNet Harmonize Frames)"
        )


def is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _upright(image):
    """Apply the EXIF orientation (a no-op without one)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        return image
    if orientation in (None, 1):
        return image
    from PIL import ImageOps

    return ImageOps.exif_transpose(image)


_GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _grey_16(image, name: str) -> np.ndarray:
    """16/32-bit integer grey → uint16 (PIL opens 16-bit PNG/TIFF as I;16 or I)."""
    array = np.array(image)
    if array.dtype == np.uint16:
        return array.astype(np.uint16, copy=False)  # native byte order
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError(f"{name} is a 32-bit grey image with values beyond 16 bits; save it as 8 or 16 bits")
    return array.astype(np.uint16)


def pil_image_pixels(image, name: str, allow_16bit: bool) -> np.ndarray:
    """An image's pixels: uint8 H×W / H×W×3 / H×W×4, uint16 (16-bit grey) or float32 (mode F)."""
    _single_frame(image, name)
    image = _upright(image)
    mode = image.mode
    if mode in _GREY_16 or mode == "F":
        if not allow_16bit:
            raise ValueError(
                f"the {name} is a PIL {mode!r} picture (16/32-bit grey), which has no RGB counterpart in PIL to "
                "return the result in; pass a numpy array instead, e.g. phnet.imageio.read_image(path) (uint16)"
            )
        return np.asarray(image, dtype=np.float32) if mode == "F" else _grey_16(image, name)
    if (mode == "P" and "transparency" in image.info) or mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    return np.array(image)


def pil_mask_pixels(image) -> np.ndarray:
    """A mask's one channel: the alpha when it is real, else the luminance (bool / uint8 / uint16 / float32)."""
    _single_frame(image, "mask")
    image = _upright(image)
    mode = image.mode
    if mode in _GREY_16:
        return _grey_16(image, "mask")
    if mode in ("L", "1", "F"):
        return np.array(image)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA") if mode in ("P", "PA") else image
        alpha = np.array(rgba.getchannel("A"))
        if alpha.min() < 255:  # a real alpha; an opaque one carries no mask, the picture does
            return alpha
        return np.array(rgba.convert("RGB").convert("L"))
    return np.array(image.convert("L"))
