"""One configuration object for PHNet, shared by the library, the nodes and the trainer."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUTS = ("image", "residual", "transform")
# What a PHNet can use: the official models work at 256-1024 px; beyond 4096 a working size only costs memory
# (65536 would allocate tens of GB for any picture). Widths and patch grids are bounded for the same reason.
MAX_WORKING_SIZE = 4096
MIN_WORKING_SIZE = 16  # at 8×8 the bottleneck is one pixel, and instance normalization needs two
MAX_WIDTH = 4096
MAX_GRID = 64


@dataclass(frozen=True)
class PHNetConfig:
    """Architecture and usage settings of one PHNet model.

    ``enc_sizes`` are the 7 channel widths of the encoder (input first); ``grid_counts`` are the patch
    grids of the Patch-based Normalization blocks, applied to the last ``len(grid_counts)`` decoder
    skips (the very last one, on the input image, is never reached, exactly as in the official code).
    ``pfe_grid`` is the grid of the Patch-based Feature Extractor; left unset it follows the
    official code, ``grid_counts[1]`` (see ``feature_grid``). ``image_size`` is the square side the weights were trained
    at (the working resolution). ``output="image"`` is the official mapping (the sigmoid output is the picture);
    ``"residual"`` re-centres it so that 0.5 means "leave the pixel as it is"; ``"transform"``
    predicts one affine colour transform of the subject (see ``phnet.modeling.transform``), which
    the Harmonizer applies to the full-resolution pixels. ``correction_threshold`` (0–255 units,
    0 = off) drops predicted corrections whose RMS change of the subject is below it (calibrated on
    held-out composites: do no harm first); ``correction_ramp`` unset shrinks larger ones by it (soft
    thresholding), set it keeps corrections above ``correction_threshold + correction_ramp`` whole
    (firm thresholding); ``correction_floor`` is the share of a correction below the threshold that is
    still applied (see ``phnet.modeling.transform.kept_fraction``).
    """

    enc_sizes: tuple[int, ...] = (3, 16, 32, 64, 128, 256, 512)
    grid_counts: tuple[int, ...] = (10, 5, 1)
    pfe_grid: int | None = None
    init_weights: tuple[float, float] = (0.5, 0.5)
    init_value: float = 0.8
    se_reduction: int = 8
    image_size: int = 512
    output: str = "image"
    correction_threshold: float = 0.0
    correction_ramp: float | None = None
    correction_floor: float = 0.0
    name: str = "custom"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for key in dataclasses.fields(self):  # types first: a wrong type must not surface as a TypeError later
            if key.name != "extra":
                _check_field(key.name, getattr(self, key.name), "PHNet config")
        object.__setattr__(self, "enc_sizes", tuple(int(c) for c in self.enc_sizes))
        object.__setattr__(self, "grid_counts", tuple(int(g) for g in self.grid_counts))
        object.__setattr__(self, "init_weights", tuple(float(w) for w in self.init_weights))
        if (len(self.enc_sizes) != 7 or self.enc_sizes[0] != 3 or min(self.enc_sizes) < 1
                or max(self.enc_sizes) > MAX_WIDTH):
            raise ValueError(
                f"enc_sizes must be 7 widths from 1 to {MAX_WIDTH} starting with 3 (RGB), got {self.enc_sizes}; "
                "e.g. (3, 16, 32, 64, 128, 256, 512)"
            )
        if not 1 <= len(self.grid_counts) <= 7 or min(self.grid_counts) < 1 or max(self.grid_counts) > MAX_GRID:
            raise ValueError(f"grid_counts must be 1 to 7 patch grids from 1 to {MAX_GRID}, got {self.grid_counts}")
        if self.pfe_grid is not None and not 1 <= self.pfe_grid <= MAX_GRID:
            raise ValueError(f"pfe_grid must be a patch grid from 1 to {MAX_GRID} (or null: the official choice), "
                             f"got {self.pfe_grid}")
        if not 1 <= self.se_reduction <= self.enc_sizes[6]:
            raise ValueError(
                f"se_reduction must be from 1 to the bottleneck width {self.enc_sizes[6]}, got {self.se_reduction}"
            )
        if not MIN_WORKING_SIZE <= self.image_size <= MAX_WORKING_SIZE or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 from {MIN_WORKING_SIZE} to {MAX_WORKING_SIZE}, got "
                             f"{self.image_size}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if not all(math.isfinite(v) for v in (*self.init_weights, self.init_value)):
            raise ValueError(f"init_weights and init_value must be finite, got {self.init_weights}, {self.init_value}")
        if not 0 <= self.correction_threshold <= 255:
            raise ValueError(f"correction_threshold must be from 0 to 255 (RMS, 0-255 units), got "
                             f"{self.correction_threshold}")
        if self.correction_ramp is not None and not 0 <= self.correction_ramp <= 255:
            raise ValueError(f"correction_ramp must be from 0 to 255 (RMS, 0-255 units) or null, got "
                             f"{self.correction_ramp}")
        if not 0 <= self.correction_floor <= 1:
            raise ValueError(f"correction_floor must be a share from 0 to 1, got {self.correction_floor}")

    @property
    def feature_grid(self) -> int:
        """The PFE's patch grid: ``pfe_grid`` when set, else the official choice, the second PN grid."""
        if self.pfe_grid is not None:
            return self.pfe_grid
        return self.grid_counts[1] if len(self.grid_counts) > 1 else 1

    @property
    def start_level(self) -> int:
        """The decoder stage whose skip the first PN block rewrites: ``7 - len(grid_counts)`` (4 for the iHarmony
        config)."""
        return 7 - len(self.grid_counts)

    @classmethod
    def preset(cls, name: str, /, **overrides: Any) -> "PHNetConfig":
        """The config of a named preset in :data:`PRESETS` (``"iharmony"``, ``"ffhqh"``, ``"small"``), with any
        field replaced by ``overrides`` (e.g. ``image_size=1024``); an unknown name is a ValueError."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown PHNet preset {name!r}; choose one of {sorted(PRESETS)}") from None
        return dataclasses.replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (lists for tuples, ``"model_type": "phnet"`` first); ``extra``,
        ``correction_ramp`` and ``correction_floor`` are left out when unset, so that older readers load it."""
        d = dataclasses.asdict(self)
        d["enc_sizes"] = list(self.enc_sizes)
        d["grid_counts"] = list(self.grid_counts)
        d["init_weights"] = list(self.init_weights)
        d = {"model_type": "phnet", **d}
        for key, unset in (("extra", {}), ("correction_ramp", None), ("correction_floor", 0.0)):
            if d[key] == unset:  # left out when unset, so that older readers load the file
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "PHNet config", required: tuple[str, ...] = ()) -> "PHNetConfig":
        """A config from its dict form. Every present field's type is checked (the field named in the error);
        fields in ``required`` must be present. ``source`` (e.g. the file) starts every message."""
        if not isinstance(d, dict):
            raise ValueError(f"{source} must be a JSON object of config fields, got a {type(d).__name__}")
        d = dict(d)
        kind = d.pop("model_type", "phnet")
        if kind != "phnet":
            raise ValueError(f"{source} describes a {kind!r} model, not a PHNet")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            import difflib

            close = {name: difflib.get_close_matches(name, sorted(known), n=1) for name in unknown}
            meant = [f"{name!r} → {found[0]!r}" for name, found in close.items() if found]
            raise ValueError(
                f"unknown PHNet config fields {unknown} in {source}: "
                + (f"misspelt? (did you mean {', '.join(meant)}), or " if meant else "")
                + "written by a newer comfyui-phnet (upgrade the package)"
            )
        missing = [f for f in required if f not in d]
        if missing:
            many = len(missing) > 1
            raise ValueError(f"{source} has no {', '.join(map(repr, missing))} field{'s' if many else ''}: add "
                             f"{'them' if many else 'it'} (every PHNet config names {', '.join(REQUIRED_FIELDS)})")
        for key, value in d.items():
            _check_field(key, value, source)
        try:
            return cls(**d)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text ending in a newline, the form of a model folder's config.json."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "PHNet config", required: tuple[str, ...] = ()) -> "PHNetConfig":
        """A config from JSON text, checked as :meth:`from_dict` checks it; text that is not JSON is a ValueError
        that starts with ``source``."""
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:  # also a number of thousands of digits, or arrays nested deep
            raise ValueError(f"{source} is not JSON this loader can read ({e})") from None
        return cls.from_dict(d, source=source, required=required)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` as UTF-8, atomically: a reader sees the old file or the new one,
        never half of it."""
        from .atomic import write_atomic_text

        write_atomic_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path, *, required: tuple[str, ...] = ()) -> "PHNetConfig":
        """A config read from a JSON file (UTF-8, with or without a BOM, or UTF-16 with one); fields in
        ``required`` must be present, and every message names the file."""
        return cls.from_json(read_text(path), source=str(path), required=required)


def read_text(path: str | Path) -> str:
    """A config file's text as Windows editors save it too: UTF-8 with or without a BOM, or UTF-16 with one
    (PowerShell 5's ``>``); anything else is named with the fix."""
    import codecs

    data = Path(path).read_bytes()
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        return data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8") from None


# A stored config must carry these: they fix the architecture and how the output is read, and no default
# is safe for them (the tensors do not show the output mapping or the training resolution).
REQUIRED_FIELDS = ("enc_sizes", "grid_counts", "image_size", "output")

_INT_LISTS, _INTS = ("enc_sizes", "grid_counts"), ("image_size", "se_reduction")


def _check_field(key: str, value: Any, source: str) -> None:
    def bad(expected: str) -> ValueError:
        return ValueError(f"{source}: field {key!r} must be {expected}, got {value!r} ({type(value).__name__})")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if key in _INT_LISTS and not (isinstance(value, (list, tuple)) and all(is_int(v) for v in value)):
        raise bad("a list of integers")
    if key in _INTS and not is_int(value):
        raise bad("an integer")
    if key == "pfe_grid" and value is not None and not is_int(value):
        raise bad("an integer or null")
    if key == "init_weights" and not (
        isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    ):
        raise bad("a list of two numbers")
    if key in ("init_value", "correction_threshold", "correction_floor") and not (isinstance(value, (int, float))
                                                              and not isinstance(value, bool)):
        raise bad("a number")
    if key == "correction_ramp" and value is not None and not (isinstance(value, (int, float))
                                                               and not isinstance(value, bool)):
        raise bad("a number or null")
    if key in ("output", "name") and not isinstance(value, str):
        raise bad("a string")
    if key == "extra" and not isinstance(value, dict):
        raise bad("an object")


PRESETS: dict[str, PHNetConfig] = {
    # Released with the paper: iharmony512.pth (iHarmony4, 512 px).
    "iharmony": PHNetConfig(
        enc_sizes=(3, 16, 32, 64, 128, 256, 512), grid_counts=(10, 5, 1), image_size=512, name="iharmony"
    ),
    # ffhqh{256,512,1024}.pth share this architecture; set image_size to the checkpoint's resolution.
    "ffhqh": PHNetConfig(
        enc_sizes=(3, 16, 64, 128, 256, 512, 1024), grid_counts=(4, 3, 2, 1), image_size=512, name="ffhqh"
    ),
    # A CPU-sized model with the identity-initialised output mapping, used for our own default weights.
    "small": PHNetConfig(
        enc_sizes=(3, 16, 32, 64, 128, 128, 256),
        grid_counts=(10, 5, 1),
        image_size=256,
        output="residual",
        name="small",
    ),
}
