import dataclasses

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
        (dict(enc_sizes=(3, 8, 8)), "7 positive widths"),
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


def test_unknown_preset_and_fields():
    with pytest.raises(ValueError, match="choose one of"):
        PHNetConfig.preset("nope")
    with pytest.raises(ValueError, match="newer comfyui-phnet"):
        PHNetConfig.from_dict({**PHNetConfig().to_dict(), "attention": True})
    with pytest.raises(ValueError, match="not a PHNet"):
        PHNetConfig.from_dict({"model_type": "sam"})
    with pytest.raises(ValueError, match="not valid JSON"):
        PHNetConfig.from_json("{")
