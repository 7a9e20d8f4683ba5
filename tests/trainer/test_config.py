"""The trainer config: TOML files and --set values are refused at load, naming the key and the fix."""
from __future__ import annotations

import pytest

from trainer.config import load_config


@pytest.mark.parametrize("toml, words", [
    ('model = "iharmony"', 'model is a table of settings ([model]), got "iharmony" (a preset is named in it: '
                           '--set model.preset="iharmony")'),
    ("model = 5", "model is a table of settings ([model]), got 5"),
    ('[model]\npreset = ["small"]', 'model.preset must be a string (e.g. --set model.preset="small"), got ["small"]'),
    ("[model]\ninit_from = 5", 'model.init_from must be a string (e.g. --set model.init_from=""), got 5'),
])
def test_the_model_table_and_its_trainer_keys_have_their_types(tmp_path, toml, words):
    (tmp_path / "c.toml").write_text(toml + "\n")
    with pytest.raises(ValueError) as e:
        load_config(tmp_path / "c.toml")
    assert str(e.value) == words
