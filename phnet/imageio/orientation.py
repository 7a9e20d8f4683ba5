"""A picture's orientation: stated in its EXIF or its XMP, the size it is read at, and EXIF damaged so far that the
orientation is lost (the picture is then read as stored, and its user told).
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compat import catching_warnings
from .metadata import _PILLOW_EXIF, _RAW_EXIF, _XMP, _xmp_of, quiet_exif

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageFile import ImageFile as PILFile  # an opened file: its tiles, before they are loaded
else:  # PIL loads on first use, not with the package: at run time (typing.get_type_hints) the hints read Any
    PILImage = PILFile = Any


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


def _turned(image) -> bool:
    """Whether an opened picture's orientation turns it by 90° (5 to 8)."""
    try:
        return orientation(image) in (5, 6, 7, 8)
    except Exception:  # unreadable tags: the load says what is wrong, or it is read as it is (as _upright does)
        return False


def _turned_tiff(image) -> bool:
    """A TIFF whose orientation tag turns it by 90°: from a path, Pillow 13 maps such an uncompressed one at
    the turned size, which scrambles its rows; read from memory it comes out right."""
    return image.format == "TIFF" and _turned(image)


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


def _first_directory_orientation(raw: bytes) -> bool | None:
    """Whether an EXIF block's first directory (IFD0, where the orientation is kept) holds an orientation entry
    (tag 0x0112), read from the block's own structure: its TIFF header, the directory's offset, its count of
    entries and the 12 bytes of each. None where that directory cannot be read whole (a header or offset that is
    no TIFF one, or entries cut short): the orientation may have been in the part that is lost."""
    data = re.sub(b"^(Exif\x00\x00){1,2}", b"", raw)  # as Pillow 13 reads it: some programs write the header twice
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None or len(data) < 8:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset < 8 or offset + 2 > len(data):  # (before 8: inside the header)
        return None
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    entries = data[offset + 2:offset + 2 + 12 * count]
    if len(entries) < 12 * count:
        return None
    return any(struct.unpack(order + "H", entries[at:at + 2])[0] == 0x0112 for at in range(0, len(entries), 12))


def orientation_lost(image: PILImage) -> bool:
    """Whether damaged EXIF cost a picture its orientation: none can be read, its EXIF block cannot be read
    whole, and the damage may have taken an orientation with it: a block whose first directory is whole and
    holds no orientation entry never stated one, whatever else is damaged (a tag of the camera's, a
    sub-directory), and the picture is upright as stored (where the orientation survives the damage, it is
    turned by it)."""
    try:
        stated = _stated_orientation(image)
    except Exception:  # a block Pillow cannot read at all
        stated = None
    return stated is None and exif_damaged(image) and _first_directory_orientation(_raw_exif(image) or b"") is not False


def _tell_if_read_as_stored(image, name: str) -> None:
    """A picture whose orientation was lost to damaged EXIF is read as stored: its user is told, once a read, in
    our words (Pillow's own warnings about the block are kept back)."""
    if orientation_lost(image):
        warnings.warn(f"the EXIF of {name} is damaged, so its orientation cannot be read and it is read as stored, "
                      "perhaps sideways; if it shows turned, turn it upright in an image editor and save it again "
                      "(that writes sound EXIF)", UserWarning, stacklevel=3)
