"""Process facts for one or several training processes (``torchrun``), seeding, and the resumable batches."""
from __future__ import annotations

import collections
import os
import random
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class Dist:
    """Process-group facts; a single process is rank 0 of 1.

    The device comes from ``phnet``'s picker (``train.device``, else CUDA, MPS, CPU); under
    ``torchrun`` each process takes the GPU of its local rank.
    """

    def __init__(self, device_pref: str = "", timeout_minutes: float = 30.0):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = usable_device(device_pref)
        if dev.type == "cuda":
            named = torch.device(device_pref).index if device_pref else None  # "cuda:1" names one GPU
            # every process would take that one GPU, which NCCL refuses (one that sees only its own GPU, as a
            # scheduler's one GPU per task gives it, rightly names cuda:0; not so two on a machine of one GPU)
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            gpus = torch.cuda.device_count()
            if named is not None and self.world > 1 and local_world > gpus:  # --device cuda would be refused too
                raise ValueError(
                    f"train.device {device_pref!r} names one GPU, but the {local_world} processes on this machine "
                    f"share its {gpus} GPU(s): start at most one process per GPU (torchrun --nproc_per_node "
                    f"{gpus}{' with --device cuda' if gpus > 1 else ''}), or train on the CPU with --device cpu")
            if named is not None and self.world > 1 and gpus > 1:
                raise ValueError(
                    f"train.device {device_pref!r} names one GPU, but under torchrun each process takes the GPU of "
                    "its local rank: use --device cuda (or leave train.device empty), and choose the GPUs with "
                    "CUDA_VISIBLE_DEVICES")
            if named is None and self.local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"this process is number {self.local_rank} on its machine, which has "
                    f"{torch.cuda.device_count()} GPU(s): start at most one process per GPU (torchrun "
                    f"--nproc_per_node {torch.cuda.device_count()}), or train on the CPU with --device cpu")
            dev = torch.device("cuda", self.local_rank if named is None else named)
            torch.cuda.set_device(dev)
        self.device = dev
        self.control: dist.ProcessGroup | None = None  # the run's own messages and waits; None: the default group
        self._lent: collections.deque = collections.deque(maxlen=LENT_KEPT)  # the last collectives' tensors
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                    timeout=timedelta(minutes=timeout_minutes))
        if self.world > 1 and dist.get_backend() == "nccl":
            # NCCL's watchdog aborts a process whose collective waits past the timeout, with no Python error to
            # name train.process_timeout_minutes; gloo raises one ("Timed out waiting")
            control = dist.new_group(backend="gloo", timeout=timedelta(minutes=timeout_minutes))
            if not isinstance(control, dist.ProcessGroup):  # a group of every rank: this one is a member
                raise RuntimeError(f"internal error: the gloo group of every rank left rank {self.rank} out")
            self.control = control

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier(group=self.control)

    def from_main(self, value):
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, values: tuple[int, ...]) -> list[list[int]]:
        """Every rank's ``values``, by rank; every rank calls this at the same point of the run."""
        if self.world == 1:
            return [list(values)]
        mine = torch.tensor(values, dtype=torch.int64)  # on the CPU, as the control group's gloo takes them
        boxes = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(boxes, mine, group=self.control)
        self._lent.append((mine, *boxes))
        return [box.tolist() for box in boxes]

    def least(self, value: int) -> int:
        """The smallest of the ranks' ``value`` (all call it at the same point, as for :meth:`gather`)."""
        return min(v for (v,) in self.gather((value,)))

    def sums(self, values: list[float]) -> list[float]:
        """The ranks' ``values`` added up place by place (all call it at the same point, as for :meth:`gather`)."""
        if self.world == 1:
            return list(values)
        mine = torch.tensor(values, dtype=torch.float64)  # on the CPU, as the control group's gloo takes them
        dist.all_reduce(mine, group=self.control)
        self._lent.append((mine,))
        return mine.tolist()

    def ranks_where(self, flag: bool) -> list[int]:
        """The ranks whose ``flag`` is true (all call it at the same point, as for :meth:`gather`)."""
        return [rank for rank, (f,) in enumerate(self.gather((int(flag),))) if f]

    def close(self, wait_s: float = 10.0):
        """Leave the process group once gloo has let go of the last collectives' tensors. Its threads drop a
        finished collective a moment after the caller goes on; dropping the last hold on a tensor made in Python
        takes the GIL, which no thread may take while the interpreter exits: the process aborted ("terminate called
        without an active exception") after a finished run, and torchrun failed the run and stopped process 0."""
        if self.world > 1 and dist.is_initialized():
            deadline = time.monotonic() + wait_s
            while any(_held_elsewhere(t) for lent in self._lent for t in lent) and time.monotonic() < deadline:
                time.sleep(0.001)  # (the GIL is free meanwhile)
            dist.destroy_process_group()
        self._lent.clear()


LENT_KEPT = 4  # collectives whose tensors close() waits for: a run ends with a gather and a barrier


def _held_elsewhere(tensor: torch.Tensor) -> bool:
    """Whether C++ code (a collective's work) still holds ``tensor`` besides Python's own reference."""
    count = getattr(tensor, "_use_count", None)  # (a private method, in every torch from 2.4 on)
    return count is not None and count() > 1


def usable_device(pref: str) -> torch.device:
    """``train.device`` as a device this machine has (empty: the best one); ValueError naming the fix otherwise."""
    from phnet.devices import device_problem, pick_device

    problem = device_problem(pref) if pref else None
    if problem:
        raise ValueError(f"train.device {pref!r}: {problem} (--device), or leave train.device empty to pick the "
                         "best one")
    return pick_device(pref or None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpochBatches:
    """The training batches of one process: lists of ``(index, epoch)``, epoch after epoch without end.

    The epoch travels with each index so that the data set's random augmentation and synthesis are a function
    of (seed, epoch, index): a resumed run sees the samples it would have seen without the interruption.
    One loader iterator runs through every epoch, so its workers make the next epoch's first batches while
    this epoch's last ones train; a loader that ends with each epoch stops its workers there, and the device
    waits at every epoch's start (with a few hundred photos and a GPU, a good part of each epoch).

    Each process reads its share of a shuffled epoch, as ``DistributedSampler`` splits it; an epoch's last
    short batch is dropped, unless the share is smaller than one batch (then it is that epoch's one batch).
    """

    def __init__(self, dataset, batch_size: int, num_replicas: int, rank: int, seed: int):
        self.order: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank,
                                                                 shuffle=True, seed=seed, drop_last=False)
        self.batch_size = batch_size
        self.epoch = self.first = 0

    @property
    def per_epoch(self) -> int:
        share = self.order.num_samples
        return share // self.batch_size if share >= self.batch_size else min(share, 1)

    def start_at(self, epoch: int, batch: int) -> None:
        """Where the next iterator starts: ``batch`` of ``epoch`` (for resume)."""
        self.epoch, self.first = epoch, batch

    def __iter__(self):
        epoch, first = self.epoch, self.first
        while self.per_epoch:
            self.order.set_epoch(epoch)
            indices = list(self.order)
            size = min(self.batch_size, len(indices))
            for b in range(first, self.per_epoch):
                yield [(i, epoch) for i in indices[b * size : (b + 1) * size]]
            epoch, first = epoch + 1, 0
