"""16-bit colour TIFFs in the layouts PIL does not read at 16 bits, written by hand (no TIFF library is a
dependency): uncompressed, little-endian, one strip per plane."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_tiff16(path: Path, pixels: np.ndarray, *, planar: bool = False, extra_sample: int = 0) -> None:
    """H×W×3 or H×W×4 uint16 ``pixels`` (or H×W×2: grey and an extra sample); a fourth (second) channel is the
    ``extra_sample`` kind: 0 unspecified (PIL: RGBX;16), 1 premultiplied alpha (RGBa;16), 2 alpha. ``planar``:
    each channel its own plane (planar configuration 2)."""
    height, width, channels = pixels.shape
    if planar:
        strips = [np.ascontiguousarray(pixels[..., c]).astype("<u2").tobytes() for c in range(channels)]
    else:
        strips = [np.ascontiguousarray(pixels).astype("<u2").tobytes()]
    tags = [(256, 3, [width]), (257, 3, [height]), (258, 3, [16] * channels), (259, 3, [1]),
            (262, 3, [2 if channels > 2 else 1]), (273, 4, None), (277, 3, [channels]), (278, 3, [height]),
            (279, 4, [len(s) for s in strips]), (284, 3, [2 if planar else 1])]
    tags += [(338, 3, [extra_sample])] if channels in (2, 4) else []
    size = {3: 2, 4: 4}
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    extra, extra_at = b"", ifd_end  # values over 4 bytes follow the directory
    data_at = ifd_end + sum(size[k] * (len(strips) if v is None else len(v)) for t, k, v in tags
                            if size[k] * (len(strips) if v is None else len(v)) > 4)
    offsets = [data_at + sum(len(s) for s in strips[:i]) for i in range(len(strips))]
    entries = b""
    for tag, kind, values in tags:
        values = offsets if values is None else values
        packed = struct.pack(f"<{len(values)}{'H' if kind == 3 else 'I'}", *values)
        if len(packed) <= 4:
            entries += struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, kind, len(values), extra_at + len(extra))
            extra += packed
    Path(path).write_bytes(b"II*\0" + struct.pack("<IH", 8, len(tags)) + entries + struct.pack("<I", 0) + extra
                           + b"".join(strips))
