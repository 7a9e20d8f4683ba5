"""Weights I/O: our folders and safetensors files, official .pth state_dicts, bad files, the Hub (offline, faked)."""
from __future__ import annotations

import json
import os
import re
import shutil
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import phnet.weights as W

# most files here are official-style .pth under made-up names: the warning about that is tested once
pytestmark = pytest.mark.filterwarnings("ignore:.*is not an official checkpoint's file name:UserWarning")
from phnet import Harmonizer, PHNet, PHNetConfig
from phnet.sources import hub_command
from phnet.weights import infer_config, load_model, save_pretrained
from tests.helpers.hub import COMMIT_A, COMMIT_B, _add_files


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa)


def test_a_resolved_source_loads_through_its_arguments(tiny_model, tiny_folder):
    from phnet.sources import resolve

    for given in (tiny_folder, tiny_folder / "model.safetensors"):
        source, options = resolve(given).arguments()
        assert _same_weights(load_model(source, **options), tiny_model)
        assert _same_weights(Harmonizer.from_pretrained(source, device="cpu", **options).model, tiny_model)


def _inputs(seed: int = 1, size: int = 32):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 4 : size // 2] = 1
    return image, mask


def _out(model: PHNet) -> torch.Tensor:
    with torch.no_grad():
        return model(*_inputs())


# ----------------------------------------------------------------------------------------------------
# our format


def test_save_pretrained_folder_round_trip(tiny_model, tiny_folder):
    assert sorted(p.name for p in tiny_folder.iterdir()) == ["config.json", "model.safetensors"]
    stored = json.loads((tiny_folder / "config.json").read_text())
    assert stored["model_type"] == "phnet" and stored["enc_sizes"] == list(tiny_model.config.enc_sizes)
    loaded = load_model(tiny_folder)
    assert isinstance(loaded, PHNet) and not loaded.training
    assert loaded.config == tiny_model.config
    assert _same_weights(loaded, tiny_model)
    assert torch.equal(_out(loaded), _out(tiny_model))


# config.json as the first release's save_pretrained wrote it: no do-no-harm fields, the PFE grid spelled out
FIRST_RELEASE_CONFIG = """{
  "model_type": "phnet",
  "enc_sizes": [3, 8, 8, 16, 16, 32, 32],
  "grid_counts": [4, 2, 1],
  "pfe_grid": 2,
  "init_weights": [0.5, 0.5],
  "init_value": 0.8,
  "se_reduction": 8,
  "image_size": 64,
  "output": "image",
  "name": "tiny"
}
"""


def test_a_folder_the_first_release_saved_loads(tmp_path):
    from safetensors.torch import save_file

    config = PHNetConfig.from_json(FIRST_RELEASE_CONFIG)
    tensors = {k: v.contiguous() for k, v in PHNet(config).state_dict().items()}
    folder = tmp_path / "saved-2026-11-25"
    folder.mkdir()
    (folder / "config.json").write_text(FIRST_RELEASE_CONFIG)
    # (its metadata held the same JSON, compact)
    save_file(tensors, str(folder / "model.safetensors"),
              metadata={"format": "pt", "phnet_config": json.dumps(json.loads(FIRST_RELEASE_CONFIG))})
    for source in (folder, folder / "model.safetensors"):
        model = load_model(source)
        assert model.config == config and model.config.name == "tiny"
        assert model.config.correction_threshold == 0.0 and model.config.correction_ramp is None  # no rule: as then
        assert all(torch.equal(model.state_dict()[k], v) for k, v in tensors.items())


def test_loading_weights_leaves_the_callers_random_numbers_as_they_were(tiny_folder):
    """The model's random start, overwritten by the weights, drew from torch's global generator: a seeded
    caller's random numbers changed with a load."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    Harmonizer.from_pretrained(tiny_folder, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_lone_safetensors_file_carries_its_config(tiny_model, tiny_folder, tmp_path):
    lone = tmp_path / "elsewhere" / "my-weights.safetensors"
    lone.parent.mkdir()
    shutil.copy(tiny_folder / "model.safetensors", lone)  # no config.json next to it
    with safe_open(str(lone), framework="pt") as f:
        assert PHNetConfig.from_json(f.metadata()["phnet_config"]) == tiny_model.config
    loaded = load_model(lone)
    assert loaded.config == tiny_model.config
    assert torch.equal(_out(loaded), _out(tiny_model))
    # Harmonizer.from_pretrained takes the same sources.
    h = Harmonizer.from_pretrained(lone, device="cpu")
    assert h.config == tiny_model.config and _same_weights(h.model, tiny_model)


def test_save_pretrained_keeps_the_residual_output_setting(tiny_config, tmp_path):
    import dataclasses

    model = PHNet(dataclasses.replace(tiny_config, output="residual", name="mine"))
    loaded = load_model(save_pretrained(model, tmp_path / "r"))
    assert loaded.config.output == "residual" and loaded.config.name == "mine"


def test_fp16_storage_loads_back_as_fp32(tiny_model, tmp_path):
    folder = save_pretrained(tiny_model, tmp_path / "half", dtype=torch.float16)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    loaded = load_model(folder)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ref = tiny_model.state_dict()
    for k, v in loaded.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32
            torch.testing.assert_close(v, ref[k], rtol=1e-3, atol=1e-4)
        else:
            assert torch.equal(v, ref[k])  # num_batches_tracked stays an integer
    torch.testing.assert_close(_out(loaded), _out(tiny_model), rtol=0, atol=2e-2)


def test_save_pretrained_leaves_no_temporary_files(tiny_model, tmp_path):
    folder = save_pretrained(tiny_model, tmp_path / "a")
    save_pretrained(tiny_model, folder)  # overwriting in place works too
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_save_pretrained_over_a_folder_whose_config_may_not_be_written_leaves_it_as_it_was(tiny_config, tiny_folder,
                                                                                        monkeypatch):
    """model.safetensors was replaced first, then config.json refused: the old model was gone and the folder,
    new weights beside the old config, no longer loaded."""
    import dataclasses
    import os

    before = {p.name: p.read_bytes() for p in tiny_folder.iterdir()}
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "config.json" and access(path, mode))
    torch.manual_seed(1)
    other = PHNet(dataclasses.replace(tiny_config, image_size=96))
    with pytest.raises(PermissionError, match=r"config.json is read-only"):
        save_pretrained(other, tiny_folder)
    assert {p.name: p.read_bytes() for p in tiny_folder.iterdir()} == before
    monkeypatch.undo()
    assert load_model(tiny_folder).config == tiny_config


# ----------------------------------------------------------------------------------------------------
# official .pth state_dicts


@pytest.fixture(scope="module")
def official_files(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """iharmony512.pth and ffhqh256.pth written like the official trainer (a plain state_dict)."""
    root = tmp_path_factory.mktemp("official")
    files = {}
    for preset, name in (("iharmony", "iharmony512.pth"), ("ffhqh", "ffhqh256.pth")):
        torch.manual_seed(3)
        sd = PHNet(PHNetConfig.preset(preset)).state_dict()
        torch.save(sd, root / name)
        files[preset] = (root / name, sd)
    return files


@pytest.mark.parametrize(
    "preset,enc_sizes,grid_counts,image_size",
    [
        ("iharmony", (3, 16, 32, 64, 128, 256, 512), (10, 5, 1), 512),
        ("ffhqh", (3, 16, 64, 128, 256, 512, 1024), (4, 3, 2, 1), 256),
    ],
)
def test_official_pth_loads_strictly_and_infers_the_preset(official_files, preset, enc_sizes, grid_counts, image_size):
    path, sd = official_files[preset]
    model = load_model(path)
    cfg = model.config
    official = f"official-{path.stem}"  # an official file's weights under their official name, terms and all
    assert (cfg.name, cfg.enc_sizes, cfg.grid_counts, cfg.image_size) == (official, enc_sizes, grid_counts,
                                                                           image_size)
    assert cfg.output == "image"  # official mapping
    loaded = model.state_dict()
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert infer_config(sd).name == preset
    assert infer_config(sd, image_size=1024).image_size == 1024


def test_a_squeeze_width_of_its_own_is_read_off_the_file(tmp_path):
    config = PHNetConfig.preset("iharmony", se_reduction=4)
    torch.save(PHNet(config).state_dict(), tmp_path / "se4.pth")
    assert infer_config(PHNet(config).state_dict()).se_reduction == 4
    assert load_model(tmp_path / "se4.pth").config.se_reduction == 4  # it was refused, advising to do this


def test_an_official_pth_is_read_with_the_official_mapping_whatever_config_json_lies_beside_it(official_files,
                                                                                                tmp_path):
    """A Hub repo's config.json copied into the same models folder decided how an official file loaded: a
    residual fine-tune's config gave the official weights the residual mapping and another name."""
    path, sd = official_files["ffhqh"]
    folder = tmp_path / "phnet"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    PHNetConfig.preset("ffhqh", output="residual", name="my-finetune").save(folder / "config.json")
    cfg = load_model(folder / path.name).config
    assert (cfg.name, cfg.output) == ("official-ffhqh256", "image")
    with pytest.raises(ValueError, match=r"contradicts the config read off the official file .*output: 'residual' "
                                         r"in config.json, 'image' read off the official file ffhqh256.pth"):
        load_model(folder)  # the folder holding it: its config.json may tune it, not remap it
    (folder / "config.json").write_text('{"model_type": "bert"}')
    assert load_model(folder / path.name).config.name == "official-ffhqh256"


def test_official_weights_carry_their_terms_into_a_model_card_however_they_were_loaded(official_files, tmp_path):
    """A .pth under its official name, its conversion, weights fetched by name and a fine-tune of them were
    uploaded without the authors' terms: only `phnet convert --push-to-hub` added them."""
    import dataclasses

    from phnet.weights import convert_official, model_card

    path, _ = official_files["iharmony"]
    converted = convert_official(path, tmp_path / "converted")
    fetched = dataclasses.replace(converted.config, name="official-iharmony512")
    for config in (load_model(path).config, converted.config, load_model(tmp_path / "converted").config, fetched,
                   dataclasses.replace(converted.config, name=f"finetuned-{converted.config.name}")):
        assert "CC BY-SA" in model_card(config), config.name


def test_official_weights_tuned_by_a_config_json_keep_their_name_and_terms(official_files, tmp_path):
    """Reached through its folder with a config.json (a working size tuned), an official file took the JSON's
    name ("custom"): its model card and a saved copy lost the authors' terms."""
    from phnet.weights import model_card

    path, _ = official_files["iharmony"]
    folder = tmp_path / "official-iharmony512"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    tuned = PHNetConfig.preset("iharmony", image_size=384).to_dict()
    del tuned["name"]
    (folder / "config.json").write_text(json.dumps(tuned))
    model = load_model(folder)
    assert (model.config.name, model.config.image_size) == ("official-iharmony512", 384)
    assert "CC BY-SA" in model_card(model.config)
    saved = save_pretrained(model, tmp_path / "copy")
    assert "CC BY-SA" in (saved / "LICENSE-WEIGHTS.txt").read_text()


def test_weights_of_another_architecture_under_an_official_file_name_keep_their_config_s_name(tiny_config,
                                                                                              tmp_path):
    import dataclasses

    folder = tmp_path / "mine"
    folder.mkdir()
    torch.save(PHNet(tiny_config).state_dict(), folder / "iharmony512.pth")
    dataclasses.replace(tiny_config, name="my-own-tiny", output="image").save(folder / "config.json")
    assert load_model(folder).config.name == "my-own-tiny"


def test_a_config_json_beside_an_official_file_may_set_its_threshold(official_files, tmp_path):
    """As the README says; any threshold was refused ("needs output='residual'"), though a call's own works."""
    folder = _official_folder(official_files, "ffhqh", tmp_path)
    PHNetConfig.preset("ffhqh", image_size=256, correction_threshold=10.0).save(folder / "config.json")
    assert load_model(folder).config.correction_threshold == 10.0


def _official_folder(official_files, kind: str, tmp_path):
    """A folder holding a copy of the official ``kind`` file (``official_files``) under its own name."""
    path, _ = official_files[kind]
    folder = tmp_path / "phnet"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_a_config_json_beside_an_official_file_may_set_its_threshold_alone(official_files, tmp_path):
    """The README's tuning, with the rest read off the file: it was refused for the fields it left out."""
    folder = _official_folder(official_files, "iharmony", tmp_path)
    (folder / "config.json").write_text('{"correction_threshold": 10, "image_size": 384}')
    cfg = load_model(folder).config
    assert (cfg.correction_threshold, cfg.image_size, cfg.name) == (10.0, 384, "official-iharmony512")
    assert cfg.enc_sizes == PHNetConfig.preset("iharmony").enc_sizes and cfg.output == "image"


def test_a_config_json_may_spell_out_the_patch_grid_the_weights_were_trained_with(official_files, tmp_path):
    """pfe_grid 5 beside iharmony512.pth (unset there: the second PN grid, 5) was refused as a contradiction."""
    folder = _official_folder(official_files, "iharmony", tmp_path)
    (folder / "config.json").write_text('{"pfe_grid": 5}')
    assert load_model(folder).config.feature_grid == 5
    (folder / "config.json").write_text('{"pfe_grid": 6}')
    with pytest.raises(ValueError, match="pfe_grid: 6 in config.json, 5 read off the official file iharmony512.pth"):
        load_model(folder)


def test_official_key_layout(official_files):
    ih = official_files["iharmony"][1]
    ff = official_files["ffhqh"][1]
    assert len(ih) == 77 and len(ff) == 85
    expected = {
        "feature_extractor.patch_harmonizer.grid_weights": (2,),
        "feature_extractor.head.0.weight": (3, 6, 3, 3),
        "normalizers.0.grid_weights": (1, 32, 10, 10),
        "normalizers.1.grid_weights": (1, 16, 5, 5),
        "normalizers.2.grid_weights": (1, 3, 1, 1),
        "decoder.0.0.weight": (512, 256, 3, 3),
        "decoder.0.1.num_batches_tracked": (),
        "skip.0.rconv.weight": (512, 1024, 3, 3),
        "skip.6.rconv.weight": (3, 6, 3, 3),
        "SE_block.fc.0.weight": (64, 512),
        "SE_block.fc.2.weight": (512, 64),
    }
    for key, shape in expected.items():
        assert key in ih, key
        assert tuple(ih[key].shape) == shape, key
    assert "decoder.3.0.weight" in ih and not any(k.startswith("decoder.3.1.") for k in ih)
    assert not any(k.startswith("module.") for k in ih)
    extra = sorted(set(ff) - set(ih))
    assert len(extra) == 8 and all(k.startswith("normalizers.3.") for k in extra)


def test_custom_tiny_pth_infers_a_custom_config(tiny_model, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_model.state_dict(), path)
    with pytest.warns(UserWarning, match=r"tiny.pth is not an official checkpoint's file name.*output 'image'"):
        model = load_model(path)
    cfg = model.config
    assert cfg.name == "custom"
    assert cfg.enc_sizes == tiny_model.config.enc_sizes and cfg.grid_counts == tiny_model.config.grid_counts
    assert _same_weights(model, tiny_model)
    assert torch.equal(_out(model), _out(tiny_model))
    # An explicit config wins over inference.
    assert load_model(path, config=tiny_model.config).config == tiny_model.config


def test_a_pth_whose_squeeze_width_is_rounded_down_and_one_of_another_output_are_named(tiny_config, tmp_path):
    """se_reduction 3 on a 32-wide bottleneck (a 10-wide squeeze) was read as 8, then refused with the advice to
    let the file be read; a 'transform' .pth got the same circular advice."""
    import dataclasses

    path = tmp_path / "se3.pth"
    torch.save(PHNet(dataclasses.replace(tiny_config, se_reduction=3)).state_dict(), path)
    with pytest.warns(UserWarning, match="not an official checkpoint's file name"):
        assert load_model(path).config.se_reduction == 3
    torch.save(PHNet(dataclasses.replace(tiny_config, output="transform")).state_dict(), path)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"their output layer gives 12 channels \(output "
                                                                    r"'transform'\), not the 3 of output 'image'"):
        load_model(path)
    folder = tmp_path / "run"  # kept with a config.json, a wrong one: that file is named as the fix
    folder.mkdir()
    path.rename(folder / "trained.pth")
    tiny_config.save(folder / "config.json")
    with pytest.raises(ValueError, match=r"Set its output to 'transform' in .*config.json"):
        load_model(folder)
    official = tmp_path / "iharmony512.pth"  # a config given in code is the caller's own: no config.json to blame
    torch.save(PHNet(tiny_config).state_dict(), official)
    residual = dataclasses.replace(tiny_config, output="residual")
    assert load_model(official, config=residual).config == residual


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved from a DDP/DataParallel wrapper
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},  # saved from a torch.compile'd model
        lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()},  # compiled, then wrapped in DDP
        lambda sd: {"n_averaged": torch.tensor(7), **{f"module.{k}": v for k, v in sd.items()}},  # AveragedModel
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},  # a Lightning module's
    ],
    ids=["module-prefix", "state_dict-wrapper", "model-wrapper+prefix", "compiled", "ddp+compiled", "ema", "lightning"],
)
def test_wrapped_state_dicts_load(tiny_model, tmp_path, wrap):
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(tiny_model.state_dict()), path)
    assert _same_weights(load_model(path), tiny_model)


def test_the_official_trainer_s_epoch_numbers_are_not_a_working_size(tiny_model, tmp_path):
    """epoch-256.pth was read as trained at 256 (the official trainer saves epoch-{N}.pth, for 300 epochs)."""
    for name, size in [("epoch-256.pth", 512), ("ffhqh1024_epoch-300.pth", 1024), ("phnet_256.pth", 256),
                       ("phnet_e2e_1024.pth", 1024)]:
        torch.save(tiny_model.state_dict(), tmp_path / name)
        with pytest.warns(UserWarning, match=rf"working size {size}\)"):
            assert load_model(tmp_path / name).config.image_size == size


# ----------------------------------------------------------------------------------------------------
# bad files: each with a message that says what to do


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        W.read_state_dict(tmp_path / "nope.pth")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_safetensors(tiny_folder):
    _truncate(tiny_folder / "model.safetensors")
    with pytest.raises(ValueError) as e:
        load_model(tiny_folder)
    msg = str(e.value)
    assert "truncated" in msg and "corrupt" in msg and "again" in msg
    (tiny_folder / "config.json").write_text('{"image_size": 64}')  # a partial config: the damage is named first
    with pytest.raises(ValueError, match="not a readable safetensors file.*download it again"):
        load_model(tiny_folder)


def test_truncated_pth(tiny_model, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(tiny_model.state_dict(), path)
    _truncate(path)
    with pytest.raises(ValueError, match="download it again") as caught:
        load_model(path)
    assert "file is)" not in str(caught.value)  # torch's words end at a sentence, not at a character count


def test_empty_pth_from_an_interrupted_download(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file.*download it again"):
        load_model(path)


def test_config_json_beside_a_pth_is_used(tiny_config, tmp_path):
    import dataclasses

    config = dataclasses.replace(tiny_config, output="residual", image_size=48)
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(PHNet(config).state_dict(), folder / "trained.pth")
    config.save(folder / "config.json")
    assert load_model(folder).config == config
    assert load_model(folder / "trained.pth").config == config  # the file itself picked (the ComfyUI list)


def test_a_model_folders_weights_file_given_by_path_loads_with_the_folders_config(tiny_config, tiny_model,
                                                                                   tiny_folder, tmp_path):
    """The folder's config.json rules as when the folder is given (the ComfyUI picker names the file): a tuned
    working size or threshold was ignored, and a file with no stored config was refused."""
    import dataclasses

    from safetensors.torch import save_file

    tuned = tmp_path / "tuned"
    shutil.copytree(tiny_folder, tuned)
    config = dataclasses.replace(tiny_model.config, image_size=48)
    config.save(tuned / "config.json")
    assert load_model(tuned / "model.safetensors").config == load_model(tuned).config == config
    bare = tmp_path / "hub-style"  # weights without a stored config, config.json beside them
    bare.mkdir()
    save_file(tiny_model.state_dict(), str(bare / "model.safetensors"))
    tiny_model.config.save(bare / "config.json")
    assert load_model(bare / "model.safetensors").config == tiny_model.config
    other = tmp_path / "other.safetensors"  # another name: a file of its own, whatever lies beside it
    shutil.copy(tiny_folder / "model.safetensors", other)
    shutil.copy(tuned / "config.json", tmp_path / "config.json")
    assert load_model(other).config == tiny_model.config


def test_wrong_architecture_shapes(tiny_model, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_model.state_dict(), path)
    with pytest.raises(ValueError) as e:
        load_model(path, config=PHNetConfig.preset("iharmony"))
    msg = str(e.value)
    assert "do not fit" in msg and "config" in msg and "other shapes" in msg
    assert "'enc_sizes': [3, 8, 8, 16, 16, 32, 32]" in msg  # what the weights look like


def test_wrong_architecture_from_a_config_json_names_that_file(tiny_model, tmp_path):
    """The message said to use the matching architecture, not that the config.json beside the weights set it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    torch.save(tiny_model.state_dict(), folder / "mine.pth")
    PHNetConfig(enc_sizes=(3, 8, 16, 16, 32, 32, 64), grid_counts=(4, 2, 1), image_size=64).save(folder / "config.json")
    with pytest.raises(ValueError, match=r"do not fit .* or let it be read off the file: fix or delete "
                                         + re.escape(str(folder / "config.json")) + "$"):
        load_model(folder)
    with pytest.raises(ValueError, match=r"read off the file$"):  # a config given in code: no file to name
        load_model(folder / "mine.pth", config=PHNetConfig.preset("iharmony"))


def test_extra_tensors_in_weights_of_the_right_architecture_are_not_blamed_on_the_architecture(tiny_model, tmp_path):
    path = tmp_path / "extra.pth"
    torch.save({**tiny_model.state_dict(), "extra.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"1 unexpected \(e.g. extra.weight\)\)\. Their architecture is this "
                                         r"config's .*holds other tensors beside or instead of PHNet's") as e:
        load_model(path)
    assert "preset iharmony or ffhqh" not in str(e.value)


def test_wrong_architecture_missing_and_unexpected(tiny_config, tmp_path):
    import dataclasses

    four = PHNet(dataclasses.replace(tiny_config, grid_counts=(4, 2, 2, 1), pfe_grid=2))
    path = tmp_path / "four.pth"
    torch.save(four.state_dict(), path)
    with pytest.raises(ValueError) as e:
        load_model(path, config=tiny_config)
    msg = str(e.value)
    assert "unexpected" in msg and "normalizers.3." in msg and "config" in msg
    with pytest.raises(ValueError) as e:  # and the other way round
        W.load_state_dict_into(four, PHNet(tiny_config).state_dict(), source="x")
    assert "missing" in str(e.value) and "config" in str(e.value)


def test_non_phnet_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a PHNet state_dict"):
        load_model(path)
    path2 = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path2)
    with pytest.raises(ValueError, match="state_dict of tensors"):
        load_model(path2)


def test_another_network_s_file_is_named_and_a_sam_checkpoint_as_such(tmp_path):
    """'this is not a PHNet state_dict (no 'encoder.0.0.weight' tensor)' named neither the file nor what to give,
    for a Segment Anything checkpoint put among PHNet's models too."""
    from safetensors.torch import save_file

    sam = {"image_encoder.patch_embed.proj.weight": torch.zeros(2, 3, 4, 4),
           "mask_decoder.iou_token.weight": torch.zeros(1, 2)}
    for name, save in (("sam.pth", torch.save), ("sam.safetensors", lambda t, p: save_file(t, str(p)))):
        save(sam, tmp_path / name)
        with pytest.raises(ValueError) as e:
            load_model(tmp_path / name)
        assert str(e.value) == (f"{tmp_path / name}: this is not a PHNet state_dict (no 'encoder.0.0.weight' tensor; "
                                "it holds a Segment Anything (SAM) model's weights): give a file of PHNet weights")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'resnet.pth'}: this is not a PHNet state_dict (no "
                                                   "'encoder.0.0.weight' tensor): give a file of PHNet weights")):
        load_model(tmp_path / "resnet.pth")


def test_a_refusal_without_a_closing_bracket_gets_no_stray_one(monkeypatch, tmp_path):
    from phnet import weights

    def refuse(tensors, image_size=None):
        raise ValueError("the widths do not agree")

    monkeypatch.setattr(weights, "infer_config", refuse)
    sam = {"image_encoder.x": torch.zeros(1), "mask_decoder.y": torch.zeros(1)}
    for tensors, said in (({}, "the widths do not agree"),
                          (sam, "the widths do not agree; it holds a Segment Anything (SAM) model's weights")):
        with pytest.raises(ValueError) as e:
            weights._inferred(tmp_path / "w.pth", tensors)
        assert str(e.value) == f"{tmp_path / 'w.pth'}: {said}: give a file of PHNet weights"


def test_unsupported_suffix(tiny_folder, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copy(tiny_folder / "model.safetensors", path)
    with pytest.raises(ValueError) as e:
        load_model(path)
    msg = str(e.value)
    assert "unsupported" in msg and ".safetensors" in msg and ".pth" in msg


def test_folder_with_two_candidates(tiny_model, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    torch.save(tiny_model.state_dict(), folder / "a.pth")
    torch.save(tiny_model.state_dict(), folder / "b.pth")
    with pytest.raises(FileNotFoundError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "a.pth" in msg and "b.pth" in msg and "model.safetensors" in msg
    (folder / "b.pth").unlink()  # a single candidate is taken
    (folder / "._a.pth").write_bytes(b"\0" * 4096)  # beside a Mac's metadata for it (a copy to exFAT or SMB)
    assert _same_weights(load_model(folder), tiny_model)


def test_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="found nothing"):
        load_model(tmp_path)


def test_no_source_without_bundled_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "DEFAULT_DIR", tmp_path / "default")
    with pytest.raises(FileNotFoundError) as e:
        Harmonizer.from_pretrained()
    msg = str(e.value)
    assert "no bundled default" in msg
    assert "Pass weights explicitly" in msg and ".pth" in msg and "Hub repo id" in msg


def test_no_source_loads_the_bundled_folder(tiny_model, tiny_folder, monkeypatch):
    monkeypatch.setattr(W, "DEFAULT_DIR", tiny_folder)
    h = Harmonizer.from_pretrained(device="cpu")
    assert _same_weights(h.model, tiny_model)


def _add_snapshot(cache: Path, repo_id: str, commit: str, model: PHNet, refs: tuple[str, ...] = ()) -> None:
    """Put ``model`` into the HF cache layout: blobs/<hash> + snapshots/<commit>/<file> symlinks + refs/<ref>."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    staging = save_pretrained(model, repo / "staging")
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in sorted(staging.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        f.replace(blob)
        (snap / f.name).symlink_to(Path("..", "..", "blobs", blob.name))
    staging.rmdir()
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # the HF cache stores the bare hash, no newline


@pytest.fixture()
def two_models(tiny_config):
    torch.manual_seed(10)
    a = PHNet(tiny_config).eval()
    torch.manual_seed(11)
    b = PHNet(tiny_config).eval()
    assert not _same_weights(a, b)
    return a, b


def test_hub_repo_from_the_offline_cache(offline_hub, tiny_model):
    _add_snapshot(offline_hub, "owner/name", COMMIT_B, tiny_model, refs=("main",))
    model = load_model("owner/name", cache_dir=offline_hub)
    assert model.config == tiny_model.config and _same_weights(model, tiny_model)
    h = Harmonizer.from_pretrained("owner/name", cache_dir=offline_hub, local_files_only=True, device="cpu")
    assert _same_weights(h.model, tiny_model)


def test_hub_revision_pinning(offline_hub, two_models):
    a, b = two_models
    _add_snapshot(offline_hub, "owner/name", COMMIT_A, a, refs=("v1",))
    _add_snapshot(offline_hub, "owner/name", COMMIT_B, b, refs=("main",))
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub), b)
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub, revision=COMMIT_A), a)
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub, revision=COMMIT_B, local_files_only=True), b)
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub, revision="v1"), a)
    h = Harmonizer.from_pretrained("owner/name", cache_dir=offline_hub, revision="v1", local_files_only=True,
                                   device="cpu")
    assert _same_weights(h.model, a)


@pytest.mark.parametrize("local_files_only", [False, True])
def test_hub_repo_not_in_the_cache(offline_hub, tiny_model, local_files_only):
    _add_snapshot(offline_hub, "owner/name", COMMIT_B, tiny_model, refs=("main",))
    with pytest.raises(FileNotFoundError) as e:
        load_model("owner/other", cache_dir=offline_hub, local_files_only=local_files_only)
    msg = str(e.value)
    assert "cache" in msg and "offline" in msg and "HF_HUB_OFFLINE=1" in msg and "owner/other" in msg
    # where this call looks, not the default; as the installed huggingface_hub spells its command
    assert f"`{hub_command(f'download owner/other --cache-dir {offline_hub}')}`" in msg
    with pytest.raises(FileNotFoundError, match="revision v2"):  # a ref that is not cached either
        load_model("owner/name", cache_dir=offline_hub, revision="v2", local_files_only=local_files_only)


def test_a_list_of_folders_is_looked_in_for_a_hub_repo_as_for_an_official_name(offline_hub, two_models):
    """The list of folders load_model takes for official names reached huggingface_hub as it was, which refused it
    in its own words ("expected str, bytes or os.PathLike object, not list")."""
    a, b = two_models
    first, second = offline_hub / "first", offline_hub / "second"
    _add_snapshot(second, "owner/name", COMMIT_B, a, refs=("main",))
    assert _same_weights(load_model("owner/name", cache_dir=[first, None, str(second)]), a)
    assert _same_weights(load_model("owner/name:model.safetensors", cache_dir=(first, second)), a)
    _add_snapshot(first, "owner/name", COMMIT_B, b, refs=("main",))  # the first folder that holds it
    assert _same_weights(load_model("owner/name", cache_dir=[first, second]), b)
    h = Harmonizer.from_pretrained("owner/name", cache_dir=[second, first], local_files_only=True, device="cpu")
    assert _same_weights(h.model, a)
    with pytest.raises(FileNotFoundError) as e:  # in none of them: where a download would go is named
        load_model("owner/other", cache_dir=[first, second])
    assert "owner/other" in str(e.value) and f"--cache-dir {first}" in str(e.value)


@pytest.mark.parametrize("source", ["owner/other", "owner/other:model.safetensors"])
def test_a_hub_repo_in_none_of_a_list_of_folders_names_them_all_and_where_to_download(offline_hub, source):
    """Offline, the message named the first folder alone, as though the others had not been looked in."""
    first, second = offline_hub / "first", offline_hub / "second"
    with pytest.raises(FileNotFoundError) as e:
        load_model(source, cache_dir=[first, None, second])
    msg = str(e.value)
    assert f"in none of the Hugging Face caches looked in ({first}, {second})" in msg and "HF_HUB_OFFLINE=1" in msg
    assert f"--cache-dir {first}`" in msg and f"--cache-dir {second}" not in msg  # where a download goes
    with pytest.raises(FileNotFoundError, match=rf"not in the Hugging Face cache \({re.escape(str(first))}\)"):
        load_model(source, cache_dir=[first])  # one folder: named as one cache


def test_a_hub_repo_not_in_the_caches_is_refused_in_words_that_survive_a_copy_or_another_process(offline_hub):
    """The refusal, a plain FileNotFoundError before it named every cache, could not be pickled or copied: a
    process pool or a copying host lost it in a TypeError about its arguments."""
    import copy
    import pickle

    with pytest.raises(FileNotFoundError) as e:
        load_model("owner/other", cache_dir=[offline_hub / "first", offline_hub / "second"])
    for twin in (pickle.loads(pickle.dumps(e.value)), copy.copy(e.value)):
        assert type(twin) is type(e.value) and str(twin) == str(e.value)


def test_not_a_path_nor_a_repo_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model("no/such/place")


# ----------------------------------------------------------------------------------------------------
# push_to_hub with a fake HfApi


class FakeHfApi:
    """Records what push_to_hub does, keeping a copy of the uploaded folder."""

    calls: list = []
    public: set = set()  # repos that exist already, public

    def __init__(self, token=None):
        self.calls.append(("init", {"token": token}))
        self.store = None

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id, **kwargs):
        self.calls.append(("repo_info", {"repo_id": repo_id}))
        return types.SimpleNamespace(private=repo_id not in self.public)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        copy = Path(FakeHfApi.upload_root) / f"upload{len(self.calls)}"
        shutil.copytree(folder_path, copy)
        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder": copy, **kwargs}))
        return f"https://huggingface.co/{repo_id}/commit/{COMMIT_A}"


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch, hub_login):
    import huggingface_hub

    FakeHfApi.calls = []
    FakeHfApi.public = set()
    FakeHfApi.upload_root = tmp_path / "uploaded"
    FakeHfApi.upload_root.mkdir()
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi.calls


def _uploaded(calls) -> Path:
    uploads = [c for name, c in calls if name == "upload_folder"]
    assert len(uploads) == 1
    return uploads[0]["folder"]


def test_push_to_hub(fake_hub, tiny_model):
    url = Harmonizer(tiny_model, device="cpu").push_to_hub("me/phnet-tiny", private=True, token="hf_x")
    assert url == "https://huggingface.co/me/phnet-tiny"
    kinds = [name for name, _ in fake_hub]
    assert kinds == ["init", "create_repo", "repo_info", "upload_folder"]
    assert fake_hub[0][1]["token"] == "hf_x"
    create = fake_hub[1][1]
    assert create["repo_id"] == "me/phnet-tiny" and create["private"] is True and create["exist_ok"] is True
    folder = _uploaded(fake_hub)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: phnet" in card and '"enc_sizes"' in card
    assert W.OFFICIAL_TERMS not in card  # our own weights carry no third-party terms
    assert _same_weights(load_model(folder), tiny_model)


def test_push_to_hub_keeps_the_accounts_default_and_never_uploads_private_weights_into_a_public_repo(
        fake_hub, tiny_model):
    h = Harmonizer(tiny_model, device="cpu")
    h.push_to_hub("org/plain")
    assert "private" not in [c for name, c in fake_hub if name == "create_repo"][0]  # the org's default stands
    fake_hub.clear()
    FakeHfApi.public.add("org/open")
    with pytest.raises(PermissionError, match="exists and is public: nothing was uploaded"):
        h.push_to_hub("org/open", private=True)
    assert "upload_folder" not in [name for name, _ in fake_hub]


def test_convert_keeps_its_result_and_says_how_to_push_it_when_the_upload_fails(tiny_model, tmp_path, monkeypatch,
                                                                            capsys, hub_login):
    from phnet import cli

    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(W, "push_to_hub", unreachable)
    torch.save(tiny_model.state_dict(), tmp_path / "ffhqh512.pth")
    assert cli.main(["convert", str(tmp_path / "ffhqh512.pth"), str(tmp_path / "out"), "--push-to-hub", "me/x"]) == 1
    err = capsys.readouterr().err
    assert "the upload to me/x failed (ConnectionRefusedError" in err and "python -m trainer.push" in err
    assert load_model(tmp_path / "out") is not None


def test_convert_refuses_an_upload_that_cannot_happen_before_converting(tiny_model, tmp_path, monkeypatch, capsys):
    from phnet import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.save(tiny_model.state_dict(), tmp_path / "ffhqh512.pth")
    assert cli.main(["convert", str(tmp_path / "ffhqh512.pth"), str(tmp_path / "out"), "--push-to-hub", "me/x"]) == 2
    assert "nothing can be uploaded to me/x offline" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_push_converted_official_weights_carries_the_licence(fake_hub, tiny_model, tmp_path, capsys):
    from phnet import cli

    ckpt = tmp_path / "ffhqh512.pth"  # an official file's name
    torch.save(tiny_model.state_dict(), ckpt)
    assert cli.main(["convert", str(ckpt), str(tmp_path / "out"), "--push-to-hub", "me/converted"]) == 0
    assert capsys.readouterr().out.endswith("\nuploaded to https://huggingface.co/me/converted\n")  # where they went
    folder = _uploaded(fake_hub)
    assert {p.name for p in folder.iterdir()} >= {"README.md", "config.json", "model.safetensors"}
    card = (folder / "README.md").read_text()
    assert W.OFFICIAL_TERMS in card and "CC BY-SA 4.0" in card and "ffhqh512.pth" in card
    assert _same_weights(load_model(folder), tiny_model)
    (tmp_path / "mine").mkdir()  # other weights: no claim that they are the authors'
    torch.save(tiny_model.state_dict(), tmp_path / "mine" / "tuned.pth")
    assert cli.main(["convert", str(tmp_path / "mine" / "tuned.pth"), str(tmp_path / "out2"), "--push-to-hub",
                     "me/converted"]) == 0
    card = ([c for name, c in fake_hub if name == "upload_folder"][-1]["folder"] / "README.md").read_text()
    assert "Efremyan" not in card and "official" not in card


# ----------------------------------------------------------------------------------------------------
# hostile files (issue 12): configs with holes or wrong types, NaN weights, pickles, file modes


def _residual_folder(tiny_config, tmp_path) -> tuple[Path, PHNetConfig]:
    import dataclasses

    config = dataclasses.replace(tiny_config, output="residual", image_size=48)
    return save_pretrained(PHNet(config), tmp_path / "residual"), config


@pytest.mark.parametrize("field", ["output", "image_size"])
def test_config_json_missing_a_field_takes_it_from_the_metadata(tiny_config, tmp_path, field):
    folder, config = _residual_folder(tiny_config, tmp_path)
    d = json.loads((folder / "config.json").read_text())
    del d[field]
    (folder / "config.json").write_text(json.dumps(d))
    assert load_model(folder).config == config  # not output="image" / 512 from the defaults


def test_config_json_missing_a_field_with_nothing_to_take_it_from(tiny_config, tmp_path):
    folder = tmp_path / "pth"
    folder.mkdir()
    torch.save(PHNet(tiny_config).state_dict(), folder / "trained.pth")
    d = tiny_config.to_dict()
    del d["output"]
    (folder / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError) as e:
        load_model(folder)
    assert "config.json" in str(e.value) and "'output'" in str(e.value)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"image_size": "64"}, "'image_size' must be an integer"),
        ({"grid_counts": None}, "'grid_counts' must be a list of integers"),
        ({"enc_sizes": [3, 8, "8", 16, 16, 32, 32]}, "'enc_sizes' must be a list of integers"),
        ({"output": 1}, "'output' must be a string"),
        ({"pfe_grid": 2.5}, "'pfe_grid' must be an integer or null"),
    ],
)
def test_config_json_with_wrong_types_names_the_field(tiny_folder, change, words):
    d = json.loads((tiny_folder / "config.json").read_text())
    (tiny_folder / "config.json").write_text(json.dumps({**d, **change}))
    with pytest.raises(ValueError, match=words) as e:
        load_model(tiny_folder)
    assert "config.json" in str(e.value)


def test_config_json_that_is_a_list(tiny_folder):
    (tiny_folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="config.json must be a JSON object.*list"):
        load_model(tiny_folder)


def test_safetensors_without_a_config_is_not_guessed(tiny_config, tmp_path):
    """Shapes cannot show a residual model's output mapping or its working size: a lone .safetensors that
    lost its metadata is refused; an official-style .pth keeps the official mapping (that is its format)."""
    import dataclasses

    from safetensors.torch import save_file

    model = PHNet(dataclasses.replace(tiny_config, output="residual"))
    save_file(model.state_dict(), str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError) as e:
        load_model(tmp_path / "bare.safetensors")
    msg = str(e.value)
    assert "bare.safetensors" in msg and "output" in msg and "config.json" in msg
    assert load_model(tmp_path / "bare.safetensors", config=model.config).config.output == "residual"
    (tmp_path / "config.json").write_text(model.config.to_json())  # a config beside it is used
    assert load_model(tmp_path).config == model.config


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tiny_model, tmp_path, bad):
    sd = tiny_model.state_dict()
    sd["decoder.0.0.weight"][0, 0, 0, 0] = bad
    torch.save(sd, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"NaN or infinite values in 'decoder\.0\.0\.weight'"):
        load_model(tmp_path / "nan.pth")


def test_whole_numbers_stored_for_float_weights_are_refused(tiny_model, tmp_path):
    sd = tiny_model.state_dict()
    sd["decoder.0.0.weight"] = (sd["decoder.0.0.weight"] * 100).round().to(torch.int8)  # a quantized copy
    torch.save(sd, tmp_path / "int8.pth")
    with pytest.raises(ValueError, match=r"store 'decoder\.0\.0\.weight' as torch\.int8, where PHNet keeps floats"):
        load_model(tmp_path / "int8.pth", config=tiny_model.config)


def test_save_pretrained_files_get_the_umask_mode(tiny_model, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = save_pretrained(tiny_model, tmp_path / "shared")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize(
    "change, words",
    [
        ({"correction_threshold": True}, "'correction_threshold' must be a number, got True"),
        ({"correction_threshold": "17"}, "'correction_threshold' must be a number, got '17'"),
        ({"se_reduction": 0}, "se_reduction must be from 1 to the bottleneck width"),
        ({"pfe_grid": 0}, "pfe_grid must be a patch grid from 1 to 64"),
        ({"image_size": 65536}, "image_size must be a multiple of 8 from 16 to 4096"),
        ({"grid_counts": [4, 2, 1000]}, "grid_counts must be 1 to 7 patch grids from 1 to 64"),
        ({"init_value": float("nan")}, "must be finite"),
    ],
)
def test_every_config_field_is_checked_at_load_naming_the_file_and_field(tiny_folder, change, words):
    d = json.loads((tiny_folder / "config.json").read_text())
    (tiny_folder / "config.json").write_text(json.dumps({**d, **change}))
    with pytest.raises(ValueError, match=words) as e:
        load_model(tiny_folder)
    assert str(tiny_folder / "config.json") in str(e.value)


def test_a_config_json_that_contradicts_the_stored_config_is_refused(tiny_folder):
    d = json.loads((tiny_folder / "config.json").read_text())
    assert d["output"] == "image"
    (tiny_folder / "config.json").write_text(json.dumps({**d, "output": "residual"}))
    with pytest.raises(ValueError, match=r"contradicts the config stored in .*output: 'residual' in config.json, "
                                         r"'image' stored in model.safetensors"):
        load_model(tiny_folder)
    (tiny_folder / "config.json").write_text(json.dumps({**d, "image_size": 32, "name": "renamed"}))
    assert load_model(tiny_folder).config.image_size == 32  # what config.json may tune, it tunes


def test_a_config_argument_that_contradicts_the_stored_config_is_refused(tiny_folder):
    """A config built by hand leaves ``output`` at its default: loading residual weights as "image" moved the
    bundled weights' subject by RMS 48.8 where they propose 18.9, without a word."""
    import dataclasses

    from phnet import Harmonizer

    stored = load_model(tiny_folder).config
    wrong = dataclasses.replace(stored, output="residual")
    for source in (tiny_folder, tiny_folder / "model.safetensors"):
        with pytest.raises(ValueError, match=r"the config given contradicts the config stored in .*output: "
                                             r"'residual' in the config given, 'image' stored"):
            Harmonizer.from_pretrained(source, config=wrong, device="cpu")
    tuned = dataclasses.replace(stored, image_size=32, correction_threshold=0.0)
    assert Harmonizer.from_pretrained(tiny_folder, config=tuned, device="cpu").config.image_size == 32


def test_a_working_size_beyond_what_a_model_can_use_is_refused(tiny_model):
    import numpy as np

    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    with pytest.raises(ValueError, match="working_size must be a multiple of 8 from 16 to 4096, got 65536"):
        h(np.zeros((48, 64, 3), np.uint8), np.pad(np.ones((8, 8)), 20)[:48, :64], working_size=65536)


def test_a_config_json_saved_with_a_byte_order_mark_loads(tiny_folder):
    """Windows editors may save config.json with a UTF-8 BOM."""
    text = (tiny_folder / "config.json").read_text(encoding="utf-8")
    (tiny_folder / "config.json").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_model(tiny_folder).config == load_model(tiny_folder / "model.safetensors").config
    (tiny_folder / "config.json").write_text(text, encoding="utf-16")  # PowerShell 5's `>`
    assert load_model(tiny_folder).config == load_model(tiny_folder / "model.safetensors").config
    (tiny_folder / "config.json").write_bytes(text.encode("latin-1") + b"\xff\xfe")
    with pytest.raises(ValueError, match=r"config.json is not UTF-8 text .*: save it as UTF-8"):
        load_model(tiny_folder)


def test_a_hub_repo_gives_its_safetensors_alone_and_pth_files_only_without_them(tiny_model, tmp_path, monkeypatch):
    from phnet import sources

    asked = []
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()

    def download(repo_id, *, allow_patterns, **kwargs):
        asked.append(allow_patterns)
        return snapshot

    monkeypatch.setattr(sources, "download", download)
    listed_with = []
    monkeypatch.setattr(sources, "list_files", lambda repo_id, **kw: listed_with.append(kw.get("token")) or sorted(
        p.name for p in snapshot.glob("*")))
    W.save_pretrained(tiny_model, snapshot)
    assert W.download_from_hub("me/ours") == snapshot and asked == [["config.json", "model.safetensors"]]
    (snapshot / "model.safetensors").unlink()
    (snapshot / "config.json").unlink()
    torch.save(tiny_model.state_dict(), snapshot / "best_ffhqh512.pth")
    asked.clear()
    assert W.download_from_hub("me/official-style", token="hf_x") == snapshot
    assert asked[1] == ["config.json", "best_ffhqh512.pth"] and listed_with[-1] == "hf_x"  # a private repo's too
    (snapshot / "best_ffhqh512.pth").unlink()
    with pytest.raises(FileNotFoundError, match="gave no weights file.*Download it again.*'me/cut:FILE.safetensors'"):
        W.download_from_hub("me/cut")  # a snapshot whose blob never arrived
    snapshot.rmdir()  # nothing matched at all: the Hub client returns a snapshot folder it never made
    with pytest.raises(FileNotFoundError, match="gave no weights file"):
        W.download_from_hub("me/other-names")


def _bytes_of(save) -> bytes:
    import io

    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def test_a_hub_file_named_in_the_repo_takes_the_config_beside_it_as_the_repo_does(offline_hub, tiny_model,
                                                                                  tiny_config, tmp_path):
    """owner/name:FILE read only the file: a retuned working size, or the 'residual' output of a .pth, was
    lost (the .pth came out through the official mapping, silently wrong)."""
    import dataclasses

    folder = save_pretrained(tiny_model, tmp_path / "saved")
    retuned = {**json.loads((folder / "config.json").read_text()), "image_size": 96}
    _add_files(offline_hub, "owner/name", {"config.json": json.dumps(retuned).encode(),
                                           "model.safetensors": (folder / "model.safetensors").read_bytes()})
    assert load_model("owner/name", cache_dir=offline_hub).config.image_size == 96
    assert load_model("owner/name:model.safetensors", cache_dir=offline_hub).config.image_size == 96
    residual = dataclasses.replace(tiny_config, output="residual")
    _add_files(offline_hub, "owner/pth", {
        "run/config.json": json.dumps(residual.to_dict()).encode(),
        "run/trained.pth": _bytes_of(lambda f: torch.save(PHNet(residual).state_dict(), f))})
    assert load_model("owner/pth:run/trained.pth", cache_dir=offline_hub).config == residual
    official = dataclasses.replace(tiny_config, name="official-iharmony512")  # a repo holding an official file
    _add_files(offline_hub, "owner/official", {  # and a fine-tune's config: not the official mapping, silently
        "config.json": json.dumps(residual.to_dict()).encode(),
        "iharmony512.pth": _bytes_of(lambda f: torch.save(PHNet(official).state_dict(), f))})
    with pytest.raises(ValueError, match="read off the official file"):
        load_model("owner/official", cache_dir=offline_hub)
    assert load_model("owner/official:iharmony512.pth", cache_dir=offline_hub).config.output == "image"


def test_a_safetensors_file_that_stores_no_config_takes_the_one_beside_it(tiny_model, tmp_path):
    from safetensors.torch import save_file

    folder = save_pretrained(tiny_model, tmp_path / "run")
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(folder / "phnet_ema.safetensors"))
    (folder / "model.safetensors").unlink()
    model = load_model(folder / "phnet_ema.safetensors")
    assert model.config == tiny_model.config and _same_weights(model, tiny_model)


def test_an_official_style_hub_repo_takes_only_its_top_checkpoint_and_names_one_of_several(offline_hub, tiny_model):
    weights = _bytes_of(lambda f: torch.save(tiny_model.state_dict(), f))
    _add_files(offline_hub, "owner/one", {"ffhqh512.pth": weights, "training/epoch_300.pth": b"not read"})
    assert _same_weights(load_model("owner/one", cache_dir=offline_hub), tiny_model)
    _add_files(offline_hub, "owner/zoo", {"ffhqh256.pth": weights, "ffhqh512.pth": weights})
    with pytest.raises(FileNotFoundError, match=r"several checkpoints \(ffhqh256.pth, ffhqh512.pth\): name one, "
                                                r"e.g. 'owner/zoo:ffhqh256.pth'"):
        load_model("owner/zoo", cache_dir=offline_hub)


def test_an_official_style_hub_repo_loads_offline_from_the_files_fetched_online(offline_hub, tiny_model):
    """huggingface_hub 2.x keeps the repo's listing from the online download and refuses, offline, a snapshot
    that lacks any of its files: ours never holds the README or .gitattributes, so the cached .pth was refused."""
    tree_cache = pytest.importorskip("huggingface_hub._tree_cache")
    weights = _bytes_of(lambda f: torch.save(tiny_model.state_dict(), f))
    _add_files(offline_hub, "owner/offi", {"ffhqh512.pth": weights})
    listing = {name: tree_cache.TreeCacheEntry(size=size, blob_id="0" * 40)
               for name, size in (("ffhqh512.pth", len(weights)), ("README.md", 10), (".gitattributes", 10))}
    tree_cache.write_tree_cache(str(offline_hub / "models--owner--offi"), COMMIT_B, listing)
    assert _same_weights(load_model("owner/offi", cache_dir=offline_hub), tiny_model)


def test_saving_in_fp16_what_fp16_cannot_hold_is_refused_before_anything_is_written(tiny_model, tmp_path):
    """The file was written with inf in it, and loading it later blamed damage or a diverged run."""
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    key = next(k for k in state if k.endswith("running_var"))
    state[key][0] = 1e5
    tiny_model.load_state_dict(state)
    with pytest.raises(ValueError, match=rf"'{re.escape(key)}' holds values beyond what torch.float16 can store "
                                         r"\(largest magnitude 1e\+05\): save in torch.bfloat16"):
        save_pretrained(tiny_model, tmp_path / "fp16", dtype=torch.float16)
    assert not (tmp_path / "fp16").exists()
    assert load_model(save_pretrained(tiny_model, tmp_path / "bf16", dtype=torch.bfloat16)) is not None


def test_save_pretrained_takes_the_project_s_dtype_names_and_refuses_what_is_no_float(tiny_model, tmp_path):
    """"fp16" ended in torch's "Invalid device string", torch.int8 in a TypeError from torch.finfo."""
    saved = save_pretrained(tiny_model, tmp_path / "fp16", dtype="fp16")
    assert load_model(saved).state_dict()["encoder.0.0.weight"].equal(
        tiny_model.state_dict()["encoder.0.0.weight"].half().float())
    for dtype in (torch.int8, "float16", "auto"):
        with pytest.raises(ValueError, match=r"dtype must be one of 'fp32', 'fp16', 'bf16' or a floating torch.dtype"):
            save_pretrained(tiny_model, tmp_path / "refused", dtype=dtype)
    assert not (tmp_path / "refused").exists()


def test_a_working_size_is_read_off_a_file_name_only_as_a_number_of_its_own():
    from phnet.weights import _size_from_name

    assert _size_from_name("ffhqh1024.pth") == 1024 and _size_from_name("iharmony_256.pth") == 256
    assert _size_from_name("phnet_20251024.pth") is None and _size_from_name("iharmony_step1256.pth") is None


def test_weights_load_as_float32_whatever_torchs_default_dtype(tiny_folder):
    """Under torch.set_default_dtype(torch.float64) the model came out part float64, part float32, and every call
    failed on the mix."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = load_model(tiny_folder)
    finally:
        torch.set_default_dtype(before)
    assert {p.dtype for p in model.state_dict().values() if p.is_floating_point()} == {torch.float32}


def test_a_config_given_whole_to_convert_official_is_kept(official_files, tmp_path):
    import dataclasses

    from phnet.weights import convert_official

    path, _ = official_files["iharmony"]
    wanted = dataclasses.replace(PHNetConfig.preset("iharmony"), image_size=1024)
    assert convert_official(path, tmp_path / "c", config=wanted).config == wanted


def test_a_shape_that_differs_is_not_blamed_on_foreign_tensors(tiny_config, tmp_path):
    """A transform model read as an image one differs in the decoder's last layer: that is the config's output."""
    import dataclasses

    path = tmp_path / "transform.pth"
    torch.save(PHNet(dataclasses.replace(tiny_config, output="transform")).state_dict(), path)
    with pytest.raises(ValueError, match="with other shapes") as caught:
        load_model(path, config=tiny_config)
    assert "other tensors beside or instead" not in str(caught.value)


def test_an_empty_revision_is_main_and_a_hub_file_typed_with_backslashes_or_a_leading_slash_is_found(
        offline_hub, tiny_model, tmp_path):
    """revision="" went to the Hub as a revision (offline: 'Is a directory'); 'sub\\\\file' and '/sub/file'
    were not found in a cache that held sub/file."""
    folder = save_pretrained(tiny_model, tmp_path / "saved")
    _add_snapshot(offline_hub, "owner/name", COMMIT_B, tiny_model, refs=("main",))
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub, revision=""), tiny_model)
    assert _same_weights(load_model("owner/name", cache_dir=offline_hub, revision=" main "), tiny_model)
    _add_files(offline_hub, "owner/sub", {"sub/config.json": (folder / "config.json").read_bytes(),
                                          "sub/model.safetensors": (folder / "model.safetensors").read_bytes()})
    for typed in ("sub/model.safetensors", "sub\\model.safetensors", "/sub/model.safetensors"):
        assert _same_weights(load_model(f"owner/sub:{typed}", cache_dir=offline_hub), tiny_model)


def test_a_config_json_with_a_threshold_alone_takes_the_stored_ramp_and_floor(tiny_folder):
    """As the README says: a field config.json leaves out comes from the config stored with the weights."""
    import dataclasses

    stored = dataclasses.replace(load_model(tiny_folder).config, output="residual", correction_threshold=30.0,
                                 correction_ramp=16.0, correction_floor=0.2)
    save_pretrained(PHNet(stored), tiny_folder)
    (tiny_folder / "config.json").write_text(json.dumps({"correction_threshold": 12.0}))
    loaded = load_model(tiny_folder).config
    assert (loaded.correction_threshold, loaded.correction_ramp, loaded.correction_floor) == (12.0, 16.0, 0.2)


def test_push_to_hub_asks_for_a_public_repo_when_told_and_offline_advice_fits_the_command(fake_hub, tiny_model,
                                                                                        monkeypatch):
    Harmonizer(tiny_model, device="cpu").push_to_hub("org/open", private=False)
    assert [c for name, c in fake_hub if name == "create_repo"][0]["private"] is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="unset it, or run this again once online$"):
        W.check_upload("me/up", "hf_x", later="run this again once online")
    with pytest.raises(ValueError, match="upload later with python -m trainer.push FOLDER REPO$"):
        W.check_upload("me/up", "hf_x")


def test_a_config_is_checked_against_the_weights_before_a_model_of_it_is_built(tiny_config, tiny_model, tmp_path,
                                                                                 monkeypatch):
    """A config.json of absurd widths beside a 0.4 MB file built a model of 3.5 GB before the shapes were
    compared."""
    import dataclasses

    torch.save(tiny_model.state_dict(), tmp_path / "mine.pth")
    dataclasses.replace(tiny_config, enc_sizes=(3, *[512] * 6)).save(tmp_path / "config.json")
    built = []
    monkeypatch.setattr(W, "PHNet", lambda config: built.append(torch.empty(0).device.type) or PHNet(config))
    with pytest.raises(ValueError, match=r"do not fit this PHNet config \(\d+ with other shapes"):
        load_model(tmp_path)
    assert built == ["meta"]


@pytest.mark.parametrize("tensor", [torch.ones(16), torch.tensor(1.0)])
def test_another_network_s_tensors_under_phnet_s_names_are_named_as_such(tmp_path, tensor):
    torch.save({f"encoder.{i}.0.weight": tensor for i in range(6)}, tmp_path / "other_unet.pth")
    with pytest.raises(ValueError, match=r"not a PHNet state_dict \('encoder.0.0.weight' has shape"):
        load_model(tmp_path / "other_unet.pth")


def test_own_weights_saved_over_official_ones_do_not_keep_the_authors_terms(official_files, tiny_model, tmp_path):
    """save_pretrained into a folder that held converted official weights left their LICENSE-WEIGHTS.txt beside
    the user's own weights."""
    from phnet.weights import convert_official

    path, _ = official_files["iharmony"]
    out = tmp_path / "out"
    convert_official(path, out)
    save_pretrained(tiny_model, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_fp8_weights_load_and_save(tiny_model, tmp_path):
    """float8_e4m3fn (the fp8 ComfyUI converters write) has no isfinite kernel: loading and saving such weights
    failed with a raw NotImplementedError."""
    fp8 = torch.float8_e4m3fn
    saved = save_pretrained(tiny_model, tmp_path / "fp8", dtype=fp8)
    loaded = load_model(saved)
    for k, v in tiny_model.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(loaded.state_dict()[k], v.to(fp8).float()), k
    with torch.no_grad():
        next(tiny_model.parameters()).view(-1)[0] = 1000.0  # past fp8's 448: saturated there, said nothing
    with pytest.raises(ValueError, match="beyond what torch.float8_e4m3fn can store"):
        save_pretrained(tiny_model, tmp_path / "too-big", dtype=fp8)


def test_a_config_given_as_a_dict_is_refused_by_name(tiny_folder):
    """A config.json's dict gave "'dict' object has no attribute 'enc_sizes'"."""
    with pytest.raises(ValueError, match=r"config must be a phnet.PHNetConfig, got dict: .*dataclasses.replace"):
        load_model(tiny_folder, config={"correction_threshold": 0})


def test_save_pretrained_given_a_file_is_told_it_writes_a_folder(tiny_model, tmp_path):
    """A name like weights.safetensors became a folder of that name; an existing file, a bare FileExistsError."""
    (tmp_path / "taken.txt").write_text("x")
    for target in (tmp_path / "weights.safetensors", tmp_path / "taken.txt"):
        with pytest.raises(ValueError, match="save_pretrained writes a folder .*: give a folder"):
            save_pretrained(tiny_model, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]


def test_a_preset_given_to_convert_a_file_that_stores_its_config_checks_it_and_keeps_the_file_s(tiny_config,
                                                                                               tmp_path, monkeypatch):
    """`phnet convert FILE.safetensors --config PRESET` put the preset in place of the stored config: weights
    trained at 1024 came out at the preset's size, their threshold and name dropped, and their licence left out."""
    import dataclasses

    from phnet.config import PRESETS
    from phnet.weights import convert_official

    monkeypatch.setitem(PRESETS, "tiny", tiny_config)
    stored = dataclasses.replace(tiny_config, image_size=1024, name="official-tiny", correction_threshold=12.0,
                                 output="residual")
    torch.manual_seed(0)
    source = save_pretrained(PHNet(stored), tmp_path / "official-tiny") / "model.safetensors"
    assert convert_official(source, tmp_path / "out", config="tiny").config == stored
    assert "CC BY-SA" in (tmp_path / "out" / "LICENSE-WEIGHTS.txt").read_text()
    with pytest.raises(ValueError, match=r"the preset 'iharmony' contradicts the config stored in .*enc_sizes.*"
                                         r"Leave the preset out: the file stores its config"):
        convert_official(source, tmp_path / "other", config="iharmony")


def test_a_licence_of_the_user_s_own_is_kept_where_official_terms_are_removed(official_files, tiny_model, tmp_path):
    """Saving or converting other weights into a folder deleted any LICENSE-WEIGHTS.txt there, the user's own
    terms too (the ones `phnet convert` tells them to add): only the official terms this library wrote go."""
    from phnet import official
    from phnet.weights import convert_official

    folder = save_pretrained(tiny_model, tmp_path / "mine")
    (folder / "LICENSE-WEIGHTS.txt").write_text("My own terms: CC BY 4.0\n")
    save_pretrained(tiny_model, folder)
    torch.save(tiny_model.state_dict(), tmp_path / "mine.pth")
    convert_official(tmp_path / "mine.pth", folder, overwrite=True)
    assert (folder / "LICENSE-WEIGHTS.txt").read_text() == "My own terms: CC BY 4.0\n"
    fetched = official.licence_text(official.OFFICIAL["official-ffhqh512"]).replace("https://", "https://mirror.")
    for terms in (fetched, W.OFFICIAL_TERMS + "\n"):  # a copy fetched by name (from another site), a conversion
        (folder / "LICENSE-WEIGHTS.txt").write_text(terms)
        save_pretrained(tiny_model, folder)
        assert not (folder / "LICENSE-WEIGHTS.txt").exists()


def test_convert_reads_a_pth_with_the_config_json_beside_it_as_loading_does(tiny_config, tmp_path):
    """load_model read a .pth with the config.json beside it, convert_official ignored it: residual weights
    trained at 96 px were converted as official ones (output 'image', 512 px), with a warning advising the very
    folder the user had."""
    import dataclasses
    import warnings

    from phnet.weights import convert_official

    config = dataclasses.replace(tiny_config, output="residual", image_size=96)
    torch.manual_seed(0)
    torch.save(PHNet(config).state_dict(), tmp_path / "trained.pth")
    config.save(tmp_path / "config.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converted = convert_official(tmp_path / "trained.pth", tmp_path / "out")
    assert converted.config == load_model(tmp_path / "trained.pth").config == config
    assert load_model(tmp_path / "out").config == config


def test_a_full_disk_while_saving_is_one_os_error_naming_the_folder(tiny_model, tmp_path, monkeypatch):
    """safetensors' own error (a Rust traceback, no OSError) reached the user: the CLI, the nodes and the official
    weights' conversion met it with no word of their own."""
    import errno

    import safetensors
    import safetensors.torch

    for said in ("Error while serializing: I/O error: No space left on device (os error 28)",  # 0.5 on
                 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left" })'):
        def full(*args, said=said, **kwargs):
            raise safetensors.SafetensorError(said)

        monkeypatch.setattr(safetensors.torch, "save_file", full)
        with pytest.raises(OSError) as e:
            save_pretrained(tiny_model, tmp_path / "m")
        assert e.value.errno == errno.ENOSPC and e.value.strerror == "No space left on device"
        assert e.value.filename == str(tmp_path / "m" / "model.safetensors")
        assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_weights_linked_to_nothing_are_named_with_their_missing_target(tiny_folder, tmp_path):
    """A folder whose model.safetensors links to nothing 'held no model.safetensors (found nothing)', and such a
    file given itself was 'not found'."""
    folder = tmp_path / "m2"
    folder.mkdir()
    shutil.copy(tiny_folder / "config.json", folder / "config.json")
    gone = tmp_path / "drive" / "model.safetensors"
    (folder / "model.safetensors").symlink_to(gone)
    with pytest.raises(FileNotFoundError) as e:
        load_model(folder)
    assert str(e.value) == (f"{folder / 'model.safetensors'} links to {gone}, which does not exist (an unmounted "
                            "drive?): connect it, or give other weights")
    with pytest.raises(FileNotFoundError) as e:
        load_model(folder / "model.safetensors")
    assert str(e.value) == (f"PHNet weights {folder / 'model.safetensors'} links to {gone}, which does not exist (an "
                            "unmounted drive?): connect it, or give another file or folder")


def test_the_harmonizers_save_and_push_show_the_options_of_the_functions_they_call(tiny_model, tmp_path):
    """Harmonizer.push_to_hub took **kwargs (an editor showed none of its options) and save_pretrained had no dtype."""
    import inspect

    def keywords(function):
        return {name: (p.default, p.kind) for name, p in inspect.signature(function).parameters.items()
                if p.kind == p.KEYWORD_ONLY}

    assert keywords(Harmonizer.push_to_hub) == keywords(W.push_to_hub)
    assert keywords(Harmonizer.save_pretrained) == keywords(W.save_pretrained)
    for method in (Harmonizer.push_to_hub, Harmonizer.save_pretrained, Harmonizer.model, Harmonizer.config):
        assert (method.__doc__ or "").strip()
    folder = Harmonizer(tiny_model, device="cpu").save_pretrained(tmp_path / "half", dtype="fp16")
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} - {torch.int64} == {torch.float16}  # (batch counts stay)
