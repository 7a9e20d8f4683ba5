"""What a resumed run may change: the config it was started with against the one it resumes with.

The network and what its weights or optimizer state mean are fixed for the life of a run:
the ``[model]`` table, the working size (``data.image_size``), ``train.optimizer`` and
``train.freeze_dead_modules`` (which parameters the optimizer holds); so are the data settings
that decide which photos are trained on and which are held out (``trainer.data.split_settings``:
a photo folder's ``test_fraction``, ``val_fraction`` and whether it has a ``val_root``) as far as they would
hold out a photo already trained on: for a photo folder whose old splits can be listed, the splits themselves
decide (``trainer.data.trained_photos_held_out``). Such a change is an error that names it (start a new run with
``model.init_from`` instead). Everything else is
applied from the new config - learning rate, betas, weight decay, steps, schedule, batch
size, data, losses, intervals - and listed in the log's ``resume`` event, so the recorded
``run_config.json`` is always the config in use.
"""
from __future__ import annotations

FIXED_SECTIONS = ("model",)
FIXED_KEYS = ("data.image_size", "train.optimizer", "train.freeze_dead_modules")


class ResumeConfigError(ValueError):
    """The new config changes something a run cannot change on resume."""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def config_changes(old: dict, new: dict) -> dict[str, tuple]:
    """``{"section.key": (old, new)}`` for every value that differs (a missing key is ``None``)."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def is_fixed(key: str) -> bool:
    return key.split(".", 1)[0] in FIXED_SECTIONS or key in FIXED_KEYS


# data settings besides the split settings that choose the photos of each split (another folder, masks elsewhere)
PHOTO_KEYS = ("data.root", "data.kind", "data.mask_dir", "data.val_root", "data.val_mask_dir")
# data settings that leave the validation composites, and so its scores, as they were (training only)
SAME_VALIDATION = {"data.num_workers", "data.start_method", "data.preload", "data.hflip", "data.crop_scale",
                   "data.on_bad_sample", "data.max_bad_in_a_row", "data.synthesis.on_device",
                   "data.synthesis.photo_recolour", "data.identity_pairs"}
# what makes the validation composites of the same photos (the rest of the data settings choose the photos,
# and with a checkpoint's fingerprint of them, ``validation_photos``, that says whether they changed)
COMPOSITE_KEYS = {"data.resize"}
# ... and where the validation composites are synthesised from photos (iHarmony4's and FFHQH's are files)
SYNTHESIS_KEYS = {"data.seed", "data.mask_fallback"}
PHOTOS = "the validation photos"


def validation_changes(changes: dict[str, tuple], same_photos: bool | None = None,
                       synthesized: bool = True) -> list[str]:
    """The keys among a resume's ``changes`` that make other validation composites (or another share of them):
    scores before and after are not comparable. ``same_photos``: whether the validation set is made of the same
    files as the checkpoint's (``validation_photos``), which then decides for every key that chooses the photos
    (folders, fractions, sample counts); None where the checkpoint does not say (an older one): each counts.
    ``synthesized``: whether the validation composites are made from photos (``data.seed``, ``data.mask_fallback``
    and ``[data.synthesis]`` make them), not read from files."""
    keys = [k for k in changes if ((k.startswith("data.") and k not in SAME_VALIDATION) or k == "train.val_max_samples")
            and (synthesized or not _synthesis_key(k))]
    if same_photos is None:
        return keys
    made = [k for k in keys if k in COMPOSITE_KEYS or _synthesis_key(k)]
    return made + ([] if same_photos else [PHOTOS])


def _synthesis_key(key: str) -> bool:
    return key in SYNTHESIS_KEYS or key.startswith("data.synthesis.")


def check_resume_config(old: dict, new: dict, checkpoint, split_keys=(), held_out=None) -> dict[str, tuple]:
    """The changes the resume will apply; raise ResumeConfigError for changes it cannot make. ``split_keys``: the
    data settings that decide which photos are trained on and which held out (``trainer.data.split_settings``);
    of ``data.val_root`` only whether it is set decides that. ``held_out``: called where one of them or a folder
    of ``PHOTO_KEYS`` changed, it lists the photos trained on that the new config holds out
    (``trainer.data.trained_photos_held_out``), which then decides alone; None where it cannot tell."""
    changes = config_changes(old, new)
    if "data.image_size" in changes and _working_size(old) == _working_size(new):  # 0 (the model's) or the same
        del changes["data.image_size"]
    fixed = {k: v for k, v in changes.items() if is_fixed(k)}
    moved = {k: (a, b) for k, (a, b) in changes.items()
             if k in split_keys and (k != "data.val_root" or bool(a) != bool(b))}
    photos = None
    if held_out is not None and any(k in split_keys or k in PHOTO_KEYS for k in changes):
        photos = held_out()
    if photos is not None:  # the splits themselves say which photos move: none trained on held out is fine
        moved = {k: v for k, v in changes.items() if k in split_keys or k in PHOTO_KEYS} if photos else {}
    if fixed or moved:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in {**fixed, **moved}.items())
        why = []
        if fixed:
            why.append("A run keeps its [model] table, working size (data.image_size), optimizer type and frozen "
                       "parameters.")
        if moved and photos:
            why.append(f"A run keeps the photos of each split: {len(photos)} of the photos it has trained on would "
                       f"be held out (first: {photos[0]}), scored as unseen ones and choosing best/.")
        elif moved:
            why.append("A run keeps the photos of each split: photos it has trained on would be held out, scored as "
                       "unseen ones and choosing best/.")
        raise ResumeConfigError(
            f"cannot resume {checkpoint} with a changed {', '.join({**fixed, **moved})} ({listed}). {' '.join(why)} "
            f"Put the old values back, or start a new run from these weights with --init-from {checkpoint}.")
    return changes


def _working_size(cfg: dict) -> int | None:
    """The run's working size as a config sets it (``data.image_size``, else the model's); None if unreadable."""
    from trainer.config import model_config

    try:
        return model_config(cfg).image_size
    except (ValueError, KeyError, TypeError):
        return None


def apply_hyperparameters(optimizer, scheduler, train: dict) -> None:
    """Put the config's lr, betas and weight decay into a restored optimizer and scheduler; set the lr for the
    scheduler's restored position.

    ``optimizer.load_state_dict`` brings back the hyperparameters the state was saved with; the
    scheduler's factor is a function of the new ``[train]`` table (steps, warm-up, schedule). The position is
    the scheduler's own count (``last_epoch``), not the optimizer steps done: the schedule waits out the steps
    an fp16 gradient scaler skipped, so it can lag behind them.
    """
    from trainer.optim import config_betas

    lr = float(train["lr"])
    betas = config_betas(train)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["betas"] = betas
        group["weight_decay"] = float(train["weight_decay"])
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * scheduler.lr_lambdas[0](scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
