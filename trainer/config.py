"""Training configuration: TOML files merged over ``configs/default.toml``, then CLI overrides.

A config is a plain nested dict with the sections ``model``, ``data``, ``loss`` and
``train``. ``--set section.key=value`` parses ``value`` as a TOML value (so
``1e-4``, ``true``, ``[3, 8]`` and ``"text"`` work) and falls back to a string.

A run records the config it used as ``run_config.json`` at the root of its output
folder (runs before this name wrote ``config.json``, the name of a *model* config
inside checkpoints; :func:`read_config` still reads it). :func:`model_config` is the
one place the working size is decided.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_PATH = CONFIG_DIR / "default.toml"
RUN_CONFIG_NAME = "run_config.json"   # at the root of a run folder
LEGACY_RUN_CONFIG_NAME = "config.json"  # what runs wrote there before; inside checkpoints it is the model's


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def resolve_config_path(name: str | Path) -> Path:
    p = Path(name).expanduser()
    if p.suffix == ".toml" and p.exists():
        return p
    if p.exists() and p.is_file():
        return p
    q = CONFIG_DIR / f"{name}.toml"
    if q.exists():
        return q
    raise FileNotFoundError(f"config {name!r} not found (a .toml path or one of {available_configs()})")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
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
            raise KeyError(f"unknown config key {path!r}; known keys here: {known}")
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val, strict=strict, where=path)
        else:
            out[key] = copy.deepcopy(val)
    return out


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(item: str) -> dict:
    """``"train.lr=1e-4"`` -> ``{"train": {"lr": 1e-4}}``."""
    if "=" not in item:
        raise ValueError(f"--set expects section.key=value, got {item!r}")
    key, value = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ValueError(f"--set key must be section.key (e.g. train.lr), got {key!r}")
    d: dict = {parts[-1]: parse_value(value.strip())}
    for p in reversed(parts[:-1]):
        d = {p: d}
    return d


def load_config(name: str | Path | None = None, sets: list[str] | tuple = (), overrides: dict | None = None) -> dict:
    cfg = _read_toml(DEFAULT_PATH)
    if name:
        cfg = deep_merge(cfg, _read_toml(resolve_config_path(name)), strict=True)
    if overrides:
        cfg = deep_merge(cfg, overrides, strict=True)
    for item in sets:
        cfg = deep_merge(cfg, parse_set(item), strict=True)
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    t, d = cfg["train"], cfg["data"]
    if t["optimizer"] not in ("lion", "adamw"):
        raise ValueError(f"train.optimizer must be 'lion' or 'adamw', got {t['optimizer']!r}")
    if t["schedule"] not in ("cosine", "constant"):
        raise ValueError(f"train.schedule must be 'cosine' or 'constant', got {t['schedule']!r}")
    if d["on_bad_sample"] not in ("error", "skip"):
        raise ValueError(f"data.on_bad_sample must be 'error' or 'skip', got {d['on_bad_sample']!r}")
    for k in ("steps", "batch_size", "grad_accum"):
        if int(t[k]) < 1:
            raise ValueError(f"train.{k} must be >= 1, got {t[k]}")
    if d["resize"] not in ("stretch", "crop", "pad"):
        raise ValueError(f"data.resize must be 'stretch', 'crop' or 'pad' for training, got {d['resize']!r}")
    if int(d["max_bad_in_a_row"]) < 1:
        raise ValueError(f"data.max_bad_in_a_row must be >= 1, got {d['max_bad_in_a_row']}")


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
        raise KeyError(f"unknown [model] key(s) {unknown}; PHNetConfig fields are {sorted(known)}")
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
    p = Path(source).expanduser()
    if p.is_dir():
        found = run_config_path(p)
        if found is None:
            raise FileNotFoundError(f"{p} holds no {RUN_CONFIG_NAME} (is it a training run folder?)")
        p = found
    if p.suffix == ".json" and p.is_file():
        cfg = json.loads(p.read_text(encoding="utf-8"))
        if not is_trainer_config(cfg):
            raise ValueError(f"{p} is not a trainer config (a model's config.json? use the run's {RUN_CONFIG_NAME})")
        return cfg
    return load_config(source)
