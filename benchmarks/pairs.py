"""A photo and its mask as the benchmarks read them: float RGB in 0..1 and a 0/1 mask of the photo's size."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.common import BadSampleError, load_mask, load_rgb


def read_pair(photo: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read as the trainer reads them (phnet.imageio: EXIF orientation, 16-bit pictures and masks at full range)."""
    for path in (photo, mask):  # first: the trainer's message for a missing file names its settings and --resume
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing or a broken link: put it back, or take it and its "
                             f"{'mask' if path == photo else 'photo'} out of the folder")
    try:
        image, hard = load_rgb(photo), load_mask(mask)
    except BadSampleError as exc:
        raise SystemExit(f"error: {exc}") from None
    if hard.shape != image.shape[:2]:  # resized to one shape, the photo would be stretched to the mask's
        raise SystemExit(f"error: the mask {mask} is {hard.shape[1]}×{hard.shape[0]} px and its photo {photo} is "
                         f"{image.shape[1]}×{image.shape[0]} px: give each photo a mask of its own size")
    return image, hard
