"""Decoding pictures: files and PIL images → numpy arrays, upright by EXIF, 16-bit grey kept at 16 bits.

The rules are in :mod:`phnet.imageio`'s docstring.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import struct
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..atomic import missing_target
from ..compat import catching_warnings

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageFile import ImageFile as PILFile  # an opened file: its tiles, before they are loaded
else:  # PIL loads on first use, not with the package: at run time (typing.get_type_hints) the hints read Any
    PILImage = PILFile = Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # files read_image is meant for


def readable_suffixes() -> tuple[str, ...]:
    """The suffixes of a folder's photos: :data:`IMAGE_SUFFIXES`, and the other photo formats this Pillow opens
    (a .jfif frame was passed over without a word). Icons, animations and layered files (.ico, .gif, .psd) are
    no photos: a preview.gif beside the frames is left alone."""
    from PIL import Image

    register_plugins()
    opened = {ext.lower() for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    return IMAGE_SUFFIXES + tuple(sorted(opened & MORE_PHOTOS))


@functools.lru_cache(maxsize=None)
def register_plugins() -> None:
    """HEIC/HEIF (a phone's photos) through pillow-heif where it is installed: Pillow opens them only so."""
    try:
        from pillow_heif import register_heif_opener
    except Exception:  # not installed (or broken): HEIC files are named as unopened
        return
    register_heif_opener()


MORE_PHOTOS = {".jfif", ".jpe", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".jpf", ".jpx", ".qoi", ".tga", ".ppm",
               ".pgm", ".pnm"}
# photos a folder may hold that no Pillow build opens without a plugin (or, camera raw files, at all)
UNOPENED_PHOTOS = MORE_PHOTOS | {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"}
MASK_ONLY = (".gif", ".pbm")  # formats masks come in too (a bitmap, an old tool's single-frame GIF), photos hardly


def folded_name(name: str) -> str:
    """A file name as Windows and macOS compare it: case and Unicode normalization (NFC/NFD) folded."""
    return unicodedata.normalize("NFC", name).casefold()


def folds_names(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` has every case of a name as one file (Windows, macOS), read without writing there: its
    own name, or the nearest one above it that is there (a folder -o will make) and has letters, is looked for in
    another case. Where no name on the way has letters, the system's default."""
    path = Path(os.path.abspath(folder))
    for part in (path, *path.parents):
        if part.name.swapcase() != part.name and os.path.isdir(part):
            try:
                return os.path.samefile(part, part.with_name(part.name.swapcase()))
            except OSError:  # not there under the other case: the names are told apart
                return False
    return os.name == "nt" or sys.platform == "darwin"


def native(array: np.ndarray) -> np.ndarray:
    """``array`` C-contiguous and in this machine's byte order: torch reads no other (a big-endian array,
    from FITS or some TIFF readers, is converted rather than refused)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")).reshape(array.shape)  # 0-d stays 0-d


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file: uint8, or uint16 for 16-bit files (grey, and the 48/64-bit colour of PNG and
    TIFF; grey with alpha is read at 8 bits), H×W, H×W×3 or H×W×4, upright by EXIF."""
    with open_picture(path) as image:
        return picture_pixels(path, image)


def read_picture(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`read_image`'s pixels, and what a picture made from them should carry to look the same and keep
    its history: the file's ICC profile (``icc_profile``), EXIF (``exif``, its orientation reset: the pixels
    are upright), XMP (``xmp``: its bytes, orientation reset too), resolution (``dpi``, where the file states
    one), PNG text (``text``: a dict of str, e.g. a generator's ``parameters`` or ``workflow``; a PNG's XMP is
    ``xmp``) and a PNG's colour chunks without a profile (``png_colour``: ``gamma``, ``chromaticity``,
    ``srgb`` as PIL reads them);
    ``read_at_8_bits`` where a 16-bit layout (a TIFF's premultiplied alpha, padding or planes; grey with alpha;
    a PPM's colour) is decoded at 8; ``orientation`` where the file was not stored upright: (its
    :func:`orientation`, :func:`orientation_source`), read in the same decode."""
    with open_picture(path) as image:
        pixels = picture_pixels(path, image)
        turn = orientation(image)  # (before _metadata: a PNG's EXIF after its pixels is read with them)
        source = orientation_source(image) if turn != 1 else None
        kept = _metadata(image)
        if source is not None:
            kept["orientation"] = (turn, source)
        if pixels.dtype == np.uint8 and (_sixteen_bit_tiff(image) or image.info.get(_EIGHT_OF_SIXTEEN)):
            kept["read_at_8_bits"] = True
    return pixels, kept


def _sixteen_bit_tiff(image) -> bool:
    bits = getattr(image, "tag_v2", {}).get(258)  # BitsPerSample
    return 16 in (bits if isinstance(bits, tuple) else (bits,))


def _check_tiff_layout(image, name: str) -> None:
    """PIL reads the bytes of a 16-bit colour TIFF stored plane by plane as 8-bit samples: noise, not the picture."""
    if image.format == "TIFF" and _sixteen_bit_tiff(image) and image.tag_v2.get(284) == 2 and image.mode != "I;16":
        raise ValueError(f"{name} is a 16-bit TIFF stored plane by plane (planar configuration 2), which PIL "
                         "decodes wrongly; save it with its channels interleaved (contiguous), e.g. as 16-bit PNG")


def picture_pixels(path: str | Path, image: PILImage) -> np.ndarray:
    """An opened picture's pixels as they are read: 16-bit colour at 16 bits, a 16-bit key colour as alpha."""
    if image.info.get(_RAWMODE):
        return _key_as_alpha(_sixteen_bit_colour(path, image), image.info.get("transparency"))
    return pil_image_pixels(image, str(path), allow_16bit=True)


def _key_as_alpha(pixels: np.ndarray, key: Any) -> np.ndarray:
    """16-bit grey or RGB pixels whose transparency is one key colour (PNG's tRNS) as H×W×4 with that key made
    an alpha channel, as an 8-bit keyed picture becomes RGBA; other pixels as they are."""
    if key is None or pixels.dtype != np.uint16 or not (pixels.ndim == 2 or pixels.shape[-1] == 3):
        return pixels
    if pixels.ndim == 2:
        pixels, key = np.repeat(pixels[..., None], 3, axis=2), (key, key, key)
    with contextlib.suppress(TypeError, ValueError):  # a key that is no colour of this picture: no alpha
        opaque = ~np.all(pixels == np.asarray(key, dtype=np.uint16).reshape(3), axis=-1)
        return np.concatenate([pixels, (opaque * np.uint16(65535)).astype(np.uint16)[..., None]], axis=-1)
    return pixels


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


# 16-bit colour (PNG's 48/64-bit, TIFF's): PIL decodes it to 8 bits (the high byte of each sample). Decoding
# it a second time with the byte order swapped gives the other byte of each sample; the two make the 16-bit
# value. A PNG tile's args are its raw mode; a TIFF's (raw or libtiff) a tuple that starts with it.
_RAWMODE = "phnet_rawmode"
_EIGHT_OF_SIXTEEN = "phnet_read_at_8_bits"  # 16-bit samples PIL decodes to their high bytes, in another layout
_SIXTEEN_BIT_GREY = "phnet_16_bit_grey"  # 16-bit grey PIL opens in its 32-bit mode I (a PGM's; Pillow 9: a PNG's)
_TURNED = "phnet_turned"  # an EXIF orientation of 5 to 8: the picture is read turned by 90°
# raw modes of 16 bits a sample (a 5-6-5 BMP's BGR;16 is 16 bits a pixel, read whole)
_SIXTEEN_BIT_SAMPLES = re.compile(r"(?:L|LA|RGB|RGBA|RGBX|CMYK);16[BLN]?")


def _low_byte_mode(rawmode: Any) -> str | None:
    """The raw mode that decodes the low byte of each sample of 16-bit colour ``rawmode``; None for others."""
    base, sixteen, order = rawmode.partition(";16") if isinstance(rawmode, str) else ("", "", "")
    if base not in ("RGB", "RGBA", "RGBX") or not sixteen or order not in ("B", "L", "N"):
        return None
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return f"{base};16{'L' if order == 'B' else 'B'}"


def sixteen_bit_colour_mode(image: PILFile) -> str | None:
    """The raw mode of an opened, not yet loaded picture whose colour samples are 16 bits, which PIL shows at 8
    (its high bytes) and this module reads whole; None for others."""
    modes = {_rawmode(tile) for tile in image.tile}
    return modes.pop() if len(modes) == 1 and _low_byte_mode(next(iter(modes))) is not None else None


def _rawmode(tile) -> Any:
    args = tile[3]  # (codec, extents, offset, args): a named tuple from Pillow 11, a plain one before
    return args if isinstance(args, str) else (args or (None,))[0]


def _low_byte_tile(tile):
    args = tile[3]
    low = _low_byte_mode(_rawmode(tile))
    fields = (*tile[:3], low if isinstance(args, str) else (low, *args[1:]), *tile[4:])
    return tile._make(fields) if hasattr(tile, "_make") else tuple(fields)


def _sixteen_bit_colour(path: str | Path, high) -> np.ndarray:
    from PIL import Image

    with quiet(), contextlib.ExitStack() as stack:  # read as the high bytes were: no bomb warning for a user's photo
        low = stack.enter_context(Image.open(path))
        if _turned_tiff(low):  # as _open_picture reads it
            low = stack.enter_context(Image.open(_in_memory(path)))
        low.tile = [_low_byte_tile(tile) for tile in low.tile]
        low.load()
        wide = ((np.asarray(_upright(high, str(path)), dtype=np.uint16) << 8)
                | np.asarray(_upright(low), dtype=np.uint16))
    if high.mode == "RGBX":  # Pillow 9 opens a TIFF's padding (extra samples unspecified) as a fourth channel
        wide = wide[..., :3]
    return np.ascontiguousarray(wide)


def open_picture(path: str | Path) -> PILImage:
    """A loaded PIL image of one frame (close it, or use it in a ``with``); ``FileNotFoundError`` /
    ``ValueError`` naming the file otherwise, the file closed (an error kept in a notebook held it open)."""
    opened: list[PILImage] = []
    register_plugins()
    try:
        image = _open_picture(path, opened)
        _single_frame(image, str(path))
        _check_tiff_layout(image, str(path))
    except BaseException:
        for image in opened:
            image.close()
        raise
    return image


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Without PIL's "decompression bomb DOS attack?" warning over 89 megapixels, which opening and loading
    (a TIFF's) give: the file is the user's own photo (above twice that, PIL's error still stands, and the
    caller names the fix); and without Pillow's warnings about a damaged EXIF block (:func:`quiet_exif`), which a
    JPEG's is read for as it opens."""
    from PIL import Image

    with catching_warnings(), quiet_exif():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def quiet_open(path: str | Path) -> PILFile:
    """``PIL.Image.open`` in :func:`quiet`."""
    from PIL import Image

    with quiet():
        return Image.open(path)


def _open_picture(path: str | Path, opened: list):
    from PIL import Image

    try:
        with quiet():
            image = Image.open(path)
            opened.append(image)
            turned = _turned_tiff(image)
            if turned:  # read again from memory; the one opened from the path is let go
                opened.remove(image)
                image.close()
                image = Image.open(_in_memory(path))
                opened.append(image)
            mode = sixteen_bit_colour_mode(image)
            if mode is not None:
                image.info[_RAWMODE] = mode
            elif any(_SIXTEEN_BIT_SAMPLES.fullmatch(str(_rawmode(tile))) for tile in image.tile):  # grey+alpha
                image.info[_EIGHT_OF_SIXTEEN] = True
            elif image.mode == "I" and (image.format == "PPM"  # a PGM of more than 8 bits, however dark
                                        or any(str(_rawmode(tile)).startswith("I;16") for tile in image.tile)):
                image.info[_SIXTEEN_BIT_GREY] = True
            elif image.format == "PPM" and image.mode == "RGB" and _ppm_maxval(image) > 255:  # scaled to 8 bits
                image.info[_EIGHT_OF_SIXTEEN] = True
            _scale_low_bit_key(image)
            image.load()
            image.info[_TURNED] = turned or _turned(image)  # (a TIFF's asked before the load, which drops it)
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileNotFoundError(f"{missing_target(path)}: connect it, or remove the link") from None
        raise FileNotFoundError(f"no such file: {path}") from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels[1]) / 1e6:.3g} megapixels" if pixels else "too many pixels"
        limit = Image.MAX_IMAGE_PIXELS or 0  # (set: PIL raises this only where it is)
        raise ValueError(
            f"{path} holds {size}, more than the {2 * limit / 1e6:.3g} megapixels PIL opens (its "
            "guard against decompression bombs); resize it below that, e.g. to half its width and height"
        ) from None
    except _DAMAGED as e:
        if _empty_file(path):
            raise ValueError(f"{path} is empty (0 bytes): an interrupted download or copy? save it again") from None
        hint = ""
        if isinstance(e, Image.UnidentifiedImageError) and _sixteen_bit_tiff_file(path):
            hint = ("; PIL does not open this 16-bit TIFF layout (such as grey with alpha, or big-endian grey whose 0 "
                    "is white): save it as a 16-bit PNG")
        raise ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e}){hint}") from None
    return image


def _empty_file(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False


def _sixteen_bit_tiff_file(path: str | Path) -> bool:
    """Whether a file is a TIFF whose first directory gives 16 bits a sample (BitsPerSample, read by hand)."""
    try:
        with open(path, "rb") as file:
            order = {b"II*\0": "<", b"MM\0*": ">"}[file.read(4)]
            file.seek(struct.unpack(order + "I", file.read(4))[0])
            (count,) = struct.unpack(order + "H", file.read(2))
            for _ in range(min(count, 1000)):
                tag, kind, n, value = struct.unpack(order + "HHI4s", file.read(12))
                if tag == 258 and kind == 3:  # SHORTs, in the entry where they fit, else where it points
                    if n > 2:
                        file.seek(struct.unpack(order + "I", value)[0])
                        value = file.read(2 * min(n, 64))
                    return 16 in struct.unpack(f"{order}{len(value) // 2}H", value)[:n]
    except (OSError, KeyError, TypeError, struct.error):
        return False
    return False


def _ppm_maxval(image) -> int:
    """A PPM's largest value as its header states it (its tile's args: raw mode and maxval); 255 where unsaid."""
    args = image.tile[0][3] if image.tile else None
    return args[1] if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) else 255


def _scale_low_bit_key(image) -> None:
    """A 1-, 2- or 4-bit grey PNG's tRNS key on the 0-255 scale PIL gives its pixels: PIL keeps the key as
    stored (3 for a 2-bit white), so no pixel matched it (newer Pillows give a 1-bit one scaled: 0 or 255)."""
    key = image.info.get("transparency")
    bits = {"1": 1, "L;2": 2, "L;4": 4}.get(str(_rawmode(image.tile[0]))) if image.tile else None
    if image.format == "PNG" and bits and isinstance(key, int) and 0 < key < 2**bits:
        image.info["transparency"] = key * 255 // (2**bits - 1)


def _turned_tiff(image) -> bool:
    """A TIFF whose orientation tag turns it by 90°: from a path, Pillow 13 maps such an uncompressed one at
    the turned size, which scrambles its rows; read from memory it comes out right."""
    return image.format == "TIFF" and _turned(image)


def _turned(image) -> bool:
    """Whether an opened picture's orientation turns it by 90° (5 to 8)."""
    try:
        return orientation(image) in (5, 6, 7, 8)
    except Exception:  # unreadable tags: the load says what is wrong, or it is read as it is (as _upright does)
        return False


def upright_size(image: PILFile) -> tuple[int, int]:
    """(width, height) of an opened, not yet loaded picture as it is read: turned by its orientation. A TIFF
    may report the turned size already (Pillow 13 turns TIFFs itself): its size is then not the one stored."""
    width, height = image.size
    try:
        turn = orientation(image)
        tags = getattr(image, "tag_v2", {})  # (a TIFF's)
        stored = (tags.get(256), tags.get(257)) if image.format == "TIFF" else (width, height)
    except Exception:  # unreadable tags: read as it is, as _upright does
        return width, height
    return (height, width) if turn in (5, 6, 7, 8) and stored == (width, height) else (width, height)


_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # as Pillow finds it


def orientation(image: PILImage) -> int:
    """A picture's orientation (1: upright): its EXIF's, else, in its XMP, tiff:Orientation, which Pillow 13
    reads as the EXIF's and Pillow 9 in a PNG only. A copy's XMP counts where it carries no EXIF: Pillow 9's
    ImageOps.exif_transpose turns a picture by its EXIF and leaves the XMP's orientation as it was. On Pillow 9 a
    copy of a picture that has EXIF without an orientation beside an XMP one, or a copy of a JPEG or TIFF (whose
    XMP Pillow 9 keeps with the file, not in ``info``), is read as stored: open the file itself instead.
    Unreadable EXIF raises; damaged EXIF is read as far as it goes, without Pillow's warnings about it (see
    :func:`exif_damaged`)."""
    turn = _stated_orientation(image)
    return 1 if turn is None else turn


def _stated_orientation(image) -> int | None:
    """:func:`orientation`, None where neither the EXIF nor the XMP states one."""
    with quiet_exif():
        turn = image.getexif().get(0x0112)
    if turn is None and (image.format or not {"exif", _RAW_EXIF}.intersection(image.info)):
        text = image.info.get(_XMP)
        xmp = text.encode("utf-8") if isinstance(text, str) else _xmp_of(image)
        found = _XMP_ORIENTATION.search(xmp) if xmp else None
        turn = int(found[2]) if found else None
    return turn


_PILLOW_EXIF = r"PIL\.TiffImagePlugin$"  # where Pillow warns of an EXIF block it cannot read whole


@contextlib.contextmanager
def quiet_exif() -> Iterator[None]:
    """Without Pillow's own warnings about a damaged EXIF block ("Corrupt EXIF data. Expecting to read 12 bytes
    but only got 6", "Truncated File Read"), which it gives each time the block is read: where the damage costs
    the orientation, the user is told once, in our words (:func:`_tell_if_read_as_stored`)."""
    with catching_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=_PILLOW_EXIF)
        yield


def _raw_exif(image) -> bytes | None:
    """An opened picture's EXIF block as stored (a PNG's from ImageMagick's text too); None for a TIFF, whose
    tags are read, or refused, with its pixels."""
    raw = image.info.get("exif")
    if raw is None and _RAW_EXIF in image.info:
        try:
            raw = bytes.fromhex("".join(str(image.info[_RAW_EXIF]).split("\n")[3:]))
        except ValueError:  # not hex: a block that cannot be read (Pillow's getexif raises on it)
            return b"\xff"
    return bytes(raw) if isinstance(raw, (bytes, bytearray)) else None


def exif_damaged(image: PILImage) -> bool:
    """Whether a picture carries an EXIF block that cannot be read whole: cut short (a copy or an upload
    interrupted), an offset past its end, a header that is no TIFF one. Its orientation, where it had one, may be
    lost with the rest."""
    from PIL import Image

    raw = _raw_exif(image)
    if not raw or raw == b"Exif\x00\x00":
        return False
    # Pillow's warnings are recorded, not raised: the filters are the process's, and another thread reading a
    # damaged photo meanwhile would get the error
    with catching_warnings(), warnings.catch_warnings(record=True) as told:
        warnings.filterwarnings("always", category=UserWarning, module=_PILLOW_EXIF)  # its directory is cut short
        try:
            Image.Exif().load(raw)
        except Exception:
            return True
    return any(Path(w.filename).stem == "TiffImagePlugin" for w in told)


def orientation_lost(image: PILImage) -> bool:
    """Whether damaged EXIF cost a picture its orientation: none can be read, and its EXIF block cannot be read
    whole (where the orientation survives the damage, it is turned by it)."""
    try:
        stated = _stated_orientation(image)
    except Exception:  # a block Pillow cannot read at all
        stated = None
    return stated is None and exif_damaged(image)


def _tell_if_read_as_stored(image, name: str) -> None:
    """A picture whose orientation was lost to damaged EXIF is read as stored: its user is told, once a read, in
    our words (Pillow's own warnings about the block are kept back)."""
    if orientation_lost(image):
        warnings.warn(f"the EXIF of {name} is damaged, so its orientation cannot be read and it is read as stored, "
                      "perhaps sideways; if it shows turned, turn it upright in an image editor and save it again "
                      "(that writes sound EXIF)", UserWarning, stacklevel=3)


def orientation_source(image: PILImage) -> str:
    """Where an opened picture's orientation is given, for a message: "EXIF", or "XMP" where its EXIF holds none
    (Pillow 13 shows an XMP's tiff:Orientation in the EXIF as well)."""
    from PIL import Image

    try:
        if orientation(image) == 1:  # (first: a PNG's EXIF after its pixels is read with them)
            return "EXIF"
        raw = image.info.get("exif")
        if raw is None and _RAW_EXIF in image.info:  # a PNG's, as Pillow reads it
            raw = bytes.fromhex("".join(image.info[_RAW_EXIF].split("\n")[3:]))
        if raw is None:
            stated = getattr(image, "tag_v2", {}).get(0x0112)  # a TIFF's own tags hold its EXIF's
        else:
            exif = Image.Exif()
            with quiet_exif():
                exif.load(raw)
            stated = exif.get(0x0112)
        return "XMP" if stated is None else "EXIF"
    except Exception:  # only words a message
        return "EXIF"


def _in_memory(path: str | Path) -> Any:
    import io

    return io.BytesIO(Path(path).read_bytes())


# what Pillow's decoders raise on a damaged file (its AVIF and HEIF plugins: RuntimeError)
_DAMAGED = (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError, struct.error, RuntimeError)


def _single_frame(image, name: str) -> None:
    try:
        frames = frame_count(image)
    except _DAMAGED as e:
        raise ValueError(f"cannot read {name} as an image ({type(e).__name__}: {e})") from None
    if frames > 1 and image.format in PICTURE_IN_FIRST_FRAME:
        return
    if frames > 1 and image.format == "TIFF":
        raise ValueError(f"{name} is a multi-page TIFF; save the page you want as its own file")
    if frames > 1:
        raise ValueError(
            f"{name} is animated ({frames} frames); only its first frame would be used. Save the frames as "
            "separate pictures in a folder and harmonize them as a clip: phnet harmonize frames/ masks/ -o out/ "
            "--temporal (in ComfyUI, a video loader's IMAGE batch into PHNet Harmonize Frames)"
        )


PICTURE_IN_FIRST_FRAME = ("MPO", "PSD")  # a camera JPEG's previews, a PSD's layers: frame 0 is the picture (a
#                                          PSD's flattened one)


def is_animation(image: PILImage) -> bool:
    """Whether an opened picture holds frames past its first that are a clip's, not a TIFF's pages or the previews
    and layers of :data:`PICTURE_IN_FIRST_FRAME`; a damaged later frame raises."""
    return image.format not in (*PICTURE_IN_FIRST_FRAME, "TIFF") and frame_count(image) > 1


def frame_count(image: PILImage) -> int:
    """A picture's frames: its ``n_frames``, but for a TIFF 1 or 2 (one page, more). A TIFF is asked for a second
    page only: counting them walks every page, quadratic in their number (200 000 one-pixel pages, under 30 MB,
    took minutes); a damaged second page raises here."""
    return _tiff_pages(image) if image.format == "TIFF" else getattr(image, "n_frames", 1)


def _tiff_pages(image) -> int:
    """1 for a TIFF of one page, 2 for one of more (without counting them), the first page left current."""
    if getattr(image, "_n_frames", None) is not None:  # counted already
        return min(image.n_frames, 2)
    # Pillow warns of a second page cut short as "Corrupt EXIF data" (its tags): the file is refused by name
    # either way, as damaged or as a multi-page TIFF, and the warning would blame the wrong part
    with quiet_exif():
        try:
            image.seek(1)
        except EOFError:
            return 1
    image.seek(0)
    return 2


def is_pil(x: Any) -> bool:
    """Whether ``x`` is a PIL image (False where PIL is not installed)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def _upright(image, name: str | None = None):
    """Apply the orientation (a no-op without one): the EXIF's, else the XMP's. ``name``: the picture's, for
    telling where damaged EXIF leaves it as stored (given by the one call of a read that turns it)."""
    if name is not None:
        _tell_if_read_as_stored(image, name)
    try:
        turn = orientation(image)
        pillow_turns = 0x0112 in image.getexif()  # an XMP's as well, where this Pillow reads it (see orientation)
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        return image
    if turn == 1:
        return image
    if image.format == "TIFF" and getattr(image, "_tile_orientation", None):  # Pillow 9 turns a TIFF as it
        image.load()                                                        # loads, and leaves the tag
        return image
    from PIL import Image, ImageOps

    if _turned_tiff(image) and image.tile and getattr(image, "filename", None):  # not loaded yet, from a path:
        with quiet():  # read from memory, as read_image reads it (see _turned_tiff)
            copy = Image.open(_in_memory(image.filename))
            copy.load()
        return _upright(copy)

    turns = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}
    if pillow_turns:
        try:
            with quiet_exif():  # (it writes the EXIF again: damaged past the orientation, Pillow warned of it)
                return ImageOps.exif_transpose(image)
        except Exception:  # it rewrites the EXIF too, and a wrongly typed tag there stops it: turn the pixels alone
            pass
    return image.transpose(turns[turn]) if turn in turns else image


_GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _white_is_zero(image) -> bool:
    """A 16-bit grey TIFF whose 0 is white (PhotometricInterpretation MinIsWhite), which PIL reads as it is
    stored (it inverts only 8-bit ones). Asked before :func:`_upright`, whose copy has no TIFF tags."""
    return image.format == "TIFF" and image.mode in _GREY_16 and getattr(image, "tag_v2", {}).get(262) == 0


def _grey_16(image, name: str, white_is_zero: bool = False) -> np.ndarray:
    """16/32-bit integer grey → uint16 (PIL opens 16-bit PNG/TIFF as I;16 or I); ``white_is_zero``: turned
    the right way up (see :func:`_white_is_zero`)."""
    array = np.array(image)
    if white_is_zero:
        return 65535 - array.astype(np.uint16)
    if array.dtype == np.uint16 or image.info.get(_SIXTEEN_BIT_GREY):
        return array.astype(np.uint16, copy=False)  # native byte order
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError(f"{name} is a 32-bit grey image with values beyond 16 bits; save it as 8 or 16 bits")
    if image.mode == "I" and array.size and 1 < array.max() <= 255:  # 8-bit values in PIL's 32-bit mode
        fix = ("save it as an 8-bit grey picture" if image.format else  # a file, else PIL's ImageMath's result
               "if it holds 8-bit values (PIL's ImageMath returns 'I'), convert it first: .convert('L')")
        raise ValueError(f"{name} is a 32-bit grey picture (PIL mode 'I') holding only values up to {array.max()}: "
                         f"read as 16 bits it would be nearly black; {fix}")
    return array.astype(np.uint16)


def _keyed(image) -> bool:
    """Transparency given as one key colour or a palette's (PNG's tRNS, GIF's), not as an alpha channel."""
    return image.mode in ("P", "RGB", "L", "1") and "transparency" in image.info


def pil_image_pixels(image: PILImage, name: str, allow_16bit: bool) -> np.ndarray:
    """An image's pixels: uint8 H×W / H×W×3 / H×W×4, uint16 (16-bit grey) or float32 (mode F)."""
    _single_frame(image, name)
    white_is_zero = _white_is_zero(image)
    image = _upright(image, name)
    mode = image.mode
    if mode in _GREY_16 or mode == "F":
        if not allow_16bit:
            raise ValueError(
                f"the {name} is a PIL {mode!r} picture (16/32-bit grey), which has no RGB counterpart in PIL to "
                "return the result in; pass a numpy array instead, e.g. phnet.imageio.read_image(path) (uint16)"
            )
        if mode == "F":
            return np.asarray(image, dtype=np.float32)
        return _key_as_alpha(_grey_16(image, name, white_is_zero), image.info.get("transparency"))
    if _keyed(image) or mode in ("LA", "PA", "La", "RGBa"):
        image = unpremultiplied(image).convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    return np.array(image)


def unpremultiplied(image: PILImage) -> PILImage:
    """A TIFF's premultiplied grey + alpha (mode La), which PIL converts to nothing but LA."""
    return image.convert("LA") if image.mode == "La" else image


def pil_mask_pixels(image: PILImage, name: str = "mask") -> np.ndarray:
    """A mask's one channel: the alpha when it is real, else the luminance (bool / uint8 / uint16 / float32)."""
    _single_frame(image, name)
    white_is_zero = _white_is_zero(image)
    image = unpremultiplied(_upright(image, name))
    mode = image.mode
    if mode in _GREY_16:
        return _grey_16(image, name, white_is_zero)
    if mode in ("L", "1", "F"):
        return np.array(image)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA") if mode in ("P", "PA") else image
        alpha = np.array(rgba.getchannel("A"))
        if alpha.min() < 255:  # a real alpha; an opaque one carries no mask, the picture does
            return alpha
        return np.array(rgba.convert("RGB").convert("L"))
    return np.array(image.convert("L"))


_NOISE = 8  # levels a grey pixel's channels may differ by (JPEG)


def is_black_and_white(grey: np.ndarray, colour: np.ndarray, share: float = 0.75) -> bool:
    """Whether 8-bit grey pixels are a black-and-white painting (a mask): grey (``colour``, where a pixel's channels
    differ by more than a JPEG's noise, on at most 1 % of them), mostly black or white (``share`` of them: three
    quarters), both present."""
    dark, light = grey <= 32, grey >= 223
    return bool(grey.size and colour.mean() <= 0.01 and (dark | light).mean() >= share and dark.any()
                and light.any())


def looks_like_a_mask(image: np.ndarray, share: float = 0.75) -> bool:
    """Whether a picture (H×W or H×W×C, any dtype) is a mask: two levels only (0/1, 0/255), or a black-and-white
    painting as a mask file is read (:func:`is_black_and_white`; ``share``: how much of it must be black or
    white)."""
    colour = image[..., :3] if image.ndim == 3 else image[..., None]
    if colour.dtype.kind in "ui":
        levels = colour // ((np.iinfo(colour.dtype).max + 1) // 256) if colour.dtype.itemsize > 1 else colour
    else:
        levels = np.round(np.clip(colour, 0, 1) * 255)
    levels = levels.astype(np.int16)
    grey, spread = levels[..., 0], np.ptp(levels, axis=-1)
    if not (spread > _NOISE).any() and len(np.unique(colour[..., 0])) == 2:
        return True
    return is_black_and_white(grey, spread > _NOISE, share)


class ColourMaskError(ValueError):
    """A mask file that is a colour picture (a photo given where its mask was expected, perhaps)."""


def file_mask_pixels(image: PILImage, name: str, white: str = "subject") -> np.ndarray:
    """A mask file's one channel (``white``: what its white marks, for the messages). In-memory PIL masks keep
    :func:`pil_mask_pixels`' rules; a file, more likely a picture made for another purpose, is held to stricter
    ones:

    - Opaque (or no alpha): the grey level is the mask; a colour picture (channels more than 8 levels
      apart on over 1 % of the pixels) is refused.
    - With transparent pixels, two readings: the alpha (a cut-out: the subject opaque, in any colours, on a
      transparent background) or the painted grey, transparent pixels counting as 0 (a black-and-white
      mask with a transparent border, e.g. after cropping). Where they agree (white on transparent) either
      is taken. The painted grey when the opaque pixels are a black-and-white painting (grey, mostly black
      or white, both present) and at most 10 % of the picture is transparent; the alpha when they are not
      (colours, greys, all black) and more than 10 % is transparent; any other file is refused.
    """
    from PIL import Image

    if image.mode in _GREY_16 or image.mode in ("L", "1", "F"):
        return pil_mask_pixels(image, name)
    image = unpremultiplied(_upright(image, name))
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    rgb = np.array(image.convert("RGBA" if has_alpha else "RGB"))
    alpha = rgb[..., 3] if has_alpha else None
    rgb = np.ascontiguousarray(rgb[..., :3])
    grey = np.array(Image.fromarray(rgb).convert("L"))
    colour = (rgb.max(-1).astype(np.int16) - rgb.min(-1)) > _NOISE
    if alpha is None or alpha.min() == 255:
        if colour.mean() > 0.01:
            raise ColourMaskError(f"{name} is a colour picture; save it as black and white (white = {white})")
        return grey
    painted = np.round(grey * (alpha / 255.0)).astype(np.uint8)
    if (np.abs(painted.astype(np.int16) - alpha) > _NOISE).mean() <= 0.01:
        return alpha
    opaque = alpha == 255
    black_and_white = is_black_and_white(grey[opaque], colour[opaque])
    few_transparent = 1 - opaque.mean() <= 0.1
    if black_and_white and few_transparent:
        return painted
    if not black_and_white and not few_transparent:
        return alpha
    raise ValueError(
        f"{name} has transparent pixels, and it cannot be told whether its alpha (a cut-out) or its painted "
        f"grey (a black-and-white mask) is the mask; save it without alpha, white = {white} on black, or as a "
        f"cut-out: {'the subject' if white == 'subject' else white} opaque on a transparent background"
    )
