"""The exponential moving average of the weights (``train.ema``), updated without waiting for the GPU."""

from __future__ import annotations

import itertools

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage(AveragedModel):
    """``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)``, with the same
    updates, results and state_dict, minus its two host-device synchronisations per step.

    ``AveragedModel.update_parameters`` reads its count of updates, a tensor on the model's device, to choose
    between copying and averaging: on a GPU the training loop then waits for every step to finish before it
    can queue the next. Here the count is also kept on the host.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        average = get_ema_multi_avg_fn(decay)
        super().__init__(model, multi_avg_fn=average, use_buffers=True)
        self.average = average  # AveragedModel's own multi_avg_fn is declared optional
        self.updates = 0  # = n_averaged, read without a synchronisation

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        ours = list(itertools.chain(self.module.parameters(), self.module.buffers()))
        theirs = [t.detach().to(o.device) for o, t in zip(ours, itertools.chain(model.parameters(), model.buffers()))]
        ours = [o.detach() for o in ours]
        if self.updates == 0:
            for o, t in zip(ours, theirs):
                o.copy_(t)
        else:
            groups: dict[tuple, tuple[list, list]] = {}  # the foreach update takes one device and dtype at a time
            for o, t in zip(ours, theirs):
                group = groups.setdefault((o.device, o.dtype), ([], []))
                group[0].append(o)
                group[1].append(t)
            for our_group, their_group in groups.values():
                self.average(our_group, their_group, self.n_averaged)
        self.n_averaged += 1
        self.updates += 1

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)
        return result
