"""trainer.evaluation.report: the per-image table of results.json."""
from __future__ import annotations


def test_each_composite_of_a_photo_keeps_its_own_row_and_subsets_are_named_once():
    from trainer.evaluation.report import per_image_table
    from trainer.evaluation.scoring import METRICS

    row = {"subset": "val", "fg_bucket": "15-100%", "error_bucket": "mild", **{k: 1.0 for k in METRICS}}
    rows = [dict(row, name="a.png", method=m) for _ in range(3) for m in ("composite", "PHNet")]
    assert sorted(per_image_table(rows)) == ["val/a.png", "val/a.png#2", "val/a.png#3"]  # data.val_copies = 3
    assert list(per_image_table([dict(row, subset="HAdobe5k", name="HAdobe5k/x.jpg", method="PHNet")])) == [
        "HAdobe5k/x.jpg"]
