"""An image encode that a host can stop: ``interrupt()`` is called before the attention and the MLP of
every ViT block, and inside each global-attention block before every head.

A global-attention block of a ViT-B at 1024² attends over 4096 tokens: its attention took 2–6 s on a
2-core CPU (and about four times that on one thread), too long to wait for a Cancel. Computed one head
at a time it also never holds all heads' 4096×4096 attention matrices at once (about 800 MB for a
ViT-B), only one (about 70 MB). The result is segment_anything's own computation, head by head.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from .architecture import import_segment_anything

if TYPE_CHECKING:
    from segment_anything.modeling.image_encoder import Attention, Block, ImageEncoderViT
else:  # segment_anything loads on first use, not with the package: at run time (get_type_hints) the hints read Any
    Attention = Block = ImageEncoderViT = Any


def _global_blocks(encoder: ImageEncoderViT) -> list[Block]:
    return [block for block in getattr(encoder, "blocks", ()) if getattr(block, "window_size", 0) == 0]


def interrupt_points(encoder: ImageEncoderViT) -> int:
    """How many times one encode with :func:`interruptible` calls ``interrupt`` (for a progress bar)."""
    blocks = getattr(encoder, "blocks", ())
    return 2 * len(blocks) + sum(block.attn.num_heads for block in _global_blocks(encoder))


def attention_by_head(attn: Attention, x: torch.Tensor, interrupt: Callable[[], Any]) -> torch.Tensor:
    """segment_anything's ``Attention.forward`` computed one head at a time, ``interrupt()`` before each."""
    add_decomposed_rel_pos = import_segment_anything("modeling.image_encoder").add_decomposed_rel_pos

    batch, height, width, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, height * width, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, batch * attn.num_heads, height * width, -1).unbind(0)
    out = torch.empty_like(q)
    for i in range(q.shape[0]):
        interrupt()
        scores = (q[i : i + 1] * attn.scale) @ k[i : i + 1].transpose(-2, -1)
        if attn.use_rel_pos:
            scores = add_decomposed_rel_pos(scores, q[i : i + 1], attn.rel_pos_h, attn.rel_pos_w,
                                            (height, width), (height, width))
        out[i : i + 1] = scores.softmax(dim=-1) @ v[i : i + 1]
    out = out.view(batch, attn.num_heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
    return attn.proj(out)


_locks: "weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_of(encoder: ImageEncoderViT) -> threading.RLock:
    """One lock per encoder, not per segmenter: two segmenters sharing a model (a host wraps one per run)
    must not patch and unpatch its attention under each other."""
    with _locks_guard:
        return _locks.setdefault(encoder, threading.RLock())


@contextlib.contextmanager
def interruptible(encoder: ImageEncoderViT, interrupt: Callable[[], Any] | None) -> Iterator[None]:
    """Within this block, ``encoder`` calls ``interrupt()`` at :func:`interrupt_points` places per encode;
    whatever it raises stops the encode (what it returns is ignored). Nothing changes when ``interrupt`` is
    None. One encode at a time per encoder."""
    with _lock_of(encoder):
        if interrupt is None:
            yield
            return
        parts = [part for block in getattr(encoder, "blocks", ()) for part in (block.attn, block.mlp)]

        def check(*_: Any) -> None:  # a pre-hook that returned a value would replace the block's input
            interrupt()

        handles = [part.register_forward_pre_hook(check) for part in parts]
        patched = _global_blocks(encoder)
        for block in patched:  # an instance attribute shadows the class's forward until it is deleted
            block.attn.forward = lambda x, attn=block.attn: attention_by_head(attn, x, interrupt)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for block in patched:
                del block.attn.forward
