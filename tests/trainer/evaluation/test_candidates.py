"""trainer.evaluation.candidates: the --weights labels, and how the models under evaluation are built."""
from __future__ import annotations

import pytest
import torch


def test_a_weights_path_with_an_equals_sign_in_a_folder_name_is_a_path(tmp_path, monkeypatch):
    """Sweep folders are named key=value: lr=3e-4/best was read as the label lr and the Hub repo 3e-4/best."""
    from trainer.evaluation.candidates import parse_weights

    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr=3e-4" / "best").mkdir(parents=True)
    assert parse_weights(["lr=3e-4/best"]) == {"phnet": "lr=3e-4/best"}
    assert parse_weights(["new=lr=3e-4/best"]) == {"new": "lr=3e-4/best"}
    assert parse_weights(["new=runs/a/best"]) == {"new": "runs/a/best"}


@pytest.mark.parametrize("second", ["PHNet=b", "real=b", "Mask=b", "reinhard=b", "a=b"])
def test_a_label_shown_like_another_column_is_refused(second):
    """The grid and the tables showed two columns or rows of one name: the first model's was overwritten."""
    from trainer.evaluation.candidates import parse_weights

    first = "a=x" if second == "a=b" else "x"
    with pytest.raises(ValueError, match="is used twice, or names a baseline or a column of the grid"):
        parse_weights([first, second])


def test_native_resolution_scores_in_fp32_where_auto_would_pick_bf16(tmp_path, monkeypatch):
    """The Harmonizers were built with dtype "auto": bf16 on a CPU with AMX, so native scores differed by CPU."""
    import phnet.harmonizer  # noqa: F401  (first imported under the patch below, it would keep the stand-in)
    import phnet.weights
    from phnet import PHNet, PHNetConfig, precision
    from trainer.evaluation.candidates import load_candidates

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.resolve_dtype("auto", "cpu") == torch.bfloat16
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32))
    monkeypatch.setattr(phnet.weights, "load_model", lambda path: model)
    candidates = load_candidates(["new=a", "old=b"], torch.device("cpu"), native=True, working_size=None)
    assert [h.dtype for h in candidates.harmonizers.values()] == [torch.float32, torch.float32]
