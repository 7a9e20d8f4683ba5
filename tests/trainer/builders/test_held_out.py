"""trainer.builders.held_out: the reserved-picture table, the dHash, near-duplicates."""
from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from trainer.builders import held_out


def test_the_shipped_table_lists_the_reserved_pictures_with_the_hash_implemented_here():
    header = held_out.TABLE.read_text().splitlines()[1]
    assert "9x8 grey, LANCZOS, left<right bits, row-major" in header and "<= 6" in header
    table = held_out.read_table()
    assert len(table.md5s) == len(table.dhashes) == 264
    assert all(len(m) == 32 for m in table.md5s)


def test_dhash_of_a_9x8_grey_picture_is_its_hand_computed_bits():
    # 9x8 is the hash's own size, so the resize leaves it alone and each bit can be written by hand
    rows = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8],                 # rising:        11111111 = ff
        [8, 7, 6, 5, 4, 3, 2, 1, 0],                 # falling:       00000000 = 00
        [0, 9, 0, 9, 0, 9, 0, 9, 0],                 # up, down, ...: 10101010 = aa
        [5, 5, 5, 5, 5, 5, 5, 5, 5],                 # flat (not <):  00000000 = 00
        [0, 9, 9, 9, 9, 9, 9, 9, 9],                 # first pair:    10000000 = 80
        [9, 9, 9, 9, 9, 9, 9, 9, 0],                 # none:          00000000 = 00
        [9, 8, 7, 6, 5, 4, 3, 2, 9],                 # last pair:     00000001 = 01
        [0, 0, 0, 0, 9, 9, 9, 9, 9],                 # middle pair:   00010000 = 10
    ]
    grey = Image.fromarray(np.array(rows, np.uint8) * 20, "L")
    assert held_out.dhash64(grey) == 0xFF00AA0080000110
    # the same as an RGB array, and as a PNG file: grey is grey whatever the container
    rgb = np.repeat(np.asarray(grey)[..., None], 3, axis=2)
    assert held_out.dhash64(rgb) == 0xFF00AA0080000110
    png = io.BytesIO()
    grey.save(png, "PNG")
    assert held_out.dhash64(png.getvalue()) == 0xFF00AA0080000110


def test_dhash_survives_re_encoding_and_resizing(picture, encoded):
    rgb = picture(3, 192)
    h = held_out.dhash64(encoded(rgb))
    copies = [encoded(rgb, "JPEG", quality=70),
              encoded(np.asarray(Image.fromarray(rgb).resize((150, 150), Image.BILINEAR))),
              encoded(rgb, "WEBP", quality=60)]
    assert all(held_out.hamming(held_out.dhash64(c), np.array([h], np.uint64))[0] <= 2 for c in copies)
    assert held_out.hamming(held_out.dhash64(picture(4, 192)), np.array([h], np.uint64))[0] > 6


def test_is_held_out_by_md5_or_near_dhash_only(reserved, picture, encoded):
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    assert held_out.is_held_out(reserved)                                   # same file
    assert held_out.is_held_out(encoded(rgb, "JPEG", quality=80))          # re-encoded
    assert held_out.is_held_out(np.asarray(Image.fromarray(rgb).resize((88, 88), Image.LANCZOS)))  # resized
    assert not held_out.is_held_out(encoded(picture(8)))                   # another picture
    # an md5 listed in the table is enough, whatever the picture looks like
    other = encoded(picture(9))
    table = held_out.HeldOutTable(frozenset({hashlib.md5(other).hexdigest()}),
                                  np.zeros(0, np.uint64))
    assert held_out.is_held_out(other, table)


def test_hamming_counts_differing_bits():
    hashes = np.array([0, 0xFF, 2**64 - 1], np.uint64)
    assert held_out.hamming(0b1011, hashes).tolist() == [3, 5, 61]
    assert held_out.near(0b111111, hashes) and not held_out.near(0b1111111, np.array([0], np.uint64))


def test_a_mirrored_copy_is_held_out_too(reserved):
    """Training flips pictures anyway: a mirrored copy is the same picture to a model."""
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    assert held_out.is_held_out(rgb[:, ::-1].copy())


def test_the_trainer_never_reads_the_reserved_package_nor_copies_of_its_pictures(reserved, picture, tmp_path):
    import pytest

    from trainer.data import build_dataset
    from trainer.data.common import BadSampleError, list_images

    bundle = tmp_path / "site-packages" / "comfyui_workflow_templates_media_image" / "templates"
    bundle.mkdir(parents=True)
    (bundle / "a.png").write_bytes(reserved)
    with pytest.raises(ValueError, match="reserved for held-out evaluation: it is never trained on"):
        list_images(bundle)
    linked = tmp_path / "photos"  # a folder of links into it
    linked.mkdir()
    (linked / "a.png").symlink_to(bundle / "a.png")
    with pytest.raises(ValueError, match="comfyui-workflow-templates-media-image"):
        list_images(linked)
    copies = tmp_path / "copies"  # re-encoded and mirrored copies beside photos of one's own
    copies.mkdir()
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    Image.fromarray(rgb[:, ::-1]).save(copies / "mirrored.jpg", quality=85)
    for seed in (1, 2, 3):
        Image.fromarray(picture(seed)).save(copies / f"own{seed}.png")
    ds = build_dataset({"root": str(copies), "val_fraction": 0.0}, "train", image_size=32)
    for record in ds.records:
        if record.real.name == "mirrored.jpg":
            with pytest.raises(BadSampleError, match="reserved for held-out evaluation"):
                ds.load(record, np.random.default_rng(0))
        else:
            ds.load(record, np.random.default_rng(0))

