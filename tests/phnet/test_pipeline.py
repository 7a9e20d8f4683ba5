"""Mode "full" step by step (phnet.pipeline): where a picture's full-resolution work runs, how many pictures share
a network call, the working-resolution mask, the batch's reads from the device, and applying a result."""

import numpy as np
import pytest
import torch

from phnet import Harmonizer
from phnet.pipeline import (apply_low, apply_to_box, estimate_batch, full_resolution_device, pictures_per_call,
                            pixels_of, prepare_low)
from tests.helpers.pictures import photo, subject_mask


def test_full_resolution_work_runs_where_asked(tiny_model):
    pixels = torch.zeros(8, 8, 3, dtype=torch.uint8)
    assert Harmonizer(tiny_model, device="cpu").full_resolution_on == "auto"
    for where in ("auto", "model", "input"):
        h = Harmonizer(tiny_model, device="cpu", full_resolution_on=where)
        assert full_resolution_device(h, pixels) == torch.device("cpu")
    h = Harmonizer(tiny_model, device="cpu", full_resolution_on="model")
    h.device = torch.device("cuda")  # what it would choose with the model on a GPU (not moved: none here)
    assert full_resolution_device(h, pixels) == torch.device("cuda")
    assert full_resolution_device(h, pixels.to(torch.uint16)) == torch.device("cpu")  # few uint16 kernels there
    h.full_resolution_on = "auto"
    assert full_resolution_device(h, pixels) == torch.device("cuda")
    h.full_resolution_on = "input"
    assert full_resolution_device(h, pixels) == torch.device("cpu")
    with pytest.raises(ValueError, match="full_resolution_on"):
        Harmonizer(tiny_model, device="cpu", full_resolution_on="gpu")


def test_network_batch_auto_is_one_on_the_cpu_and_bounded_by_memory_on_cuda(tiny_model):
    from phnet import pipeline as module

    pixels = torch.zeros(12, 8, 8, 3, dtype=torch.uint8)
    h = Harmonizer(tiny_model, device="cpu")
    assert h.network_batch == "auto" and pictures_per_call(h, pixels, 512) == 1
    assert pictures_per_call(Harmonizer(tiny_model, device="cpu", network_batch=5), pixels, 512) == 5
    h.device = torch.device("cuda")  # what it would choose with the model on a GPU (not moved: none here)
    assert pictures_per_call(h, pixels, 512) == module.CUDA_NETWORK_BATCH
    assert pictures_per_call(h, pixels, 1024) == 2  # the network's activations grow with the working size
    assert pictures_per_call(h, pixels, 2048) == 1
    big = torch.zeros(1, 1, 1, 3, dtype=torch.uint8).expand(3, 4320, 7680, 3)  # 8K: 100 MB a picture, on the GPU
    assert pictures_per_call(h, big, 512) == 1
    assert pictures_per_call(h, big[:, :1080, :1920], 512) == module.CUDA_NETWORK_BATCH
    four_k = big[:, :2160, :3840]  # 25 MB a picture: with its float mask (33 MB), 2 fit 128 MiB, not 5
    assert pictures_per_call(h, four_k, 512) == 2
    assert pictures_per_call(h, four_k, 512, torch.zeros(1, 1, 1, dtype=torch.uint8).expand(3, 2160, 3840)) == 4
    assert pictures_per_call(h, four_k, 512, torch.zeros(1, 1, 1, dtype=torch.float64).expand(3, 2160, 3840)) == 1
    h.full_resolution_on = "input"  # nothing waits on the GPU: the full batch
    assert pictures_per_call(h, big, 512) == module.CUDA_NETWORK_BATCH
    for bad in (0, -1, 2.0, True, "8", np.bool_(True), np.int64(0)):
        with pytest.raises(ValueError, match="network_batch must be a whole number >= 1 or 'auto'"):
            Harmonizer(tiny_model, device="cpu", network_batch=bad)
    assert Harmonizer(tiny_model, device="cpu", network_batch=np.int64(4)).network_batch == 4  # as working_size


def test_network_batch_auto_counts_a_pictures_own_working_pixels_wide_or_tall(tiny_model):
    """A 1:3 picture at 512 holds 296×888 working pixels, not 512×512: seven share a call, not eight."""
    from phnet import pipeline as module
    from phnet.fullres import working_shape

    h = Harmonizer(tiny_model, device="cpu", full_resolution_on="input")
    h.device = torch.device("cuda")  # what it would choose with the model on a GPU (not moved: none here)
    height, width = working_shape(100, 300, 512)
    expected = module.NETWORK_PIXELS // (height * width)
    assert expected < module.CUDA_NETWORK_BATCH
    wide = torch.zeros(8, 100, 300, 3, dtype=torch.uint8)
    assert pictures_per_call(h, wide, 512) == pictures_per_call(h, wide.transpose(1, 2), 512) == expected


def test_a_subject_too_small_for_the_working_size_keeps_its_largest_pixel(harmonizer):
    pixels = torch.from_numpy(photo(256, 256))
    mask = torch.zeros(256, 256)
    mask[100, 37] = 1.0  # one pixel: under half a working-size pixel's coverage
    low = prepare_low(harmonizer, pixels, 255.0, mask, 1.0, 64)
    where = low.mask[0, 0].nonzero()  # the working pixels it touches most, at its place
    assert 1 <= len(where) <= 2 and (where - torch.tensor([100 // 4, 37 // 4])).abs().max() <= 1
    assert low.mask[0, 0, 100 // 4, 37 // 4] == 1
    assert low.box == (100, 101, 37, 38)


def test_a_subject_rounded_away_at_the_working_size_is_placed_where_it_is_not_in_the_corner(harmonizer):
    """On a big picture a 1-px subject's coverage rounds to 0 at 8 bits: argmax of zeros put it at the top-left
    pixel, and the network matched the wrong place."""
    pixels = torch.zeros(3072, 3072, 3, dtype=torch.uint8)
    mask = torch.zeros(3072, 3072, dtype=torch.uint8)
    mask[1800, 2000] = 255
    low = prepare_low(harmonizer, pixels, 255.0, mask, 255.0, 64)
    assert (low.mask[0, 0] > 0).nonzero().tolist() == [[1800 * 64 // 3072, 2000 * 64 // 3072]]


def test_a_subject_rounded_away_lands_in_the_working_pixel_under_its_boxs_centre(harmonizer):
    """The working pixel is read from the centre of the box (end exclusive), row and column alike: a pixel on the
    last row and column of a working pixel stays in it, and two far specks are placed halfway between them."""
    pixels = torch.zeros(3072, 3072, 3, dtype=torch.uint8)  # 48 pixels to a working pixel at 64
    mask = torch.zeros(3072, 3072, dtype=torch.uint8)
    mask[40 * 48 - 1, 42 * 48 - 1] = 255
    low = prepare_low(harmonizer, pixels, 255.0, mask, 255.0, 64)
    assert (low.mask[0, 0] > 0).nonzero().tolist() == [[39, 41]] and low.mask[0, 0, 39, 41] == 1  # binary
    mask[:] = 0
    mask[100, 500] = mask[3000, 2500] = 255  # box rows 100..3001, columns 500..2501
    low = prepare_low(harmonizer, pixels, 255.0, mask, 255.0, 64)
    assert (low.mask[0, 0] > 0).nonzero().tolist() == [[3101 * 64 // 6144, 3001 * 64 // 6144]]
    mask[:] = 0
    mask[-1, -1] = 255  # the last row and column: the last working pixel
    low = prepare_low(harmonizer, pixels, 255.0, mask, 255.0, 64)
    assert (low.mask[0, 0] > 0).nonzero().tolist() == [[63, 63]]


@pytest.mark.parametrize("shape, speck", [((1200, 4800), (100, 3600)), ((4800, 1200), (3600, 100))])
def test_a_subject_rounded_away_in_a_wide_or_tall_picture_lands_under_its_boxs_centre(harmonizer, shape, speck):
    """The column is read across the picture's width and the row down its height: on a square picture either
    would do."""
    pixels = torch.zeros(*shape, 3, dtype=torch.uint8)
    mask = torch.zeros(shape, dtype=torch.uint8)
    mask[speck] = 255
    low = prepare_low(harmonizer, pixels, 255.0, mask, 255.0, 32)
    h, w = low.mask.shape[-2:]
    assert (low.mask[0, 0] > 0).nonzero().tolist() == [[speck[0] * h // shape[0], speck[1] * w // shape[1]]]


def test_a_subject_under_the_bar_everywhere_keeps_its_strongest_pixel_not_its_boxs_centre(harmonizer):
    """A 16-bit matte's faintest specks: a cluster and one pixel, each under the working mask's least bar (1e-6)
    at the working size. The subject is the cluster's working pixel, not the middle of the two."""
    pixels = torch.zeros(3072, 3072, 3, dtype=torch.uint8)  # 48 pixels to a working pixel at 64
    mask = torch.zeros(3072, 3072)
    mask[100:110, 100:110] = mask[3000, 3000] = 1 / 65535
    low = prepare_low(harmonizer, pixels, 255.0, mask, 1.0, 64)
    assert low.mask[0, 0].nonzero().tolist() == [[100 // 48, 100 // 48]]


def test_a_faint_subject_with_one_stronger_speck_is_its_region_not_one_pixel(harmonizer):
    """Half of the full-size mask's strongest value was the bar: one speck at 0.9, averaged away at the working
    size, left a subject at 0.3 one pixel, and the correction collapsed."""
    pixels = torch.from_numpy(photo(96, 96))
    faint = torch.from_numpy(subject_mask(96, 96)) * 0.3
    specked = faint.clone()
    specked[40, 40] = 0.9
    whole = prepare_low(harmonizer, pixels, 255.0, faint, 1.0, 32).mask
    assert whole.sum() > 10 and torch.equal(prepare_low(harmonizer, pixels, 255.0, specked, 1.0, 32).mask, whole)


@pytest.mark.parametrize("level", [0.49, 0.3])
def test_a_soft_mask_under_half_everywhere_is_its_region_not_one_pixel(harmonizer, level):
    """Read against half of full, a mask at 0.49 kept none of its subject: the network saw one pixel, and the
    picture barely moved while the report said it changed."""
    pixels = torch.from_numpy(photo(96, 96))
    mask = torch.from_numpy(subject_mask(96, 96))
    whole = prepare_low(harmonizer, pixels, 255.0, mask, 1.0, 32).mask
    soft = prepare_low(harmonizer, pixels, 255.0, mask * level, 1.0, 32).mask
    assert whole.sum() > 10 and torch.equal(soft, whole)


def test_a_batch_reads_back_from_the_device_once_per_picture_and_once_per_network_call(harmonizer):
    """On a GPU each read makes the host wait for the queued work: a picture's box is read once as it is
    prepared, the batch's reports once after the network, and applying the results reads nothing."""
    from tests.helpers.host_reads import HostReads

    pixels = torch.from_numpy(np.stack([photo(60, 90, seed) for seed in range(3)]))
    masks = torch.from_numpy(np.stack([subject_mask(60, 90)] * 3))
    masks[2] = 0
    masks[2, 30, 40] = 1  # vanishes at the working size
    with HostReads() as reads:
        lows = [prepare_low(harmonizer, p, 255.0, m, 1.0, 32) for p, m in zip(pixels, masks)]
    assert reads.count == 3
    with HostReads() as reads:
        outputs, found = estimate_batch(harmonizer, torch.cat([low.image for low in lows]),
                                        torch.cat([low.mask for low in lows]), threshold=0,
                                        as_change=True)
    assert reads.count == 1 and len(found) == 3
    threshold = (found[0].size + found[1].size) / 2  # one subject held back, one changed: still one read
    assert min(found[0].size, found[1].size) < threshold < max(found[0].size, found[1].size)
    with HostReads() as reads:
        _, held = estimate_batch(harmonizer, torch.cat([low.image for low in lows]),
                                 torch.cat([low.mask for low in lows]), threshold=threshold,
                                 as_change=True)
    assert reads.count == 1 and sorted(c.kept > 0 for c in held[:2]) == [False, True]
    bf16 = Harmonizer(harmonizer.model, device="cpu", dtype="bf16")  # its finiteness is read with the rest
    with HostReads() as reads:
        estimate_batch(bf16, torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows]),
                       threshold=0, as_change=True)
    assert reads.count == 1
    out = pixels.clone()
    with HostReads() as reads:
        for i, low in enumerate(lows):
            apply_low(harmonizer, pixels[i], 255.0, masks[i], 1.0, out[i], 1.0, low, outputs[i : i + 1],
                      as_change=True)
    assert reads.count == 0


def test_a_picture_held_back_in_a_shared_call_comes_back_as_no_change(harmonizer):
    """As changes, the pictures under the threshold in a call where another picture changes are 0, not what the
    network made of them: a clip's frame held back would otherwise carry a change into its neighbours."""
    pixels = torch.from_numpy(np.stack([photo(60, 90, seed) for seed in range(3)]))
    masks = torch.from_numpy(np.stack([subject_mask(60, 90)] * 3))
    lows = [prepare_low(harmonizer, p, 255.0, m, 1.0, 32) for p, m in zip(pixels, masks)]
    images, masks_low = torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows])
    _, found = estimate_batch(harmonizer, images, masks_low, threshold=0)
    sizes = sorted(c.size for c in found)
    changes, held = estimate_batch(harmonizer, images, masks_low, threshold=(sizes[0] + sizes[1]) / 2,
                                   as_change=True)
    assert [c.kept > 0 for c in held].count(False) == 1
    for change, c in zip(changes, held):
        assert bool(change.any()) == (c.kept > 0)


def test_pictures_converted_already_are_read_and_handed_back_in_the_callers_form():
    """A picture the caller's own pixels cannot stand for is converted once: its B×H×W×C floats (alpha last),
    its masks, and ``finish`` back to the caller's kind with the scene's pixels as they were."""
    from phnet.imageio import image_to_tensor

    rgba, mask = photo(32, 40, channels=4), subject_mask(32, 40)
    rgb, alpha, _ = converted = image_to_tensor(rgba)
    pixels, peak, masks, mask_peak, finish = pixels_of(None, mask, converted=converted)
    assert (peak, mask_peak) == (1.0, 1.0) and masks.shape == (1, 32, 40) and torch.equal(masks[0] > 0,
                                                                                           torch.from_numpy(mask > 0))
    assert torch.equal(pixels, torch.cat([rgb, alpha], 1).permute(0, 2, 3, 1))
    assert np.array_equal(finish(pixels), rgba)
    assert torch.equal(finish.returned(pixels), pixels[..., :3])
    out = pixels.clone()
    out[..., :3] = 0.5
    back = finish(out)
    inside = mask > 0
    assert np.array_equal(back[~inside], rgba[~inside]) and (back[inside][:, :3] == 128).all()
    assert np.array_equal(back[..., 3], rgba[..., 3])


@pytest.mark.parametrize("network_batch", [1, 3])
def test_the_change_filled_for_the_batch_gives_the_pixels_of_the_picture(tiny_model, network_batch):
    """Method "correction" takes the network's change filled outward from the whole batch's call; the
    same pixels as filling it from each picture when it is applied."""
    harmonizer = Harmonizer(tiny_model, device="cpu", dtype="fp32", network_batch=network_batch)
    pixels = torch.from_numpy(np.stack([photo(70, 110, seed) for seed in range(3)]))
    masks = torch.from_numpy(np.stack([subject_mask(70, 110, soft=True)] * 3))
    lows = [prepare_low(harmonizer, p, 255.0, m, 1.0, 64) for p, m in zip(pixels, masks)]
    images, masks_low = torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows])
    pictures, _ = estimate_batch(harmonizer, images, masks_low, threshold=0)
    changes, _ = estimate_batch(harmonizer, images, masks_low, threshold=0, as_change=True,
                                coverage=torch.cat([low.coverage for low in lows]))
    by_picture, by_change = pixels.clone(), pixels.clone()
    for i, low in enumerate(lows):
        apply_low(harmonizer, pixels[i], 255.0, masks[i], 1.0, by_picture[i], 1.0, low, pictures[i : i + 1])
        apply_low(harmonizer, pixels[i], 255.0, masks[i], 1.0, by_change[i], 1.0, low, changes[i : i + 1],
                  as_change=True)
    assert torch.equal(by_picture, by_change)
    # the call runs the network network_batch pictures at a time: one picture's run and three pictures' run may
    # differ in the last bit of a float (the CPU's convolution kernels are chosen per batch size), so by a level
    assert (harmonizer(pixels, masks.float(), threshold=0).int() - by_change.int()).abs().max() <= (network_batch < 3)


@pytest.mark.parametrize("as_change", [False, True])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_a_staged_picture_is_worked_on_in_its_subjects_box_alone(harmonizer, as_change, dtype):
    """What a picture copied to the GPU computes there and copies back: the subject's box of the result."""
    pixels = torch.from_numpy(photo(90, 150, channels=4))
    pixels, peak = (pixels, 255.0) if dtype == torch.uint8 else (pixels.float() / 255, 1.0)
    mask = torch.from_numpy(subject_mask(90, 150, soft=True))
    low = prepare_low(harmonizer, pixels, peak, mask, 1.0, 64)
    output, _ = estimate_batch(harmonizer, low.image, low.mask, threshold=0, as_change=as_change)
    whole = pixels.clone()
    apply_low(harmonizer, pixels, peak, mask, 1.0, whole, 0.8, low, output, as_change=as_change)
    r0, r1, c0, c1 = low.box
    box = apply_to_box(harmonizer, pixels, peak, mask, 1.0, 0.8, low, output, as_change=as_change)
    assert torch.equal(box, whole[r0:r1, c0:c1])
    assert not torch.equal(box, pixels[r0:r1, c0:c1])


def test_a_picture_prepared_elsewhere_needs_no_untouched_map_and_reads_its_background_from_its_mask(harmonizer):
    """``LowResolution.untouched`` is optional, as ``coverage`` is: a picture prepared without it is applied as
    one with it, and in a batch with pictures that have theirs its background is read from its mask alone."""
    from phnet.pipeline import LowResolution, untouched_of

    pixels = torch.from_numpy(photo(60, 90))
    mask = torch.from_numpy(subject_mask(60, 90))
    low = prepare_low(harmonizer, pixels, 255.0, mask, 1.0, 32)
    assert LowResolution(low.image, low.mask, low.box).untouched is None
    bare = LowResolution(low.image, low.mask, low.box, coverage=low.coverage)
    output, _ = estimate_batch(harmonizer, low.image, low.mask, threshold=0)
    out, out_bare = pixels.clone(), pixels.clone()
    apply_low(harmonizer, pixels, 255.0, mask, 1.0, out, 1.0, low, output)
    apply_low(harmonizer, pixels, 255.0, mask, 1.0, out_bare, 1.0, bare, output)
    assert torch.equal(out, out_bare) and not torch.equal(out, pixels)
    assert untouched_of([bare, bare]) is None
    assert torch.equal(untouched_of([low, low]), torch.cat([low.untouched, low.untouched]))
    mixed = untouched_of([low, bare])
    assert mixed.shape == (2, *low.untouched.shape[1:]) and mixed.dtype == torch.bool
    assert torch.equal(mixed[:1], low.untouched) and not mixed[1].any()
