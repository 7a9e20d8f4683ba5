"""`phnet harmonize` / `phnet convert` through phnet.cli.main, with tiny weights and tiny images."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer, PHNet, PHNetConfig, cli
from phnet.cli import command, harmonize as harmonize_command, jobs
from phnet.weights import DEFAULT_DIR, OFFICIAL_TERMS, load_model
from tests.helpers.cli_pictures import H, W, read_whole
from tests.helpers.cli_pictures import composite as _composite, folders, harmonize as _harmonize, mask as _mask


def test_single_composite_and_mask(tiny_folder, tmp_path, capsys):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    out, compare = tmp_path / "out" / "result.png", tmp_path / "compare.png"
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder, "--compare", compare) == 0
    result = read_whole(out)
    assert result.size == (W, H) and result.mode == "RGB"
    # The background (mask == 0) comes back bit-identical.
    bg = np.asarray(_mask()) == 0
    assert np.array_equal(np.asarray(result)[bg], np.asarray(_composite())[bg])
    assert read_whole(compare).size[0] >= W
    assert capsys.readouterr().out.endswith(f"wrote {out} and {compare}\n")


def test_a_composite_transparent_everywhere_given_a_mask_says_its_result_shows_nothing(tiny_folder, tmp_path, capsys):
    """Harmonized from its hidden colours, the result kept the composite's alpha 0 and was written without a word."""
    comp, mask, out = tmp_path / "comp.png", tmp_path / "mask.png", tmp_path / "out.png"
    hidden = _composite().convert("RGBA")
    hidden.putalpha(0)
    hidden.save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert (f"note: {comp} is transparent everywhere (alpha 0), and {out} keeps its alpha, so it shows nothing: save "
            "the composite without alpha to see the result") in capsys.readouterr().out
    assert np.asarray(read_whole(out))[..., 3].max() == 0
    shown = _composite().convert("RGBA")
    shown.save(comp)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert "transparent everywhere" not in capsys.readouterr().out


def test_strength_zero_changes_nothing(tiny_folder, tmp_path):
    comp, mask, out = tmp_path / "comp.png", tmp_path / "mask.png", tmp_path / "out.png"
    _composite().save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder, "--strength", "0") == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(_composite()))


def test_options_may_come_between_the_composite_and_its_mask(tiny_folder, tmp_path):
    comp, mask, out = tmp_path / "comp.png", tmp_path / "mask.png", tmp_path / "out.png"
    _composite().save(comp)
    _mask().save(mask)
    assert cli.main(["harmonize", str(comp), "--strength", "0", "-o", str(out), str(mask), "--weights",
                     str(tiny_folder), "--device", "cpu"]) == 0  # 'unrecognized arguments: mask.png'
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(_composite()))


def test_names_after_a_double_dash_may_start_with_one(tiny_folder, tmp_path, monkeypatch):
    """'unrecognized arguments: -c.png': the intermixed parsing read -- as a name of its own."""
    monkeypatch.chdir(tmp_path)
    _composite().save("-c.png")
    _mask().save("-m.png")
    assert cli.main(["harmonize", "--strength", "0", "-o", "out.png", "--weights", str(tiny_folder), "--device",
                     "cpu", "--", "-c.png", "-m.png"]) == 0
    assert np.array_equal(np.asarray(Image.open("out.png")), np.asarray(_composite()))
    parser = command.build_parser().harmonize_parser
    clip = parser.parse_intermixed_args(command._after_double_dash(["-o", "out/", "--temporal", "--", "5"]))
    assert clip.composite == "5" and clip.temporal == command.TEMPORAL_SIGMA  # a folder named 5, not SIGMA


def test_temporal_given_twice_alone_still_leaves_the_folders_to_the_folders():
    """--temporal before an option is its flag alone, and a later --temporal alone before the folders is too."""
    parser = command.build_parser().harmonize_parser
    args = parser.parse_intermixed_args(command._temporal_given_its_value(
        ["--temporal", "-o", "out/", "--temporal", "frames", "masks"]))
    assert (args.composite, args.mask, args.temporal) == ("frames", "masks", command.TEMPORAL_SIGMA)


def test_an_error_names_each_option_by_its_flag_once():
    from phnet.cli.messages import in_flags

    said = in_flags(ValueError("working_size must be a multiple of 8 (as --strength and --cut-threshold are named)"))
    assert said == "--working-size must be a multiple of 8 (as --strength and --cut-threshold are named)"


@pytest.mark.parametrize("argv, code, out, err", [
    (["phnet", "--version"], 0, "phnet ", ""),  # argparse's own exit: its code, nothing more said
    (["phnet", "harmonize", "missing.png", "-o", "out.png"], 2, "", "error: missing.png does not exist\n"),
])
def test_the_command_exits_with_argparse_s_code_or_2_with_a_refusal_s_words(tmp_path, monkeypatch, capsys, argv, code,
                                                                            out, err):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as stop:
        command.entry()
    said = capsys.readouterr()
    assert stop.value.code == code and said.out.startswith(out) and said.err == err


def test_a_run_in_a_program_leaves_the_library_s_log_level_as_it_found_it(tiny_folder, tmp_path):
    import logging

    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    logger = logging.getLogger("phnet")
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
        assert logger.level == logging.INFO
        with pytest.raises(SystemExit, match="has no alpha channel"):  # a refusal ends the run too
            _harmonize(comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(level)


def test_a_pipe_given_for_a_picture_is_named_as_one(tiny_folder, tmp_path):
    """`cat c.png | phnet harmonize /dev/stdin m.png` said /dev/stdin does not exist."""
    import os

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    _composite().save(tmp_path / "comp.png")
    _mask().save(tmp_path / "mask.png")
    for args in ([pipe, tmp_path / "comp.png"], [tmp_path / "comp.png", pipe],
                 [tmp_path / "comp.png", tmp_path / "mask.png", "--reference", pipe]):  # (it waited for a writer)
        with pytest.raises(SystemExit, match=r"is not a regular file \(a pipe or a device, which cannot be read as a "
                                             r"picture\): save the picture to a file first"):
            _harmonize(*args, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_rgba_composite_uses_its_alpha(tiny_folder, tmp_path):
    rgba = _composite().convert("RGBA")
    rgba.putalpha(_mask())
    comp, out = tmp_path / "cutout.png", tmp_path / "out.png"
    rgba.save(comp)
    assert _harmonize(comp, "-o", out, "--weights", tiny_folder) == 0
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == (H, W, 3)
    bg = np.asarray(_mask()) == 0
    assert np.array_equal(result[bg], np.asarray(_composite())[bg])
    assert not np.array_equal(result, np.asarray(_composite()))  # the subject was changed


def test_a_cut_out_without_its_background_is_refused(tiny_folder, tmp_path):
    """A subject cut out on a transparent background holds black there: it was matched to black."""
    cut = np.asarray(_composite().convert("RGBA")).copy()
    cut[..., 3] = np.asarray(_mask())
    cut[cut[..., 3] == 0, :3] = 0
    comp = tmp_path / "cutout.png"
    Image.fromarray(cut).save(comp)
    with pytest.raises(SystemExit, match=r"is a cut-out: under its transparent part is one flat colour \(0, 0, 0\)"):
        _harmonize(comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    assert not (tmp_path / "out.png").exists()


def test_an_rgba_composite_with_an_opaque_alpha_and_no_mask_is_told_so(tiny_folder, tmp_path):
    """Screenshots and many exporters write opaque RGBA: the error spoke of a mask the user never gave."""
    comp = tmp_path / "screenshot.png"
    _composite().convert("RGBA").save(comp)
    with pytest.raises(SystemExit, match=r"screenshot.png's alpha channel is opaque everywhere, so it marks no "
                                         r"subject; give its MASK as the second argument"):
        _harmonize(comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_rgb_composite_without_mask_is_refused(tiny_folder, tmp_path):
    comp = tmp_path / "comp.png"
    _composite().save(comp)
    with pytest.raises(SystemExit) as e:
        _harmonize(comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    assert "no alpha channel" in str(e.value.code) and "MASK" in str(e.value.code)


def test_folder_of_composites(tiny_folder, tmp_path):
    comps, masks, out = tmp_path / "comps", tmp_path / "masks", tmp_path / "out"
    comps.mkdir()
    masks.mkdir()
    _composite(1).save(comps / "a.png")
    _composite(2, (32, 40)).save(comps / "b.jpg")
    (comps / "notes.txt").write_text("not an image")
    _mask().save(masks / "a.png")
    _mask((32, 40)).save(masks / "b.png")
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder, "--compare", "yes") == 0
    assert read_whole(out / "a.png").size == (W, H)
    assert read_whole(out / "b.png").size == (32, 40)
    assert (out / "a_compare.png").is_file() and (out / "b_compare.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_compare.png", "b.png", "b_compare.png"]


@pytest.mark.filterwarnings("default:a library warning:UserWarning")  # shown by the CLI, as a user gets it
def test_a_warning_in_a_folder_run_has_a_line_of_its_own_above_the_progress_bar(tiny_folder, tmp_path, capsys,
                                                                                  monkeypatch):
    import warnings

    comps, masks = folders(tmp_path, "a.png", "b.png")
    real = harmonize_command.harmonize_one

    def warns(*args, **kwargs):
        warnings.warn("a library warning", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(harmonize_command, "harmonize_one", warns)
    assert _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder) == 0
    err = capsys.readouterr().err
    assert "harmonizing" in err  # the bar was drawn
    said = [line for line in err.split("\n") if "a library warning" in line]
    assert said and all(line.split("\r")[-1] == "warning: a library warning" for line in said), said


def test_folder_names_with_glob_characters(tiny_folder, tmp_path):
    comps, masks, out = tmp_path / "comps", tmp_path / "masks", tmp_path / "out"
    comps.mkdir()
    masks.mkdir()
    _composite().save(comps / "shot[1].png")
    _mask().save(masks / "shot[1].png")
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder) == 0
    assert (out / "shot[1].png").is_file()


def test_folder_with_a_missing_mask(tiny_folder, tmp_path):
    comps, masks = tmp_path / "comps", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    _composite().save(comps / "a.png")
    with pytest.raises(SystemExit) as e:
        _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder)
    assert "no mask named a.*" in str(e.value.code)


def test_a_mask_that_looks_inverted_is_refused_as_the_nodes_refuse_it(tiny_folder, tmp_path, capsys):
    """A black-subject mask file harmonized the background: the README example's changed 98.6 % of it."""
    comp, inverted = tmp_path / "comp.png", tmp_path / "inverted.png"
    _composite().save(comp)
    Image.fromarray(255 - np.asarray(_mask())).save(inverted)
    with pytest.raises(SystemExit, match=r"error: mask .*inverted.png covers 84% of the picture and 100% of its "
                                         r"border, so it looks inverted: white must mark the subject.*; invert it"):
        _harmonize(comp, inverted, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    assert not (tmp_path / "out.png").exists()
    comps, masks = folders(tmp_path, "a.png", "b.png")
    Image.fromarray(255 - np.asarray(_mask())).save(masks / "b.png")
    assert _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder) == 1
    assert "b.png covers 84% of the picture" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    # a clip's frame may rightly be mostly subject (walking into the camera): its frames are not judged one by one
    assert _harmonize(comps, masks, "-o", tmp_path / "clip", "--weights", tiny_folder, "--temporal") == 0


def test_a_right_mask_that_looks_inverted_is_used_with_mask_as_given(tiny_folder, tmp_path, capsys):
    """Two subjects at the picture's sides with the scene between them look like an inverted mask, and the CLI
    refused them with no way round."""
    comp, sides = tmp_path / "comp.png", tmp_path / "sides.png"
    _composite().save(comp)
    mask = np.zeros((H, W), np.uint8)
    mask[:, : W * 3 // 10] = mask[:, W * 7 // 10 :] = 255
    Image.fromarray(mask).save(sides)
    with pytest.raises(SystemExit, match=r"looks inverted: .*invert it, or, if it is right \(subjects at the "
                                         r"picture's sides\), add --mask-as-given$"):
        _harmonize(comp, sides, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    assert _harmonize(comp, sides, "-o", tmp_path / "out.png", "--weights", tiny_folder, "--mask-as-given") == 0
    assert (tmp_path / "out.png").exists()


def test_a_composite_and_mask_given_the_other_way_round_are_named_swapped(tiny_folder, tmp_path):
    """It told the user to save their photo as black and white."""
    comp, mask, grey, rgb_mask = (tmp_path / name for name in ("comp.png", "mask.png", "grey.jpg", "mask_rgb.jpg"))
    _composite().save(comp)
    _mask().save(mask)
    _mask().convert("RGB").save(rgb_mask, quality=75)  # a JPEG's noise, its channels a level or two apart
    for first in (mask, rgb_mask):
        with pytest.raises(SystemExit, match=f"error: the composite {re.escape(str(first))} and the mask "
                                             f"{re.escape(str(comp))} look swapped: give the composite first, then "
                                             "its mask"):
            _harmonize(first, comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    _composite().convert("L").save(grey)  # a grey photo: the colour picture is the mask
    with pytest.raises(SystemExit, match=f"error: mask {re.escape(str(comp))} is a colour picture; save it as black "
                                         r"and white \(white = subject\)"):
        _harmonize(grey, comp, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_mismatched_mask_size(tiny_folder, tmp_path):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask((W + 3, H)).save(mask)
    with pytest.raises(SystemExit) as e:
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)
    msg = str(e.value.code)
    assert msg.startswith("error:") and f"{W + 3}×{H}" in msg and f"{W}×{H}" in msg and "resize the mask" in msg
    assert not (tmp_path / "out.png").exists()


def test_convert_official_style_pth(tiny_model, tmp_path, capsys):
    (tmp_path / "zoo").mkdir()
    ckpt, out = tmp_path / "zoo" / "iharmony512.pth", tmp_path / "converted"  # an official file's name
    torch.save(tiny_model.state_dict(), ckpt)
    assert cli.main(["convert", str(ckpt), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE-WEIGHTS.txt", "config.json", "model.safetensors"]
    assert "CC BY-SA 4.0" in (out / "LICENSE-WEIGHTS.txt").read_text()
    loaded = load_model(out)
    assert loaded.config.enc_sizes == tiny_model.config.enc_sizes
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in loaded.state_dict().items())
    captured = capsys.readouterr()
    assert "wrote" in captured.out and captured.err == ""


@pytest.mark.filterwarnings("default:mine.pth is not an official checkpoint:UserWarning")  # shown by the CLI
def test_convert_of_weights_that_are_not_official_says_what_it_guessed_and_claims_no_licence(tiny_model, tmp_path,
                                                                                            capsys):
    """Any .pth was converted as official, silently: our own residual weights came out as a flat grey
    subject, and every folder got the authors' licence. An existing folder was replaced without a word."""
    ckpt, out = tmp_path / "mine.pth", tmp_path / "converted"
    torch.save(tiny_model.state_dict(), ckpt)
    assert cli.main(["convert", str(ckpt), str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: mine.pth is not an official checkpoint's file name") and "config.json" in err[0]
    assert err[1].startswith("not an official file name: no licence file was written")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    before = (out / "model.safetensors").read_bytes()
    assert cli.main(["convert", str(ckpt), str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {out} already holds files: give a new folder, or replace them with overwrite=True "
        "(phnet convert --overwrite)")
    assert (out / "model.safetensors").read_bytes() == before
    (out / "LICENSE-WEIGHTS.txt").write_text(OFFICIAL_TERMS + "\n")  # an earlier conversion's
    assert cli.main(["convert", str(ckpt), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert cli.main(["convert", str(ckpt), str(ckpt)]) == 2
    assert (capsys.readouterr().err.splitlines()[-1]
            == f"error: {ckpt} is a file: give a folder for the converted weights")


def test_convert_of_converted_official_weights_keeps_their_licence(tiny_config, tmp_path, capsys):
    """An official copy given as its model.safetensors lost the LICENSE-WEIGHTS.txt written with it, and the CLI
    said no licence file was written."""
    import dataclasses

    from phnet.weights import save_pretrained

    official = PHNet(dataclasses.replace(tiny_config, name="official-iharmony512"))
    folder, out = save_pretrained(official, tmp_path / "official-iharmony512"), tmp_path / "converted"
    assert cli.main(["convert", str(folder / "model.safetensors"), str(out)]) == 0
    assert "CC BY-SA 4.0" in (out / "LICENSE-WEIGHTS.txt").read_text()
    assert "no licence file" not in capsys.readouterr().err


def test_convert_with_the_wrong_preset(tiny_model, tmp_path, capsys):
    ckpt = tmp_path / "tiny.pth"
    torch.save(tiny_model.state_dict(), ckpt)
    assert cli.main(["convert", str(ckpt), str(tmp_path / "out"), "--config", "iharmony"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "do not fit" in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_bad_weights_path(tmp_path, capsys):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    code = _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tmp_path / "missing.safetensors")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing.safetensors" in err and "not found" in err
    assert not (tmp_path / "out.png").exists()


# ----------------------------------------------------------------------------------------------------
# hostile input (issue 12): nothing overwritten, nothing lost, every bad file named


def test_output_equal_to_the_input_is_refused(tiny_folder, tmp_path):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    before = comp.read_bytes(), mask.read_bytes()
    for target in (comp, mask, tmp_path):  # the folder form resolves to tmp_path/comp.png
        with pytest.raises(SystemExit) as e:
            _harmonize(comp, mask, "-o", target, "--weights", tiny_folder)
        assert "refusing to overwrite the input" in str(e.value.code)
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder, "--compare", mask)
    assert (comp.read_bytes(), mask.read_bytes()) == before


def test_folder_output_into_the_input_folder_never_overwrites(tiny_folder, tmp_path):
    comps, masks = tmp_path / "comps", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    _composite().save(comps / "a.png")
    _mask().save(masks / "a.png")
    before = (comps / "a.png").read_bytes()
    with pytest.raises(SystemExit, match="refusing to overwrite the input"):
        _harmonize(comps, masks, "-o", comps, "--weights", tiny_folder)
    assert (comps / "a.png").read_bytes() == before


def test_same_stem_different_suffix_keeps_both_results(tiny_folder, tmp_path):
    comps, masks, out = tmp_path / "comps", tmp_path / "masks", tmp_path / "out"
    comps.mkdir()
    masks.mkdir()
    _composite(1).save(comps / "x.jpg")
    _composite(2, (32, 40)).save(comps / "x.png")
    _mask().save(masks / "x.jpg")  # x.jpg's own mask
    _mask((32, 40)).save(masks / "x.png")
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x_jpg.png", "x_png.png"]
    assert read_whole(out / "x_jpg.png").size == (W, H) and read_whole(out / "x_png.png").size == (32, 40)


def test_folder_goes_on_past_bad_files_and_names_each(tiny_folder, tmp_path, capsys):
    comps, masks, out = tmp_path / "comps", tmp_path / "masks", tmp_path / "out"
    comps.mkdir()
    masks.mkdir()
    for name in ("a", "b", "c", "d"):
        _composite().save(comps / f"{name}.png")
        _mask().save(masks / f"{name}.png")
    (comps / "b.png").write_bytes((comps / "b.png").read_bytes()[:60])  # corrupt
    Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "c.png")  # empty mask
    assert _harmonize(comps, masks, "-o", out, "--weights", tiny_folder) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "d.png"]  # the files after the bad ones too
    captured = capsys.readouterr()
    err_lines = captured.err.splitlines()
    assert any("b.png" in ln and ln.startswith("error:") for ln in err_lines)
    assert any("c.png" in ln and "empty" in ln for ln in err_lines)
    assert "Traceback" not in captured.err
    assert "harmonized 2 of 4 images" in captured.out
    assert "2 of 4 images failed (b.png, c.png)" in captured.err


def test_a_folder_run_s_summary_names_ten_failed_files_and_says_there_are_more(tiny_folder, tmp_path, capsys):
    comps, masks = folders(tmp_path, *(f"{k:02}.png" for k in range(12)))
    for k in range(11):  # a mask of another size: refused as each picture is read, before any work
        _mask((W + 1, H)).save(masks / f"{k:02}.png")
    assert _harmonize(comps, masks, "-o", tmp_path / "out", "--weights", tiny_folder) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()  # the one result's verdict, no "wrote" line per picture, and the count
    assert len(lines) == 2 and lines[0].startswith("11.png: ")
    assert lines[1] == f"harmonized 1 of 12 images into {tmp_path / 'out'}"
    names = ", ".join(f"{k:02}.png" for k in range(10))
    assert captured.err.endswith(f"error: 11 of 12 images failed ({names}, ...); see the messages above\n")


def test_a_comparison_named_for_a_folder_run_is_told_how_they_are_named(tmp_path, capsys):
    comps, masks = folders(tmp_path, "a.png")
    assert _harmonize(comps, masks, "-o", tmp_path / "out", "--compare", "x.png", "--weights",
                      tmp_path / "missing.safetensors") == 2  # (said before the weights are looked for)
    assert capsys.readouterr().err.startswith("note: with a folder of composites each comparison is "
                                              "NAME_compare.png beside its result, not x.png\n")


def test_output_folder_is_created(tiny_folder, tmp_path):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", str(tmp_path / "newdir") + "/", "--weights", tiny_folder) == 0
    assert read_whole(tmp_path / "newdir" / "comp.png").size == (W, H)
    with pytest.raises(SystemExit, match="cannot write an image named out.xyz"):
        _harmonize(comp, mask, "-o", tmp_path / "out.xyz", "--weights", tiny_folder)



def test_an_output_that_is_an_extension_alone_is_refused_not_made_a_hidden_folder(tiny_folder, tmp_path):
    """``-o "$NAME.png"`` with NAME unset is ``-o .png``, which has no suffix to pathlib: a name without an
    extension, so a folder; the result went into the hidden folder .png/ and the run said it succeeded."""
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    for name in (".png", ".JPG"):
        with pytest.raises(SystemExit) as refused:
            _harmonize(comp, mask, "-o", tmp_path / name, "--weights", tiny_folder)
        assert str(refused.value) == (f"error: -o {tmp_path / name} is an extension without a name (an empty "
                                      "variable before it?), which would be a hidden folder: name the file, e.g. "
                                      f"out{name}, or end -o with / for a folder")
        assert not (tmp_path / name).exists()
    assert _harmonize(comp, mask, "-o", str(tmp_path / ".png") + "/", "--weights", tiny_folder) == 0  # asked for
    assert read_whole(tmp_path / ".png" / "comp.png").size == (W, H)


def test_an_empty_name_or_a_dash_is_refused_before_any_work(tmp_path, monkeypatch):
    """A variable left unset gives "": as a path the current folder (-o "" wrote NAME.png into it; a composite ""
    was a folder of composites wanting a folder of masks), and as the mask none, so the alpha was taken for the
    mask. "-" was a file or folder of that name: -o - wrote into a new folder -/, and a composite - "did not
    exist"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    for given, what in (([""], "the composite"), ([comp, ""], "the mask"), ([comp, mask, "--reference", ""],
                                                                            "--reference")):
        with pytest.raises(SystemExit) as refused:
            _harmonize(*given, "-o", tmp_path / "out.png")
        assert str(refused.value) == f"error: {what} is an empty name (a variable left unset?): give its file or folder"
    with pytest.raises(SystemExit, match=r"^error: -o is an empty name \(a variable left unset\?\)"):
        _harmonize(comp, mask, "-o", "")
    for given in (["-", mask, "-o", "out.png"], [comp, mask, "-o", "-"], [comp, mask, "-o", "o.png", "--compare", "-"]):
        with pytest.raises(SystemExit, match=r"is -, but phnet reads and writes files, not standard input or output: "
                           r"give a file \(./- for one named -\)$"):
            _harmonize(*given)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.png", "mask.png"]


def test_16bit_grey_composite_is_read_at_16_bits(tiny_folder, tmp_path, capsys):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    comp, mask, out = tmp_path / "grey16.png", tmp_path / "mask.png", tmp_path / "out.png"
    Image.fromarray(grey).save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    result = np.asarray(Image.open(out))
    bg = np.asarray(_mask()) == 0
    expected = np.round(grey / 257.0).astype(np.uint8)
    assert np.array_equal(result[bg][:, 0], expected[bg])  # the picture, not white
    captured = capsys.readouterr()
    assert "8 bits" in captured.out
    for text in (captured.out, captured.err):  # no library advice in a command-line message
        assert "np." not in text and "asarray" not in text and "convert(" not in text


def test_exif_rotated_composite_and_mask(tiny_folder, tmp_path, capsys):
    """A phone JPEG stored landscape with 'rotate 90°' in EXIF, and its mask drawn on the upright picture."""
    stored = _composite(3, (H, W))  # W and H swapped: stored sideways
    exif = stored.getexif()
    exif[0x0112] = 6
    comp, mask, out = tmp_path / "phone.jpg", tmp_path / "mask.png", tmp_path / "out.png"
    stored.save(comp, exif=exif, quality=95)
    _mask().save(mask)  # W×H: the upright size
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert read_whole(out).size == (W, H)
    assert "note:" not in capsys.readouterr().out  # only the upright picture's size fits the mask


@pytest.mark.parametrize("turn, square", [(3, False), (6, True)])
def test_a_mask_that_fits_the_stored_picture_as_well_gets_a_note(tiny_folder, tmp_path, capsys, turn, square):
    """Turned by 180°, or square: a mask drawn on the picture as stored fits it, and marked the wrong pixels
    without a word."""
    size = (W, W) if square else (W, H)
    stored = _composite(3, size)
    exif = stored.getexif()
    exif[0x0112] = turn
    comp, mask, out = tmp_path / "phone.jpg", tmp_path / "mask.png", tmp_path / "out.png"
    stored.save(comp, exif=exif, quality=95)
    _mask(size).save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert (f"note: phone.jpg is turned by {'180' if turn == 3 else '90'}° by its EXIF orientation, so it is read "
            "upright, and mask.png is read as stored") in capsys.readouterr().out


@pytest.mark.filterwarnings("default:the EXIF of:UserWarning")  # shown by the CLI, as a user gets it
def test_a_composite_whose_exif_is_cut_short_is_harmonized_as_stored_with_one_warning(tiny_folder, tmp_path, capsys):
    """Its orientation lost with the rest of its EXIF: the result came out sideways with Pillow's raw "Corrupt EXIF
    data" lines (twice) to show for it."""
    import io
    import struct

    stored = _composite(3)
    exif = stored.getexif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "PhoneMaker", "Model X", 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    data = buffer.getvalue()
    start = data.index(b"Exif\x00\x00") - 4  # its APP1 segment, cut 14 bytes into the block
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    comp, mask, out = tmp_path / "phone.jpg", tmp_path / "mask.png", tmp_path / "out.png"
    comp.write_bytes(data[:start + 2] + struct.pack(">H", 2 + 6 + 14) + data[start + 4:start + 4 + 6 + 14]
                     + data[start + 2 + length:])
    _mask().save(mask)  # the stored size
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert read_whole(out).size == stored.size
    captured = capsys.readouterr()
    said = [line for line in captured.err.splitlines() if "EXIF" in line]
    assert len(said) == 1 and said[0].startswith("warning: the EXIF of ") and "phone.jpg is damaged" in said[0], said
    assert "read as stored" in said[0] and "image editor" in said[0]
    assert not re.search("Corrupt EXIF|Truncated File Read|Expecting to read", captured.out + captured.err)


def test_a_note_on_a_turn_given_in_the_xmp_alone_names_the_xmp(tiny_folder, tmp_path, capsys):
    """It said the picture was turned by its EXIF orientation, which it did not have."""
    from phnet.imageio.metadata import JPEG_XMP

    segment = JPEG_XMP + (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
                          b'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
                          b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    comp, mask, out = tmp_path / "phone.jpg", tmp_path / "mask.png", tmp_path / "out.png"
    _composite(3, (W, W)).save(comp, quality=95, extra=b"\xff\xe1" + (2 + len(segment)).to_bytes(2, "big") + segment)
    _mask((W, W)).save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert ("note: phone.jpg is turned by 90° by its XMP tiff:Orientation, so it is read upright, and mask.png is "
            "read as stored") in capsys.readouterr().out


def test_mask_file_holding_0_and_1_is_binary(tiny_folder, tmp_path):
    comp, mask, out = tmp_path / "comp.png", tmp_path / "mask01.png", tmp_path / "out.png"
    _composite().save(comp)
    Image.fromarray((np.asarray(_mask()) > 0).astype(np.uint8)).save(mask)  # values 0 and 1, not 0 and 255
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    m255, ref = tmp_path / "m255.png", tmp_path / "ref.png"
    _mask().save(m255)
    assert _harmonize(comp, m255, "-o", ref, "--weights", tiny_folder) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(ref)))
    assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(_composite()))


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_bundled_weights_say_how_much_of_the_readme_example_correction_they_applied(tmp_path, capsys):
    args = [EXAMPLES / "composite.png", EXAMPLES / "mask.png"]
    assert _harmonize(*args, "-o", tmp_path / "kept.png") == 0
    line = capsys.readouterr().out
    threshold = PHNetConfig.load(DEFAULT_DIR / "config.json").correction_threshold
    assert "composite.png: changed by RMS" in line and f"which is below the do-no-harm threshold {threshold:g}" in line
    assert "--threshold 0" in line and "--weights official-ffhqh512" in line
    assert _harmonize(*args, "-o", tmp_path / "raw.png", "--threshold", "0") == 0
    assert "below the do-no-harm threshold" not in capsys.readouterr().out

    def change(name: str) -> float:
        out = np.asarray(Image.open(tmp_path / name), dtype=float)
        return float(np.abs(out - np.asarray(Image.open(args[0]), dtype=float)).mean())

    assert 0 < change("kept.png") < change("raw.png")


def test_the_readme_quotes_what_the_first_command_prints(tmp_path, capsys):
    """The README gives the line its first command prints, as a CPU with AMX prints it (bf16), and the proposal
    fp32 gives elsewhere: the fp32 run prints that line with its own proposal, word for word."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    quoted = next(line for line in readme.splitlines() if line.startswith("composite.png: changed by RMS"))
    fp32 = re.search(r"in fp32, elsewhere,\s+the network proposes (\d+\.\d)\)", readme)
    assert fp32, "the README no longer says what the network proposes in fp32"
    bf16 = re.search(r"of the correction (\d+\.\d),", quoted)
    assert bf16 and abs(float(bf16[1]) - float(fp32[1])) <= 0.15
    capsys.readouterr()
    assert _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "x.png", "--dtype",
                      "fp32") == 0
    printed = capsys.readouterr().out.splitlines()[0]
    assert printed == quoted.replace(f"correction {bf16[1]},", f"correction {fp32[1]},")


def test_mask_is_alpha_reads_the_soft_edge_as_the_library_does(tiny_folder, tmp_path):
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    xx = np.arange(W)
    soft = np.asarray(_mask()) * np.clip(np.minimum(xx - W // 3, 2 * W // 3 - xx) / 5, 0, 1)  # soft sides
    soft = soft.round().astype(np.uint8)
    Image.fromarray(soft, "L").save(mask)
    for flag in ([], ["--mask-is-alpha"]):
        out = tmp_path / f"out{len(flag)}.png"
        assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder, "--threshold", "0", *flag) == 0
    expected = Harmonizer.from_pretrained(tiny_folder, device="cpu")(np.asarray(_composite()), soft, threshold=0,
                                                                     mask_is_alpha=True)
    plain, pasted = (np.asarray(Image.open(tmp_path / f"out{n}.png")) for n in (0, 1))
    assert np.abs(pasted.astype(int) - expected).max() <= 1 and not np.array_equal(plain, pasted)


@pytest.mark.parametrize("value", ["-1", "300", "nan"])
def test_a_threshold_outside_0_to_255_is_refused(tmp_path, value):
    """300 ran, although the same value in a config.json is refused."""
    with pytest.raises(SystemExit, match="--threshold must be from 0 to 255"):
        _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "x.png", "--threshold", value)


@pytest.mark.parametrize("extra, message", [
    (["--cut-threshold", "30"], "--cut-threshold applies to --temporal only"),
    (["--revision", "v9"], r"--revision picks a version of a Hub repo, and --weights \(default\) is not one"),
])
def test_options_that_would_do_nothing_are_refused(tmp_path, extra, message):
    with pytest.raises(SystemExit, match=message):
        _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "x.png", *extra)
    assert not (tmp_path / "x.png").exists()


def test_a_folder_that_takes_no_file_is_named_before_any_picture_is_computed(tmp_path, monkeypatch):
    """A read-only -o folder failed every picture in turn, after computing it, naming a hidden temp file."""
    import tempfile

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(harmonize_command, "harmonize_one", lambda *a: pytest.fail("a picture was computed"))
    with pytest.raises(SystemExit) as e:
        _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "new" / "x.png")
    assert str(e.value) == f"error: cannot write into {tmp_path} (Permission denied); choose another -o"


def test_an_output_folder_linked_to_nothing_is_named_before_any_picture_is_computed(tiny_model, tmp_path, monkeypatch,
                                                                                    capsys):
    """An -o folder linked to an unmounted drive passed the check and failed every picture after its work, as did
    `phnet convert` after reading the checkpoint: "[Errno 17] File exists"."""
    link, gone = tmp_path / "results", tmp_path / "unmounted" / "results"
    link.symlink_to(gone, target_is_directory=True)
    monkeypatch.setattr(harmonize_command, "harmonize_one", lambda *a: pytest.fail("a picture was computed"))
    for output in (f"{link}/", link / "sub" / "x.png"):
        with pytest.raises(SystemExit) as e:
            _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", output)
        assert str(e.value) == (f"error: -o {link} links to {gone}, which does not exist (an unmounted drive?); "
                                "connect it, or choose another -o")
    torch.save(tiny_model.state_dict(), tmp_path / "iharmony512.pth")
    assert cli.main(["convert", str(tmp_path / "iharmony512.pth"), str(link)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {link} links to {gone}, which does not exist (an unmounted drive?): connect it, or give another "
        "folder for the converted weights")
    assert not gone.parent.exists()


def test_a_compare_target_that_cannot_be_written_names_compare_before_any_picture_is_computed(tmp_path,
                                                                                                monkeypatch):
    """A folder where --compare's file should go ended the run after the work, naming a hidden temporary file;
    a --compare folder that takes no file asked for another -o."""
    monkeypatch.setattr(harmonize_command, "harmonize_one", lambda *a: pytest.fail("a picture was computed"))
    (tmp_path / "before_after.png").mkdir()
    (tmp_path / "notafolder").write_text("x")
    for compare, message in [(tmp_path / "before_after.png", "is a folder (--compare); give a file name"),
                             (tmp_path / "notafolder" / "c.png", "choose another --compare")]:
        with pytest.raises(SystemExit, match=re.escape(message)):
            _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "x.png",
                       "--compare", compare)
    (tmp_path / "x.png").write_bytes(b"earlier")
    monkeypatch.setattr(jobs.os, "access", lambda path, mode: False)  # (root may write anything)
    with pytest.raises(SystemExit, match=re.escape("x.png is read-only (-o); make it writable")):
        _harmonize(EXAMPLES / "composite.png", EXAMPLES / "mask.png", "-o", tmp_path / "x.png")


def _png_48bit(path: Path, pixels: np.ndarray, key: tuple[int, ...] | None = None) -> None:
    """A 16-bit-per-channel RGB (or H×W grey, grey+alpha, RGBA) PNG written by hand (PIL cannot write one): filter
    type 0 on every row; ``key``: the colour a tRNS chunk makes transparent."""
    import struct
    import zlib

    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour_type = 0 if pixels.ndim == 2 else {2: 4, 3: 2, 4: 6}[pixels.shape[2]]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    keyed = chunk(b"tRNS", struct.pack(f">{len(key)}H", *key)) if key is not None else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + keyed + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_a_16bit_grey_png_with_alpha_is_said_to_be_read_at_8_bits(tiny_folder, tmp_path, capsys):
    """PIL decodes it to the high bytes only: it was harmonized at 8 bits without a word."""
    grey_alpha = np.random.default_rng(4).integers(0, 65536, (H, W, 2), dtype=np.uint16)
    grey_alpha[..., 1] = 65535
    _png_48bit(tmp_path / "la16.png", grey_alpha)
    _mask().save(tmp_path / "mask.png")
    assert _harmonize(tmp_path / "la16.png", tmp_path / "mask.png", "-o", tmp_path / "out.png", "--weights",
                      tiny_folder) == 0
    assert "holds 16 bits per channel in a layout read at 8 bits" in capsys.readouterr().out


@pytest.mark.parametrize("grey", [False, True])
def test_a_16bit_png_with_a_transparent_key_colour_is_a_cut_out_as_an_8bit_one_is(tiny_folder, tmp_path, grey):
    """The key was dropped at 16 bits: the .png result lost the transparency a .jpg was refused for, and without
    a mask the picture 'had no alpha channel'."""
    from phnet.imageio import read_image

    pixels = np.random.default_rng(3).integers(1, 65536, (H, W) if grey else (H, W, 3), dtype=np.uint16)
    key = (0,) if grey else (0, 0, 0)
    pixels[: H // 4] = 0  # the top rows: the key, transparent
    comp, out = tmp_path / "keyed.png", tmp_path / "out.png"
    _png_48bit(comp, pixels, key)
    decoded = read_image(comp)
    assert decoded.shape == (H, W, 4) and decoded.dtype == np.uint16
    assert (decoded[: H // 4, :, 3] == 0).all() and (decoded[H // 4 :, :, 3] == 65535).all()
    _mask().save(tmp_path / "mask.png")
    assert _harmonize(comp, tmp_path / "mask.png", "-o", out, "--weights", tiny_folder) == 0
    assert read_whole(out).mode == "RGBA"


def test_a_16bit_key_colour_is_told_as_the_picture_is_read_before_a_jpg_is_written(tiny_folder, tmp_path):
    """PIL compares the key's low byte with 8-bit pixels: the transparent rows of a 16-bit keyed PNG passed, and
    the .jpg result lost them silently; an opaque one whose high bytes matched was refused."""
    from phnet.cli.jobs import Job, transparent_into_no_alpha

    _mask().save(tmp_path / "mask.png")
    pixels = np.full((H, W, 3), 30000, np.uint16)
    pixels[: H // 4] = (1000, 2000, 3000)  # the key
    _png_48bit(tmp_path / "keyed.png", pixels, (1000, 2000, 3000))
    pixels[: H // 4] = (59392, 53248, 47104)  # high bytes = the key's low bytes: opaque
    _png_48bit(tmp_path / "opaque.png", pixels, (1000, 2000, 3000))
    for name, refused in (("keyed.png", True), ("opaque.png", False)):
        job = Job(tmp_path / name, tmp_path / "mask.png", tmp_path / "out.jpg", None)
        assert transparent_into_no_alpha(job) is refused, name


@pytest.mark.parametrize("alpha, refused", [(65535, False), (65280, True), (65407, False)])
def test_a_16bit_alpha_is_judged_before_the_work_as_the_result_will_hold_it(tiny_folder, tmp_path, alpha, refused,
                                                                             monkeypatch):
    """An alpha of 65280 (8-bit alpha widened by 256) shows 255 in PIL's 8-bit band but rounds to 254: it passed
    the check, and the .jpg was refused after the work."""
    cv2 = pytest.importorskip("cv2")  # (the test extra has it) writes what PIL cannot

    _mask().save(tmp_path / "mask.png")
    pixels = np.full((H, W, 4), 30000, np.uint16)
    pixels[..., 3] = alpha
    cv2.imwrite(str(tmp_path / "c.png"), pixels)
    run = _harmonize(tmp_path / "c.png", tmp_path / "mask.png", "-o", tmp_path / "out.jpg", "--weights",
                     tiny_folder) if not refused else None
    if refused:
        monkeypatch.setattr(harmonize_command, "harmonize_one",
                            lambda *a: pytest.fail("the picture was computed first"))
        with pytest.raises(SystemExit, match="has transparent pixels"):
            _harmonize(tmp_path / "c.png", tmp_path / "mask.png", "-o", tmp_path / "out.jpg", "--weights",
                       tiny_folder)
        assert not (tmp_path / "out.jpg").exists()
    else:
        assert run == 0


def test_48bit_rgb_png_is_read_at_16_bits(tiny_folder, tmp_path, capsys):
    from phnet.imageio import read_image

    rgb = np.random.default_rng(1).integers(0, 65536, (H, W, 3), dtype=np.uint16)
    comp, mask, out = tmp_path / "rgb48.png", tmp_path / "mask.png", tmp_path / "out.png"
    _png_48bit(comp, rgb)
    _mask().save(mask)
    decoded = read_image(comp)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, rgb)  # every bit, not the high byte
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    bg = np.asarray(_mask()) == 0
    assert np.array_equal(np.asarray(Image.open(out))[bg], np.round(rgb / 257.0).astype(np.uint8)[bg])
    assert "is 16-bit" in capsys.readouterr().out


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_tiff_is_read_at_16_bits(tiny_folder, tmp_path, capsys, channels):
    """PIL decodes a 16-bit colour TIFF to its high bytes: it was harmonized at 8 bits, and nothing said so."""
    cv2 = pytest.importorskip("cv2")  # (the test extra has it) writes what PIL cannot

    from phnet.imageio import read_image

    rgb = np.random.default_rng(2).integers(0, 65536, (H, W, channels), dtype=np.uint16)
    comp, mask, out = tmp_path / "rgb48.tif", tmp_path / "mask.png", tmp_path / "out.tif"
    cv2.imwrite(str(comp), rgb[..., [2, 1, 0, 3][:channels]])  # compressed, as libtiff writes it
    _mask().save(mask)
    assert np.array_equal(read_image(comp), rgb)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder) == 0
    assert "is 16-bit" in capsys.readouterr().out


def test_16bit_tiff_layouts_pil_reads_at_8_bits_or_wrongly_are_named(tiny_folder, tmp_path, capsys):
    """Padding is read at 16 bits; premultiplied alpha only at 8 (said); planes not at all (PIL reads noise)."""
    from phnet.imageio import read_image
    from tests.helpers.tiff16 import write_tiff16

    rgbx = np.random.default_rng(3).integers(0, 65536, (H, W, 4), dtype=np.uint16)
    mask, out = tmp_path / "mask.png", tmp_path / "out.png"
    _mask().save(mask)
    write_tiff16(tmp_path / "padded.tif", rgbx)
    assert np.array_equal(read_image(tmp_path / "padded.tif"), rgbx[..., :3])
    write_tiff16(tmp_path / "premultiplied.tif", rgbx, extra_sample=1)
    assert _harmonize(tmp_path / "premultiplied.tif", mask, "-o", out, "--weights", tiny_folder) == 0
    assert "holds 16 bits per channel in a layout read at 8 bits" in capsys.readouterr().out
    write_tiff16(tmp_path / "planes.tif", rgbx[..., :3], planar=True)
    with pytest.raises(ValueError, match="stored plane by plane"):
        read_image(tmp_path / "planes.tif")


def test_16bit_input_needs_no_uint16_where_kernel(tiny_folder, tmp_path, monkeypatch):
    """torch.where has no uint16 kernel in the torch versions many hosts run; the library must not need one."""
    where = torch.where

    def old_where(condition, *values):
        if any(isinstance(v, torch.Tensor) and v.dtype == torch.uint16 for v in values):
            raise RuntimeError('"where_cpu" not implemented for \'UInt16\'')
        return where(condition, *values)

    monkeypatch.setattr(torch, "where", old_where)
    grey = np.random.default_rng(0).integers(0, 65536, (H, W), dtype=np.uint16)
    comp, mask = tmp_path / "grey16.png", tmp_path / "mask.png"
    Image.fromarray(grey).save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animated_pictures_are_refused_with_a_pointer_to_clips(tiny_folder, tmp_path, suffix):
    frames = [_composite(seed) for seed in range(3)]
    comp, mask = tmp_path / f"anim{suffix}", tmp_path / "mask.png"
    frames[0].save(comp, save_all=True, append_images=frames[1:], duration=40)
    _mask().save(mask)
    with pytest.raises(SystemExit, match=r"animated \(3 frames\).*--temporal"):
        _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder)


def test_the_command_exits_2_for_any_refused_input(tmp_path):
    """A refusal said by the CLI itself exited 1 (Python's SystemExit), one found by the library 2."""
    import subprocess
    import sys

    def status(*extra):
        return subprocess.run([sys.executable, "-m", "phnet", "harmonize", str(EXAMPLES / "composite.png"),
                               str(EXAMPLES / "mask.png"), "-o", str(tmp_path / "x.png"), *extra],
                              capture_output=True, text=True, timeout=120)

    for extra in (["--threshold", "300"], ["--strength", "2"]):
        done = status(*extra)
        assert done.returncode == 2 and done.stderr.startswith("error:"), done.stderr


def test_import_phnet_loads_no_torch_and_ctrl_c_while_it_loads_ends_quietly(monkeypatch):
    """Ctrl-C in the second or more torch takes to load printed a traceback from the `phnet` command."""
    import subprocess
    import sys

    code = "import sys, phnet; assert 'torch' not in sys.modules; phnet.PHNetConfig; from phnet import Harmonizer"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])

    from phnet import console

    def interrupted(name, *args, **kwargs):
        if name == "cli" or name.endswith(".cli"):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    import builtins

    real_import = builtins.__import__
    monkeypatch.delitem(sys.modules, "phnet.cli")
    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as stop:
        console.entry()
    assert stop.value.code == 130


@pytest.mark.parametrize("options, words", [
    (("--strength", "2"), "error: --strength must be in 0..1, got 2.0"),
    (("--working-size", "100"), "error: --working-size must be a multiple of 8"),
    (("--reference", "ref.png", "--mode", "official"), "error: --reference works with --mode full only"),
])
def test_a_bad_option_in_a_folder_run_is_one_error_before_any_picture(tiny_folder, tmp_path, capsys, options,
                                                                       words):
    """Each picture was read and then failed with the same option error, in the library's words; then it named
    strength and working_size, not their flags."""
    comps, masks = folders(tmp_path, "a.png", "b.png")
    _mask().save(tmp_path / "ref.png")
    options = tuple(str(tmp_path / o) if o == "ref.png" else o for o in options)
    with pytest.raises(SystemExit) as e:
        _harmonize(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, *options)
    assert str(e.value).startswith(words) and "a.png" not in str(e.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_windows_path_whose_backslash_ate_its_closing_quote_is_named():
    swallowed = ["harmonize", "in.png", "-o", 'C:\\out" --compare c.png']  # what cmd.exe makes of -o "C:\out\"
    with pytest.raises(SystemExit, match=r"backslash before a closing quote"):
        command._check_quotes(swallowed, windows=True)
    command._check_quotes(['odd"name.png'], windows=False)  # a legal file name elsewhere


@pytest.mark.parametrize("flag, value, setting", [("--working-size", "16", {"working_size": 16}),
                                                   ("--dtype", "bf16", {"dtype": "bf16"}),
                                                   ("--dtype", "fp32", {"dtype": "fp32"})])
def test_working_size_and_dtype_reach_the_library(tiny_folder, tmp_path, flag, value, setting):
    """Each picture is harmonized as the library does with that setting, which gives another result here."""
    comp, mask, out = tmp_path / "comp.png", tmp_path / "mask.png", tmp_path / "out.png"
    _composite().save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", out, "--weights", tiny_folder, "--threshold", "0", flag, value) == 0
    image, subject = np.asarray(_composite()), np.asarray(_mask()) / 255.0

    def library(dtype="auto", working_size=None):
        harmonizer = Harmonizer.from_pretrained(tiny_folder, device="cpu", dtype=dtype)
        return harmonizer.harmonize(image, subject, working_size=working_size, threshold=0)[0]

    other = {"working_size": {"working_size": None}, "dtype": {"dtype": "fp32" if value == "bf16" else "bf16"}}
    expected = library(**setting)
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert not np.array_equal(library(**other[next(iter(setting))]), expected)


def test_a_precision_slower_than_fp32_on_this_device_is_said(tiny_folder, tmp_path, capsys, monkeypatch):
    """The library logs it; the CLI, which keeps the library's log quiet, dropped it."""
    from phnet import precision

    monkeypatch.setattr(precision, "slow_on", lambda dtype, device: "bf16 on this GPU runs slower than fp32")
    comp, mask = tmp_path / "comp.png", tmp_path / "mask.png"
    _composite().save(comp)
    _mask().save(mask)
    assert _harmonize(comp, mask, "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert "warning: bf16 on this GPU runs slower than fp32" in capsys.readouterr().err


def test_a_method_with_the_official_mode_is_refused_by_name(tiny_folder, tmp_path):
    """--mode official --method guided gave the official result without a word: that pipeline has one method."""
    comp, mask = tmp_path / "c.png", tmp_path / "m.png"
    _composite().save(comp)
    _mask().save(mask)
    with pytest.raises(SystemExit, match="--method works with --mode full only"):
        _harmonize(comp, mask, "-o", tmp_path / "o.png", "--mode", "official", "--method", "guided",
                   "--weights", tiny_folder)
    assert _harmonize(comp, mask, "-o", tmp_path / "o.png", "--mode", "official", "--weights", tiny_folder) == 0


def test_a_float_composite_is_noted_as_written_at_8_bits_and_one_of_0_255_is_named(tiny_folder, tmp_path, capsys):
    """A 32-bit float TIFF was written at 8 bits without a note; one of 0..255, or below 0, got the library's advice
    to divide by 255 or clamp, naming no file."""
    grey = np.random.default_rng(0).random((H, W)).astype(np.float32)
    _mask().save(tmp_path / "mask.png")
    Image.fromarray(grey, "F").save(tmp_path / "unit.tif")
    assert _harmonize(tmp_path / "unit.tif", tmp_path / "mask.png", "-o", tmp_path / "o.png",
                      "--weights", tiny_folder) == 0
    assert "unit.tif is 32-bit float; " in capsys.readouterr().out
    levels = grey * 222
    levels[:, :4] = 0  # a black border: the check read the first three columns
    Image.fromarray(levels, "F").save(tmp_path / "levels.tif")
    with pytest.raises(SystemExit, match=r"levels.tif holds float values up to 2\d\d.*save it scaled to 0..1"):
        _harmonize(tmp_path / "levels.tif", tmp_path / "mask.png", "-o", tmp_path / "p.png", "--weights", tiny_folder)
    Image.fromarray(grey - 0.3, "F").save(tmp_path / "negative.tif")  # the library's words spoke to Python code
    with pytest.raises(SystemExit, match=r"negative.tif holds float values down to -0.\d+.*save it scaled to 0..1"):
        _harmonize(tmp_path / "negative.tif", tmp_path / "mask.png", "-o", tmp_path / "n.png", "--weights",
                   tiny_folder)
    grey[5, 5] = np.nan
    Image.fromarray(grey, "F").save(tmp_path / "nan.tif")
    with pytest.raises(SystemExit, match=r"nan.tif holds NaN or infinite values"):
        _harmonize(tmp_path / "nan.tif", tmp_path / "mask.png", "-o", tmp_path / "q.png", "--weights", tiny_folder)


def test_version_names_phnet_and_what_it_runs_on_in_one_line(capsys):
    import platform

    import phnet

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith(f"phnet {phnet.__version__} (torch {torch.__version__}, ")
    assert line.rstrip().endswith(f"Python {platform.python_version()})")


def test_the_commands_defaults_are_the_librarys_and_its_help_says_them():
    """The command writes the library's defaults a second time (argparse needs them, and its help shows them): they
    must agree with the library's, and the help's words with both."""
    import inspect

    from phnet import Harmonizer
    from phnet.cli.command import TEMPORAL_SIGMA, build_parser
    from phnet.temporal import Temporal

    parser = build_parser().harmonize_parser
    given = parser.parse_args(["c.png", "m.png", "-o", "out.png"])
    call = inspect.signature(Harmonizer.harmonize).parameters
    made = inspect.signature(Harmonizer.__init__).parameters
    assert given.strength == call["strength"].default == 1.0
    assert given.mode == call["mode"].default == "full"
    assert given.dtype == made["dtype"].default == "auto"
    assert given.threshold is None and given.method is None and given.cut_threshold is None  # the library decides
    assert made["method"].default == "correction" and Temporal().cut_threshold == 20.0
    assert parser.parse_args(["f/", "m/", "-o", "o/", "--temporal"]).temporal == TEMPORAL_SIGMA == Temporal().window
    help_text = " ".join(parser.format_help().split())
    for words in ("(default 3;", "(default 20)", "(mode full; default correction)", "auto (default)",
                  "full resolution (default)"):
        assert words in help_text, words


def test_the_command_modules_name_the_harmonizer_they_run():
    """They load once the command line parsed, when the weights load too: their hints read the Harmonizer itself,
    and no module of theirs offers a stand-in under its name."""
    import typing

    from phnet.cli import clip, messages

    assert typing.get_type_hints(harmonize_command.harmonize_one)["harmonizer"] is Harmonizer
    assert typing.get_type_hints(clip.harmonize_clip)["harmonizer"] is Harmonizer
    assert typing.get_type_hints(messages.verdict)["harmonizer"] is Harmonizer
