"""Command line: ``phnet harmonize``, ``phnet convert``.

``harmonize --temporal`` treats a folder of composites as the frames of a clip, in natural name order
(frame2 before frame10): every frame's correction is estimated, smoothed over time (cuts kept, see
:mod:`phnet.temporal`), then applied. ``--reference`` names the part of the background the subject
should match: one mask for every composite, or a folder of masks named like the composites.

``harmonize`` never writes over one of its inputs, gives every result its own name, and in folder mode
goes on past a bad file: each failure is reported with its file name as it happens, and the run ends with
a summary and exit code 1. Files are read through :mod:`phnet.imageio` (EXIF orientation, 16-bit grey).
Every file is written whole or not at all (:mod:`phnet.atomic`), carrying the composite's ICC profile and
EXIF; JPEG at quality 95 without chroma subsampling, WebP lossless, PNG at zlib level 4.
"""

from .command import build_parser, entry, main  # none loads torch: the command loads it once its line parsed

__all__ = ["build_parser", "entry", "main"]
