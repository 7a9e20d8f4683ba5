"""Training configuration: TOML files merged over ``configs/default.toml``, then CLI overrides.

A config is a plain nested dict with the sections ``model``, ``data``, ``loss`` and
``train``. ``--set section.key=value`` parses ``value`` as a TOML value (so
``1e-4``, ``true``, ``[3, 8]`` and ``"text"`` work) and falls back to a string.
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


def model_config(cfg: dict):
    """The ``[model]`` table as a phnet.PHNetConfig (``preset`` + field overrides)."""
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
    return dataclasses.replace(base, **m)


def data_image_size(cfg: dict, model_cfg) -> int:
    return int(cfg["data"].get("image_size") or model_cfg.image_size)


def to_json(cfg: dict) -> str:
    return json.dumps(cfg, indent=2, default=str) + "\n"
