"""What a picture made from a file's pixels should carry to look the same and keep its history: its ICC profile,
EXIF (orientation reset), XMP, resolution, PNG text and colour chunks; and where a picture's EXIF and XMP are found.

:func:`phnet.imageio.decode.read_picture` gives them with the pixels.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, Iterator

from ..compat import catching_warnings


def _metadata(image) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    if image.info.get("icc_profile"):
        kept["icc_profile"] = image.info["icc_profile"]
    dpi = _stated_dpi(image)
    turned = image.info.get(_TURNED)  # the pixels are read turned by 90°: so are the resolution's across and down
    with contextlib.suppress(TypeError, ValueError):  # a scanner's or a print layout's resolution
        if len(dpi) == 2 and all(float(d) > 0 for d in dpi):
            kept["dpi"] = tuple(float(d) for d in (dpi[::-1] if turned else dpi))
    text = {key: value for key, value in getattr(image, "text", {}).items() if isinstance(value, str)}
    # a real EXIF block (a TIFF's tags are its layout, not EXIF to copy), or ImageMagick's copy of one in PNG text
    raw_exif = text.pop(_RAW_EXIF, None)  # carried, if at all, as the EXIF block below
    if image.format == "TIFF" and not image.info.get("exif"):
        with contextlib.suppress(Exception), quiet_exif():  # a broken tag is not worth refusing the picture for
            exif = _tiff_exif(image.getexif(), turned)
            if exif is not None:
                kept["exif"] = exif
    elif image.info.get("exif") or raw_exif:
        try:
            with quiet_exif():  # a damaged block: what can be read of it is carried, in a sound one
                exif = image.getexif()
            if exif.get(0x0112, 1) != 1:
                exif[0x0112] = 1
            for tag in _LAYOUT_TAGS.intersection(exif):  # the stored photo's layout: a TIFF writer would take it
                del exif[tag]
            if turned:
                _swap_resolution(exif)
            with quiet_exif():
                kept["exif"] = exif.tobytes()
        except Exception:  # a broken EXIF block is not worth refusing the picture for
            pass
    colour = {key: image.info[key] for key in ("gamma", "chromaticity", "srgb") if key in image.info}
    if image.format == "PNG" and colour and not kept.get("icc_profile"):  # (a profile, where given, rules)
        kept["png_colour"] = colour  # gAMA, cHRM, sRGB: how a PNG without a profile says what its values mean
    png_xmp = text.pop(_XMP, None)  # a PNG's in its text; a JPEG's, WebP's or TIFF's of its own, as stored
    xmp = png_xmp.encode("utf-8") if png_xmp else _xmp_of(image)
    if xmp:  # its orientation too: the pixels are upright, and a reader would turn them again
        kept["xmp"] = re.sub(rb'(tiff:Orientation=")\d(")|(<tiff:Orientation>)\d(</tiff:Orientation>)',
                             lambda m: (m[1] or m[3]) + b"1" + (m[2] or m[4]), xmp)
        if turned:
            kept["xmp"] = _xmp_resolution_swapped(kept["xmp"])
    if text:
        kept["text"] = text
    return kept


def _xmp_of(image) -> bytes | None:
    """The XMP packet PIL found in a JPEG, WebP or TIFF (bytes, or a TIFF tag's tuple of them), its bytes as
    stored (XMP may be UTF-16 or -32 as well as UTF-8). Pillow 9 finds a WebP's alone: a JPEG's is then its APP1
    segment named for XMP, a TIFF's its tag 700."""
    xmp = image.info.get("xmp")
    if xmp is None and image.format in ("JPEG", "MPO"):
        xmp = next((data[len(JPEG_XMP):] for marker, data in getattr(image, "applist", [])
                    if marker == "APP1" and data.startswith(JPEG_XMP)), None)
    elif xmp is None and image.format == "TIFF":
        xmp = getattr(image, "tag_v2", {}).get(700)
    if isinstance(xmp, tuple) and len(xmp) == 1:
        xmp = xmp[0]
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if isinstance(xmp, (bytes, bytearray)) and bytes(xmp).strip(b"\x00 \r\n\t") else None


JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"  # the namespace that heads a JPEG's XMP segment


def _stated_dpi(image) -> Any:
    """The resolution the file states, where PIL's ``dpi`` is not it: PIL gives a TIFF without resolution tags
    1 dpi, and a JPEG whose JFIF header has no unit 72 dpi unless its EXIF has a resolution with its unit (one
    without a unit is in inches, as EXIF says, where PIL gives up and says 72)."""
    if image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        if 282 not in tags:
            return None
        dpi = image.info.get("dpi")  # (PIL gives a missing YResolution as 1: alone, XResolution is square)
        return (dpi[0], dpi[0]) if dpi and 283 not in tags else dpi
    if image.format in ("JPEG", "MPO") and image.info.get("jfif_unit") == 2 and image.info.get("jfif_density"):
        return tuple(float(d) * 2.54 for d in image.info["jfif_density"])  # per cm (Pillow 9 gives no dpi for it)
    if image.format in ("JPEG", "MPO") and image.info.get("jfif_unit") not in (1, 2):
        try:
            with quiet_exif():
                exif = image.getexif()
            if 0x011A not in exif:
                return None
            unit = exif.get(0x0128, 2)  # (PIL's own reads XResolution alone, for both)
            if unit not in (2, 3):  # 1: no absolute unit, a shape of pixels only
                return None
            per_inch = 2.54 if unit == 3 else 1.0
            return float(exif[0x011A]) * per_inch, float(exif.get(0x011B, exif[0x011A])) * per_inch
        except Exception:  # a broken EXIF block states nothing
            return None
    return image.info.get("dpi")


_XMP_RESOLUTION = re.compile(rb'(tiff:([XY])Resolution=")([^"]*)(")'
                             rb'|(<tiff:([XY])Resolution>)([^<]*)(</tiff:[XY]Resolution>)')


def _xmp_resolution_swapped(xmp: bytes) -> bytes:
    """An XMP packet's tiff:XResolution and tiff:YResolution swapped, for a picture turned by 90° (as its
    EXIF's are); as it was unless it states both."""
    values = {m[2] or m[6]: m[3] if m[2] else m[7] for m in _XMP_RESOLUTION.finditer(xmp)}
    if set(values) != {b"X", b"Y"}:
        return xmp
    other = {b"X": values[b"Y"], b"Y": values[b"X"]}
    return _XMP_RESOLUTION.sub(lambda m: m[1] + other[m[2]] + m[4] if m[2] else m[5] + other[m[6]] + m[8], xmp)


def _swap_resolution(exif) -> None:
    """XResolution and YResolution swapped, for a picture turned by 90° (one of them alone is square: as it was)."""
    across, down = exif.get(0x011A), exif.get(0x011B)
    if across is not None and down is not None:
        exif[0x011A], exif[0x011B] = down, across


def _tiff_exif(tags, turned: bool = False) -> bytes | None:
    """The EXIF of a TIFF, whose tags are its layout and its EXIF in one directory: the camera's and the
    author's tags, with the EXIF and GPS sub-directories (orientation reset; ``turned``: its resolution's
    across and down swapped), as an EXIF block; None without any."""
    from PIL import Image

    exif = Image.Exif()
    for tag in _TIFF_EXIF_TAGS.intersection(tags):
        exif[tag] = tags[tag]
    for pointer in _TIFF_SUB_IFDS.intersection(tags):
        found = dict(tags.get_ifd(pointer))
        if found:
            exif[pointer] = found
    if not exif:
        return None
    exif[0x0112] = 1
    if turned:
        _swap_resolution(exif)
    return exif.tobytes()


# a TIFF's own tags that are EXIF (description, make, model, orientation, resolution, software, dates, artist,
# copyright), and its EXIF and GPS sub-directories; the rest describe how its pixels are stored
_TIFF_EXIF_TAGS = frozenset({270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432})
_TIFF_SUB_IFDS = frozenset({0x8769, 0x8825})
_RAW_EXIF = "Raw profile type exif"  # ImageMagick's hex EXIF in a PNG text chunk
# EXIF tags that describe how the stored photo's pixels are laid out (TIFF 6's: size, samples and their format,
# bit order, strips and tiles, compression and its options, predictor, colour model and map, extra samples,
# subsampling); Pillow's TIFF writer lets them replace the result's own: a .tif came out with the stored photo's
# width and height, turned and cut, with its bits reversed, or unreadable
_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281,
                          284, 290, 291, 292, 293, 317, 320, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341,
                          347, *range(512, 522), 530, 531, 532})
_XMP = "XML:com.adobe.xmp"
_TURNED = "phnet_turned"  # an EXIF orientation of 5 to 8: the picture is read turned by 90°


_PILLOW_EXIF = r"PIL\.TiffImagePlugin$"  # where Pillow warns of an EXIF block it cannot read whole


@contextlib.contextmanager
def quiet_exif() -> Iterator[None]:
    """Without Pillow's own warnings about a damaged EXIF block ("Corrupt EXIF data. Expecting to read 12 bytes
    but only got 6", "Truncated File Read"), which it gives each time the block is read: where the damage costs
    the orientation, the user is told once, in our words
    (:func:`~phnet.imageio.orientation._tell_if_read_as_stored`)."""
    with catching_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=_PILLOW_EXIF)
        yield
