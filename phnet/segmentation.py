"""SAM and mask refinement under the names hosts have always imported.

The code lives in :mod:`phnet.sam` (loading, prompting, prediction) and :mod:`phnet.masks`
(grow, feather, bounding box); this module only re-exports it.
"""

from .masks import gaussian_blur, mask_bbox, refine_mask
from .sam import (
    CHECKPOINT_SUFFIXES,
    SAM_PRESETS,
    SamArchitecture,
    SamSegmenter,
    build_sam,
    infer_sam_architecture,
    load_sam_state_dict,
)

__all__ = [
    "SamSegmenter",
    "SamArchitecture",
    "SAM_PRESETS",
    "infer_sam_architecture",
    "build_sam",
    "load_sam_state_dict",
    "refine_mask",
    "mask_bbox",
    "gaussian_blur",
    "CHECKPOINT_SUFFIXES",
]
