"""trainer.evaluation.scoring: what the tables average, and the PSNR peaks the report names."""
from __future__ import annotations

import math

import pytest
import torch


def _rows(name: str, identity: bool, psnr: dict[str, float]) -> list[dict]:
    return [{"method": m, "name": name, "subset": "all", "fg_bucket": "5-15%", "error_bucket": "<300",
             "identity": identity, "MSE": 0.0 if identity and m == "composite" else 10.0, "fMSE": 20.0,
             "PSNR": value, "fPSNR": value, "PSNR255": value, "fPSNR255": value} for m, value in psnr.items()]


def test_identity_pairs_are_counted_and_left_out_of_a_second_overall_table():
    """A composite equal to its photo scores ~108 dB, so the PSNR means lean on such pairs; the report says how
    many there are and gives the table without them."""
    from trainer.evaluation.report import to_markdown
    from trainer.evaluation.scoring import summarise

    rows = (_rows("a", True, {"composite": 108.0, "phnet": 50.0})
            + _rows("b", False, {"composite": 30.0, "phnet": 32.0})
            + _rows("c", False, {"composite": 28.0, "phnet": 30.0}))
    summary = summarise(rows, [], ["composite", "phnet"])
    assert summary["overall"]["composite"]["PSNR"] == pytest.approx(166 / 3)
    assert summary["without_identity"]["composite"] == pytest.approx(
        {"MSE": 10.0, "fMSE": 20.0, "PSNR": 29.0, "fPSNR": 29.0, "PSNR255": 29.0, "fPSNR255": 29.0, "count": 2})
    assert summary["without_identity"]["phnet"]["PSNR"] == pytest.approx(31.0)
    md = to_markdown(summary, {"data": "d", "kind": "ffhqh", "split": "test", "samples": 3, "resolution": 256})
    assert "1 of 3 composites equal their photo (identity pairs)" in md
    assert "## Overall, without the identity pairs" in md and "| changed | composite (do nothing) | 2 | 10.00 |" in md
    plain = summarise([r for r in rows if not r["identity"]], [], ["composite", "phnet"])
    assert "without_identity" not in plain
    assert "identity pairs" not in to_markdown(plain, {"data": "d", "kind": "ffhqh", "split": "test", "samples": 2,
                                                       "resolution": 256})


def test_the_report_names_its_psnr_peaks_and_adds_the_fixed_255_peak():
    """phnet.metrics (the official PHNet tester) divides by max(gt)²; the DoveNet/bcmi evaluation by 255²."""
    from trainer.evaluation.report import to_markdown
    from trainer.evaluation.scoring import scores, summarise

    real = torch.full((2, 3, 8, 8), 0.5)
    real[0, 0, 0, 0] = 1.0  # this photo reaches 255, the other peaks at 127.5
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    out = real + 0.04 * mask
    per = scores(out, real, mask)
    assert per["PSNR255"][0] == pytest.approx(float(per["PSNR"][0]))
    assert per["PSNR255"][1] - per["PSNR"][1] == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert per["fPSNR255"][1] - per["fPSNR"][1] == pytest.approx(20 * math.log10(2), abs=1e-6)
    md = to_markdown(summarise(_rows("a", False, {"composite": 30.0}), [], ["composite"]),
                     {"data": "d", "kind": "iharmony", "split": "test", "samples": 1, "resolution": 256})
    assert "max(gt)²" in md and "fixed 255²" in md and "| PSNR255 | fPSNR255 |" in md


def test_a_composite_s_error_bucket_starts_at_300_and_at_1000():
    from trainer.evaluation.scoring import error_bucket

    assert [error_bucket(v) for v in (0.0, 299.9, 300.0, 999.9, 1000.0, 5e4)] == [
        "<300", "<300", "300-1000", "300-1000", ">=1000", ">=1000"]


def _boxed_batch():
    """Two 8x8 squares: a 4x6 picture at (2, 1) and a whole one, the padding equal in every picture."""
    real = torch.full((2, 3, 8, 8), 0.5)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 3:5, 2:5] = 1
    batch = {"name": ["a", "b"], "subset": ["s1", ""], "box": torch.tensor([[2, 1, 4, 6], [0, 0, 8, 8]])}
    return batch, real, mask


def test_pictures_cuts_each_padded_sample_to_its_box_with_its_own_name():
    from trainer.evaluation.scoring import pictures

    batch, real, mask = _boxed_batch()
    out = pictures(batch, {"real": real, "mask": mask})
    assert [(b["name"], b["subset"]) for b, _ in out] == [(["a"], ["s1"]), (["b"], [""])]
    assert out[0][1]["real"].shape == (1, 3, 4, 6) and out[1][1]["real"].shape == (1, 3, 8, 8)
    assert out[0][1]["mask"].sum() == 6  # the subject inside the box, none of the padding
    plain = {k: v for k, v in batch.items() if k != "box"}
    assert pictures(plain, {"real": real}) == [(plain, {"real": real})]


def test_score_rows_gives_each_sample_and_method_its_metrics_buckets_and_identity():
    from phnet import metrics
    from trainer.evaluation.scoring import METRICS, score_rows, scores

    batch, real, mask = _boxed_batch()
    comp = real.clone()
    comp[1] = comp[1] + 0.3 * mask[1]  # sample a is its photo, sample b is far off (fMSE 76.5² = 5852)
    outs = {"composite": comp, "phnet": real + 0.01 * mask}
    rows = score_rows(batch, outs, real, mask, ["composite", "phnet"])
    assert [(r["name"], r["method"]) for r in rows] == [("a", "composite"), ("a", "phnet"), ("b", "composite"),
                                                        ("b", "phnet")]
    assert [r["identity"] for r in rows] == [True, True, False, False]
    assert [r["error_bucket"] for r in rows] == ["<300", "<300", ">=1000", ">=1000"]
    assert [r["subset"] for r in rows] == ["s1", "s1", "all", "all"]  # an empty subset is "all"
    assert [r["fg_bucket"] for r in rows] == [metrics.fg_bucket(mask)[0]] * 2 + [metrics.fg_bucket(mask)[1]] * 2
    expected = scores(outs["phnet"], real, mask)
    assert [rows[3][k] for k in METRICS] == pytest.approx([float(expected[k][1]) for k in METRICS])


def test_untouched_rows_and_their_means_are_per_method_over_each_picture_s_box():
    from types import SimpleNamespace

    from trainer.evaluation.scoring import summarise, untouched_rows

    batch, real, mask = _boxed_batch()
    seen = []

    def outputs(img, m, boxes):
        seen.append(boxes)
        brighter = img.clone()
        brighter[0, :, 2:6, 1:7] += 0.1  # inside the first picture's box only
        return {"composite": img, "brighter": brighter}

    rows = untouched_rows(SimpleNamespace(outputs=outputs), batch, real, mask)
    assert seen == [[[2, 1, 4, 6], [0, 0, 8, 8]]]
    assert [r["method"] for r in rows] == ["composite", "brighter", "composite", "brighter"]
    assert (rows[1]["MSE"], rows[1]["fMSE"]) == pytest.approx((25.5 ** 2, 25.5 ** 2), rel=1e-4)
    assert rows[0]["MSE"] == rows[2]["MSE"] == rows[3]["MSE"] == 0.0
    summary = summarise([], rows + rows[:1], ["composite", "brighter"])  # a third composite row: counted apart
    assert set(summary["untouched"]) == {"brighter"}  # doing nothing needs no "do no harm" row
    assert summary["untouched"]["brighter"] == pytest.approx({"MSE": 25.5 ** 2 / 2, "fMSE": 25.5 ** 2 / 2, "count": 2},
                                                             rel=1e-4)
