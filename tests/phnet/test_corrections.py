"""phnet.corrections: the one line each surface shows about what happened to the subjects."""
from __future__ import annotations

import dataclasses

from phnet.corrections import Correction, report, summary


def test_each_verdict_says_what_happened_and_why():
    assert Correction(20.0, 10.0, 1.0).describe() == "changed by RMS 20.0 of 255"
    assert ": 0.6 of the correction 50.0, held back by the do-no-harm threshold 43" in \
        Correction(50.0, 43.0, 0.6).describe()  # (in a ramp, or shortened by it: what share, not how)
    assert "0.2 of the correction 40.5, which is below" in Correction(40.5, 40.5, 0.2).describe()  # the floor
    # below the threshold, a share (the weights' floor): not "shortened by" it, which reads as subtracted
    assert ": 0.25 of the correction 12.8, which is below the do-no-harm threshold 43" in \
        Correction(12.8, 43.0, 0.25).describe()
    assert "below the do-no-harm threshold 43" in Correction(5.0, 43.0, 0.0).describe()
    assert Correction(5.0, 0.0, 1.0, strength=0.0).describe().startswith("unchanged: strength 0")
    assert Correction(5.7, 40.5, 0.2, strength=0.0).describe() == (  # what strength 1 applies, not the proposal
        "unchanged: strength 0 (at strength 1 the subject would change by RMS 1.1 of 255)")
    empty = Correction.no_subject(43.0)
    assert empty.unchanged and empty.describe() == "unchanged: its mask is empty (no subject in it)"


def test_a_change_too_small_to_see_says_so():
    faint = Correction(10.5, 40.5, 0.2, strength=0.2)  # RMS 0.42: rounds away in 8 bits
    assert faint.invisible and not faint.unchanged
    assert faint.describe().endswith("at strength 0.2 (under half a level: too small to see)")
    assert not Correction(10.5, 40.5, 0.2).invisible  # RMS 2.1
    assert "1 by under half a level" in summary([faint, Correction(20.0, 0.0, 1.0)])


def test_each_caption_says_whether_the_picture_changed_and_why_not():
    assert Correction(20.0, 10.0, 1.0).label() == "harmonized (PHNet)"
    assert Correction(50.0, 43.0, 0.6).label() == ("harmonized (PHNet), part of the correction, held back by the "
                                                   "do-no-harm threshold")
    assert Correction(12.8, 43.0, 0.25).label() == ("harmonized (PHNet), a share of a correction below the do-no-harm "
                                                    "threshold")
    assert Correction(5.0, 43.0, 0.0).label() == "unchanged: correction below the do-no-harm threshold"
    assert Correction(12.8, 43.0, 0.25, strength=0.0).label() == "unchanged: strength 0"
    assert Correction(0.0, 0.0, 0.0, background=0.01).label() == "unchanged: too little background"
    assert "applies the raw correction" not in report([Correction(12.8, 43.0, 0.25, strength=0.0)], "t0", "w")


def test_a_clip_with_frames_without_a_subject():
    frames = [Correction(20.0, 0.0, 1.0), Correction.no_subject(0.0), Correction(30.0, 0.0, 1.0)]
    line = summary(frames)
    assert line == ("2 of 3 images changed by RMS 20.0 to 30.0; 1 with an empty mask (no subject in "
                    "it), left as it was")
    assert report(frames, "--threshold 0", "--weights x") == line  # no threshold held anything back
    held = [Correction(5.0, 43.0, 0.0), Correction.no_subject(43.0)]
    assert "1 below the do-no-harm threshold 43" in summary(held)
    assert "--threshold 0 applies the raw correction" in report(held, "--threshold 0", "--weights x")
    assert report([Correction.no_subject(43.0)] * 2, "t", "w") == (
        "0 of 2 images changed; 2 with an empty mask (no subject in them), left as they were")


def test_the_official_weights_are_not_suggested_to_who_uses_them():
    from phnet.corrections import weights_hint

    held = [Correction(5.0, 43.0, 0.0)]
    ours = report(held, "threshold 0", weights_hint("bundled-default", "official-ffhqh512"))
    official = report(held, "threshold 0", weights_hint("official-ffhqh512", "official-ffhqh512"))
    assert ours.endswith("threshold 0 applies the raw correction (it may do harm on near-right composites), or try "
                         "official-ffhqh512")
    assert official.endswith("threshold 0 applies the raw correction (it may do harm on near-right composites)")


def test_a_resampled_result_names_the_change_measured_in_it():
    official = Correction(1.0, 0.0, 1.0, resampled=(6.4, 3.7))
    assert official.describe() == ("changed by RMS 1.0 of 255; the result went through the working size (fine "
                                   "detail lost): the subject differs by RMS 6.4 and the background by RMS 3.7")
    resize = Correction(1.4, 0.0, 1.0, resampled=(6.3, 0.0))
    assert resize.describe().endswith("the subject differs by RMS 6.3")
    assert not Correction(0.2, 0.0, 1.0, resampled=(6.3, 0.0)).invisible  # the detail lost is seen
    assert summary([official, resize]).endswith("2 went through the working size (fine detail lost): their "
                                                "subjects differ by RMS 6.3 to 6.4 and their backgrounds by RMS "
                                                "0.0 to 3.7")


def test_a_frame_changed_by_its_shots_smoothed_correction_says_so():
    lifted = Correction(12.1, 12.5, 0.0, smoothed=3.2)
    assert not lifted.unchanged and lifted.applied == 3.2 and not lifted.held_back
    assert lifted.describe() == ("changed by RMS 3.2 of 255 after smoothing over its shot (its own correction: below "
                                 "the do-no-harm threshold)")
    assert lifted.label() == "harmonized (PHNet), smoothed over its shot"
    still = Correction(12.1, 12.5, 0.0)
    assert still.held_back and summary([lifted, still]).startswith("1 of 2 images changed")
    assert Correction(20.0, 0.0, 1.0, strength=0.5, smoothed=10.0).applied == 5.0


def test_a_clip_at_strength_0_is_counted_as_muted_not_changed_by_smoothing():
    lifted = Correction(12.1, 12.5, 0.0, strength=0.0, smoothed=3.2)
    line = summary([lifted, Correction(13.0, 12.5, 0.1, strength=0.0)])
    assert line.startswith("0 of 2 images changed") and "2 at strength 0, left unchanged" in line
    assert "smoothed correction" not in line


def test_a_batch_at_strength_0_gives_what_strength_1_would_apply_not_the_proposals():
    """The batch line gave the network's proposals (10.5 where strength 1 applies 2.1) and counted them as
    shortened by the threshold, while nothing was applied."""
    batch = [Correction(10.5, 40.5, 0.2, strength=0.0), Correction(7.9, 40.5, 0.2, strength=0.0)]
    line = summary(batch)
    assert "2 at strength 0, left unchanged (at strength 1: RMS 1.6 to 2.1)" in line
    assert "a share of the correction applied" not in line and "10.5" not in line


def test_pictures_left_as_they_were_for_any_reason_are_logged_as_warnings(caplog):
    import logging

    from phnet.corrections import log_corrections

    for left in (Correction(0.0, 0.0, 0.0, background=0.01), Correction.no_subject(40.0)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="phnet"):
            log_corrections([left])
        assert caplog.records[-1].levelname == "WARNING"


def test_a_batch_line_says_what_the_pictures_show_and_at_what_strength():
    """It gave the network's proposals alone: five times what the bundled weights apply, twice what strength 0.5
    applies, and never the strength."""
    assert summary([Correction(4.7, 40.5, 0.2), Correction(19.3, 40.5, 0.2)]).startswith(
        "2 of 2 images changed by RMS 0.9 to 3.9 (the network's corrections 4.7 to 19.3); 2 below the do-no-harm "
        "threshold 40.5, a share of the correction applied")
    assert summary([Correction(68.2, 0.0, 1.0, strength=0.5)] * 3) == (
        "3 of 3 images changed by RMS 34.1, at strength 0.5 (the network's corrections 68.2)")


def test_a_note_on_some_pictures_of_a_batch_says_how_many():
    note = "the reference mask was ignored"
    with_note = Correction(20.0, 0.0, 1.0, notes=(note,))
    assert summary([with_note, Correction(20.0, 0.0, 1.0)]).endswith(f"; 1 of 2: {note}")
    assert summary([with_note, with_note]).endswith(f"changed by RMS 20.0; {note}")


def test_frames_their_shot_changed_are_said_to_be_smoothed_not_held_back():
    """With a floor (a fifth applied below the threshold), smoothed frames were counted as "a share of the
    correction applied" or "held back in part", with no word of the smoothing that changed them."""
    frames = [Correction(10.5, 40.5, 0.2, smoothed=3.3), Correction(10.5, 40.5, 0.2, smoothed=3.2),
              Correction(50.0, 40.5, 0.6, smoothed=3.4)]
    line = summary(frames, "frames")
    assert "3 held back by the do-no-harm threshold 40.5 on their own, changed by their shot's smoothed" in line
    assert "a share of the correction applied" not in line and "held back in part" not in line
    assert "1 held back by the do-no-harm threshold 40.5 on its own, changed by its shot's" in summary(
        [frames[0], Correction(60.0, 40.5, 1.0, smoothed=5.0)], "frames")


def test_a_share_held_back_in_part_is_never_shown_as_the_whole():
    """0.996 of the correction read "1 of the correction 56.4, held back by the do-no-harm threshold"."""
    assert ": 0.99 of the correction 56.4, held back" in Correction(56.4, 40.5, 0.99641).describe()
    assert ": 0.5 of the correction 48.0, held back" in Correction(48.0, 40.5, 0.5).describe()


def test_a_correction_kept_whole_above_the_threshold_suggests_nothing_and_is_not_called_a_share():
    whole = Correction(20.0, 10.0, 1.0)
    assert report([whole], "--threshold 0", "--weights x") == "changed by RMS 20.0 of 255"
    assert not whole.floored and not Correction(0.0, 0.0, 1.0).floored  # (no threshold: nothing is below it)
    assert "below" not in Correction(0.0, 0.0, 1.0).describe()


def test_half_a_level_is_the_line_between_a_change_too_small_to_see_and_one_that_shows():
    assert Correction(0.7, 0.0, 1.0).describe() == "changed by RMS 0.7 of 255"
    assert Correction(0.4, 0.0, 1.0).invisible


def test_a_faint_mask_s_weight_scales_the_change_the_subject_gets():
    faint = Correction(10.0, 0.0, 1.0, weight=0.5)
    assert faint.applied == 5.0 and faint.at_full_strength == 5.0
    assert faint.describe() == "changed by RMS 5.0 of 255, through a faint mask (weight 0.50)"


def test_a_background_change_is_named_once_it_shows_at_one_decimal():
    assert Correction(1.0, 0.0, 1.0, resampled=(2.0, 0.06)).describe().endswith(
        "the subject differs by RMS 2.0 and the background by RMS 0.1")
    assert Correction(1.0, 0.0, 1.0, resampled=(2.0, 0.04)).describe().endswith("the subject differs by RMS 2.0")


def test_a_clip_counts_its_frames_whose_subject_was_lost_or_held_only_a_trace():
    frames = [Correction(20.0, 0.0, 1.0), Correction.no_subject(0.0, trace=True),
              dataclasses.replace(Correction.no_subject(0.0), lost=True)]
    assert summary(frames, "frames") == (
        "1 of 3 frames changed by RMS 20.0; 1 whose subject vanished from the square mask of mode 'official', left "
        "as it was; 1 whose mask holds only a trace of a subject (under 1/64 of full), left as it was")


def test_a_batch_held_back_at_strength_0_still_names_the_network_s_corrections():
    held = [Correction(3.0, 5.0, 0.0, strength=0.0), Correction(4.0, 5.0, 0.0, strength=0.0)]
    assert summary(held).startswith("0 of 2 images changed; corrections 3.0 to 4.0; 2 below the do-no-harm")
