"""Meta's transformers-layout SAM repos load into segment_anything's modules and compute the same thing.

A tiny transformers ``SamModel`` is saved with ``save_pretrained`` (config.json + model.safetensors),
loaded through ``SamSegmenter.from_pretrained`` and compared with transformers itself.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from phnet.sam import SamSegmenter
from phnet.sam.transformers_layout import architecture_from_config, convert_transformers_state_dict
from tests.helpers.tiny_sam import save_tiny_transformers_sam

transformers = pytest.importorskip("transformers", reason="the test extra installs transformers")
if not transformers.utils.is_torch_available():  # transformers 5 needs a newer torch than the oldest we support
    pytest.skip(f"transformers {transformers.__version__} does not use torch {torch.__version__}",
                allow_module_level=True)

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    return save_tiny_transformers_sam(tmp_path_factory.mktemp("sam-vit-tiny"))


def _image():
    return (np.random.RandomState(1).rand(64, 64, 3) * 255).astype(np.uint8)


def _reference_embedding(model, image):
    # transformers' own preprocessing (resize longest side, normalise, pad) at the tiny input size
    processor = transformers.SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    return model.get_image_embeddings(pixels)


PROMPTS = {
    "box": dict(input_boxes=torch.tensor([[[8.0, 10.0, 50.0, 40.0]]])),
    "points": dict(input_points=torch.tensor([[[[20.0, 30.0], [45.0, 12.0]]]]), input_labels=torch.tensor([[[1, 0]]])),
    "all": dict(
        input_points=torch.tensor([[[[20.0, 30.0]]]]),
        input_labels=torch.tensor([[[1]]]),
        input_boxes=torch.tensor([[[8.0, 10.0, 50.0, 40.0]]]),
        input_masks=torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
    ),
}


def _our_low_res_logits(sam, embedding, prompt, multimask):
    points = (prompt["input_points"][0], prompt["input_labels"][0]) if "input_points" in prompt else None
    boxes = prompt["input_boxes"][0] if "input_boxes" in prompt else None
    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=prompt.get("input_masks"))
    return sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


def _compare(seg, model):
    image = _image()
    seg.set_image(image)
    with torch.no_grad():
        reference = _reference_embedding(model, image)
        worst = {"embedding": (seg.image_embedding - reference).abs().max().item()}
        for name, prompt in PROMPTS.items():
            for multimask in (True, False):
                ours, our_iou = _our_low_res_logits(seg.model, seg.image_embedding, prompt, multimask)
                theirs = model(image_embeddings=reference, multimask_output=multimask, **prompt)
                assert ours.shape == theirs.pred_masks[0].shape
                worst[f"{name}/{multimask}"] = (ours - theirs.pred_masks[0]).abs().max().item()
                worst[f"{name}/{multimask}/iou"] = (our_iou - theirs.iou_scores[0]).abs().max().item()
    return worst


def test_same_embedding_and_logits_as_transformers(hub_folder):
    folder, model = hub_folder
    seg = SamSegmenter.from_pretrained(folder, device="cpu")
    assert seg.architecture == architecture_from_config(json.loads((folder / "config.json").read_text()))
    assert seg.architecture.decoder_norm_eps == 1e-6  # transformers' value, read from config.json
    worst = _compare(seg, model)
    assert max(worst.values()) <= TOLERANCE, worst
    # the outputs are not trivially small, so the tolerance means something
    assert seg.image_embedding.abs().max() > 0.5


def test_lone_model_safetensors_infers_sizes(hub_folder, tmp_path):
    # what a UI download into models/sams leaves: the weights file alone, under another name
    folder, model = hub_folder
    shutil.copy(folder / "model.safetensors", tmp_path / "sam-vit-tiny.safetensors")
    seg = SamSegmenter.from_pretrained(tmp_path / "sam-vit-tiny.safetensors", device="cpu")
    worst = _compare(seg, model)
    assert max(worst.values()) <= TOLERANCE, worst


def test_every_key_is_mapped(hub_folder):
    from safetensors.torch import load_file

    from phnet.sam import build_sam

    folder, _ = hub_folder
    seg = SamSegmenter.from_pretrained(folder, device="cpu")
    converted = convert_transformers_state_dict(load_file(str(folder / "model.safetensors")))
    assert set(converted) == set(build_sam(seg.architecture).state_dict())


def test_tied_positional_table_saved_twice(hub_folder, tmp_path):
    # older saves store prompt_encoder.shared_embedding.positional_embedding besides the shared one
    from safetensors.torch import load_file, save_file

    folder, model = hub_folder
    state = load_file(str(folder / "model.safetensors"))
    state["prompt_encoder.shared_embedding.positional_embedding"] = (
        state["shared_image_embedding.positional_embedding"].clone())
    save_file(state, str(tmp_path / "model.safetensors"))
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    seg = SamSegmenter.from_pretrained(tmp_path, device="cpu")
    assert max(_compare(seg, model).values()) <= TOLERANCE


def test_repo_folder_prefers_safetensors_and_refuses_pickled_layout(hub_folder, tmp_path):
    from safetensors.torch import load_file

    folder, _ = hub_folder
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, tmp_path / name)
    torch.save(load_file(str(folder / "model.safetensors")), tmp_path / "pytorch_model.bin")
    seg = SamSegmenter.from_pretrained(tmp_path, device="cpu")  # the Hub repos hold both files
    assert seg.architecture.embed_dim == 32
    with pytest.raises(ValueError, match="model.safetensors only"):
        SamSegmenter.from_pretrained(tmp_path / "pytorch_model.bin", device="cpu")


def test_a_file_saved_alone_into_a_shared_folder_ignores_another_models_config(hub_folder, tmp_path):
    """ComfyUI saves a download as models/sams/facebook--sam-vit-base--model.safetensors: a config.json another
    model left in that folder was applied to it (a SAM 2 one refused it)."""
    folder, model = hub_folder
    lone = tmp_path / "facebook--sam-vit-base--model.safetensors"
    shutil.copy(folder / "model.safetensors", lone)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam2_video"}))
    seg = SamSegmenter.from_pretrained(lone, device="cpu")  # sizes from the shapes
    assert max(_compare(seg, model).values()) <= TOLERANCE


def test_config_errors(hub_folder, tmp_path):
    folder, _ = hub_folder
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())

    config["model_type"] = "sam_hq"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json.*'sam_hq' model"):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")

    config["model_type"] = "sam"
    config["vision_config"]["hidden_act"] = "relu"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vision_config.hidden_act = 'relu'"):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")

    config["vision_config"]["hidden_act"] = "gelu"
    config["vision_config"]["num_hidden_layers"] = 3  # disagrees with the weights: named before a model is built
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not describe these weights \(depth 3 in it, 2 in the weights\)"):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")

    # sizes of 0, or absurd ones (which built a model of their own first): one message, before any model
    for where, key, value, words in (("vision_config", "hidden_size", 0, "vision_config.hidden_size = 0"),
                                     ("vision_config", "num_attention_heads", 0, "num_attention_heads = 0"),
                                     ("mask_decoder_config", "mlp_dim", 10**11, "decoder_mlp_dim 100000000000"),
                                     ("vision_config", "num_hidden_layers", 5000, "depth 5000 in it")):
        bad = json.loads((folder / "config.json").read_text())
        bad[where][key] = value
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=re.escape(words)):
            SamSegmenter.from_pretrained(tmp_path, device="cpu")


def test_meta_repo_configs_map_to_the_presets():
    # The size fields of facebook/sam-vit-base / -large / -huge (other fields take transformers' defaults).
    sizes = {
        "vit_b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
        "vit_l": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      global_attn_indexes=[5, 11, 17, 23]),
        "vit_h": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                      global_attn_indexes=[7, 15, 23, 31]),
    }
    for name, vision in sizes.items():
        arch = architecture_from_config({"model_type": "sam", "vision_config": vision})
        assert arch.name == name
        assert (arch.img_size, arch.window_size, arch.prompt_embed_dim, arch.decoder_mlp_dim) == (1024, 14, 256, 2048)


def _with_decoder_eps(folder, target, eps):
    """Copy the repo files to ``target`` with a recognisable decoder epsilon in config.json."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "model.safetensors", target / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["mask_decoder_config"]["layer_norm_eps"] = eps
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_config_json_beside_the_weights_is_read(hub_folder, tmp_path):
    folder, _ = hub_folder
    local = _with_decoder_eps(folder, tmp_path / "repo", 1e-7)
    for source in (local, local / "model.safetensors"):
        seg = SamSegmenter.from_pretrained(source, device="cpu")
        assert seg.architecture.decoder_norm_eps == 1e-7
        assert seg.model.mask_decoder.transformer.layers[1].norm3.eps == 1e-7


def test_meta_repo_from_the_hub_cache(hub_folder, tmp_path, monkeypatch):
    # the layout of facebook/sam-vit-base in the Hugging Face cache, read offline by repo id
    folder, _ = hub_folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--facebook--sam-vit-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = _with_decoder_eps(folder, repo / "snapshots" / revision, 1e-7)
    (snapshot / "tf_model.h5").write_bytes(b"not read")
    seg = SamSegmenter.from_pretrained("facebook/sam-vit-tiny", cache_dir=tmp_path, device="cpu")
    assert seg.architecture.decoder_norm_eps == 1e-7  # the config.json of the repo was used
    assert seg.architecture.embed_dim == 32


@pytest.mark.parametrize("local_files_only,offline_variable", [(True, None), (False, "1")])
def test_a_hub_file_in_a_subfolder_of_a_revision_takes_the_config_json_of_its_folder_and_revision(
        hub_folder, tmp_path, monkeypatch, local_files_only, offline_variable):
    """The config.json fetched is the one in the weights' own folder of the revision asked for, from the cache
    alone when local_files_only or HF_HUB_OFFLINE is set, whatever the weights file is called: a Hub stand-in
    holds three that differ by their decoder epsilon."""
    import huggingface_hub

    folder, _ = hub_folder
    if offline_variable is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_variable)
    pinned = "1" * 40
    weights = tmp_path / "weights" / "sam-tiny.safetensors"  # the repo's config.json is not beside the download
    weights.parent.mkdir()
    shutil.copy(folder / "model.safetensors", weights)
    served = {(pinned, "tiny/sam-tiny.safetensors"): weights,
              (pinned, "tiny/config.json"): _with_decoder_eps(folder, tmp_path / "pinned", 1e-7) / "config.json",
              (pinned, "config.json"): _with_decoder_eps(folder, tmp_path / "top", 1e-6) / "config.json",
              ("main", "tiny/config.json"): _with_decoder_eps(folder, tmp_path / "main", 1e-6) / "config.json"}
    asked = []

    def hub(repo_id, filename, *, revision=None, local_files_only=False, **_):
        asked.append(local_files_only)
        found = served.get((revision or "main", filename)) if repo_id == "someone/sams" else None
        if found is None:
            raise FileNotFoundError(filename)
        return str(found)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    seg = SamSegmenter.from_pretrained("someone/sams", filename="tiny/sam-tiny.safetensors", revision=pinned,
                                       cache_dir=tmp_path, local_files_only=local_files_only, device="cpu")
    assert seg.architecture.decoder_norm_eps == 1e-7
    assert asked == [True, True]


def test_another_models_config_json_beside_a_repos_model_safetensors_is_passed_over(hub_folder, tmp_path):
    """A folder's config.json of another kind of model leaves the sizes to the weights, with transformers'
    epsilons."""
    from phnet.sam.transformers_layout import TRANSFORMERS_NORM_EPS

    folder, model = hub_folder
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 3}))
    seg = SamSegmenter.from_pretrained(tmp_path, device="cpu")
    assert seg.architecture.embed_dim == 32
    for name, eps in TRANSFORMERS_NORM_EPS.items():
        assert getattr(seg.architecture, name) == eps
    assert max(_compare(seg, model).values()) <= TOLERANCE


def test_a_config_json_of_another_decoder_depth_is_named_before_a_model_is_built(hub_folder, tmp_path):
    folder, _ = hub_folder
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["mask_decoder_config"]["num_hidden_layers"] += 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not describe these weights \(decoder_depth 3 in it, 2 in the"):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")
