"""Put the pictures the example workflows load into ComfyUI's input folder.

The templates' Load Image nodes name the pictures in ``NAMES`` (a composite, a background, a subject,
four video frames, and masks). They ship in ``examples/comfyui/`` (made by
``examples/make_template_media.py`` from public-domain pictures, about 0.7 MB together) and are copied into the input
folder when ComfyUI loads the pack, so a template runs as soon as it is opened. A file that is already there is never
overwritten (a user's own ``phnet_subject.png`` stays theirs), and a failure to copy (read-only
input folder) is logged, never fatal. A record in ComfyUI's user folder (:func:`record_path`) lists, per
input folder, the pictures that were there, and those are never copied again: pictures a user deletes stay
deleted (deleting the record brings them back at the next start), while one a later version adds still comes.
The record is kept out of the input folder, whose every file core "Load Image (as Mask)" lists as a picture.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import folder_paths

log = logging.getLogger("comfyui-phnet")

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "comfyui"
NAMES = ("phnet_composite.png", "phnet_background.png", "phnet_subject.png", "phnet_reference.png",
         "phnet_frame_1.jpg", "phnet_frame_2.jpg", "phnet_frame_3.jpg", "phnet_frame_4.jpg", "phnet_frames_mask.png")


OLD_MARKER = ".comfyui-phnet-template-pictures"  # where earlier versions kept the record: in the input folder


def record_path() -> Path:
    """``user/comfyui-phnet/template-pictures.json`` in ComfyUI's user folder (the pack's own folder in a
    ComfyUI too old to have one)."""
    user = getattr(folder_paths, "get_user_directory", None)
    root = Path(user()) if user else Path(__file__).resolve().parents[1]
    return root / "comfyui-phnet" / "template-pictures.json"


def _read_record(path: Path) -> dict[str, list[str]]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def install() -> list[str]:
    """Copy the missing template pictures, unless they were copied before; returns the names copied."""
    target = Path(folder_paths.get_input_directory())
    key = os.path.normcase(os.path.abspath(target))
    path = record_path()
    record = _read_record(path)
    entry = record.get(key)
    listed = set(entry) & set(NAMES) if isinstance(entry, list) else set()
    done = set(listed)  # copied before (a later version may add some: those still come)
    marker = target / OLD_MARKER
    old: Path | None = marker
    try:
        done |= set(marker.read_text(encoding="utf-8").split()) & set(NAMES)
    except (OSError, UnicodeDecodeError):
        old = None
    copied = []
    for name in NAMES:
        src, dst = SOURCE / name, target / name
        if name in done or dst.exists() or not src.is_file():
            continue
        partial = dst.with_name(f".{name}.part")  # renamed in whole: a half copy would never be repaired
        try:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, partial)
            partial.replace(dst)
            copied.append(name)
        except OSError as e:
            with contextlib.suppress(OSError):  # a read-only folder refuses even removing what is not there
                partial.unlink(missing_ok=True)
            log.warning("comfyui-phnet: could not copy the template picture %s into %s (%s)", name, target, e)
    if copied:
        log.info("comfyui-phnet: copied the template pictures %s into %s", ", ".join(copied), target)
    there = {name for name in NAMES if (target / name).exists()} | done
    if there != listed or old is not None:
        record[key] = [n for n in NAMES if n in there]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            if old is not None:
                old.unlink()
        except OSError as e:
            log.warning("comfyui-phnet: could not write %s (%s)", path, e)
    return copied
