"""trainer.model: dead parameters, and one working size from the config to the checkpoint."""
from __future__ import annotations

import torch

from training_runs import tiny_cfg


def test_dead_modules_are_found_and_frozen():
    from phnet import PHNet, PHNetConfig

    from trainer.model import freeze_dead_parameters

    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32)).train()
    bn_before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    dead = freeze_dead_parameters(model, 32, torch.device("cpu"))
    assert "skip.6.rconv.weight" in dead and any(n.startswith("normalizers.2.") for n in dead)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in dead)
    assert all(p.grad is None for p in model.parameters()) and model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in bn_before.items())


def test_checkpoints_record_the_size_they_were_trained_at(shift_set, tmp_path):
    """data.image_size decides the working size, and the saved model says so (it used to keep model.image_size)."""
    from phnet.weights import load_model
    from trainer.config import model_config
    from trainer.fit import train

    cfg = tiny_cfg(shift_set, tmp_path / "run", steps=2, val_every=0, ckpt_every=0, batch_size=4)
    cfg["data"]["image_size"] = 16  # model.image_size stays 32 (tiny_cpu.toml)
    assert model_config(cfg).image_size == 16
    train(cfg, progress=False)
    for folder in ("best", "checkpoints/step-00000002"):
        assert load_model(str(tmp_path / "run" / folder)).config.image_size == 16
    # fine-tuning from those weights at another size records the new size
    cfg2 = tiny_cfg(shift_set, tmp_path / "tuned", steps=1, val_every=0, ckpt_every=0, batch_size=4)
    cfg2["model"]["init_from"] = str(tmp_path / "run" / "best")
    cfg2["data"]["image_size"] = 24
    train(cfg2, progress=False)
    assert load_model(str(tmp_path / "tuned" / "best")).config.image_size == 24


def test_weights_with_a_do_no_harm_threshold_are_trained_without_it(tmp_path, capsys):
    """A threshold scales the correction, and its gradient, down (to zero with floor 0): a fine-tune of
    calibrated weights (the bundled default) trains the raw network and says so."""
    import dataclasses

    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from trainer.model import build_model

    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                         output="residual", correction_threshold=60.0, correction_ramp=4.0, correction_floor=0.25)
    save_pretrained(PHNet(config), tmp_path / "calibrated")
    cfg = {"model": {"init_from": str(tmp_path / "calibrated")}, "data": {"image_size": 32}}
    model = build_model(cfg)
    assert (model.config.correction_threshold, model.config.correction_ramp, model.config.correction_floor) == (
        0.0, None, 0.0)
    assert dataclasses.replace(model.config, correction_threshold=60.0, correction_ramp=4.0,
                               correction_floor=0.25, name=config.name) == config
    assert "training without its do-no-harm threshold (60" in capsys.readouterr().err
    image = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    for net, gradient in ((PHNet(dataclasses.replace(config, correction_floor=0.0)), "none"), (model, "some")):
        net.load_state_dict(model.state_dict())
        net(image, mask).square().mean().backward()  # the proposed change is far below 60: the gate shuts
        total = sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None)
        assert (total > 0) == (gradient == "some")


def test_weights_trained_on_from_official_ones_are_named_so_and_their_card_keeps_the_authors_terms(tmp_path):
    """A fine-tune kept the name official-ffhqh256: the official-weights hint was hidden, and the uploaded card
    carried neither where the weights came from nor the official weights' terms."""
    from phnet import PHNet, PHNetConfig
    from phnet.corrections import weights_hint
    from phnet.sources import AUTHORS_TERMS
    from phnet.weights import model_card, save_pretrained
    from trainer.model import build_model

    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                         name="official-ffhqh256")
    save_pretrained(PHNet(config), tmp_path / "official")
    model = build_model({"model": {"init_from": str(tmp_path / "official")}, "data": {"image_size": 32}})
    assert model.config.name == "finetuned-official-ffhqh256"
    assert weights_hint(model.config.name, "try the official weights") is not None
    card = model_card(model.config)
    assert "Fine-tuned from the official checkpoint `official-ffhqh256`" in card and AUTHORS_TERMS[:40] in card
    again = build_model({"model": {"init_from": str(save_pretrained(model, tmp_path / "tuned"))},
                         "data": {"image_size": 32}})
    assert again.config.name == "finetuned-official-ffhqh256"  # not finetuned- twice


def test_init_from_keeps_its_output_mapping_naming_only_one_the_config_asks_for(tmp_path, capsys):
    """With preset "" and no output the note said the config asked for PHNetConfig()'s default 'image'."""
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained
    from trainer.model import build_model

    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                         output="residual")
    save_pretrained(PHNet(config), tmp_path / "residual")
    for model_table, noted in (({}, False), ({"output": "image"}, True), ({"preset": "iharmony"}, True)):
        cfg = {"model": {"preset": "", "init_from": str(tmp_path / "residual"), **model_table},
               "data": {"image_size": 32}}
        assert build_model(cfg).config.output == "residual"
        err = capsys.readouterr().err
        assert ("keeping its output mapping 'residual' (the config asks for 'image';" in err) == noted, model_table
