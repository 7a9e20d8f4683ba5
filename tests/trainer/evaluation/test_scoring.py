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
