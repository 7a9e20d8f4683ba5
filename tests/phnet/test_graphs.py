"""phnet.graphs: the network call replayed from captured graphs, checked on the CPU with a stand-in capture
that behaves like a CUDA graph (outputs are fixed buffers rewritten by each replay)."""
from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch

from phnet import Harmonizer
from phnet.graphs import GraphCache
from phnet.pipeline import estimate_batch


def capture_like_a_graph(run):
    outputs = run()

    def replay():
        fresh = run()
        for buffer, value in zip(outputs if isinstance(outputs, tuple) else (outputs,),
                                 fresh if isinstance(fresh, tuple) else (fresh,)):
            buffer.copy_(value)

    return outputs, replay


def test_each_call_gets_its_own_result_and_one_capture_per_shape():
    cache = GraphCache(lambda x, y, *, scale: (x * scale, x.sum() + (0 if y is None else y.sum())),
                       capture=capture_like_a_graph)
    a, b = torch.ones(2, 3), torch.full((2, 3), 2.0)
    with torch.inference_mode():  # captured in inference mode, replayed outside it
        first = cache(a, None, scale=3.0)
    second = cache(b, None, scale=3.0)
    assert torch.equal(first[0], torch.full((2, 3), 3.0))  # not overwritten by the second replay
    assert torch.equal(second[0], torch.full((2, 3), 6.0)) and second[1].item() == 12.0
    assert cache.captures == 1
    cache(torch.ones(4, 3), None, scale=3.0)  # a new shape
    cache(a, None, scale=2.0)  # a new option
    cache(a, torch.ones(1), scale=2.0)  # a tensor where there was None
    assert cache.captures == 4


def test_two_threads_sharing_a_graph_each_get_their_own_result():
    """One graph's buffers serve one call at a time: with a replay in flight (the GPU busy, Python's lock free),
    another thread's copy into the buffers made the first thread read the second one's result."""
    import threading
    import time

    def capture_with_a_slow_replay(run):
        outputs, replay = capture_like_a_graph(run)

        def slow():
            time.sleep(0.05)
            replay()

        return outputs, slow

    cache = GraphCache(lambda x: x * 2, capture=capture_with_a_slow_replay)
    cache(torch.zeros(4))
    results = {}

    def call(name, value):
        results[name] = cache(torch.full((4,), float(value)))[0].item()

    first = threading.Thread(target=call, args=("first", 1))
    second = threading.Thread(target=call, args=("second", 100))
    first.start()
    time.sleep(0.01)
    second.start()
    first.join()
    second.join()
    assert results == {"first": 2.0, "second": 200.0}


def test_the_least_recently_used_graph_is_dropped():
    cache = GraphCache(lambda x: x + 1, size=2, capture=capture_like_a_graph)
    one, two, three = torch.zeros(1), torch.zeros(2), torch.zeros(3)
    cache(one), cache(two), cache(one), cache(three)  # "two" was used least recently
    assert [key[0][0][0] for key in cache.graphs] == [(1,), (3,)]
    with pytest.raises(ValueError, match="at least one graph"):
        GraphCache(lambda x: x, size=0)


def test_graphs_are_only_used_on_cuda(tiny_model):
    assert Harmonizer(tiny_model, device="cpu", cuda_graphs=True)._graphs is None


def test_the_harmonizer_through_a_graph_cache_gives_the_same_pictures(tiny_model):
    rng = np.random.default_rng(0)
    plain = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    graphed = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    graphed._graphs = GraphCache(graphed._estimate, capture=capture_like_a_graph)
    mask = np.zeros((120, 160), np.float32)
    mask[30:90, 40:120] = 1
    for _ in range(2):
        image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        assert np.array_equal(graphed(image, mask, threshold=0), plain(image, mask, threshold=0))
    assert graphed._graphs.captures == 1


@pytest.mark.parametrize("as_change", [False, True])
def test_what_a_graph_captures_reads_nothing_back_to_the_host(tiny_model, as_change):
    """A CUDA graph cannot be captured around a read: the network call, with the change's fill when the
    method carries the change, must run without one."""
    from tests.helpers.host_reads import HostReads

    harmonizer = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    images, masks = torch.rand(2, 3, 48, 64), torch.zeros(2, 1, 48, 64)
    masks[:, :, 8:40, 16:48] = 1
    with HostReads() as reads, torch.inference_mode():
        harmonizer._estimate(images, masks, torch.ones_like(masks), threshold=10.0, as_change=as_change)
    assert reads.count == 0


def test_with_a_subject_left_unchanged_the_graph_gives_the_eager_pictures(tiny_model):
    """Eager calls fill the change of the subjects that change only; a graph fills every subject's."""
    plain = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32", network_batch=2)
    graphed = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32", network_batch=2)
    graphed._graphs = GraphCache(graphed._estimate, capture=capture_like_a_graph)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    images[1] = images[1] // 4 + 96  # a flatter picture: a different correction
    masks = np.zeros((2, 96, 128), np.float32)
    masks[:, 20:80, 30:100] = 1
    sizes = [c.size for c in plain.harmonize(images, masks, threshold=0).corrections]
    threshold = sum(sizes) / 2  # between the two: one subject is left as it was
    found = plain.harmonize(images, masks, threshold=threshold)
    assert sorted(c.unchanged for c in found.corrections) == [False, True]
    assert np.array_equal(graphed(images, masks, threshold=threshold), found.image)


def test_a_capture_holds_only_its_own_thread_to_the_capture_rules(monkeypatch):
    """Under torch's default "global" mode, another thread's unsafe CUDA call during a capture (a cudaMalloc)
    may fail; the CUDA calls are stood in for, so this runs without a GPU."""
    from phnet import graphs

    seen = {}

    class Graph:
        def replay(self):
            seen["replayed"] = True

    @contextlib.contextmanager
    def graph(cuda_graph, pool=None, stream=None, capture_error_mode="global"):
        seen["mode"] = capture_error_mode
        yield

    class Stream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", Stream)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    outputs, replay = graphs.capture_cuda(lambda: torch.ones(2))
    replay()
    assert seen == {"mode": "thread_local", "replayed": True} and outputs.tolist() == [1, 1]


def test_a_dropped_harmonizer_is_freed_with_its_graphs_without_the_cycle_collector(tiny_model):
    """The cache held the Harmonizer's bound method and the Harmonizer the cache: a cycle that kept the model and
    up to 4 graphs with their GPU memory until Python's cycle collector ran (ComfyUI switching models)."""
    import gc
    import weakref

    def capture_keeping_no_python(run):  # a CUDA graph's replay holds no Python function
        return run(), (lambda: None)

    harmonizer = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    harmonizer._graphs = GraphCache(harmonizer._estimate, capture=capture_keeping_no_python)
    images, masks = torch.rand(1, 3, 48, 64), torch.zeros(1, 1, 48, 64)
    masks[:, :, 8:40, 16:48] = 1
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        estimate_batch(harmonizer, images, masks)
        alive = weakref.ref(harmonizer)
        buffer = weakref.ref(next(iter(harmonizer._graphs.graphs.values()))[0][0])
        del harmonizer
        assert alive() is None and buffer() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_cache_whose_methods_object_is_gone_is_refused():
    """Its graphs would replay on the memory freed with the object."""

    class Owner:
        def double(self, x):
            return x * 2

    owner = Owner()
    cache = GraphCache(owner.double, capture=capture_like_a_graph)
    assert cache(torch.ones(2)).tolist() == [2, 2]
    del owner
    with pytest.raises(ReferenceError, match="make a new GraphCache"):
        cache(torch.ones(2))


def test_a_copied_harmonizer_has_its_own_graph_cache_and_outlives_the_original(tiny_model):
    """A shallow copy shared the original's graph cache, which runs the original's network: once the original was
    dropped, the copy stopped with "the object whose method this graph cache runs was freed"."""
    import gc

    harmonizer = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    harmonizer._graphs = GraphCache(harmonizer._estimate, capture=capture_like_a_graph)
    images, masks = torch.rand(1, 3, 48, 64), torch.zeros(1, 1, 48, 64)
    masks[:, :, 8:40, 16:48] = 1
    expected = estimate_batch(harmonizer, images, masks)[0]
    twin = copy.copy(harmonizer)
    assert twin._graphs is not harmonizer._graphs and twin.model is harmonizer.model
    del harmonizer
    gc.collect()
    assert torch.equal(estimate_batch(twin, images, masks)[0], expected)


@pytest.mark.parametrize("twin_of", ["deepcopy", "pickle"])
def test_a_harmonizer_with_a_graph_cache_deep_copies_and_pickles_without_it(tiny_model, twin_of):
    """The state kept the graph cache: a copy or a pickle of a Harmonizer with CUDA graphs stopped with "cannot
    pickle 'WeakMethod' object", and a copy that got one would have replayed the original's graphs."""
    import gc
    import pickle

    harmonizer = Harmonizer(copy.deepcopy(tiny_model), device="cpu", dtype="fp32")
    harmonizer._graphs = GraphCache(harmonizer._estimate, capture=capture_like_a_graph)
    images, masks = torch.rand(1, 3, 48, 64), torch.zeros(1, 1, 48, 64)
    masks[:, :, 8:40, 16:48] = 1
    expected = estimate_batch(harmonizer, images, masks)[0]
    twin = copy.deepcopy(harmonizer) if twin_of == "deepcopy" else pickle.loads(pickle.dumps(harmonizer))
    assert twin._graphs is not harmonizer._graphs and twin._net is not harmonizer._net
    graphs = harmonizer._graphs
    del harmonizer
    gc.collect()
    assert torch.equal(estimate_batch(twin, images, masks)[0], expected)
    assert graphs.fn is None  # the original's cache went with it: the twin never ran it
