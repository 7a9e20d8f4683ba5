"""The common data-set class: load a pair, fit it to the working size, augment, synthesise."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.data.common import BadSampleError, Record, check_pair, crop_box, fit_square, pad_box, to_chw
from trainer.data.synthesis import SynthesisOptions, recolour_photo, sample_strength, synthesize
from trainer.data.synthesis_torch import draw_sample

BAD_SAMPLE_POLICIES = ("error", "skip")


class HarmonizationDataset(Dataset):
    """Samples are dicts of ``comp``/``real`` (3xSxS), ``mask`` (1xSxS, {0,1}), ``name``, ``subset``; with
    ``resize="pad"`` outside training also ``box``, the picture's (top, left, height, width) in the square.

    Indices may be plain ints or ``(index, epoch)`` tuples (the trainer's sampler
    passes the epoch so that random augmentation and synthesis are reproducible
    across a resume). Validation samples are a pure function of the index.

    A training sample to be synthesised with ``[data.synthesis] on_device`` has no ``comp``: it holds
    ``synthesis``, the parameters the training loop makes its composite with (synthesis_torch.py).
    """

    mask_filter = "nearest"  # how fit_square resizes the mask (common._resize): as the official iHarmony4 loader

    def __init__(self, records: list[Record], *, image_size: int = 256, resize: str = "stretch",
                 train: bool = False, hflip: float = 0.0, crop_scale=(1.0, 1.0),
                 on_bad_sample: str = "error", seed: int = 0, identity_pairs: float = 0.0,
                 synthesis: SynthesisOptions | None = None, description: str = "data set"):
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"data.on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
        if resize != "none" and image_size % 8:
            raise ValueError(f"image size {image_size} is not a multiple of 8")
        self.records = records
        self.image_size = int(image_size)
        self.resize = resize
        self.train = train
        self.hflip = float(hflip) if train else 0.0
        self.crop_scale = tuple(crop_scale) if train else (1.0, 1.0)
        self.on_bad_sample = on_bad_sample
        self.seed = int(seed)
        self.identity_pairs = float(identity_pairs) if train else 0.0
        self.synthesis = synthesis or SynthesisOptions()
        self.description = description
        self.not_held_out: str | None = None  # why scores on this split are not held-out scores (build_dataset)
        self.folder: str | None = None  # where this split's pictures are read from, when not data.root (build_dataset)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description}, {len(self)} samples, train={self.train})"

    # hooks ----------------------------------------------------------------
    def load(self, record: Record, rng: np.random.Generator):
        """Return ``(comp or None, real, mask)`` float arrays at native size."""
        raise NotImplementedError

    def reference_for(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        """Picture whose statistics a synthesised subject is moved towards (folder sets)."""
        return None

    # ---------------------------------------------------------------------
    def sample_rng(self, index: int, epoch: int = 0) -> np.random.Generator:
        if self.train:
            return np.random.default_rng([self.seed, epoch, index, 1])
        return np.random.default_rng([self.seed, index, 2])

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (int(key), 0)
        try:
            return self.make_sample(index, self.sample_rng(index, epoch))
        except BadSampleError as exc:
            if self.on_bad_sample == "error":
                if "on_bad_sample" in str(exc):
                    raise
                raise BadSampleError(f"{exc}; mend or remove the file, or set data.on_bad_sample = \"skip\" to leave "
                                     "such samples out") from None
            warnings.warn(f"skipping bad sample #{index}: {exc}")  # (its caller is the data loader: not the cause)
            return None

    def make_sample(self, index: int, rng: np.random.Generator) -> dict:
        record = self.records[index]
        comp, real, mask = self.load(record, rng)
        check_pair(comp, real, mask, record)
        if comp is not None and self.identity_pairs and rng.random() < self.identity_pairs:
            comp = real
        parts = [to_chw(real), to_chw(mask)] + ([to_chw(comp)] if comp is not None else [])
        stack = torch.cat(parts, 0)
        h, w = stack.shape[-2:]
        out = None
        for attempt in range(4):  # a random crop may miss the subject: retry, then use the full frame
            scale = self.crop_scale if attempt < 3 else (1.0, 1.0)
            y0, x0, ch, cw = crop_box(h, w, rng, scale)
            cand = fit_square(stack[:, y0:y0 + ch, x0:x0 + cw], self.image_size, self.resize,
                              rng if self.train else None, keep=3, mask_filter=self.mask_filter)
            if (cand[3] >= 0.5).any():
                out = cand
                break
        if out is None:
            raise BadSampleError(f"mask of {record.mask or record.real} vanishes at {self.image_size}px "
                                 f"(foreground too small)")
        if self.hflip and rng.random() < self.hflip:
            out = out.flip(-1)
        real_t = out[0:3].clamp(0, 1)
        if not self.train and not real_t.any():  # scored against its own peak, max(gt)², which it lacks
            where = "" if self.resize == "none" else f" at {self.image_size}px"
            raise BadSampleError(f"photo {record.real} is black everywhere{where}: its PSNR, against its own peak, "
                                 "is undefined")
        mask_t = (out[3:4] >= 0.5).float()
        if comp is not None:
            comp_t = out[4:7].clamp(0, 1)
        elif self.train and self.synthesis.on_device:
            params = draw_sample(rng, self.synthesis, lambda r: self.reference_for(index, r))
            return {"real": real_t.contiguous(), "mask": mask_t, "synthesis": params,
                    "name": record.name, "subset": record.subset}
        else:
            opts = self.synthesis
            strength = sample_strength(rng, opts)
            real_np = real_t.permute(1, 2, 0).numpy()
            if self.train and opts.photo_recolour and rng.random() < opts.photo_recolour:
                real_np = recolour_photo(real_np, rng)
                real_t = torch.from_numpy(real_np).permute(2, 0, 1)
            ref = self.reference_for(index, rng)
            comp_np = synthesize(real_np, mask_t[0].numpy(), rng, reference=ref, strength=strength,
                                 options=opts)
            comp_t = torch.from_numpy(comp_np).permute(2, 0, 1).contiguous()
        sample = {"comp": comp_t, "real": real_t.contiguous(), "mask": mask_t,
                  "name": record.name, "subset": record.subset}
        if self.resize == "pad" and not self.train:  # where the picture is: evaluation scores no padding
            sample["box"] = torch.tensor(pad_box(ch, cw, self.image_size))
        return sample
