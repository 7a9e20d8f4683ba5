"""Writing results: whole or not at all, at 8 bits, with what of the composite's metadata the format holds."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import picture_writer, write_atomic
from ..corrections import Correction
from ..imageio.metadata import JPEG_XMP


FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF"}
# PNG at zlib level 4, as ComfyUI saves: a third of level 6's time (0.24 s against 0.72 s at 1080p), 5 % larger
_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 95, "subsampling": 0},
                                        "WEBP": {"lossless": True, "exact": True}, "PNG": {"compress_level": 4}}
NO_ALPHA = ("JPEG", "BMP")  # PIL writes BMP's alpha but reads it back (as most viewers do) as RGB


def eight_bit(array: np.ndarray) -> np.ndarray:
    """A result (uint16, or float 0..1) at 8 bits, converted in bands: a whole-picture float64 quotient cost
    1.5 GB at 8K."""
    import torch

    from ..fullres import to_uint8

    if array.dtype == np.uint8:
        return array
    peak = 65535.0 if array.dtype == np.uint16 else 1.0
    return to_uint8(torch.from_numpy(np.ascontiguousarray(array)), peak).numpy()


def save_result(result: np.ndarray, target: Path, keep: dict[str, Any]) -> list[str]:
    """:func:`_write` of an array, at 8 bits per channel."""
    from PIL import Image

    result = eight_bit(result)
    if result.ndim == 3 and result.shape[-1] == 4 and FORMATS[target.suffix.lower()] in NO_ALPHA:
        if int(result[..., 3].min()) < 255:  # (transparent_into_no_alpha refuses such a composite before the work)
            raise ValueError(f"the result has transparent pixels, which {target.name} cannot hold; write it as .png, "
                             ".webp or .tif")
        result = result[..., :3]
    return _write(Image.fromarray(result), target, keep)


JPEG_EXIF_BYTES = 65533  # one APP1 segment, less its "Exif\0\0" header: Pillow refuses more after the work
JPEG_XMP_BYTES = 65504  # one APP1 segment, less the XMP namespace that heads it
XMP_KEY = "XML:com.adobe.xmp"  # a PNG's XMP: an iTXt chunk of this name


def _xmp_text(data: bytes) -> str | None:
    """An XMP packet's bytes as text for a PNG's iTXt chunk (UTF-8), read by its byte-order mark; None if they
    are no text."""
    for mark, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                        (b"\xfe\xff", "utf-16")):
        if data.startswith(mark):
            break
    else:  # no mark first (it may stand in the packet's begin="…"): told by where the first '<' has its zeros
        codec = {b"<\x00\x00\x00": "utf-32-le", b"\x00\x00\x00<": "utf-32-be"}.get(data[:4]) or \
            {b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}.get(data[:2], "utf-8")
    try:
        text = data.decode(codec).lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _describes_srgb(colour: dict) -> bool:
    """Whether a PNG's colour chunks say sRGB, as a file without them is read: an sRGB chunk, or a gamma of
    1/2.2 with sRGB's primaries or none given."""
    if "srgb" in colour:
        return True
    gamma_ok = abs(float(colour.get("gamma", 0.45455)) - 0.45455) < 0.001
    primaries = colour.get("chromaticity")
    srgb = (0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06)
    return gamma_ok and (primaries is None or all(abs(float(a) - b) < 0.002 for a, b in zip(primaries, srgb)))


def _pillow_writes_jpeg_xmp() -> bool:
    import PIL

    return int(PIL.__version__.split(".")[0]) >= 11


def _write(picture, target: Path, keep: dict[str, Any]) -> list[str]:
    """Save a PIL picture to ``target`` whole or not at all, with what of ``keep`` (see ``read_picture``) its
    format holds and what still describes it: an ICC profile only where it describes the picture's colours (not
    a grey or CMYK one on RGB), PNG text in a PNG. Returns what was left out, a phrase each."""
    fmt = FORMATS[target.suffix.lower()]
    options, left = dict(_OPTIONS.get(fmt, {})), []
    profile = keep.get("icc_profile")
    if profile:
        space = b"GRAY" if picture.mode in ("L", "LA") else b"RGB "
        kind = profile[16:20].decode("ascii", "replace").strip()
        if len(profile) < 128 or profile[36:40] != b"acsp":  # an ICC profile's header and signature
            left.append("the colour profile, which is damaged (no ICC profile's header)")
        elif fmt == "BMP":
            left.append(f"the {kind} colour profile, which BMP cannot hold")
        elif profile[16:20] != space:
            left.append(f"the {kind} colour profile, which does not describe the {picture.mode} result")
        else:
            options["icc_profile"] = profile
    if keep.get("exif"):
        if fmt == "BMP":
            left.append("the EXIF, which BMP cannot hold")
        elif fmt == "JPEG" and len(keep["exif"]) > JPEG_EXIF_BYTES:
            left.append(f"the EXIF ({len(keep['exif']) // 1024} KB), more than a JPEG holds (64 KB)")
        else:
            options["exif"] = keep["exif"]
    if keep.get("dpi"):
        if fmt == "WEBP" and not (keep.get("exif") and _exif_resolution(keep["exif"])):  # the EXIF carries it
            left.append(f"the resolution ({keep['dpi'][0]:.0f} dpi), which WebP cannot hold")
        elif fmt == "JPEG" and max(keep["dpi"]) > 65535.5:  # (PIL wrote its remainder past 65536)
            if not ("exif" in options and _exif_resolution(options["exif"])):  # the EXIF written carries it
                left.append(f"the resolution ({max(keep['dpi']):.0f} dpi), more than a JPEG's header holds (65535)")
        else:
            options["dpi"] = keep["dpi"]
    colour = keep.get("png_colour")
    if colour and fmt != "PNG" and not _describes_srgb(colour):  # (a file without a profile is read as sRGB)
        left.append(f"the PNG colour chunks ({', '.join(_PNG_COLOUR[k][0] for k in colour)}), which only a .png "
                    "holds")
    data = keep.get("xmp")
    xmp = _xmp_text(data) if data and fmt == "PNG" else None
    if data and fmt == "PNG" and xmp is None:
        left.append("the XMP metadata, which is not text a PNG's XMP chunk holds (UTF-8, -16 or -32)")
    if fmt == "PNG" and (colour or keep.get("text") or xmp):
        options["pnginfo"] = _png_text(keep.get("text", {}), colour, xmp)
    elif keep.get("text"):
        left.append(f"the PNG text ({', '.join(keep['text'])}), which only a .png holds")
    if data and fmt != "PNG":
        if fmt == "BMP":
            left.append("the XMP metadata, which BMP cannot hold")
        elif fmt == "JPEG" and len(data) > JPEG_XMP_BYTES:
            left.append(f"the XMP metadata ({len(data)} bytes), more than a JPEG segment holds ({JPEG_XMP_BYTES})")
        elif fmt == "JPEG" and not _pillow_writes_jpeg_xmp():  # its APP1 segment, as Pillow 11 writes it
            options["extra"] = b"\xff\xe1" + struct.pack(">H", 2 + len(JPEG_XMP) + len(data)) + JPEG_XMP + data
        elif fmt == "TIFF":  # a TIFF's XMP is a tag of its first directory, written with the EXIF's
            from PIL import Image

            tags = Image.Exif()
            if "exif" in options:
                tags.load(options["exif"])
            tags[700] = data
            options["exif"] = tags.tobytes()
        else:
            options["xmp"] = data
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(target, picture_writer(picture, fmt, **options))
    except (OSError, ValueError) as e:  # an encoder's words ("encoding error 5") name no file
        if str(target) in str(e):
            raise
        raise type(e)(f"cannot write {target}: {e}") from None
    return left


def _without_resolution(exif: bytes) -> bytes:
    """An EXIF block without the picture's resolution (XResolution, YResolution, ResolutionUnit): a comparison
    is no print."""
    from PIL import Image

    tags = Image.Exif()
    try:
        tags.load(exif)
        for tag in {0x011A, 0x011B, 0x0128}.intersection(tags):
            del tags[tag]
        return tags.tobytes()
    except Exception:  # a broken block: it carries nothing a reader could use
        return exif


def _exif_resolution(exif: bytes) -> bool:
    """Whether an EXIF block holds the picture's resolution (XResolution)."""
    from PIL import Image

    tags = Image.Exif()
    try:
        tags.load(exif)
    except Exception:  # a broken block: it carries nothing a reader could use
        return False
    return 0x011A in tags


_PNG_COLOUR = {"gamma": ("gAMA", lambda v: struct.pack(">I", round(float(v) * 100000))),
               "chromaticity": ("cHRM", lambda v: struct.pack(">8I", *(round(float(x) * 100000) for x in v))),
               "srgb": ("sRGB", lambda v: bytes([int(v)]))}


def _png_text(text: dict, colour: dict | None = None, xmp: str | None = None):
    """PNG chunks: ``text`` (tEXt, or iTXt where a value is not Latin-1), the ``colour`` chunks of
    ``read_picture``'s ``png_colour``, and ``xmp`` as the XMP specification's iTXt chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (colour or {}).items():
        with contextlib.suppress(TypeError, ValueError, struct.error):  # a malformed chunk read is not written
            name, pack = _PNG_COLOUR[key]
            info.add(name.encode("ascii"), pack(value))
    for key, value in text.items():
        info.add_text(key, value)
    if xmp:
        info.add_itxt(XMP_KEY, xmp)
    return info


def write_comparison(target: Path, image: np.ndarray, result: np.ndarray, mask: np.ndarray,
                     corrections: Sequence[Correction], keep: dict[str, Any]) -> list[str]:
    """A before/after picture at ``target``, labelled with the first correction; what of the composite's metadata
    it leaves out."""
    from PIL import Image

    from ..visualize import before_after

    m = Image.fromarray(eight_bit(mask))
    kept = {k: v for k, v in keep.items() if k not in ("text", "dpi")}  # no generator's picture, no print
    if "exif" in kept:
        kept["exif"] = _without_resolution(kept["exif"])
    return _write(before_after(Image.fromarray(eight_bit(image)), Image.fromarray(eight_bit(result)), m,
                               after_label=corrections[0].label()), target, kept)
