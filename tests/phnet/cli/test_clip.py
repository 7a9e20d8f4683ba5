"""`phnet harmonize --temporal` (a folder of frames) and `--reference`."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from phnet import Harmonizer, cli
from phnet.cli import clip, saving
from tests.helpers.cli_pictures import read_whole

W, H = 40, 32


def _frame(t: int, cut: bool = False) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = rng.integers(60, 140, (H, W, 3)).astype(np.int16)
    if cut:
        base = base[::-1, ::-1] + np.array([90, -40, -40])
    return np.clip(base + t, 0, 255).astype(np.uint8)


def _mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[8:26, 14:28] = 255
    return m


def _write_clip(tmp_path, frames: int = 6, cut_at: int = 4):
    comps, masks = tmp_path / "frames", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    for t in range(frames):
        name = f"frame{t * 5}.png"  # frame5 must come before frame10: natural order
        Image.fromarray(_frame(t, t >= cut_at)).save(comps / name)
        Image.fromarray(_mask()).save(masks / name)
    return comps, masks


def test_temporal_folder_matches_the_library(tiny_folder, tmp_path, capsys):
    comps, masks = _write_clip(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2"]) == 0
    printed = capsys.readouterr().out
    assert "6 frames" in printed and "frame20.png" in printed  # the cut is found and named
    names = [f"frame{t * 5}.png" for t in range(6)]
    results = np.stack([np.asarray(Image.open(out / n)) for n in names])
    frames = np.stack([_frame(t, t >= 4) for t in range(6)])
    expected, reports = Harmonizer.from_pretrained(tiny_folder, device="cpu").harmonize(frames, _mask() / 255.0,
                                                                                         temporal=2.0)
    assert np.abs(results.astype(int) - expected.astype(int)).max() <= 1
    background = _mask() == 0
    assert (results[:, background] == frames[:, background]).all()
    from phnet.corrections import summary

    assert summary(reports, "frames") in printed  # after smoothing, as the library reports them


def test_frames_without_a_subject_are_counted_in_the_clips_summary_as_the_library_counts_them(tiny_folder,
                                                                                                tmp_path, capsys):
    """The summary said "4 of 4 frames changed" of 6 frames, one with an empty mask and one with a trace of one."""
    comps, masks = _write_clip(tmp_path, cut_at=6)
    masks_given = np.stack([_mask()] * 6)
    masks_given[2] = 0
    masks_given[4] = 0
    masks_given[4, 0, 0] = 2  # a matte's trace of a subject: under 1/64
    for t in (2, 4):
        Image.fromarray(masks_given[t]).save(masks / f"frame{t * 5}.png")
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 0
    printed = capsys.readouterr().out
    frames = np.stack([_frame(t) for t in range(6)])
    _, reports = Harmonizer.from_pretrained(tiny_folder, device="cpu").harmonize(frames, masks_given / 255.0,
                                                                                 temporal=2.0)
    from phnet.corrections import summary

    assert reports[2].empty_mask and reports[4].trace
    assert summary(reports, "frames") in printed and "of 6 frames changed" in printed


def test_temporal_needs_a_folder(tiny_folder, tmp_path):
    comp, mask = tmp_path / "c.png", tmp_path / "m.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    with pytest.raises(SystemExit, match="folder of frames"):
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_folder),
                  "--temporal"])


@pytest.mark.parametrize("flags", [["--compare", "x.png"], ["--mode", "official"]])
def test_a_clip_with_a_comparison_or_the_official_mode_is_refused_before_the_weights_load(tmp_path, monkeypatch,
                                                                                         flags):
    """A clip writes no comparisons: --compare with --temporal would be dropped without a word."""
    from phnet import harmonizer

    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    comps, masks = _write_clip(tmp_path, frames=2)
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--temporal", *flags])
    assert str(stop.value) == "error: --temporal needs a folder of frames, --mode full and no --compare"
    assert not (tmp_path / "out").exists()


def test_clip_settings_are_refused_before_the_weights_load(tmp_path, monkeypatch, capsys):
    from phnet import harmonizer

    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    frames, masks = tmp_path / "f", tmp_path / "m"
    for folder in (frames, masks):
        folder.mkdir()
    Image.fromarray(_frame(0)).save(frames / "0.png")
    Image.fromarray(_mask()).save(masks / "0.png")
    assert cli.main(["harmonize", str(frames), str(masks), "-o", str(tmp_path / "o"), "--temporal",
                     "--cut-threshold", "-3"]) == 2
    assert "error: --cut-threshold must be a number > 0 (0–255 units), got -3.0" in capsys.readouterr().err
    for sigma in ("nan", "-1", "inf"):  # named "temporal window", the library's word, not by its flag
        assert cli.main(["harmonize", str(frames), str(masks), "-o", str(tmp_path / "o"), f"--temporal={sigma}"]) == 2
        assert capsys.readouterr().err.startswith("error: --temporal must be 0 (off) or a number of frames from 0.01 "
                                                  f"to 10000.0, got {float(sigma)}\n")


def test_a_clip_s_bad_working_size_or_strength_is_named_by_its_flag(tiny_folder, tmp_path, capsys):
    comps, masks = _write_clip(tmp_path, frames=2)
    base = ["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights", str(tiny_folder),
            "--device", "cpu", "--temporal"]
    assert cli.main([*base, "--working-size", "100"]) == 2
    assert "error: --working-size must be a multiple of 8 from 16 to 4096, got 100" in capsys.readouterr().err
    assert cli.main([*base, "--strength", "2"]) == 2
    assert "error: --strength must be in 0..1, got 2.0" in capsys.readouterr().err


def test_a_frame_saved_as_gif_is_refused_before_any_work_not_passed_over(tmp_path, monkeypatch):
    """frame5.gif was left out without a word: the clip's frames either side of it were smoothed as neighbours."""
    from phnet import harmonizer

    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    comps, masks = _write_clip(tmp_path, frames=3)
    (comps / "frame5.png").rename(comps / "frame5.gif")
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comps), str(masks), "-o", str(tmp_path / "o"), "--temporal"])
    assert str(stop.value) == (f"error: frame5.gif, named like a mask in {masks}, would leave a gap in the clip: GIF "
                               "is read as a mask only; save the frame as PNG")
    assert not (tmp_path / "o").exists()


def test_reference_mask_file(tiny_folder, tmp_path):
    comp, mask, ref = tmp_path / "c.png", tmp_path / "m.png", tmp_path / "r.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    reference = np.zeros((H, W), np.uint8)
    reference[:, :8] = 255
    Image.fromarray(reference).save(ref)
    assert cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights",
                     str(tiny_folder), "--device", "cpu", "--reference", str(ref)]) == 0
    expected = Harmonizer.from_pretrained(tiny_folder, device="cpu")(_frame(0), _mask() / 255.0,
                                                                     reference_mask=reference / 255.0)
    assert np.abs(np.asarray(Image.open(tmp_path / "o.png")).astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(SystemExit, match="reference mask"):
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "p.png"), "--weights", str(tiny_folder),
                  "--reference", str(tmp_path / "missing.png")])


def test_mask_is_alpha_reads_a_clips_soft_edges_as_the_library_does(tiny_folder, tmp_path):
    comps, masks = _write_clip(tmp_path, frames=3, cut_at=3)
    soft = (_mask() * np.clip(np.minimum(np.arange(W) - 14, 27 - np.arange(W)) / 4, 0, 1)).round().astype(np.uint8)
    for name in ("frame0.png", "frame5.png", "frame10.png"):
        Image.fromarray(soft).save(masks / name)
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--threshold", "0", "--mask-is-alpha"]) == 0
    results = np.stack([np.asarray(Image.open(out / f"frame{t * 5}.png")) for t in range(3)])
    frames = np.stack([_frame(t) for t in range(3)])
    harmonizer = Harmonizer.from_pretrained(tiny_folder, device="cpu")
    expected = harmonizer(frames, soft, temporal=2.0, threshold=0, mask_is_alpha=True)
    assert np.abs(results.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(harmonizer(frames, soft, temporal=2.0, threshold=0), expected)


def test_a_reference_of_another_size_is_named_with_the_composite(tiny_folder, tmp_path):
    """The library's words named no file and told of an EXIF turn the composite did not have."""
    comp, mask, ref = tmp_path / "c.png", tmp_path / "m.png", tmp_path / "r.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    Image.fromarray(np.zeros((W, H), np.uint8)).save(ref)  # turned
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_folder),
                  "--device", "cpu", "--reference", str(ref)])
    assert str(stop.value) == (f"error: reference mask {ref} is {H}×{W} but {comp} is {W}×{H}; draw it on the "
                               "composite, or resize it to it")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored W×H, read upright H×W: a reference drawn as stored is named as such
    Image.fromarray(_frame(0)).save(tmp_path / "turned.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((W, H), np.uint8)).save(tmp_path / "m2.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(ref)
    with pytest.raises(SystemExit, match=r"the size of .*turned.jpg as stored, but the composite is rotated"):
        cli.main(["harmonize", str(tmp_path / "turned.jpg"), str(tmp_path / "m2.png"), "-o", str(tmp_path / "o.png"),
                  "--weights", str(tiny_folder), "--device", "cpu", "--reference", str(ref)])


def test_a_colour_reference_is_refused_in_a_references_words(tiny_folder, tmp_path):
    """The message said "(white = subject)" of a mask that marks the region to match."""
    comp, mask, ref = tmp_path / "c.png", tmp_path / "m.png", tmp_path / "r.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    Image.fromarray(_frame(1)).save(ref)  # a photo, not a mask
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_folder),
                  "--device", "cpu", "--reference", str(ref)])
    assert f"reference mask {ref} is a colour picture" in str(stop.value)
    assert str(stop.value).endswith("(white = the region to match)")
    ambiguous = np.dstack([_frame(1), np.full((H, W), 255, np.uint8)])
    ambiguous[:2, :, 3] = 0  # a few transparent pixels on a colour picture: neither reading fits
    Image.fromarray(ambiguous).save(ref)
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comp), str(mask), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_folder),
                  "--device", "cpu", "--reference", str(ref)])
    assert "cannot be told" in str(stop.value) and "subject" not in str(stop.value)


def _run(*args) -> int:
    return cli.main(["harmonize", *map(str, args), "--device", "cpu"])


def test_no_input_is_written_to_references_and_hard_links_included(tiny_folder, tmp_path):
    comp, mask, ref = tmp_path / "c.png", tmp_path / "m.png", tmp_path / "ref.png"
    Image.fromarray(_frame(0)).save(comp)
    Image.fromarray(_mask()).save(mask)
    Image.fromarray(255 - _mask()).save(ref)
    before = {p: p.read_bytes() for p in (comp, mask, ref)}
    with pytest.raises(SystemExit, match="refusing to overwrite the input"):
        _run(comp, mask, "-o", ref, "--reference", ref, "--weights", tiny_folder)
    link = tmp_path / "link.png"
    link.hardlink_to(comp)  # another name of the composite itself
    with pytest.raises(SystemExit, match="refusing to overwrite the input"):
        _run(comp, mask, "-o", link, "--weights", tiny_folder)
    with pytest.raises(SystemExit, match="refusing to overwrite the input"):
        _run(comp, mask, "-o", tmp_path / "out.png", "--compare", link, "--weights", tiny_folder)
    (tmp_path / "clip").mkdir()
    comps, masks = _write_clip(tmp_path / "clip", frames=2)
    refs = tmp_path / "clip" / "refs"
    refs.mkdir()
    for name in ("frame0.png", "frame5.png"):
        Image.fromarray(255 - _mask()).save(refs / name)
    with pytest.raises(SystemExit, match="refusing to overwrite the input"):
        _run(comps, masks, "-o", f"{refs}/", "--reference", refs, "--weights", tiny_folder)
    assert all(p.read_bytes() == data for p, data in before.items())


def test_a_clip_whose_masks_mostly_look_inverted_is_refused_before_the_weights_load(tiny_folder, tmp_path,
                                                                                      monkeypatch):
    """A clip's frames were never judged for an inverted mask (a black-subject masks folder harmonized every
    frame's background); it is judged as a whole, as the Harmonize Frames node judges it."""
    from phnet import harmonizer

    comps, masks = _write_clip(tmp_path, frames=4, cut_at=4)
    for t in range(3):
        Image.fromarray(255 - _mask()).save(masks / f"frame{t * 5}.png")
    (masks / "frame15.png").write_bytes(b"not a picture")  # its own frame's run names it
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
        with pytest.raises(SystemExit) as stop:
            _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal")
        assert str(stop.value) == (
            f"error: 3 of the 4 frames' masks cover most of the picture and of its border ({masks / 'frame0.png'}: "
            "80% and 100%), so they look inverted: white must mark the subject, black the background; invert them, "
            "or, if they are right (subjects at the picture's sides), add --mask-as-given")
        for name in ("frame5.png", "frame10.png", "frame15.png"):
            (comps / name).unlink()
        with pytest.raises(SystemExit, match=r"error: mask .*frame0.png covers 80% of the picture and 100% of its "
                                             r"border, so it looks inverted: .*invert it, or, if it is right"):
            _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal")
    assert not out.exists()
    assert _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "--mask-as-given") == 0
    assert [p.name for p in out.iterdir()] == ["frame0.png"]


def test_a_clips_masks_are_read_no_further_than_it_cannot_be_refused_and_a_long_check_shows_progress(
        tiny_folder, tmp_path, monkeypatch, capsys):
    """Every mask file of a clip was read at full size before its first frame, in silence (some 2 minutes for
    1000 4K frames): one that cannot be refused is read no further, and a check that takes long shows a bar."""
    from phnet import harmonizer, imageio

    comps, masks = _write_clip(tmp_path, frames=8, cut_at=8)
    Image.fromarray(255 - _mask()).save(masks / "frame0.png")
    read = []
    read_mask = imageio.read_mask
    monkeypatch.setattr(imageio, "read_mask", lambda path, **k: read.append(path.name) or read_mask(path, **k))
    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("checked"))
    with pytest.raises(pytest.fail.Exception, match="checked"):
        _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal")
    assert read == ["frame0.png", "frame5.png", "frame10.png", "frame15.png", "frame20.png"]  # then 4 of 8 at most
    assert "checking masks" not in capsys.readouterr().err  # a short check says nothing
    monkeypatch.setattr(clip, "_CHECK_DELAY", 0)
    with pytest.raises(pytest.fail.Exception, match="checked"):
        _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal")
    assert "checking masks" in capsys.readouterr().err
    monkeypatch.setattr("sys.stderr", None)  # pythonw: nowhere to show it
    with pytest.raises(pytest.fail.Exception, match="checked"):
        _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal")


def test_a_clip_is_judged_as_the_library_judges_it_and_goes_on_past_a_bad_frame(tiny_folder, tmp_path, capsys):
    """A frame the subject fills, or only an edge of it enters, is part of a clip: such frames failed, and the
    written sequence had gaps where the library and the node leave them as they were."""
    comps, masks = _write_clip(tmp_path, frames=6, cut_at=6)
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(masks / "frame5.png")  # no background left
    Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "frame10.png")  # the subject is out of the picture
    edge = np.zeros((H, W), np.uint8)
    edge[0, 0] = 2  # a matte's trace of a subject: under 1/64, left as it is
    Image.fromarray(edge).save(masks / "frame20.png")
    (comps / "frame15.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    assert _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "2") == 1
    printed = capsys.readouterr()
    assert "frame15.png" in printed.err and "1 of 6 frames failed" in printed.err
    assert "empty mask" in printed.out and "frame10.png" in printed.out
    assert "too little to match to" in printed.out  # frame5, left as it was
    assert "1 frame leaves under 3% of the picture as background (the subject fills it) and was written " \
           "unchanged: frame5.png" in printed.out
    assert "1 frame has an empty mask and was written unchanged: frame10.png" in printed.out
    assert "1 frame holds only a trace of a subject (under 1/64 of full) and was written unchanged: frame20.png" \
        in printed.out
    assert sorted(p.name for p in out.iterdir()) == ["frame0.png", "frame10.png", "frame20.png", "frame25.png",
                                                       "frame5.png"]
    for name, t in (("frame10.png", 2), ("frame5.png", 1), ("frame20.png", 4)):  # written unchanged
        assert np.array_equal(np.asarray(Image.open(out / name)), _frame(t))


def test_a_clip_whose_every_mask_covers_its_frame_is_an_error(tiny_folder, tmp_path, capsys):
    comps, masks = _write_clip(tmp_path, frames=3)
    for m in masks.iterdir():
        Image.fromarray(np.full((H, W), 255, np.uint8)).save(m)
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 1
    assert "every mask that has a subject covers (nearly) its whole frame" in capsys.readouterr().err


def test_a_clip_of_masks_on_the_wrong_scale_is_an_error(tiny_folder, tmp_path, capsys):
    """16-bit masks holding 0..255 values: a single picture is refused, and so was a clip before its masks were
    judged as a whole; then it exited 0, saying 5 of 5 changed, with the pixels as they were."""
    comps, masks = _write_clip(tmp_path, frames=3)
    for m in masks.iterdir():
        faint = (np.asarray(Image.open(m)) > 0).astype(np.uint16) * 255
        Image.fromarray(faint).save(m)  # 16-bit PNG, 0..255 values
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 1
    assert "the masks' strongest value is 0.39% of full" in capsys.readouterr().err


def test_a_change_of_frame_size_starts_a_shot_even_at_the_same_working_shape(tiny_folder, tmp_path, capsys):
    """32x40 and 64x80 frames share one working shape: the size change was not a cut, and the first shot's
    correction leaked into the second."""
    comps, masks = tmp_path / "frames", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    for t in range(6):
        frame, mask = Image.fromarray(_frame(t)), Image.fromarray(_mask())
        if t >= 3:
            frame, mask = frame.resize((2 * W, 2 * H)), mask.resize((2 * W, 2 * H), Image.NEAREST)
        frame.save(comps / f"frame{t}.png")
        mask.save(masks / f"frame{t}.png")
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--cut-threshold", "255"]) == 0
    assert "shots start at: frame3.png" in capsys.readouterr().out


def test_a_clip_whose_every_mask_is_empty_is_an_error(tiny_folder, tmp_path, capsys):
    """As the library refuses it; the CLI copied the frames and exited 0, so a wrong masks folder passed."""
    comps, masks = _write_clip(tmp_path, frames=3)
    for m in masks.iterdir():
        Image.fromarray(np.zeros((H, W), np.uint8)).save(m)
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: every frame's mask is empty (all zero): nothing was harmonized (the frames were written as they "
        f"were); check {masks} (white = subject)")


def test_every_frame_is_written_whole_with_its_profile(tiny_folder, tmp_path, monkeypatch):
    """Frames harmonized and frames copied (empty mask) alike go through the atomic helper, ICC profile kept."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    comps, masks = _write_clip(tmp_path, frames=3)
    for path in comps.iterdir():
        read_whole(path).save(path, icc_profile=srgb)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "frame5.png")
    written = []
    write_atomic = saving.write_atomic
    monkeypatch.setattr(saving, "write_atomic", lambda path, write: (written.append(path), write_atomic(path, write)))
    out = tmp_path / "out"
    assert _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "2") == 0
    assert sorted(written) == sorted(out.iterdir()) and len(written) == 3
    assert all(read_whole(p).info.get("icc_profile") == srgb for p in written)


def test_a_frame_with_too_little_background_is_written_as_it_was(tiny_folder, tmp_path):
    """It was reported unchanged, then written with its neighbours' smoothed correction."""
    comps, masks = _write_clip(tmp_path, frames=4, cut_at=9)
    cramped = np.full((H, W), 255, np.uint8)
    cramped[0, :10] = 0  # under 1 % background
    Image.fromarray(cramped).save(masks / "frame5.png")
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--threshold", "0"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "frame5.png")), _frame(1))
    frames = np.stack([_frame(t) for t in range(4)])
    every = np.stack([_mask(), cramped, _mask(), _mask()]) / 255.0
    expected = Harmonizer.from_pretrained(tiny_folder, device="cpu")(frames, every, temporal=2.0, threshold=0)
    results = np.stack([np.asarray(Image.open(out / f"frame{t * 5}.png")) for t in range(4)])
    assert np.abs(results.astype(int) - expected.astype(int)).max() <= 1


def test_the_clip_bar_counts_frames_written_and_reaches_its_end_with_the_last(tiny_folder, tmp_path, monkeypatch):
    """It counted estimates: it closed at 100 % while the last window of frames was still to be written."""
    import tqdm as tqdm_module

    seen = []

    class Bar(tqdm_module.tqdm):
        def update(self, n=1):
            super().update(n)
            if self.desc == "harmonizing":  # (not the masks' check before it)
                seen.append((self.n, len(list((tmp_path / "out").glob("*.png")))))

    monkeypatch.setattr(tqdm_module, "tqdm", Bar)
    comps, masks = _write_clip(tmp_path, frames=6)
    assert _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal", "2") == 0
    assert [n for n, _ in seen] == list(range(1, 7)) and all(n == written for n, written in seen)


def test_a_faint_mask_clip_is_reported_as_the_library_reports_it(tiny_folder, tmp_path, capsys):
    """The CLI's clip reports ignored what a mask of 0.3 lets through (11.8 where the library said 3.6)."""
    from phnet.corrections import summary

    comps, masks = _write_clip(tmp_path, frames=3, cut_at=3)
    faint = (_mask() * 0.3).astype(np.uint8)
    for name in ("frame0.png", "frame5.png", "frame10.png"):
        Image.fromarray(faint).save(masks / name)
    assert _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal", "2",
                "--threshold", "0") == 0
    frames = np.stack([_frame(t) for t in range(3)])
    _, reports = Harmonizer.from_pretrained(tiny_folder, device="cpu").harmonize(frames, faint / 255.0, temporal=2.0,
                                                                                 threshold=0)
    assert all(0.25 < r.weight < 0.35 for r in reports)
    assert summary(reports, "frames") in capsys.readouterr().out


def test_a_grey_clip_comes_out_in_one_kind_whatever_each_frame_met(tiny_folder, tmp_path):
    """Frames with an empty or a whole mask were saved as read (grey), the others as the library returns them
    (RGB): one clip of two kinds."""
    comps, masks = _write_clip(tmp_path, frames=4, cut_at=9)
    for t in range(4):
        Image.open(comps / f"frame{t * 5}.png").convert("L").save(comps / f"frame{t * 5}.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "frame5.png")
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(masks / "frame10.png")
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--threshold", "0"]) == 0
    pictures = [read_whole(out / f"frame{t * 5}.png") for t in range(4)]
    assert [p.mode for p in pictures] == ["RGB"] * 4
    grey = np.asarray(Image.open(comps / "frame5.png"))
    assert np.array_equal(np.asarray(pictures[1]), np.repeat(grey[..., None], 3, -1))  # as it was, in RGB


def test_a_clip_through_the_working_size_says_so_as_a_picture_does(tiny_folder, tmp_path, capsys):
    comps, masks = _write_clip(tmp_path, frames=3, cut_at=9)
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--threshold", "0", "--method", "guided"]) == 0
    assert "went through the working size" in capsys.readouterr().out


def test_a_frames_mask_file_of_level_1_specks_is_read_on_the_clips_scale(tiny_folder, tmp_path, capsys):
    """Each mask file was read on its own: a frame's specks of level 1 (a matte's, once the subject left) made
    a 0/1 mask, and the frame was recoloured there at full strength."""
    comps, masks = _write_clip(tmp_path, frames=4, cut_at=9)
    specks = np.zeros_like(_mask())
    specks[np.random.default_rng(0).random(specks.shape) < 0.05] = 1
    Image.fromarray(specks).save(masks / "frame10.png")
    out = tmp_path / "out"
    assert _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "2", "--threshold", "0") == 0
    assert "1 frame holds only a trace of a subject" in capsys.readouterr().out
    assert np.array_equal(np.asarray(Image.open(out / "frame10.png")), _frame(2))


def test_a_frames_alpha_of_level_1_specks_is_opacity_not_a_binary_mask(tiny_folder, tmp_path, capsys):
    comps = tmp_path / "frames"
    comps.mkdir()
    for t in range(4):
        alpha = _mask().copy()
        if t == 2:
            alpha[:] = 0
            alpha[np.random.default_rng(0).random(alpha.shape) < 0.05] = 1  # the subject left: specks of 1/255
        Image.fromarray(np.dstack([_frame(t), alpha])).save(comps / f"frame{t * 5}.png")
    out = tmp_path / "out"
    assert _run(comps, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "2", "--threshold", "0") == 0
    assert "1 frame holds only a trace of a subject" in capsys.readouterr().out


def test_a_lone_cut_out_whose_alpha_holds_only_0_and_1_is_a_binary_mask_as_a_mask_file_is(tiny_folder, tmp_path,
                                                                                             capsys):
    alpha = (_mask() > 0).astype(np.uint8)  # 0/1: binary, not 1/255 (only a clip whose alphas go higher reads so)
    Image.fromarray(np.dstack([_frame(0), alpha])).save(tmp_path / "c01.png")
    assert _run(tmp_path / "c01.png", "-o", tmp_path / "out.png", "--weights", tiny_folder) == 0
    assert "changed by RMS" in capsys.readouterr().out


def test_a_frame_name_with_a_digit_int_cannot_read_sorts_as_text():
    """'²' is a digit to str.isdigit but no number to int(): the clip's sort stopped the run before any frame."""
    from pathlib import Path

    names = ["f10.png", "²1.png", "f9.png"]
    assert [p.name for p in sorted(map(Path, names), key=clip.natural_key)] == ["f9.png", "f10.png", "²1.png"]


def test_a_frame_that_fails_as_it_is_written_is_out_of_the_summary(tiny_folder, tmp_path, capsys, monkeypatch):
    """It was counted among the frames changed, where a frame failing at its estimate is not."""
    comps, masks = _write_clip(tmp_path, frames=4, cut_at=9)
    save = clip.save_result

    def full_disk(result, target, keep):
        if target.name == "frame10.png":
            raise OSError(28, "No space left on device")
        return save(result, target, keep)

    monkeypatch.setattr(clip, "save_result", full_disk)
    assert _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal", "2",
                "--threshold", "0") == 1
    out = capsys.readouterr().out
    assert "3 of 3 frames changed" in out


def test_a_frame_the_subject_fills_that_fails_as_it_is_written_is_one_bad_frame(tiny_folder, tmp_path, capsys,
                                                                                 monkeypatch):
    """Written unchanged outside the frame's guard, it stopped the clip (no summary, the smoothed frames unwritten);
    the failed frames are named in the clip's order, not in the order they failed."""
    comps, masks = _write_clip(tmp_path, frames=4, cut_at=9)
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(masks / "frame10.png")  # no background left
    save = clip.save_result

    def full_disk(result, target, keep):
        if target.name in ("frame0.png", "frame10.png"):  # frame0's smoothed write comes after frame10's
            raise OSError(28, "No space left on device")
        return save(result, target, keep)

    monkeypatch.setattr(clip, "save_result", full_disk)
    out = tmp_path / "out"
    assert _run(comps, masks, "-o", f"{out}/", "--weights", tiny_folder, "--temporal", "2") == 1
    printed = capsys.readouterr()
    assert "frame10.png: [Errno 28] No space left on device" in printed.err
    assert "2 of 4 frames failed (frame0.png, frame10.png)" in printed.err
    assert "wrote 2 of 4 frames" in printed.out and "written unchanged" not in printed.out
    assert sorted(p.name for p in out.iterdir()) == ["frame15.png", "frame5.png"]


def test_temporal_alone_may_come_before_the_folders(tiny_folder, tmp_path):
    """Its value is optional: written first, it took the composites folder for its SIGMA."""
    comps, masks = _write_clip(tmp_path, frames=3, cut_at=9)
    assert _run("--temporal", comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder) == 0
    assert len(list((tmp_path / "out").iterdir())) == 3
    assert _run("--temp", comps, masks, "-o", f"{tmp_path / 'short'}/", "--weights", tiny_folder) == 0  # shortened
    assert len(list((tmp_path / "short").iterdir())) == 3


def test_one_16bit_frame_is_one_frame_in_the_note(tiny_folder, tmp_path, capsys):
    """'1 frames hold more than 8 bits': the note's count and its words disagreed."""
    comps, masks = _write_clip(tmp_path, frames=3, cut_at=9)
    Image.fromarray(_frame(0)[..., 0].astype(np.uint16) * 257).save(comps / "frame5.png")  # 16-bit grey
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 0
    assert "note: 1 frame holds more than 8 bits (frame5.png); it is written with 8 bits" in capsys.readouterr().out


def test_frames_turned_by_their_exif_orientation_get_one_note_as_a_folder_s_pictures_do(tiny_folder, tmp_path,
                                                                                        capsys):
    """Turned by 180°, a frame's mask drawn on it as stored fits it either way: a folder's pictures got a note
    each, a clip's frames none."""
    comps, masks = tmp_path / "frames", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    for t in range(3):
        exif = Image.Exif()
        exif[0x0112] = 3
        Image.fromarray(_frame(t)).save(comps / f"frame{t}.jpg", exif=exif, quality=95)
        Image.fromarray(_mask()).save(masks / f"frame{t}.png")
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("note: 3 frames are turned by their orientation tag (frame0.jpg, frame1.jpg, frame2.jpg), "
                         "so they are read upright, and the masks are read as stored; if the masks were drawn on the "
                         "frames as stored rather than as viewers show them, turn them the same way") == 1


def test_a_clip_whose_alpha_is_its_mask_writes_every_frame_the_masks_folder_would(tiny_folder, tmp_path, capsys):
    """A fade to black, a subject over a black background and a frame the subject fills were refused one by one as
    cut-outs or opaque alphas: the clip came out with gaps, where a masks folder wrote them unchanged."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(6):
        frame, mask = _frame(t), _mask()
        if t == 2:
            frame[mask == 0] = 0  # the subject over black
        if t == 3:
            mask[:] = 255  # the subject fills the frame
        if t == 4:
            frame[:], mask[:] = 0, 0  # a fade to black, no subject
        Image.fromarray(np.dstack([frame, mask])).save(frames / f"frame{t}.png")
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(frames), "-o", f"{out}/", "--weights", str(tiny_folder), "--device", "cpu",
                     "--temporal", "2"]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"frame{t}.png" for t in range(6)]
    assert "1 frame has an empty mask and was written unchanged: frame4.png" in printed
    assert "background of one flat colour (no scene to match to) and was written unchanged: frame2.png" in printed
    for t in (2, 3, 4):
        assert np.array_equal(np.asarray(Image.open(out / f"frame{t}.png")),
                              np.asarray(Image.open(frames / f"frame{t}.png"))[..., :3]), t
    for t in range(6):  # a clip of cut-outs alone is refused as one
        cut_out = _frame(t)
        cut_out[_mask() == 0] = 0
        Image.fromarray(np.dstack([cut_out, _mask()])).save(frames / f"frame{t}.png")
    assert cli.main(["harmonize", str(frames), "-o", f"{tmp_path / 'cut'}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2"]) == 1
    assert "the frames are cut-outs; paste them onto their background first" in capsys.readouterr().err
    for t in range(6):  # frames exported with an opaque alpha: their alpha marks no subject, said once
        Image.fromarray(np.dstack([_frame(t), np.full(_mask().shape, 255, np.uint8)])).save(frames / f"frame{t}.png")
    assert cli.main(["harmonize", str(frames), "-o", f"{tmp_path / 'opaque'}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2"]) == 1
    assert "every frame's alpha channel is opaque everywhere, so it marks no subject" in capsys.readouterr().err


def test_the_transparent_part_of_rgba_frames_is_left_out_of_their_scene_as_the_library_does(tiny_folder, tmp_path,
                                                                                              capsys):
    """RGBA frames with their own masks: what lies under alpha 0 (black) is seen by nobody and was matched to."""
    comps, masks = tmp_path / "frames", tmp_path / "masks"
    comps.mkdir()
    masks.mkdir()
    alpha = np.full((H, W, 1), 255, np.uint8)
    alpha[:, 32:] = 0
    frames = np.stack([np.concatenate([_frame(t) * (alpha > 0), alpha], -1) for t in range(3)])
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(comps / f"f{t}.png")
        Image.fromarray(_mask()).save(masks / f"f{t}.png")
    out = tmp_path / "out"
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{out}/", "--weights", str(tiny_folder),
                     "--device", "cpu", "--temporal", "2", "--threshold", "0"]) == 0
    printed = capsys.readouterr().out
    results = np.stack([np.asarray(Image.open(out / f"f{t}.png")) for t in range(3)])
    harmonizer = Harmonizer.from_pretrained(tiny_folder, device="cpu")
    expected, reports = harmonizer.harmonize(frames, _mask() / 255.0, temporal=2.0, threshold=0)
    assert np.abs(results.astype(int) - expected.astype(int)).max() <= 1
    assert "the transparent part was left out of the scene to match" in printed
    assert all("transparent part" in c.describe() for c in reports)
    one = tmp_path / "one.png"
    assert cli.main(["harmonize", str(comps / "f0.png"), str(masks / "f0.png"), "-o", str(one), "--weights",
                     str(tiny_folder), "--device", "cpu", "--threshold", "0"]) == 0
    alone = harmonizer(frames[0], _mask() / 255.0, threshold=0)
    assert np.abs(np.asarray(Image.open(one)).astype(int) - alone.astype(int)).max() <= 1
    assert "the transparent part was left out of the scene to match" in capsys.readouterr().out


def test_a_frame_pillow_cannot_open_is_refused_before_any_work_not_passed_over(tmp_path, monkeypatch):
    """frame5.heic only got a 'left out' note: the clip's frames either side of it were smoothed as neighbours."""
    from phnet import harmonizer

    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    comps, masks = _write_clip(tmp_path, frames=3)
    (comps / "frame5.png").unlink()
    (comps / "frame5.heic").write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comps), str(masks), "-o", str(tmp_path / "o"), "--temporal"])
    assert str(stop.value).startswith(f"error: a clip's frames may have no gap, and {comps} holds 1 photo this "
                                      "Pillow cannot open (1 .heic): save it as PNG or JPEG")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_a_frame_linked_to_nothing_is_a_gap(tiny_folder, tmp_path):
    """It was passed over in silence, and the frames either side of it smoothed as neighbours."""
    comps, masks = _write_clip(tmp_path, frames=3)
    (comps / "frame10.png").unlink()
    (comps / "frame10.png").symlink_to(tmp_path / "gone" / "frame10.png")
    with pytest.raises(SystemExit) as stop:
        cli.main(["harmonize", str(comps), str(masks), "-o", str(tmp_path / "o"), "--temporal", "--weights",
                  str(tiny_folder), "--device", "cpu"])
    assert str(stop.value) == (f"error: a clip's frames may have no gap, and {comps / 'frame10.png'} links to "
                               f"{tmp_path / 'gone' / 'frame10.png'}, which does not exist (an unmounted drive?): "
                               "connect it, or remove the link")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
@pytest.mark.parametrize("mask_as_given", [[], ["--mask-as-given"]])
def test_a_mask_linked_to_nothing_or_cut_short_is_a_gap(tiny_folder, tmp_path, monkeypatch, mask_as_given):
    """Frame 10 failed and frames 5 and 15 were smoothed as neighbours ("wrote 3 of 4 frames", exit 1)."""
    from phnet import harmonizer

    monkeypatch.setattr(harmonizer.Harmonizer, "from_pretrained", lambda *a, **k: pytest.fail("weights loaded"))
    comps, masks = _write_clip(tmp_path, frames=4)
    whole = (masks / "frame10.png").read_bytes()
    (masks / "frame10.png").unlink()
    (masks / "frame10.png").symlink_to(tmp_path / "gone" / "frame10.png")
    given = [comps, masks, "-o", f"{tmp_path / 'o'}/", "--weights", tiny_folder, "--temporal", *mask_as_given]
    with pytest.raises(SystemExit) as stop:
        _run(*given)
    assert str(stop.value) == (f"error: a clip's frames may have no gap, and {masks / 'frame10.png'} links to "
                               f"{tmp_path / 'gone' / 'frame10.png'}, which does not exist (an unmounted drive?): "
                               "connect it, or remove the link")
    (masks / "frame10.png").unlink()
    (masks / "frame10.png").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(SystemExit) as stop:
        _run(*given)
    assert str(stop.value) == (f"error: cannot read {masks / 'frame10.png'} as an image (OSError: image file is "
                               "truncated): save it again (a clip's frames may have no gap)")
    (masks / "frame10.png").write_bytes(whole)
    references = tmp_path / "references"
    references.mkdir()
    for name in ("frame0.png", "frame5.png", "frame15.png"):
        Image.fromarray(255 - _mask()).save(references / name)
    (references / "frame10.png").symlink_to(tmp_path / "gone" / "ref10.png")
    with pytest.raises(SystemExit, match=r"error: a clip's frames may have no gap, and .*references/frame10.png "
                                         r"links to .*gone/ref10.png, which does not exist"):
        _run(*given, "--reference", references)
    assert not (tmp_path / "o").exists()


def test_a_camera_s_raw_file_beside_each_frame_s_jpeg_is_no_gap(tiny_folder, tmp_path, capsys):
    """RAW+JPEG frames: each .CR2 beside its frame's picture was taken for a missing frame, and the clip refused."""
    comps, masks = _write_clip(tmp_path, frames=3)
    for frame in list(comps.iterdir()):
        (comps / (frame.stem + ".CR2")).write_bytes(b"\x00" * 64)
    assert cli.main(["harmonize", str(comps), str(masks), "-o", str(tmp_path / "o"), "--temporal", "--weights",
                     str(tiny_folder), "--device", "cpu"]) == 0
    assert "note: left out 3 photos this Pillow cannot open (3 .cr2)" in capsys.readouterr().out
    assert len(list((tmp_path / "o").iterdir())) == 3


@pytest.mark.parametrize("flags", [["--mode", "official"], ["--method", "resize"], ["--temporal"], []])
def test_mask_is_alpha_where_nothing_is_carried_up_is_refused_not_ignored(tiny_config, tmp_path, flags):
    """--mask-is-alpha with the official pipeline, method resize or a colour-transform model gave the same pixels
    as without, in silence (a clip said nothing either)."""
    import dataclasses

    from phnet import PHNet
    from phnet.weights import save_pretrained

    transform = save_pretrained(PHNet(dataclasses.replace(tiny_config, output="transform")), tmp_path / "tw")
    comps, masks = _write_clip(tmp_path, frames=2)
    given = [str(comps), str(masks), "-o", str(tmp_path / "o")] if "--temporal" in flags else [
        str(comps / "frame0.png"), str(masks / "frame0.png"), "-o", str(tmp_path / "o.png")]
    with pytest.raises(SystemExit, match="--mask-is-alpha works with --mode full and --method correction or guided, "
                                         "with weights whose output is a picture"):
        cli.main(["harmonize", *given, "--mask-is-alpha", "--weights", str(transform), "--device", "cpu", *flags])


def test_a_clips_option_mistakes_are_named_before_its_masks_are_read(tmp_path, monkeypatch):
    """Every mask of a clip was read (about a minute for 1000 4K frames) before a typo in --device was named."""
    from phnet import imageio

    comps, masks = _write_clip(tmp_path, frames=3)
    monkeypatch.setattr(imageio, "read_mask", lambda *a, **k: pytest.fail("a mask was read"))
    for flags in (["--device", "nonsense"], ["--method", "resize", "--mask-is-alpha"]):
        with pytest.raises(SystemExit):
            cli.main(["harmonize", str(comps), str(masks), "-o", str(tmp_path / "o"), "--temporal", *flags])


def test_a_clip_s_notes_count_one_frame_and_many_in_their_own_words(tiny_folder, tmp_path, capsys):
    """Each line about frames says "1 frame holds ... it" or "N frames hold ... they", and names ten frames (notes
    three) before "..."."""
    comps, masks = _write_clip(tmp_path, frames=14, cut_at=99)
    for t in range(11):
        Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / f"frame{t * 5}.png")
    Image.fromarray(_frame(1)[..., 0].astype(np.uint16) * 257).save(comps / "frame5.png")  # 16-bit grey
    for t in (0, 11, 12, 13):  # 16-bit colour in a PPM: read at 8 bits
        (comps / f"frame{t * 5}.png").unlink()
        (comps / f"frame{t * 5}.ppm").write_bytes(f"P6\n{W} {H}\n65535\n".encode()
                                                  + (_frame(t).astype(">u2") * 257).tobytes())
    assert _run(comps, masks, "-o", f"{tmp_path / 'out'}/", "--weights", tiny_folder, "--temporal", "2") == 0
    printed = capsys.readouterr().out.splitlines()
    empty = ", ".join(["frame0.ppm"] + [f"frame{t * 5}.png" for t in range(1, 10)])
    assert f"11 frames have an empty mask and were written unchanged: {empty}, ..." in printed
    assert "note: 1 frame holds more than 8 bits (frame5.png); it is written with 8 bits per channel" in printed
    assert ("note: 4 frames hold 16 bits per channel in a layout read at 8 bits (frame0.ppm, frame55.ppm, "
            "frame60.ppm, ...): they were harmonized at 8 bits; save them as plain 16-bit RGB or RGBA PNG or TIFF to "
            "keep them") in printed


def _with_exif_cut_short(path) -> None:
    """``path``, a PNG, given an EXIF block (turning it by 90°) that is cut short: its orientation lost."""
    import io
    import struct
    import zlib

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "PhoneMaker", "Model X", 6
    buffer = io.BytesIO()
    with Image.open(path) as picture:
        picture.save(buffer, "PNG", exif=exif)
    data = buffer.getvalue()
    start = data.index(b"eXIf") - 4
    cut = data[start + 8:start + 8 + 20]
    length = struct.unpack(">I", data[start:start + 4])[0]
    path.write_bytes(data[:start] + struct.pack(">I", len(cut)) + b"eXIf" + cut
                     + struct.pack(">I", zlib.crc32(b"eXIf" + cut)) + data[start + 12 + length:])


@pytest.mark.filterwarnings("default:the EXIF of:UserWarning")  # shown by the CLI, as a user gets it
def test_a_clip_of_files_whose_exif_is_damaged_tells_so_once_a_file(tiny_folder, tmp_path, capsys):
    """A clip's frames and masks are read more than once (its masks checked first, each frame estimated, then
    harmonized): a file with damaged EXIF was told of at each read, four times for the first mask."""
    comps, masks = _write_clip(tmp_path, frames=3)
    for folder in (comps, masks):
        for path in folder.iterdir():
            _with_exif_cut_short(path)
    assert cli.main(["harmonize", str(comps), str(masks), "-o", f"{tmp_path / 'out'}/", "--weights",
                     str(tiny_folder), "--device", "cpu", "--temporal", "2"]) == 0
    err = capsys.readouterr().err
    told = re.findall(r"warning: the EXIF of (.+?) is damaged, so its orientation cannot be read and it is read as "
                      r"stored, perhaps sideways; if it shows turned, turn it upright in an image editor", err)
    assert sorted(told) == sorted([*map(str, comps.iterdir()), *(f"mask {path}" for path in masks.iterdir())]), err
    assert err.count("the EXIF of") == len(told) == 6
