"""phnet.imageio.decode: opening and decoding files (16 bits, TIFF layouts, camera JPEGs, Photoshop files, animations
and multi-page, damaged or empty files), the file closed, and PIL's warnings kept back."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from phnet import imageio as io_


def test_16bit_grey_file_decodes_at_16_bits(tmp_path):
    grey = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2000)  # up to 46000: far beyond 8 bits
    Image.fromarray(grey).save(tmp_path / "g16.png")
    arr = io_.read_image(tmp_path / "g16.png")
    assert arr.dtype == np.uint16 and np.array_equal(arr, grey)
    with Image.open(tmp_path / "g16.png") as g16:
        rgb, _ = io_.image_to_array(g16)
    np.testing.assert_allclose(rgb[..., 0], grey / 65535, atol=1e-6)  # not white
    assert rgb.max() < 0.71
    # a PIL 16-bit grey image cannot come back as PIL RGB: refused, pointing at an array
    with pytest.raises(ValueError, match="16/32-bit") as e, Image.open(tmp_path / "g16.png") as g16:
        io_.image_to_tensor(g16)
    assert "read_image" in str(e.value) and "convert('L')" not in str(e.value)


def test_a_16bit_grey_tiff_whose_zero_is_white_reads_the_right_way_up(tmp_path):
    """PIL inverts an 8-bit MinIsWhite TIFF and not a 16-bit one: such a mask swapped subject and background."""
    grey = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2000)
    Image.fromarray(65535 - grey).save(tmp_path / "w16.tif", tiffinfo={262: 0})  # stored with 0 as white
    assert np.array_equal(io_.read_image(tmp_path / "w16.tif"), grey)
    np.testing.assert_allclose(io_.read_mask(tmp_path / "w16.tif"), grey / 65535, atol=1e-6)


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        io_.read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        io_.read_mask(tmp_path / "missing.png")


def test_camera_jpeg_with_a_preview_is_its_main_picture_and_a_multipage_tiff_is_named(tmp_path):
    import warnings

    main = np.full((16, 24, 3), (200, 60, 30), np.uint8)
    Image.fromarray(main).save(tmp_path / "phone.jpg", format="MPO", save_all=True, quality=95,
                               append_images=[Image.new("RGB", (6, 4), "white")])  # a preview after the picture
    with Image.open(tmp_path / "phone.jpg") as phone:
        assert phone.format == "MPO"
    decoded = io_.read_image(tmp_path / "phone.jpg")
    assert decoded.shape == (16, 24, 3) and np.abs(decoded.astype(int) - main).max() <= 4
    Image.fromarray(main).save(tmp_path / "pages.tif", save_all=True, append_images=[Image.new("RGB", (6, 4))])
    with pytest.raises(ValueError, match="multi-page TIFF.*save the page you want as its own file") as e:
        io_.read_image(tmp_path / "pages.tif")
    assert "animated" not in str(e.value)
    # a TIFF cut short in its second page: counting the pages raised a SyntaxError that stopped a folder run
    page = Image.fromarray(np.tile(main, (3, 3, 1)))
    page.save(tmp_path / "pages.tif", save_all=True, append_images=[page])
    data = (tmp_path / "pages.tif").read_bytes()
    for cut in (len(data) // 2, len(data) // 2 + 40):  # a TypeError, a SyntaxError
        (tmp_path / "cut.tif").write_bytes(data[:cut])
        # the refusal alone: Pillow's warning about the cut page called its tags "Corrupt EXIF data"
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            with pytest.raises(ValueError, match=r"cannot read .*cut.tif as an image"):
                io_.read_image(tmp_path / "cut.tif")


def test_a_decompression_bomb_names_its_size_and_the_fix(tmp_path, monkeypatch):
    Image.new("L", (1000, 1000)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)
    with pytest.raises(ValueError, match=r"big.png holds 1 megapixels, more than the 0.4 megapixels.*resize it"):
        io_.read_image(tmp_path / "big.png")


def test_pictures_read_with_the_plain_tuple_tiles_of_pillow_before_11():
    """Pillow made tiles named tuples in 11.0: before it, reading any file failed on tile.args (9.5 is the floor)."""
    from phnet.imageio.decode import _low_byte_tile, _rawmode

    named = ("raw", (0, 0, 4, 4), 0, ("RGB;16B", 0, 1))
    assert _rawmode(named) == "RGB;16B" and _low_byte_tile(named) == ("raw", (0, 0, 4, 4), 0, ("RGB;16L", 0, 1))
    assert _rawmode(("raw", (0, 0, 4, 4), 0, "RGB;16B")) == "RGB;16B"


def test_a_refused_or_read_picture_file_is_closed_and_a_large_one_is_no_bomb_warning(tmp_path, monkeypatch):
    """A refused file stayed open while its error was kept (a notebook keeps the last one; Windows then cannot
    replace the file), an MPO was never closed, and PIL's 'decompression bomb DOS attack' note met every photo
    over 89 megapixels."""
    import gc
    import os
    import warnings

    from PIL import Image as PILImage

    from phnet.imageio import read_image

    frames = [PILImage.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    PILImage.new("RGB", (40, 30), "grey").save(tmp_path / "plain.png")
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    kept = []
    for _ in range(10):
        with pytest.raises(ValueError, match=r"anim\.gif is animated \(2 frames\)") as caught:
            read_image(tmp_path / "anim.gif")
        kept.append(caught.value)
    gc.collect()
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds
    from tests.helpers.tiff16 import write_tiff16

    write_tiff16(tmp_path / "deep.tif", np.full((30, 40, 3), 40000, np.uint16))  # its low bytes read again
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # the picture is "large" now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "plain.png").shape == (30, 40, 3)
        assert read_image(tmp_path / "deep.tif").dtype == np.uint16


def test_quiet_opens_from_many_threads_leave_the_warning_filters_as_they_were(tmp_path):
    """catch_warnings from several threads at once left an 'ignore' filter installed for the whole process."""
    import threading
    import warnings

    from phnet.imageio.decode import quiet_open

    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    before = list(warnings.filters)

    def read():
        for _ in range(30):
            quiet_open(tmp_path / "p.png").close()

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before


def test_pillow_heif_is_registered_where_it_is_installed(monkeypatch):
    """The CLI advised `pip install pillow-heif`, which changed nothing: no one registered its opener."""
    import sys
    import types

    from phnet.imageio import decode

    calls = []
    fake = types.ModuleType("pillow_heif")
    fake.register_heif_opener = lambda: calls.append(1)
    monkeypatch.setitem(sys.modules, "pillow_heif", fake)
    decode.register_plugins.cache_clear()
    try:
        decode.readable_suffixes()
        decode.readable_suffixes()
        assert calls == [1]
    finally:
        decode.register_plugins.cache_clear()


def test_a_16_bit_tiff_s_padding_is_no_alpha(tmp_path):
    """Pillow 9 opens RGB with a fourth sample of no stated meaning as RGBX: the padding became the alpha of an
    RGBA result."""
    from phnet.imageio import read_picture
    from tests.helpers.tiff16 import write_tiff16

    rgbx = np.random.default_rng(3).integers(0, 65536, (8, 8, 4), dtype=np.uint16)
    write_tiff16(tmp_path / "padded.tif", rgbx)
    pixels, kept = read_picture(tmp_path / "padded.tif")
    assert np.array_equal(pixels, rgbx[..., :3]) and "read_at_8_bits" not in kept


def test_a_tiff_of_premultiplied_grey_and_alpha_is_read_as_picture_and_as_mask(tmp_path):
    """PIL opens it as mode La, which it converts to LA only: both readers stopped with PIL's words alone."""
    from PIL import Image

    from phnet.imageio import read_image, read_mask

    grey_alpha = np.zeros((20, 24, 2), np.uint8)
    grey_alpha[..., 0], grey_alpha[5:15, 6:18, 1] = 100, 255
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.tif")
    data = bytearray((tmp_path / "la.tif").read_bytes())
    extra = data.find(b"\x52\x01\x03\x00\x01\x00\x00\x00")  # ExtraSamples, one SHORT: 2 (unassociated alpha)
    data[extra + 8 : extra + 10] = b"\x01\x00"  # 1: associated (premultiplied)
    (tmp_path / "la.tif").write_bytes(bytes(data))
    try:
        with Image.open(tmp_path / "la.tif") as la:
            assert la.mode == "La"
    except Image.UnidentifiedImageError:  # Pillow before 13 opens no such TIFF: read_image names the file
        with pytest.raises(ValueError, match="cannot read .*la.tif as an image"):
            read_image(tmp_path / "la.tif")
        return
    assert read_image(tmp_path / "la.tif").shape == (20, 24, 4)
    mask = read_mask(tmp_path / "la.tif")
    assert mask[10, 10] == 1 and mask[0, 0] == 0


def test_a_32bit_grey_mask_of_8bit_values_is_named_with_a_fix_for_its_kind(tmp_path):
    """A mask file was called 'mask' and told to call .convert('L'), which a command-line user cannot."""
    from PIL import Image

    from phnet.imageio import read_mask
    from phnet.imageio.decode import pil_mask_pixels

    values = np.zeros((20, 24), np.int32)
    values[5:15, 6:18] = 255
    Image.fromarray(values, "I").save(tmp_path / "mask32.tif")
    with pytest.raises(ValueError, match=r"mask32.tif is a 32-bit grey picture .*save it as an 8-bit grey picture"):
        read_mask(tmp_path / "mask32.tif")
    with pytest.raises(ValueError, match=r"convert it first: .convert\('L'\)"):
        pil_mask_pixels(Image.fromarray(values, "I"))


def test_a_16bit_grey_png_of_8bit_values_is_read_at_16_bits_on_every_pillow(tmp_path):
    """Pillow 9 opens a 16-bit grey PNG in its 32-bit mode I: it was named 'a 32-bit grey picture', not the
    16-bit mask on the wrong scale it is."""
    from phnet.imageio import read_image

    values = np.zeros((20, 24), np.uint16)
    values[5:15, 6:18] = 255
    Image.fromarray(values).save(tmp_path / "mask16.png")
    pixels = read_image(tmp_path / "mask16.png")
    assert pixels.dtype == np.uint16 and np.array_equal(pixels, values)


def _layered_psd(path, flattened: np.ndarray, layers: int = 2) -> None:
    """A Photoshop file of ``layers`` full-size RGB layers (all 50 grey) with ``flattened`` (H×W×3 uint8) as its
    merged picture, raw everywhere: the shape of a composite saved from Photoshop (PIL cannot write one)."""
    import struct

    height, width = flattened.shape[:2]
    plane = np.full((height, width), 50, np.uint8).tobytes()
    records, planes = b"", b""
    for _ in range(layers):
        name = b"\x05layer\x00\x00"  # a Pascal string padded to 4 bytes
        extra = struct.pack(">II", 0, 0) + name  # no layer mask, no blending ranges
        records += struct.pack(">iiiiH", 0, 0, height, width, 3)
        records += b"".join(struct.pack(">hI", channel, 2 + len(plane)) for channel in range(3))
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        planes += (struct.pack(">H", 0) + plane) * 3  # each channel raw
    info = struct.pack(">h", layers) + records + planes
    info += b"\x00" * (len(info) % 2)
    section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    merged = b"".join(np.ascontiguousarray(flattened[..., c]).tobytes() for c in range(3))
    path.write_bytes(b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3) + struct.pack(">II", 0, 0)
                     + struct.pack(">I", len(section)) + section + struct.pack(">H", 0) + merged)


def test_a_layered_photoshop_file_is_its_flattened_picture_not_an_animation(tmp_path):
    """PIL counts a PSD's layers as frames: a composite of two layers was refused as 'animated (2 frames)'."""
    flattened = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    _layered_psd(tmp_path / "composite.psd", flattened)
    assert np.array_equal(io_.read_image(tmp_path / "composite.psd"), flattened)


def test_a_16_bit_a_pixel_bmp_is_not_said_to_hold_16_bits_a_channel(tmp_path):
    """A 5-6-5 BMP (PIL's BGR;16, 16 bits a pixel) was flagged as 16-bit samples read at 8 bits."""
    import struct

    from phnet.imageio.decode import read_picture

    width, height = 8, 4
    pixels = b"".join(struct.pack("<H", (31 << 11) | (i << 5)) for i in range(width)) * height
    # a 40-byte header with its colour masks after it (bit fields), which Pillow 9 reads too
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 3, len(pixels), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    offset = 14 + len(header) + len(masks)
    (tmp_path / "p565.bmp").write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header
                                       + masks + pixels)
    pixels, kept = read_picture(tmp_path / "p565.bmp")
    assert pixels.dtype == np.uint8 and "read_at_8_bits" not in kept


def _low_bit_grey_png(path, rows, bits, key):
    """A grey PNG of 1, 2 or 4 bits a pixel with a tRNS key, written by hand (PIL writes none such)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packed = b""
    for row in rows:
        line = "".join(format(v, f"0{bits}b") for v in row)
        line += "0" * (-len(line) % 8)
        packed += b"\0" + bytes(int(line[i : i + 8], 2) for i in range(0, len(line), 8))
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", struct.pack(">H", key))
                     + chunk(b"IDAT", zlib.compress(packed)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("bits, row, key, alpha", [(2, [0, 1, 2, 3], 3, [255, 255, 255, 0]),
                                                   (4, [0, 5, 15, 5], 5, [255, 0, 255, 0]),
                                                   (1, [0, 1, 0, 1], 0, [0, 255, 0, 255]),
                                                   (1, [0, 1, 0, 1], 1, [255, 0, 255, 0])])
def test_a_low_bit_grey_png_s_key_colour_is_its_transparency(tmp_path, bits, row, key, alpha):
    """PIL keeps a 2- or 4-bit key as stored (3) but scales the pixels (3 -> 255): all came out opaque; a 1-bit
    picture (PIL's mode '1') lost its transparency."""
    _low_bit_grey_png(tmp_path / "keyed.png", [row, row], bits, key)
    pixels = io_.read_image(tmp_path / "keyed.png")
    assert pixels.shape == (2, 4, 4) and pixels[..., 3].tolist() == [alpha, alpha]
    assert pixels[0, :, 0].tolist() == [v * 255 // (2**bits - 1) for v in row]


def test_a_dark_16_bit_pgm_is_read_at_16_bits(tmp_path):
    """PIL opens a PGM of maxval 65535 as mode I: one holding no value over 255 (a dark frame) was refused as
    a 32-bit picture of 8-bit values."""
    grey = np.array([[0, 10, 200], [255, 3, 7]], np.uint16)
    (tmp_path / "dark.pgm").write_bytes(b"P5\n3 2\n65535\n" + grey.astype(">u2").tobytes())
    pixels = io_.read_image(tmp_path / "dark.pgm")
    assert pixels.dtype == np.uint16 and np.array_equal(pixels, grey)


def test_a_ppm_of_more_than_8_bits_a_channel_is_said_to_be_read_at_8(tmp_path):
    """PIL scales a P6 or P3 colour PPM of maxval over 255 to 8 bits: it was harmonized at 8 bits without a word."""
    rgb = np.random.default_rng(0).integers(0, 65536, (2, 3, 3), dtype=np.uint16)
    (tmp_path / "deep.ppm").write_bytes(b"P6\n3 2\n65535\n" + rgb.astype(">u2").tobytes())
    (tmp_path / "plain.ppm").write_bytes(b"P3\n3 2\n1000\n" + " ".join(map(str, rgb.ravel() % 1001)).encode())
    (tmp_path / "eight.ppm").write_bytes(b"P6\n3 2\n255\n" + (rgb >> 8).astype(np.uint8).tobytes())
    for name in ("deep.ppm", "plain.ppm"):
        pixels, kept = io_.read_picture(tmp_path / name)
        assert pixels.dtype == np.uint8 and kept.get("read_at_8_bits") is True
    assert "read_at_8_bits" not in io_.read_picture(tmp_path / "eight.ppm")[1]


def test_a_16_bit_tiff_pil_cannot_open_is_named_with_the_fix(tmp_path):
    """A grey+alpha 16-bit TIFF was 'cannot identify image file', as if it were damaged."""
    from tests.helpers.tiff16 import write_tiff16

    write_tiff16(tmp_path / "la16.tif", np.full((4, 6, 2), 40000, np.uint16), extra_sample=2)
    try:
        Image.open(tmp_path / "la16.tif").close()
    except Image.UnidentifiedImageError:
        with pytest.raises(ValueError, match=r"la16.tif as an image .*16-bit TIFF layout .*save it as a 16-bit PNG"):
            io_.read_image(tmp_path / "la16.tif")
    else:  # a Pillow that opens it reads it
        assert io_.read_image(tmp_path / "la16.tif").shape == (4, 6, 4)
    (tmp_path / "damaged.tif").write_bytes(b"II*\0" + bytes(40))
    with pytest.raises(ValueError, match="cannot read .*damaged.tif as an image") as refused:
        io_.read_image(tmp_path / "damaged.tif")
    assert "16-bit" not in str(refused.value)


def test_an_empty_file_is_named_as_one(tmp_path):
    """A 0-byte file (an interrupted download) was 'cannot identify image file', as if it were damaged."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for read in (io_.read_image, io_.read_picture, io_.read_mask):
        with pytest.raises(ValueError, match=r"empty.png is empty \(0 bytes\): an interrupted download or copy\? "
                                             "save it again"):
            read(empty)


def test_a_folder_that_tells_names_apart_by_case_is_told_without_writing_there(tmp_path):
    import os

    from phnet.imageio.decode import folds_names

    (tmp_path / "Masks").mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert folds_names(tmp_path / "Masks") == (tmp_path / "MASKS").exists()  # False on Linux, True on Windows/macOS
    assert folds_names(tmp_path / "Masks" / "new" / "out") == folds_names(tmp_path / "Masks")  # one -o will make
    (tmp_path / "masks").mkdir(exist_ok=True)  # another folder where case tells names apart: still False
    assert folds_names(tmp_path / "Masks") == os.path.samefile(tmp_path / "Masks", tmp_path / "masks")
    assert sorted(tmp_path.rglob("*")) == sorted({*before, tmp_path / "masks"})


def test_a_damaged_file_is_refused_with_the_fix_and_a_loop_of_links_is_named(tmp_path):
    """A PNG or JPEG cut short, or a text file named .png, said only "cannot read x.png as an image (OSError: image
    file is truncated)", with no fix (an empty file's refusal had one); a link in a loop said "(OSError: [Errno 40]
    Too many levels of symbolic links: ...)"."""
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for suffix in ("png", "jpg"):
        picture.save(tmp_path / f"whole.{suffix}")
        data = (tmp_path / f"whole.{suffix}").read_bytes()
        (tmp_path / f"cut.{suffix}").write_bytes(data[:len(data) // 2])
        with pytest.raises(ValueError, match=rf"cannot read .*cut.{suffix} as an image \(OSError: image file is "
                           r"truncated.*\): save it again$"):
            io_.read_image(tmp_path / f"cut.{suffix}")
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"cannot read .*text.png as an image \(UnidentifiedImageError: .*\): save it "
                       "again$"):
        io_.read_image(tmp_path / "text.png")
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError) as refused:
        io_.read_image(tmp_path / "a.png")
    assert str(refused.value) == (f"{tmp_path / 'a.png'} links to {tmp_path / 'b.png'}, which leads back to it: a loop "
                                  "of links, with no file at its end: connect it, or remove the link")


def test_a_png_whose_pixel_data_fails_its_checksum_is_refused_not_read_as_wrong_pixels(tmp_path):
    """PIL checks the CRCs of the chunks before the pixel data only: a PNG with a byte changed in its IDAT that zlib
    did not catch (3 of 687 such changes on a 48×64 picture) was read as wrong pixels without a word."""
    import struct

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.png")
    data = bytearray((tmp_path / "whole.png").read_bytes())
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4:at])
    data[at + 4 + length] ^= 0xFF  # the chunk's CRC: its pixels are whole, and PIL alone read them
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with Image.open(tmp_path / "bad.png") as unchecked:
        unchecked.load()
    with pytest.raises(ValueError, match=r"cannot read .*bad.png as an image \(SyntaxError: broken PNG file "
                       r".*IDAT.*\): save it again$"):
        io_.read_image(tmp_path / "bad.png")
    assert io_.read_image(tmp_path / "whole.png").shape == (48, 64, 3)


def test_a_postscript_drawing_is_refused_before_ghostscript_runs_on_it(tmp_path, monkeypatch):
    """PIL opens an EPS file (named .png too: it goes by the content) by running Ghostscript on it: where none was
    installed the refusal said only "(OSError: Unable to locate Ghostscript on paths)", and where one was, a
    harmonizer ran a PostScript program it was handed as a picture."""
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("Ghostscript ran"))
    drawing = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\nnewpath 0 0 moveto 64 48 lineto stroke\nshowpage\n"
    for name in ("drawing.eps", "drawing.png"):
        (tmp_path / name).write_bytes(drawing)
        with pytest.raises(ValueError) as refused:
            io_.read_image(tmp_path / name)
        assert str(refused.value) == (f"{tmp_path / name} is a PostScript drawing (EPS), which PIL reads by running "
                                      "Ghostscript on it; export the picture as a PNG or JPEG")
        with pytest.raises(ValueError, match="PostScript drawing"):
            io_.read_mask(tmp_path / name)


def test_a_pil_image_opened_from_a_damaged_file_is_refused_with_the_fix(tmp_path):
    """``Image.open`` reads the header only: a picture or mask cut short, passed as PIL images, came through as
    PIL's bare "OSError: image file is truncated" from deep in the conversion, where read_image gives the fix."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with Image.open(tmp_path / "cut.png") as cut, pytest.raises(ValueError) as refused:
        io_.image_to_array(cut)
    assert str(refused.value) == (f"cannot read the image {tmp_path / 'cut.png'} as an image (OSError: image file is "
                                  "truncated): save it again")
    with Image.open(tmp_path / "cut.png") as cut, pytest.raises(ValueError, match=r"cannot read the mask .*cut.png "
                                                                  r"as an image \(OSError: .*\): save it again$"):
        io_.mask_to_array(cut)
    with Image.open(tmp_path / "whole.png") as whole:
        assert io_.image_to_array(whole)[0].shape == (48, 64, 3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are made so on POSIX only")
def test_a_pipe_or_a_device_is_refused_not_waited_on(tmp_path):
    """read_image of a pipe waited for a writer for ever (opening one blocks), and of /dev/zero read without end;
    the CLI checked its own paths first, the library did not."""
    os.mkfifo(tmp_path / "pipe.png")
    for path in (tmp_path / "pipe.png", "/dev/zero"):
        if not os.path.exists(path):
            continue
        for read in (io_.read_image, io_.read_mask):
            with pytest.raises(ValueError) as refused:
                read(path)
            assert str(refused.value) == (f"{path} is not a regular file (a pipe or a device, which cannot be read as "
                                          "a picture): save the picture to a file first")


@pytest.mark.parametrize("given", [3, None, 2.5])
def test_a_value_that_is_no_path_nor_file_is_refused_by_its_type(given):
    """PIL's "'int' object has no attribute 'read'" came through."""
    words = f"read from a file's path .* or an open binary file, not {type(given).__name__}"
    with pytest.raises(TypeError, match=words):
        io_.read_image(given)


def test_an_open_binary_file_is_read_as_its_path_is(tmp_path):
    Image.new("RGB", (9, 8), (10, 20, 30)).save(tmp_path / "x.png")
    with open(tmp_path / "x.png", "rb") as f:
        assert (io_.read_image(f) == io_.read_image(tmp_path / "x.png")).all()
