"""phnet.imageio.orientation: pictures turned upright by their EXIF or XMP orientation, once, on every Pillow; a picture
whose damaged EXIF lost its orientation is read as stored, and its user told once."""
from __future__ import annotations

import io
import re
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import imageio as io_
from tests.helpers.pictures import exif_rotated


def test_exif_orientation_is_honoured(tmp_path):
    raw = np.zeros((4, 6, 3), np.uint8)  # stored 6 wide, 4 high
    raw[0, 0] = 255
    img = exif_rotated(raw, 6)  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rot.png", exif=img.getexif())
    arr = io_.read_image(tmp_path / "rot.png")
    assert arr.shape == (6, 4, 3) and arr[0, -1].max() == 255  # top-left moved to top-right
    rgb, _ = io_.image_to_array(exif_rotated(raw, 6))
    assert rgb.shape == (6, 4, 3)
    rgb_t, _, _ = io_.image_to_tensor(exif_rotated(raw, 6))
    assert rgb_t.shape == (1, 3, 6, 4)
    m = np.zeros((4, 6), np.uint8)
    m[0, 0] = 255
    mask_img = exif_rotated(m, 6)
    mask_img.save(tmp_path / "m.png", exif=mask_img.getexif())
    mask = io_.read_mask(tmp_path / "m.png")
    assert mask.shape == (6, 4) and mask[0, -1] == 1.0


def _exif_cut_short(data: bytes, keep: int, chunk: bytes = b"\xff\xe1") -> bytes:
    """A JPEG (or, ``chunk`` b"eXIf", a PNG) whose EXIF block is cut ``keep`` bytes into its TIFF header and
    directory, the pictures still whole: an upload or a tool that cut the block off."""
    import struct
    import zlib

    if chunk == b"eXIf":
        start = data.index(b"eXIf") - 4
        body = data[start + 8:start + 8 + struct.unpack(">I", data[start:start + 4])[0]]
        cut = body[:keep]
        new = struct.pack(">I", len(cut)) + b"eXIf" + cut + struct.pack(">I", zlib.crc32(b"eXIf" + cut))
        return data[:start] + new + data[start + 12 + len(body):]
    start = data.index(chunk + b"\x00")  # (its length's high byte: the block is short)
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    payload = data[start + 4:start + 2 + length]
    assert payload.startswith(b"Exif\x00\x00")
    cut = payload[:6 + keep]
    return data[:start] + chunk + struct.pack(">H", len(cut) + 2) + cut + data[start + 2 + length:]


def _phone_photo(turn: int, suffix: str = ".jpg", orientation_first: bool = False) -> bytes:
    """A photo stored 60 wide and 40 high whose EXIF turns it by ``turn``; the orientation after the camera's
    make and model, as Pillow writes tags in order, or ``orientation_first``, before a make stored past the
    directory."""
    exif = Image.Exif()
    if not orientation_first:
        exif[0x010F], exif[0x0110] = "PhoneMaker", "Model X"
    exif[0x0112] = turn
    exif[0x0131] = "a camera app of some length"
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buffer, "PNG" if suffix == ".png" else "JPEG", exif=exif)
    return buffer.getvalue()


_PILLOW_EXIF_WORDS = re.compile(r"Corrupt EXIF|Truncated File Read|Expecting to read")


_READ_AS_STORED = r"EXIF of .*{} is damaged, so its orientation cannot be read and it is read as stored.*image editor"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("turn, keep", [(6, 14), (6, 20), (6, 30), (8, 20), (3, 30), (6, 8)])
def test_a_photo_whose_exif_is_cut_short_is_read_as_stored_and_the_user_told_once(tmp_path, suffix, turn, keep):
    """A phone photo whose EXIF block was cut short lost its orientation without a word of ours: it was read
    sideways, with only Pillow's raw "Corrupt EXIF data. Expecting to read 12 bytes but only got 6" to show for
    it (twice, where the block was read again to carry it)."""
    path = tmp_path / f"phone{suffix}"
    path.write_bytes(_exif_cut_short(_phone_photo(turn, suffix), keep, b"eXIf" if suffix == ".png" else b"\xff\xe1"))
    told = _READ_AS_STORED.format(re.escape(path.name))
    sizes = {  # each reading's height and width
        "read_image": lambda: io_.read_image(path).shape[:2],
        "read_picture": lambda: io_.read_picture(path)[0].shape[:2],
        "read_mask": lambda: io_.read_mask(path).shape,
        "image_to_array": lambda: io_.image_to_array(opened())[0].shape[:2],
        "image_to_tensor": lambda: io_.image_to_tensor(opened())[0].shape[-2:],
    }

    def opened():  # a caller's own PIL image: Pillow warns the caller as it opens it
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Corrupt EXIF|Truncated File Read", UserWarning)
            return Image.open(path)

    for name, size in sizes.items():
        with pytest.warns(UserWarning, match={"read_mask": "EXIF of mask .*phone.* is damaged", "image_to_array":
                                              "EXIF of image is damaged", "image_to_tensor": "EXIF of image is damaged"
                                              }.get(name, told)) as seen:
            assert tuple(size()) == (40, 60), name  # as stored
        assert len(seen) == 1, [str(w.message) for w in seen]  # once, and not Pillow's words as well
        assert not _PILLOW_EXIF_WORDS.search(str(seen[0].message))
    with pytest.warns(UserWarning, match=told):
        _, kept = io_.read_picture(path)
    assert "orientation" not in kept
    if "exif" in kept:  # what could be read of the block, carried in a sound one
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            carried = Image.Exif()
            carried.load(kept["exif"])
            assert carried.get(0x0112, 1) == 1 and carried.tobytes()


def test_a_photo_whose_orientation_survives_damage_to_its_exif_is_turned_without_a_word(tmp_path):
    """The block cut past its orientation (in the camera app's name), or its directory's count of tags wrong:
    turned upright, and Pillow's warnings about the rest, twice a read, kept back."""
    import struct

    data = _phone_photo(6, orientation_first=True)
    directory = data.index(b"Exif\x00\x00") + 6
    cut = _exif_cut_short(data, 8 + 2 + 2 * 12 + 6)  # the header, the count, orientation and app name's entries
    wrong_count = bytearray(data)
    order = "<" if data[directory:directory + 2] == b"II" else ">"
    first = directory + struct.unpack(order + "I", data[directory + 4:directory + 8])[0]
    wrong_count[first:first + 2] = struct.pack(order + "H", 0xFFFF)
    for name, damaged in (("cut.jpg", cut), ("count.jpg", bytes(wrong_count))):
        (tmp_path / name).write_bytes(damaged)
        with warnings.catch_warnings():  # a caller's own PIL image: Pillow warns the caller as it opens it
            warnings.filterwarnings("ignore", "Corrupt EXIF|Truncated File Read", UserWarning)
            opened = Image.open(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert io_.read_image(tmp_path / name).shape == (60, 40, 3), name
            pixels, kept = io_.read_picture(tmp_path / name)
            assert pixels.shape == (60, 40, 3) and kept["orientation"] == (6, "EXIF"), name
            assert io_.image_to_array(opened)[0].shape == (60, 40, 3), name


def test_a_photo_whose_exif_header_is_no_tiff_one_is_read_as_stored_with_a_word(tmp_path):
    """Pillow could not read the block at all and said nothing: the photo was read sideways in silence."""
    data = bytearray(_phone_photo(6))
    directory = data.index(b"Exif\x00\x00") + 6
    data[directory:directory + 2] = b"XX"
    (tmp_path / "phone.jpg").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format("phone.jpg")):
        assert io_.read_image(tmp_path / "phone.jpg").shape == (40, 60, 3)


def test_a_picture_without_exif_or_with_sound_exif_reads_without_a_word(tmp_path):
    for name, data in (("plain.jpg", None), ("sound.jpg", _phone_photo(6)), ("sound.png", _phone_photo(8, ".png"))):
        if data is None:
            Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            shape = io_.read_image(tmp_path / name).shape
        assert shape == ((40, 60, 3) if data is None else (60, 40, 3)), name


def _exif_block(order: str, entries, values: bytes = b"") -> bytes:
    """An EXIF block of ``order`` ("<" little-endian, ">" big-endian) whose first directory, at offset 8, holds
    ``entries`` (tag, type, count, the 4 bytes of the value or of its offset) and links to no next one; ``values``
    after it, at offset 14 + 12 per entry."""
    header = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
    directory = b"".join(struct.pack(order + "HHI", tag, kind, count) + value for tag, kind, count, value in entries)
    return header + struct.pack(order + "H", len(entries)) + directory + struct.pack(order + "I", 0) + values


def _camera_exif(order: str, exif_directory: int | None = None, make_at: int | None = None,
                 orientation: tuple[int, int, bytes] | None = None) -> bytes:
    """A camera's EXIF block without an orientation: its make, model and software in its first directory, and a
    pointer to its Exif sub-directory (``exif_directory``: another offset for it; ``make_at``: another for the
    make's text); ``orientation``: an orientation entry too, (type, count, value)."""
    texts = [(0x010F, b"PhoneMaker\0"), (0x0110, b"Model X\0"), (0x0131, b"a camera app of some length\0")]
    count = len(texts) + 1 + (orientation is not None)
    at = 14 + 12 * count
    entries, values = [], b""
    for tag, text in texts:
        entries.append((tag, 2, len(text), struct.pack(order + "I", make_at if tag == 0x010F and make_at else at)))
        values, at = values + text, at + len(text)
    if orientation is not None:
        entries.append((0x0112, *orientation))
    sub = struct.pack(order + "H", 1) + struct.pack(order + "HHI", 0x9003, 2, 20) + struct.pack(order + "I", at + 18)
    sub += struct.pack(order + "I", 0) + b"2024:05:01 12:00:00\0"  # DateTimeOriginal
    entries.append((0x8769, 4, 1, struct.pack(order + "I", exif_directory or at)))
    return _exif_block(order, sorted(entries), values + sub)


def _saved_with_exif(block: bytes, suffix: str, path) -> np.ndarray:
    """A picture stored 60 wide and 40 high, its top left red, saved at ``path`` with ``block`` as its EXIF."""
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)
    Image.fromarray(stored).save(path, "PNG" if suffix == ".png" else "JPEG", quality=95, exif=b"Exif\0\0" + block)
    return stored


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("damage", ["sub-directory past the end", "cut after the first directory",
                                    "make past the end"])
def test_a_photo_whose_exif_is_damaged_past_a_first_directory_without_orientation_reads_as_stored_without_a_word(
        tmp_path, suffix, order, damage):
    """EXIF damaged outside its first directory (a sub-directory's offset past the end, the block cut after the
    first directory, a camera tag's text past the end), whose first directory is whole and holds no orientation,
    never stated one: the picture is upright as stored, and was said to be read "perhaps sideways"."""
    from phnet.imageio.fast import image_pixels

    whole = _camera_exif(order)
    block = {"sub-directory past the end": _camera_exif(order, exif_directory=50_000),
             "cut after the first directory": whole[:8 + 2 + 12 * 4],
             "make past the end": _camera_exif(order, make_at=50_000)}[damage]
    path = tmp_path / f"camera{suffix}"
    stored = _saved_with_exif(block, suffix, path)
    with warnings.catch_warnings():  # a caller's own PIL image: Pillow warns the caller as it opens it
        warnings.filterwarnings("ignore", "Corrupt EXIF|Truncated File Read", UserWarning)
        opened = Image.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pixels in (io_.read_image(path), io_.read_picture(path)[0], io_.image_to_array(opened)[0] * 255):
            assert pixels.shape == (40, 60, 3) and np.abs(pixels.astype(float) - stored).mean() < 2, damage
        assert "orientation" not in io_.read_picture(path)[1]
        assert image_pixels(opened) is not None  # the fast path takes it as it is


def _imagemagick_png(block: bytes, path) -> np.ndarray:
    """A PNG stored 60 wide and 40 high carrying ``block`` as ImageMagick writes EXIF: hex text in a "Raw profile
    type exif" chunk, not an eXIf one."""
    from PIL import PngImagePlugin

    data = b"Exif\0\0" + block
    lines = [data.hex()[at:at + 72] for at in range(0, 2 * len(data), 72)]
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n%8d\n" % len(data) + "\n".join(lines) + "\n", zip=True)
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)
    Image.fromarray(stored).save(path, pnginfo=info)
    return stored


@pytest.mark.parametrize("damage", ["make past the end", "cut inside the first directory"])
def test_a_png_with_imagemagicks_exif_text_is_judged_by_its_first_directory(tmp_path, damage):
    """ImageMagick keeps a PNG's EXIF as hex text, which Pillow reads as the EXIF: damaged outside a first directory
    without orientation it says nothing, cut inside that directory it warns."""
    path = tmp_path / "magick.png"
    if damage == "make past the end":
        stored = _imagemagick_png(_camera_exif(">", make_at=50_000), path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pixels = io_.read_image(path)
        assert pixels.shape == (40, 60, 3) and np.abs(pixels.astype(float) - stored).mean() < 2
    else:
        _imagemagick_png(_camera_exif(">")[:8 + 2 + 12 + 6], path)
        with pytest.warns(UserWarning, match=_READ_AS_STORED.format(re.escape(path.name))):
            assert io_.read_image(path).shape == (40, 60, 3)


def test_a_png_whose_imagemagick_exif_text_is_no_hex_is_read_as_stored_with_a_word(tmp_path):
    """Pillow cannot read such a block at all (it raises): the orientation it may have stated is lost."""
    from PIL import PngImagePlugin

    from phnet.imageio.orientation import orientation_lost

    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n      20\nnot hex at all\n", zip=True)
    path = tmp_path / "magick.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(path, pnginfo=info)
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format(re.escape(path.name))):
        assert io_.read_image(path).shape == (40, 60, 3)
    with Image.open(path) as opened:  # asked first, before anything else reads the block
        assert orientation_lost(opened)


def test_a_first_directory_is_read_by_its_entries_not_by_any_two_bytes_in_them(tmp_path):
    """An entry whose count reads 0x0112 (a camera's text of 274 characters, past the end of the block) is no
    orientation entry: the first directory holds none, and the photo is read as stored without a word."""
    texts = [(0x010F, 2, 0x0112, struct.pack("<I", 50_000)), (0x0110, 2, 4, b"X 1\0")]
    path = tmp_path / "camera.jpg"
    _saved_with_exif(_exif_block("<", texts), ".jpg", path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io_.read_image(path).shape == (40, 60, 3)


@pytest.mark.parametrize("block, found", [
    (b"", None), (b"II*\0", None), (b"II*\0\x08\0\0", None),  # no header, or one cut short
    (b"II*\0\x08\0\0\0\0", None),  # the count of entries cut short
    (b"II*\0\x08\0\0\0\0\0", False), (b"MM\0*\0\0\0\x08\0\0", False),  # no entries at all
    (b"II*\0\x04\0\0\0" + bytes(48), None),  # a directory inside the header (its count: the offset's bytes)
    (b"II*\0\x00\0\0\0" + bytes(48), None),
    (b"II*\0\xff\xff\xff\xff" + bytes(8), None),  # past the end
    (b"MM*\0\0\0\0\x08\0\0", None),  # a header Pillow reads, that no TIFF writer writes
    (b"II*\0\x07\0\0\0" + bytes(48), None),  # a directory that starts on the header's last byte
])
def test_a_first_directory_that_cannot_be_read_whole_may_have_held_an_orientation(block, found):
    """What is not a whole first directory (a header cut short or not a TIFF one, a directory that starts inside
    the header or past the end) may have held the orientation: never an error, and never "none there"."""
    from phnet.imageio.orientation import _first_directory_orientation

    assert _first_directory_orientation(block) is found
    assert _first_directory_orientation(b"Exif\0\0" + block) is found


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_first_directory_cut_short_by_one_byte_may_have_held_an_orientation(order):
    """The last byte of a directory's last entry is part of it: cut there, the entry is lost, and with it perhaps
    the orientation; whole, the directory holds none."""
    from phnet.imageio.orientation import _first_directory_orientation

    end = 8 + 2 + 12 * 4  # the header, the count and the camera's four entries
    assert _first_directory_orientation(_camera_exif(order)[:end]) is False
    assert _first_directory_orientation(_camera_exif(order)[:end - 1]) is None


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("place", ["alone", "first", "last"])
def test_an_orientation_entry_is_found_wherever_it_stands_in_the_first_directory(order, place):
    from phnet.imageio.orientation import _first_directory_orientation

    turn = (0x0112, 3, 1, struct.pack(order + "HH", 6, 0))
    make, software = (0x010F, 2, 4, b"X 1\0"), (0x0131, 2, 4, b"v 2\0")
    entries = {"alone": [turn], "first": [turn, software], "last": [make, turn]}[place]
    assert _first_directory_orientation(_exif_block(order, entries)) is True


def test_exif_header_bytes_inside_a_block_are_its_data_not_a_header():
    """Only the "Exif\\0\\0" headers that start a block are skipped: the same bytes further in (a thumbnail's own
    header, say) are data that the directory's offset counts."""
    from phnet.imageio.orientation import _first_directory_orientation

    turn = struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    before = b"Exif\0\0" + bytes(2)  # the directory starts after these, at 16
    block = b"II*\0" + struct.pack("<I", 16) + before + struct.pack("<H", 1) + turn + struct.pack("<I", 0)
    assert _first_directory_orientation(block) is True
    assert _first_directory_orientation(b"Exif\0\0" + block) is True


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_written_with_its_header_twice_is_read_as_pillow_reads_it(tmp_path, suffix):
    """Some programs write the "Exif\\0\\0" header twice, and Pillow reads such a block past both: damaged outside a
    first directory without orientation, it still warned "perhaps sideways" (the directory was looked for after
    one header only); cut inside that directory, it warns."""
    damaged, cut = _camera_exif("<", make_at=50_000), _camera_exif("<")[:8 + 2 + 12 + 6]
    path = tmp_path / f"twice{suffix}"
    stored = _saved_with_exif(b"Exif\0\0" + damaged, suffix, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = io_.read_image(path)
    assert pixels.shape == (40, 60, 3) and np.abs(pixels.astype(float) - stored).mean() < 2
    _saved_with_exif(b"Exif\0\0" + cut, suffix, path)
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format(re.escape(path.name))):
        assert io_.read_image(path).shape == (40, 60, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_photo_whose_first_exif_directory_is_cut_short_is_read_as_stored_with_a_word(tmp_path, suffix, order):
    """Cut inside its first directory's entries, the block may have lost an orientation there: the warning stands,
    though the entries left hold none."""
    path = tmp_path / f"camera{suffix}"
    _saved_with_exif(_camera_exif(order)[:8 + 2 + 12 + 6], suffix, path)  # one entry and half of the next
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format(re.escape(path.name))) as seen:
        assert io_.read_image(path).shape == (40, 60, 3)
    assert len(seen) == 1


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_photo_whose_orientation_entry_points_past_the_end_is_read_as_stored_with_a_word(tmp_path, suffix, order):
    """The first directory is whole and holds an orientation entry Pillow cannot read (its values' offset past the
    end of the block): the orientation is lost, and the user told."""
    path = tmp_path / f"camera{suffix}"
    _saved_with_exif(_camera_exif(order, orientation=(3, 3, struct.pack(order + "I", 50_000))), suffix, path)
    with pytest.warns(UserWarning, match=_READ_AS_STORED.format(re.escape(path.name))) as seen:
        assert io_.read_image(path).shape == (40, 60, 3)
    assert len(seen) == 1


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_an_uncompressed_tiff_turned_by_its_orientation_is_read_upright(tmp_path, mode):
    """Pillow 13 mapped such a file at its turned size: the rows came out scrambled (or a mask 'of another
    size' was refused)."""
    from PIL import Image

    from phnet.imageio import read_image, read_mask

    upright = np.random.default_rng(0).integers(0, 256, (37, 45, 4) if mode == "RGBA" else (37, 45), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90° clockwise to show
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)), mode).save(tmp_path / "turned.tif", exif=exif)
    if mode == "RGBA":
        assert np.array_equal(read_image(tmp_path / "turned.tif"), upright)
    else:
        assert read_mask(tmp_path / "turned.tif").shape == (37, 45)


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_an_opened_uncompressed_tiff_turned_by_its_orientation_is_read_upright(tmp_path, tiny_model, mode,
                                                                               orientation):
    """Opened from its path and handed over as a PIL picture or mask, Pillow 13 mapped such a file as stored and
    dropped its orientation: an upright mask was refused as turned by 90°, and the result came back unturned."""
    from phnet import Harmonizer
    from phnet.imageio import read_image, read_mask

    upright = np.random.default_rng(orientation).integers(0, 256, (37, 45), dtype=np.uint8)
    stored = np.ascontiguousarray(np.rot90(upright, 1 if orientation == 6 else -1))
    if mode == "I;16":
        picture = Image.fromarray(stored.astype(np.uint16) * 257)
    else:
        picture = Image.frombytes(mode, (stored.shape[1], stored.shape[0]), stored.tobytes())
    if mode == "P":
        picture.putpalette([255 - i // 3 for i in range(768)])  # greys, reversed
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.tif"
    picture.save(path, exif=exif)
    pixels = read_image(path)
    assert pixels.shape[:2] == (37, 45)
    with Image.open(path) as opened:
        assert np.array_equal(io_.image_to_array(opened)[0], io_.image_to_array(pixels)[0])
    with Image.open(path) as opened:
        assert np.array_equal(io_.mask_to_array(opened), read_mask(path))
    if mode != "I;16":  # (a PIL 16-bit grey picture has no RGB result to come back as: refused by name)
        with Image.open(path) as opened:
            assert torch.equal(io_.image_to_tensor(opened)[0], io_.image_to_tensor(pixels)[0])
        mask = np.zeros((37, 45), np.uint8)
        mask[10:30, 5:25] = 255
        harmonizer = Harmonizer(tiny_model, device="cpu")
        with Image.open(path) as opened:
            assert np.array_equal(np.asarray(harmonizer(opened, mask)), harmonizer(pixels, mask))


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_tiff_is_turned_by_each_orientation_once(tmp_path, compression):
    """Pillow 9 turns a TIFF as it loads and leaves its orientation tag: turned again, one flipped or turned
    180° came out as stored, and one turned 90° upside down."""
    from phnet.imageio import read_image

    stored = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for orientation in range(2, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(tmp_path / "t.tif", exif=exif, compression=compression)
        Image.fromarray(stored).save(tmp_path / "t.png", exif=exif)
        upright = read_image(tmp_path / "t.png")
        assert np.array_equal(read_image(tmp_path / "t.tif"), upright), orientation
        with Image.open(tmp_path / "t.tif") as opened:  # a PIL image not loaded yet
            assert np.allclose(io_.image_to_array(opened)[0], upright / 255.0, atol=1e-6), orientation


def test_an_orientation_given_in_xmp_alone_is_applied_on_every_pillow(tmp_path):
    """Pillow 13 turns a picture by its XMP's tiff:Orientation where its EXIF has none; Pillow 9 did so for a PNG
    only: a JPEG, WebP or TIFF was read as stored there, 60×40 instead of 40×60, its XMP saying "upright"."""
    from PIL import PngImagePlugin

    from phnet.imageio.fast import image_pixels

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)  # a red corner, top left as stored: top right once turned
    picture = Image.fromarray(stored)
    segment = io_.metadata.JPEG_XMP + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment  # (Pillow 9 writes no xmp= for a JPEG)
    picture.save(tmp_path / "x.jpg", quality=95, dpi=(300, 150), extra=app1)
    picture.save(tmp_path / "x.webp", lossless=True, xmp=xmp)
    picture.save(tmp_path / "x.tif", tiffinfo={700: xmp, 282: 300.0, 283: 150.0, 296: 2})
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "x.png", pnginfo=text)  # (Pillow 9 turned this one: not twice now)
    upright = np.rot90(stored, -1)
    for name in ("x.jpg", "x.webp", "x.tif", "x.png"):
        pixels, kept = io_.read_picture(tmp_path / name)
        assert pixels.shape == (60, 40, 3) and np.abs(pixels.astype(int) - upright).mean() < 2, name
        assert b'tiff:Orientation="6"' not in kept["xmp"], name  # (reset to 1, or left out as newer Pillows do)
        assert kept.get("dpi") in (None, (150, 300)), name  # turned with the pixels
        with Image.open(tmp_path / name) as in_memory:
            assert image_pixels(in_memory)[0].shape == (1, 60, 40, 3), name  # the fast path turns it too
            assert io_.image_to_tensor(in_memory)[0].shape == (1, 3, 60, 40), name
    assert io_.read_picture(tmp_path / "x.tif")[1]["dpi"] == (150, 300)
    exif = Image.Exif()
    exif[0x0112] = 1
    picture.save(tmp_path / "exif1.jpg", exif=exif, extra=app1)
    assert io_.read_image(tmp_path / "exif1.jpg").shape == (40, 60, 3)  # an EXIF orientation rules over the XMP's


def test_an_orientation_s_source_is_its_exif_unless_only_its_xmp_gives_one(tmp_path):
    """Pillow 13 shows an XMP's tiff:Orientation in the EXIF too: messages blamed an EXIF tag the file did not have."""
    from PIL import PngImagePlugin

    from phnet.imageio.orientation import orientation_source

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    segment = io_.metadata.JPEG_XMP + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment
    picture = Image.new("RGB", (30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(tmp_path / "xmp.jpg", extra=app1)
    picture.save(tmp_path / "xmp.webp", xmp=xmp)
    picture.save(tmp_path / "xmp.tif", tiffinfo={700: xmp})
    picture.save(tmp_path / "both.jpg", exif=exif, extra=app1)
    picture.save(tmp_path / "both.webp", exif=exif, xmp=xmp)
    picture.save(tmp_path / "both.tif", tiffinfo={700: xmp, 0x0112: 6})
    picture.save(tmp_path / "exif.png", exif=exif)
    picture.save(tmp_path / "plain.png")
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "both.png", pnginfo=text, exif=exif)
    png = (tmp_path / "both.png").read_bytes()
    start = png.index(b"eXIf") - 4
    chunk = png[start:start + 12 + int.from_bytes(png[start:start + 4], "big")]
    late = png.replace(chunk, b"")
    (tmp_path / "late.png").write_bytes(late.replace(b"\0\0\0\0IEND", chunk + b"\0\0\0\0IEND"))  # read with the pixels
    for name, source in [("xmp.jpg", "XMP"), ("xmp.webp", "XMP"), ("xmp.tif", "XMP"), ("both.jpg", "EXIF"),
                         ("both.webp", "EXIF"), ("both.tif", "EXIF"), ("exif.png", "EXIF"), ("plain.png", "EXIF"),
                         ("both.png", "EXIF"), ("late.png", "EXIF")]:
        with Image.open(tmp_path / name) as opened:
            assert orientation_source(opened) == source, name


def test_a_copy_is_turned_by_its_xmp_once(tmp_path):
    """A copy (convert, exif_transpose) has no format: Pillow 9 read a WebP's as stored, its XMP alone turning it;
    one that exif_transpose turned by its EXIF keeps the XMP's orientation on Pillow 9, and is not turned again."""
    from PIL import ImageOps, PngImagePlugin

    from phnet.imageio.fast import image_pixels

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (250, 0, 0)
    picture = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(tmp_path / "xmp.webp", lossless=True, xmp=xmp)
    picture.save(tmp_path / "both.webp", lossless=True, xmp=xmp, exif=exif)
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", xmp.decode())
    picture.save(tmp_path / "xmp.png", pnginfo=text)
    upright = np.rot90(stored, -1)
    for name in ("xmp.webp", "both.webp", "xmp.png"):
        for copy in (lambda image: image.convert("RGB"), ImageOps.exif_transpose,
                     lambda image: ImageOps.exif_transpose(image).convert("RGB")):
            with Image.open(tmp_path / name) as opened:
                pixels = copy(opened)
                assert image_pixels(pixels)[0].shape == (1, 60, 40, 3), name  # the fast path turns it too
                tensor = io_.image_to_tensor(pixels)[0]
            assert tensor.shape == (1, 3, 60, 40), name
            assert np.abs(tensor[0].permute(1, 2, 0).numpy() * 255 - upright).mean() < 2, name


@pytest.mark.parametrize("turn", range(2, 9))
def test_a_picture_is_turned_by_each_orientation_where_pillow_cannot_rewrite_its_exif(monkeypatch, turn):
    """Where ImageOps.exif_transpose stops at a wrongly typed tag, the pixels alone are turned, each orientation as
    exif_transpose turns it."""
    from PIL import ImageOps

    from phnet.imageio import decode

    raw = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    expected = np.asarray(ImageOps.exif_transpose(exif_rotated(raw, turn)))

    def refuses(image, *args, **kwargs):
        raise TypeError("a wrongly typed tag")

    monkeypatch.setattr(ImageOps, "exif_transpose", refuses)
    np.testing.assert_array_equal(np.asarray(decode._upright(exif_rotated(raw, turn))), expected)
