"""`phnet harmonize`: the files it writes (whole or not at all, with the composite's colour profile and
EXIF, in a quality that keeps the background) and the inputs it refuses before doing any work."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, JpegImagePlugin

from phnet import cli
from tests.helpers.cli_pictures import H, W
from tests.helpers.cli_pictures import composite as _composite, harmonize as _harmonize, mask as _mask


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
    write_atomic = cli.write_atomic
    monkeypatch.setattr(cli, "write_atomic", lambda path, write: (written.append(path), write_atomic(path, write)))
    comp, mask = _pair(tmp_path)
    out = tmp_path / "out"
    assert _harmonize(comp, mask, "-o", out / "r.jpg", "--weights", tiny_folder, "--compare", out / "c.webp") == 0
    assert sorted(written) == sorted(out.iterdir()) == [out / "c.webp", out / "r.jpg"]


def test_ctrl_c_while_saving_keeps_the_previous_result(tiny_folder, tmp_path, monkeypatch, capsys):
    comp, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"the previous result")

    def interrupted(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half a pic")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 130
    assert out.read_bytes() == b"the previous result"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert capsys.readouterr().err == "interrupted; files written so far are complete\n"


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
        written = Image.open(path)
        assert written.info.get("icc_profile") == SRGB
        assert written.getexif().get(0x010F) == "PhoneMaker" and written.getexif().get(0x0112) == 1
    assert Image.open(out).size == (W, H)


def test_a_profile_of_another_colour_space_is_not_carried_and_that_is_said(tiny_folder, tmp_path, capsys):
    grey_profile = SRGB[:16] + b"GRAY" + SRGB[20:]  # a grey composite's profile does not describe an RGB result
    comp, mask = tmp_path / "grey.png", tmp_path / "mask.png"
    _composite().convert("L").save(comp, icc_profile=grey_profile)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert Image.open(tmp_path / "out.png").mode == "RGB"
    assert "icc_profile" not in Image.open(tmp_path / "out.png").info
    assert (f"note: from {comp}, {tmp_path / 'out.png'} leaves out the GRAY colour profile, which does not describe "
            "the RGB result") in capsys.readouterr().out


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
    assert Image.open(out).text == text
    assert not Image.open(tmp_path / "c.png").text  # the comparison is not the generator's picture
    assert "note:" not in capsys.readouterr().out


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
    assert Image.open(tmp_path / "out" / "1.png").text == {"parameters": "Steps: 30"}
    assert capsys.readouterr().out.count("note: from their composites, the frames' files leave out the GRAY colour "
                                         "profile, which does not describe the RGB result") == 1
