"""The input boundary: every image and mask a caller, a file or a host hands to phnet is converted here.

The library (``Harmonizer``, ``paste_subject``, SAM), the CLI, every host adapter and the trainer
convert through these functions, so one set of rules holds everywhere:

Images
    - Kinds: a PIL image, a numpy array or a torch tensor. Layouts: ``HW``, ``HWC``, ``BHWC``, ``CHW``,
      ``BCHW``, ``BHW``. numpy arrays are read as HW / HWC / BHWC; a tensor's layout is read off where
      its 1-, 3- or 4-sized axis sits, and ``layout=`` settles the ambiguous cases.
    - Channels: 1 (grey, used as RGB), 3 (RGB) or 4 (RGBA: the alpha is kept aside and given back
      untouched). The single-image helpers also take 2 (grey + alpha).
    - Values: uint8 is 0..255 and uint16 is 0..65535; floats must already be in 0..1 (a rounding slack
      of 0.001 is clamped). A float image holding 0..255 values is refused with "divide 0..255 images by
      255"; NaN / inf, bool and other integer types are refused.
    - PIL images are turned upright by their EXIF orientation. Palettes, CMYK and other modes become
      RGB (RGBA when they carry transparency). 16-bit grey PIL images are read at 16 bits where the
      result is an array; ``image_to_tensor`` refuses them because PIL has no 16-bit RGB mode to give
      the result back in. A PIL result carries its input's ICC profile in ``info`` where it describes RGB.

Masks (white / 1 = the subject)
    - One channel: ``H×W``, ``B×H×W``, ``B×1×H×W``, ``B×H×W×1``, ``H×W×1`` or ``1×H×W``. A mask shaped
      ``H×W×3`` or ``H×W×4`` is a colour picture and is refused by name.
    - PIL masks: a real alpha channel (RGBA, LA, PA, a palette with transparency) is the mask, unless it
      is opaque everywhere, in which case the luminance is; every other mode is read as luminance.
    - Values: bool is 0/1. uint8 is 0..255 and uint16 0..65535 (so 32768 is 0.5). **An integer mask
      holding only 0 and 1 is binary** (1 = subject), not 1/255. Other integer types must hold only
      0 and 1. Floats must be in 0..1 (slack 0.001, clamped); NaN / inf are refused.
    - Soft values blend; nothing is thresholded here.

Files (``read_image``, ``read_picture``, ``read_mask``)
    - EXIF orientation is applied (EXIF too damaged to give it: read as stored, with a warning saying so and
      how to fix it), 16-bit files (grey, and PNG's and TIFF's 48/64-bit colour) decode to
      uint16, palettes expand.
      ``read_picture`` also gives the ICC profile, EXIF and PNG text a result saved from the pixels should
      carry.
    - A camera JPEG holding previews (MPO) is read as its main picture; animations and multi-page TIFFs
      are refused.
    - A mask file must be grey: a colour picture is refused. With transparent pixels, the alpha is the
      mask of a cut-out and the painted grey that of a black-and-white mask with a transparent border;
      a file that is neither plainly is refused (``masks.file_mask_pixels``).

Every refusal is a ``ValueError`` (``TypeError`` for an unsupported kind) naming the input and the fix.
"""

from .decode import IMAGE_SUFFIXES, read_image, read_picture
from .images import (
    LAYOUTS,
    UNIT_SLACK,
    ImageForm,
    as_returned,
    check_unit_range,
    image_to_array,
    image_to_bhwc,
    image_to_tensor,
    image_to_uint8,
    tensor_to_image,
)
from .masks import check_mask_coverage, mask_to_array, mask_to_bhw, mask_to_tensor, read_mask

__all__ = [
    "LAYOUTS",
    "UNIT_SLACK",
    "IMAGE_SUFFIXES",
    "ImageForm",
    "image_to_tensor",
    "tensor_to_image",
    "as_returned",
    "image_to_array",
    "image_to_uint8",
    "image_to_bhwc",
    "check_unit_range",
    "mask_to_tensor",
    "mask_to_array",
    "mask_to_bhw",
    "check_mask_coverage",
    "read_image",
    "read_picture",
    "read_mask",
]
