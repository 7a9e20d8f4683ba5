"""The trainer config: TOML files and --set values are refused at load, naming the key and the fix."""
from __future__ import annotations

import pytest

from phnet import PHNetConfig
from trainer.config import load_config, model_config


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


def test_model_extra_is_a_table_that_checkpoints_can_store_and_load():
    """Any other model.extra trained a whole run whose checkpoints could not be loaded or resumed."""
    with pytest.raises(ValueError, match=r"^model.extra is a table of your own notes .*, got 5$"):
        load_config(None, ["model.extra=5"])
    cfg = load_config(None, ['model.extra={note="first try", steps=[1, 2]}'])
    config = model_config(cfg)
    assert PHNetConfig.from_json(config.to_json()).extra == {"note": "first try", "steps": [1, 2]}
    # a date trained, then the first checkpoint failed with a raw TypeError and left the folder blocked
    for source in (["model.extra={trained=2024-01-01}"], ["model.extra={at=[12:30:00]}"]):
        with pytest.raises(ValueError, match=r"^model.extra holds a TOML date or time, .* write it as a string"):
            load_config(None, source)
    assert model_config(load_config(None, ['model.extra={trained="2024-01-01"}'])).extra == {"trained": "2024-01-01"}


def test_read_config_takes_a_config_name_where_a_folder_of_that_name_is_no_run(tmp_path, monkeypatch):
    """evaluate and calibrate --config ffhqh refused with a data folder named ffhqh in the current one; fit did not."""
    from trainer.config import read_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder" / "photos").mkdir(parents=True)
    assert read_config("folder") == load_config("folder")
    with pytest.raises(FileNotFoundError, match="holds no run config"):
        read_config(tmp_path / "folder" / "photos")


def test_a_toml_file_saved_by_a_windows_editor_is_read_and_another_encoding_is_named(tmp_path):
    """UTF-8 with a BOM was invalid TOML at line 1; UTF-16 and Latin-1 ended in a UnicodeDecodeError naming no file."""
    text = "# réglages\n[train]\nsteps = 5\n"
    for name, data in (("bom.toml", b"\xef\xbb\xbf" + text.encode()), ("u16.toml", text.encode("utf-16"))):
        (tmp_path / name).write_bytes(data)
        assert load_config(tmp_path / name)["train"]["steps"] == 5
    (tmp_path / "latin1.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.toml is not UTF-8 text .*: save it as UTF-8$"):
        load_config(tmp_path / "latin1.toml")


def test_no_preset_names_the_fields_that_take_the_library_defaults(tmp_path):
    """preset = "" with fields left out trains PHNetConfig()'s defaults for them (512 px, output 'image'): a new run
    names them (refusing them refused the recorded config of an older run, which could then not be resumed)."""
    from trainer.config import library_defaults

    (tmp_path / "c.toml").write_text('[model]\npreset = ""\nenc_sizes = [3, 8, 8, 16, 16, 32, 32]\n'
                                     'grid_counts = [4, 2, 1]\n')
    cfg = load_config(tmp_path / "c.toml")
    assert library_defaults(cfg) == {"image_size": 512, "output": "image"}
    assert (model_config(cfg).image_size, model_config(cfg).output) == (512, "image")
    cfg = load_config(tmp_path / "c.toml", ["data.image_size=64", 'model.output="residual"'])
    assert library_defaults(cfg) == {} and (model_config(cfg).image_size, model_config(cfg).output) == (64, "residual")
    # weights to start from bring the architecture and the output mapping: the working size is still the run's
    assert library_defaults(load_config(None, ['model.preset=""', "model.init_from=x", "data.image_size=64"])) == {}
    assert library_defaults(load_config(None, ['model.preset=""', "model.init_from=x"])) == {"image_size": 512}
    assert library_defaults(load_config(None, ['model.preset=""'])) == {
        "enc_sizes": (3, 16, 32, 64, 128, 256, 512), "grid_counts": (10, 5, 1), "image_size": 512, "output": "image"}
    assert library_defaults(load_config("tiny_cpu")) == {} and library_defaults(load_config(None)) == {}


def test_a_set_value_in_quotes_is_a_toml_string_or_refused():
    """Double quotes make a TOML basic string: "D:\\masks" kept its quotes, "D:\\runs\\new" got a CR and an LF."""
    for item, words in (('data.mask_dir="D:\\masks"', '--set data.mask_dir: "D:\\masks" is not a TOML string; '),
                        ('train.out_dir="D:\\runs\\new"', "--set train.out_dir: \"D:\\runs\\new\" holds a control "
                                                           "character")):
        with pytest.raises(ValueError) as e:
            load_config(None, [item])
        assert str(e.value).startswith(words) and "forward slashes (D:/masks) or in single quotes" in str(e.value)
    for item, value in (("data.mask_dir='D:\\masks'", "D:\\masks"), ("data.mask_dir=D:\\masks", "D:\\masks"),
                        ('data.mask_dir="D:\\\\masks"', "D:\\masks"), ('data.mask_dir="~/portraits-masks"',
                                                                        "~/portraits-masks"),
                        ("data.mask_dir=2024-01-01", "2024-01-01"), ("data.mask_dir=/x y", "/x y")):
        assert load_config(None, [item])["data"]["mask_dir"] == value
    assert load_config(None, ['data.subsets=["HFlickr"]', 'data.resize="pad"'])["data"]["resize"] == "pad"
