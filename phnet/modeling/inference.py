"""An eval-only form of PHNet with the same outputs and fewer passes over memory.

BatchNorm (running statistics, eval mode) is folded into the transposed convolution before it, and
the stride-1 transposed convolutions become ordinary convolutions (flipped, transposed kernels),
which the CPU backends run faster. Everything else is the trained model's own modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .phnet import PHNet


def _fold_batch_norm(conv: nn.ConvTranspose2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    weight, bias = conv.weight.detach(), conv.bias.detach()
    if isinstance(norm, nn.BatchNorm2d):
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        weight = weight * scale[None, :, None, None]
        bias = (bias - norm.running_mean) * scale + norm.bias.detach()
    return weight, bias


class FoldedUpStage(nn.Module):
    def __init__(self, stage: nn.Sequential) -> None:
        super().__init__()
        conv, norm, act = stage
        weight, bias = _fold_batch_norm(conv, norm)
        self.stride = conv.stride[0]
        if self.stride == 1:  # a stride-1 transposed conv is a conv with the kernel flipped and transposed
            weight = weight.flip(-1, -2).transpose(0, 1)
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
        self.padding = conv.padding[0] if self.stride != 1 else conv.kernel_size[0] - 1 - conv.padding[0]
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        self.decoder = nn.ModuleList(FoldedUpStage(stage) for stage in model.decoder)
        self.eval()

    def train(self, mode: bool = True) -> "InferencePHNet":
        if mode:
            raise RuntimeError("InferencePHNet is for inference only; train the PHNet it was made from")
        return super().train(False)
