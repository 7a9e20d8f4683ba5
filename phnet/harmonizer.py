"""Harmonizer: PHNet wrapped for use on real images of any size, type and batch."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import logging
import math
import numbers
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch

from .compat import autocast_available
from .compositing import visible_scene
from .config import MAX_WORKING_SIZE, MIN_WORKING_SIZE, PHNetConfig
from .corrections import MATTE_UNUSED, MIN_BACKGROUND, TRANSPARENT_SCENE, Correction, log_corrections
from .devices import device_problem, pick_device
from .fullres import (METHODS, apply_in_tiles, bounding_box, downscale, lift, lift_change, remix, resize,
                      subject_change, subject_coverage, unit_float, working_shape)
from .graphs import GraphCache
from .imageio import (as_returned, check_mask_coverage, check_unit_range, image_to_tensor, mask_to_tensor,
                      tensor_to_image)
from .imageio.fast import image_from_pixels, image_pixels, mask_pixels
from .imageio.images import check_strided, integer_peak
from .imageio.masks import FAINT
from .mask_tools import checked_number
from .metrics import blend_weight, rms_change
from .modeling import PHNet
from .modeling.inference import InferencePHNet
from .modeling.transform import correction_size, gain_and_offset
from .official_pipeline import as_official_tester_reads, dithered, official_back, official_mask_square, official_square
from .precision import names_a_precision, resolve_dtype, slow_on
from .regions import (IGNORED_REFERENCE, flat_colours, mixed_from_one_colour, off_canvas, reference_at,
                      reference_pixels, tail_on_one_colour, working_mask)
from .temporal import FrameEstimate, Smoother, Temporal, as_temporal, signature
from .tiling import one_thread
from .weights import load_model, push_to_hub, save_pretrained

MODES = ("full", "official")
FULL_RESOLUTION_ON = ("auto", "model", "input")
# what the staged path copies to an accelerator: uint16 has too few kernels off the CPU in older torch
_STAGED_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)
# network_batch="auto": pictures per network call on CUDA (one elsewhere); how many working-size pixels one
# call may hold (the network's activations grow with them); and how many bytes of a batch's pictures may
# wait on the device for their shared call
CUDA_NETWORK_BATCH = 8
NETWORK_PIXELS = CUDA_NETWORK_BATCH * 512 * 512
STAGED_BYTES = 128 * 2**20


class LowResolution(NamedTuple):
    """One picture prepared for the network: at the working resolution on the model's device, with its
    binary mask, the mask's bounding box at full resolution (r0, r1, c0, c1; None if empty), where no trace
    of the mask reaches (``untouched``, see :func:`flat_colours`), and how much of each pixel the subject covers
    (``coverage``, 1×1×h×w, where the mask holds more than a trace: see :func:`~phnet.fullres.subject_coverage`
    and :func:`~phnet.fullres.unmix`; the mask's own values where it is the composite's alpha), for the methods that
    carry the network's change up."""

    image: torch.Tensor
    mask: torch.Tensor
    box: tuple[int, int, int, int] | None
    untouched: torch.Tensor | None = None
    coverage: torch.Tensor | None = None


class Harmonized(NamedTuple):
    """What :meth:`Harmonizer.harmonize` returns: the result, and one :class:`~phnet.corrections.Correction`
    per image saying how much its subject changed (and, when it did not, why)."""

    image: Any
    corrections: list[Correction]


MIN_SIDE = 8  # pixels: a thinner picture is stretched to the working size row by row; an untouched 94×1 strip
# came back changed by RMS 117


def _check_picture_size(height: int, width: int) -> None:
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"the picture is {width}×{height} pixels: PHNet needs at least {MIN_SIDE} on each side to "
                         "tell the subject's colours from the scene's; give a larger picture")


def own_precision(method):
    """A caller's autocast (a host program may run its whole graph under one) is off for the whole call: the
    full-resolution work stays fp32, and the network runs in the precision the Harmonizer chose."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with contextlib.ExitStack() as stack:
            for kind in sorted({"cpu", self.device.type}):
                if autocast_available(kind):
                    stack.enter_context(torch.autocast(kind, enabled=False))
            return method(self, *args, **kwargs)

    return call


class Harmonizer:
    """``harmonizer(image, mask)`` re-colours the masked subject to fit its background.

    ``mode="full"`` (default) keeps the aspect ratio, runs the network at the weights' working
    resolution and applies the change at full resolution: pixels where the mask is 0 come back
    bit-identical. ``mode="official"`` reproduces the official pipeline (squash to a square, run,
    blend, bicubic-resize the whole image back) for comparison.

    ``model``: a :class:`~phnet.PHNet` (:meth:`from_pretrained` loads one and builds the Harmonizer around it).
    ``device``: "cpu", "cuda", "cuda:N" or "mps"; by default CUDA, else MPS, else the CPU.

    ``dtype="auto"`` (default) picks the precision at run time for the device (``phnet.precision``):
    bf16 autocast on CPUs with AMX, fp32 on GPUs and elsewhere. "fp32" is exact on the CPU (on a GPU its
    convolutions follow torch's cuDNN TF32 setting, which is left as the host set it); "fp16" and "bf16" run
    the convolutions under autocast; the normalization statistics are always fp32.

    ``full_resolution_on``: where a picture's full-resolution work (the network's input taken from it,
    the change applied to it) runs. "input": where the caller's pixels are. "model": on the model's
    device; host pictures are copied there one at a time and only the subject's box comes back.
    "auto" (default): "model" on CUDA, "input" elsewhere.

    ``cuda_graphs=True``: on CUDA, the network call (with the fill of its change, see :meth:`estimate_batch`)
    is captured as a CUDA graph the first time a working size is seen and replayed after that
    (:mod:`phnet.graphs`), one launch instead of hundreds; a few seconds' capture per new size. Ignored on
    other devices.

    ``network_batch``: how many pictures of a batch go through the network in one call. "auto" (default):
    8 on CUDA, where a call on one picture is bound by the host (launches, small transfers), not by the
    GPU's arithmetic; fewer above a 512² working size (8·512² pixels a call) and when their copies on the
    GPU, with their masks, would pass 128 MiB; 1 elsewhere (on CPUs a batch saved under 10 % per picture at
    256² and cost 30–80 % at 512²).

    ``method``: how mode "full" carries the network's working-resolution result up to full resolution.
    "correction" (default): its change, upscaled and filled outward from the mask; "guided": a local affine colour
    fit, upscaled; "resize": the network's picture, resized up and blended in
    (:mod:`phnet.fullres`; README, *Full resolution*, compares them).

    The weights' do-no-harm rule holds back a correction of a subject smaller than their threshold
    (``config.correction_threshold``): it applies ``config.correction_floor`` of it (0: none, the subject left
    unchanged; the bundled weights apply a fifth); ``threshold=`` overrides the threshold per call (0 = the
    raw network).
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
        full_resolution_on: str = "auto",
        cuda_graphs: bool = False,
        network_batch: int | str = "auto",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")
        if full_resolution_on not in FULL_RESOLUTION_ON:
            raise ValueError(f"unknown full_resolution_on {full_resolution_on!r}; choose one of {FULL_RESOLUTION_ON}")
        self.full_resolution_on = full_resolution_on
        self.device = pick_device(device)
        self.requested_dtype = "auto" if dtype is None else dtype
        self.dtype = resolve_dtype(self.requested_dtype, self.device)
        self._warn_if_slow()
        self.method = method
        if not (isinstance(network_batch, str) and network_batch == "auto") and (
                isinstance(network_batch, bool) or not isinstance(network_batch, numbers.Integral)
                or network_batch < 1):
            raise ValueError(f"network_batch must be a whole number >= 1 or 'auto', got {network_batch!r}")
        self.network_batch = network_batch if isinstance(network_batch, str) else int(network_batch)
        self.cuda_graphs = cuda_graphs
        self.model = model

    @property
    def model(self) -> PHNet:
        """The :class:`~phnet.PHNet` it runs (fp32, in eval mode, on its device); another one may be put in place."""
        return self._model

    @model.setter
    def model(self, model: PHNet) -> None:
        """Another model (or the same one after changing its weights under torch.inference_mode, which keeps no
        version count) is folded into the inference network again: a model put in place was never run."""
        if not isinstance(model, PHNet):  # (refused before anything changes: the model there stays, and runs)
            inner = next((n for n in ("module", "_orig_mod") if isinstance(getattr(model, n, None), PHNet)), None)
            hint = f" (its .{inner} is one: give that)" if inner else ""
            raise ValueError(f"a Harmonizer's model must be a phnet.PHNet, got {type(model).__name__}{hint}; load one "
                             "with phnet.weights.load_model or Harmonizer.from_pretrained(...).model")
        # fp32 weights: the precision is dtype='s (a model cast with .half() or .double() met fp32 pictures)
        self._model = model.eval().to(self.device, torch.float32)
        self._set_network()

    def __copy__(self) -> "Harmonizer":
        """A Harmonizer on the same model with its own inference network and graph cache: a graph cache runs its
        owner's network, and would stop with its owner."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._set_network()
        return twin

    def _warn_if_slow(self) -> None:
        reason = slow_on(self.dtype, self.device)
        if reason:
            logging.getLogger("phnet").warning("phnet: %s", reason)

    def _set_network(self) -> None:
        """The eval-only network for the model's device, and its graph cache where graphs are used."""
        self._net = InferencePHNet(self.model)
        self._graphs = GraphCache(self._estimate) if self.cuda_graphs and self.device.type == "cuda" else None
        self._weights_seen = self._weights_version()

    def _weights_version(self) -> tuple:
        # weights made under torch.inference_mode (ComfyUI loads models so) keep no version count: -1. A cast or a
        # move (.half(), .to(...)) puts new tensors in place: their storage and dtype tell. A model switched to
        # training (.train()) is put back in eval mode: mode "official" runs it, and its batch norm would use and
        # rewrite the batch's statistics
        weights = tuple((-1 if t.is_inference() else t._version, t.dtype, t.device, t.data_ptr())
                        for t in (*self.model.parameters(), *self.model.buffers()))
        return weights, any(m.training for m in self.model.modules())

    def _check_weights(self) -> None:
        """The inference network folds some of the model's weights into its own: weights changed in place since
        (``harmonizer.model.load_state_dict``), or cast or moved (``harmonizer.model.half()``), are taken again, so
        no call mixes old and new ones; a model switched to training (``harmonizer.model.train()``) is put back in
        eval mode. Weights made under torch.inference_mode keep no version count: after changing those in place,
        assign ``harmonizer.model``."""
        if self._weights_version() != self._weights_seen:
            self.model = self._model

    @property
    def config(self) -> PHNetConfig:
        """The model's :class:`~phnet.PHNetConfig`: its working size, output and do-no-harm threshold."""
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
        full_resolution_on: str = "auto",
        cuda_graphs: bool = False,
        network_batch: int | str = "auto",
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
        return cls(model, device=device, dtype=dtype, method=method, full_resolution_on=full_resolution_on,
                   cuda_graphs=cuda_graphs, network_batch=network_batch)

    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype | str | None = None) -> Path:
        """Write the model as ``config.json`` + ``model.safetensors`` into ``directory`` (a folder, created where
        missing) for :meth:`from_pretrained`; returns it. ``dtype``: store the weights as "fp16", "bf16", "fp32" or a
        floating torch.dtype instead of as they are (fp32). See :func:`phnet.weights.save_pretrained`."""
        return save_pretrained(self.model, directory, dtype=dtype)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str = "Upload PHNet weights",
        base_model: str | None = None,
    ) -> str:
        """Upload what :meth:`save_pretrained` writes, with a model card, to the Hub model repo ``repo_id``
        ("owner/name", created where missing); returns its URL. ``private``: True creates it private and refuses an
        existing public one; None, the account's default. See :func:`phnet.weights.push_to_hub`."""
        return push_to_hub(self.model, repo_id, private=private, token=token, commit_message=commit_message,
                           base_model=base_model)

    @contextlib.contextmanager
    def interruptible(self, check: Callable[[], Any]) -> Iterator[None]:
        """Within this block every stage of a network call (each encoder, normalizer, skip and decoder stage)
        calls ``check()`` first; whatever it raises stops the call: a host's Cancel. At a large working size a
        call on a CPU takes seconds (2048²: ~5 s for the bundled weights on two cores). A replayed CUDA graph
        runs no Python, so it is checked between calls only. Only calls made by the thread that opened the
        block are checked: another thread's calls on the same Harmonizer are not this Cancel's."""
        owner = threading.get_ident()
        self._check_weights()  # the hooks go on the network that will run

        def hook(*_: Any) -> None:
            if threading.get_ident() == owner:
                check()

        stages = [stage for part in self._net.children()
                  for stage in (part if isinstance(part, torch.nn.ModuleList) else (part,))]
        handles = [stage.register_forward_pre_hook(hook) for stage in stages]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> "Harmonizer":
        """Move to ``device`` and/or change the precision; "auto" is decided again for the new device. If
        either is refused (no such device, an unknown precision), the Harmonizer stays as it was. As with
        ``torch.nn.Module.to``, a precision may come alone in the first place: ``.to(torch.bfloat16)``,
        ``.to("fp32")``."""
        if dtype is None and names_a_precision(device):
            device, dtype = None, device
        target = self.device if device is None else pick_device(device)
        requested = self.requested_dtype if dtype is None else dtype
        resolved = resolve_dtype(requested, target)
        self.device, self.requested_dtype, self.dtype = target, requested, resolved
        self._warn_if_slow()
        # put in place again: moved, its weights fp32 and in eval mode as any model given (one cast since with
        # .half() is cast back), and a new network: a graph holds the device and precision it was captured with
        self.model = self._model
        return self

    # ------------------------------------------------------------------------------------------------

    def __call__(self, image: Any, mask: Any, **options: Any) -> Any:
        """Harmonize PIL / numpy / torch images (single or batched); returns the same kind, size and layout.
        The options are :meth:`harmonize`'s; no report is returned, so none is measured (``measure=False``)."""
        return self.harmonize(image, mask, **{"measure": False, **options}).image

    @own_precision
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
        measure: bool = True,
        mask_is_alpha: bool = False,
    ) -> Harmonized:
        """Like calling the Harmonizer, and also says per image how much the subject changed: a
        :class:`Harmonized` ``(image, corrections)``, one :class:`~phnet.corrections.Correction` per image.

        ``image``: a PIL image, a numpy array (H×W, H×W×C or B×H×W×C) or a torch tensor (those, or C×H×W and
        B×C×H×W) with 1, 3 or 4 channels, uint8, uint16 or float in 0..1; the result comes back in the same kind,
        layout and dtype on the same device (grey as RGB, an alpha channel untouched). ``mask``: one channel of the
        same height and width (white / 1 = the subject, soft values blend), one for the whole batch or one per
        image; rules of both: :mod:`phnet.imageio`. ``layout``: one of ``phnet.imageio.LAYOUTS`` where the shape is
        ambiguous ("CHW" for a channels-first numpy array).

        ``strength``: 0..1, how much of the harmonized subject replaces the composite's (0: unchanged).
        ``mode``: "full" (default) or "official" (see the class). ``working_size``: the network's resolution for
        this call instead of the weights' ``config.image_size``, a multiple of 8 from 16 to 4096 (in mode "full"
        about its square in pixels, the aspect ratio kept). ``progress``: ``progress(done, total)``, called as a
        batch goes on. ``reference_mask``: match the subject to this part of the background only, a mask like
        ``mask`` (mode "full"). ``temporal``: the batch is a clip in time order, each frame's correction averaged
        over its neighbours within a shot: True, a window in frames, or a :class:`phnet.temporal.Temporal` (mode
        "full"; an empty mask then means the subject has left that frame).

        ``threshold``: the do-no-harm threshold (0–255 RMS) for this call instead of the weights' own; 0
        applies every correction the network proposes, which helps obvious mismatches and may harm
        near-right composites. ``measure``: measure the change in the result for the report: what its pixels
        show (``Correction.shown``), or where the result went through the working size (the whole picture in
        mode "official", the subject with methods "resize" and "guided") the change in it
        (``Correction.resampled``); False spares that pass (a benchmark of the official pipeline).

        ``mask_is_alpha``: the subject was pasted with this mask as its alpha (composite = a·subject + (1 − a)·
        background, as :func:`phnet.compositing.paste_subject` makes it), so a soft edge's colours are part
        background and it gets the subject's whole change (methods "correction" and "guided"). False (default): a
        soft edge is a feather, which blends the change by its value (a pasted subject's wide soft edge then gets
        about 0.8 of its change); a mask cannot tell the two apart, and True would undo a feather. Elsewhere (mode
        "official", method "resize", a colour-transform model) it changes nothing, and the report says so.

        In mode "full" an RGBA composite's subject is matched to the part of its background that its alpha shows
        (within ``reference_mask``, where given): what lies under alpha 0 is seen by nobody (see
        :func:`phnet.compositing.visible_scene`; ``Correction.notes`` says so)."""
        threshold = self._check_threshold(threshold)
        strength = as_number(strength, "strength")
        size = self.check_options(strength, mode, working_size, progress)
        _check_flag(mask_is_alpha, "mask_is_alpha")
        _check_devices(image=image, mask=mask, reference_mask=reference_mask)
        clip = as_temporal(temporal) is not None  # a window of 0 frames is still a clip; numpy False is no clip
        guided = reference_mask is not None or clip
        if guided and mode != "full":
            raise ValueError("reference_mask and temporal work with mode='full' only")
        if mode == "official":
            image = as_official_tester_reads(image)
        native = image_pixels(image, layout)
        converted = None if native is not None or guided else image_to_tensor(image, layout)  # converted first
        if converted is not None and (mode != "full" or converted[1] is None):
            rgb, alpha, form = converted
            _check_picture_size(*rgb.shape[-2:])
            masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1])
            out, corrections = self._harmonize_tensor(rgb, masks, strength, mode, size, progress, threshold,
                                                      allow_empty=True, mask_is_alpha=mask_is_alpha)
            if measure:  # on the pixels handed back: rounded to the caller's levels
                corrections = self.measured(corrections, mode, rgb.permute(0, 2, 3, 1),
                                             as_returned(out, form).permute(0, 2, 3, 1), masks[:, 0], 1.0, 1.0)
            else:
                corrections = _weighed(corrections, mode, masks[:, 0], 1.0)
            keep = (masks == 0) if mode == "full" else torch.zeros_like(masks, dtype=torch.bool)
            result = Harmonized(tensor_to_image(out.cpu(), alpha, form, keep.cpu()), corrections)
        else:
            # a frame of a clip, or a picture of a batch, whose mask is empty (no subject) stays as it is
            pixels, peak, masks, mask_peak, finish = self.pixels_of(
                image, mask, layout, native=native, converted=converted, allow_empty=True,
                unit="frame" if clip else "picture")
            out = pixels.clone()  # alpha and background are the caller's own pixels; the subject is rewritten
            references = None if reference_mask is None else reference_pixels(reference_mask, pixels.shape[:3])
            narrowed = None
            if mode == "full" and pixels.shape[-1] == 4:  # what lies under an RGBA composite's alpha 0 is no scene
                scene = visible_scene(pixels[..., 3], masks, references, mask_peak)
                if scene is not None:
                    references, narrowed = scene
            if guided or narrowed:  # one frame after another: the same prepare / estimate / apply, smoothed between
                corrections = self._harmonize_frames(pixels, peak, masks, mask_peak, out, as_temporal(temporal),
                                                     references, strength, size, progress, threshold, mask_is_alpha)
            elif mode == "official":
                corrections = self._official_pixels(pixels, peak, masks, mask_peak, out, strength, size, progress,
                                                    threshold)
            else:
                corrections = self._harmonize_pixels(pixels, peak, masks, mask_peak, out, strength, size, progress,
                                                     threshold, mask_is_alpha)
            if measure:  # (a clip's frames carry their masks' weight from estimate_frames already)
                shown = finish.returned(out) if hasattr(finish, "returned") else out  # a converted input's levels
                corrections = self.measured(corrections, mode, pixels, shown, masks, peak, mask_peak, weigh=not clip)
            elif not clip:
                corrections = _weighed(corrections, mode, masks, mask_peak)
            if narrowed:
                corrections = [dataclasses.replace(c, notes=(*c.notes, TRANSPARENT_SCENE))
                               if left_out and not c.empty_mask else c for c, left_out in zip(corrections, narrowed)]
            result = Harmonized(finish(out), corrections)
        if mask_is_alpha and not self.carries_soft_edges(mode):
            result = result._replace(corrections=_noted(result.corrections, MATTE_UNUSED))
        log_corrections(result.corrections, "frames" if clip else "images")
        return result

    def carries_soft_edges(self, mode: str = "full") -> bool:
        """Whether ``mask_is_alpha`` changes anything: only methods "correction" and "guided" of mode "full", with
        a model whose output is a picture, carry the working-size change up to a soft edge."""
        return carries_soft_edges(mode, self.method, self.config.output)

    def measured(self, corrections, mode, before, after, masks, peak, mask_peak, weigh=True) -> list[Correction]:
        """Each changed picture's correction with what its mask let through (``Correction.weight``: a faint mask
        blends in part of the change) and the change measured in the result: where it went through the working
        size (mode "official", methods "resize" and "guided") as ``Correction.resampled`` (the network's
        correction alone understates what fine detail the subject, and there the background, lost), else as
        ``Correction.shown`` (what was applied, after colours pushed past 0 or 255 were clipped)."""
        if all(c.unchanged and c.strength != 0 for c in corrections):  # at strength 0 the report gives the weight
            return corrections
        resampled = mode == "official" or (self.method != "correction" and self.config.output != "transform")
        if mode == "official":  # a soft mask is read as 1 bit there (dithered): each pixel gets all or none
            weights = [1.0] * len(corrections)
        else:
            weights = blend_weight(masks, mask_peak) if weigh else [c.weight for c in corrections]
        out = []
        for i, c in enumerate(corrections):
            if c.unchanged:  # at strength 0, what strength 1 would apply goes through the mask too
                out.append(dataclasses.replace(c, weight=weights[i]) if c.strength == 0 else c)
                continue
            # the subject read in its own box (a grid over the whole picture may step past a thin one); the
            # background, where the result went through the working size, over the whole picture
            r0, r1, c0, c1 = bounding_box(masks[i]) or (0, masks[i].shape[0], 0, masks[i].shape[1])
            subject = rms_change(before[i][r0:r1, c0:c1], after[i][r0:r1, c0:c1], masks[i][r0:r1, c0:c1], peak,
                                 mask_peak)[0]
            if resampled:
                background = rms_change(before[i], after[i], masks[i], peak, mask_peak)[1]
                out.append(dataclasses.replace(c, weight=weights[i], resampled=(subject, background)))
            else:
                out.append(dataclasses.replace(c, weight=weights[i], shown=subject))
        return out

    @staticmethod
    def pixels_of(image: Any, mask: Any, layout: str | None = None, *, native=None, converted=None,
                  allow_empty: bool = False, unit: str = "picture", one_of_more: bool = False):
        """(B×H×W×C pixels, their full intensity, B×H×W masks, theirs, ``finish(out)`` → the caller's kind),
        with the masks' coverage checked (empty masks refused unless ``allow_empty``: then only where every
        one is empty; ``unit`` names what a mask belongs to, for the message, and a clip's ("frame") integer
        masks are read on one scale, not each on its own; ``one_of_more``: frames of a
        longer clip, judged as a whole by the caller: see ``check_mask_coverage``).

        The caller's own pixels where they can be used as they are (see imageio.fast; ``native`` when the
        caller has looked already); other inputs (grey, unusual dtypes) are converted once, and converted
        back with the mask's zeros kept."""
        native = native if native is not None else image_pixels(image, layout)
        if native is not None:
            pixels, peak, form = native
            batch, height, width = pixels.shape[:3]
            _check_picture_size(height, width)
            clip = unit == "frame"  # a clip's integer masks are read on one scale
            found = mask_pixels(mask, batch, height, width, one_scale=clip)
            masks, mask_peak = found if found is not None else (
                mask_to_tensor(mask, batch, height, width, one_scale=clip)[:, 0], 1.0)
            check_mask_coverage(masks, mask_peak, allow_empty=allow_empty, unit=unit, one_of_more=one_of_more)
            return pixels, peak, masks.to(pixels.device), mask_peak, lambda out: image_from_pixels(out, form)
        rgb, alpha, form = converted if converted is not None else image_to_tensor(image, layout)
        _check_picture_size(*rgb.shape[-2:])
        masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1], one_scale=unit == "frame")
        check_mask_coverage(masks, allow_empty=allow_empty, unit=unit, one_of_more=one_of_more)

        def finish(out: torch.Tensor) -> Any:
            return tensor_to_image(out[..., :3].permute(0, 3, 1, 2).cpu(), alpha, form, (masks == 0).cpu())

        finish.returned = lambda out: as_returned(out[..., :3].permute(0, 3, 1, 2), form).permute(0, 2, 3, 1)
        pixels = rgb if alpha is None else torch.cat([rgb, alpha.to(rgb.device)], 1)  # alpha: what shows the scene
        return pixels.permute(0, 2, 3, 1), 1.0, masks[:, 0], 1.0, finish

    @own_precision
    def harmonize_tensor(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        *,
        strength: float = 1.0,
        mode: str = "full",
        working_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        mask_is_alpha: bool = False,
    ) -> torch.Tensor:
        """B×3×H×W float images in [0, 1] and B×1×H×W masks (float in [0, 1], or 0/1 integer or bool) →
        harmonized B×3×H×W (on the input's device); a picture whose mask is empty comes back as it was (only a
        batch whose every mask is empty is refused). 8- and 16-bit pictures and masks go to ``harmonizer(image,
        mask)``, which reads them as they are. ``mask_is_alpha``: see :meth:`harmonize`."""
        strength = as_number(strength, "strength")
        size = self.check_options(strength, mode, working_size, progress)
        _check_flag(mask_is_alpha, "mask_is_alpha")
        out, corrections = self._harmonize_tensor(images, masks, strength, mode, size, progress, None,
                                                  allow_empty=True, mask_is_alpha=mask_is_alpha)
        corrections = _weighed(corrections, mode, masks[:, 0], 1.0)
        if mask_is_alpha and not self.carries_soft_edges(mode):
            corrections = _noted(corrections, MATTE_UNUSED)
        log_corrections(corrections)  # as every call says what it left
        return out

    def _harmonize_tensor(self, images, masks, strength, mode, size, progress, threshold, allow_empty=False,
                          mask_is_alpha=False):
        """The result is made outside inference mode and written inside it: a caller may change it in place or
        use it with autograd, as any tensor of theirs."""
        _check_pair(images, masks, allow_empty)
        if mode == "full":
            out = images.detach().clone()
            pixels = images.detach().permute(0, 2, 3, 1)
            corrections = self._harmonize_pixels(pixels, 1.0, masks[:, 0], 1.0, out.permute(0, 2, 3, 1), strength,
                                                 size, progress, threshold, mask_is_alpha)
            return out, corrections
        images = images.detach()
        out, corrections = images.clone(), []
        self._check_weights()  # mode "official" runs the model itself: in the Harmonizer's precision, in eval mode
        for i in range(images.shape[0]):  # one at a time: bounded memory, progress, interruption
            if images.shape[0] == 1 or bool(masks[i].any()):  # a single picture's mask was checked
                with torch.inference_mode():
                    out[i : i + 1], correction = self._official(images[i : i + 1], masks[i : i + 1], size,
                                                                strength, threshold)
            else:  # no subject in this picture of the batch: left as it was
                correction = Correction.no_subject(self.threshold_for(threshold), float(strength))
            corrections.append(correction)
            if progress is not None:
                progress(i + 1, images.shape[0])
        return out, corrections

    def check_options(self, strength: float, mode: str, working_size: int | None, progress=None) -> int:
        """The working size a call with these options uses; a ``ValueError`` naming the bad option otherwise."""
        if progress is not None and not callable(progress):  # it failed after the first picture was computed
            raise ValueError(f"progress must be a function progress(done, total) or None, got {progress!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if not 0.0 <= as_number(strength, "strength") <= 1.0:
            raise ValueError(f"strength must be in 0..1, got {strength}")
        size = self.config.image_size if working_size is None else working_size
        # any whole number: 256.0 from a UI's number field, numpy's int64 or float32, a one-element tensor too
        if isinstance(size, torch.Tensor) and size.numel() == 1 and size.dtype != torch.bool:
            size = size.item()
        rule = f"a multiple of 8 from {MIN_WORKING_SIZE} to {MAX_WORKING_SIZE}"
        whole = as_number(size, "working_size", rule).is_integer()
        if not whole or not MIN_WORKING_SIZE <= size <= MAX_WORKING_SIZE or size % 8:
            raise ValueError(f"working_size must be {rule}, got {size!r}")
        return int(size)

    @staticmethod
    def _check_threshold(threshold: float | None) -> float | None:
        rule = "a number from 0 to 255 (RMS, 0-255 units), as a config's is, or None for the weights' own"
        if threshold is None:
            return None
        value = as_number(threshold, "threshold", rule)
        if not math.isfinite(value) or not 0 <= value <= 255:
            raise ValueError(f"threshold must be {rule}, got {threshold!r}")
        return value

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
        mask_is_alpha: bool = False,
    ) -> list[Correction]:
        """B×H×W×C ``pixels`` (any dtype, ``peak`` = full intensity) and B×H×W ``masks`` → ``out``
        (same shape and dtype, a copy of ``pixels``), rewritten inside the masks only.

        :meth:`pictures_per_call` pictures at a time are prepared and go through the network together, then
        each is applied: bounded memory, progress after every picture, interruption between calls."""
        count, chunk = pixels.shape[0], self.pictures_per_call(pixels, size, masks)
        # a picture of a batch with no subject (an empty mask) stays as it was; a single one has a subject (its
        # mask was checked), and is not read again
        present = (masks.flatten(1).amax(1) > 0).tolist() if count > 1 else [True]
        empty = Correction.no_subject(self.threshold_for(threshold), float(strength))
        corrections: list[Correction | None] = [None if here else empty for here in present]
        subjects = [i for i in range(count) if present[i]]
        done = count - len(subjects)
        for start in range(0, len(subjects), chunk):
            rows = subjects[start : start + chunk]
            staged = [self.staged(pixels[i], masks[i]) for i in rows]
            lows = [self.prepare_low(p, peak, m, mask_peak, size, mask_is_alpha) for p, m in staged]
            outputs, found = self.estimate_batch(torch.cat([low.image for low in lows]),
                                                 torch.cat([low.mask for low in lows]),
                                                 untouched=torch.cat([low.untouched for low in lows]),
                                                 threshold=threshold, strength=strength, as_change=self.lifts_change,
                                                 coverage=_coverage(lows) if self.lifts_change else None)
            for j, i in enumerate(rows):
                # else ``out`` is already a copy of the input; a correction of exactly 0 is left out too: methods
                # "guided" and "resize" would re-make the subject from its own low-resolution picture
                if not found[j].unchanged and found[j].size > 0:
                    (p, m), low = staged[j], lows[j]
                    self.apply_low(p, peak, m, mask_peak, out[i], strength, low, outputs[j : j + 1],
                                   as_change=self.lifts_change)
                staged[j] = None  # done with its device copy
                corrections[i] = found[j]
                done += 1
                if progress is not None:
                    progress(done, count)
        return corrections

    def pictures_per_call(self, pixels: torch.Tensor, size: int, masks: torch.Tensor | None = None) -> int:
        """How many of the B×H×W×C ``pixels`` share one network call at working size ``size`` (see
        ``network_batch``); copies of them and of their ``masks`` (float ones when not given) wait on the GPU."""
        if self.network_batch != "auto":
            return self.network_batch
        if self.device.type != "cuda":
            return 1
        height, width = working_shape(*pixels.shape[1:3], size)
        count = min(CUDA_NETWORK_BATCH, NETWORK_PIXELS // (height * width))
        if self.full_resolution_device(pixels[0]) != pixels.device:  # their copies wait there for the call
            mask_bytes = masks[0].nbytes if masks is not None else pixels[0, ..., 0].numel() * 4
            count = min(count, STAGED_BYTES // max(1, pixels[0].nbytes + mask_bytes))
        return max(1, count)

    def full_resolution_device(self, pixels: torch.Tensor) -> torch.device:
        """Where the full-resolution work on these pixels runs (see ``full_resolution_on``)."""
        where = self.full_resolution_on
        if where == "auto":
            where = "model" if self.device.type == "cuda" else "input"
        if where == "input" or pixels.dtype not in _STAGED_DTYPES:
            return pixels.device
        return self.device

    def staged(self, pixels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One picture and its mask where their full-resolution work runs: themselves, or copies there."""
        device = self.full_resolution_device(pixels)
        return pixels.to(device), mask.to(device)

    def prepare_low(self, pixels, peak, mask, mask_peak, size, mask_is_alpha=False) -> "LowResolution":
        """One H×W×C picture (any dtype, ``peak`` = full intensity) and its H×W mask at the working
        resolution on the model's device, and the mask's bounding box at full resolution. ``mask_is_alpha``: the
        subject's coverage is the mask's own soft values (see :meth:`harmonize`).

        Everything but the network is many small operations: they run on one thread (see one_thread)."""
        low_shape = working_shape(*pixels.shape[:2], size)
        home = pixels.device
        with one_thread(home):
            image_low = downscale(pixels[..., :3], peak, low_shape).to(self.device)
            soft, subject = working_mask(mask, mask_peak, low_shape)
            soft, mask_low = soft.to(self.device), subject.to(self.device).float()
            box = bounding_box(mask)
            # a subject that vanishes at working resolution keeps its largest pixel (no read back from the device),
            # or, rounded away altogether (a pixel or two of a big picture), the one under its box's centre
            largest = soft.argmax()
            if box is not None:
                h, w = low_shape
                centre = (min(h - 1, (box[0] + box[1]) * h // (2 * pixels.shape[0])) * w
                          + min(w - 1, (box[2] + box[3]) * w // (2 * pixels.shape[1])))
                largest = torch.where(soft.amax() > 0, largest, torch.full_like(largest, centre))  # no copy
            largest = torch.zeros_like(mask_low).view(-1).scatter_(0, largest.view(1), 1.0)
            mask_low = torch.where(mask_low.amax() > 0, mask_low, largest.view_as(mask_low))
            untouched = torch.nn.functional.max_pool2d((soft > 0).float(), 5, stride=1, padding=2) == 0
            # where no trace of the mask is counts as the scene for a cut-out: its edge mixes the subject with
            # that one colour and no more, or it is most of what the binary mask leaves (a mask feathered or
            # grown past the cut-out's own edge) and the mask's faint tail lies on that colour too; a real scene
            # under a wide feather's tail is neither (black bars beside it are most of what a feather leaves)
            scene = torch.nn.functional.max_pool2d(mask_low, 5, stride=1, padding=2) < 0.5
            most = untouched.float().mean() >= 0.5 * scene.float().mean()
            off = off_canvas(image_low, untouched)
            most &= tail_on_one_colour(off, soft)
            untouched &= mixed_from_one_colour(off, soft) | most
            coverage = None  # how much of each pixel the subject covers, for the methods that carry a change up:
            if self.carries_soft_edges():  # correction fills it, guided fits it
                coverage = (soft if mask_is_alpha else
                            subject_coverage(mask, mask_peak, low_shape, soft).to(self.device))
        return LowResolution(image_low, mask_low, box, untouched, coverage)

    def working_background(self, pixels, mask, mask_peak, size) -> float:
        """The share of an H×W×C picture that is background at the working size, as :meth:`prepare_low` makes
        its mask (the network's background statistics come from it)."""
        low_shape = working_shape(*pixels.shape[:2], size)
        with one_thread(mask.device):
            _, subject = working_mask(mask, mask_peak, low_shape)
        return 1 - float(subject.float().mean())

    @property
    def lifts_change(self) -> bool:
        """Whether the network's pictures reach full resolution as their change filled outward from the
        subject (method "correction"), which :meth:`estimate_batch` then computes for the whole batch."""
        return self.config.output != "transform" and self.method == "correction"

    def apply_low(self, pixels, peak, mask, mask_peak, out, strength, low: "LowResolution", output, *,
                  as_change: bool = False) -> None:
        """This picture's ``output`` of :meth:`estimate_batch` (12 coefficients, the 1×3×h×w picture at the
        working size, or with ``as_change`` its change filled outward) applied to the subject of ``out`` (a
        copy of ``pixels``), in tiles at full resolution.

        ``pixels`` and ``mask`` may be staged copies on another device than ``out`` (see :meth:`staged`):
        the subject's box is worked on there (:meth:`apply_to_box`) and copied back into ``out``."""
        if out.device != pixels.device:
            r0, r1, c0, c1 = low.box
            out[r0:r1, c0:c1] = self.apply_to_box(pixels, peak, mask, mask_peak, strength, low, output,
                                                  as_change=as_change).to(out.device)
            return
        self._apply(pixels, peak, mask, mask_peak, out, (0, 0), strength, low, output, as_change)

    def apply_to_box(self, pixels, peak, mask, mask_peak, strength, low: "LowResolution", output, *,
                     as_change: bool = False) -> torch.Tensor:
        """:meth:`apply_low` on the subject's box only: a new box-sized copy of ``pixels``, rewritten inside the
        mask, on their device (what a staged picture copies back; no full-size copy is made)."""
        r0, r1, c0, c1 = low.box
        box_out = pixels[r0:r1, c0:c1].clone()
        self._apply(pixels, peak, mask, mask_peak, box_out, (r0, c0), strength, low, output, as_change)
        return box_out

    def _apply(self, pixels, peak, mask, mask_peak, out, origin, strength, low, output, as_change) -> None:
        """``out`` holds the rows and columns of ``pixels`` from ``origin`` (its top-left pixel) on."""
        home = pixels.device
        if self.config.output == "transform":  # the predicted colour map applies to the full-size pixels as is
            gain, offset = gain_and_offset(output[0].to(home, torch.float32), peak)

            def colour_map(x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
                return (x.view(-1, 3) @ gain).add_(offset).view_as(x)  # addmm's broadcast bias is 5× slower

        elif as_change:
            with one_thread(home):
                colour_map = lift_change(output.to(home, torch.float32), pixels.shape[:2], low.box, peak)
        else:
            image_low, mask_low = low.image.to(home), low.mask.to(home)
            coverage = None if low.coverage is None else low.coverage.to(home)
            with one_thread(home):
                pred_low = output.to(home) * mask_low + image_low * (1 - mask_low)
                colour_map = lift(self.method, image_low, pred_low, mask_low, pixels.shape[:2], low.box, peak,
                                  coverage)
        apply_in_tiles(pixels[..., :3], out[..., :3], mask, strength / mask_peak, peak, colour_map, low.box,
                       origin=origin)

    @own_precision
    def estimate_frame(self, pixels, peak, mask, mask_peak, size, reference=None, threshold=None,
                       strength=1.0, reference_peak=1.0, mask_is_alpha=False) -> FrameEstimate:
        """One H×W×C frame's proposed correction as ``phnet.temporal`` smooths it: 12 coefficients, or the
        low-resolution change filled outward from the subject; ``reference``: an H×W mask in 0..reference_peak."""
        return self.estimate_frames(pixels[None], peak, mask[None], mask_peak, size,
                                    None if reference is None else reference[None], threshold, strength,
                                    reference_peak, mask_is_alpha)[0]

    @own_precision
    def estimate_frames(self, pixels, peak, masks, mask_peak, size, references=None, threshold=None,
                        strength=1.0, reference_peak=1.0, mask_is_alpha=False) -> list[FrameEstimate]:
        """:meth:`estimate_frame` for B×H×W×C frames (B×H×W masks and references; or sequences of H×W×C and H×W
        tensors) in one network call."""
        lows = []
        for i in range(len(pixels)):  # the full-size copies are let go once prepared
            staged_pixels, staged_mask = self.staged(pixels[i], masks[i])
            lows.append(self.prepare_low(staged_pixels, peak, staged_mask, mask_peak, size, mask_is_alpha))
        images, masks_low = torch.cat([low.image for low in lows]), torch.cat([low.mask for low in lows])
        shape = tuple(images.shape[-2:])
        refs = None
        if references is not None:
            refs = torch.cat([reference_at(r, shape, masks[i], mask_peak, reference_peak)
                              for i, r in enumerate(references)]).to(self.device)
        # method "guided" fits to the subject's own change as a frame is applied (see _apply)
        outputs, reports = self.estimate_batch(images, masks_low, refs, threshold=threshold, strength=strength,
                                               as_change=True, untouched=torch.cat([low.untouched for low in lows]),
                                               coverage=_coverage(lows) if self.lifts_change else None)
        if refs is not None:  # a reference with no background pixel left was ignored: say so
            found = (refs * (1 - masks_low)).flatten(1).any(1).tolist()
            reports = [r if f else dataclasses.replace(r, notes=(*r.notes, IGNORED_REFERENCE))
                       for r, f in zip(reports, found)]
        # what each frame's mask lets through, for its report (and its smoothed one) as a picture's has
        weights = (blend_weight(masks, mask_peak) if isinstance(masks, torch.Tensor) else  # one read for the call
                   [blend_weight(m[None], mask_peak)[0] for m in masks])
        reports = [dataclasses.replace(r, weight=w) if w != 1.0 else r for r, w in zip(reports, weights)]
        frames = []
        for j, low in enumerate(lows):
            frames.append(FrameEstimate(outputs[j : j + 1], signature(low.image, low.mask), shape, reports[j], low,
                                        tuple(pixels[j].shape[:2])))
        return frames

    @own_precision
    def apply_frame(self, pixels, peak, mask, mask_peak, out, frame: FrameEstimate, correction, strength=1.0):
        """A (smoothed) ``correction`` of :meth:`estimate_frame` applied to ``out`` (a copy of ``pixels``). A
        frame with too little background is left as it was, whatever its neighbours' correction."""
        if frame.report.background is not None or frame.report.flat is not None:
            return
        low = frame.low
        pixels, mask = self.staged(pixels, mask)  # a frame waiting for its neighbours is not kept on the device
        if self.lifts_change:  # the correction is the change, filled outward already: it is carried up as it is
            self.apply_low(pixels, peak, mask, mask_peak, out, strength, low, correction, as_change=True)
            return
        if self.config.output != "transform" and not bool(correction.any()):
            return  # left as it was (guided and resize would otherwise re-make the subject from its own picture)
        output = correction if self.config.output == "transform" else low.image + correction * low.mask
        self.apply_low(pixels, peak, mask, mask_peak, out, strength, low, output)

    def smoothed_report(self, frame: FrameEstimate, correction: torch.Tensor) -> Correction:
        """The frame's report, with the size of the ``correction`` it got after smoothing (``Correction.smoothed``,
        measured at the working size) where that differs from its own by a hundredth of a level or more."""
        low = frame.low

        def size(output: torch.Tensor) -> float:  # the frame's own output is measured the same way (clamped)
            output = output.to(low.image.device)
            if self.config.output == "transform":
                change = self.model.transform_output(low.image.float(), output.float()) - low.image.float()
            else:  # the change itself (filled outward from the subject, for method "correction"); there the
                change = output  # subject's own (see fullres.unmix), measured as the network proposed it
                if self.lifts_change and low.coverage is not None:
                    change = remix(change, low.coverage.to(change.device))
            return float(correction_size(change, low.mask)[0])

        applied = size(correction)
        if abs(applied - size(frame.correction)) < 0.01:
            return frame.report
        return dataclasses.replace(frame.report, smoothed=applied)

    @torch.inference_mode()
    def _harmonize_frames(self, pixels, peak, masks, mask_peak, out, temporal, references, strength, size,
                          progress, threshold, mask_is_alpha=False) -> list[Correction]:
        """B×H×W×C frames in time order: each estimated, its correction smoothed with its shot's neighbours
        (``phnet.temporal.Smoother``), and applied as soon as it is final. ``progress`` counts 2·B steps.

        A frame whose mask is empty (the subject is out of the picture), or holds only a trace of one (under
        1/64 of full: a matte's specks), stays as it is, and the smoothing goes on across it from the frames
        before to the frames after: a trace would pull its neighbours toward what the network made of it.
        ``references``: None, or (B×H×W reference masks, the value meaning "fully in the region")."""
        references, reference_peak = references if references is not None else (None, 1.0)
        count = pixels.shape[0]
        strongest = masks.flatten(1).amax(1).float()
        # (a batch guided by a reference mask alone is no clip: a faint mask there is a faint subject, as without)
        present = (strongest >= FAINT * mask_peak if temporal is not None else strongest > 0).tolist()
        traces = (strongest > 0).tolist()
        # a frame with too little background is left as it was, as on its own: its neighbours' smoothed
        # correction must not reach it either, and its zero must not pull theirs down. Judged at the working
        # size, as the network sees the frame: a soft border at full size may be no background there
        background = [self.working_background(pixels[i], masks[i], mask_peak, size) if here else 1.0
                      for i, here in enumerate(present)]
        cramped = [p and b < MIN_BACKGROUND for p, b in zip(present, background)]
        # (a frame whose background is one flat colour is found by the network call: the smoother keeps it in
        # time and out of its averages, and apply_frame leaves it as it was)
        order = [i for i in range(count) if present[i] and not cramped[i]]  # what the smoother sees, in order
        temporal = temporal or Temporal(window=0)
        outside = [cut for cut in temporal.cuts if not 0 <= cut < count]
        if outside:
            raise ValueError(f"cuts {outside} are not frames of this clip of {count}: give indices from 0 to "
                             f"{count - 1}")
        if temporal.cuts and len(order) < count:  # a cut given by hand names a frame: the next one with a subject
            cuts = {bisect.bisect_left(order, cut) for cut in temporal.cuts}
            temporal = dataclasses.replace(temporal, cuts=tuple(sorted(k for k in cuts if k < len(order))))
        smoother = Smoother(temporal)
        held: dict[int, FrameEstimate] = {}  # estimated, not yet applied: at most a window of them
        reports: list[Correction | None] = [None] * count
        done = 0

        def step(steps: int = 1) -> None:
            nonlocal done
            done += steps
            if progress is not None:
                progress(done, 2 * count)

        def finish(ready: list[tuple[int, torch.Tensor]]) -> None:
            for k, correction in ready:
                j = order[k]
                frame = held.pop(j)
                self.apply_frame(pixels[j], peak, masks[j], mask_peak, out[j], frame, correction, strength)
                reports[j] = self.smoothed_report(frame, correction)
                step()

        for i in range(count):  # ``out`` is already a copy of the frames left as they were
            if not present[i]:
                reports[i] = Correction.no_subject(self.threshold_for(threshold), float(strength), trace=traces[i])
                step(2)
            elif cramped[i]:
                reports[i] = Correction(0.0, self.threshold_for(threshold), 0.0, float(strength),
                                        background=background[i])
                step(2)
        chunk = self.pictures_per_call(pixels, size, masks)
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            estimated = self.estimate_frames([pixels[i] for i in rows], peak, [masks[i] for i in rows], mask_peak,
                                             size, None if references is None else [references[i] for i in rows],
                                             threshold, strength, reference_peak, mask_is_alpha)
            for i, frame in zip(rows, estimated):
                held[i] = frame
                reports[i] = frame.report
                step()
                finish(smoother.push(frame))
        finish(smoother.finish())
        return reports

    @torch.inference_mode()
    def estimate_batch(
        self,
        images_low: torch.Tensor,
        masks_low: torch.Tensor,
        references_low: torch.Tensor | None = None,
        *,
        threshold: float | None = None,
        strength: float = 1.0,
        as_change: bool = False,
        untouched: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[Correction]]:
        """The network on B×3×h×w pictures of one working size (binary B×1×h×w masks) in one call: B×12
        coefficients (``output="transform"``) or the B×3×h×w pictures, threshold applied, and a
        :class:`Correction` for each (read back from the device together). ``as_change``: pictures come
        back as their change filled outward from the subject (:func:`filled_change`; 0 for a subject left
        as it was). ``untouched``: B×1×h×w, where no trace of a soft mask reaches (:attr:`LowResolution.untouched`),
        so that a cut-out with a feathered edge is seen to have no scene (:func:`flat_colours`). ``coverage``:
        B×1×h×w (:attr:`LowResolution.coverage`), so that the change filled outward is the subject's own
        (:func:`~phnet.fullres.unmix`)."""
        threshold = self.threshold_for(threshold)
        as_change = as_change and self.config.output != "transform"
        self._check_weights()
        filled = self._graphs is not None
        if filled:  # the fill is captured with the network: no read may come between them
            found = self._graphs(images_low, masks_low, references_low, untouched, coverage, threshold=threshold,
                                 as_change=as_change)
        else:
            found = self._estimate(images_low, masks_low, references_low, untouched, threshold=threshold)
        read = _read_estimates(*found)
        if self.dtype != torch.float32 and not all(r[3] for r in read):
            # oneDNN's bf16 convolutions return NaN now and then on maps 2 px wide (a picture over ~450:1 at
            # 256 px), and fp16 can overflow: such a call is run again in fp32 rather than blacken the subject
            # (checked here, with the batch's one read: a replayed graph runs no Python)
            _low_precision_failed(self.dtype)
            filled = False
            found = self._estimate(images_low, masks_low, references_low, untouched, threshold=threshold, fp32=True)
            read = _read_estimates(*found)
        output, _, kept, _, _ = found
        sizes, kepts, backgrounds = [r[0] for r in read], [r[1] for r in read], [r[2] for r in read]
        flats = [None if math.isnan(r[4]) else tuple(round(255 * v) for v in r[4:7]) for r in read]
        if as_change and not filled:  # filled where a subject changes: the others' change is 0
            if not any(k > 0 for k in kepts):
                output = torch.zeros_like(output)
            else:  # (chosen on the device: an index made on the host would be a copy the host waits for)
                changing = (kept.reshape(-1, 1, 1, 1) > 0)
                output = torch.where(changing, filled_change(output, images_low, masks_low, coverage), 0)
        return output, [Correction(a, threshold, b, float(strength), background=c if c < MIN_BACKGROUND else None,
                                   flat=f if c >= MIN_BACKGROUND else None)
                        for a, b, c, f in zip(sizes, kepts, backgrounds, flats)]

    def _official(self, image, mask, size, strength=1.0, threshold=None) -> tuple[torch.Tensor, Correction]:
        """Square resize (bilinear, antialiased like PIL), binary nearest mask, blend, bicubic back: one B=1 float
        picture and its mask. A picture left unchanged is not resampled: it comes back as it was."""
        home = image.device
        image = image.to(self.device, torch.float32)
        mask = mask.to(self.device, torch.float32)
        if bool(((mask > 0) & (mask < 1)).any()):
            mask = dithered(mask)  # the official tester reads a soft mask as 1 bit: PIL's convert("1")
        image_sq = resize(image, (size, size), "bilinear")
        blended, correction = self._official_square(image_sq, official_mask_square(mask, size), strength, threshold)
        if correction.unchanged:
            return image.to(home), correction
        result = official_back(blended, image.shape[-2:]).clamp_(0, 1).to(home)
        if strength < 1:
            result = image.to(home) + strength * (result - image.to(home))
        return result, correction

    @torch.inference_mode()
    def _official_pixels(self, pixels, peak, masks, mask_peak, out, strength, size, progress, threshold):
        """:meth:`_official` on the caller's own B×H×W×C pixels (any dtype, ``peak`` = full intensity), written
        into ``out`` in their dtype, one picture at a time, and as in the official tester only the bicubic result
        is float at full size (see :func:`official_square` for the square)."""
        self._check_weights()  # mode "official" runs the model itself: in the Harmonizer's precision, in eval mode
        corrections = []
        for i in range(pixels.shape[0]):
            if pixels.shape[0] > 1 and not bool(masks[i].any()):  # no subject in this picture of the batch
                corrections.append(Correction.no_subject(self.threshold_for(threshold), float(strength)))
            else:
                corrections.append(self._official_picture(pixels[i], peak, masks[i], mask_peak, out[i], strength,
                                                          size, threshold))
            if progress is not None:
                progress(i + 1, pixels.shape[0])
        return corrections

    def _official_picture(self, picture, peak, mask, mask_peak, out, strength, size, threshold) -> Correction:
        """One H×W×C picture of :meth:`_official_pixels` into ``out`` (a copy of it, left so when unchanged)."""
        image_sq = official_square(picture, peak, size).to(self.device)  # only the squares move
        if bool(((mask > 0) & (mask < mask_peak)).any()):
            mask = dithered(mask[None, None].float() / mask_peak)
        else:  # binary: nearest sampling reads it as it is (uint8 on the CPU, no float copy)
            mask = (mask > 0)[None, None].to(torch.uint8 if mask.device.type == "cpu" else torch.float32)
        blended, correction = self._official_square(image_sq, official_mask_square(mask, size).to(self.device),
                                                    strength, threshold)
        if correction.unchanged:  # not resampled
            return correction
        result = official_back(blended, picture.shape[:2]).clamp_(0, 1)
        if strength < 1:
            base = unit_float(picture[..., :3].to(self.device), peak)
            result = base.add_(result.sub_(base).mul_(strength))
        if peak != 1.0:
            result = result.mul_(peak).round_()
        out[..., :3] = result[0].permute(1, 2, 0).to(out.dtype).to(out.device)
        return correction

    def _official_square(self, image_sq, mask_sq, strength, threshold) -> tuple[torch.Tensor, Correction]:
        """The network on the 1×3×s×s square and its binary mask, blended there (see :func:`official_back`)."""
        threshold = self.threshold_for(threshold)
        if not bool(mask_sq.any()):  # nearest sampling stepped over a small or thin subject: nothing to match
            return image_sq, Correction(0.0, threshold, 0.0, float(strength), empty_mask=True, lost=True)
        def network(x, m):
            return self.model.estimate(x, m, threshold=threshold)

        pred, correction_size, kept = self._run(network, image_sq, mask_sq, exact=True)  # the official tester's
        if self.dtype != torch.float32 and not bool(torch.isfinite(pred).all()):  # fp32, unless asked otherwise
            _low_precision_failed(self.dtype)
            pred, correction_size, kept = self._run(network, image_sq, mask_sq, fp32=True)
        if self.config.output == "transform":  # the official pipeline has no transform head: apply it here
            pred = self.model.transform_output(image_sq, pred)
        blended = pred * mask_sq + image_sq * (1 - mask_sq)
        return blended, Correction(float(correction_size[0]), threshold, float(kept[0]), float(strength))

    def _estimate(self, image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
                  untouched: torch.Tensor | None = None, coverage: torch.Tensor | None = None, *, threshold: float,
                  as_change: bool = False, fp32: bool = False) -> tuple[torch.Tensor, ...]:
        """The network's (output, size, kept), each picture's share of background, and its background's one
        colour (B×3, 0..1) where it has only one, else NaN. A picture with under ``MIN_BACKGROUND`` of it, or
        one flat colour (a cut-out's transparent part, a black frame: no scene to match), is left as it was,
        whatever the threshold."""
        output, size, kept = self._run(lambda x, m: self._net.estimate(x, m, reference, threshold=threshold),
                                       image, mask, fp32=fp32)
        background = 1 - mask.float().mean(dim=(1, 2, 3))
        colour = flat_colours(image, mask, untouched)
        enough = (background >= MIN_BACKGROUND) & colour[:, 0].isnan()
        kept = kept * enough
        if self.config.output == "transform":  # zero coefficients are the identity
            output = output * enough.reshape(-1, 1).to(output.dtype)
        else:
            output = torch.where(enough.reshape(-1, 1, 1, 1), output, image.to(output.dtype))
        return (filled_change(output, image, mask, coverage) if as_change else output), size, kept, background, colour

    def _run(self, net: Callable[[torch.Tensor, torch.Tensor], Any], image: torch.Tensor, mask: torch.Tensor,
             exact: bool = False, fp32: bool = False) -> Any:
        # no cast cache: a captured graph must not depend on weights cast outside it (a caller's own autocast is
        # off already: see own_precision). ``exact``: fp32 unless a precision was asked for by name. The caller
        # checks that a low-precision result is finite (inside a graph being captured, nothing may be read)
        if fp32 or self.dtype == torch.float32 or (exact and self.requested_dtype == "auto"):
            return _floats(net(image, mask))
        with torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False):
            return _floats(net(image, mask))


def _read_estimates(output, size, kept, background, colour) -> list[list[float]]:
    """Per picture of an estimate: size, kept, share of background, whether its output is finite, and its
    background's one colour (3 values, NaN where none): read back from the device together, once."""
    finite = torch.isfinite(output.reshape(len(output), -1)).all(1)
    return torch.cat([torch.stack([size.reshape(-1), kept.reshape(-1), background.reshape(-1), finite], 1).float(),
                      colour.float()], 1).tolist()


def _low_precision_failed(dtype: torch.dtype) -> None:
    logging.getLogger("phnet").warning("phnet: the network gave non-finite values in %s; ran it again in fp32",
                                       str(dtype).removeprefix("torch."))


def _weighed(corrections: list[Correction], mode: str, masks: torch.Tensor, mask_peak: float) -> list[Correction]:
    """Unmeasured corrections with what their masks let through (``Correction.weight``), so that the figures
    logged for them are those a measured report gives (mode "official" reads a mask as 1 bit: weight 1)."""
    if mode == "official":
        return corrections
    return [dataclasses.replace(c, weight=w) for c, w in zip(corrections, blend_weight(masks, mask_peak))]


def _coverage(lows: list[LowResolution]) -> torch.Tensor:
    """The B×1×h×w coverage of pictures prepared together (:attr:`LowResolution.coverage`)."""
    return torch.cat([low.coverage for low in lows])


def _floats(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() for t in out) if isinstance(out, tuple) else (out.float(),)


def filled_change(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
                  coverage: torch.Tensor | None = None) -> torch.Tensor:
    """The network's B×3×h×w change of the ``image`` filled outward from the subject (``fill_outside``): what
    method "correction" and frames carry to full resolution; the subject's own change where ``coverage`` is given
    (see :func:`~phnet.fullres.unmix`). A pyramid of dozens of small operations, run
    once per network call (and captured with it in a CUDA graph)."""
    with one_thread(image.device):
        return subject_change(output, image, mask, coverage)


def as_number(value: Any, name: str, rule: str = "a number") -> float:
    """A plain finite float from a Python or numpy number or a one-element tensor; a ``ValueError`` otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    return checked_number(value, f"{name} must be {rule}")


def carries_soft_edges(mode: str, method: str, output: str = "image") -> bool:
    """See :meth:`Harmonizer.carries_soft_edges`; for a host that checks its options before the weights load."""
    return mode == "full" and method != "resize" and output != "transform"


def _noted(corrections: list[Correction], note: str) -> list[Correction]:
    """``note`` added to each correction of a picture with a subject."""
    return [c if c.empty_mask else dataclasses.replace(c, notes=(*c.notes, note)) for c in corrections]


def _check_flag(value: Any, name: str) -> None:
    """True or False (numpy's too): a string from a config file is no flag ("no" is truthy)."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool", "bool_"):  # numpy 1 and 2
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_devices(**tensors: Any) -> None:
    """A tensor on a device that holds no data (meta) is named, not met with torch's words mid-call."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            raise ValueError(f"the {name.replace('_', ' ')} is on the meta device: {device_problem(t.device)}")


_INTEGER_MASKS = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)  # read as 0/1 masks


def _check_pair(images: torch.Tensor, masks: torch.Tensor, allow_empty: bool = False) -> None:
    check_strided(images, "images")
    check_strided(masks, "masks")
    _check_devices(images=images, masks=masks)
    for name, t in (("images", images), ("masks", masks)):
        if t.is_floating_point() or (name == "masks" and t.dtype in _INTEGER_MASKS):
            continue
        peak = integer_peak(t.dtype)
        takes = f"harmonize_tensor takes float {name} in 0..1{' (or 0/1 integer ones)' * (name == 'masks')}"
        if peak is None:
            raise ValueError(f"{takes}, got {t.dtype}: convert them to float in 0..1")
        raise ValueError(f"{takes}, got {t.dtype}: divide them by {peak:g} ({name}.float() / {peak:g}) or call "
                         f"harmonizer(image, mask), which reads {8 if peak == 255 else 16}-bit {name} as they are")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B×3×H×W, got {tuple(images.shape)}")
    _check_picture_size(*images.shape[-2:])
    wanted = (images.shape[0], 1, *images.shape[-2:])
    if masks.shape != wanted:
        if masks.ndim != 4 or masks.shape[1] != 1:
            fix = "give them a channel axis (masks[:, None] for B×H×W)"
        elif masks.shape[-2:] != images.shape[-2:]:
            fix = "resize the mask to the image"
        else:
            fix = (f"give one mask per image ({images.shape[0]}; masks.expand({', '.join(map(str, wanted))}) "
                   "repeats one)")
        raise ValueError(f"masks must be B×1×H×W matching the images {tuple(images.shape)}, got "
                         f"{tuple(masks.shape)}: {fix}")
    check_unit_range(images, "images")  # tensors handed in directly meet the same range check as any input
    check_unit_range(masks, "masks", "mask")
    check_mask_coverage(masks, allow_empty=allow_empty)
