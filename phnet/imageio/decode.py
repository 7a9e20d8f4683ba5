"""Decoding pictures: files and PIL images → numpy arrays, upright by EXIF, 16-bit grey kept at 16 bits.

The rules are in :mod:`phnet.imageio`'s docstring.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import struct
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..atomic import missing_target
from ..compat import catching_warnings
from .metadata import _TURNED, _metadata, quiet_exif
from .orientation import _tell_if_read_as_stored, _turned, _turned_tiff, orientation, orientation_source

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


# 16-bit colour (PNG's 48/64-bit, TIFF's): PIL decodes it to 8 bits (the high byte of each sample). Decoding
# it a second time with the byte order swapped gives the other byte of each sample; the two make the 16-bit
# value. A PNG tile's args are its raw mode; a TIFF's (raw or libtiff) a tuple that starts with it.
_RAWMODE = "phnet_rawmode"
_EIGHT_OF_SIXTEEN = "phnet_read_at_8_bits"  # 16-bit samples PIL decodes to their high bytes, in another layout
_SIXTEEN_BIT_GREY = "phnet_16_bit_grey"  # 16-bit grey PIL opens in its 32-bit mode I (a PGM's; Pillow 9: a PNG's)
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
    if not isinstance(path, (str, os.PathLike)) and not hasattr(path, "read"):  # (PIL said "no attribute 'read'")
        raise TypeError(f"a picture is read from a file's path (str or pathlib.Path) or an open binary file, not "
                        f"{type(path).__name__} {path!r}"[:300])
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

    _check_regular(path)
    try:
        with quiet():
            image = Image.open(path)
            opened.append(image)
            if image.format == "EPS":  # (before its load, which would run Ghostscript on the file)
                raise _Drawing(f"{path} is a PostScript drawing (EPS), which PIL reads by running Ghostscript on it; "
                               "export the picture as a PNG or JPEG")
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
            if image.format == "PNG":
                _check_checksums(path)
            image.info[_TURNED] = turned or _turned(image)  # (a TIFF's asked before the load, which drops it)
    except _Drawing:
        raise
    except OSError as e:
        if not (isinstance(e, FileNotFoundError) or e.errno == errno.ELOOP):
            raise _unreadable(path, e) from None
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
        raise _unreadable(path, e) from None
    return image


NOT_A_FILE = ("not a regular file (a pipe or a device, which cannot be read as a picture): save the picture to a file "
              "first")


def _check_regular(path: str | Path) -> None:
    """A pipe or a device (/dev/zero) is refused before it is opened: opening a pipe waits for a writer, and reading
    a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, TypeError, ValueError):  # missing (named by the open), or no path
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{path} is {NOT_A_FILE}")


class _Drawing(ValueError):
    """A file that holds a drawing program, not pixels."""


def _check_checksums(path: str | Path) -> None:
    """A PNG's chunks checked against their CRCs (a twentieth of the decoding's time): PIL checks those before the
    pixel data only, so a byte changed in the pixel data (a bad disk or transfer) that zlib's check let pass came
    through as wrong pixels, where other readers refuse the file."""
    from PIL import Image

    with Image.open(path) as again:
        again.verify()


def _unreadable(path: str | Path, e: Exception) -> ValueError:
    """The refusal of a file PIL could not read, with the fix: a damaged file (cut short, say) is saved again; an
    error of the system's (permission denied) is its own explanation."""
    from PIL import Image

    if _empty_file(path):
        return ValueError(f"{path} is empty (0 bytes): an interrupted download or copy? save it again")
    fix = ": save it again"
    if isinstance(e, Image.UnidentifiedImageError) and _sixteen_bit_tiff_file(path):
        fix = ("; PIL does not open this 16-bit TIFF layout (such as grey with alpha, or big-endian grey whose 0 "
               "is white): save it as a 16-bit PNG")
    elif isinstance(e, OSError) and e.errno is not None:
        fix = ""
    return ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e}){fix}")


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


def _in_memory(path: str | Path) -> Any:
    import io

    return io.BytesIO(Path(path).read_bytes())


# what Pillow's decoders raise on a damaged file (its AVIF and HEIF plugins: RuntimeError)
_DAMAGED = (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError, struct.error, RuntimeError)


def _single_frame(image, name: str) -> None:
    try:
        frames = frame_count(image)
    except _DAMAGED as e:
        raise ValueError(f"cannot read {name} as an image ({type(e).__name__}: {e}): save it again") from None
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


def _upright_loaded(image, name: str):
    """:func:`_upright`, its pixels loaded: a PIL image opened from a damaged file (``Image.open`` reads the header
    only) is refused as :func:`read_image` refuses the file, with the fix. (PIL's own errors: a closed image's.)"""
    try:
        image = _upright(image, name)
        image.load()
    except _DAMAGED as e:
        if isinstance(e, ValueError):
            raise
        file = getattr(image, "filename", "")
        raise ValueError(f"cannot read the {name}{f' {file}' if file else ''} as an image ({type(e).__name__}: {e}): "
                         "save it again") from None
    return image


def pil_image_pixels(image: PILImage, name: str, allow_16bit: bool) -> np.ndarray:
    """An image's pixels: uint8 H×W / H×W×3 / H×W×4, uint16 (16-bit grey) or float32 (mode F)."""
    _single_frame(image, name)
    white_is_zero = _white_is_zero(image)
    image = _upright_loaded(image, name)
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
    image = unpremultiplied(_upright_loaded(image, name))
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
