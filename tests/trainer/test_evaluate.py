"""trainer.evaluate's summary: what its tables average (the end-to-end runs are in test_fit.py)."""
from __future__ import annotations

import pytest


def _rows(name: str, identity: bool, psnr: dict[str, float]) -> list[dict]:
    return [{"method": m, "name": name, "subset": "all", "fg_bucket": "5-15%", "error_bucket": "<300",
             "identity": identity, "MSE": 0.0 if identity and m == "composite" else 10.0, "fMSE": 20.0,
             "PSNR": value, "fPSNR": value} for m, value in psnr.items()]


def test_identity_pairs_are_counted_and_left_out_of_a_second_overall_table():
    """A composite equal to its photo scores ~108 dB, so the PSNR means lean on such pairs; the report says how
    many there are and gives the table without them."""
    from trainer.evaluate import summarise, to_markdown

    rows = (_rows("a", True, {"composite": 108.0, "phnet": 50.0})
            + _rows("b", False, {"composite": 30.0, "phnet": 32.0})
            + _rows("c", False, {"composite": 28.0, "phnet": 30.0}))
    summary = summarise(rows, [], ["composite", "phnet"])
    assert summary["overall"]["composite"]["PSNR"] == pytest.approx(166 / 3)
    assert summary["without_identity"]["composite"] == pytest.approx(
        {"MSE": 10.0, "fMSE": 20.0, "PSNR": 29.0, "fPSNR": 29.0, "count": 2})
    assert summary["without_identity"]["phnet"]["PSNR"] == pytest.approx(31.0)
    md = to_markdown(summary, {"data": "d", "kind": "ffhqh", "split": "test", "samples": 3, "resolution": 256})
    assert "1 of 3 composites equal their photo (identity pairs)" in md
    assert "## Overall, without the identity pairs" in md and "| changed | composite (do nothing) | 2 | 10.00 |" in md
    plain = summarise([r for r in rows if not r["identity"]], [], ["composite", "phnet"])
    assert "without_identity" not in plain
    assert "identity pairs" not in to_markdown(plain, {"data": "d", "kind": "ffhqh", "split": "test", "samples": 2,
                                                       "resolution": 256})
