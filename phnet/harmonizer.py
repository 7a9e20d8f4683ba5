"""Harmonizer: PHNet wrapped for use on real images of any size, type and batch."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from .config import MAX_WORKING_SIZE, PHNetConfig
from .corrections import Correction, log_corrections
from .fullres import METHODS, apply_in_tiles, bounding_box, downscale, lift, one_thread, resize, working_shape
from .imageio import check_mask_coverage, check_unit_range, image_to_tensor, mask_to_tensor, tensor_to_image
from .imageio.fast import image_from_pixels, image_pixels, mask_pixels
from .modeling import PHNet
from .modeling.inference import InferencePHNet
from .modeling.transform import gain_and_offset
from .precision import resolve_dtype
from .weights import load_model, push_to_hub, save_pretrained

MODES = ("full", "official")


class Harmonized(NamedTuple):
    """What :meth:`Harmonizer.harmonize` returns: the result, and one :class:`~phnet.corrections.Correction`
    per image saying how much its subject changed (and, when it did not, why)."""

    image: Any
    corrections: list[Correction]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Harmonizer:
    """``harmonizer(image, mask)`` re-colours the masked subject to fit its background.

    ``mode="full"`` (default) keeps the aspect ratio, runs the network at the weights' working
    resolution and applies the change at full resolution: pixels where the mask is 0 come back
    bit-identical. ``mode="official"`` reproduces the official pipeline (squash to a square, run,
    blend, bicubic-resize the whole image back) for comparison.

    ``dtype="auto"`` (default) picks the precision at run time for the device (``phnet.precision``):
    bf16 autocast on CPUs with AMX, fp32 on GPUs and elsewhere. "fp32" is exact; "fp16" and
    "bf16" run the convolutions under autocast; the normalization statistics are always fp32.

    The weights' do-no-harm threshold (``config.correction_threshold``) leaves a subject unchanged when
    the network's correction of it is smaller; ``threshold=`` overrides it per call (0 = the raw network).
    :meth:`harmonize` returns each image's :class:`~phnet.corrections.Correction` with the result, and
    every call logs one line on the ``phnet`` logger (a warning when a subject was left unchanged).
    """

    def __init__(
        self,
        model: PHNet,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = "auto",
        method: str = "correction",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")
        self.device = pick_device(device)
        self.requested_dtype = "auto" if dtype is None else dtype
        self.dtype = resolve_dtype(self.requested_dtype, self.device)
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
        dtype: str | torch.dtype | None = "auto",
        method: str = "correction",
        progress: Callable[[int, int], None] | None = None,
    ) -> "Harmonizer":
        """From a weights file, a model folder, an official checkpoint's name (``"official-ffhqh512"``,
        downloaded on first use), a Hub repo id, or (no source) the bundled default weights. See
        :func:`phnet.weights.load_model` for ``cache_dir`` and ``progress``."""
        model = load_model(
            source,
            config=config,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            progress=progress,
        )
        return cls(model, device=device, dtype=dtype, method=method)

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_pretrained(self.model, directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        return push_to_hub(self.model, repo_id, **kwargs)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> "Harmonizer":
        """Move to ``device`` and/or change the precision; "auto" is decided again for the new device."""
        if device is not None:
            self.device = torch.device(device)
            self.model.to(self.device)
            self._net = InferencePHNet(self.model)
        if dtype is not None:
            self.requested_dtype = dtype
        self.dtype = resolve_dtype(self.requested_dtype, self.device)
        return self

    # ------------------------------------------------------------------------------------------------

    def __call__(self, image: Any, mask: Any, **options: Any) -> Any:
        """Harmonize PIL / numpy / torch images (single or batched); returns the same kind, size and layout.
        The options are :meth:`harmonize`'s."""
        return self.harmonize(image, mask, **options).image

    def harmonize(
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
        threshold: float | None = None,
    ) -> Harmonized:
        """Like calling the Harmonizer, and also says per image how much the subject changed.

        ``threshold``: the do-no-harm threshold (0–255 RMS) for this call instead of the weights' own; 0
        applies every correction the network proposes, which helps obvious mismatches and may harm
        near-right composites."""
        self._check_threshold(threshold)
        if reference_mask is not None or temporal not in (None, False):  # see _guided
            result = self._guided(image, mask, layout, reference_mask, temporal, strength, mode, working_size,
                                  progress, threshold)
            log_corrections(result.corrections)
            return result
        size = self._check_options(strength, mode, working_size)
        native = image_pixels(image, layout) if mode == "full" else None
        if native is None:  # the official pipeline, or an input that needs converting first
            rgb, alpha, form = image_to_tensor(image, layout)
            masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1])
            out, corrections = self._harmonize_tensor(rgb, masks, strength, mode, size, progress, threshold)
            keep = (masks == 0) if mode == "full" else torch.zeros_like(masks, dtype=torch.bool)
            result = Harmonized(tensor_to_image(out.cpu(), alpha, form, keep.cpu()), corrections)
        else:
            pixels, peak, form = native
            batch, height, width = pixels.shape[:3]
            found = mask_pixels(mask, batch, height, width)
            masks, mask_peak = found if found is not None else (mask_to_tensor(mask, batch, height, width)[:, 0], 1.0)
            check_mask_coverage(masks, mask_peak)
            out = pixels.clone()  # alpha and background are the caller's own pixels; the subject is rewritten
            corrections = self._harmonize_pixels(pixels, peak, masks.to(pixels.device), mask_peak, out, strength,
                                                 size, progress, threshold)
            result = Harmonized(image_from_pixels(out, form), corrections)
        log_corrections(result.corrections)
        return result

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
        size = self._check_options(strength, mode, working_size)
        return self._harmonize_tensor(images, masks, strength, mode, size, progress, None)[0]

    @torch.inference_mode()
    def _harmonize_tensor(self, images, masks, strength, mode, size, progress, threshold):
        _check_pair(images, masks)
        if mode == "full":
            out = images.clone()
            pixels = images.permute(0, 2, 3, 1)
            corrections = self._harmonize_pixels(pixels, 1.0, masks[:, 0], 1.0, out.permute(0, 2, 3, 1), strength,
                                                 size, progress, threshold)
            return out, corrections
        out, corrections = torch.empty_like(images), []
        for i in range(images.shape[0]):  # one at a time: bounded memory, progress, interruption
            out[i : i + 1], correction = self._official(images[i : i + 1], masks[i : i + 1], size, strength, threshold)
            corrections.append(correction)
            if progress is not None:
                progress(i + 1, images.shape[0])
        return out, corrections

    def _check_options(self, strength: float, mode: str, working_size: int | None) -> int:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in 0..1, got {strength}")
        size = working_size or self.config.image_size
        if not 8 <= size <= MAX_WORKING_SIZE or size % 8:
            raise ValueError(f"working_size must be a multiple of 8 from 8 to {MAX_WORKING_SIZE}, got {size}")
        return size

    @staticmethod
    def _check_threshold(threshold: float | None) -> None:
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not math.isfinite(threshold) or threshold < 0):
            raise ValueError(f"threshold must be a number >= 0 (RMS, 0-255 units) or None for the weights' own, "
                             f"got {threshold!r}")

    def threshold_for(self, threshold: float | None = None) -> float:
        """The do-no-harm threshold a call uses: ``threshold`` when given, else the weights' own."""
        return self.config.correction_threshold if threshold is None else float(threshold)

    @torch.inference_mode()
    def _harmonize_pixels(
        self,
        pixels: torch.Tensor,
        peak: float,
        masks: torch.Tensor,
        mask_peak: float,
        out: torch.Tensor,
        strength: float,
        size: int,
        progress: Callable[[int, int], None] | None,
        threshold: float | None = None,
    ) -> list[Correction]:
        """B×H×W×C ``pixels`` (any dtype, ``peak`` = full intensity) and B×H×W ``masks`` → ``out``
        (same shape and dtype, a copy of ``pixels``), rewritten inside the masks only."""
        corrections = []
        for i in range(pixels.shape[0]):  # one at a time: bounded memory, progress, interruption
            corrections.append(self._one_pixels(pixels[i], peak, masks[i], mask_peak, out[i], strength, size,
                                                threshold))
            if progress is not None:
                progress(i + 1, pixels.shape[0])
        return corrections

    def _one_pixels(self, pixels, peak, mask, mask_peak, out, strength, size, threshold=None) -> Correction:
        """One H×W×C image: the network at the working size, its result applied to ``out`` in tiles.

        Everything but the network is many small operations: they run on one thread (see one_thread)."""
        shape = pixels.shape[:2]
        low_shape = working_shape(*shape, size)
        rgb = pixels[..., :3]
        home = pixels.device
        with one_thread(home):
            image_low = downscale(rgb, peak, low_shape).to(self.device)
            coverage = downscale(mask[..., None], mask_peak, low_shape).to(self.device)
            mask_low = (coverage >= 0.5).float()
            if mask_low.sum() == 0:  # the subject vanishes at working resolution: take its largest pixel
                mask_low.view(-1)[coverage.argmax()] = 1.0
            box = bounding_box(mask)
        output, correction = self.estimate_low(image_low, mask_low, threshold=threshold, strength=strength)
        if correction.unchanged:
            return correction  # ``out`` is already a copy of the input
        if self.config.output == "transform":  # the predicted colour map applies to the full-size pixels as is
            gain, offset = gain_and_offset(output[0].to(home, torch.float32), peak)

            def colour_map(x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
                return (x.view(-1, 3) @ gain).add_(offset).view_as(x)  # addmm's broadcast bias is 5× slower

        else:
            pred_low = output
            with one_thread(home):
                pred_low = pred_low * mask_low + image_low * (1 - mask_low)
                colour_map = lift(self.method, image_low.to(home), pred_low.to(home), mask_low.to(home), shape, box, peak)
        apply_in_tiles(rgb, out[..., :3], mask, strength / mask_peak, peak, colour_map, box)
        return correction

    def estimate_low(
        self,
        image_low: torch.Tensor,
        mask_low: torch.Tensor,
        reference_low: torch.Tensor | None = None,
        *,
        threshold: float | None = None,
        strength: float = 1.0,
    ) -> tuple[torch.Tensor, Correction]:
        """The network on one 1×3×h×w image at its working size (binary 1×1×h×w mask): B×12 coefficients
        (``output="transform"``) or the 1×3×h×w picture, threshold applied, and its :class:`Correction`."""
        threshold = self.threshold_for(threshold)
        output, size, kept = self._run(
            lambda x, m: self._net.estimate(x, m, reference_low, threshold=threshold), image_low, mask_low
        )
        return output, Correction(float(size[0]), threshold, float(kept[0]), float(strength))

    def _official(self, image, mask, size, strength=1.0, threshold=None) -> tuple[torch.Tensor, Correction]:
        """Square resize (bilinear, antialiased like PIL), binary nearest mask, blend, bicubic back."""
        home = image.device
        image = image.to(self.device, torch.float32)
        mask = mask.to(self.device, torch.float32)
        shape = image.shape[-2:]
        image_sq = resize(image, (size, size), "bilinear")
        mask_sq = (resize(mask, (size, size), "nearest-exact") >= 0.5).float()
        threshold = self.threshold_for(threshold)
        pred, correction_size, kept = self._run(
            lambda x, m: self.model.estimate(x, m, threshold=threshold), image_sq, mask_sq
        )
        if self.config.output == "transform":  # the official pipeline has no transform head: apply it here
            pred = self.model.transform_output(image_sq, pred)
        blended = pred * mask_sq + image_sq * (1 - mask_sq)
        result = resize(blended, shape, "bicubic").clamp(0, 1).to(home)
        if strength < 1:
            result = image.to(home) + strength * (result - image.to(home))
        return result, Correction(float(correction_size[0]), threshold, float(kept[0]), float(strength))

    def _run(self, net: Callable[[torch.Tensor, torch.Tensor], Any], image: torch.Tensor, mask: torch.Tensor) -> Any:
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with autocast:
            out = net(image, mask)
        return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()

    def _guided(self, image, mask, layout, reference_mask, temporal, strength, mode, working_size, progress,
                threshold=None) -> Harmonized:
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
        corrections: list[Correction] = []
        out = harmonize_frames(self, rgb, masks, temporal=temporal, reference=references, strength=strength,
                               working_size=working_size, progress=progress, threshold=threshold,
                               report=corrections)
        return Harmonized(tensor_to_image(out.cpu(), alpha, form, (masks == 0).cpu()), corrections)


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
