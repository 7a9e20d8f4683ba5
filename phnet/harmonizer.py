"""Harmonizer: PHNet wrapped for use on real images of any size, type and batch."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .config import PHNetConfig
from .fullres import METHODS, apply_full_resolution, resize, working_shape
from .imageio import check_mask_coverage, check_unit_range, image_to_tensor, mask_to_tensor, tensor_to_image
from .modeling import PHNet
from .modeling.inference import InferencePHNet
from .modeling.transform import apply_colour_transform
from .weights import load_model, push_to_hub, save_pretrained

MODES = ("full", "official")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            return DTYPES[dtype.replace("float", "fp").replace("bfloat", "bf")]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}") from None
    if dtype not in DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}; choose one of {list(DTYPES)}")
    return dtype


class Harmonizer:
    """``harmonizer(image, mask)`` re-colours the masked subject to fit its background.

    ``mode="full"`` (default) keeps the aspect ratio, runs the network at the weights' working
    resolution and applies the change at full resolution: pixels where the mask is 0 come back
    bit-identical. ``mode="official"`` reproduces the official pipeline (squash to a square, run,
    blend, bicubic-resize the whole image back) for comparison. Low precision (fp16/bf16) runs the
    convolutions under autocast; the normalization statistics stay in fp32.
    """

    def __init__(
        self,
        model: PHNet,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        method: str = "correction",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")
        self.device = pick_device(device)
        self.dtype = _dtype(dtype)
        self.method = method
        self.model = model.eval().to(self.device)
        self._net = InferencePHNet(self.model)

    @property
    def config(self) -> PHNetConfig:
        return self.model.config

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        config: PHNetConfig | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        method: str = "correction",
    ) -> "Harmonizer":
        """From a weights file, a model folder, a Hub repo id, or (no source) the bundled default weights."""
        model = load_model(
            source,
            config=config,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        return cls(model, device=device, dtype=dtype, method=method)

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_pretrained(self.model, directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        return push_to_hub(self.model, repo_id, **kwargs)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> "Harmonizer":
        if device is not None:
            self.device = torch.device(device)
            self.model.to(self.device)
            self._net = InferencePHNet(self.model)
        if dtype is not None:
            self.dtype = _dtype(dtype)
        return self

    # ------------------------------------------------------------------------------------------------

    def __call__(
        self,
        image: Any,
        mask: Any,
        *,
        strength: float = 1.0,
        mode: str = "full",
        working_size: int | None = None,
        layout: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        reference_mask: Any = None,
        temporal: Any = None,
    ) -> Any:
        """Harmonize PIL / numpy / torch images (single or batched); returns the same kind, size and layout."""
        if reference_mask is not None or temporal not in (None, False):  # see _guided
            return self._guided(image, mask, layout, reference_mask, temporal, strength, mode, working_size, progress)
        rgb, alpha, form = image_to_tensor(image, layout)
        masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1])
        out = self.harmonize_tensor(
            rgb, masks, strength=strength, mode=mode, working_size=working_size, progress=progress
        )
        keep = (masks == 0) if mode == "full" else torch.zeros_like(masks, dtype=torch.bool)
        return tensor_to_image(out.cpu(), alpha, form, keep.cpu())

    @torch.inference_mode()
    def harmonize_tensor(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        *,
        strength: float = 1.0,
        mode: str = "full",
        working_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """B×3×H×W float images in [0, 1] and B×1×H×W masks → harmonized B×3×H×W (on the input's device)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in 0..1, got {strength}")
        size = working_size or self.config.image_size
        if size < 8 or size % 8:
            raise ValueError(f"working_size must be a positive multiple of 8, got {size}")
        _check_pair(images, masks)
        out = torch.empty_like(images)
        for i in range(images.shape[0]):  # one at a time: bounded memory, progress, interruption
            out[i : i + 1] = self._one(images[i : i + 1], masks[i : i + 1], strength, mode, size)
            if progress is not None:
                progress(i + 1, images.shape[0])
        return out

    def _one(self, image: torch.Tensor, mask: torch.Tensor, strength: float, mode: str, size: int) -> torch.Tensor:
        home = image.device
        image = image.to(self.device, torch.float32)
        mask = mask.to(self.device, torch.float32)
        if mode == "official":
            return self._official(image, mask, size).to(home)
        low_shape = working_shape(*image.shape[-2:], size)
        image_low = resize(image, low_shape, "bilinear")
        coverage = resize(mask, low_shape, "bilinear")
        mask_low = (coverage >= 0.5).float()
        if mask_low.sum() == 0:  # the subject vanishes at working resolution: take its largest pixel
            mask_low.view(-1)[coverage.argmax()] = 1.0
        if self.config.output == "transform":  # the predicted colour map applies to the full-size pixels as is
            coefficients = self._run(self._net.predict_transform, image_low, mask_low)
            harmonized = apply_colour_transform(image, coefficients)
        else:
            pred_low = self._run(self._net, image_low, mask_low)
            pred_low = pred_low * mask_low + image_low * (1 - mask_low)
            harmonized = apply_full_resolution(image, mask, image_low, pred_low, mask_low, self.method)
        weight = mask * strength
        return (image + weight * (harmonized.clamp_(0, 1) - image)).to(home)

    def _official(self, image: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
        """Square resize (bilinear, antialiased like PIL), binary nearest mask, blend, bicubic back."""
        shape = image.shape[-2:]
        image_sq = resize(image, (size, size), "bilinear")
        mask_sq = (resize(mask, (size, size), "nearest-exact") >= 0.5).float()
        pred = self._run(self.model, image_sq, mask_sq)
        blended = pred * mask_sq + image_sq * (1 - mask_sq)
        return resize(blended, shape, "bicubic").clamp(0, 1)

    def _run(self, net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], image: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with autocast:
            return net(image, mask).float()

    def _guided(self, image, mask, layout, reference_mask, temporal, strength, mode, working_size, progress):
        """``reference_mask``: the part of the background the subject should match (one mask, or one per
        image). ``temporal``: the batch is a clip in time order; its corrections are smoothed over time
        with cuts kept (``True``, a window in frames, or a ``phnet.temporal.Temporal``). Both run through
        ``phnet.temporal``, whose single-image path is the same estimate-then-apply."""
        from .temporal import harmonize_frames

        if mode != "full":
            raise ValueError("reference_mask and temporal work with mode='full' only")
        rgb, alpha, form = image_to_tensor(image, layout)
        masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1])
        _check_pair(rgb, masks)
        references = (None if reference_mask is None
                      else mask_to_tensor(reference_mask, *rgb.shape[:1], *rgb.shape[-2:], "reference mask"))
        out = harmonize_frames(self, rgb, masks, temporal=temporal, reference=references, strength=strength,
                               working_size=working_size, progress=progress)
        return tensor_to_image(out.cpu(), alpha, form, (masks == 0).cpu())


def _check_pair(images: torch.Tensor, masks: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B×3×H×W, got {tuple(images.shape)}")
    if masks.shape != (images.shape[0], 1, *images.shape[-2:]):
        raise ValueError(
            f"masks must be B×1×H×W matching the images {tuple(images.shape)}, got {tuple(masks.shape)}; "
            "resize the mask to the image"
        )
    check_unit_range(images, "images")  # tensors handed in directly meet the same range check as any input
    check_unit_range(masks, "masks", "mask")
    check_mask_coverage(masks)
