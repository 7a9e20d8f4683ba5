"""The training batches: the same samples as epoch-by-epoch loading, one loader iterator for a whole run."""
from __future__ import annotations

import itertools

import pytest
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from trainer.distributed import EpochBatches
from training_runs import tiny_cfg


def epoch_by_epoch(n: int, batch: int, world: int, rank: int, seed: int, epochs: int) -> list[list[tuple[int, int]]]:
    """What a loader that ends with each epoch reads: a shuffled share per process, the short last batch
    dropped unless the share is smaller than one batch."""
    order = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    batches = []
    for epoch in range(epochs):
        order.set_epoch(epoch)
        drop = order.num_samples >= batch
        batches += [[(i, epoch) for i in b] for b in BatchSampler(list(order), batch, drop_last=drop)]
    return batches


@pytest.mark.parametrize("n, batch, world", [(11, 3, 2), (32, 8, 1), (3, 8, 1), (5, 4, 2)])
def test_the_batches_are_those_of_epoch_by_epoch_loading_without_an_end(n, batch, world):
    for rank in range(world):
        batches = EpochBatches(range(n), batch, world, rank, seed=7)
        expected = epoch_by_epoch(n, batch, world, rank, 7, epochs=4)
        assert list(itertools.islice(iter(batches), len(expected))) == expected
        per_epoch = len(expected) // 4
        assert batches.per_epoch == per_epoch
        batches.start_at(2, 1)  # a resume: the rest of epoch 2, then on
        tail = expected[2 * per_epoch + 1 :]
        assert list(itertools.islice(iter(batches), len(tail))) == tail


def test_an_empty_share_yields_nothing():
    assert list(EpochBatches([], 4, 1, 0, seed=0)) == []


def test_a_run_over_several_epochs_reads_them_through_one_loader_iterator(shift_set, tmp_path, monkeypatch):
    """The workers go on into the next epoch while this one's last batches train: the training loader is
    never started again (each start stops and refills every worker)."""
    from trainer.fit import train

    started = []
    original = DataLoader.__iter__

    def counting(loader):
        if isinstance(loader.batch_sampler, EpochBatches):
            started.append(loader)
        return original(loader)

    monkeypatch.setattr(DataLoader, "__iter__", counting)
    out = tmp_path / "run"
    train(tiny_cfg(shift_set, out, steps=10, batch_size=8, val_every=0, ckpt_every=0), progress=False)
    assert len(started) == 1  # 32 training photos in batches of 8: ten steps are two and a half epochs


def test_ddp_without_find_unused_parameters_needs_the_dead_modules_frozen():
    """Unfrozen, PHNet's modules that never run stopped DDP at its second step with a traceback on each rank."""
    import types

    import torch

    from trainer.fit import wrap_for_training

    env = types.SimpleNamespace(world=2, device=torch.device("cpu"))
    with pytest.raises(ValueError, match=r"find_unused_parameters = false with train.freeze_dead_modules = false"):
        wrap_for_training(torch.nn.Linear(1, 1), {"freeze_dead_modules": False, "find_unused_parameters": False,
                                                  "cudnn_benchmark": False}, env)


def test_settings_ddp_would_stop_on_are_refused_before_the_run_folder_is_touched(shift_set, tmp_path,
                                                                               monkeypatch):
    """The refusal came after --overwrite had deleted the previous run (or --resume had branched it)."""
    import types

    from training_runs import tiny_cfg

    from trainer import fit

    out = tmp_path / "run"
    fit.train(tiny_cfg(shift_set, out, steps=2, ckpt_every=2, val_every=0, batch_size=4), progress=False)
    monkeypatch.setattr(fit, "Dist", lambda *a: types.SimpleNamespace(world=2, close=lambda: None))
    cfg = tiny_cfg(shift_set, out, steps=4, freeze_dead_modules=False, find_unused_parameters=False)
    with pytest.raises(ValueError, match="find_unused_parameters = false"):
        fit.train(cfg, overwrite=True, progress=False)
    assert (out / "checkpoints" / "step-00000002").is_dir()


def test_a_gpu_named_by_index_under_torchrun_is_refused(monkeypatch):
    """--device cuda:0 under torchrun put every process on GPU 0: NCCL refused the duplicate GPU and each process
    said only that another had stopped."""
    import torch

    from trainer.distributed import Dist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"'cuda:0' names one GPU, but under torchrun .*CUDA_VISIBLE_DEVICES"):
        Dist("cuda:0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes on a machine of one GPU: --device cuda is no fix
    with pytest.raises(ValueError) as e:
        Dist("cuda:0")
    assert str(e.value) == ("train.device 'cuda:0' names one GPU, but the 2 processes on this machine share its 1 "
                            "GPU(s): start at most one process per GPU (torchrun --nproc_per_node 1), or train on the "
                            "CPU with --device cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four on two GPUs: cuda:0 with two processes is refused next
    with pytest.raises(ValueError, match=r"torchrun --nproc_per_node 2 with --device cuda\), or train on the CPU"):
        Dist("cuda:0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # a process that sees only its own GPU (SLURM)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "gloo")
    assert Dist("cuda:0").device == torch.device("cuda", 0)


def test_the_runs_own_messages_and_waits_go_through_the_control_group(monkeypatch):
    """Under NCCL, a wait for process 0's validation past the timeout was aborted by NCCL's watchdog, with no
    error naming train.process_timeout_minutes: the run's messages and waits go through a gloo group, on the CPU."""
    import torch
    import torch.distributed as dist

    from trainer.distributed import Dist

    env = Dist("cpu")
    env.world, env.control = 2, object()
    groups = []

    def all_gather(boxes, mine, group=None):
        groups.append(group)
        assert mine.device.type == "cpu"
        for box in boxes:
            box.copy_(mine)

    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "barrier", lambda group=None: groups.append(group))
    monkeypatch.setattr(dist, "broadcast_object_list", lambda box, src, group=None: groups.append(group))
    env.device = torch.device("meta")  # the training device plays no part
    assert env.least(3) == 3 and env.from_main("x") == "x"
    env.barrier()
    assert groups == [env.control] * 3


@pytest.mark.parametrize("world", [2, 16, 32])
def test_the_process_group_is_left_once_gloo_has_let_go_of_the_last_collective_s_tensors(monkeypatch, world):
    """A process that finished first left while gloo's thread still held the last gather's tensors: dropping them
    during the interpreter's exit aborted the process after a finished run, and torchrun failed the run."""
    import threading
    import time

    import torch
    import torch.distributed as dist

    from trainer.distributed import Dist

    env = Dist("cpu")
    env.world = world
    kept = []

    def all_gather(boxes, mine, group=None):
        for box in boxes:
            box.copy_(mine)
        hold = torch.ones(1, requires_grad=True)
        kept.extend([boxes[0] * hold, mine * hold])  # holds from C++, as a collective's work has (16 processes: the
        # gather's own value was no longer waited for)
        threading.Timer(0.2, kept.clear).start()  # let go of a moment later, on another thread

    released = []
    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: released.append(not kept))
    assert env.gather((7,)) == [[7]] * world
    start = time.monotonic()
    env.close()
    assert released == [True] and time.monotonic() - start < 5


def test_each_process_takes_its_rank_and_the_number_of_processes_from_torchrun(monkeypatch):
    """torchrun's RANK numbers the process among all machines' (LOCAL_RANK: on its own machine); rank 0 alone
    writes the run's files."""
    import torch.distributed as dist

    from trainer.distributed import Dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setenv("WORLD_SIZE", "4")
    for rank, local_rank, main in (("0", "0", True), ("1", "1", False), ("2", "0", False), ("3", "1", False)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        env = Dist("cpu")
        assert (env.world, env.rank, env.local_rank, env.main) == (4, int(rank), int(local_rank), main)


def test_the_processes_values_are_combined_rank_by_rank(monkeypatch):
    """gather lists every rank's values in rank order, least is the smallest, ranks_where names the ranks whose
    flag is set and sums adds the ranks' values place by place (the log's losses and counts of every process)."""
    import torch
    import torch.distributed as dist

    from trainer.distributed import Dist

    env = Dist("cpu")
    env.world, env.rank, env.control = 3, 1, object()
    others = {0: [5, 0], 2: [1, 1]}  # what ranks 0 and 2 bring to the collective

    def all_gather(boxes, mine, group=None):
        for rank, box in enumerate(boxes):
            box.copy_(mine if rank == env.rank else torch.tensor(others[rank][: mine.numel()], dtype=mine.dtype))

    def all_reduce(mine, group=None):
        mine += torch.tensor([[0.5, 2.0], [1.5, 3.0]], dtype=mine.dtype).sum(0)

    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    assert env.gather((3, 1)) == [[5, 0], [3, 1], [1, 1]]
    assert env.least(3) == 1
    others.update({0: [1], 2: [0]})
    assert env.ranks_where(False) == [0] and env.ranks_where(True) == [0, 1]
    assert env.sums([1.0, 10.0]) == [3.0, 15.0]


def test_a_control_group_that_leaves_this_process_out_stops_the_run_under_python_O_too(monkeypatch):
    """The check was an assert: under ``python -O`` a process outside its own control group ran on without one."""
    import torch.distributed as dist

    from trainer.distributed import Dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(dist, "new_group", lambda **k: dist.GroupMember.NON_GROUP_MEMBER)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match="^internal error: the gloo group of every rank left rank 1 out$"):
        Dist("cpu")
