"""phnet.sam.loading: files, folders, the Hub cache, safety and clear errors."""

from __future__ import annotations

import re

import pytest
import torch

from phnet.sam import SamSegmenter, SeveralCheckpoints
from phnet.sources import hub_command
from tests.helpers.tiny_sam import build_tiny_sam, has_tiny_sam_weights, save_tiny_sam


class NotATensor:
    """Pickled into a .pth to check that arbitrary objects are refused."""


@pytest.mark.parametrize("fmt,name", [("safetensors", "tiny.safetensors"), ("pth", "tiny.pth")])
def test_load_file_formats(tmp_path, fmt, name):
    path = save_tiny_sam(tmp_path / name, fmt=fmt)
    seg = SamSegmenter.from_pretrained(path, device="cpu")
    assert has_tiny_sam_weights(seg.model)
    assert seg.model_type == "custom"
    assert str(seg.device) == "cpu"


def test_loading_sam_leaves_the_callers_random_numbers_as_they_were(tiny_path):
    """SAM's random start, overwritten by the weights, drew from torch's global generator: a seeded caller's random
    numbers changed with a load."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    SamSegmenter.from_pretrained(tiny_path, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_pth_is_loaded_weights_only(tmp_path, monkeypatch):
    path = save_tiny_sam(tmp_path / "tiny.pth")
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    SamSegmenter.from_pretrained(path, device="cpu")
    assert seen.get("weights_only") is True


def test_load_wrapped_state_dict(tmp_path):
    state = build_tiny_sam().state_dict()
    wrapped = {"module." + k: v for k, v in state.items()}
    wrapped["module.pixel_mean"] = torch.zeros(3, 1, 1)  # stored by some conversions; ignored
    torch.save({"model": wrapped}, tmp_path / "wrapped.pth")
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(tmp_path / "wrapped.pth", device="cpu").model)
    from safetensors.torch import save_file  # a DDP model saved as safetensors: the same prefix

    save_file({k: v.contiguous() for k, v in wrapped.items()}, str(tmp_path / "wrapped.safetensors"))
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(tmp_path / "wrapped.safetensors", device="cpu").model)


@pytest.mark.parametrize("prefix", ["model.", "sam."])
def test_a_sam_saved_inside_a_wrapper_module_loads(tmp_path, prefix):
    """A Lightning module's ``model.`` (or a ``sam.`` attribute) before every name, in a file or a state_dict
    wrapper: it was refused as 'not a Segment Anything state_dict'."""
    state = {prefix + k: v for k, v in build_tiny_sam().state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "lightning.ckpt")
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(tmp_path / "lightning.ckpt", device="cpu").model)


def test_load_from_folder(tmp_path):
    save_tiny_sam(tmp_path / "sam_tiny.safetensors")
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(tmp_path, device="cpu").model)
    # a .pth twin of the same weights: the safetensors file is preferred
    save_tiny_sam(tmp_path / "sam_tiny.pth")
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(str(tmp_path), device="cpu").model)


def test_a_folder_s_hidden_files_are_not_checkpoints(tmp_path):
    save_tiny_sam(tmp_path / "sam_tiny.safetensors")
    (tmp_path / "._sam_tiny.safetensors").write_bytes(b"\x00\x05\x16\x07" + bytes(100))  # a Mac's metadata twin
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "old.safetensors").write_bytes(b"")
    assert has_tiny_sam_weights(SamSegmenter.from_pretrained(tmp_path, device="cpu").model)


def test_folder_with_several_checkpoints_needs_filename(tmp_path):
    save_tiny_sam(tmp_path / "a.safetensors")
    save_tiny_sam(tmp_path / "b.safetensors", seed=1)
    with pytest.raises(ValueError, match=r"several SAM checkpoints.*; choose one: name its file \(filename="):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")
    seg = SamSegmenter.from_pretrained(tmp_path, filename="a.safetensors", device="cpu")
    assert has_tiny_sam_weights(seg.model)


def test_a_safetensors_beside_another_sams_pth_is_no_twin(tmp_path):
    """models/sams with sam_vit_h's .pth and the template's sam-vit-base.safetensors loaded the latter in
    silence, as if it were the .pth's copy."""
    save_tiny_sam(tmp_path / "sam_vit_h_4b8939.pth")
    save_tiny_sam(tmp_path / "sam-vit-base.safetensors", seed=1)
    with pytest.raises(ValueError, match="several SAM checkpoints.*filename="):
        SamSegmenter.from_pretrained(tmp_path, device="cpu")


def test_a_model_type_picks_a_file_by_meta_s_names_too():
    from phnet.sam.loading import _pick_checkpoint

    names = ["sam-vit-base.safetensors", "sam-vit-huge.safetensors", "sam_vit_l_0b3195.pth"]
    assert _pick_checkpoint(names, "here", "vit_b") == "sam-vit-base.safetensors"
    assert _pick_checkpoint(names, "here", "vit_h") == "sam-vit-huge.safetensors"
    assert _pick_checkpoint(names, "here", "vit_l") == "sam_vit_l_0b3195.pth"


def test_a_model_type_picks_a_file_by_its_folder_s_name_too():
    """A repo of vit_b/model.safetensors and vit_h/model.safetensors was refused with model_type vit_b set, and
    told to set it."""
    from phnet.sam.loading import _pick_checkpoint

    names = ["vit_b/model.safetensors", "vit_h/model.safetensors", "sam-vit-large\\model.safetensors"]
    assert _pick_checkpoint(names, "here", "vit_b") == "vit_b/model.safetensors"
    assert _pick_checkpoint(names, "here", "vit-l") == "sam-vit-large\\model.safetensors"
    # a folder that names the type of several: the file's own name picks
    assert _pick_checkpoint(["vit_b_sams/sam_vit_b.pth", "vit_b_sams/sam_vit_h.pth"], "here", "vit_b") == (
        "vit_b_sams/sam_vit_b.pth")
    with pytest.raises(SeveralCheckpoints) as e:  # a model type already set is not advised again
        _pick_checkpoint(["vit_b/a.pth", "vit_b/b.pth"], "here", "vit_b")
    assert str(e.value) == ("several SAM checkpoints in here (model type vit_b does not tell them apart): "
                            "vit_b/a.pth, vit_b/b.pth; choose one: name its file (filename=)")
    assert e.value.choosing("set hub_filename").model_type == "vit_b"


def test_a_safetensors_twin_is_told_by_its_name_in_any_case_and_in_its_own_folder_only():
    """The .safetensors copy of a .pth (the same name, whatever the capitals) is the one loaded; the same name in
    another folder, or a third checkpoint beside the twins, is a choice to make."""
    from phnet.sam.loading import _pick_checkpoint

    assert _pick_checkpoint(["SAM_TINY.pth", "sam_tiny.SafeTensors"], "here", None) == "sam_tiny.SafeTensors"
    for names in (["vit_b/sam.safetensors", "vit_h/sam.pth"], ["sam.pth", "sam.safetensors", "other.pth"]):
        with pytest.raises(SeveralCheckpoints):
            _pick_checkpoint(names, "here", None)


def test_a_model_type_picks_a_file_by_its_own_name_in_a_folder_given_with_backslashes():
    """A Windows folder's listing names vit_b\\sam_vit_b.pth: the file's own name is what follows the backslash."""
    from phnet.sam.loading import _pick_checkpoint

    names = ["vit_b\\model.safetensors", "vit_b\\sam_vit_b_01ec64.pth"]
    assert _pick_checkpoint(names, "here", "vit_b") == "vit_b\\sam_vit_b_01ec64.pth"


def test_a_model_type_no_file_names_is_named_as_missing_not_as_several():
    """'Several checkpoints ... name its file' was the advice, and the named file was then refused as no vit_l."""
    from phnet.sam.loading import _pick_checkpoint

    with pytest.raises(FileNotFoundError) as e:
        _pick_checkpoint(["sam_vit_b_01ec64.safetensors", "sam-vit-huge.safetensors"], "here", "vit_l")
    assert str(e.value) == ("no SAM checkpoint in here is a vit_l (sam-vit-huge.safetensors, "
                            "sam_vit_b_01ec64.safetensors): choose the model type of one of them, or add a vit_l "
                            "checkpoint")
    with pytest.raises(SeveralCheckpoints):  # names that say no type: choosing a file is the way
        _pick_checkpoint(["mine.safetensors", "theirs.safetensors"], "here", "vit_l")
    with pytest.raises(SeveralCheckpoints):  # one name says another type, one none: that one may be the vit_l
        _pick_checkpoint(["sam_vit_b_01ec64.pth", "mine.safetensors"], "here", "vit_l")


def test_a_filename_beside_a_file_is_refused_not_ignored(tmp_path):
    """filename= was ignored without a word when the source was already a file."""
    path = save_tiny_sam(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match=r"is a file, and filename='other.safetensors' names a file inside a "
                                         r"folder or Hub repo: leave filename out"):
        SamSegmenter.from_pretrained(path, filename="other.safetensors", device="cpu")


def test_a_hub_repo_with_several_checkpoints_names_each_hosts_way_to_choose(tmp_path, monkeypatch):
    """'Pass filename=...' was the library's word: ComfyUI's field is hub_filename, the WebUI's owner/name:FILE."""
    cache = tmp_path / "hf"
    _fake_hub_cache(cache, "someone/sams", ["sam_vit_b.pth", "sam_vit_h.pth"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeveralCheckpoints, match=r"; choose one: name its file \(filename=\), or a model type") as e:
        SamSegmenter.from_pretrained("someone/sams", cache_dir=cache, device="cpu")
    assert str(e.value.choosing("set hub_filename")).endswith("; choose one: set hub_filename")  # a host's words


def _fake_hub_cache(cache_dir, repo_id, files, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay out the huggingface_hub cache by hand: models--o--n/{refs/main, snapshots/<rev>/...}."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    for name in files:
        save_tiny_sam(snap / name)
    return revision


def test_load_from_hub_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rev = _fake_hub_cache(tmp_path, "someone/tiny-sam", ["sam_tiny.safetensors"])
    seg = SamSegmenter.from_pretrained(
        "someone/tiny-sam", filename="sam_tiny.safetensors", cache_dir=tmp_path, device="cpu"
    )
    assert has_tiny_sam_weights(seg.model)
    # without filename the single checkpoint of the cached snapshot is found
    seg = SamSegmenter.from_pretrained("someone/tiny-sam", cache_dir=tmp_path, device="cpu")
    assert has_tiny_sam_weights(seg.model)
    # an explicit revision works too
    seg = SamSegmenter.from_pretrained(
        "someone/tiny-sam", filename="sam_tiny.safetensors", revision=rev, cache_dir=tmp_path, device="cpu"
    )
    assert has_tiny_sam_weights(seg.model)


def test_hub_not_cached_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE.*"
                                                + re.escape(hub_command("download"))):  # (hf from hub 0.34)
        SamSegmenter.from_pretrained("someone/missing", filename="sam.safetensors", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        SamSegmenter.from_pretrained("someone/missing", cache_dir=tmp_path, local_files_only=True)


def test_model_type_mismatch(tiny_path):
    with pytest.raises(ValueError, match="holds a custom SAM.*not the requested vit_b"):
        SamSegmenter.from_pretrained(tiny_path, model_type="vit_b")
    with pytest.raises(ValueError, match="unknown SAM model_type"):
        SamSegmenter.from_pretrained(tiny_path, model_type="vit_x")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        SamSegmenter.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        SamSegmenter.from_pretrained("models/sams/sam_vit_b_01ec64.pth")
    with pytest.raises(FileNotFoundError, match="no SAM checkpoint"):
        SamSegmenter.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found in folder"):
        SamSegmenter.from_pretrained(tmp_path, filename="x.pth")


def test_a_missing_name_that_is_no_hub_repo_is_named_as_a_missing_file(monkeypatch):
    """An owner/name path ending in a weights suffix of any case, or a text no repo id can be, is a file not
    found, never a Hub download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in ("sams/sam_vit_b.PTH", "sams/my sam"):
        with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
            SamSegmenter.from_pretrained(source)


def test_a_path_in_quotes_or_under_the_home_folder_loads(tmp_path, monkeypatch):
    """A path pasted with its quotes (Windows' Copy as path), or written from ~, is the file."""
    save_tiny_sam(tmp_path / "sam.safetensors")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    for source in (f'"{tmp_path / "sam.safetensors"}"', "~/sam.safetensors"):
        assert has_tiny_sam_weights(SamSegmenter.from_pretrained(source, device="cpu").model)


def test_corrupt_files(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="corrupt: download it again"):
        SamSegmenter.from_pretrained(tmp_path / "bad.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"not a zip or pickle")
    with pytest.raises(ValueError, match="corrupt: download it again"):
        SamSegmenter.from_pretrained(tmp_path / "bad.pth")
    full = save_tiny_sam(tmp_path / "full.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        SamSegmenter.from_pretrained(tmp_path / "truncated.pth")


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(1), "extra": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="pickled Python objects.*safetensors"):
        SamSegmenter.from_pretrained(tmp_path / "evil.pth")


def test_not_a_sam_state_dict(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a Segment Anything"):
        SamSegmenter.from_pretrained(tmp_path / "other.safetensors")
    state = {k: v.contiguous() for k, v in build_tiny_sam().state_dict().items()}
    state["mask_decoder.hf_token.weight"] = torch.zeros(1, 32)  # SAM-HQ style extra
    save_file(state, str(tmp_path / "hq.safetensors"))
    with pytest.raises(ValueError, match="unexpected mask_decoder.hf_token.weight.*not supported"):
        SamSegmenter.from_pretrained(tmp_path / "hq.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not contain a state_dict"):
        SamSegmenter.from_pretrained(tmp_path / "list.pth")
    (tmp_path / "weights.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported SAM checkpoint file type"):
        SamSegmenter.from_pretrained(tmp_path / "weights.onnx")


def test_a_checkpoint_with_a_tensor_of_size_zero_is_named(tmp_path):
    """A damaged or crafted file whose patch embedding had no channels ended in a bare ZeroDivisionError."""
    from safetensors.torch import load_file, save_file

    path = save_tiny_sam(tmp_path / "tiny.safetensors")
    state = load_file(path)
    state["image_encoder.patch_embed.proj.weight"] = torch.zeros(0, 3, 16, 16)
    save_file(state, path)
    with pytest.raises(ValueError, match="tiny.safetensors: not a supported SAM state_dict"):
        SamSegmenter.from_pretrained(path, device="cpu")


def test_a_checkpoint_whose_relative_tables_give_no_whole_heads_is_named(tmp_path):
    """A table wider than the embedding read as 0 heads: segment_anything's bare ZeroDivisionError."""
    from safetensors.torch import load_file, save_file

    path = save_tiny_sam(tmp_path / "tiny.safetensors")
    state = load_file(path)
    state["image_encoder.blocks.0.attn.rel_pos_h"] = torch.zeros(7, 64)
    save_file(state, path)
    with pytest.raises(ValueError, match="tiny.safetensors: not a supported SAM state_dict: .*rel_pos_h is 64 wide"):
        SamSegmenter.from_pretrained(path, device="cpu")
