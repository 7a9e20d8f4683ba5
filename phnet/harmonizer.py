"""Harmonizer: PHNet wrapped for use on real images of any size, type and batch."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import numbers
import os
import threading
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Concatenate, Iterable, Iterator, NamedTuple, ParamSpec, TypeVar,
                    overload)

import torch

from .compositing import visible_scene
from .config import PHNetConfig
from .corrections import MATTE_UNUSED, TRANSPARENT_SCENE, Correction, log_corrections
from .devices import pick_device
from .fullres import METHODS
from .frames import harmonize_frames
from .graphs import GraphCache
from .imageio import as_returned, image_to_tensor, mask_to_tensor, tensor_to_image
from .imageio.fast import image_pixels
from .modeling import PHNet
from .modeling.inference import InferencePHNet
from .official_pipeline import as_official_tester_reads, official_float, official_pixels
from .options import (FULL_RESOLUTION_ON, as_number, carries_soft_edges, check_devices, check_flag, check_options,
                      check_pair, check_picture_size, check_threshold, threshold_for)
from .pipeline import estimate, harmonize_pixels, measured, noted, own_precision, pixels_of, weighed
from .precision import names_a_precision, resolve_dtype, slow_on
from .regions import reference_pixels
from .temporal import Temporal, as_temporal
from .weights import load_model, push_to_hub, save_pretrained

if TYPE_CHECKING:  # only in __call__'s overloads, which typing.get_type_hints does not read
    import numpy
    import PIL.Image


class Harmonized(NamedTuple):
    """What :meth:`Harmonizer.harmonize` returns: the result, and one :class:`~phnet.corrections.Correction`
    per image saying how much its subject changed (and, when it did not, why)."""

    image: Any
    corrections: list[Correction]


class _Calls:
    """Calls share a Harmonizer; a change of its device, precision or model waits until no call runs, and calls
    made meanwhile wait for it: each call runs on one setting from start to end. A call made inside another in the
    same thread (within :meth:`Harmonizer.interruptible`) goes on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._changer: int | None = None  # the thread changing the Harmonizer now
        # calls open per thread, by the thread that opened them: an interruptible block held in a generator may
        # be left by another thread, which must not count it off as its own
        self._depths: dict[int, int] = {}

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        caller = threading.get_ident()
        with self._cond:
            depth = self._depths.get(caller, 0)
            if depth == 0:  # (the changing thread's own calls, from a logging handler say, go on)
                self._cond.wait_for(lambda: self._changer in (None, caller))
            self._running += 1
            self._depths[caller] = depth + 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if depth:
                    self._depths[caller] = depth
                else:
                    del self._depths[caller]
                self._cond.notify_all()

    @contextlib.contextmanager
    def change(self) -> Iterator[None]:
        changer = threading.get_ident()
        with self._cond:
            if changer in self._depths:  # it would wait for the call that waits for it
                raise RuntimeError("a Harmonizer cannot be moved or given another model from within one of its own "
                                   "calls (a progress or cancel callback): do it after the call returns")
            if self._changer == changer:  # a change within this thread's own change
                nested = True
            else:
                nested = False
                self._cond.wait_for(lambda: self._changer is None)
                self._changer = changer  # calls arriving now wait, so that a steady stream of them cannot hold it off
                try:
                    self._cond.wait_for(lambda: self._running == 0)
                except BaseException:  # (Ctrl-C while a long call ran) the calls held off go on
                    self._changer = None
                    self._cond.notify_all()
                    raise
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    self._changer = None
                    self._cond.notify_all()


_Self = TypeVar("_Self", bound="Harmonizer")
_Options = ParamSpec("_Options")
_Result = TypeVar("_Result")


def _one_setting(
    method: Callable[Concatenate[_Self, _Options], _Result],
) -> Callable[Concatenate[_Self, _Options], _Result]:
    """``method`` runs as one of the Harmonizer's calls (see :class:`_Calls`)."""

    @functools.wraps(method)
    def call(harmonizer: _Self, *args: _Options.args, **kwargs: _Options.kwargs) -> _Result:
        with harmonizer._calls.call():
            return method(harmonizer, *args, **kwargs)

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

    ``cuda_graphs=True``: on CUDA, the network call (with the fill of its change, see
    :func:`~phnet.pipeline.estimate_batch`) is captured as a CUDA graph the first time a working size is seen and
    replayed after that (:mod:`phnet.graphs`), one launch instead of hundreds; a few seconds' capture per new size.
    Ignored on other devices.

    ``network_batch``: how many pictures of a batch go through the network in one call. "auto" (default):
    8 on CUDA, where a call on one picture is bound by the host (launches, small transfers), not by the
    GPU's arithmetic; fewer above a 512² working size (8·512² pixels a call) and when their copies on the
    GPU, with their masks, would pass 128 MiB; 1 elsewhere (on CPUs a batch saved under 10 % per picture at
    256² and cost 30–80 % at 512²).

    ``method``: how mode "full" carries the network's working-resolution result up to full resolution.
    "correction" (default): its change, upscaled and filled outward from the mask; "guided": a local affine colour
    fit, upscaled; "resize": the network's picture, resized up and blended in
    (:mod:`phnet.fullres`; docs/full-resolution.md compares them).

    The weights' do-no-harm rule holds back a correction of a subject smaller than their threshold
    (``config.correction_threshold``): it applies ``config.correction_floor`` of it (0: none, the subject left
    unchanged; the bundled weights apply a fifth); ``threshold=`` overrides the threshold per call (0 = the
    raw network).
    :meth:`harmonize` returns each image's :class:`~phnet.corrections.Correction` with the result, and
    every call logs one line on the ``phnet`` logger (a warning when a subject was left unchanged).

    Threads may share a Harmonizer and call it at once. :meth:`to` and putting another ``model`` in place wait
    until the calls running have returned, and calls made meanwhile wait for the change, so every call runs on
    one device, precision and model throughout; from within a call's own callbacks they are refused. A callback,
    or an :meth:`interruptible` block, must not wait for another thread's call on the same Harmonizer: should a
    change be asked for meanwhile, the three would wait for each other. Changing the model's weights in place
    (``harmonizer.model.load_state_dict``) is not waited for: do it between calls.
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
        self._calls = _Calls()
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
        with self._calls.change():
            self._put_in_place(model)

    def _put_in_place(self, model: PHNet) -> None:
        # fp32 weights: the precision is dtype='s (a model cast with .half() or .double() met fp32 pictures)
        self._model = model.eval().to(self.device, torch.float32)
        self._set_network()

    def __copy__(self) -> "Harmonizer":
        """A Harmonizer on the same model with its own inference network and graph cache: a graph cache runs its
        owner's network, and would stop with its owner."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._set_network()  # (the record of calls is shared: a move of either moves the model both run)
        return twin

    def __getstate__(self) -> dict:
        """Picklable and deep-copyable: without the record of the calls running, which is the process's own, and
        without the inference network and graph cache, which the copy makes for its own model (a graph cache runs
        its owner's network, and holds it weakly: it cannot be pickled)."""
        state = self.__dict__.copy()
        for derived in ("_calls", "_net", "_graphs", "_weights_seen"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._calls = _Calls()
        self._set_network()

    def _warn_if_slow(self) -> None:
        reason = slow_on(self.dtype, self.device)
        if reason:
            logging.getLogger("phnet").warning("phnet: %s", reason)

    def _set_network(self) -> None:
        """The eval-only network for the model's device, and its graph cache where graphs are used."""
        self._net = InferencePHNet(self.model)
        self._graphs = GraphCache(self._estimate) if self.cuda_graphs and self.device.type == "cuda" else None
        self._weights_seen = self._weights_version()

    def _estimate(self, image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
                  untouched: torch.Tensor | None = None, coverage: torch.Tensor | None = None,
                  **options: Any) -> tuple[torch.Tensor, ...]:
        """:func:`phnet.pipeline.estimate` on this Harmonizer: a bound method, which the graph cache holds weakly
        (a function holding the Harmonizer would keep it, with its graphs' memory, until the cycle collector ran)."""
        return estimate(self, image, mask, reference, untouched, coverage, **options)

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
            self._put_in_place(self._model)  # (within a call: the same model, taken again)

    @property
    def config(self) -> PHNetConfig:
        """The model's :class:`~phnet.PHNetConfig`: its working size, output and do-no-harm threshold."""
        return self.model.config

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None = None,
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

    def carries_soft_edges(self, mode: str = "full") -> bool:
        """Whether ``mask_is_alpha`` changes anything: only methods "correction" and "guided" of mode "full", with
        a model whose output is a picture, carry the working-size change up to a soft edge."""
        return carries_soft_edges(mode, self.method, self.config.output)

    @contextlib.contextmanager
    def interruptible(self, check: Callable[[], Any]) -> Iterator[None]:
        """Within this block every stage of a network call (each encoder, normalizer, skip and decoder stage)
        calls ``check()`` first; whatever it raises stops the call: a host's Cancel. At a large working size a
        call on a CPU takes seconds (2048²: ~5 s for the bundled weights on two cores). A replayed CUDA graph
        runs no Python, so it is checked between calls only. Only calls made by the thread that opened the
        block are checked: another thread's calls on the same Harmonizer are not this Cancel's. The block counts
        as a call: :meth:`to` waits for it, and is refused within it."""
        owner = threading.get_ident()
        with self._calls.call():  # a move meanwhile would put a network without the hooks in place
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

    def to(self, device: str | torch.device | torch.dtype | None = None,
           dtype: str | torch.dtype | None = None) -> "Harmonizer":
        """Move to ``device`` and/or change the precision; "auto" is decided again for the new device. If
        either is refused (no such device, an unknown precision), the Harmonizer stays as it was. As with
        ``torch.nn.Module.to``, a precision may come alone in the first place: ``.to(torch.bfloat16)``,
        ``.to("fp32")``."""
        if dtype is None and names_a_precision(device):
            device, dtype = None, device
        with self._calls.change():
            return self._move(device, dtype)

    def _move(self, device: str | torch.device | torch.dtype | None, dtype: str | torch.dtype | None) -> "Harmonizer":
        # (a precision in both places reaches pick_device, which refuses it as a device)
        target = self.device if device is None else pick_device(device)  # type: ignore[arg-type]
        requested = self.requested_dtype if dtype is None else dtype
        resolved = resolve_dtype(requested, target)
        self.device, self.requested_dtype, self.dtype = target, requested, resolved
        self._warn_if_slow()
        # put in place again: moved, its weights fp32 and in eval mode as any model given (one cast since with
        # .half() is cast back), and a new network: a graph holds the device and precision it was captured with
        self._put_in_place(self._model)
        return self

    # ------------------------------------------------------------------------------------------------

    @overload
    def __call__(self, image: numpy.ndarray, mask: Any, **options: Any) -> numpy.ndarray: ...

    @overload
    def __call__(self, image: torch.Tensor, mask: Any, **options: Any) -> torch.Tensor: ...

    @overload  # last: a Pillow without type hints (before 10) makes this one match anything
    def __call__(self, image: PIL.Image.Image, mask: Any, **options: Any) -> PIL.Image.Image: ...

    def __call__(self, image: Any, mask: Any, **options: Any) -> Any:
        """Harmonize PIL / numpy / torch images (single or batched); returns the same kind, size and layout.
        The options are :meth:`harmonize`'s; no report is returned, so none is measured (``measure=False``)."""
        return self.harmonize(image, mask, **{"measure": False, **options}).image

    @_one_setting
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
        temporal: Temporal | bool | float | None = None,
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
        threshold = check_threshold(threshold)
        strength = as_number(strength, "strength")
        size = check_options(self.config, strength, mode, working_size, progress)
        check_flag(mask_is_alpha, "mask_is_alpha")
        check_devices(image=image, mask=mask, reference_mask=reference_mask)
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
            check_picture_size(*rgb.shape[-2:])
            masks = mask_to_tensor(mask, rgb.shape[0], rgb.shape[-2], rgb.shape[-1])
            out, corrections = self._harmonize_tensor(rgb, masks, strength, mode, size, progress, threshold,
                                                      allow_empty=True, mask_is_alpha=mask_is_alpha)
            if measure:  # on the pixels handed back: rounded to the caller's levels
                corrections = measured(self, corrections, mode, rgb.permute(0, 2, 3, 1),
                                       as_returned(out, form).permute(0, 2, 3, 1), masks[:, 0], 1.0, 1.0)
            else:
                corrections = weighed(corrections, mode, masks[:, 0], 1.0)
            keep = (masks == 0) if mode == "full" else torch.zeros_like(masks, dtype=torch.bool)
            result = Harmonized(tensor_to_image(out.cpu(), alpha, form, keep.cpu()), corrections)
        else:
            # a frame of a clip, or a picture of a batch, whose mask is empty (no subject) stays as it is
            pixels, peak, masks, mask_peak, finish = pixels_of(
                image, mask, layout, native=native, converted=converted, allow_empty=True,
                unit="frame" if clip else "picture")
            out = pixels.clone()  # alpha and background are the caller's own pixels; the subject is rewritten
            batch, height, width = pixels.shape[:3]
            references = None if reference_mask is None else reference_pixels(reference_mask, (batch, height, width))
            narrowed = None
            if mode == "full" and pixels.shape[-1] == 4:  # what lies under an RGBA composite's alpha 0 is no scene
                scene = visible_scene(pixels[..., 3], masks, references, mask_peak)
                if scene is not None:
                    references, narrowed = scene
            if guided or narrowed:  # one frame after another: the same prepare / estimate / apply, smoothed between
                corrections = harmonize_frames(self, pixels, peak, masks, mask_peak, out, as_temporal(temporal),
                                               references, strength, size, progress, threshold, mask_is_alpha)
            elif mode == "official":
                corrections = official_pixels(self, pixels, peak, masks, mask_peak, out, strength, size, progress,
                                              threshold)
            else:
                corrections = harmonize_pixels(self, pixels, peak, masks, mask_peak, out, strength, size, progress,
                                               threshold, mask_is_alpha)
            if measure:  # (a clip's frames carry their masks' weight from estimate_frames already)
                shown = finish.returned(out) if hasattr(finish, "returned") else out  # a converted input's levels
                corrections = measured(self, corrections, mode, pixels, shown, masks, peak, mask_peak, weigh=not clip)
            elif not clip:
                corrections = weighed(corrections, mode, masks, mask_peak)
            if narrowed:
                corrections = [dataclasses.replace(c, notes=(*c.notes, TRANSPARENT_SCENE))
                               if left_out and not c.empty_mask else c for c, left_out in zip(corrections, narrowed)]
            result = Harmonized(finish(out), corrections)
        if mask_is_alpha and not self.carries_soft_edges(mode):
            result = result._replace(corrections=noted(result.corrections, MATTE_UNUSED))
        log_corrections(result.corrections, "frames" if clip else "images")
        return result

    @_one_setting
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
        size = check_options(self.config, strength, mode, working_size, progress)
        check_flag(mask_is_alpha, "mask_is_alpha")
        out, corrections = self._harmonize_tensor(images, masks, strength, mode, size, progress, None,
                                                  allow_empty=True, mask_is_alpha=mask_is_alpha)
        corrections = weighed(corrections, mode, masks[:, 0], 1.0)
        if mask_is_alpha and not self.carries_soft_edges(mode):
            corrections = noted(corrections, MATTE_UNUSED)
        log_corrections(corrections)  # as every call says what it left
        return out

    def _harmonize_tensor(self, images, masks, strength, mode, size, progress, threshold, allow_empty=False,
                          mask_is_alpha=False):
        """The result is made outside inference mode and written inside it: a caller may change it in place or
        use it with autograd, as any tensor of theirs."""
        check_pair(images, masks, allow_empty)
        if mode == "full":
            out = images.detach().clone()
            pixels = images.detach().permute(0, 2, 3, 1)
            corrections = harmonize_pixels(self, pixels, 1.0, masks[:, 0], 1.0, out.permute(0, 2, 3, 1), strength,
                                           size, progress, threshold, mask_is_alpha)
            return out, corrections
        images = images.detach()
        out, corrections = images.clone(), []
        self._check_weights()  # mode "official" runs the model itself: in the Harmonizer's precision, in eval mode
        for i in range(images.shape[0]):  # one at a time: bounded memory, progress, interruption
            if images.shape[0] == 1 or bool(masks[i].any()):  # a single picture's mask was checked
                with torch.inference_mode():
                    out[i : i + 1], correction = official_float(self, images[i : i + 1], masks[i : i + 1], size,
                                                                strength, threshold)
            else:  # no subject in this picture of the batch: left as it was
                correction = Correction.no_subject(threshold_for(self.config, threshold), float(strength))
            corrections.append(correction)
            if progress is not None:
                progress(i + 1, images.shape[0])
        return out, corrections
