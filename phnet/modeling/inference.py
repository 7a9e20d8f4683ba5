"""An eval-only form of PHNet with the same outputs and fewer passes over memory.

BatchNorm (running statistics, eval mode) is folded into the transposed convolution before it, and
the stride-1 transposed convolutions become ordinary convolutions (flipped, transposed kernels),
which the CPU backends run faster. Everything else is the trained model's own modules.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .phnet import PHNet


def _fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(norm, nn.BatchNorm2d):
        mean, var, gain, shift = norm.running_mean, norm.running_var, norm.weight, norm.bias
        if mean is None or var is None or gain is None or shift is None:
            raise ValueError("only a BatchNorm2d with running statistics and affine parameters folds into the "
                             "convolution before it, as PHNet's are")
        scale = gain.detach() / torch.sqrt(var + norm.eps)
        weight = weight * scale[None, :, None, None]
        bias = (bias - mean) * scale + shift.detach()
    return weight, bias


class FoldedUpStage(nn.Module):
    """A PHNet decoder stage (transposed convolution, BatchNorm or none, activation) as one convolution with the
    BatchNorm folded in, then the activation; eval mode only."""

    def __init__(self, stage: nn.Sequential) -> None:
        super().__init__()
        conv, norm, act = stage
        if not isinstance(conv, nn.ConvTranspose2d) or conv.bias is None or isinstance(conv.padding, str):
            raise TypeError(f"FoldedUpStage takes a PHNet decoder stage, which starts with a biased ConvTranspose2d, "
                            f"got {conv}")
        weight, bias = _fold_batch_norm(conv.weight.detach(), conv.bias.detach(), norm)
        self.stride = conv.stride[0]
        if self.stride == 1:  # a stride-1 transposed conv is a conv with the kernel flipped and transposed
            weight = weight.flip(-1, -2).transpose(0, 1)
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
        self.padding = conv.padding[0] if self.stride != 1 else conv.kernel_size[0] - 1 - conv.padding[0]
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stage's output for ``x`` (B×C×H×W), as the unfolded stage gives it in eval mode."""
        if self.stride == 1:
            x = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        else:
            x = F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return self.act(x)


class InferencePHNet(PHNet):
    """Same call and result as the PHNet it was made from (to float rounding); not trainable."""

    def __init__(self, model: PHNet) -> None:
        nn.Module.__init__(self)
        self.config = model.config
        self.feature_extractor = model.feature_extractor
        self.encoder = model.encoder
        self.normalizers = model.normalizers
        self.skip = model.skip
        self.SE_block = model.SE_block
        self.decoder = nn.ModuleList(FoldedUpStage(cast(nn.Sequential, stage)) for stage in model.decoder)
        self.eval()

    def train(self, mode: bool = True) -> "InferencePHNet":
        """Eval mode only: ``train()`` or ``train(True)`` is refused, ``train(False)`` is ``eval()``."""
        if mode:
            raise RuntimeError("InferencePHNet is for inference only; train the PHNet it was made from")
        return super().train(False)
