"""Segment Anything (SAM v1) for masking the subject: load, prompt, predict.

- ``architecture``: :class:`SamArchitecture`, the vit_b / vit_l / vit_h presets, reading a size back
  from a state_dict, building the model with segment_anything's modules.
- ``transformers_layout``: Meta's ``facebook/sam-vit-*`` repos (transformers' key names + config.json)
  converted to those modules.
- ``loading``: finding a checkpoint (file, folder, Hub repo) and reading it safely.
- ``prompts``: boxes and points checked against the image size.
- ``predictor``: :class:`SamSegmenter`, the cached image embedding and the prompt → mask step.
- ``batch``: :func:`plan_batch`, a batch of pictures checked against one prompt or a guide mask each before SAM
  runs, then segmented and refined picture by picture, each with its :class:`Outcome`; its refusals are typed
  (:class:`NoPrompt`, :class:`PromptRefused`, :class:`GuideLooksInverted`) for a caller to word.

Mask refinement (grow, feather, bounding box) is not SAM's and lives in :mod:`phnet.mask_tools`.
No host or training imports here.
"""

from .architecture import SAM_PRESETS, SamArchitecture, build_sam, infer_sam_architecture
from .loading import CHECKPOINT_SUFFIXES, SeveralCheckpoints, load_sam_state_dict
from .batch import BatchPlan, GuideLooksInverted, NoPrompt, Outcome, PictureMask, PromptRefused, plan_batch
from .predictor import SamSegmenter
from .prompts import SamPrompt, make_prompt

__all__ = [
    "SamSegmenter",
    "SamArchitecture",
    "SAM_PRESETS",
    "SamPrompt",
    "make_prompt",
    "infer_sam_architecture",
    "build_sam",
    "load_sam_state_dict",
    "CHECKPOINT_SUFFIXES",
    "SeveralCheckpoints",
    "plan_batch",
    "BatchPlan",
    "Outcome",
    "PictureMask",
    "NoPrompt",
    "PromptRefused",
    "GuideLooksInverted",
]
