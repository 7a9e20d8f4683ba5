"""The before/after grid: composite | mask | Reinhard | MKL | each model | real, one row per sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from phnet.atomic import picture_writer, write_atomic


def _cell(t: torch.Tensor, side: int) -> Image.Image:
    t = t.detach().float().cpu()
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    h, w = t.shape[-2:]
    s = side / max(h, w)
    t = F.interpolate(t[None], size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                      align_corners=False, antialias=True)[0]
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    img = Image.fromarray(arr)
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def save_grid(samples: list[dict], columns: list[str], path: Path, side: int = 128) -> Path:
    font = ImageFont.load_default()
    head, pad = 18, 4
    grid = Image.new("RGB", (len(columns) * (side + pad) + pad, head + len(samples) * (side + pad) + pad),
                     (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for j, col in enumerate(columns):
        draw.text((pad + j * (side + pad) + side // 2, 4), col, fill=(20, 20, 20), font=font, anchor="mt")
    for i, s in enumerate(samples):
        for j, col in enumerate(columns):
            grid.paste(_cell(s[col], side), (pad + j * (side + pad), head + pad + i * (side + pad)))
    write_atomic(path, picture_writer(grid, "PNG"))
    return path


def grid_cells(comp, mask, real, outs: dict[str, torch.Tensor], models, room: int) -> list[dict]:
    """Up to ``room`` rows of the before/after grid from this batch."""
    cells = []
    for i in range(min(room, comp.shape[0])):
        cell = {"composite": comp[i].cpu(), "mask": mask[i].cpu(), "Reinhard": outs["reinhard"][i].cpu(),
                "MKL": outs["mkl"][i].cpu(), "real": real[i].cpu()}
        cells.append({**cell, **{grid_label(label): outs[label][i].cpu() for label in models}})
    return cells


def grid_label(label: str) -> str:
    """How a model's label is shown in the grid's head (and where it must not clash with another column)."""
    return "PHNet" if label == "phnet" else label
