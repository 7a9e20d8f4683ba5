"""Training configuration: TOML files merged over ``configs/default.toml``, then CLI overrides.

A config is a plain nested dict with the sections ``model``, ``data``, ``loss`` and
``train``. ``--set section.key=value`` parses ``value`` as a TOML value (so
``1e-4``, ``true``, ``[3, 8]`` and ``"text"`` work) and falls back to a string (not for text in quotes).

A run records the config it used as ``run_config.json`` at the root of its output
folder (runs before this name wrote ``config.json``, the name of a *model* config
inside checkpoints; :func:`read_config` still reads it). :func:`model_config` is the
one place the working size is decided.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10: the same reader, as a package
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_PATH = CONFIG_DIR / "default.toml"
RUN_CONFIG_NAME = "run_config.json"   # at the root of a run folder
LEGACY_RUN_CONFIG_NAME = "config.json"  # what runs wrote there before; inside checkpoints it is the model's


class UnknownKeyError(KeyError, ValueError):
    """A config key the trainer does not know: a KeyError to callers, a ValueError (a user error) to the CLI."""

    def __str__(self) -> str:
        return str(self.args[0])  # a KeyError would print its message quoted


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def resolve_config_path(name: str | Path) -> Path:
    """A config file: a .toml path, a name from trainer/configs, or an earlier run (its folder, or the
    ``run_config.json`` it recorded: the same settings for a new run)."""
    p = Path(name).expanduser()
    q = CONFIG_DIR / f"{name}.toml"
    if p.is_dir():
        recorded = run_config_path(p)
        if recorded is not None:
            return recorded
        if q.exists():  # a data folder named like a config (--config ffhqh --data ffhqh)
            return q
        raise FileNotFoundError(f"{p} is a folder that holds no run config ({RUN_CONFIG_NAME}): give a run folder "
                                f"trainer.fit wrote, a .toml file, or one of {available_configs()}")
    if p.is_file():
        return p
    if q.exists():
        return q
    raise FileNotFoundError(f"config {name!r} not found (a .toml path, a run folder, or one of {available_configs()})")


def read_config_file(path: Path) -> dict:
    """A TOML config, or a run's recorded JSON one."""
    if path.suffix == ".json":
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{path} holds no trainer config (a JSON table of sections)")
        return cfg
    return _read_toml(path)


def _read_toml(path: Path) -> dict:
    from phnet.config import read_text  # UTF-8 with or without a BOM, or UTF-16; anything else named with the fix

    try:
        return tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML ({exc})") from None


def deep_merge(base: dict, over: dict, *, strict: bool, where: str = "") -> dict:
    """Merge ``over`` into a copy of ``base``; with ``strict`` unknown keys are errors.

    The ``model`` table is free-form (validated by PHNetConfig).
    """
    out = copy.deepcopy(base)
    for key, val in over.items():
        path = f"{where}.{key}" if where else key
        free = where == "model" or where.startswith("model.")
        if strict and not free and key not in base:
            known = ", ".join(sorted(base)) if base else "(none)"
            raise UnknownKeyError(f"unknown config key {path!r}; known keys here: {known}")
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val, strict=strict, where=path)
        else:
            out[key] = copy.deepcopy(val)
    return out


def parse_value(text: str, key: str = "value") -> Any:
    paths = "write Windows paths with forward slashes (D:/masks) or in single quotes ('D:\\masks')"
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text.startswith(('"', "'")):  # kept as typed, its quotes would be part of the path
            raise ValueError(f"--set {key}: {text} is not a TOML string; {paths}") from None
        return text
    if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"--set {key}: {text} holds a control character (in double quotes \\n, \\r, \\t, \\b and \\f "
                         f"are escapes); {paths}")
    return text if isinstance(value, (datetime.date, datetime.time)) else value  # a folder named by its date


def parse_set(item: str) -> dict:
    """``"train.lr=1e-4"`` -> ``{"train": {"lr": 1e-4}}``."""
    if "=" not in item:
        raise ValueError(f"--set expects section.key=value, got {item!r}")
    key, value = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ValueError(f"--set key must be section.key (e.g. train.lr), got {key!r}")
    d: dict = {parts[-1]: parse_value(value.strip(), ".".join(parts))}
    for p in reversed(parts[:-1]):
        d = {p: d}
    return d


def load_config(name: str | Path | None = None, sets: list[str] | tuple = (), overrides: dict | None = None) -> dict:
    defaults = _read_toml(DEFAULT_PATH)
    cfg = defaults
    if name:
        cfg = deep_merge(cfg, read_config_file(resolve_config_path(name)), strict=True)
    if overrides:
        cfg = deep_merge(cfg, overrides, strict=True)
    for item in sets:
        cfg = deep_merge(cfg, parse_set(item), strict=True)
    validate(cfg, defaults)
    return cfg


# --------------------------------------------------------------------------- validation
# Every value is checked when the config is loaded, so a mistake stops the start naming the key,
# not the run hours later (or never, training on something else).

CHOICES = {
    "data.kind": ("auto", "iharmony", "ffhqh", "folder"),
    "data.resize": ("stretch", "crop", "pad"),
    "data.mask_fallback": ("ellipse", "error"),
    "data.on_bad_sample": ("error", "skip"),
    "data.start_method": ("auto", "fork", "forkserver", "spawn"),
    "train.optimizer": ("lion", "adamw"),
    "train.schedule": ("cosine", "constant"),
    "train.find_unused_parameters": (True, False, "auto"),
}


def _at_least(n: int) -> tuple:
    return (lambda v: v >= n), f"at least {n}"


_ABOVE_ZERO = ((lambda v: v > 0), "above 0")
_FRACTION = ((lambda v: 0 <= v <= 1), "from 0 to 1")
_BELOW_ONE = ((lambda v: 0 <= v < 1), "from 0 to less than 1")
_CROP_FRACTION = ((lambda v: 0 < v <= 1), "above 0 and at most 1")

RANGES = {  # key -> (test, wording); a list's test applies to each item
    **dict.fromkeys(("train.steps", "train.batch_size", "train.grad_accum", "train.val_batch_size",
                     "train.log_every", "data.val_copies", "data.max_bad_in_a_row",
                     "data.synthesis.max_transforms"), _at_least(1)),
    **dict.fromkeys(("train.val_every", "train.ckpt_every", "train.keep_last", "train.warmup_steps",
                     "train.val_max_samples", "train.max_minutes", "train.patience", "train.weight_decay",
                     "train.grad_clip",
                     "train.seed", "data.seed", "data.image_size", "data.num_workers", "data.max_samples",
                     "loss.psnr", "loss.fnmse", "loss.fnmse_min_area", "loss.gradient", "loss.mse", "loss.l1"),
                    _at_least(0)),
    **dict.fromkeys(("train.min_lr_ratio", "data.hflip", "data.val_fraction", "data.test_fraction",
                     "data.identity_pairs", "data.synthesis.identity_fraction", "data.synthesis.mild_fraction",
                     "data.synthesis.mild_max", "data.synthesis.reference_probability",
                     "data.synthesis.photo_recolour", "data.synthesis.strength_range"), _FRACTION),
    **dict.fromkeys(("train.lr", "loss.fnmse_scale", "train.process_timeout_minutes"), _ABOVE_ZERO),
    **dict.fromkeys(("train.ema", "train.betas"), _BELOW_ONE),
    "data.crop_scale": _CROP_FRACTION,
}
PAIRS = ("train.betas", "data.crop_scale", "data.synthesis.strength_range")  # two values each
ORDERED_PAIRS = PAIRS[1:]  # [low, high]


def validate(cfg: dict, defaults: dict | None = None) -> None:
    """Raise ValueError naming the first key whose value has the wrong type, choice or range."""
    check_types(cfg, _read_toml(DEFAULT_PATH) if defaults is None else defaults)
    for key, choices in CHOICES.items():
        value = lookup(cfg, key)
        if not any(type(value) is type(c) and value == c for c in choices):
            raise ValueError(f"{key} must be one of {', '.join(map(toml_text, choices))}, got {toml_text(value)}")
    for key, (ok, wording) in RANGES.items():
        value = lookup(cfg, key)
        if not all(ok(v) for v in (value if isinstance(value, list) else [value])):
            raise ValueError(f"{key} must be {wording}{' (each value)' if isinstance(value, list) else ''}, "
                             f"got {toml_text(value)}")
    for key in PAIRS:
        value = lookup(cfg, key)
        ordered = key in ORDERED_PAIRS
        if len(value) != 2:
            raise ValueError(f"{key} must be two values{' [low, high]' if ordered else ''}, got {toml_text(value)}")
        if ordered and value[0] > value[1]:
            raise ValueError(f"{key} is [low, high]: its first value must not be above its second, got "
                             f"{toml_text(value)} (did you mean {toml_text(value[::-1])}?)")
    check_tables(cfg)


def check_types(cfg: dict, defaults: dict, where: str = "") -> None:
    """Each value must have the type of its default (the PHNetConfig fields in ``[model]`` are PHNetConfig's to
    check)."""
    for key, default in defaults.items():
        path = f"{where}.{key}" if where else key
        value = cfg.get(key)
        if path in CHOICES:
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                hint = f" (a preset is named in it: --set model.preset={toml_text(value)})" \
                    if path == "model" and isinstance(value, str) else ""
                raise ValueError(f"{path} is a table of settings ([{path}]), got {toml_text(value)}{hint}")
            check_types(value, default, path)
        elif not same_kind(value, default):
            raise ValueError(f"{path} must be {kind_of(default)} (e.g. --set {path}={toml_text(default)}), "
                             f"got {toml_text(value)}")


def same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, list):  # an empty default list (data.subsets) holds names
        item = default[0] if default else ""
        return isinstance(value, list) and all(same_kind(v, item) for v in value)
    return isinstance(value, type(default))


def kind_of(default) -> str:
    if isinstance(default, list):
        return f"a list, each item {kind_of(default[0] if default else '')}"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names[type(default)]


def toml_text(value) -> str:
    """A value as it is written in a config or after ``--set key=``."""
    return json.dumps(value, default=str)


def lookup(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def check_tables(cfg: dict) -> None:
    """The ``[model]`` table (and working size) and ``[data.synthesis]``, as the classes they build check them."""
    from trainer.data.synthesis import SynthesisOptions

    extra = cfg["model"].get("extra", {})
    if not isinstance(extra, dict):  # every checkpoint stores it, and loading one refuses any other
        raise ValueError(f"model.extra is a table of your own notes (e.g. --set 'model.extra={{note=\"...\"}}'), "
                         f"got {toml_text(extra)}")
    try:
        json.dumps(extra)  # what a checkpoint's config.json can store
    except TypeError:
        raise ValueError("model.extra holds a TOML date or time, which a checkpoint's config.json cannot store: "
                         "write it as a string (e.g. trained = \"2024-01-01\")") from None
    try:
        model_config(cfg)
    except UnknownKeyError:
        raise
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[model] (or data.image_size): {exc}") from None
    try:
        SynthesisOptions(**cfg["data"]["synthesis"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"[data.synthesis]: {exc}") from None


def library_defaults(cfg: dict) -> dict:
    """The fields a preset would give that a ``preset = ""`` [model] table leaves out, with the library defaults
    (``PHNetConfig()``'s) they take; with ``init_from``, whose weights bring the rest, the working size alone."""
    from phnet import PHNetConfig
    from phnet.config import REQUIRED_FIELDS

    if cfg["model"].get("preset", "") != "":
        return {}
    given = set(cfg["model"]) | ({"image_size"} if cfg["data"].get("image_size") else set())
    if cfg["model"].get("init_from"):
        given |= set(REQUIRED_FIELDS) - {"image_size"}
    return {f: getattr(PHNetConfig(), f) for f in REQUIRED_FIELDS if f not in given}


def model_config(cfg: dict):
    """The ``[model]`` table as a phnet.PHNetConfig (``preset`` + field overrides).

    Its ``image_size`` is the run's working size: ``data.image_size`` when set, else the
    ``[model]`` table's (or the preset's). The trainer builds the model with this config and
    the data sets at ``model.config.image_size``, so a checkpoint records the size it was
    trained at.
    """
    from phnet import PHNetConfig

    m = dict(cfg["model"])
    preset = m.pop("preset", "")
    m.pop("init_from", None)
    base = PHNetConfig.preset(preset) if preset else PHNetConfig()
    known = {f.name for f in dataclasses.fields(PHNetConfig)}
    unknown = sorted(set(m) - known)
    if unknown:
        raise UnknownKeyError(f"unknown [model] key(s) {unknown}: correct or remove them; the keys are "
                              f"preset, init_from and the PHNetConfig fields {sorted(known)}")
    if "grid_counts" in m and "pfe_grid" not in m:
        m["pfe_grid"] = None  # re-derive the PFE grid from the new grids (official: grid_counts[1])
    if cfg["data"].get("image_size"):
        m["image_size"] = int(cfg["data"]["image_size"])
    return dataclasses.replace(base, **m)


def to_json(cfg: dict) -> str:
    return json.dumps(cfg, indent=2, default=str) + "\n"


def is_trainer_config(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("train"), dict) and isinstance(obj.get("data"), dict)


def run_config_path(run_dir: Path) -> Path | None:
    """The trainer config recorded in a run folder: ``run_config.json``, else an old run's ``config.json``."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_CONFIG_NAME).is_file():
        return run_dir / RUN_CONFIG_NAME
    legacy = run_dir / LEGACY_RUN_CONFIG_NAME
    if legacy.is_file():
        try:
            if is_trainer_config(json.loads(legacy.read_text(encoding="utf-8"))):
                return legacy
        except (OSError, ValueError):
            pass
    return None


def read_config(source: str | Path) -> dict:
    """A trainer config from a run folder, a recorded JSON config, a TOML file or a config name."""
    p = resolve_config_path(source)  # also a config name where a data folder has that name (--config ffhqh)
    if p.suffix == ".json":
        cfg = json.loads(p.read_text(encoding="utf-8"))
        if not is_trainer_config(cfg):
            raise ValueError(f"{p} is not a trainer config (a model's config.json? use the run's {RUN_CONFIG_NAME})")
        return cfg
    return load_config(p)
