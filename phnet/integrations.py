"""Host-agnostic helpers for UI adapters (the SD-WebUI script; usable by any other host).

Turns the choices a user makes in a UI (a weights dropdown, a mask source, a box) into
library calls. No gradio / WebUI / ComfyUI imports: the host passes in its own folders.

- :func:`list_phnet_weights` / :func:`resolve_harmonizer`: "default (bundled)", an entry of
  the host's ``models/PHNet`` folder, a path, or a Hub repo id → a cached ``Harmonizer``.
- :func:`list_sam_weights` / :func:`resolve_segmenter`: the same for SAM checkpoints.
- :func:`harmonize_image`: PIL in, PIL out, with one of three mask sources.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_WEIGHTS",
    "MASK_SOURCES",
    "default_weights_dir",
    "list_phnet_weights",
    "resolve_harmonizer",
    "list_sam_weights",
    "resolve_segmenter",
    "parse_hub_choice",
    "mask_from_inpaint",
    "harmonize_image",
    "clear_cache",
]

DEFAULT_WEIGHTS = "default (bundled)"
MASK_INPAINT = "Inpaint mask"
MASK_SUBJECT = "Pasted subject (alpha)"
MASK_SAM = "SAM box"
MASK_SOURCES = (MASK_INPAINT, MASK_SUBJECT, MASK_SAM)

_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
_SAM_SUFFIXES = (".safetensors", ".pth", ".pt")

# One loaded model of each kind is kept: hosts call once per generated image, and
# reloading a SAM vit_h (2.5 GB) per image would dominate the run time.
_lock = threading.Lock()
_cache: dict[str, tuple[tuple, Any]] = {}


def clear_cache() -> None:
    """Forget the cached Harmonizer and SamSegmenter (frees their memory)."""
    with _lock:
        _cache.clear()


def _cached(kind: str, key: tuple, build):
    with _lock:
        hit = _cache.get(kind)
        if hit is not None and hit[0] == key:
            return hit[1]
    value = build()
    with _lock:
        _cache[kind] = (key, value)
    return value


def default_weights_dir() -> Path:
    """``phnet/assets/default``: the weights bundled with the package (may be absent)."""
    return Path(__file__).resolve().parent / "assets" / "default"


def _entries(folder: Path, suffixes: Sequence[str], folder_marker: str | None) -> list[str]:
    if not folder.is_dir():
        return []
    names = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes:
            names.append(p.name)
        elif p.is_dir() and folder_marker and (p / folder_marker).is_file():
            names.append(p.name)
    return names


def list_phnet_weights(models_dir: str | os.PathLike | None) -> list[str]:
    """Dropdown choices: the bundled default, then weights files / model folders in ``models_dir``."""
    found = _entries(Path(models_dir), _WEIGHT_SUFFIXES, "config.json") if models_dir else []
    return [DEFAULT_WEIGHTS] + found


def _resolve_local(choice: str, dirs: Iterable[str | os.PathLike]) -> Path | None:
    for d in dirs:
        if d is None:
            continue
        candidate = Path(d) / choice
        if candidate.exists():
            return candidate
    path = Path(os.path.expanduser(choice))
    return path if path.exists() else None


def resolve_harmonizer(
    choice: str | None,
    models_dir: str | os.PathLike | None = None,
    *,
    device: Any = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
):
    """A ``phnet.Harmonizer`` for a UI weights choice (cached: the same choice loads once).

    ``choice``: ``DEFAULT_WEIGHTS`` / empty → the bundled default; a name found in
    ``models_dir`` (a folder with config.json, or a weights file); an existing path; or a
    Hugging Face repo id (``owner/name``, optionally ``owner/name@revision``).
    """
    from phnet import Harmonizer

    choice = (choice or "").strip()
    if not choice or choice == DEFAULT_WEIGHTS:
        default = default_weights_dir()
        if not (default / "config.json").is_file():
            where = f" or put weights in {models_dir}" if models_dir else ""
            raise FileNotFoundError(
                f"The bundled default PHNet weights are missing ({default} has no config.json). "
                f"Reinstall / update the extension{where}, or choose a Hugging Face repo id in 'Weights'."
            )
        source, revision = str(default), None
    else:
        local = _resolve_local(choice, [models_dir] if models_dir else [])
        if local is not None:
            source, revision = str(local), None
        else:
            source, revision = parse_hub_choice(choice)
            if "/" not in source or source.count("/") != 1:
                where = f" in {models_dir}" if models_dir else ""
                raise FileNotFoundError(
                    f"PHNet weights {choice!r} not found{where}, and it is not a Hugging Face repo id "
                    "('owner/name'). Pick an entry from the list or type a repo id."
                )
    key = (source, revision, str(device), str(cache_dir), bool(local_files_only))
    return _cached(
        "phnet",
        key,
        lambda: Harmonizer.from_pretrained(
            source, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, device=device
        ),
    )


def parse_hub_choice(choice: str) -> tuple[str, str | None]:
    """``owner/name@rev`` → ("owner/name", "rev"); ``owner/name`` → ("owner/name", None)."""
    repo, _, rev = choice.partition("@")
    return repo.strip(), (rev.strip() or None)


def list_sam_weights(dirs: Iterable[str | os.PathLike | None]) -> list[str]:
    """SAM checkpoint file names found in ``dirs`` (e.g. ``models/sam``, ``models/sams``)."""
    names: list[str] = []
    for d in dirs:
        if d:
            names += [n for n in _entries(Path(d), _SAM_SUFFIXES, None) if n not in names]
    return names


def resolve_segmenter(
    choice: str | None,
    dirs: Iterable[str | os.PathLike | None] = (),
    *,
    device: Any = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
):
    """A cached ``SamSegmenter`` for a UI choice.

    ``choice``: a file name found in ``dirs``, a path, or ``owner/name:path/in/repo.pth``
    (a Hub repo id, optionally ``@revision`` and ``:filename``).
    """
    from phnet.segmentation import SamSegmenter

    choice = (choice or "").strip()
    dirs = [d for d in dirs if d]
    if not choice:
        listed = ", ".join(str(d) for d in dirs) or "a models folder"
        raise ValueError(
            f"No SAM checkpoint chosen: put e.g. sam_vit_b_01ec64.pth in {listed} and pick it, "
            "or type a Hub repo id as owner/name:filename."
        )
    local = _resolve_local(choice, dirs)
    if local is not None:
        key = (str(local), None, None, str(device))
        return _cached("sam", key, lambda: SamSegmenter.from_pretrained(local, device=device))
    repo, _, filename = choice.partition(":")
    repo, revision = parse_hub_choice(repo)
    key = (repo, filename or None, revision, str(device), str(cache_dir), bool(local_files_only))
    return _cached(
        "sam",
        key,
        lambda: SamSegmenter.from_pretrained(
            repo,
            filename=filename or None,
            revision=revision,
            device=device,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        ),
    )


def mask_from_inpaint(
    image_mask: Any,
    size: tuple[int, int],
    *,
    invert: bool = False,
    crop: tuple[int, int, int, int] | None = None,
):
    """An inpaint mask (PIL, white = repainted) as a PIL "L" mask of ``size`` (W, H).

    ``crop`` is (x, y, w, h) of the region that was generated at full resolution
    ("inpaint only masked"): the mask is cut to it before resizing.
    """
    from PIL import Image, ImageOps

    mask = image_mask
    if not isinstance(mask, Image.Image):
        arr = np.asarray(mask)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
        mask = Image.fromarray(arr.squeeze())
    if mask.mode in ("RGBA", "LA"):
        # Gradio's sketch masks carry the painted strokes in alpha.
        alpha = mask.getchannel("A")
        mask = alpha if alpha.getextrema() != (255, 255) else mask.convert("L")
    mask = mask.convert("L")
    if invert:
        mask = ImageOps.invert(mask)
    if crop is not None:
        x, y, w, h = crop
        mask = mask.crop((x, y, x + w, y + h))
    if mask.size != tuple(size):
        mask = mask.resize(tuple(size), Image.BILINEAR)
    return mask


def harmonize_image(
    harmonizer,
    image,
    *,
    mask=None,
    strength: float = 1.0,
    subject=None,
    x: float = 0,
    y: float = 0,
    scale: float = 1.0,
    anchor: str = "center",
    segmenter=None,
    box: Sequence[float] | None = None,
    grow: int = 0,
    feather: float = 0.0,
):
    """Harmonize a PIL image; returns ``(PIL image, PIL "L" mask used)``.

    Exactly one mask source:
    - ``mask``: a ready mask (PIL / array, white = the region to harmonize);
    - ``subject``: an RGBA cut-out pasted onto ``image`` at ``x, y`` (``anchor``, ``scale``),
      its alpha is the mask;
    - ``segmenter`` + ``box``: SAM segments the subject inside ``box`` on ``image``.
    ``grow`` / ``feather`` refine the mask of any source. Pixels outside the mask keep
    their exact values.
    """
    from PIL import Image

    from phnet.compositing import paste_subject
    from phnet.segmentation import _to_mask, refine_mask

    rgb = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    sources = sum(v is not None for v in (mask, subject, segmenter))
    if sources != 1:
        raise ValueError("Give exactly one mask source: mask, subject, or segmenter + box.")

    if subject is not None:
        comp, m = paste_subject(rgb, subject, x=x, y=y, scale=scale, anchor=anchor)
        base = np.asarray(rgb)
        comp_u8 = np.round(comp * 255.0).astype(np.uint8)
        comp_u8[m <= 0] = base[m <= 0]  # untouched pixels stay bit-identical
        rgb = Image.fromarray(comp_u8)
    elif segmenter is not None:
        if box is None:
            raise ValueError("SAM needs a box (x0, y0, x1, y1) around the subject.")
        segmenter.set_image(rgb)
        m = segmenter.predict(box=box)
    else:
        m = _to_mask(mask)
        if m.shape != (rgb.height, rgb.width):
            raise ValueError(
                f"The mask is {m.shape[1]}x{m.shape[0]} but the image is {rgb.width}x{rgb.height}."
            )

    if grow or feather:
        m = refine_mask(m, grow=grow, feather=feather)
    if not (m > 0).any():
        raise ValueError("The mask is empty: there is nothing to harmonize.")
    mask_img = Image.fromarray(np.round(m * 255.0).astype(np.uint8))  # 2-D uint8 → mode "L"
    out = harmonizer(rgb, mask_img, strength=float(strength))
    return out, mask_img
