"""Put the pictures the example workflows load into ComfyUI's input folder.

The templates' Load Image nodes name the pictures in ``NAMES`` (a composite, a background, a subject,
four video frames, and masks). They ship in ``examples/comfyui/`` (made by
``examples/make_template_media.py`` from public-domain pictures, about 0.7 MB together) and are copied into the input folder when ComfyUI
loads the pack, so a template runs as soon as it is opened. A file that is already there is never
overwritten (a user's own ``phnet_subject.png`` stays theirs), and a failure to copy (read-only
input folder) is logged, never fatal. A marker file (``MARKER``) in the input folder lists the pictures
that were there, and those are never copied again: pictures a user deletes stay deleted (deleting the
marker brings them back at the next start), while one a later version adds still comes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import folder_paths

log = logging.getLogger("comfyui-phnet")

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "comfyui"
NAMES = ("phnet_composite.png", "phnet_background.png", "phnet_subject.png", "phnet_reference.png",
         "phnet_frame_1.jpg", "phnet_frame_2.jpg", "phnet_frame_3.jpg", "phnet_frame_4.jpg", "phnet_frames_mask.png")


MARKER = ".comfyui-phnet-template-pictures"


def install() -> list[str]:
    """Copy the missing template pictures, unless they were copied before; returns the names copied."""
    target = Path(folder_paths.get_input_directory())
    marker = target / MARKER
    try:  # the pictures copied before (a later version may add some: those still come)
        done = set(marker.read_text(encoding="utf-8").split()) & set(NAMES)
    except (OSError, UnicodeDecodeError):
        done = set()
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
            partial.unlink(missing_ok=True)
            log.warning("comfyui-phnet: could not copy the template picture %s into %s (%s)", name, target, e)
    if copied:
        log.info("comfyui-phnet: copied the template pictures %s into %s", ", ".join(copied), target)
    there = {name for name in NAMES if (target / name).exists()} | done
    if there != done:
        try:
            marker.write_text("comfyui-phnet copied the pictures its example workflows load into this folder. "
                              "Those listed here are not copied again; delete this file to have the missing ones "
                              "copied at the next start.\n" + "".join(f"{n}\n" for n in NAMES if n in there),
                              encoding="utf-8")
        except OSError as e:
            log.warning("comfyui-phnet: could not write %s (%s)", marker, e)
    return copied
