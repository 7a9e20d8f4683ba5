"""The small pictures and the call the CLI tests share: odd sizes, so that the output must still match
the input exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

W, H = 45, 37


def composite(seed: int = 0, size=(W, H)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def mask(size=(W, H)) -> Image.Image:
    m = np.zeros((size[1], size[0]), dtype=np.uint8)
    m[size[1] // 4 : 3 * size[1] // 4, size[0] // 3 : 2 * size[0] // 3] = 255
    return Image.fromarray(m, "L")


def harmonize(*args: str | Path) -> int:
    from phnet import cli

    return cli.main(["harmonize", *map(str, args), "--device", "cpu"])


def folders(root: Path, *names: str) -> tuple[Path, Path]:
    """root/c and root/m holding a composite and its mask under each name (a folder run's inputs)."""
    comps, masks = root / "c", root / "m"
    comps.mkdir()
    masks.mkdir()
    for name in names:
        composite().save(comps / name)
        mask().save(masks / name)
    return comps, masks


def read_whole(path: str | Path) -> Image.Image:
    """The picture at ``path`` read whole, its file closed: an ``Image.open`` whose pixels are never read (a test
    looking at its size, mode or info) keeps the file open until the garbage collector finds it."""
    with Image.open(path) as picture:
        picture.load()
    return picture
