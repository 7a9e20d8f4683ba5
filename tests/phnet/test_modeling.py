"""The network against the documented official architecture and hand-written per-patch formulas."""

import pytest
import torch

from phnet import PHNet, PHNetConfig
from phnet.modeling import PatchColorTransfer, PatchFeatureExtractor, PatchNormalization, SqueezeExcitationGate
from phnet.modeling.inference import InferencePHNet
from phnet.modeling.oracle import OraclePHNet, pn_forward, transfer_forward

SUBMODULE_PARAMS = {
    "iharmony": dict(feature_extractor=167, encoder=1_816_816, normalizers=3_915, decoder=1_817_203, skip=6_290_082,
                     SE_block=66_112),
    "ffhqh": dict(feature_extractor=167, encoder=7_253_712, normalizers=3_965, decoder=7_254_483, skip=25_146_018,
                  SE_block=263_296),
}


@pytest.mark.parametrize("name, total, keys", [("iharmony", 9_994_295, 77), ("ffhqh", 39_921_641, 85)])
def test_parameter_counts_and_key_count(name, total, keys):
    model = PHNet(PHNetConfig.preset(name))
    assert sum(p.numel() for p in model.parameters()) == total
    assert len(model.state_dict()) == keys
    for child, count in SUBMODULE_PARAMS[name].items():
        assert sum(p.numel() for p in getattr(model, child).parameters()) == count, child


def official_key_layout(enc, grids):
    """The official state_dict layout, written out from the reference notes (names → shapes)."""
    dec = enc[::-1]
    layout = {
        "feature_extractor.patch_harmonizer.grid_weights": (2,),
        "feature_extractor.head.0.weight": (3, 6, 3, 3),
        "feature_extractor.head.0.bias": (3,),
    }
    for i in range(6):
        k = 4 if i % 2 == 0 else 3
        layout[f"encoder.{i}.0.weight"] = (enc[i + 1], enc[i], k, k)
        layout[f"encoder.{i}.0.bias"] = (enc[i + 1],)
    start = 7 - len(grids)
    for j, g in enumerate(grids):
        c = dec[start + j]
        layout[f"normalizers.{j}.weights"] = (2,)
        for name in ("fg_var", "fg_bias", "patched_fg_var", "patched_fg_bias", "bg_var", "bg_bias"):
            layout[f"normalizers.{j}.{name}"] = (1, c, 1, 1)
        layout[f"normalizers.{j}.grid_weights"] = (1, c, g, g)
    for i in range(6):
        c_out = dec[i + 1] if i < 5 else 3
        k = 3 if i % 2 == 0 else 4
        layout[f"decoder.{i}.0.weight"] = (dec[i], c_out, k, k)
        layout[f"decoder.{i}.0.bias"] = (c_out,)
        if i < 3:
            for name in ("weight", "bias", "running_mean", "running_var"):
                layout[f"decoder.{i}.1.{name}"] = (c_out,)
            layout[f"decoder.{i}.1.num_batches_tracked"] = ()
    for i, c in enumerate(dec):
        layout[f"skip.{i}.rconv.weight"] = (c, 2 * c, 3, 3)
    c = enc[6]
    layout.update({
        "SE_block.fc.0.weight": (c // 8, c), "SE_block.fc.0.bias": (c // 8,),
        "SE_block.fc.2.weight": (c, c // 8), "SE_block.fc.2.bias": (c,),
    })
    return layout


@pytest.mark.parametrize("name", ["iharmony", "ffhqh"])
def test_state_dict_equals_the_official_layout(name):
    config = PHNetConfig.preset(name)
    ours = {k: tuple(v.shape) for k, v in PHNet(config).state_dict().items()}
    assert ours == official_key_layout(config.enc_sizes, config.grid_counts)


def test_last_pn_block_and_last_skip_never_run(tiny_config):
    model = PHNet(tiny_config).eval()
    called = set()
    for name, module in model.named_modules():
        if name.startswith(("normalizers.", "skip.")) and name.count(".") == 1:
            module.register_forward_hook(lambda m, i, o, name=name: called.add(name))
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:20] = 1
    model(x, m)
    assert called == {"normalizers.0", "normalizers.1", *(f"skip.{i}" for i in range(6))}


# ------------------------------------------------------------------------------------------------
# The vectorised blocks against the per-patch formulas (phnet.modeling.oracle).


def perturb(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("shape, grid", [((2, 5, 20, 30), 4), ((1, 3, 17, 23), 5), ((1, 4, 6, 6), 10)])
def test_pn_block_matches_the_per_patch_formula(shape, grid):
    torch.manual_seed(1)
    block = PatchNormalization(shape[1], grid)
    perturb(block)
    x = torch.randn(shape)
    m = torch.zeros(shape[0], 1, *shape[2:])
    m[..., 2 : shape[2] // 2 + 2, 3 : shape[3] // 2 + 1] = 1
    torch.testing.assert_close(block(x, m), pn_forward(block, x, m), rtol=1e-5, atol=1e-5)


def test_pn_block_on_hand_computed_values():
    # one channel, 2×2 image: foreground {1, 3}, background {5, 9}; identity affine parameters
    block = PatchNormalization(1, 1, init_weights=(1.0, 0.0), init_value=1.0, eps=0.0)
    x = torch.tensor([[[[1.0, 5.0], [3.0, 9.0]]]])
    m = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    out = block(x, m)
    # fg re-styled to background statistics: (x - 2)/1 * 2 + 7 → {5, 9}; bg standardised → {-1, 1}
    torch.testing.assert_close(out, torch.tensor([[[[5.0, -1.0], [9.0, 1.0]]]]))


def test_feature_extractor_transfer_matches_the_per_patch_formula():
    torch.manual_seed(2)
    block = PatchColorTransfer(5)
    perturb(block)
    image = torch.rand(2, 3, 33, 41)
    m = (torch.rand(2, 1, 33, 41) > 0.6).float()
    fg, bg = image * m, image * (1 - m)
    torch.testing.assert_close(block(fg, bg), transfer_forward(block, fg, bg), rtol=1e-5, atol=1e-5)


def test_feature_extractor_head_sees_the_transfer_inside_and_bg_over_255_outside():
    torch.manual_seed(3)
    pfe = PatchFeatureExtractor(3)
    image = torch.rand(1, 3, 24, 24)
    m = torch.zeros(1, 1, 24, 24)
    m[..., 6:18, 4:14] = 1
    fg, bg = image * m, image * (1 - m)
    head_input = torch.cat([fg, transfer_forward(pfe.patch_harmonizer, fg, bg) * m + bg / 255 * (1 - m)], 1)
    torch.testing.assert_close(pfe(image, m), pfe.head(head_input), rtol=1e-5, atol=1e-6)


def test_se_gate_adds_a_scalar_from_the_feature_map():
    gate = SqueezeExcitationGate(16, 8)
    x, features = torch.rand(2, 16, 4, 4), torch.rand(2, 3, 12, 12)
    q = torch.sigmoid(features.amax(dim=(2, 3)).mean(dim=1))[:, None, None, None]
    se = gate.fc(x.mean(dim=(2, 3)))[:, :, None, None]
    torch.testing.assert_close(gate(x, features), x * (se + q))


def test_reference_network_equals_the_vectorised_one(tiny_model):
    x, m = torch.rand(2, 3, 48, 40), torch.zeros(2, 1, 48, 40)
    m[0, :, 8:40, 10:30] = 1
    m[1, :, 0:20, 0:40] = 1
    with torch.no_grad():
        torch.testing.assert_close(OraclePHNet(tiny_model)(x, m), tiny_model(x, m), rtol=0, atol=1e-5)


def test_inference_network_equals_the_trained_one(tiny_config):
    torch.manual_seed(4)
    model = PHNet(tiny_config)
    perturb(model)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if "running_var" in name:
                buf.uniform_(0.5, 1.5)
            elif "running_mean" in name:
                buf.normal_(0, 0.2)
    model.eval()
    fast = InferencePHNet(model)
    x, m = torch.rand(2, 3, 40, 56), torch.zeros(2, 1, 40, 56)
    m[:, :, 8:32, 10:30] = 1
    with torch.no_grad():
        torch.testing.assert_close(fast(x, m), model(x, m), rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="inference only"):
        fast.train()


def test_residual_output_starts_as_the_identity(tiny_config):
    import dataclasses

    model = PHNet(dataclasses.replace(tiny_config, output="residual")).eval()
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    with torch.no_grad():
        torch.testing.assert_close(model(x, m), x)


def test_output_is_an_image_in_unit_range(tiny_model):
    x, m = torch.rand(2, 3, 48, 32), torch.zeros(2, 1, 48, 32)
    m[..., 10:30, 5:20] = 1
    with torch.no_grad():
        out = tiny_model(x, m)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_low_precision_keeps_statistics_in_fp32(tiny_model):
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    with torch.no_grad():
        ref = tiny_model(x, m)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tiny_model(x, m).float()
    assert (low - ref).abs().max() < 0.05


@pytest.mark.parametrize("shape", [(1, 3, 30, 32), (1, 4, 32, 32), (1, 3, 8, 8)])
def test_bad_shapes_are_named(tiny_model, shape):
    with pytest.raises(ValueError, match="divisible by 8|B×3×H×W|more than 8×8 pixels"):
        tiny_model(torch.rand(shape), torch.zeros(1, 1, *shape[2:]))


def test_integer_pictures_and_a_precision_the_weights_lack_are_named(tiny_model):
    """A uint8 composite, an integer mask, or a half composite for fp32 weights met torch's "Input type (unsigned
    char) and bias type (float) should be the same"; under autocast a half composite runs."""
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"float pictures and masks in 0..1 \(x.float\(\) / 255 for 0..255 ones, "
                                             r"mask.float\(\) for a 0/1 mask.*got a torch.uint8 composite"):
            tiny_model((x * 255).byte(), m)
        with pytest.raises(ValueError, match="got a torch.float32 composite, a torch.uint8 mask"):
            tiny_model.estimate(x, (m * 255).byte())
        with pytest.raises(ValueError, match="weights are torch.float32, got a torch.float16 composite.*autocast"):
            tiny_model(x.half(), m.half())
        assert tiny_model(x, m.bool()).shape == x.shape
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert tiny_model(x.bfloat16(), m).shape == x.shape


@pytest.mark.parametrize("output", ["image", "residual", "transform"])
def test_a_forward_pass_never_reads_a_value_back_to_the_host(tiny_config, output):
    """What lets a GPU run ahead of the host, and a CUDA graph capture the call."""
    import dataclasses

    from tests.helpers.host_reads import HostReads

    model = PHNet(dataclasses.replace(tiny_config, output=output))
    x, m = torch.rand(2, 3, 40, 56), torch.zeros(2, 1, 40, 56)
    m[:, :, 8:32, 10:30] = 1
    reference = torch.ones_like(m)
    with HostReads() as reads:
        model(x, m).float().mean().backward()  # training
        with torch.no_grad():
            InferencePHNet(model.eval()).estimate(x, m, reference, threshold=10.0)
    assert reads.count == 0


def test_the_change_is_computed_in_fp32_under_autocast():
    """In bf16 the residual change near 0 came in steps of 1/255 and one under half a step was 0: a bf16 training
    run validated every model as doing nothing."""
    from phnet.modeling.phnet import residual_change

    raw = torch.linspace(-0.02, 0.02, 101)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        change = residual_change(raw.bfloat16())
    assert change.dtype == torch.float32
    torch.testing.assert_close(change, residual_change(raw.bfloat16().float()), atol=1e-6, rtol=0)
    assert (change.abs() * 255 < 0.5).sum() >= 15 and change.nonzero().numel() == 100  # small, and not 0


def test_patch_normalization_keeps_the_variance_of_a_subject_whose_mean_is_far_above_its_spread():
    """The variance was expanded into one pass (Σx²r² − 2μΣxr² + μ²Σr²): with a mean of 5 and a spread of
    0.003 at 256², fp32 cancellation moved the block's output by 0.22 against float64."""
    from phnet.modeling.normalization import PatchNormalization

    torch.manual_seed(0)
    block = PatchNormalization(4, 4).eval()
    x = torch.randn(1, 4, 256, 256) * 0.003 + 5
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 64:192, 64:192] = 1
    exact = PatchNormalization(4, 4).double().eval()
    exact.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert (block(x, mask).double() - exact(x.double(), mask.double())).abs().max() < 1e-2


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_model_cast_whole_runs_in_its_precision(tiny_config, dtype):
    """The statistics' wrapper cast inputs to fp32 and returned fp32: .double() and .bfloat16() models failed
    at their next convolution ("expected dtype double for weight")."""
    torch.manual_seed(0)
    model = PHNet(tiny_config).eval()
    x, m = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    m[..., 16:48, 16:48] = 1
    with torch.no_grad():
        expected = model(x, m)
        got = model.to(dtype)(x.to(dtype), m.to(dtype))
    torch.testing.assert_close(got.float(), expected, atol=0.02 if dtype == torch.bfloat16 else 1e-5, rtol=0)


@pytest.mark.parametrize("output", ["image", "residual", "transform"])
def test_a_model_cast_to_float64_answers_in_float64(output):
    """A float64 reference run was rounded to fp32 at the very end (the sigmoid took .float())."""
    model = PHNet(PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=32,
                              output=output)).eval().double()
    mask = torch.ones(1, 1, 32, 32, dtype=torch.float64)
    mask[..., :8, :] = 0
    assert model(torch.rand(1, 3, 32, 32, dtype=torch.float64), mask)[0].dtype == torch.float64


@pytest.mark.parametrize("output", ["residual", "transform"])
def test_the_correction_s_size_passes_no_gradient(tiny_config, output):
    """The size only decides the share kept. Through it an untrained residual model's change of exactly 0 met
    sqrt's infinite slope: torch.compile's backward (which runs that branch) gave NaN in every gradient."""
    import dataclasses

    model = PHNet(dataclasses.replace(tiny_config, output=output)).train()
    x, m = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    out, size, kept = model.estimate(x, m, threshold=0)
    assert out.requires_grad and not size.requires_grad and not kept.requires_grad


def test_a_thin_reference_band_is_not_lost_at_the_lower_levels():
    """Halved by nearest sampling (even rows and columns), a band a pixel thick on odd rows vanished from every
    normalization block below the working size: the reference was ignored there, depending on where it lay."""
    from phnet.modeling.phnet import _halved_reference

    odd, even, wide = torch.zeros(3, 1, 1, 16, 20)
    odd[..., 7, 2:18] = 1
    even[..., 6, 2:18] = 1
    wide[..., 3:12, 5:15] = 0.5
    batch = torch.stack([odd, even, wide])[:, 0]
    halved = _halved_reference(batch)
    nearest = torch.nn.functional.interpolate(batch, scale_factor=0.5)
    assert nearest[0].amax() == 0 and halved[0, 0, 3, 1:9].eq(1).all()
    assert torch.equal(halved[1:], nearest[1:])  # where the nearest sample keeps some of it, nothing changes
    assert _halved_reference(torch.ones(1, 1, 15, 9)).shape == nearest[:1, :, :7, :4].shape


def test_a_new_pn_block_starts_from_the_official_initial_values():
    """Training from scratch starts where the official code does: the patch means mixed evenly (1/(G²·C) each),
    the affine scales at init_value, the shifts at 0."""
    block = PatchNormalization(3, 4, init_value=0.8)
    torch.testing.assert_close(block.grid_weights, torch.full((1, 3, 4, 4), 1 / 48))
    for name in ("fg_var", "patched_fg_var", "bg_var"):
        assert torch.equal(getattr(block, name), torch.full((1, 3, 1, 1), 0.8)), name
    for name in ("fg_bias", "patched_fg_bias", "bg_bias"):
        assert torch.equal(getattr(block, name), torch.zeros(1, 3, 1, 1)), name
    assert torch.equal(block.weights, torch.tensor([0.5, 0.5]))


def test_a_statistics_block_answers_in_its_picture_s_precision_whatever_the_mask_s():
    """Outside autocast the statistics come back in the precision of the features given, not of the mask."""
    x, m = torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.zeros(1, 1, 16, 16)
    m[..., 4:12, 4:12] = 1
    assert PatchNormalization(3, 2).double()(x, m).dtype == torch.float64
    assert PatchColorTransfer(2).double()(x * m.double(), x * (1 - m.double())).dtype == torch.float64
    assert PatchNormalization(3, 2)(x.float(), m.double()).dtype == torch.float32


def test_the_feature_extractor_s_map_keeps_the_picture_s_size():
    """The head is a 3×3 convolution padded by one pixel, as the official one: the map is the picture's size and
    its border pixels are read with the rest."""
    image, mask = torch.rand(2, 3, 12, 20), torch.zeros(2, 1, 12, 20)
    mask[..., 3:9, 5:15] = 1
    assert PatchFeatureExtractor(2)(image, mask).shape == (2, 3, 12, 20)


def test_a_residual_model_s_thresholded_output_stays_in_unit_range(tiny_config):
    """A residual change of up to ±1 added to a bright or dark subject leaves 0..1; the do-no-harm threshold's
    output is clamped as the picture it is."""
    import dataclasses

    model = PHNet(dataclasses.replace(tiny_config, output="residual", correction_threshold=1.0)).eval()
    x, m = torch.full((1, 3, 32, 32), 0.9), torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    for bias, bound in ((10.0, 1.0), (-10.0, 0.0)):
        with torch.no_grad():
            model.decoder[5][0].bias.fill_(bias)  # a change of about +1 or -1 everywhere
            out = model(x if bias > 0 else 1 - x, m)
        assert out.min() >= 0 and out.max() <= 1
        assert torch.allclose(out[m.bool().expand_as(out)], torch.tensor(bound), atol=1e-3)


def test_the_decoder_s_layers_are_leaky_but_the_last_whose_logits_are_left_whole(tiny_config):
    """As the official decoder: LeakyReLU after every layer but the last, whose output goes to the sigmoid (a
    negative logit darkens); the oracle shares the decoder, so only the architecture itself tells this."""
    model = PHNet(tiny_config)
    negative = -torch.ones(4)
    for i, layer in enumerate(model.decoder):
        expected = negative if i == 5 else negative * 0.01
        torch.testing.assert_close(layer[2](negative), expected)


def test_the_inference_network_s_folded_decoder_takes_no_gradient(tiny_config):
    """Its folded weights are constants: a call outside no_grad builds no graph through them."""
    fast = InferencePHNet(PHNet(tiny_config).eval())
    assert not any(p.requires_grad for p in fast.decoder.parameters())


def test_a_colour_transfer_given_a_reference_without_its_region_says_what_is_missing():
    """A reference image without the region it was cut from failed with AttributeError on None."""
    torch.manual_seed(0)
    fg, bg = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="region"):
        PatchColorTransfer(2)(fg, bg, bg)
    region = torch.ones(1, 1, 8, 8)
    assert PatchColorTransfer(2)(fg, bg, bg * region, region).shape == fg.shape


def test_a_colour_transfer_takes_the_reference_only_where_its_region_is():
    """Patches (and a picture) that the region does not reach keep the background's statistics."""
    torch.manual_seed(0)
    fg, bg, reference = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8) * 0.5
    transfer = PatchColorTransfer(2)
    alone = transfer(fg, bg)
    assert torch.equal(transfer(fg, bg, reference, torch.zeros(1, 1, 8, 8)), alone)
    region = torch.zeros(1, 1, 8, 8)
    region[..., :4, :4] = 1  # the top-left patch of four
    assert not torch.allclose(transfer(fg, bg, reference, region)[..., :4, :4], alone[..., :4, :4])
