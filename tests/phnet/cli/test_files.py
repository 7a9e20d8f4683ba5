"""`phnet harmonize`: the files it writes (whole or not at all, with the composite's colour profile and
EXIF, in a quality that keeps the background) and the inputs it refuses before doing any work."""
from __future__ import annotations

from pathlib import Path

import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, JpegImagePlugin

from phnet import cli
from phnet.cli import harmonize as harmonize_command, jobs, saving
from tests.helpers.cli_pictures import H, W, read_whole
from tests.helpers.cli_pictures import composite as _composite, folders, harmonize as _harmonize, mask as _mask


def _pair(tmp_path: Path, name: str = "comp.png", **save) -> tuple[Path, Path]:
    comp, mask = tmp_path / name, tmp_path / "mask.png"
    _composite().save(comp, **save)
    _mask().save(mask)
    return comp, mask


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ----------------------------------------------------------------------------------------------------
# whole or not at all


def test_every_file_is_written_through_the_atomic_helper(tiny_folder, tmp_path, monkeypatch):
    written = []
    write_atomic = saving.write_atomic
    monkeypatch.setattr(saving, "write_atomic", lambda path, write: (written.append(path), write_atomic(path, write)))
    comp, mask = _pair(tmp_path)
    out = tmp_path / "out"
    assert _harmonize(comp, mask, "-o", out / "r.jpg", "--weights", tiny_folder, "--compare", out / "c.webp") == 0
    assert sorted(written) == sorted(out.iterdir()) == [out / "c.webp", out / "r.jpg"]


def test_ctrl_c_while_saving_keeps_the_previous_result(tiny_folder, tmp_path, monkeypatch, capsys):
    comp, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"the previous result")

    written = []

    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"half a pic")
        written.append(fp)
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 130
    assert out.read_bytes() == b"the previous result"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert len(written) == 1 and written[0].closed  # (on Windows an open file cannot be removed)
    assert capsys.readouterr().err == "interrupted; files written so far are complete\n"


@pytest.mark.skipif(not hasattr(os, "kill") or os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_kill_while_saving_leaves_no_temporary_file(tiny_folder, tmp_path, monkeypatch, capsys, name, code):
    """SIGTERM ended the process at once: the file being written stayed behind as a hidden temporary one."""
    import signal

    comp, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    signum = getattr(signal, name)
    # as a terminal leaves it: a suite run under nohup inherits SIGHUP ignored, which the CLI rightly keeps
    outer = signal.signal(signum, signal.SIG_DFL)

    def killed(self, fp, *args, **kwargs):
        fp.write(b"half a pic")
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(Image.Image, "save", killed)
    try:
        assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == code
        assert not out.exists() and not list(tmp_path.glob(".*"))
        assert capsys.readouterr().err == "interrupted; files written so far are complete\n"
        assert signal.getsignal(signum) == signal.SIG_DFL  # the caller's handler is back
    finally:
        signal.signal(signum, outer)


# ----------------------------------------------------------------------------------------------------
# what a result carries, and how it is encoded


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_and_exif_are_carried_with_the_orientation_reset(tiny_folder, tmp_path, suffix):
    stored = _composite(size=(H, W))  # sideways, "rotate 90°" in EXIF
    exif = stored.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    comp, mask = tmp_path / "phone.jpg", tmp_path / "mask.png"
    stored.save(comp, exif=exif, icc_profile=SRGB, quality=95)
    _mask().save(mask)
    out, compare = tmp_path / f"out{suffix}", tmp_path / f"compare{suffix}"
    assert _harmonize(comp, mask, "-o", out, "--compare", compare, "--weights", tiny_folder) == 0
    for path in (out, compare):
        with Image.open(path) as written:
            assert written.info.get("icc_profile") == SRGB
            assert written.getexif().get(0x010F) == "PhoneMaker" and written.getexif().get(0x0112) == 1
    assert read_whole(out).size == (W, H)


def test_a_tif_result_keeps_its_own_layout_whatever_the_composites_exif_says(tiny_folder, tmp_path, capsys):
    """A camera's EXIF may carry the stored photo's width and height (and its colour model): Pillow's TIFF
    writer took them over the result's own, and the .tif came out sideways and cut, or did not write."""
    stored = _composite(size=(H, W))
    exif = stored.getexif()
    exif[0x0112], exif[256], exif[257], exif[262] = 6, H, W, 6
    comp, mask = tmp_path / "phone.jpg", tmp_path / "mask.png"
    stored.save(comp, exif=exif, quality=95)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert _harmonize(comp, mask, "-o", tmp_path / "out.tif", "--compare", tmp_path / "c.tif",
                      "--weights", tiny_folder) == 0
    tif, png = read_whole(tmp_path / "out.tif"), read_whole(tmp_path / "out.png")
    assert tif.mode == "RGB" and tif.size == png.size == (W, H)
    assert np.array_equal(np.asarray(tif), np.asarray(png))


@pytest.mark.parametrize("tag, value", [(266, 2), (338, 2), (339, 3)])
def test_a_tif_result_takes_no_bit_order_or_sample_format_from_the_composites_exif(tiny_folder, tmp_path, tag,
                                                                                      value):
    """FillOrder 2 came out with every byte's bits reversed; ExtraSamples and SampleFormat made a .tif no reader
    opens; and the CLI said "wrote"."""
    stored = _composite()
    exif = stored.getexif()
    exif[0x010F], exif[tag] = "Cam", value
    comp, mask = tmp_path / "cam.jpg", tmp_path / "mask.png"
    stored.save(comp, exif=exif, quality=95)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert _harmonize(comp, mask, "-o", tmp_path / "out.tif", "--weights", tiny_folder) == 0
    with Image.open(tmp_path / "out.tif") as tif, Image.open(tmp_path / "out.png") as png:
        assert np.array_equal(np.asarray(tif), np.asarray(png)) and tif.getexif().get(0x010F) == "Cam"


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_a_tif_composite_s_exif_is_carried_without_its_layout(tiny_folder, tmp_path, suffix):
    """A TIFF keeps its EXIF among its own tags: the camera, the date and the GPS were dropped without a note."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "ScanCam", 1
    exif[0x8769] = {0x9003: "2020:01:01 10:00:00"}
    exif[0x8825] = {1: "N"}
    carrier = tmp_path / "carrier.jpg"
    _composite().save(carrier, exif=exif.tobytes())
    comp, mask = tmp_path / "cam.tif", tmp_path / "mask.png"
    _composite().save(comp, exif=read_whole(carrier).getexif())
    _mask().save(mask)
    out = tmp_path / f"out{suffix}"
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    with Image.open(out) as written:
        assert written.size == (W, H) and written.mode == "RGB"
        tags = written.getexif()
        assert tags.get(0x010F) == "ScanCam" and tags.get_ifd(0x8769) == {0x9003: "2020:01:01 10:00:00"}
        assert tags.get_ifd(0x8825) == {1: "N"}


def test_an_exif_too_large_for_a_jpeg_is_left_out_with_a_note(tiny_folder, tmp_path, capsys):
    exif = Image.Exif()
    exif[0x010F] = "x" * 70000  # a maker note's worth
    comp, mask = tmp_path / "big.png", tmp_path / "mask.png"
    _composite().save(comp, exif=exif)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    assert "leaves out the EXIF (68 KB), more than a JPEG holds (64 KB)" in capsys.readouterr().out
    assert read_whole(tmp_path / "out.jpg").size == _composite().size


def test_a_profile_of_another_colour_space_is_not_carried_and_that_is_said(tiny_folder, tmp_path, capsys):
    grey_profile = SRGB[:16] + b"GRAY" + SRGB[20:]  # a grey composite's profile does not describe an RGB result
    comp, mask = tmp_path / "grey.png", tmp_path / "mask.png"
    _composite().convert("L").save(comp, icc_profile=grey_profile)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert read_whole(tmp_path / "out.png").mode == "RGB"
    assert "icc_profile" not in read_whole(tmp_path / "out.png").info
    assert (f"note: from {comp}, {tmp_path / 'out.png'} leaves out the GRAY colour profile, which does not describe "
            "the RGB result") in capsys.readouterr().out


def test_a_damaged_profile_is_not_carried_and_is_named_as_damaged(tiny_folder, tmp_path, capsys):
    """A profile that is no ICC profile was named by its bytes 16-20 as a colour space: "leaves out the rbag colour
    profile" (of b'garbage...'), "the  colour profile" (of a short one)."""
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _mask().save(mask)
    for profile in (b"garbage" * 10, b"ab", SRGB[:36] + b"xxxx" + SRGB[40:]):
        _composite().save(comp, icc_profile=profile)
        assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
        assert "icc_profile" not in read_whole(tmp_path / "out.png").info
        assert (f"note: from {comp}, {tmp_path / 'out.png'} leaves out the colour profile, which is damaged (no ICC "
                "profile's header)\n") in capsys.readouterr().out
    _composite().save(comp, icc_profile=SRGB)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert read_whole(tmp_path / "out.png").info["icc_profile"] == SRGB


def _generated(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A composite as image generators save it: their settings in PNG text chunks."""
    from PIL.PngImagePlugin import PngInfo

    text = {"parameters": "a portrait, golden hour\nSteps: 30, Sampler: Euler a, Seed: 1234", "prompt": '{"3": {}}',
            "Comment": "paysage d’été"}  # not Latin-1: an iTXt chunk
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    comp, mask = _pair(tmp_path, "generated.png", pnginfo=info)
    return comp, mask, text


def test_a_generators_png_text_is_carried_into_a_png_result(tiny_folder, tmp_path, capsys):
    """Its settings (A1111's parameters, ComfyUI's prompt and workflow) were lost from the harmonized file."""
    comp, mask, text = _generated(tmp_path)
    out = tmp_path / "out.png"
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder, "--compare", tmp_path / "c.png") == 0
    assert read_whole(out).text == text
    assert not read_whole(tmp_path / "c.png").text  # the comparison is not the generator's picture
    assert "note:" not in capsys.readouterr().out


@pytest.mark.parametrize("carrier", ["xmp", "raw exif", "raw exif and exif"])
def test_an_orientation_in_png_text_is_reset_with_the_pixels(tiny_folder, tmp_path, carrier):
    """XMP and ImageMagick's hex EXIF in PNG text carry an orientation too: copied as they were, the upright
    result was turned a second time by every reader."""
    from PIL.PngImagePlugin import PngInfo

    from phnet.imageio import read_image

    info = PngInfo()
    if carrier == "xmp":
        info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    else:
        exif = Image.Exif()
        exif[0x0112] = 6
        data = exif.tobytes()
        info.add_text("Raw profile type exif", f"\nexif\n{len(data):8}\n{data.hex()}\n")
    comp, mask, out = tmp_path / "turned.png", tmp_path / "mask.png", tmp_path / "out.png"
    extra = {"exif": data} if carrier == "raw exif and exif" else {}
    _composite(size=(H, W)).save(comp, pnginfo=info, **extra)  # stored sideways
    _mask().save(mask)  # drawn on the upright picture
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert read_image(out).shape[:2] == read_image(comp).shape[:2] == (H, W)
    assert "Raw profile type exif" not in read_whole(out).text  # its EXIF, reset, is the eXIf chunk's


_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def _jpeg_xmp(data: bytes) -> dict:
    """Save options that put ``data`` in a JPEG as its XMP segment on every Pillow (Pillow 9 and 10 ignore
    ``xmp=``)."""
    return {"extra": b"\xff\xe1" + (2 + len(_JPEG_XMP) + len(data)).to_bytes(2, "big") + _JPEG_XMP + data}


def _xmp_in(path) -> bytes | None:
    """The XMP a file holds, found also where Pillow 9 does not put it in ``info`` (a JPEG's, a TIFF's)."""
    with Image.open(path) as image:
        found = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or getattr(image, "tag_v2", {}).get(700)
        found = found or next((data[len(_JPEG_XMP):] for _, data in getattr(image, "applist", [])
                               if data.startswith(_JPEG_XMP)), None)
    found = found[0] if isinstance(found, tuple) else found
    return found.encode() if isinstance(found, str) else found


@pytest.mark.parametrize("source", [".jpg", ".png", ".webp", ".tif"])
def test_xmp_metadata_goes_with_the_result_in_every_format_that_holds_it(tiny_folder, tmp_path, capsys, source):
    """A JPEG's, WebP's or TIFF's XMP (a photographer's dc:rights) was dropped silently, and a PNG's reached
    PNG results alone, 'which only a .png holds'."""
    from PIL.PngImagePlugin import PngInfo

    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description><dc:rights>(c) Jane Doe</dc:rights>'
           "</rdf:Description></rdf:RDF></x:xmpmeta>")
    comp, mask = tmp_path / f"photo{source}", tmp_path / "mask.png"
    options = {".png": {"pnginfo": PngInfo()}, ".tif": {"tiffinfo": {700: xmp.encode()}},
               ".webp": {"xmp": xmp.encode(), "lossless": True}, ".jpg": _jpeg_xmp(xmp.encode())}[source]
    if source == ".png":
        options["pnginfo"].add_itxt("XML:com.adobe.xmp", xmp)
    _composite().save(comp, **options)
    _mask().save(mask)
    for suffix in (".png", ".jpg", ".webp", ".tif"):
        out = tmp_path / f"out{suffix}"
        assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
        assert b"(c) Jane Doe" in _xmp_in(out), suffix
    assert "leaves out" not in capsys.readouterr().out


def test_a_png_s_gamma_and_chromaticity_go_with_a_png_result_and_are_named_otherwise(tiny_folder, tmp_path,
                                                                                      capsys):
    """A PNG without a profile says what its values mean with gAMA and cHRM, which browsers honour: dropped
    silently, the whole result, background too, was shown otherwise than the composite."""
    import struct

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add(b"gAMA", struct.pack(">I", 100000))  # linear values
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    comp, mask = tmp_path / "linear.png", tmp_path / "mask.png"
    _composite().save(comp, pnginfo=info)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    out = read_whole(tmp_path / "out.png").info
    assert out["gamma"] == 1.0 and out["chromaticity"] == read_whole(comp).info["chromaticity"]
    assert "leaves out" not in capsys.readouterr().out
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    assert "leaves out the PNG colour chunks (gAMA, cHRM), which only a .png holds" in capsys.readouterr().out


def test_xmp_that_is_not_utf8_keeps_its_bytes_and_a_png_names_what_it_cannot_hold(tiny_folder, tmp_path,
                                                                                    capsys):
    """Decoded as UTF-8 with replacements, a Latin-1 packet's rights holder was mangled in every result."""
    xmp = '<x:xmpmeta><rdf:Description><dc:rights>\xa9 Jos\xe9 M\xfcller</dc:rights></rdf:Description></x:xmpmeta>'
    comp, mask = tmp_path / "photo.jpg", tmp_path / "mask.png"
    _composite().save(comp, **_jpeg_xmp(xmp.encode("latin-1")))
    _mask().save(mask)
    for suffix in (".jpg", ".webp", ".tif"):
        assert _harmonize(comp, mask, "-o", tmp_path / f"out{suffix}", "--weights", tiny_folder) == 0
        assert _xmp_in(tmp_path / f"out{suffix}") == xmp.encode("latin-1"), suffix
    capsys.readouterr()
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert "leaves out the XMP metadata, which is not text a PNG's XMP chunk holds" in capsys.readouterr().out
    utf16 = '<?xpacket begin="\ufeff"?><x:xmpmeta><dc:rights>Jos\xe9</dc:rights></x:xmpmeta>'  # its mark inside
    _composite().save(comp, **_jpeg_xmp(utf16.encode("utf-16-le")))
    assert _harmonize(comp, mask, "-o", tmp_path / "out16.png", "--weights", tiny_folder) == 0
    assert "Jos\xe9" in read_whole(tmp_path / "out16.png").info["XML:com.adobe.xmp"]


def test_a_png_s_srgb_chunks_are_no_loss_in_a_file_read_as_srgb_anyway(tiny_folder, tmp_path, capsys):
    """A plain sRGB PNG (Paint's sRGB + gAMA 1/2.2) was said to leave its colour chunks out of every .jpg."""
    import struct

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add(b"sRGB", b"\x00")
    info.add(b"gAMA", struct.pack(">I", 45455))
    comp, mask = tmp_path / "paint.png", tmp_path / "mask.png"
    _composite().save(comp, pnginfo=info)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    assert "leaves out" not in capsys.readouterr().out


def test_png_text_a_format_cannot_hold_is_named(tiny_folder, tmp_path, capsys):
    comp, mask, _ = _generated(tmp_path)
    out = tmp_path / "out.jpg"
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert (f"note: from {comp}, {out} leaves out the PNG text (parameters, prompt, Comment), which only a .png "
            "holds") in capsys.readouterr().out


def test_frames_say_once_what_their_files_could_not_carry(tiny_folder, tmp_path, capsys):
    from PIL.PngImagePlugin import PngInfo

    grey_profile = SRGB[:16] + b"GRAY" + SRGB[20:]
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir(), masks.mkdir()
    info = PngInfo()
    info.add_text("parameters", "Steps: 30")
    for i in range(3):
        _composite(seed=i).convert("L").save(frames / f"{i}.png", pnginfo=info, icc_profile=grey_profile)
        _mask().save(masks / f"{i}.png")
    assert cli.main(["harmonize", str(frames), str(masks), "-o", str(tmp_path / "out"), "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 0
    assert read_whole(tmp_path / "out" / "1.png").text == {"parameters": "Steps: 30"}
    assert capsys.readouterr().out.count("note: from their composites, the frames' files leave out the GRAY colour "
                                         "profile, which does not describe the RGB result") == 1


def test_jpeg_is_written_at_quality_95_without_subsampling_and_webp_lossless(tiny_folder, tmp_path):
    comp, mask = _pair(tmp_path)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    jpeg = read_whole(tmp_path / "out.jpg")
    assert JpegImagePlugin.get_sampling(jpeg) == 0 and max(jpeg.quantization[0]) <= 12  # quality 75: up to 61
    assert _harmonize(comp, mask, "-o", tmp_path / "out.webp", "--weights", tiny_folder) == 0
    bg = np.asarray(_mask()) == 0
    webp = np.asarray(Image.open(tmp_path / "out.webp").convert("RGB"))
    assert np.array_equal(webp[bg], np.asarray(_composite())[bg])


def test_png_is_written_at_zlib_level_4(tiny_folder, tmp_path, monkeypatch):
    """At Pillow's default level 6, writing a folder of 1080p results took 60 % of the run (level 4: a third of the
    time for 5 % more bytes, as ComfyUI writes)."""
    from PIL import PngImagePlugin

    levels, save = [], PngImagePlugin._save

    def recorded(im, fp, filename, *args, **kwargs):
        levels.append(im.encoderinfo.get("compress_level"))
        return save(im, fp, filename, *args, **kwargs)

    comp, mask = _pair(tmp_path)
    monkeypatch.setattr(PngImagePlugin, "_save", recorded)
    monkeypatch.setitem(Image.SAVE, "PNG", recorded)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert levels == [4]


def test_transparent_composite_into_jpeg_is_refused_before_any_work(tmp_path, capsys):
    rgba = _composite().convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    comp, mask = tmp_path / "cutout.png", tmp_path / "mask.png"
    rgba.save(comp)
    _mask().save(mask)
    with pytest.raises(SystemExit) as e:  # before the (missing) weights are even looked for
        _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tmp_path / "missing")
    assert "transparent pixels" in str(e.value.code) and ".png, .webp or .tif" in str(e.value.code)
    assert not (tmp_path / "out.jpg").exists()


def test_opaque_alpha_into_jpeg_is_written(tiny_folder, tmp_path):
    comp, mask = tmp_path / "opaque.png", tmp_path / "mask.png"
    _composite().convert("RGBA").save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    assert read_whole(tmp_path / "out.jpg").mode == "RGB"


@pytest.mark.parametrize("name", ["out.jpg", "out.bmp"])
def test_a_transparent_result_is_never_written_without_its_alpha(tmp_path, name):
    """The plan refuses such a composite first; writing a result that still has transparent pixels into a format
    without alpha refuses too, rather than dropping them."""
    result = np.full((4, 5, 4), 255, np.uint8)
    result[0, 0, 3] = 0
    with pytest.raises(ValueError, match=f"the result has transparent pixels, which {name} cannot hold"):
        saving.save_result(result, tmp_path / name, {})
    assert not (tmp_path / name).exists()
    result[0, 0, 3] = 255  # opaque: its colour alone is written
    assert saving.save_result(result, tmp_path / name, {}) == []
    assert read_whole(tmp_path / name).mode == "RGB"


def test_an_existing_folder_whose_name_has_a_dot_is_a_folder_output(tiny_folder, tmp_path):
    comp, mask = _pair(tmp_path, "photo.jpg", quality=95)
    (tmp_path / "results.v2").mkdir()
    assert _harmonize(comp, mask, "-o", tmp_path / "results.v2", "--weights", tiny_folder) == 0
    assert [p.name for p in (tmp_path / "results.v2").iterdir()] == ["photo.png"]


def test_a_mask_file_given_with_a_folder_of_composites_is_refused_with_the_fix(tmp_path):
    comps, masks = folders(tmp_path, "a.png")
    with pytest.raises(SystemExit) as stop:  # before the (missing) weights are looked for
        _harmonize(comps, masks / "a.png", "-o", tmp_path / "out", "--weights", tmp_path / "missing")
    assert str(stop.value) == ("error: with a folder of composites, MASK must be a folder of masks with the same "
                               "names")
    assert not (tmp_path / "out").exists()


def test_a_single_composite_into_a_folder_is_named_as_in_folder_mode(tiny_folder, tmp_path):
    comp, mask = _pair(tmp_path, "photo.jpg", quality=95)
    assert _harmonize(comp, mask, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]


# ----------------------------------------------------------------------------------------------------
# inputs refused with the fix named


@pytest.mark.parametrize("device,words", [("bogus", "not a device"), ("cuda", "no CUDA GPU"), ("mps", "MPS")])
def test_an_unusable_device_is_one_line_naming_the_fix(tmp_path, monkeypatch, device, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    comp, mask = _pair(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "out.png"), "--device", device])
    message = str(e.value.code)
    assert message.startswith(f"error: --device {device}: ") and words in message and "use " in message
    assert "\n" not in message


def test_a_gpu_index_beyond_those_visible_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    comp, mask = _pair(tmp_path)
    with pytest.raises(SystemExit, match=r"--device cuda:3: torch sees 1 CUDA GPU\(s\).*use cuda:0"):
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "out.png"), "--device", "cuda:3"])


def _three_composites(tmp_path: Path) -> tuple[Path, Path, Path]:
    """comps/ holding a.png, b.png and c.png, an empty masks/, and where a run writes (out/)."""
    comps, masks = tmp_path / "comps", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    for name in ("a", "b", "c"):
        _composite().save(comps / f"{name}.png")
    return comps, masks, tmp_path / "out"


def test_folder_mode_skips_hidden_files_and_names_every_missing_mask(tiny_folder, tmp_path):
    comps, masks, out = _three_composites(tmp_path)
    _mask().save(masks / "a.png")
    for folder in (comps, masks):  # macOS's AppleDouble files: not pictures
        (folder / "._a.png").write_bytes(b"\0\5\26\7 resource fork")
    with pytest.raises(SystemExit) as e:
        _harmonize(comps, masks, "-o", out, "--weights", tiny_folder)
    assert "no mask named b.*, c.* in" in str(e.value.code) and "2 of 3" in str(e.value.code)
    _composite().save(comps / "b.jpg")  # b.png and b.jpg both look for b.*: it is named once
    with pytest.raises(SystemExit) as e:
        _harmonize(comps, masks, "-o", out, "--weights", tiny_folder)
    assert "no mask named b.*, c.* in" in str(e.value.code) and "3 of 4" in str(e.value.code)
    (comps / "b.jpg").unlink()
    for name in ("b", "c"):
        _mask().save(masks / f"{name}.png")
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_folder_mode_counts_a_picture_linked_to_nothing_as_failed(tiny_folder, tmp_path, capsys):
    """It was passed over in silence (a folder of such links alone: "no images")."""
    comps, masks, out = _three_composites(tmp_path)
    for name in ("a", "b", "c"):
        _mask().save(masks / f"{name}.png")
    gone = tmp_path / "drive" / "b.png"
    (comps / "b.png").unlink()
    (comps / "b.png").symlink_to(gone)
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder) == 1
    printed = capsys.readouterr()
    assert (f"error: {comps / 'b.png'} links to {gone}, which does not exist (an unmounted drive?): connect it, or "
            "remove the link\n") in printed.err
    assert printed.err.endswith("error: 1 of 3 images failed (b.png); see the messages above\n")
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    for name in ("a", "c"):
        (comps / f"{name}.png").unlink()
    with pytest.raises(SystemExit) as e:  # a single picture
        _harmonize(comps / "b.png", masks / "b.png", "-o", tmp_path / "b.png", "--weights", tiny_folder)
    assert str(e.value.code) == (f"error: {comps / 'b.png'} links to {gone}, which does not exist (an unmounted "
                                 "drive?): connect it, or give another file")


def test_folder_mode_finds_gif_and_pbm_masks_as_single_mode_reads_them(tiny_folder, tmp_path):
    comps, masks, out = _three_composites(tmp_path)
    _mask().save(masks / "a.gif")
    _mask().convert("1").save(masks / "b.pbm")
    _mask().save(masks / "c.png")
    Image.new("L", (W, H), 255).save(masks / "c.gif")  # a preview beside c's mask is not taken for it
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder, "--threshold", "0") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_compare_errors_name_the_compare_option(tiny_folder, tmp_path):
    comp, mask = _pair(tmp_path)
    with pytest.raises(SystemExit) as e:
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--compare", "yes", "--weights", tiny_folder)
    assert "(--compare)" in str(e.value.code) and "-o" not in str(e.value.code)
    with pytest.raises(SystemExit, match="choose another --compare"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--compare", comp, "--weights", tiny_folder)
    with pytest.raises(SystemExit, match="-o and --compare are both"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--compare", tmp_path / "out.png", "--weights", tiny_folder)


def test_a_mask_drawn_on_the_stored_sideways_picture_is_told_about_the_rotation(tiny_folder, tmp_path):
    stored = _composite(size=(H, W))
    exif = stored.getexif()
    exif[0x0112] = 6
    comp, mask = tmp_path / "phone.jpg", tmp_path / "mask.png"
    stored.save(comp, exif=exif)
    _mask((H, W)).save(mask)  # the stored size, not the upright one
    with pytest.raises(SystemExit, match="rotated by its EXIF orientation.*draw the mask on the upright picture"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_a_mask_turned_by_its_own_exif_orientation_is_told_so(tiny_folder, tmp_path):
    """It was told to be resized to the composite (or to be drawn on the upright picture, which it was)."""
    comp, mask = tmp_path / "wide.png", tmp_path / "mask.png"
    _composite().save(comp)
    exif = Image.new("L", (1, 1)).getexif()
    exif[0x0112] = 6
    _mask().save(mask, exif=exif)  # the composite's size as stored, turned sideways as it is read
    with pytest.raises(SystemExit, match=r"turned to \d+×\d+ by its own EXIF orientation; as stored it fits .*wide"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    stored = _composite(size=(H, W))
    turned = stored.getexif()
    turned[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=turned)
    _mask((W, H)).save(mask, exif=exif)  # drawn on the upright picture, the tag left on
    with pytest.raises(SystemExit, match="by its own EXIF orientation; as stored it fits .*phone.jpg"):
        _harmonize(tmp_path / "phone.jpg", mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def _xmp_turned(turn: int = 6) -> bytes:
    """A JPEG's APP1 segment of XMP whose tiff:Orientation is ``turn``, for ``save(extra=...)``."""
    from phnet.imageio.metadata import JPEG_XMP

    segment = JPEG_XMP + (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
                          b'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="'
                          + str(turn).encode() + b'"/></rdf:RDF></x:xmpmeta>')
    return b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment


def test_a_turn_given_in_the_xmp_alone_is_named_as_the_xmp_s(tiny_folder, tmp_path):
    """A mask or composite turned by its XMP's tiff:Orientation, with no EXIF at all, was said to be turned by its
    EXIF orientation, and the mask to be saved without that EXIF tag."""
    comp, mask = tmp_path / "wide.png", tmp_path / "mask.jpg"
    _composite().save(comp)
    _mask().save(mask, quality=95, extra=_xmp_turned())
    with pytest.raises(SystemExit, match=r"turned to \d+×\d+ by its own XMP tiff:Orientation; as stored it fits .*wide"
                                         r".*: save the mask without that XMP orientation"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    _composite(size=(H, W)).save(tmp_path / "phone.jpg", quality=95, extra=_xmp_turned())
    _mask((H, W)).save(tmp_path / "mask.png")  # the stored size, not the upright one
    with pytest.raises(SystemExit, match="rotated by its XMP tiff:Orientation.*draw the mask on the upright picture"):
        _harmonize(tmp_path / "phone.jpg", tmp_path / "mask.png", "-o", tmp_path / "out.png", "--weights", tiny_folder)
    exif = Image.new("L", (1, 1)).getexif()
    exif[0x0112] = 6
    _mask().save(mask, quality=95, exif=exif, extra=_xmp_turned())  # both: the EXIF's rules
    with pytest.raises(SystemExit, match="by its own EXIF orientation; .*: save the mask without that EXIF tag"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_a_mask_with_a_transparent_border_is_read_by_its_painted_grey(tiny_folder, tmp_path):
    size = (100, 80)  # a 2 px border: under 10 % of the picture
    m = np.asarray(_mask(size))
    rgba = np.dstack([m, m, m, np.full_like(m, 255)])
    rgba[:2, :, 3] = rgba[-2:, :, 3] = rgba[:, :2, 3] = rgba[:, -2:, 3] = 0
    comp, mask = tmp_path / "comp.png", tmp_path / "border.png"
    _composite(size=size).save(comp)
    Image.fromarray(rgba).save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder, "--threshold", "0") == 0
    result = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(result[m == 0], np.asarray(_composite(size=size))[m == 0])
    assert not np.array_equal(result[m > 0], np.asarray(_composite(size=size))[m > 0])


def test_a_result_with_a_long_name_is_written(tiny_folder, tmp_path):
    """The temporary name added ~20 bytes to the target's: a prompt-length name of 236 bytes or more failed
    after the work, naming a hidden file."""
    name = "p" * 160 + "_портрет" * 5  # 235 bytes in UTF-8 (the file 239), 200 characters
    comp, mask = tmp_path / f"{name}.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    out = tmp_path / "out" / f"{name}.png"
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert read_whole(out).size == _composite().size and [p.name for p in out.parent.iterdir()] == [out.name]


def test_a_result_name_longer_than_the_file_system_takes_is_refused_before_the_work(tmp_path, monkeypatch):
    """A folder run's NAME_compare.png passed 255 bytes where the composite's name fit: the result was written,
    the comparison failed after the work, and the run said "harmonized 0 of 1"."""
    monkeypatch.setattr(harmonize_command, "harmonize_one", lambda *a: pytest.fail("a picture was computed"))
    comps, masks = folders(tmp_path, "a" * 246 + ".png")
    with pytest.raises(SystemExit) as e:
        _harmonize(comps, masks, "-o", tmp_path / "out", "--compare", "yes")
    assert str(e.value).startswith(f"error: the comparison of {comps / ('a' * 246 + '.png')} would be named ")
    assert str(e.value).endswith(f"; give {'a' * 246}.png a shorter name")
    assert not (tmp_path / "out").exists()
    comp, mask = _pair(tmp_path)
    with pytest.raises(SystemExit, match=r"error: -o b{256}\.png is 260 \w+ long, .*; choose a shorter -o$"):
        _harmonize(comp, mask, "-o", tmp_path / "new" / ("b" * 256 + ".png"))
    for option in ("-o", "--compare"):  # in a folder that is there: Path.is_dir raised "File name too long"
        with pytest.raises(SystemExit, match=rf"error: {option} c{{256}}\.png is 260 \w+ long, .*; choose a shorter"):
            _harmonize(comp, mask, *(["-o", tmp_path / "r.png"] if option == "--compare" else []), option,
                       tmp_path / ("c" * 256 + ".png"))


def test_names_that_differ_only_in_case_are_one_file_on_windows_and_macos(tiny_folder, tmp_path, monkeypatch):
    """Photo.jpg and photo.png gave Photo.png and photo.png: one file there, so one result was lost; a mask
    named img_0001.png was not found for IMG_0001.JPG. Where names keep their case (Linux), nothing changes."""

    (tmp_path / "linux" / "out").mkdir(parents=True)
    comps, masks = folders(tmp_path / "linux", "a.png", "A.png")
    if jobs.folds_names(tmp_path):
        pytest.skip("this file system folds case")
    assert _harmonize(comps, masks, "-o", f"{tmp_path / 'linux' / 'out'}/", "--weights", tiny_folder) == 0
    assert sorted(p.name for p in (tmp_path / "linux" / "out").iterdir()) == ["A.png", "a.png"]
    monkeypatch.setattr(jobs, "folds_names", lambda folder: True)  # as on Windows and macOS
    comps, masks = tmp_path / "c", tmp_path / "m"
    comps.mkdir()
    masks.mkdir()
    _composite().save(comps / "Photo.jpg")
    _composite().save(comps / "photo.png")
    _composite().save(comps / "IMG_0001.JPG")
    for name in ("photo.png", "img_0001.png"):
        _mask().save(masks / name)
    assert _harmonize(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_0001.png", "Photo_jpg.png", "photo_png.png"]
    with pytest.raises(SystemExit, match="differ only in case are one file"):
        _harmonize(comps / "photo.png", masks / "photo.png", "-o", tmp_path / "one" / "result.png", "--compare",
                   tmp_path / "one" / "Result.png", "--weights", tiny_folder)


def test_output_redirected_to_a_file_in_a_code_page_that_lacks_the_names_characters(tiny_folder, tmp_path):
    """Windows writes redirected stdout in cp1252: a result named Фото was written, then reported failed."""
    import subprocess
    import sys

    comps, masks = folders(tmp_path, "Фото.png")
    code = ("import sys; from phnet.console import entry; sys.argv = ['phnet', 'harmonize', sys.argv[1], sys.argv[2], "
            "'-o', sys.argv[3], '--weights', sys.argv[4]]; entry()")
    done = subprocess.run([sys.executable, "-c", code, str(comps), str(masks), f"{tmp_path / 'out'}/",
                           str(tiny_folder)],
                          capture_output=True, env={**os.environ, "PYTHONIOENCODING": "cp1252"}, timeout=120)
    assert done.returncode == 0, done.stderr.decode("cp1252", "replace")
    assert b"\\u0424" in done.stdout and (tmp_path / "out" / "Фото.png").is_file()


def test_a_mask_named_exactly_wins_over_one_that_matches_only_folded(tmp_path):
    (tmp_path / "m").mkdir()
    for name in ("A.png", "a.png", "b.jpg", "B.png"):
        _mask().save(tmp_path / "m" / name)
    found = jobs.find_masks(tmp_path / "m", [Path("a.jpg"), Path("b.png"), Path("IMG.png")][:2])
    assert [m.name for m in found] == ["a.png", "b.jpg"]  # exact stems before A.png's and B.png's folded names
    _mask().save(tmp_path / "m" / "img_0001.png")
    assert jobs.find_masks(tmp_path / "m", [Path("IMG_0001.JPG")])[0].name == "img_0001.png"
    with pytest.raises(SystemExit, match=r"no mask named IMG_0001\.\* .*\(1 of 2 composites\)"):
        jobs.find_masks(tmp_path / "m", [Path("IMG_0001.JPG"), Path("img_0001.jpg")])  # the mask is img_0001's own


def test_a_folder_takes_every_photo_pillow_opens_not_only_the_common_suffixes(tiny_folder, tmp_path):
    """Windows saves JPEGs as .jfif: such a frame was passed over without a word, in clips too."""
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "o"
    comps.mkdir()
    masks.mkdir()
    _composite().save(comps / "a.jfif", format="JPEG")
    _composite().save(comps / "b.png")
    _mask().save(masks / "a.tga")
    _mask().save(masks / "b.png")
    (comps / "notes.txt").write_text("not a picture")
    _composite().save(comps / "preview.gif")  # an animation's preview, an icon: no photos of the run
    _composite().save(comps / "b.ico")
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_a_composite_in_a_mask_only_format_with_a_mask_of_its_own_is_named_not_passed_over(tiny_folder, tmp_path,
                                                                                           capsys):
    """b.gif was left out without a word (GIF and PBM are taken in a masks folder only), its mask unused."""
    comps, masks = folders(tmp_path, "a.png", "b.png", "c.png")
    (comps / "b.png").rename(comps / "b.gif")
    Image.open(comps / "c.png").convert("1").save(comps / "c.pbm")  # beside c.png, whose mask it is: no frame lost
    _composite().save(comps / "preview.gif")  # no mask of its own: no picture of the run
    assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--weights", tiny_folder) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    out = capsys.readouterr().out
    assert (f"note: left out b.gif, named like a mask in {masks}: GIF is read as a mask only; save the frame as PNG"
            in out) and "preview" not in out and "c.pbm" not in out


def test_transparency_given_as_a_key_colour_is_kept_as_an_alpha_is(tiny_folder, tmp_path):
    """An RGB PNG with a tRNS colour came back opaque in .png (while .jpg was refused for its transparency)."""
    rgb = np.asarray(_composite()).copy()
    rgb[:6, :6] = (1, 2, 3)
    comp = tmp_path / "keyed.png"
    Image.fromarray(rgb).save(comp, transparency=(1, 2, 3))
    assert read_whole(comp).mode == "RGB"
    _mask().save(tmp_path / "m.png")
    out = tmp_path / "out.png"
    assert _harmonize(comp, tmp_path / "m.png", "-o", out, "--weights", tiny_folder) == 0
    result = np.asarray(Image.open(out).convert("RGBA"))
    assert (result[:6, :6, 3] == 0).all() and (result[6:, 6:, 3] == 255).all()


def test_a_result_too_large_for_its_format_is_named_before_the_work(tiny_folder, tmp_path):
    """WebP stores 16383 px a side: the encoder said so after the work, without naming the file."""
    comp, mask = tmp_path / "pano.png", tmp_path / "m.png"
    Image.new("RGB", (16400, 16), (90, 100, 110)).save(comp)
    Image.new("L", (16400, 16), 0).save(mask)
    with pytest.raises(SystemExit, match=r"-o o.webp would be 16400x16 pixels, more than .webp can store \(16383 a "):
        _harmonize(comp, mask, "-o", tmp_path / "o.webp", "--weights", tiny_folder)
    Image.new("RGB", (8200, 16), (90, 100, 110)).save(comp)  # the comparison is two of it side by side
    Image.new("L", (8200, 16), 0).save(mask)
    with pytest.raises(SystemExit, match=r"--compare c.webp would be 16408x44 pixels"):
        _harmonize(comp, mask, "-o", tmp_path / "o.png", "--compare", tmp_path / "c.webp", "--weights", tiny_folder)
    assert not (tmp_path / "o.png").exists()
    Image.new("RGB", (65520, 8), (90, 100, 110)).save(comp)  # libjpeg's limit is 65500, not 65535
    Image.new("L", (65520, 8), 0).save(mask)
    with pytest.raises(SystemExit, match=r"-o o.jpg would be 65520x8 pixels, more than .jpg can store \(65500 a "):
        _harmonize(comp, mask, "-o", tmp_path / "o.jpg", "--weights", tiny_folder)


def test_a_result_exactly_as_large_as_its_format_stores_is_let_through(tmp_path):
    comp = tmp_path / "pano.png"
    Image.new("RGB", (16383, 2), (90, 100, 110)).save(comp)
    jobs.check_format_limits(jobs.Job(comp, None, tmp_path / "o.webp"))  # WebP's own limit: written
    Image.new("RGB", (16384, 2), (90, 100, 110)).save(comp)
    with pytest.raises(SystemExit, match=r"-o o.webp would be 16384x2 pixels, more than .webp can store \(16383 a "):
        jobs.check_format_limits(jobs.Job(comp, None, tmp_path / "o.webp"))


def test_a_composite_beyond_pils_pixel_guard_is_named_when_written_without_alpha(tiny_folder, tmp_path, monkeypatch):
    """Checking its alpha for a .jpg result let PIL's DecompressionBombError through as a traceback."""
    comp, mask = tmp_path / "big.png", tmp_path / "m.png"
    Image.new("RGB", (64, 48), (90, 100, 110)).save(comp)
    Image.new("L", (64, 48), 0).save(mask)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3072 pixels: over twice the guard
    with pytest.raises(SystemExit, match="holds 0.00307 megapixels, more than the 0.002 megapixels PIL opens"):
        _harmonize(comp, mask, "-o", tmp_path / "o.jpg", "--weights", tiny_folder)


def test_an_encoder_that_fails_is_named_with_the_file(tiny_folder, tmp_path, monkeypatch):
    comp, mask = tmp_path / "c.png", tmp_path / "m.png"
    _composite().save(comp)
    _mask().save(mask)

    def refuses(target, write):
        raise OSError("encoding error 5")

    monkeypatch.setattr(saving, "write_atomic", refuses)
    with pytest.raises(SystemExit) as caught:
        _harmonize(comp, mask, "-o", tmp_path / "o.webp", "--weights", tiny_folder)
    assert str(caught.value) == f"error: cannot write {tmp_path / 'o.webp'}: encoding error 5"


def test_every_picture_of_a_folder_gets_a_name_of_its_own(tiny_folder, tmp_path):
    """a.jpg's result a_jpg.png clashed with a_jpg.png's own, and x.png's comparison with x_compare.png's result:
    the whole run was refused, though each picture is meant to get its own name."""
    comps, masks = folders(tmp_path, "a.jpg", "a.png", "a_jpg.png", "x.png", "x_compare.png")
    out = tmp_path / "out"
    assert _harmonize(comps, masks, "-o", f"{out}/", "--compare", "yes", "--weights", tiny_folder) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "a_jpg.png", "a_jpg_compare.png", "a_jpg_2.png", "a_jpg_2_compare.png", "a_png.png", "a_png_compare.png",
        "x.png", "x_compare.png", "x_compare_2.png", "x_compare_compare.png"])
    assert read_whole(out / "x_compare.png").size == (W, H)  # x_compare.png's result; x's comparison is numbered


def test_an_output_named_twice_is_not_blamed_on_case(tiny_folder, tmp_path):
    comp, mask = tmp_path / "c.png", tmp_path / "m.png"
    _composite().save(comp)
    _mask().save(mask)
    with pytest.raises(SystemExit) as caught:
        _harmonize(comp, mask, "-o", tmp_path / "same.png", "--compare", tmp_path / "same.png", "--weights",
                   tiny_folder)
    assert "-o and --compare are both" in str(caught.value) and "case" not in str(caught.value)


def test_a_missing_mask_and_a_folder_run_into_a_dotted_name_say_what_to_do(tiny_folder, tmp_path):
    comp = tmp_path / "c.png"
    _composite().save(comp)
    with pytest.raises(SystemExit, match=r"mask .*nope.png does not exist"):
        _harmonize(comp, tmp_path / "nope.png", "-o", tmp_path / "o.png", "--weights", tiny_folder)
    comps, masks = folders(tmp_path, "a.png")
    with pytest.raises(SystemExit, match=r"-o must be a folder, not .*res.v1: end it with / to make it one"):
        _harmonize(comps, masks, "-o", tmp_path / "res.v1", "--weights", tiny_folder)


def test_the_size_a_format_can_hold_is_judged_upright(tiny_folder, tmp_path):
    """A picture stored 9000x16 and turned upright by its EXIF was refused as a comparison 18008 px wide."""
    comp, mask = tmp_path / "tall.jpg", tmp_path / "m.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (9000, 16), (90, 100, 110)).save(comp, exif=exif)
    Image.new("L", (16, 9000), 0).save(mask)
    from phnet.cli.jobs import Job, check_format_limits

    check_format_limits(Job(comp, mask, tmp_path / "o.png", tmp_path / "c.webp"))  # upright: 16 wide


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_turned_tiff_s_size_is_judged_upright_once(tmp_path, orientation):
    """Pillow 13 reports a turned TIFF at its upright size already: turned again, a picture stored 8200x16 and
    shown 16 wide was refused a comparison 16408 px wide, and one shown 8200 wide passed (the encoder failed
    after the work)."""
    from phnet.cli.jobs import Job, check_format_limits
    from phnet.imageio import read_picture

    comp, mask = tmp_path / "wide.tif", tmp_path / "m.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (8200, 16), (90, 100, 110)).save(comp, exif=exif)
    job = Job(comp, mask, tmp_path / "o.png", tmp_path / "c.webp")
    if read_picture(comp)[0].shape[1] == 8200:
        with pytest.raises(SystemExit, match=r"--compare c.webp would be 16408x44 pixels"):
            check_format_limits(job)
    else:
        check_format_limits(job)


def test_results_in_formats_without_a_side_limit_do_not_open_the_composite_for_it(tmp_path, monkeypatch):
    """Its size was read for -o and --compare in any format: for a PNG with no EXIF before its pixels, a third
    decode of the whole composite (0.3 s of a 4K run), to compare with a limit only WebP and JPEG have."""
    from phnet.cli import jobs

    opened = []
    monkeypatch.setattr(jobs, "quiet_open", lambda path: opened.append(path))
    jobs.check_format_limits(jobs.Job(tmp_path / "c.png", tmp_path / "m.png", tmp_path / "o.png", tmp_path / "x.tif"))
    jobs.check_format_limits(jobs.Job(tmp_path / "c.png", tmp_path / "m.png", tmp_path / "o.tiff", None))
    assert opened == []


def test_the_composite_s_orientation_comes_from_its_one_decode(tiny_folder, tmp_path, monkeypatch):
    """For its orientation note, every composite was opened again, and a PNG with no EXIF before its pixels decoded
    whole a second time (9 % of a folder run)."""
    from phnet.cli import reading

    opened = []
    reopen = reading._orientation
    monkeypatch.setattr(reading, "_orientation", lambda path: opened.append(path) or reopen(path))
    comp, mask = _pair(tmp_path)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert comp not in opened


def test_a_picture_out_of_memory_or_a_decoder_s_runtime_error_is_that_file_s_failure(tiny_folder, tmp_path,
                                                                                     monkeypatch, capsys):
    """One picture too big for memory (or a damaged AVIF: Pillow's plugin raises RuntimeError) stopped the whole
    folder run with a traceback; the pictures after it were never harmonized."""
    from phnet import Harmonizer
    from PIL import Image as PILImage

    comps, masks = folders(tmp_path, "a.png", "b.png", "c.png", "d.png")
    real_harmonize, real_open = Harmonizer.harmonize, PILImage.open
    calls = []

    def harmonize(self, image, *args, **kwargs):  # the first picture read is too big
        calls.append(image)
        if len(calls) == 1:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")
        return real_harmonize(self, image, *args, **kwargs)

    def open_(path, *args, **kwargs):
        if str(path).endswith(os.path.join("c", "c.png")):
            raise RuntimeError("Failed to decode image: Missing or empty image item")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Harmonizer, "harmonize", harmonize)
    monkeypatch.setattr(PILImage, "open", open_)
    assert _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not enough memory for this picture" in err and "cannot read" in err
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_a_runtime_error_that_is_no_lack_of_memory_stops_a_folder_run_as_the_bug_it_is(tiny_folder, tmp_path,
                                                                                      monkeypatch, capsys):
    """Not one bad file among others: reported as a failed picture, the same error would fail every one in turn."""
    from phnet import Harmonizer

    comps, masks = folders(tmp_path, "a.png", "b.png")

    def harmonize(self, *args, **kwargs):
        raise RuntimeError("expected scalar type Float but found Half")

    monkeypatch.setattr(Harmonizer, "harmonize", harmonize)
    with pytest.raises(RuntimeError, match="expected scalar type Float"):
        _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder)
    assert "harmonized" not in capsys.readouterr().out and not list((tmp_path / "out").glob("*.png"))


def test_an_exif_whose_tags_pillow_cannot_rewrite_still_turns_the_picture_upright(tmp_path):
    """exif_transpose rewrites the EXIF, and a wrongly typed tag (XResolution as text) stopped it with a TypeError."""
    import struct

    from phnet.imageio import read_image

    entries = [(0x0112, 3, 1, struct.pack("<HH", 6, 0)), (0x011A, 2, 3, b"72\x00\x00")]  # orientation 6; text
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, kind, n) + v for t, kind, n, v in entries)
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :5] = 255  # the left edge, which turning upright puts at the top
    Image.fromarray(pixels).save(tmp_path / "cam.jpg", exif=b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd
                                 + struct.pack("<I", 0))
    upright = read_image(tmp_path / "cam.jpg")
    assert upright.shape == (40, 20, 3) and upright[:3].mean() > 200


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are made so on POSIX only")
def test_a_pipe_named_like_a_picture_is_named_not_passed_over(tiny_folder, tmp_path, capsys):
    """A pipe (or a device) named b.png among the composites was passed over without a word: a clip went on with
    a gap. It is not opened: that waits for a writer."""
    comps, masks = folders(tmp_path, "a.png")
    os.mkfifo(comps / "b.png")
    (masks / "b.png").write_bytes((masks / "a.png").read_bytes())
    assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--weights", tiny_folder) == 0
    assert ("note: left out b.png: it is not a regular file (a pipe or a device, which cannot be read as a picture): "
            "save the picture to a file first\n") in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    with pytest.raises(SystemExit) as refused:
        _harmonize(comps, masks, "-o", tmp_path / "clip/", "--weights", tiny_folder, "--temporal")
    assert str(refused.value) == (f"error: a clip's frames may have no gap, and {comps} holds b.png: it is not a "
                                  "regular file (a pipe or a device, which cannot be read as a picture): save the "
                                  "picture to a file first")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are made so on POSIX only")
def test_a_mask_that_is_a_pipe_is_named_as_such_not_as_missing(tmp_path):
    """"no mask named b.*" was all it said of a pipe named b.png among the masks."""
    comps, masks = folders(tmp_path, "a.png", "b.png")
    (masks / "b.png").unlink()
    os.mkfifo(masks / "b.png")
    with pytest.raises(SystemExit) as refused:
        _harmonize(comps, masks, "-o", tmp_path / "out/")
    assert str(refused.value) == (f"error: no mask named b.* in {masks} (1 of 2 composites); name each mask like its "
                                  f"composite; {masks} holds b.png: it is not a regular file (a pipe or a device, "
                                  "which cannot be read as a picture): save the picture to a file first")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are made so on POSIX only")
def test_a_link_to_a_pipe_is_named_as_no_regular_file_not_as_a_link_to_nothing(tmp_path):
    """A composite or mask linked to a pipe or a device (/dev/zero) was said to link to something "which does not
    exist (an unmounted drive?)", which was there."""
    comp, mask = _pair(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "piped.png").symlink_to(tmp_path / "pipe")
    for given, what in (([tmp_path / "piped.png", mask], ""), ([comp, tmp_path / "piped.png"], "mask ")):
        with pytest.raises(SystemExit) as refused:
            _harmonize(*given, "-o", tmp_path / "out.png")
        assert str(refused.value) == (f"error: {what}{tmp_path / 'piped.png'} is not a regular file (a pipe or "
                                      "a device, which cannot be read as a picture): save the picture to a file first")


def test_a_mask_that_is_the_composite_itself_is_refused_before_any_work(tmp_path, monkeypatch):
    """The composites folder given again as the masks' each failed on its own as "a colour picture", after the
    weights had loaded; the composite given as its own mask was "a colour picture" too."""
    monkeypatch.setattr(harmonize_command, "load_harmonizer", lambda *a: pytest.fail("weights loaded"))
    comps, _ = folders(tmp_path, "a.png", "b.png")
    with pytest.raises(SystemExit) as refused:
        _harmonize(comps, str(comps) + "/", "-o", tmp_path / "out/")
    assert str(refused.value) == (f"error: the masks folder {comps} is the composites folder {comps} itself: give "
                                  "the masks' folder (or none, where each composite's alpha is its mask)")
    os.link(comps / "a.png", tmp_path / "same.png")  # the same file by another name
    with pytest.raises(SystemExit) as refused:
        _harmonize(comps / "a.png", tmp_path / "same.png", "-o", tmp_path / "out.png")
    assert str(refused.value) == (f"error: the mask {tmp_path / 'same.png'} is the composite {comps / 'a.png'} "
                                  "itself: give the mask's file (or none, where the composite's alpha is the mask)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.png").exists()


def test_photos_pillow_cannot_open_are_named_not_passed_over(tiny_folder, tmp_path, capsys):
    """HEIC and raw files were left out without a word, and a folder of them alone was 'no images'."""
    comps, masks = folders(tmp_path, "a.png")
    for name in ("b.heic", "c.HEIC", "d.dng"):
        (comps / name).write_bytes(b"\x00" * 64)
    assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--weights", tiny_folder) == 0
    out = capsys.readouterr().out
    assert "note: left out 3 photos this Pillow cannot open (1 .dng, 2 .heic): save them as PNG or JPEG" in out
    assert "pip install pillow-heif" in out
    only = tmp_path / "only"
    only.mkdir()
    (only / "x.heic").write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit, match=r"no images in .*only that this Pillow opens: 1 photo this Pillow cannot "
                                         r"open \(1 .heic\): save it"):
        _harmonize(only, masks, "-o", tmp_path / "out2/", "--weights", tiny_folder)


def test_a_mistyped_masks_folder_and_a_forgotten_one_are_named_as_such(tiny_folder, tmp_path, capsys):
    comps, masks = folders(tmp_path, "a.png")
    with pytest.raises(SystemExit, match=r"the masks folder .*maskz does not exist"):
        _harmonize(comps, tmp_path / "maskz", "-o", tmp_path / "out/", "--weights", tiny_folder)
    assert _harmonize(comps, "-o", tmp_path / "out/", "--weights", tiny_folder) == 1
    assert "for a folder of composites, a folder of masks with the same names" in capsys.readouterr().err


def _open_descriptors() -> int:
    fds = Path("/proc/self/fd")
    return len(os.listdir(fds)) if fds.is_dir() else 0


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_reader_that_leaves_the_pipe_fails_no_picture(tiny_folder, tmp_path, monkeypatch, capsys, stream):
    """`phnet harmonize ... | head -1`: every picture after the first line was counted as failed (Broken pipe),
    though written, their comparisons were never written, and the run ended with exit 2 and no summary. With
    `2>&1 | head -1` the progress bar's line (stderr) ended the run after the first picture."""
    import io

    class Pipe(io.StringIO):
        def write(self, text):
            if self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

        def fileno(self):
            raise io.UnsupportedOperation("no file")

    comps, masks = folders(tmp_path, "a.png", "b.png", "c.png")
    monkeypatch.setattr(f"sys.{stream}", Pipe())
    descriptors = _open_descriptors()
    assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--compare", tmp_path / "cmp/",
                      "--weights", tiny_folder) == 0
    assert _open_descriptors() == descriptors  # what it wrote to once the reader left is closed: none left open
    assert "error" not in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png", "a_compare.png", "b.png", "b_compare.png", "c.png", "c_compare.png"]


def test_what_a_comparison_picture_leaves_out_is_noted_too(tiny_folder, tmp_path, capsys):
    stored = _composite()
    exif = stored.getexif()
    exif[0x010F] = "PhoneMaker"
    comp, mask = tmp_path / "cam.jpg", tmp_path / "mask.png"
    stored.save(comp, exif=exif, icc_profile=SRGB, quality=95)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--compare", tmp_path / "cmp.bmp",
                      "--weights", tiny_folder) == 0
    assert (f"note: from {comp}, {tmp_path / 'cmp.bmp'} leaves out the RGB colour profile, which BMP cannot hold; and "
            "the EXIF, which BMP cannot hold\n") in capsys.readouterr().out  # each thing left out, not the first


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_a_composite_s_resolution_is_carried(tiny_folder, tmp_path, capsys, suffix):
    """A 300 dpi scan came back at 72 (JPEG) or with none (PNG, TIFF), without a note."""
    comp, mask = tmp_path / f"scan{suffix}", tmp_path / "mask.png"
    _composite().save(comp, dpi=(300, 300))
    _mask().save(mask)
    out = tmp_path / f"out{suffix}"
    assert _harmonize(comp, mask, "-o", out, "--compare", tmp_path / "cmp.png", "--weights", tiny_folder) == 0
    assert tuple(round(d) for d in read_whole(out).info["dpi"]) == (300, 300)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.webp", "--weights", tiny_folder) == 0
    if suffix == ".tif":  # a TIFF's resolution is among its EXIF tags, which a WebP carries
        assert read_whole(tmp_path / "out.webp").getexif().get(0x011A) == 300
    else:
        assert "the resolution (300 dpi), which WebP cannot hold" in capsys.readouterr().out


def test_a_comparison_carries_no_print_resolution_from_the_exif(tiny_folder, tmp_path):
    """The comparison left out the composite's dpi but kept its EXIF resolution: read as 300 dpi all the same."""
    exif = Image.Exif()
    exif[0x010F], exif[0x011A], exif[0x011B], exif[0x0128] = "Cam", 300.0, 300.0, 2
    comp, mask = tmp_path / "scan.jpg", tmp_path / "mask.png"
    _composite().save(comp, exif=exif)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--compare", tmp_path / "cmp.jpg", "--weights",
                      tiny_folder) == 0
    compared = read_whole(tmp_path / "cmp.jpg")
    assert compared.getexif().get(0x010F) == "Cam"  # the camera's tags stay
    assert not {0x011A, 0x011B, 0x0128} & set(compared.getexif()) and compared.info.get("dpi", (72, 72)) == (72, 72)
    assert read_whole(tmp_path / "out.jpg").info["dpi"] == pytest.approx((300, 300))


def test_a_comparison_is_captioned_with_what_happened_to_the_subject(tiny_folder, tmp_path):
    """Its right half is the result, and its caption says why the subject stayed as it was (strength 0 here)."""
    from phnet.visualize import before_after

    comp, mask = _pair(tmp_path)
    out, cmp = tmp_path / "out.png", tmp_path / "cmp.png"
    assert _harmonize(comp, mask, "-o", out, "--compare", cmp, "--weights", tiny_folder, "--strength", "0") == 0
    expected = before_after(_composite(), read_whole(out), _mask(), after_label="unchanged: strength 0")
    assert np.array_equal(np.asarray(Image.open(cmp)), np.asarray(expected))


def test_a_resolution_past_what_a_jpeg_holds_is_left_out_and_said(tiny_folder, tmp_path, capsys):
    """A microscope's 100000 dpi came back as 34464: PIL wrote its remainder past 65536."""
    comp, mask = tmp_path / "scan.png", tmp_path / "mask.png"
    _composite().save(comp, dpi=(100000, 100000))
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.jpg", "--weights", tiny_folder) == 0
    assert "the resolution (100000 dpi), more than a JPEG's header holds" in capsys.readouterr().out
    assert read_whole(tmp_path / "out.jpg").info.get("dpi", (0, 0))[0] in (0, 1)
    _composite().save(tmp_path / "scan.tif", dpi=(100000, 100000))  # its EXIF tags carry it into the .jpg
    assert _harmonize(tmp_path / "scan.tif", mask, "-o", tmp_path / "tif.jpg", "--weights", tiny_folder) == 0
    assert "JPEG's header" not in capsys.readouterr().out
    assert read_whole(tmp_path / "tif.jpg").info["dpi"] == pytest.approx((100000, 100000))


@pytest.mark.skipif(not hasattr(os, "kill") or os.name == "nt", reason="POSIX signals")
def test_nohup_s_ignored_hangup_and_a_missing_stdout_are_left_as_they_are(tiny_folder, tmp_path, monkeypatch):
    """The SIGHUP handler undid nohup (the run died with the terminal); under pythonw stdout is None."""
    import signal

    comps, masks = folders(tmp_path, "a.png")
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        seen = []
        real = harmonize_command.harmonize_one

        def harmonize_one(*args, **kwargs):
            seen.append(signal.getsignal(signal.SIGHUP))
            return real(*args, **kwargs)

        monkeypatch.setattr(harmonize_command, "harmonize_one", harmonize_one)
        monkeypatch.setattr("sys.stdout", None)
        assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--weights", tiny_folder) == 0
        assert seen == [signal.SIG_IGN] and (tmp_path / "out" / "a.png").is_file()
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("temporal", [False, True])
def test_a_folder_is_harmonized_whole_where_stdout_or_stderr_is_none(tiny_folder, tmp_path, monkeypatch, stream,
                                                                     temporal):
    """Under pythonw (or with fd 2 closed) stderr is None: the progress bar wrote to it and the folder run died
    before writing anything; with tqdm before 4.69 a missing stdout stopped it after the first picture."""
    comps, masks = folders(tmp_path, "a.png", "b.png")
    monkeypatch.setattr(f"sys.{stream}", None)
    extra = ["--temporal", "1"] if temporal else []
    assert _harmonize(comps, masks, "-o", tmp_path / "out/", "--weights", tiny_folder, *extra) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_webp_result_is_not_said_to_lose_a_resolution_its_exif_carries(tiny_folder, tmp_path, capsys):
    exif = Image.Exif()
    exif[0x011A], exif[0x011B], exif[0x0128] = 72.0, 72.0, 2
    comp, mask = tmp_path / "cam.jpg", tmp_path / "mask.png"
    _composite().save(comp, exif=exif.tobytes(), quality=95)
    _mask().save(mask)
    assert read_whole(comp).info.get("dpi")
    assert _harmonize(comp, mask, "-o", tmp_path / "out.webp", "--weights", tiny_folder) == 0
    assert "resolution" not in capsys.readouterr().out


def test_a_tiff_without_resolution_tags_gives_results_without_a_resolution(tiny_folder, tmp_path):
    """PIL reads such a TIFF as 1 dpi: every result printed or placed at an inch per pixel."""
    comp, mask = tmp_path / "plain.tif", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    assert read_whole(comp).info.get("dpi") == (1, 1) and 282 not in read_whole(comp).tag_v2
    for suffix in (".png", ".tif"):
        assert _harmonize(comp, mask, "-o", tmp_path / f"out{suffix}", "--weights", tiny_folder) == 0
        out = read_whole(tmp_path / f"out{suffix}")
        assert "dpi" not in out.info or (suffix == ".tif" and 282 not in out.tag_v2), suffix


def test_a_jpeg_that_states_no_resolution_gives_results_without_one(tmp_path):
    """PIL gives a JPEG with EXIF but no resolution 72 dpi: carried into results (and 'left out' of a WebP)."""
    from phnet.imageio import read_picture

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    _composite().save(tmp_path / "phone.jpg", exif=exif.tobytes())
    _composite().save(tmp_path / "print.jpg", dpi=(300, 300))
    assert read_whole(tmp_path / "phone.jpg").info.get("dpi") == (72, 72)
    assert "dpi" not in read_picture(tmp_path / "phone.jpg")[1]
    assert read_picture(tmp_path / "print.jpg")[1]["dpi"] == (300.0, 300.0)
    exif[0x011A] = exif[0x011B] = 240  # a resolution without its unit: inches, as EXIF says (PIL gives 72)
    _composite().save(tmp_path / "unitless.jpg", exif=exif.tobytes())
    assert read_picture(tmp_path / "unitless.jpg")[1]["dpi"] == (240.0, 240.0)


def test_a_camera_mpo_that_states_no_resolution_gives_results_without_one(tmp_path):
    from phnet.imageio import read_picture

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    frames = [_composite(), _composite()]
    frames[0].save(tmp_path / "camera.mpo", format="MPO", save_all=True, append_images=frames[1:],
                   exif=exif.tobytes())
    assert read_whole(tmp_path / "camera.mpo").format == "MPO"
    assert "dpi" not in read_picture(tmp_path / "camera.mpo")[1]


def test_results_and_masks_are_brought_to_8_bits_in_bands_with_the_same_rounding():
    """A whole-picture float64 quotient (1.5 GB for an 8K 16-bit result) was made three times per job."""
    wide = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    assert np.array_equal(saving.eight_bit(wide), np.round(wide / 257.0).astype(np.uint8))
    unit = np.random.default_rng(0).random((50, 60, 3)).astype(np.float32) * 1.2 - 0.1
    assert np.array_equal(saving.eight_bit(unit), np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8))
    assert saving.eight_bit(wide[:2, :2].astype(np.uint8)).dtype == np.uint8
