"""phnet.sam.architecture: sizes read back from tensor shapes, presets, building."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch

from phnet.sam import SAM_PRESETS, SamArchitecture, build_sam, infer_sam_architecture
from tests.helpers.tiny_sam import TINY_SAM, build_tiny_sam


def test_infer_tiny_architecture():
    arch = infer_sam_architecture(build_tiny_sam().state_dict())
    assert arch.img_size == TINY_SAM["img_size"]
    assert arch.patch_size == TINY_SAM["patch_size"]
    assert arch.embed_dim == TINY_SAM["embed_dim"]
    assert arch.depth == TINY_SAM["depth"]
    assert arch.num_heads == TINY_SAM["num_heads"]
    assert arch.window_size == TINY_SAM["window_size"]
    assert arch.global_attn_indexes == TINY_SAM["global_attn_indexes"]
    assert arch.prompt_embed_dim == TINY_SAM["prompt_embed_dim"]
    assert arch.mask_in_chans == TINY_SAM["mask_in_chans"]
    assert arch.decoder_mlp_dim == TINY_SAM["decoder_mlp_dim"]
    assert arch.iou_head_hidden_dim == TINY_SAM["iou_head_hidden_dim"]
    assert arch.name == "custom"


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_infer_real_sizes(name):
    with torch.device("meta"):  # shapes only, no memory
        sam = build_sam(name)
    arch = infer_sam_architecture(sam.state_dict())
    assert arch == SAM_PRESETS[name]
    assert arch.name == name
    assert arch.img_size == 1024 and arch.window_size == 14


def test_overrides_set_what_the_weights_cannot_show():
    arch = infer_sam_architecture(build_tiny_sam().state_dict(), decoder_norm_eps=1e-6)
    assert arch.decoder_norm_eps == 1e-6
    assert arch.name == "custom"


def test_build_uses_the_norm_epsilons():
    # segment_anything's defaults unless the architecture says otherwise
    default = build_sam(infer_sam_architecture(build_tiny_sam().state_dict()))
    assert default.mask_decoder.transformer.layers[0].norm1.eps == 1e-5
    assert default.image_encoder.blocks[0].norm1.eps == 1e-6
    arch = SamArchitecture(
        **{**vars(infer_sam_architecture(build_tiny_sam().state_dict())),
           "encoder_norm_eps": 1e-4, "mask_embed_norm_eps": 1e-3, "decoder_norm_eps": 1e-6}
    )
    sam = build_sam(arch)
    assert sam.image_encoder.blocks[1].norm2.eps == 1e-4
    assert sam.prompt_encoder.mask_downscaling[4].eps == 1e-3
    assert {n.eps for b in sam.mask_decoder.transformer.layers for n in (b.norm1, b.norm2, b.norm3, b.norm4)} == {1e-6}


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown SAM model_type"):
        build_sam("vit_x")


def test_not_a_sam_state_dict():
    with pytest.raises(ValueError, match="not a Segment Anything"):
        infer_sam_architecture({"conv.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="SAM 2"):
        infer_sam_architecture({"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="SAM 2"):  # transformers' layout, its vision_encoder read as image_encoder
        infer_sam_architecture({"image_encoder.backbone.patch_embed.projection.weight": torch.zeros(2, 2)})


@pytest.mark.parametrize("width", [64, 5, 0])
def test_a_relative_table_that_does_not_split_the_embedding_into_heads_is_not_a_sam(width):
    # wider than the embedding read as 0 heads, and segment_anything divided by them
    state = build_tiny_sam().state_dict()
    state["image_encoder.blocks.0.attn.rel_pos_h"] = torch.zeros(7, width)
    with pytest.raises(ValueError, match=rf"^not a supported SAM state_dict: .*rel_pos_h is {width} wide, which does "
                                         rf"not split the embed dim {TINY_SAM['embed_dim']} into whole attention "
                                         r"heads"):
        infer_sam_architecture(state)


def test_an_mlp_width_whose_ratio_rounds_down_is_rebuilt_whole():
    """int(88 × 120/88) is 119 in floats: a custom SAM of those sizes was refused as not fitting itself."""
    from phnet.sam import build_sam, infer_sam_architecture
    from phnet.sam.architecture import SamArchitecture, mlp_ratio_for

    assert int(88 * (120 / 88)) == 119 and int(88 * mlp_ratio_for(120, 88)) == 120
    arch = SamArchitecture(embed_dim=88, depth=2, num_heads=2, global_attn_indexes=(1,), img_size=64, window_size=2,
                           mlp_ratio=mlp_ratio_for(120, 88), prompt_embed_dim=32, mask_in_chans=8, decoder_mlp_dim=64,
                           iou_head_hidden_dim=32)
    state = build_sam(arch).state_dict()
    assert state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] == 120
    build_sam(infer_sam_architecture(state)).load_state_dict(state)


def test_without_segment_anything_building_a_sam_names_the_pip_command_that_installs_it(monkeypatch):
    """Python's bare "No module named 'segment_anything'" came from inside the library, and the SAM Loader node and
    the WebUI showed it as it was (ComfyUI does not ship segment-anything)."""
    requirements = (Path(__file__).resolve().parents[3] / "requirements.txt").read_text().splitlines()
    bound = next(line for line in requirements if line.startswith("segment-anything"))
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # import raises as where it is not installed
    with pytest.raises(ImportError, match=r"^PHNet's Segment Anything needs the segment-anything package: ") as e:
        build_sam("vit_b")
    assert sys.executable in str(e.value)
    assert f' -m pip install "{bound}" (a node pack or an extension: install its requirements.txt)' in str(e.value)


@pytest.mark.parametrize("exe, os_name, command", [
    ("/home/me/my env/bin/python", "posix",
     """: '/home/me/my env/bin/python' -m pip install "segment-anything>=1.0" ("""),
    (r"C:\ComfyUI_windows_portable\python_embeded\python.exe", "nt",
     r': C:\ComfyUI_windows_portable\python_embeded\python.exe -m pip install "segment-anything>=1.0" ('),
    (r"C:\Program Files\Python311\python.exe", "nt",
     r""": & 'C:\Program Files\Python311\python.exe' -m pip install "segment-anything>=1.0" in PowerShell, """
     r'"C:\Program Files\Python311\python.exe" -m pip install "segment-anything>=1.0" in cmd.exe ('),
])
def test_the_pip_command_quotes_the_interpreter_only_where_it_must_and_runs_in_powershell(monkeypatch, exe, os_name,
                                                                                           command):
    from phnet.sam import architecture

    monkeypatch.setattr(sys, "executable", exe)
    monkeypatch.setattr(architecture, "os", types.SimpleNamespace(**{**vars(architecture.os), "name": os_name}))
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(ImportError) as e:
        architecture.import_segment_anything("modeling")
    assert command in str(e.value)


def test_a_package_segment_anything_needs_is_named_by_python(monkeypatch):
    """Only segment_anything itself missing is told how to install it: an error inside it is not renamed."""
    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == "segment_anything":
            raise ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match=r"^No module named 'torchvision'$"):
        build_sam("vit_b")
