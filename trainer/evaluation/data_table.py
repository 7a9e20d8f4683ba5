"""The ``[data]`` table a scoring command reads, for ``trainer.evaluate`` and ``trainer.calibrate`` alike: a run's
table pointed at another folder, what ``--split all`` may score, and errors that name the flag a setting came from."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path


# where a run's photos were, and which of them it took: not --data's
RUN_FOLDERS = ("mask_dir", "val_root", "val_mask_dir", "ffhq_root", "subsets")


def data_for_other(run_data: dict, other: str) -> dict:
    """A run's ``[data]`` table for ``--data OTHER``: OTHER's own layout, read off it, without the run's photo
    folders and subsets, unless OTHER is the run's own root (then its folders are OTHER's too)."""
    data = dict(run_data)
    data.pop("max_samples", None)  # a run's cap on its own photos: these composites are scored whole
    root, own = run_data.get("root"), False
    if root:
        with contextlib.suppress(OSError, TypeError):
            own = Path(root).expanduser().resolve() == Path(other).expanduser().resolve()
    if not own:
        for key in RUN_FOLDERS:
            data.pop(key, None)
    data["root"], data["kind"] = other, "auto"
    return data


def check_split_all(split: str, data: str | None, config: str | None) -> str | None:
    """Why ``--split all`` cannot be used here (it scores every photo of a folder a run never saw), or None."""
    if split != "all":
        return None
    if not data:
        return "--split all scores every photo of --data, a folder the run never saw: give --data"
    if config:
        from trainer.config import read_config

        from trainer.data import is_pool

        run = read_config(config)["data"]
        given = Path(data).expanduser().resolve()
        for key, whose in (("root", "training photos"), ("val_root", "validation photos, which chose its best/")):
            own = run.get(key)
            if own:
                own_path = Path(str(own)).expanduser().resolve()
                if given.parent == own_path and is_pool(own_path) and given.name not in (
                        ("train", "val") if key == "root" else ("val",)):
                    continue  # a split of the run's pool that it never read (its test/)
                if own_path == given or own_path.is_relative_to(given) or given.is_relative_to(own_path):
                    return (f"--split all would score every photo of {data}, which holds the run's own {whose} "
                            f"({own}) or lies among them: choose a split, or give another --data")
    return None


DATA_FLAGS = {"val_fraction": "--val-fraction", "mask_dir": "--mask-dir", "ffhq_root": "--ffhq-root",
              "subsets": "--subsets"}


def in_flags(message: str, args) -> str:
    """An error about a ``[data]`` setting given here by its flag names the flag (``data.val_fraction`` is
    ``--val-fraction``); one that came from ``--config`` is changed there. Never trainer.fit's ``--set``, which this
    command has not. ``data.val_root``, which no flag sets, is a config's, and ``--data`` replaces the config's.
    ``--on-bad-sample``, where the command has it, overrides any config's ``data.on_bad_sample``."""
    if hasattr(args, "on_bad_sample"):
        message = message.replace('set data.on_bad_sample = "skip"', "pass --on-bad-sample skip")
    for key, flag in DATA_FLAGS.items():
        if getattr(args, key, None) is not None:
            message = re.sub(rf" \(--set data\.{key}=[^)]*\)", "", message)
            message = re.sub(rf"\bdata\.{key}\b", flag, message)
    message = re.sub(r"--set data\.\w+=\S* or ", "", message)  # "(--set data.subsets=[] or remove it from the config)"
    if getattr(args, "data", None) is None:
        elsewhere = "give a --config whose data.val_root is set, or score a folder of held-out photos with --data and "
    else:  # (--data drops the config's data.val_root)
        elsewhere = "score a folder of held-out photos with --data and "
    return message.replace("give a data.val_root folder", elsewhere + "--split all")
