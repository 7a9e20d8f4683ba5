"""The library on a CUDA GPU: the same results as on the CPU, the precision the policy picks, 16-bit
input and the official pipeline. Skipped where there is no GPU (see tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phnet import Harmonizer
from phnet.pipeline import apply_low, estimate_batch, full_resolution_device, pictures_per_call, prepare_low

pytestmark = pytest.mark.cuda


def _picture(height=300, width=420, dtype=np.uint8):
    """A smooth photo-like picture with fine grain. Uniform noise is no photo: a tiny random network
    magnifies the 8-bit rounding by which the host's and the GPU's downscales differ (up to 6/255 at
    1200×1700, where a smooth picture stays within 1/255)."""
    from benchmarks.pipeline_speed import photo

    image = photo(height, width)
    if dtype == np.uint16:
        image = image.astype(np.uint16) * 257
    mask = np.zeros((height, width), np.float32)
    mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1
    return image, mask


@pytest.fixture(autouse=True)
def full_fp32():
    """The GPU against the CPU in fp32: cuDNN would otherwise run fp32 convolutions in TF32 (torch's default),
    which put the official-mode comparison at exactly its 1/255 limit in an emulation."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture()
def pair(tiny_model):
    import copy

    return (Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32"),
            Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gpu_and_cpu_agree_and_the_background_is_untouched(pair, dtype):
    gpu, cpu = pair
    image, mask = _picture(dtype=dtype)
    a, b = gpu(image, mask), cpu(image, mask)
    assert a.dtype == image.dtype and np.array_equal(a[mask == 0], image[mask == 0])
    unit = 257 if dtype == np.uint16 else 1
    assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= unit


@pytest.mark.parametrize("mode", ["full", "official"])
@pytest.mark.parametrize("channels", [3, 4])
def test_torch_input_on_the_gpu_comes_back_on_the_gpu(pair, mode, channels):
    gpu, _ = pair
    image, mask = _picture()
    if channels == 4:
        image = np.concatenate([image, image[..., :1]], axis=-1)
    t = torch.from_numpy(image).cuda()[None].float() / 255
    out = gpu(t, torch.from_numpy(mask).cuda(), layout="BHWC", mode=mode)
    assert out.device.type == "cuda" and out.shape == t.shape
    if channels == 4:  # alpha is carried through (the official mode's joined it on the host, and failed)
        assert torch.equal(out[..., 3], t[..., 3])


def test_auto_is_fp32_on_gpus(tiny_model):
    assert Harmonizer(tiny_model, device="cuda").dtype == torch.float32


def test_the_official_pipeline_and_frames_run_on_the_gpu(pair):
    gpu, cpu = pair
    image, mask = _picture()
    a, b = gpu(image, mask, mode="official"), cpu(image, mask, mode="official")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    frames = np.stack([image, image[::-1].copy()])
    assert gpu(frames, mask, temporal=True).shape == frames.shape


@pytest.mark.parametrize("kind", ["uint8", "float", "frames"])
def test_full_resolution_work_on_the_gpu_is_the_work_on_the_host(tiny_model, kind):
    import copy

    on_model = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32")
    on_input = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32", full_resolution_on="input")
    assert full_resolution_device(on_model, torch.zeros(1)).type == "cuda"  # "auto" works on the GPU
    image, mask = _picture(1200, 1700)  # large enough for the banded downscale
    options = {}
    if kind == "float":  # a ComfyUI IMAGE: B×H×W×C float32 on the host
        image = torch.from_numpy(image)[None].float() / 255
    if kind == "frames":
        image, options = np.stack([image, image[::-1].copy()]), {"temporal": True}
    a, b = on_model(image, mask, **options), on_input(image, mask, **options)
    if kind == "float":
        assert a.device.type == "cpu"
        outside = torch.from_numpy(mask == 0)
        assert torch.equal(a[:, outside], image[:, outside])
        a, b = (a * 255).numpy(), (b * 255).numpy()
    else:
        assert np.array_equal(a[..., mask == 0, :], image[..., mask == 0, :])
    assert np.abs(a.astype(np.float64) - b.astype(np.float64)).max() <= 1


def test_cuda_graphs_give_the_eager_pictures(tiny_model):
    import copy

    eager = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32")
    graphed = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32", cuda_graphs=True)
    image, mask = _picture()
    for flip in (False, True, False):
        picture = image[::-1].copy() if flip else image
        a, b = graphed(picture, mask, threshold=0), eager(picture, mask, threshold=0)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert graphed._graphs.captures == 1
    frames = np.stack([image, image[::-1].copy()])
    assert graphed(frames, mask, temporal=True).shape == frames.shape


@pytest.mark.parametrize("graphs", [False, True])
def test_pictures_sharing_a_network_call_on_the_gpu_come_out_as_one_at_a_time(tiny_model, graphs):
    import copy

    image, mask = _picture()
    frames = np.stack([image, image[::-1].copy(), image[:, ::-1].copy(), image // 2, image])
    one = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32", network_batch=1)
    shared = Harmonizer(copy.deepcopy(tiny_model), device="cuda", dtype="fp32", cuda_graphs=graphs)
    assert pictures_per_call(shared, torch.from_numpy(frames), 256) == 8
    for options in ({}, {"temporal": True}):
        a, b = shared(frames, mask, threshold=0, **options), one(frames, mask, threshold=0, **options)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("graphs", [False, True])
def test_the_gpu_waits_for_the_host_once_per_picture_and_once_per_network_call(tiny_model, graphs):
    """CUDA's own count of the operations that make the host wait (``set_sync_debug_mode``): a picture's box as
    it is prepared, the batch's reports after the network, nothing while the results are applied."""
    import warnings

    harmonizer = Harmonizer(tiny_model, device="cuda", dtype="fp32", cuda_graphs=graphs)
    image, mask = _picture()
    pixels = torch.from_numpy(np.stack([image, image[::-1].copy(), image // 2])).cuda()
    masks = torch.from_numpy(mask).cuda().expand(3, -1, -1)
    lows = [prepare_low(harmonizer, p, 255.0, m, 1.0, 64) for p, m in zip(pixels, masks)]  # warm-up (and capture)
    images, masks_low = torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows])
    outputs, _ = estimate_batch(harmonizer, images, masks_low, threshold=0, as_change=True)

    def waits(run) -> int:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchronizing" in str(w.message) for w in caught)

    assert waits(lambda: [prepare_low(harmonizer, p, 255.0, m, 1.0, 64) for p, m in zip(pixels, masks)]) == 3
    assert waits(lambda: estimate_batch(harmonizer, images, masks_low, threshold=0, as_change=True)) == 1
    out = pixels.clone()
    assert waits(lambda: [apply_low(harmonizer, pixels[i], 255.0, masks[i], 1.0, out[i], 1.0, low, outputs[i : i + 1],
                                    as_change=True) for i, low in enumerate(lows)]) == 0
