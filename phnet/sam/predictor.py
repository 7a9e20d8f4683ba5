"""SamSegmenter: a SAM model plus the cached embedding of the current image.

The expensive step is explicit: :meth:`SamSegmenter.set_image` runs the image encoder once and caches
the embedding; every :meth:`SamSegmenter.predict` afterwards only runs the light prompt encoder and
mask decoder. :meth:`SamSegmenter.segment` does both, checking the prompt before it encodes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from ..imageio import image_to_uint8
from .architecture import SAM_PRESETS, SamArchitecture, import_segment_anything
from .loading import load_sam, locate_checkpoint
from .interruptible import interrupt_points as _interrupt_points
from .interruptible import interruptible
from .prompts import SamPrompt, make_prompt

if TYPE_CHECKING:
    from segment_anything.modeling import Sam
else:  # segment_anything loads on first use, not with the package: at run time (get_type_hints) the hints read Any
    Sam = Any


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _never() -> None:
    """An interrupt check that never stops the encode."""


def interrupt_points(model: Sam) -> int:
    """How many times one image encode calls ``interrupt`` (for a host's progress bar)."""
    return _interrupt_points(model.image_encoder)


def check_encodable(model: Sam, height: int, width: int) -> None:
    """A ``ValueError`` for a picture SAM cannot encode: scaled to its input size, a side of 0 pixels."""
    ResizeLongestSide = import_segment_anything("utils.transforms").ResizeLongestSide
    side = model.image_encoder.img_size  # segment_anything scales the long side to this
    if min(ResizeLongestSide.get_preprocess_shape(height, width, side)) < 1:
        raise ValueError(
            f"the image is {width}x{height} pixels: scaled to SAM's {side} px its short side would be 0; crop it "
            f"to at most {2 * side}:1 (or segment it in pieces)")


class SamSegmenter:
    """A SAM model plus the cached embedding of the current image.

    >>> seg = SamSegmenter.from_pretrained("models/sams/sam_vit_b_01ec64.pth")
    >>> seg.set_image(image)                      # runs the image encoder once
    >>> person = seg.predict(box=(40, 10, 200, 300))
    >>> face = seg.predict(points=[(120, 60)])    # reuses the cached embedding
    """

    def __init__(self, sam_model: Sam, device: str | torch.device | None = None):
        from ..devices import device_problem

        SamPredictor = import_segment_anything().SamPredictor

        problem = device_problem(device) if device is not None else None
        if problem:  # as .to() says it, not in torch's words
            raise ValueError(f"SamSegmenter(device={str(device)!r}): {problem}")
        weights = next(sam_model.parameters(), None)
        if weights is not None and weights.dtype != torch.float32:  # SamPredictor feeds it fp32 pictures
            raise ValueError(f"the SAM model holds {str(weights.dtype).removeprefix('torch.')} weights; SAM runs "
                             "in fp32 here: load it in fp32 (model.float())")
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = sam_model.to(self.device).eval()
        self.architecture: SamArchitecture | None = None
        self._predictor = SamPredictor(self.model)
        self._fingerprint: str | None = None
        self._size: tuple[int, int] | None = None
        # one call at a time: an encode patches the model's attention and caches its embedding, which another
        # thread's call would pull from under it; segment() holds it across encode and decode
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        """Picklable, and so deep-copyable and sendable to worker processes: without its lock, which is per process
        (a copy takes its own), and with its cached embedding."""
        with self._lock:
            state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ---- loading ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        filename: str | None = None,
        model_type: str | None = None,
        device: str | torch.device | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
    ) -> "SamSegmenter":
        """Load a SAM from a file, a folder holding one, or a Hub repo id (+ ``filename``).

        Original segment-anything checkpoints and Meta's transformers-layout repos
        (``facebook/sam-vit-base`` ...) both work. ``model_type`` (``"vit_b"``, ``"vit_l"``,
        ``"vit_h"``) is optional: the size is read from the weights; when given it is checked
        against them and used to pick a file in a folder or repo holding several.
        """
        if model_type is not None and model_type not in SAM_PRESETS:
            raise ValueError(f"unknown SAM model_type {model_type!r}; choose one of {sorted(SAM_PRESETS)} or None")
        checkpoint = locate_checkpoint(
            source,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            model_type=model_type,
        )
        sam, arch = load_sam(checkpoint, model_type=model_type)
        seg = cls(sam, device=device)
        seg.architecture = arch
        return seg

    @property
    def model_type(self) -> str:
        """``"vit_b"``, ``"vit_l"`` or ``"vit_h"`` when the loaded encoder matches a preset, else ``"custom"``
        (also for a model given to the constructor, whose size is not read)."""
        return self.architecture.name if self.architecture is not None else "custom"

    def to(self, device: str | torch.device) -> "SamSegmenter":
        """Move the model; the cached embedding is dropped (it lives on the old device) unless the device
        stays the same."""
        from ..devices import device_problem

        with self._lock:
            problem = device_problem(device)
            if problem:
                raise ValueError(f"SamSegmenter.to({str(device)!r}): {problem}")
            target = torch.device(device)
            if target == self.device:
                return self
            try:
                self.model.to(target)
            except BaseException:  # cut short (a full GPU): the weights already moved go back, none left there
                try:
                    self.model.to(self.device)
                except BaseException as back:  # the first error is the one raised; this one is logged
                    logging.getLogger("phnet").warning("phnet: moving the SAM weights back to %s failed too (%s): "
                                                       "some may be left on %s", self.device, back, target)
                finally:
                    self.reset_image()
                raise
            self.device = target
            self.reset_image()
        return self

    # ---- image ------------------------------------------------------------------------

    @property
    def is_image_set(self) -> bool:
        """Whether an image's embedding is cached, so that :meth:`predict` can run."""
        return self._predictor.is_image_set

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the current image, or None."""
        return self._size

    @property
    def image_embedding(self) -> torch.Tensor | None:
        """The image encoder's output for the current image (1 x C x h x w), or None."""
        return self._predictor.features if self._predictor.is_image_set else None

    def reset_image(self) -> None:
        """Drop the cached image and its embedding (freeing that memory); the next :meth:`set_image` encodes
        again, even the same pixels."""
        with self._lock:
            self._predictor.reset_image()
            self._fingerprint = None
            self._size = None

    def set_image(self, image: Any, interrupt: Callable[[], Any] | None = None) -> None:
        """Encode ``image`` (PIL, numpy or torch; see :mod:`phnet.imageio`) and cache the embedding.

        Setting the same pixels again is free: the encoder only runs for a new image.
        ``interrupt`` is called between the parts of the encoder (see ``phnet.sam.interruptible``); whatever it
        raises stops the encode. With several threads, use :meth:`segment`: another thread's image may be set
        between this and :meth:`predict`.
        """
        rgb = image_to_uint8(image)
        with self._lock:
            self._encode(rgb, interrupt)

    def _encode(self, rgb: np.ndarray, interrupt: Callable[[], Any] | None) -> None:
        digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
        digest.update(repr(rgb.shape).encode())
        fingerprint = digest.hexdigest()
        if self._predictor.is_image_set and fingerprint == self._fingerprint:
            return
        self.reset_image()
        check_encodable(self.model, rgb.shape[0], rgb.shape[1])
        if interrupt is None and self.device.type == "cpu":
            # global attention one head at a time pays on the CPU even when nobody can cancel: a ViT-B
            # encode at 1024² took 8.8 s instead of 10.3-12.0 s on two threads, 15.5 s instead of 24-25 s
            # on one, and holds ~70 MB of attention instead of ~800 MB
            interrupt = _never
        with interruptible(self.model.image_encoder, interrupt):
            self._predictor.set_image(rgb, image_format="RGB")
        self._fingerprint = fingerprint
        self._size = (int(rgb.shape[0]), int(rgb.shape[1]))

    # ---- prompts ----------------------------------------------------------------------

    def predict(
        self,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        point_labels: Sequence[int] | None = None,
        mask_prompt: Any = None,
        multimask: bool = False,
        soft: bool = False,
        threshold: float = 0.0,
    ) -> np.ndarray:
        """Mask for the current image as float32 H x W in [0, 1].

        box: (x0, y0, x1, y1) in pixels, clipped to the image.
        points: [(x, y), ...] with point_labels 1 = on the subject, 0 = not (default all 1).
        mask_prompt: an existing mask / alpha of the image; its bounding box becomes the box.
        multimask: let SAM propose three masks and keep the best-scoring one.
        soft: return sigmoid(logits) instead of the binary mask ``logits > threshold``.
        """
        with self._lock:
            if not self._predictor.is_image_set or self._size is None:
                raise RuntimeError("no image set: call SamSegmenter.set_image(image) before predict()")
            prompt = make_prompt(self._size, box, points, point_labels, mask_prompt)
            return self._decode(prompt, multimask, soft, threshold)

    def segment(
        self,
        image: Any,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        point_labels: Sequence[int] | None = None,
        mask_prompt: Any = None,
        multimask: bool = False,
        soft: bool = False,
        threshold: float = 0.0,
        interrupt: Callable[[], Any] | None = None,
    ) -> np.ndarray:
        """:meth:`set_image` + :meth:`predict`, with the prompt checked before the image is encoded; one call,
        so it is safe from several threads."""
        rgb = image_to_uint8(image)
        prompt = make_prompt((rgb.shape[0], rgb.shape[1]), box, points, point_labels, mask_prompt)
        _check_threshold(threshold)
        with self._lock:
            self._encode(rgb, interrupt)
            return self._decode(prompt, multimask, soft, threshold)

    def _decode(self, prompt: SamPrompt, multimask: bool, soft: bool, threshold: float) -> np.ndarray:
        _check_threshold(threshold)
        # SamPredictor.predict's steps, but of SAM's three low-resolution candidates only the best is enlarged to
        # the picture's size (each is H x W float32: 96 MB at 24 MP, and copied to the host)
        predictor, model = self._predictor, self.model
        points = boxes = None
        if prompt.points is not None:
            coords = predictor.transform.apply_coords(prompt.points, predictor.original_size)
            points = (torch.as_tensor(coords, dtype=torch.float, device=predictor.device)[None],
                      torch.as_tensor(prompt.labels, dtype=torch.int, device=predictor.device)[None])
        if prompt.box is not None:
            box = predictor.transform.apply_boxes(prompt.box, predictor.original_size)
            boxes = torch.as_tensor(box, dtype=torch.float, device=predictor.device)[None]
        with torch.no_grad():
            sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)
            low, scores = model.mask_decoder(
                image_embeddings=predictor.features,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=bool(multimask),
            )
            best = int(np.argmax(scores[0].cpu().numpy())) if multimask else 0
            logit = model.postprocess_masks(low[:, best:best + 1], predictor.input_size, predictor.original_size)
            logit = logit[0, 0].cpu().float()
        if soft:
            return torch.sigmoid(logit).numpy().astype(np.float32)
        return (logit > float(threshold)).numpy().astype(np.float32)


def _check_threshold(threshold: float) -> None:
    number = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
    if not number or not math.isfinite(threshold):  # NaN gave an empty mask without a word
        raise ValueError(f"threshold must be a finite number (a logit; 0 is SAM's own), got {threshold!r}")
