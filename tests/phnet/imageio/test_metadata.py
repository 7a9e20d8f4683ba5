"""phnet.imageio.metadata: what read_picture gives a result to carry: the ICC profile, the EXIF and XMP (orientation
reset), the resolution, turned with the picture."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from phnet import imageio as io_
from tests.helpers.pictures import exif_rotated


def test_read_picture_gives_the_profile_and_exif_upright(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = exif_rotated(np.zeros((4, 6, 3), np.uint8), 6)
    exif = img.getexif()
    exif[0x010F] = "Maker"
    img.save(tmp_path / "rot.png", exif=exif, icc_profile=srgb)
    pixels, keep = io_.read_picture(tmp_path / "rot.png")
    assert pixels.shape == (6, 4, 3) and keep["icc_profile"] == srgb
    carried = Image.Exif()
    carried.load(keep["exif"])
    assert carried[0x0112] == 1 and carried[0x010F] == "Maker"
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert io_.read_picture(tmp_path / "plain.png")[1] == {}


def test_read_picture_finds_a_jpeg_s_and_a_tiff_s_xmp_on_every_pillow(tmp_path):
    """Pillow 9 puts neither in ``info``: the XMP of a JPEG or TIFF composite was dropped without a note."""
    xmp = b"<x:xmpmeta><rdf:Description><dc:rights>Jane</dc:rights></rdf:Description></x:xmpmeta>"
    segment = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    app1 = b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg", extra=app1)
    Image.new("RGB", (4, 4)).save(tmp_path / "x.tif", tiffinfo={700: xmp})
    for name in ("x.jpg", "x.tif"):
        assert io_.read_picture(tmp_path / name)[1]["xmp"] == xmp, name


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_a_picture_turned_by_its_orientation_keeps_its_resolution_turned_too(tmp_path, suffix):
    """A 300x150 dpi photo turned upright (orientation 6) kept 300x150: the result was printed stretched."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A], exif[0x011B], exif[0x0128] = 6, 300.0, 150.0, 2
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / f"turned{suffix}", dpi=(300, 150), exif=exif)
    pixels, kept = io_.read_picture(tmp_path / f"turned{suffix}")
    assert pixels.shape == (60, 40, 3) and kept["dpi"] == (150, 300)
    carried = Image.Exif()
    carried.load(kept["exif"])
    assert (carried[0x011A], carried[0x011B]) == (150, 300)


def test_a_jpeg_s_exif_resolution_is_read_across_and_down(tmp_path):
    """A camera JPEG (no JFIF unit) whose EXIF states 300 across and 150 down was read as 300x300 (PIL reads
    XResolution alone), in inches and in centimetres."""
    for unit, expected in ((2, (300.0, 150.0)), (3, (762.0, 381.0)), (1, None)):
        exif = Image.Exif()
        exif[0x011A], exif[0x011B], exif[0x0128] = 300.0, 150.0, unit
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "camera.jpg", exif=exif)
        with Image.open(tmp_path / "camera.jpg") as camera:
            assert camera.info.get("jfif_unit") == 0
        assert io_.read_picture(tmp_path / "camera.jpg")[1].get("dpi") == (
            pytest.approx(expected) if expected else None), unit


def test_a_turned_picture_s_xmp_resolution_is_turned_with_its_exif(tmp_path):
    """Its XMP kept 300 across and 150 down beside an EXIF and a dpi of 150x300, and an orientation reset to 1."""
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6" tiff:XResolution="300/1"'
           b' tiff:YResolution="150/1"><tiff:ResolutionUnit>2</tiff:ResolutionUnit></rdf:Description></rdf:RDF>'
           b'</x:xmpmeta>')
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(
        tmp_path / "turned.tif", tiffinfo={274: 6, 282: 300.0, 283: 150.0, 296: 2, 700: xmp})
    pixels, kept = io_.read_picture(tmp_path / "turned.tif")
    assert pixels.shape == (60, 40, 3) and kept["dpi"] == (150, 300)
    assert b'tiff:XResolution="150/1" tiff:YResolution="300/1"' in kept["xmp"]
    assert b'tiff:Orientation="6"' not in kept["xmp"]  # (reset to 1, or left out as newer Pillows do)
    assert io_.metadata._xmp_resolution_swapped(b"<tiff:XResolution>7/1</tiff:XResolution>") == (
        b"<tiff:XResolution>7/1</tiff:XResolution>")  # one of them alone is left as it was


def test_a_jpeg_s_resolution_per_centimetre_is_read_on_every_pillow(tmp_path):
    """Pillow 9 gives no dpi for a JFIF unit of dots per cm: the result lost its resolution, or got 72 dpi."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buffer, "JPEG", dpi=(118, 59))
    data = bytearray(buffer.getvalue())
    assert data[6:11] == b"JFIF\0"
    data[13] = 2  # the JFIF unit: dots per cm
    (tmp_path / "cm.jpg").write_bytes(bytes(data))
    assert io_.read_picture(tmp_path / "cm.jpg")[1]["dpi"] == pytest.approx((299.72, 149.86))


def test_a_lone_exif_xresolution_stays_when_the_picture_is_turned(tmp_path):
    """A lone XResolution (square pixels) became a lone YResolution: readers then found no resolution."""
    exif = Image.Exif()
    exif[0x0112], exif[0x011A], exif[0x0128] = 6, 300.0, 2
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "turned.jpg", exif=exif)
    pixels, kept = io_.read_picture(tmp_path / "turned.jpg")
    carried = Image.Exif()
    carried.load(kept["exif"])
    assert pixels.shape == (60, 40, 3) and carried.get(0x011A) == 300 and 0x011B not in carried


def test_a_tiff_s_lone_xresolution_is_square(tmp_path):
    """PIL gives a missing YResolution as 1: a TIFF stating 300 across alone came out at 300x1 dpi."""
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "x.tif", tiffinfo={282: 300.0, 296: 2})
    assert io_.read_picture(tmp_path / "x.tif")[1]["dpi"] == (300, 300)


@pytest.mark.parametrize("turn, dpi", [(4, (300, 150)), (5, (150, 300)), (8, (150, 300))])
def test_a_picture_s_resolution_is_turned_with_it_only_by_an_orientation_of_5_to_8(tmp_path, turn, dpi):
    """Orientations 5 to 8 swap width and height, so the resolution's across and down; 2 to 4 only flip."""
    exif = Image.Exif()
    exif[0x0112] = turn
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "t.jpg", dpi=(300, 150), exif=exif)
    pixels, kept = io_.read_picture(tmp_path / "t.jpg")
    assert pixels.shape == ((40, 60, 3) if turn < 5 else (60, 40, 3)) and kept["dpi"] == dpi


def test_quiet_exif_holds_back_pillows_damaged_exif_warnings_alone_and_only_inside_it():
    """Another warning given meanwhile still reaches its caller, and Pillow's own come back once the block is left."""
    import warnings

    from phnet.imageio.metadata import quiet_exif

    cut = b"II*\0\x08\0\0\0\x02\0" + bytes(6)  # two entries announced, half of one there
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        with quiet_exif():
            Image.Exif().load(cut)
            warnings.warn("a word of our own", UserWarning)
        Image.Exif().load(cut)
    assert [str(w.message)[:17] for w in told] == ["a word of our own", "Corrupt EXIF data"]
