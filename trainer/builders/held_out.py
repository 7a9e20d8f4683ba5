"""Pictures reserved for held-out evaluation: recognise them wherever they turn up.

``comfyui-workflow-templates-media-image`` is reserved for evaluation, but old versions of the
allowed bundles ship some of its pictures byte for byte (``-media-other`` 0.3.1-0.3.217,
``-media-video`` 0.3.26-0.3.69, ``-media-api`` 0.3.37). ``held_out_pictures.tsv`` (next to this
file, a copy of the project's shared list) holds, for each reserved picture, the md5 of its file
and a 64-bit difference hash (dHash). A picture is held out when its file's md5 is listed or its
dHash is within ``NEAR_DUPLICATE_BITS`` of a listed one (a re-encoded or resized copy).

dHash: the first frame as 8-bit grey (PIL mode ``L``), resized to 9x8 with LANCZOS; bit = left
pixel < right pixel for the 8 neighbouring pairs of each row, rows top to bottom, the first bit
the most significant.
"""
from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TABLE = Path(__file__).with_name("held_out_pictures.tsv")
NEAR_DUPLICATE_BITS = 6
FORBIDDEN_PACKAGES = ("comfyui_workflow_templates_media_image",)  # import names (the folders they install)


@dataclass(frozen=True)
class HeldOutTable:
    md5s: frozenset[str]
    dhashes: np.ndarray  # uint64, one per reserved picture


def read_table(path: Path = TABLE) -> HeldOutTable:
    md5s, dhashes = set(), []
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("md5\t"):
            continue
        md5, dhash, _name = line.split("\t", 2)
        md5s.add(md5)
        dhashes.append(int(dhash, 16))
    return HeldOutTable(frozenset(md5s), np.array(dhashes, np.uint64))


@functools.lru_cache(maxsize=None)
def default_table() -> HeldOutTable:
    return read_table(TABLE)


def as_image(picture: bytes | np.ndarray | Image.Image) -> Image.Image:
    """The first frame of an encoded file, or the picture itself."""
    if isinstance(picture, (bytes, bytearray)):
        return Image.open(io.BytesIO(picture))
    if isinstance(picture, np.ndarray):
        return Image.fromarray(picture)
    return picture


def dhash64(picture: bytes | np.ndarray | Image.Image) -> int:
    grey = np.asarray(as_image(picture).convert("L").resize((9, 8), Image.Resampling.LANCZOS), np.int16)
    bits = (grey[:, :-1] < grey[:, 1:]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, hashes: np.ndarray) -> np.ndarray:
    """Bits that differ between ``a`` and each of ``hashes``."""
    x = np.bitwise_xor(np.uint64(a), hashes.astype(np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(1)


def near(a: int, hashes: np.ndarray, bits: int = NEAR_DUPLICATE_BITS) -> bool:
    return bool(len(hashes)) and bool((hamming(a, hashes) <= bits).any())


def is_held_out(picture: bytes | np.ndarray | Image.Image, table: HeldOutTable | None = None) -> bool:
    """True for a reserved picture: its file's md5 is listed, or its dHash (or its mirror image's) is near a
    listed one.

    ``picture`` is a file's bytes (md5 and dHash are both checked) or a decoded picture (dHash only).
    """
    table = default_table() if table is None else table
    if isinstance(picture, (bytes, bytearray)) and hashlib.md5(picture).hexdigest() in table.md5s:
        return True
    image = as_image(picture)
    return (near(dhash64(image), table.dhashes)
            or near(dhash64(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), table.dhashes))


def reserved_package(path: str | Path) -> str | None:
    """The reserved package ``path`` lies in (followed through links), or None."""
    parts = {part.replace("-", "_").lower() for part in Path(path).resolve().parts}
    return next((name for name in FORBIDDEN_PACKAGES if name in parts), None)


def refuse_reserved(path: str | Path) -> None:
    """A ValueError for a folder or file inside the package reserved for held-out evaluation."""
    name = reserved_package(path)
    if name is not None:
        raise ValueError(
            f"{path} lies in {name.replace('_', '-')}, which is reserved for held-out evaluation: it is never "
            "trained on. Use the allowed bundles (trainer.builders.package_portraits) or your own photos")
