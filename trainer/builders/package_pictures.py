"""The allowed picture bundles and how a picture in them is read: shared by the builders.

Every bundle here is MIT-licensed: the builders read each one's METADATA (:func:`licence_of`) and leave out
one that is not. ``comfyui-workflow-templates-media-image`` is reserved for held-out
evaluation and is never read (and :mod:`trainer.builders.held_out` drops its pictures wherever else
they turn up).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image

from trainer.builders.subject_masks import resize_long

# (import name, distribution name) of the allowed template bundles.
MEDIA_PACKAGES = (
    ("comfyui_workflow_templates_media_api", "comfyui-workflow-templates-media-api"),
    ("comfyui_workflow_templates_media_video", "comfyui-workflow-templates-media-video"),
    ("comfyui_workflow_templates_media_other", "comfyui-workflow-templates-media-other"),
    ("comfyui_workflow_templates_media_assets_01", "comfyui-workflow-templates-media-assets-01"),
    ("comfyui_workflow_templates_media_assets_02", "comfyui-workflow-templates-media-assets-02"),
)
# The licence of the pictures of each source other than the bundles (whose METADATA is read), recorded in every
# pool's manifest.json.
LICENCES = {"scikit-image": "skimage.data: public domain or CC0, per image (see each function's docstring)"}
# Bundles of mostly renders and screenshots: only their pictures of people are used.
PEOPLE_ONLY = ("media-assets-01/", "media-assets-02/")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Source:
    key: str                                  # stable id, e.g. "media-api/templates/x.webp"
    load: Callable[[int], list[np.ndarray]]   # max_frames -> list of RGB uint8 HxWx3
    data: Callable[[], bytes] | None = None   # the file's bytes, when the source is a file


def licence_of(meta) -> str:
    """The licence a package's METADATA gives (an :class:`email.message.Message` or importlib.metadata's)."""
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    return meta.get("License") or ", ".join(classifiers) or "unknown"


def installed_folder(import_name: str) -> Path | None:
    """The folder of the installed bundle ``import_name``, or None when it is not installed."""
    try:
        module = importlib.import_module(import_name)
    except ImportError:
        return None
    # a folder of that name without __init__.py imports as a namespace package, with no file: no install
    return Path(module.__file__).parent if module.__file__ else None


def installed_licence(dist: str) -> str | None:
    """The licence of the installed ``dist``, or None when it is not installed."""
    try:
        return licence_of(importlib.metadata.metadata(dist))
    except importlib.metadata.PackageNotFoundError:
        return None


def is_mit(licence: str) -> bool:
    """Whether :func:`licence_of`'s answer lets the pictures be used as MIT: MIT alone (an SPDX expression, a
    License field or a classifier), or a choice (OR) that offers it; not MIT with other terms (AND, WITH) or
    beside other licence classifiers."""
    if re.search(r"\b(AND|WITH)\b", licence, re.I):
        return False
    choices = re.split(r"\s+OR\s+", licence.strip(), flags=re.I)
    return any(re.fullmatch(r"\(*\s*MIT( License)?\s*\)*", choice, re.I) for choice in choices)


def frames_from_file(file: Path | BinaryIO, max_frames: int) -> list[np.ndarray]:
    with Image.open(file) as im:  # (an animation's file stays open after its frames are read)
        n = getattr(im, "n_frames", 1)
        picks = sorted({round(i * (n - 1) / max(max_frames - 1, 1)) for i in range(max_frames)}) if n > 1 else [0]
        frames = []
        for i in picks[:max_frames]:
            im.seek(i)
            fr = im.convert("RGBA")
            a = np.asarray(fr)[..., 3]
            if (a < 250).mean() > 0.02:  # a cut-out on transparency is not a photo
                return []
            frames.append(np.asarray(fr.convert("RGB")))
    return frames


def usable(rgb: np.ndarray, min_side: int) -> bool:
    if min(rgb.shape[:2]) < min_side:
        return False
    small, _ = resize_long(rgb, 128)
    # flat placeholders and near-monochrome graphics teach nothing about colour
    colourfulness = float(np.abs(small.astype(np.float32) - small.mean(-1, keepdims=True)).mean())
    return float(small.std()) > 20 and colourfulness > 3
