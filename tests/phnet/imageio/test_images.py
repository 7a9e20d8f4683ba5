"""phnet.imageio.images: images from PIL, numpy and torch in every layout to tensors in 0..1 and back, and the range
checks. Each rule of the package docstring is tested once, through every entry point that applies it."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import imageio as io_


def _all_image_entry_points():
    return {
        "image_to_tensor": lambda x: io_.image_to_tensor(x)[0],
        "image_to_array": lambda x: io_.image_to_array(x)[0],
        "image_to_bhwc": lambda x: io_.image_to_bhwc(torch.as_tensor(x)),
        "image_to_uint8": lambda x: io_.image_to_uint8(x),
    }


IMAGE_FNS = list(_all_image_entry_points().items())


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_float_image_in_0_255_is_refused_with_the_fix(name, fn):
    img = np.full((4, 6, 3), 200.0, np.float32)
    with pytest.raises(ValueError) as e:
        fn(img)
    msg = str(e.value)
    assert "0..1" in msg and "divide" in msg and "255" in msg


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_nan_image_is_refused(name, fn):
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((4, 6, 3), np.nan, np.float32))


@pytest.mark.parametrize("name,fn", IMAGE_FNS, ids=[n for n, _ in IMAGE_FNS])
def test_integer_ranges(name, fn):
    u8 = np.full((4, 6, 3), 255, np.uint8)
    u16 = np.full((4, 6, 3), 32768, np.uint16)
    out8, out16 = (np.asarray(fn(x), np.float64) for x in (u8, u16))
    if name == "image_to_uint8":
        assert out8.max() == 255 and out16.max() == 128
    else:
        assert out8.max() == 1.0 and out16.max() == pytest.approx(0.5, abs=1e-4)


def test_image_channels_and_alpha():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 3] = 128
    rgb, alpha = io_.image_to_array(rgba)
    assert rgb.shape == (4, 6, 3) and alpha[0, 0] == pytest.approx(128 / 255)
    grey_alpha = np.zeros((4, 6, 2), np.float32)
    grey_alpha[..., 0] = 0.5
    rgb, alpha = io_.image_to_array(grey_alpha)
    assert np.all(rgb == 0.5) and alpha is not None
    _, a, form = io_.image_to_tensor(rgba)
    assert a.shape == (1, 1, 4, 6) and form.channels == 4
    with pytest.raises(ValueError, match="channels"):
        io_.image_to_tensor(np.zeros((4, 6, 2), np.uint8))
    assert io_.image_to_bhwc(torch.rand(2, 4, 6, 4)).shape == (2, 4, 6, 3)
    assert io_.image_to_bhwc(torch.rand(4, 6, 1)).shape == (1, 4, 6, 3)
    with pytest.raises(ValueError, match="channels-first"):
        io_.image_to_bhwc(torch.rand(1, 3, 8, 8))


def test_one_image_helpers_refuse_batches():
    with pytest.raises(ValueError, match="background must be one image"):
        io_.image_to_array(np.zeros((3, 4, 6, 3)), "background")


def test_one_image_helpers_read_a_channels_first_tensor_as_the_harmonizer_does():
    """SamSegmenter and paste_subject refused the C×H×W tensor a Harmonizer takes; a C×H×W array is refused naming
    the transpose."""
    pixels = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    expected = io_.image_to_array(pixels)[0]
    chw = torch.from_numpy(pixels).permute(2, 0, 1)
    assert np.array_equal(io_.image_to_array(chw)[0], expected)
    assert np.array_equal(io_.image_to_array(chw[None])[0], expected)
    assert np.array_equal(io_.image_to_uint8(chw.float() / 255), pixels)
    with pytest.raises(ValueError, match=re.escape("channels-first: pass array.transpose(1, 2, 0)")):
        io_.image_to_array(pixels.transpose(2, 0, 1))


def test_32bit_integer_grey_in_16_bit_range():
    pil = Image.fromarray(np.full((4, 6), 40000, np.int32), "I")
    rgb, _ = io_.image_to_array(pil)
    assert rgb.max() == pytest.approx(40000 / 65535, abs=1e-6)


def test_tensors_handed_to_the_library_directly_meet_the_same_range_check(tiny_model):
    """A host that converts its own tensors (a 0..255 IMAGE from some node) still gets the boundary's check,
    not a white background."""
    from phnet import Harmonizer

    h = Harmonizer(tiny_model, device="cpu")
    masks = torch.zeros(1, 1, 16, 16)
    masks[..., 4:8, 4:8] = 1
    with pytest.raises(ValueError, match="divide 0..255 images by 255"):
        h.harmonize_tensor(torch.rand(1, 3, 16, 16) * 255, masks)
    with pytest.raises(ValueError, match="0..1"):
        h.harmonize_tensor(torch.rand(1, 3, 16, 16), masks * 2)
    with pytest.raises(ValueError, match="NaN"):
        h.harmonize_tensor(torch.full((1, 3, 16, 16), float("nan")), masks)


def test_uint8_for_sam_is_exact():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(io_.image_to_uint8(rgb), rgb)
    assert np.array_equal(io_.image_to_uint8(Image.fromarray(rgb)), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], -1)
    assert np.array_equal(io_.image_to_uint8(Image.fromarray(rgba)), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(io_.image_to_uint8(grey), np.repeat(grey[..., None], 3, -1))
    assert np.array_equal(io_.image_to_uint8(rgb.astype(np.float32) / 255), rgb)
    with pytest.raises(ValueError, match="one image"):
        io_.image_to_uint8(np.zeros((5, 7, 5), np.uint8))


@pytest.mark.parametrize("scale, words", [(255.0, "looks like a 0..255 image"), (1.05, "clamp the image to 0..1"),
                                          (40.0, "looks like a 0..255 image"), (1000.0, "give images in 0..1")])
def test_an_out_of_range_float_image_is_told_the_fix_that_fits_it(tiny_model, scale, words):
    """1.05 is an unclamped 0..1 image, not a 0..255 one: dividing it by 255 would be the wrong fix."""
    from phnet import Harmonizer

    masks = torch.zeros(1, 1, 16, 16)
    masks[..., 4:8, 4:8] = 1
    image = torch.linspace(0, 1, 16 * 16 * 3).reshape(1, 3, 16, 16) * scale
    with pytest.raises(ValueError, match=words):
        Harmonizer(tiny_model, device="cpu").harmonize_tensor(image, masks)


def test_a_channels_first_array_read_as_channels_last_is_told_its_layout():
    with pytest.raises(ValueError, match=r"looks channels-first: pass layout='CHW'"):
        io_.image_to_tensor(np.zeros((3, 40, 56), np.uint8))
    with pytest.raises(ValueError, match=r"looks channels-first: pass layout='BCHW'"):
        io_.image_to_tensor(np.zeros((2, 3, 40, 56), np.uint8))


def test_a_grey_batch_array_read_as_one_picture_is_told_layout_bhw():
    """A numpy B×H×W is read as H×W×C: its width was called its channels with no hint, which a tensor gets."""
    with pytest.raises(ValueError, match=r"got 50 \(layout HWC, shape \(2, 40, 50\)\); pass layout='BHW' if it is a "
                                         r"grey batch of 2$"):
        io_.image_to_tensor(np.zeros((2, 40, 50), np.uint8))
    for n in (3, 4):
        with pytest.raises(ValueError, match=rf"looks channels-first: pass layout='CHW' \(one picture\), or 'BHW' if "
                                             rf"it is a grey batch of {n}$"):
            io_.image_to_tensor(np.zeros((n, 40, 50), np.uint8))
    with pytest.raises(ValueError, match=r"got 2 \(layout HWC, shape \(40, 50, 2\)\)$"):  # grey and alpha
        io_.image_to_tensor(np.zeros((40, 50, 2), np.uint8))
    # five channels (an RGB with two more planes) are not 40 pictures 5 wide, which would be refused as too small
    with pytest.raises(ValueError, match=r"got 5 \(layout HWC, shape \(40, 50, 5\)\)$"):
        io_.image_to_tensor(np.zeros((40, 50, 5), np.uint8))
    with pytest.raises(ValueError, match=r"got 8 \(layout HWC, shape \(40, 50, 8\)\); pass layout='BHW' if it is a "
                                         r"grey batch of 40$"):
        io_.image_to_tensor(np.zeros((40, 50, 8), np.uint8))
    assert io_.image_to_tensor(np.zeros((2, 40, 50), np.uint8), layout="BHW")[0].shape == (2, 3, 40, 50)


@pytest.mark.parametrize("image, layout, message", [
    (torch.full((4, 64, 3), 0.5), None, "pass layout='HWC' or 'CHW' \\(one picture\\), 'BHW' \\(a grey batch\\)"),
    (np.zeros((1, 2, 3, 4, 5)), None, "an image of 5 dimensions .* is no picture"),
    (torch.rand(40, 48, 3), "XYZ", "an image needs a layout of 'HWC', .* got 'XYZ'"),
])
def test_layout_messages_name_a_layout_that_fits(image, layout, message):
    """A 3-D tensor was told to pass 'BHWC' or 'BCHW', which then failed; 5-D data 'does not match layout None'."""
    from phnet.imageio import image_to_tensor

    with pytest.raises(ValueError, match=message):
        image_to_tensor(image, layout=layout)


def test_big_endian_16_bit_masks_and_images_read_as_little_endian_ones():
    """numpy's array of a PIL I;16B picture is >u2: refused as 'use uint16 0..65535', which it is."""
    from phnet.imageio import image_to_array, mask_to_array

    mask = np.zeros((8, 8), "<u2")
    mask[2:6, 2:6] = 65535
    picture = np.random.default_rng(0).integers(0, 65536, (8, 8, 3)).astype("<u2")
    assert np.array_equal(mask_to_array(mask.astype(">u2")), mask_to_array(mask))
    assert np.array_equal(image_to_array(picture.astype(">u2"))[0], image_to_array(picture)[0])
    # and come back from the tensors as the native arrays of the same values
    from phnet.imageio.images import image_to_tensor, tensor_to_image

    for big in (picture.astype(">u2"), (picture / 65535).astype(">f4")):
        rgb, alpha, form = image_to_tensor(big)
        back = tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 8, 8, dtype=torch.bool))
        assert back.dtype == big.dtype.newbyteorder("=") and np.array_equal(back, big)


def test_8_and_16_bit_results_round_to_the_same_levels_as_one_float64_product_did(monkeypatch):
    """tensor_to_image rounds an integer result in bands of rows, not through whole-picture float64 copies: the
    levels are those of the whole picture's float64 product, at halves too (float32 products round some of them
    otherwise) and past 0..1 (clamped)."""
    from phnet import tiling
    from phnet.imageio.images import ImageForm, _from_unit, tensor_to_image

    monkeypatch.setattr(tiling, "TILE_PIXELS", 100)  # bands of 3 rows over 37: the last one short
    rng = np.random.default_rng(0)
    for peak, dtype in ((255.0, np.uint8), (65535.0, np.uint16)):
        halves = ((np.arange(int(peak)) + 0.5) / peak).astype(np.float32)
        ties = np.concatenate([np.nextafter(halves, -1), halves, np.nextafter(halves, 2)])
        values = np.concatenate([rng.random(2 * 3 * 37 * 33 * 40, np.float32), ties, np.float32([0, 1])])
        t = torch.from_numpy(np.resize(values, (len(values) // (37 * 33) + 1) * 37 * 33).reshape(-1, 1, 37, 33))
        expected = torch.round(t.double() * peak).numpy().astype(dtype)  # the old formula, on the whole picture
        assert np.array_equal(_from_unit(t, peak, np.dtype(dtype)).numpy(), expected), dtype
        rgb = torch.from_numpy(rng.uniform(-0.3, 1.3, (2, 3, 37, 33)).astype(np.float32))
        rgb[0, 0, 0, :4] = torch.tensor([-0.0, 1.0, 0.5 / peak, 1 + 1e-7])
        form = ImageForm("numpy", "BHWC", np.dtype(dtype), 3, np.zeros((2, 37, 33, 3), dtype))
        out = tensor_to_image(rgb, None, form, torch.zeros(2, 1, 37, 33, dtype=torch.bool))
        expected = torch.round(rgb.clamp(0, 1).double() * peak).numpy().astype(dtype).transpose(0, 2, 3, 1)
        assert out.dtype == dtype and np.array_equal(out, expected), dtype


def test_an_integer_result_is_rounded_without_a_whole_picture_float64_copy():
    """Two float64 copies of the whole picture (8K: 1.6 GB), for 8-bit pixels; the largest float64 tensor made now
    is one band of rows."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from phnet.imageio.images import image_to_tensor, tensor_to_image
    from phnet.tiling import TILE_PIXELS

    class Largest(TorchDispatchMode):
        doubles = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                    Largest.doubles = max(Largest.doubles, t.numel())
            return out

    picture = np.random.default_rng(0).integers(0, 256, (600, 500, 3), dtype=np.uint8)
    rgb, alpha, form = image_to_tensor(picture)
    with Largest():
        out = tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 600, 500, dtype=torch.bool))
    assert np.array_equal(out, picture)
    assert Largest.doubles <= 3 * TILE_PIXELS


def test_a_picture_read_while_another_thread_converts_an_array_leaves_the_warning_filters_as_they_were(monkeypatch):
    """Opening a picture and turning a read-only array into a tensor each swapped the process's warning filters
    unguarded: interleaved in two threads (a host's server threads), the ignore filters stayed for good."""
    import warnings

    from tests.helpers.overlap import ReadOverlap
    from phnet.imageio import image_to_tensor, images

    overlap = ReadOverlap()
    native = images.native

    def slow_native(array):  # the conversion, held inside its block until the reader has left its own
        overlap.hold()
        return native(array)

    monkeypatch.setattr(images, "native", slow_native)
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels.flags.writeable = False
    before = list(warnings.filters)
    overlap.run(lambda: image_to_tensor(pixels))
    assert warnings.filters == before


def test_a_read_only_array_after_a_read_only_slice_raises_no_warning():
    """A read-only slice is copied before torch sees it, so torch had not warned yet; the next read-only array was
    taken as if it had, and torch's warning showed (in a fresh process: torch warns once per process)."""
    import subprocess
    import sys

    code = ("import warnings, numpy as np\n"
            "from phnet.imageio import image_to_tensor\n"
            "warnings.simplefilter('error')\n"
            "pixels = np.zeros((4, 6, 3), np.uint8)\n"
            "pixels.flags.writeable = False\n"
            "image_to_tensor(pixels[:, :3])\n"
            "image_to_tensor(pixels)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage:UserWarning")
def test_complex_sparse_and_nested_inputs_are_refused_by_name():
    """A complex mask was read as its real part; a sparse or nested tensor ended in a raw torch error."""
    from phnet.imageio import image_to_tensor, mask_to_tensor

    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1
    with pytest.raises(ValueError, match="mask has dtype complex64: use 0/1"):
        mask_to_tensor(mask.numpy().astype(np.complex64) + 0.7j, 1, 8, 8)
    with pytest.raises(ValueError, match=r"mask: a sparse tensor \(torch.sparse_coo\); pass mask.to_dense\(\)"):
        mask_to_tensor(mask.to_sparse(), 1, 8, 8)
    with pytest.raises(ValueError, match=r"image: a sparse tensor .*; pass image.to_dense\(\)"):
        image_to_tensor(torch.rand(8, 8, 3).to_sparse())
    for layout in (torch.strided, torch.jagged):  # (torch warns that the strided one is a prototype)
        nested = torch.nested.nested_tensor([torch.rand(8, 8, 3), torch.rand(4, 8, 3)], layout=layout)
        with pytest.raises(ValueError, match="image: a nested tensor; pass pictures of one size as one tensor"):
            image_to_tensor(nested)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_a_single_channels_first_picture_is_told_how_to_turn_it(channels):
    with pytest.raises(ValueError, match=r"looks channels-first: pass array.transpose\(1, 2, 0\)"):
        io_.image_to_array(np.zeros((channels, 8, 10), np.uint8))


def test_a_picture_wider_than_a_band_s_pixels_is_converted_a_row_at_a_time(monkeypatch):
    """The conversion back to integers runs in bands of rows holding at most tiling.TILE_PIXELS pixels; a row longer
    than that is a band of its own."""
    from phnet import tiling

    monkeypatch.setattr(tiling, "TILE_PIXELS", 4)
    pixels = np.arange(3 * 7 * 3, dtype=np.uint8).reshape(3, 7, 3)
    rgb, alpha, form = io_.image_to_tensor(pixels)
    out = io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 3, 7, dtype=torch.bool))
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 5)])
def test_a_picture_with_no_rows_or_no_columns_is_named_empty(shape):
    with pytest.raises(ValueError, match=r"image is empty \(shape"):
        io_.image_to_array(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("top, words", [(255.0, "this looks like a 0..255 image"), (256.0, "give images in 0..1")])
def test_a_float_picture_is_said_to_be_on_the_255_scale_only_up_to_255(top, words):
    with pytest.raises(ValueError, match=words):
        io_.image_to_tensor(np.linspace(0, top, 4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3))


def test_a_four_channel_result_without_its_alpha_says_to_pass_it_back():
    """An RGBA picture's result given back without the alpha image_to_tensor returned failed on None."""
    rgb, alpha, form = io_.image_to_tensor(np.zeros((4, 4, 4), np.uint8))
    assert alpha is not None
    with pytest.raises(ValueError, match="alpha"):
        io_.tensor_to_image(rgb, None, form, torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 4, 4, dtype=torch.bool)).shape == (4, 4, 4)


def test_a_four_channel_result_gets_its_own_alpha_back_as_its_last_channel():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    rgb, alpha, form = io_.image_to_tensor(pixels)
    assert np.array_equal(io_.tensor_to_image(rgb, alpha, form, torch.zeros(1, 1, 4, 5, dtype=torch.bool)), pixels)


def test_a_files_bytes_given_for_a_picture_are_named_as_contents_not_as_a_path(tmp_path):
    """``open("x.png", "rb").read()`` passed as the image was named "given as a file path (b'\\x89PNG...')" with the
    whole file in the message (megabytes for a photo), and the fix was to read that "path"."""
    Image.new("RGB", (64, 48), (20, 90, 200)).save(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    for value in (data, bytearray(data), bytes(5000)):
        with pytest.raises(TypeError) as refused:
            io_.image_to_tensor(value)
        assert str(refused.value).startswith(f"the image is given as {len(value)} bytes (a file's contents?), not "
                                             "pixels: decode them with PIL.Image.open(io.BytesIO(data))")
        with pytest.raises(TypeError, match=rf"the mask is given as {len(value)} bytes"):
            io_.mask_to_tensor(value, 1, 48, 64)
    with pytest.raises(TypeError, match=re.escape("given as a file path (b'x.png'), not pixels: read it with")):
        io_.image_to_tensor(b"x.png")
