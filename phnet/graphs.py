"""The network call replayed as a CUDA graph: one launch instead of one per operation.

At the working size a PHNet call is a few hundred small operations (a CPU profile of the bundled network
at 256² counts about 400, three quarters of which compute rather than reshape or allocate), each launched
on its own: next to the arithmetic (on an H200, 6.6 ms per 512² picture in batches of 8), a few hundred
launches of some microseconds each are a large share of a single picture's call. A CUDA graph records the launches once
per input shape and replays them with one call. The graph reads its inputs from, and writes its outputs to,
fixed buffers: :class:`GraphCache` copies each call's tensors into them and hands back copies of
the outputs, so a result stays valid after the next call.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable

import torch

# what a graph is captured for: each tensor's (shape, dtype, device), None where none was given, and the options
GraphKey = tuple[tuple[tuple[tuple[int, ...], torch.dtype, torch.device] | None, ...], tuple[tuple[str, Any], ...]]
WARMUP_CALLS = 2  # on a side stream before capture, as CUDA graphs need (lazy initialisation, autotuning)


def capture_cuda(run: Callable[[], Any]) -> tuple[Any, Callable[[], None]]:
    """``run()``'s outputs as static buffers, and the replay that rewrites them, on the current GPU."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP_CALLS):
            run()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    # a stream of this GPU: torch.cuda.graph's default one is made once, on whichever GPU was current then. Only
    # this thread's calls are held to the capture's rules: another thread's unsafe CUDA call (a cudaMalloc by ComfyUI's
    # server or a preview) may fail under the default "global" mode
    with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
        outputs = run()
    return outputs, graph.replay


class GraphCache:
    """``cache(*tensors, **options)`` = ``fn(*tensors, **options)``, replayed from a graph captured on the
    first call with these shapes, dtypes, devices and options (``None`` tensors allowed), for inference
    (it runs under ``torch.inference_mode``). ``fn`` must return a tensor or a tuple of tensors and may not
    synchronise with the host. The ``size`` most
    recently used graphs are kept: each holds its own buffers, so one call at a time uses them (a lock: two
    threads sharing a Harmonizer would otherwise read each other's results). A bound method ``fn`` is held
    weakly: its object holds the cache, and a strong reference would keep both, with the graphs' memory,
    until Python's cycle collector ran."""

    def __init__(self, fn: Callable[..., Any], *, size: int = 4,
                 capture: Callable[[Callable[[], Any]], tuple[Any, Callable[[], None]]] = capture_cuda) -> None:
        if size < 1:
            raise ValueError(f"a graph cache holds at least one graph, got size={size}")
        self._fn = weakref.WeakMethod(fn) if inspect.ismethod(fn) else (lambda: fn)
        self.size, self.capture = size, capture
        self.graphs: OrderedDict[GraphKey, tuple[list[torch.Tensor | None], Any, Callable[[], None]]] = OrderedDict()
        self.captures = 0
        self.lock = threading.Lock()

    @property
    def fn(self) -> Callable[..., Any] | None:
        """``fn``; None once the object of a bound method is gone."""
        return self._fn()

    @staticmethod
    def key(tensors: tuple[torch.Tensor | None, ...], options: dict[str, Any]) -> GraphKey:
        """What tells one graph from another: each tensor's shape, dtype and device (None for a tensor not given),
        and the options, sorted by name (their values must be hashable)."""
        shapes = tuple(None if t is None else (tuple(t.shape), t.dtype, t.device) for t in tensors)
        return shapes, tuple(sorted(options.items()))

    @torch.inference_mode()  # the buffers are written in place on every call: keep them in one mode
    def __call__(self, *tensors: torch.Tensor | None, **options: Any) -> Any:
        device = next(t.device for t in tensors if t is not None)
        with self.lock, torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            return self._call(tensors, options)  # a graph is captured and replayed on its tensors' GPU

    def _live_fn(self) -> Callable[..., Any]:
        fn = self.fn
        if fn is None:  # a graph would replay on the memory freed with the object
            raise ReferenceError("the object whose method this graph cache runs was freed; make a new GraphCache")
        return fn

    def _call(self, tensors: tuple[torch.Tensor | None, ...], options: dict[str, Any]) -> Any:
        self._live_fn()  # for its refusal alone: a replay runs no Python, and a capture looks fn up itself (below)
        key = self.key(tensors, options)
        entry = self.graphs.get(key)
        if entry is None:
            inputs = [None if t is None else t.clone() for t in tensors]
            # (looked up at each run: a capture may keep the run, which must not keep the object alive)
            outputs, replay = self.capture(lambda: self._live_fn()(*inputs, **options))
            self.captures += 1
            entry = self.graphs[key] = (inputs, outputs, replay)
            while len(self.graphs) > self.size:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
            for buffer, t in zip(entry[0], tensors):
                if buffer is not None and t is not None:  # (the key has both, or neither)
                    buffer.copy_(t)
        inputs, outputs, replay = entry
        replay()
        return tuple(t.clone() for t in outputs) if isinstance(outputs, tuple) else outputs.clone()
