import dataclasses
import json

import pytest

from phnet import PRESETS, PHNetConfig


def test_presets_match_the_released_architectures():
    ih, ff = PHNetConfig.preset("iharmony"), PHNetConfig.preset("ffhqh")
    assert ih.enc_sizes == (3, 16, 32, 64, 128, 256, 512) and ih.grid_counts == (10, 5, 1)
    assert ff.enc_sizes == (3, 16, 64, 128, 256, 512, 1024) and ff.grid_counts == (4, 3, 2, 1)
    # the feature extractor uses the second grid, PN blocks start at decoder stage 7 - len(grids)
    assert (ih.feature_grid, ih.start_level) == (5, 4)
    assert (ff.feature_grid, ff.start_level) == (3, 3)
    assert PHNetConfig.preset("iharmony", grid_counts=(4, 2, 1)).feature_grid == 2
    assert ih.output == ff.output == "image"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name, tmp_path):
    config = PHNetConfig.preset(name, image_size=1024)
    assert PHNetConfig.from_json(config.to_json()) == config
    config.save(tmp_path / "config.json")
    assert PHNetConfig.load(tmp_path / "config.json") == config


def test_replace_and_overrides():
    config = PHNetConfig.preset("iharmony", image_size=256)
    assert config.image_size == 256 and dataclasses.replace(config, output="residual").output == "residual"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(enc_sizes=(3, 8, 8)), "7 widths from 1 to 4096"),
        (dict(enc_sizes=(4, 8, 8, 16, 16, 32, 32)), "starting with 3"),
        (dict(grid_counts=()), "grid_counts"),
        (dict(grid_counts=(0, 1)), "grid_counts"),
        (dict(image_size=100), "multiple of 8"),
        (dict(output="lut"), "output"),
        (dict(enc_sizes=(3, 8, 8, 16, 16, 4, 4)), "se_reduction"),
    ],
)
def test_bad_values_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PHNetConfig(**kwargs)


def test_a_preset_takes_a_name_of_its_own():
    assert PHNetConfig.preset("ffhqh", name="my-portraits").name == "my-portraits"  # it clashed with the preset's


def test_unknown_preset_and_fields():
    with pytest.raises(ValueError, match="choose one of"):
        PHNetConfig.preset("nope")
    with pytest.raises(ValueError, match="newer comfyui-phnet"):
        PHNetConfig.from_dict({**PHNetConfig().to_dict(), "attention": True})
    with pytest.raises(ValueError, match=r"misspelt\? \(did you mean 'image_sise' → 'image_size'\), or written by"):
        PHNetConfig.from_dict({**PHNetConfig().to_dict(), "image_sise": 1024})
    with pytest.raises(ValueError, match="not a PHNet"):
        PHNetConfig.from_dict({"model_type": "sam"})
    # broken, nested past Python's recursion limit, or a number past its digits limit: one message naming it
    for text in ("{", "[" * 200_000 + "]" * 200_000, '{"image_size": ' + "9" * 5000 + "}"):
        with pytest.raises(ValueError, match="^PHNet config is not JSON this loader can read"):
            PHNetConfig.from_json(text)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("image_size", "64", "'image_size' must be an integer"),
        ("image_size", True, "'image_size' must be an integer"),
        ("grid_counts", None, "'grid_counts' must be a list of integers"),
        ("enc_sizes", "3,16", "'enc_sizes' must be a list of integers"),
        ("init_weights", [0.5], "'init_weights' must be a list of two numbers"),
        ("output", None, "'output' must be a string"),
        ("extra", [], "'extra' must be an object"),
    ],
)
def test_wrong_types_name_the_field_and_the_source(field, value, words):
    d = {**PHNetConfig().to_dict(), field: value}
    with pytest.raises(ValueError, match=words) as e:
        PHNetConfig.from_dict(d, source="weights/config.json")
    assert str(e.value).startswith("weights/config.json")


def test_not_an_object_and_required_fields(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="config.json must be a JSON object.*list"):
        PHNetConfig.load(tmp_path / "config.json")
    from phnet.config import REQUIRED_FIELDS

    d = PHNetConfig().to_dict()
    del d["image_size"]
    assert PHNetConfig.from_dict(d).image_size == 512  # building a config in code keeps the defaults
    with pytest.raises(ValueError, match="x.json has no 'image_size' field"):
        PHNetConfig.from_dict(d, source="x.json", required=REQUIRED_FIELDS)


def test_bad_values_in_a_file_name_the_file(tmp_path):
    PHNetConfig().save(tmp_path / "config.json")
    d = {**PHNetConfig().to_dict(), "image_size": 100}
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"config.json: image_size must be a multiple of 8 from 16 to 4096"):
        PHNetConfig.load(tmp_path / "config.json")
