"""PHNet: a U-Net whose skip features are re-normalized by Patch-based Normalization blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..compat import autocast_enabled
from ..config import PHNetConfig
from .features import PatchFeatureExtractor, SqueezeExcitationGate
from .normalization import PatchNormalization
from .transform import COEFFICIENTS, apply_colour_transform, correction_size, kept_fraction, subject_mean


def encoder_layer(c_in: int, c_out: int, downsample: bool) -> nn.Sequential:
    """Conv → InstanceNorm → ReLU; a 4×4 stride-2 convolution halves the size where ``downsample``."""
    kernel, stride = (4, 2) if downsample else (3, 1)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1),
        nn.InstanceNorm2d(c_out),
        nn.ReLU(),
    )


def decoder_layer(c_in: int, c_out: int, upsample: bool, batch_norm: bool, last: bool) -> nn.Sequential:
    """Transposed conv → BatchNorm (or none) → LeakyReLU (none on the ``last`` stage); doubles the size where
    ``upsample``."""
    kernel, stride = (4, 2) if upsample else (3, 1)
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=1),
        nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
        nn.Identity() if last else nn.LeakyReLU(),
    )


class SkipFusion(nn.Module):
    """ReLU(Conv3×3([decoder features, skip features])), no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rconv = nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: the decoder's and the skip's features concatenated on channels (B×2C×H×W) → B×C×H×W."""
        return F.relu(self.rconv(x))


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32, or in float64 where it is (a model cast with .double() for a reference run stays so)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def residual_change(raw: torch.Tensor) -> torch.Tensor:
    """``output="residual"``: the decoder's logits as a change of the picture, in -1..1. In fp32 even under
    autocast: in bf16 a change near 0 came out in steps of 1/255, and one under half a step as 0."""
    return 2 * (torch.sigmoid(at_least_fp32(raw)) - 0.5)


def _halved_reference(reference: torch.Tensor) -> torch.Tensor:
    """A reference mask at the next level down: nearest, as the mask is; where that loses all of it (a band a
    pixel thick on odd rows), its strongest pixel of each 2×2 block, so it is not ignored there."""
    nearest = F.interpolate(reference, scale_factor=0.5)
    kept = nearest.amax(dim=(1, 2, 3), keepdim=True) > 0
    return torch.where(kept, nearest, F.max_pool2d(reference, 2)[..., : nearest.shape[-2], : nearest.shape[-1]])


def _check_dtypes(composite: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None,
                  weights: torch.dtype) -> None:
    """Integer pictures (0..255 read as 0..1) and a float precision the weights do not have outside autocast are
    refused by name, not by the first convolution's error."""
    given = {"composite": composite, "mask": mask, "reference": reference}
    if not all(t is None or t.is_floating_point() or (t.dtype == torch.bool and name != "composite")
               for name, t in given.items()):
        got = ", ".join(f"a {t.dtype} {name}" for name, t in given.items() if t is not None)
        raise ValueError("PHNet takes float pictures and masks in 0..1 (x.float() / 255 for 0..255 ones, "
                         f"mask.float() for a 0/1 mask; phnet.Harmonizer converts for you), got {got}")
    if composite.dtype != weights and not autocast_enabled(composite.device.type):
        raise ValueError(f"PHNet's weights are {weights}, got a {composite.dtype} composite: give it in {weights} "
                         "(composite.to(dtype)), cast the model (model.to(dtype)), or run under torch.autocast")


class PHNet(nn.Module):
    """PHNet as the official code computes it; module names match the official state_dict.

    ``forward(composite, mask)`` takes B×3×H×W float images in [0, 1] in the weights' precision (or any under
    autocast) and B×1×H×W float or bool masks (H, W multiples of 8, not both 8; integer tensors are refused: their
    scale cannot be told without reading them back) and returns the B×3×H×W prediction with the config's do-no-harm rule
    applied (threshold, ramp, floor: the official weights have none); ``estimate(..., threshold=0)`` gives the raw
    network's. Blending with the composite is the caller's job.
    An optional B×1×H×W ``reference`` mask names the part of the background the subject should
    match: the PN blocks and the PFE take their background statistics from it (see
    ``PatchNormalization``); without it the network is the official one, bit for bit.
    The last PN block and ``skip.6`` are never reached, as in the official model, but exist so the
    official checkpoints load strictly.
    """

    feature_extractor: nn.Module  # a PatchFeatureExtractor, or the oracle's patch-by-patch form of one

    def __init__(self, config: PHNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PHNetConfig()
        enc = config.enc_sizes
        dec = enc[::-1]
        self.feature_extractor = PatchFeatureExtractor(config.feature_grid)
        self.encoder = nn.ModuleList(encoder_layer(enc[i], enc[i + 1], downsample=i % 2 == 0) for i in range(6))
        self.normalizers = nn.ModuleList(
            PatchNormalization(dec[config.start_level + i], grid, config.init_weights, config.init_value)
            for i, grid in enumerate(config.grid_counts)
        )
        last_width = COEFFICIENTS if config.output == "transform" else 3
        self.decoder = nn.ModuleList(
            decoder_layer(dec[i], dec[i + 1] if i < 5 else last_width, upsample=i % 2 == 1, batch_norm=i < 3,
                          last=i == 5)
            for i in range(6)
        )
        self.skip = nn.ModuleList(SkipFusion(c) for c in dec)
        self.SE_block = SqueezeExcitationGate(enc[6], config.se_reduction)
        if config.output in ("residual", "transform"):
            # start at "leave every pixel as it is": sigmoid(0) = 0.5 maps to the composite itself, and
            # zero transform coefficients are the identity
            for parameter in self.decoder[5].parameters():  # the last stage's only ones: its convolution's
                nn.init.zeros_(parameter)

    def forward(
        self, composite: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The prediction at the input's size (before blending with the composite), the config's do-no-harm
        rule applied."""
        if self.config.output == "transform":
            return self.transform_output(composite, self.predict_transform(composite, mask, reference))
        return self.estimate(composite, mask, reference)[0]

    def predict_transform(
        self, composite: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """B×12 colour-transform coefficients (``output="transform"`` only), threshold applied."""
        if self.config.output != "transform":
            raise ValueError(f"predict_transform needs output='transform', this model has {self.config.output!r}")
        return self.estimate(composite, mask, reference)[0]

    def estimate(
        self,
        composite: torch.Tensor,
        mask: torch.Tensor,
        reference: torch.Tensor | None = None,
        *,
        threshold: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, size, kept), each with the batch first.

        ``output``: B×12 coefficients for ``output="transform"``, else the picture at the input's size, with
        the do-no-harm ``threshold`` (0–255 units; default the config's ``correction_threshold``) applied.
        ``size``: the RMS over the subject (0–255) of the change the network proposed. ``kept``: the
        fraction of that change in ``output`` (0 = the subject is left as it was).
        """
        threshold = self.config.correction_threshold if threshold is None else float(threshold)
        raw = self.decode(composite, mask, reference)
        if self.config.output == "transform":
            coefficients = subject_mean(at_least_fp32(raw), mask)
            composite = at_least_fp32(composite)
            size = correction_size((apply_colour_transform(composite, coefficients) - composite).detach(), mask)
            kept = kept_fraction(size, threshold, self.config.correction_ramp, self.config.correction_floor)
            return (coefficients * kept[:, None] if threshold else coefficients), size, kept
        if self.config.output == "residual":
            change = residual_change(raw)
            picture = None
        else:  # the official mapping: the sigmoid output is the picture itself
            picture = torch.sigmoid(at_least_fp32(raw))  # fp32 under autocast, as residual_change
            change = picture - composite
        # the size only decides how much is kept, a step no gradient is meant to pass: through it, a change of
        # exactly 0 (an untrained residual model) met sqrt's infinite slope, NaN under torch.compile's backward
        size = correction_size(change.detach(), mask)
        kept = kept_fraction(size, threshold, self.config.correction_ramp, self.config.correction_floor)
        if picture is not None and not threshold:
            return picture, size, kept  # exactly the official output
        change = change * kept.reshape(-1, 1, 1, 1).to(change.dtype) if threshold else change
        return (composite + change).clamp(0, 1), size, kept

    def transform_output(self, composite: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """``composite`` (B×3×H×W, 0..1, any size) with each item's 12 colour-transform coefficients (B×12, from
        :meth:`predict_transform`) applied, clamped to 0..1."""
        return apply_colour_transform(composite, coefficients).clamp(0, 1)

    def decode(
        self, composite: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The decoder's raw output: B×3×H×W logits, or B×12×H×W coefficients for ``output="transform"``."""
        if (composite.ndim != 4 or composite.shape[1] != 3
                or mask.shape != (composite.shape[0], 1, *composite.shape[2:])):
            raise ValueError(
                f"PHNet takes a B×3×H×W composite and a B×1×H×W mask, got {tuple(composite.shape)} and "
                f"{tuple(mask.shape)}"
            )
        if composite.shape[-1] % 8 or composite.shape[-2] % 8:
            raise ValueError(
                f"PHNet needs H and W divisible by 8, got {tuple(composite.shape[-2:])}; resize or pad the input "
                "(phnet.Harmonizer does this for you)"
            )
        if composite.shape[-1] == composite.shape[-2] == 8:  # the bottleneck would be one pixel: no statistics
            raise ValueError("PHNet needs more than 8×8 pixels (at least one side 16), got 8×8; resize the input "
                             "(phnet.Harmonizer works at 16 or more)")
        _check_dtypes(composite, mask, reference, next(self.encoder.parameters()).dtype)  # the first conv's weight
        mask = mask.to(composite.dtype)
        if reference is not None:
            if reference.shape != mask.shape:
                raise ValueError(f"the reference mask must be shaped like the mask {tuple(mask.shape)}, got "
                                 f"{tuple(reference.shape)}")
            reference = reference.to(composite.dtype)
        gate_features = (self.feature_extractor(composite, mask) if reference is None
                         else self.feature_extractor(composite, mask, reference))

        skips, masks, references = [composite], [mask], [reference]
        x = composite
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            skips.append(x)
            # nearest resize with a scale factor, like the official code (exact for its sizes)
            masks.append(F.interpolate(masks[-1], scale_factor=0.5) if i % 2 == 0 else masks[-1])
            last = references[-1]
            references.append(_halved_reference(last) if last is not None and i % 2 == 0 else last)

        x = self.SE_block(x, gate_features)
        start = self.config.start_level
        for i, layer in enumerate(self.decoder):
            skip, level_mask = skips[6 - i], masks[6 - i]
            if i >= start:
                normalizer = self.normalizers[i - start]
                if references[6 - i] is None:
                    skip = normalizer(skip, level_mask)
                else:
                    skip = normalizer(skip, level_mask, references[6 - i])
            x = layer(self.skip[i](torch.cat([x, skip], dim=1)))
        return x
