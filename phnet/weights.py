"""Reading and writing PHNet weights: our safetensors folders, official .pth files, the Hub.

A model folder holds ``config.json`` + ``model.safetensors`` (the config is also stored in the
safetensors metadata, so a lone ``.safetensors`` file is self-describing). Official checkpoints are
plain state_dicts in ``.pth`` files; they are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import posixpath
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypedDict

import torch

from . import sources
from .atomic import dangling_link, missing_target, text_writer, write_atomic_all
from .config import PRESETS, REQUIRED_FIELDS, PHNetConfig, read_text
from .modeling import PHNet
from .precision import DTYPES
from .sources import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, looks_like_repo_id  # noqa: F401 (public names)
from .state_dicts import DamagedFile, read_metadata, read_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_DIR = sources.BUNDLED_DIR

OFFICIAL_TERMS = (
    f"The official PHNet weights (iharmony512.pth, ffhqh*.pth by Efremyan et al.) are released under "
    f"{sources.AUTHORS_TERMS}; the FFHQH-trained ones are {sources.FFHQ_TERMS}. Those terms travel with any "
    "converted copy."
)


# ----------------------------------------------------------------------------------------------------
# state_dict files


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], PHNetConfig | None]:
    """Tensors of a weights file (:func:`phnet.state_dicts.read_tensors`), plus the config stored in it
    (safetensors metadata) if any."""
    tensors, metadata = read_tensors(path, "PHNet weights")
    config = None
    if "phnet_config" in metadata:
        config = PHNetConfig.from_json(
            metadata["phnet_config"], source=f"the config in {path}'s metadata", required=REQUIRED_FIELDS
        )
    return tensors, config


def infer_config(state_dict: Mapping[str, torch.Tensor], image_size: int | None = None) -> PHNetConfig:
    """The architecture a PHNet state_dict was made for, read off its tensor shapes."""
    try:
        convolutions = [state_dict[f"encoder.{i}.0.weight"] for i in range(6)]
        grids: list[torch.Tensor] = []
        while f"normalizers.{len(grids)}.grid_weights" in state_dict:
            grids.append(state_dict[f"normalizers.{len(grids)}.grid_weights"])
    except KeyError as e:
        raise ValueError(f"this is not a PHNet state_dict (no {e.args[0]!r} tensor)") from None
    flat = next((f"encoder.{i}.0.weight" for i, t in enumerate(convolutions) if t.ndim != 4), None)
    flat = flat or next((f"normalizers.{i}.grid_weights" for i, t in enumerate(grids) if t.ndim == 0), None)
    if flat is not None:  # another network's tensor under the same name (a norm layer's 1-D weight, say)
        raise ValueError(f"this is not a PHNet state_dict ({flat!r} has shape {tuple(state_dict[flat].shape)}, not a "
                         "convolution's or a grid's)")
    widths = [convolutions[0].shape[1], *(t.shape[0] for t in convolutions)]
    counts = [t.shape[-1] for t in grids]
    if not counts:
        raise ValueError("this is not a PHNet state_dict (no normalizers.*.grid_weights tensors)")
    squeeze = state_dict.get("SE_block.fc.0.weight")  # (bottleneck width / se_reduction) x bottleneck width
    se_reduction = PHNetConfig.se_reduction
    if squeeze is not None and squeeze.ndim == 2 and squeeze.shape[0]:  # the width is floor(bottleneck / r)
        reduction = widths[6] // squeeze.shape[0]
        if reduction >= 1 and widths[6] // reduction == squeeze.shape[0]:
            se_reduction = reduction
    for name, preset in PRESETS.items():
        if (preset.enc_sizes, preset.grid_counts, preset.se_reduction) == (tuple(widths), tuple(counts), se_reduction) \
                and name != "small":
            return PHNetConfig.preset(name, **({"image_size": image_size} if image_size else {}))
    return PHNetConfig(enc_sizes=tuple(widths), grid_counts=tuple(counts), se_reduction=se_reduction,
                       image_size=image_size or 512)


OUTPUT_LAYER = "decoder.5.0."  # its channels are the output's: 3 (image, residual) or 12 (transform)


def load_state_dict_into(model: PHNet, state_dict: Mapping[str, torch.Tensor], source: Any = "",
                         config_file: Path | None = None) -> None:
    """Strict loading with one readable message for every kind of mismatch (``config_file``: the config.json
    the model's config came from, named as the place to fix)."""
    check_fits(model, state_dict, source, config_file)
    own = model.state_dict()
    # read in the model's dtype first: fp8 (float8_e4m3fn) has no isfinite kernel
    converted = {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(converted[k]).all()]
    if bad:
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise ValueError(
            f"the weights {source} hold NaN or infinite values in {bad[0]!r}{more}: they would give NaN pixels. "
            "The file is damaged or comes from a training run that diverged; use another checkpoint"
        )
    whole = [k for k, v in state_dict.items() if own[k].is_floating_point() and not v.is_floating_point()]
    if whole:
        raise ValueError(
            f"the weights {source} store {whole[0]!r} as {state_dict[whole[0]].dtype}, where PHNet keeps floats "
            f"({len(whole)} such tensors): they are not PHNet weights as trained (a quantized or wrongly written "
            "file?); use the original checkpoint"
        )
    model.load_state_dict(converted, strict=True)


def check_fits(model: PHNet, state_dict: Mapping[str, torch.Tensor], source: Any = "",
               config_file: Path | None = None) -> None:
    """Every tensor of ``state_dict`` is one of ``model``'s, of its shape, and none is missing: else one readable
    message. ``model`` may be on the meta device (a config checked before memory is taken for it)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong:
        fix = "Use the matching architecture (preset iharmony or ffhqh), or let it be read off the file" + (
            f": fix or delete {config_file}" if config_file is not None else "")
        try:
            inferred = infer_config(state_dict)
            found = f" The weights look like: {inferred.to_dict()}."
            mine: PHNetConfig | None = getattr(model, "config", None)
            if mine is not None and (inferred.enc_sizes, inferred.grid_counts) == (mine.enc_sizes, mine.grid_counts):
                if not wrong:  # a shape that differs is the config's (its output, say), not a foreign tensor
                    found = f" Their architecture is this config's (enc_sizes {list(mine.enc_sizes)}, grid_counts " \
                            f"{list(mine.grid_counts)})."
                    fix = ("So the file holds other tensors beside or instead of PHNet's: another model's, or those "
                           "of another version of the code. Load it with the code that wrote it, or save PHNet's "
                           "tensors alone")
                elif not missing and not unexpected and all(k.startswith(OUTPUT_LAYER) for k in wrong):
                    channels = state_dict[OUTPUT_LAYER + "bias"].shape[0]
                    trained = "'transform'" if channels == 12 else "'image' or 'residual'"
                    found = (f" Their architecture is this config's, but their output layer gives {channels} "
                             f"channels (output {trained}), not the {own[OUTPUT_LAYER + 'bias'].shape[0]} of output "
                             f"{mine.output!r}.")
                    fix = (f"Set its output to {trained} in {config_file}" if config_file is not None else
                           "Give the config they were trained with (a .pth stores none: keep them in a folder with "
                           "their config.json)")
        except ValueError as e:
            found = f" ({e})"
        detail = "; ".join(
            part
            for part in (
                f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                f"{len(wrong)} with other shapes (e.g. {wrong[0]}: {tuple(state_dict[wrong[0]].shape)} vs "
                f"{tuple(own[wrong[0]].shape)})"
                if wrong
                else "",
            )
            if part
        )
        raise ValueError(
            f"the weights {source} do not fit this PHNet config ({detail}).{found} {fix}"
        )


def model_from_file(path: str | Path, config: PHNetConfig | None = None, config_file: Path | None = None) -> PHNet:
    """Config: the one given, else the one stored in the file, else (an official-style .pth only) read off
    the tensor shapes with the official output mapping. ``config_file``: the config.json the given config was
    read from, beside the file (it may tune an official .pth, not remap it; messages name it)."""
    path = Path(path)
    tensors, stored = read_state_dict(path)
    if config is None:
        config = stored or _config_from_shapes(path, tensors)
    elif stored is not None:
        _check_agreement(config, stored, "the config given", path,
                         "Start from the stored one (Harmonizer.from_pretrained(...).config, changed with "
                         "dataclasses.replace), or pass working_size= to the call for another working size")
    elif config_file is not None and path.suffix.lower() in PICKLE_SUFFIXES and is_official_file_name(path.name):
        official = _config_from_shapes(path, tensors)
        _check_agreement(config, official, str(config_file), path,
                         f"An official checkpoint is read with the official mapping: fix or delete {config_file}",
                         config_file.name, held="read off the official file")
        if carries_official_terms(official) and not carries_official_terms(config):  # tuned, still the authors'
            config = dataclasses.replace(config, name=official.name)  # weights: their name carries their terms
    with torch.device("meta"):  # shapes first: a config.json of absurd widths built gigabytes before the check
        check_fits(PHNet(config), tensors, source=str(path), config_file=config_file)
    with torch.random.fork_rng(devices=[]):  # its random start, overwritten: the caller's random numbers untouched
        model = PHNet(config).float()  # float32 whatever torch's default dtype (a float64 one made a mixed model)
    load_state_dict_into(model, tensors, source=str(path), config_file=config_file)
    return model.eval()


def _config_from_shapes(path: Path, tensors: Mapping[str, torch.Tensor]) -> PHNetConfig:
    """A .pth is the official format: a plain state_dict whose sigmoid output is the picture
    (``output="image"``), trained at the size its name carries. A .safetensors file is ours and always
    stores its config; one without it has lost what the shapes cannot show (``output``, ``image_size``),
    so it is refused rather than guessed."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        config = _inferred(path, tensors, image_size=_size_from_name(path.name))
        if is_official_file_name(path.name):
            return _as_official(config, path.name)
        warnings.warn(
            f"{path.name} is not an official checkpoint's file name, but a .pth stores no config: it is read as "
            f"one (output 'image', working size {config.image_size}). Weights trained otherwise (our "
            "'residual' output, another size) come out wrong this way: keep them as a folder with their "
            "config.json (phnet.weights.save_pretrained, or Harmonizer.save_pretrained)", stacklevel=3)
        return config
    _inferred(path, tensors)  # a non-PHNet file gets that message first
    raise ValueError(
        f"{path} stores no PHNet config (no 'phnet_config' metadata) and none was given, so its output mapping "
        "('image' or 'residual') and working size are unknown: put its config.json beside it"
    )


def _inferred(path: Path, tensors: Mapping[str, torch.Tensor], image_size: int | None = None) -> PHNetConfig:
    """:func:`infer_config`, whose refusal of another network's file names the file, and a Segment Anything
    checkpoint (the other model file a user of both keeps at hand) as such."""
    try:
        return infer_config(tensors, image_size=image_size)
    except ValueError as e:
        sam = all(any(k.startswith(part) for k in tensors) for part in ("image_encoder.", "mask_decoder."))
        said, what = str(e), "it holds a Segment Anything (SAM) model's weights" if sam else ""
        if what:  # inside the refusal's closing bracket where it ends with one
            said = f"{said[:-1]}; {what})" if said.endswith(")") else f"{said}; {what}"
        raise ValueError(f"{path}: {said}: give a file of PHNet weights") from None


def _size_from_name(name: str) -> int | None:
    """Official files carry their resolution in the name: iharmony512.pth, ffhqh1024.pth."""
    counted = re.sub(r"(?i)(?<![a-z0-9])(?:epoch|step|iter|ep)[-_]?\d+", "", name)  # epoch-256.pth: a count
    m = re.search(r"(?<!\d)(256|512|1024|2048)(?!\d)", counted)  # not the digits of a date or a step count
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------------------------------
# folders and the Hub


def _save_file(tensors: dict, metadata: dict, path: Path, target: Path) -> None:
    """safetensors' ``save_file`` into ``path`` (the temporary file of ``target``), whose I/O errors (a full disk)
    are no OSError: they become the one that writing ``target`` with open() would have raised."""
    import safetensors
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except getattr(safetensors, "SafetensorError", OSError) as e:
        # "... (os error 28)" from safetensors 0.5 on, "IoError(Os { code: 28, ... })" before
        code = re.search(r"os error (\d+)|code: (\d+)", str(e))
        number = int(code.group(1) or code.group(2)) if code else errno.EIO
        raise OSError(number, os.strerror(number), str(target)) from None


def save_pretrained(model: PHNet, directory: str | Path, *, dtype: torch.dtype | str | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors``; files appear whole or not at all. ``dtype``: the floating
    dtype to store the weights in ("fp32", "fp16", "bf16" or a torch.dtype), default as they are."""
    return _save_folder(model, directory, dtype, carries_official_terms(model.config))


def _save_folder(model: PHNet, directory: str | Path, dtype: torch.dtype | str | None, official_terms: bool) -> Path:
    """:func:`save_pretrained`, with the official weights' terms (LICENSE-WEIGHTS.txt) beside them or not: every
    file is written before any is renamed into place, so a refused one leaves the folder as it was."""
    dtype = DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be one of {', '.join(map(repr, DTYPES))} or a floating torch.dtype (e.g. "
                         f"torch.bfloat16), got {dtype!r}: weights are stored as floats")
    directory = Path(directory)
    if directory.is_file() or (not directory.exists() and sources.is_weights_file(directory.name)):
        raise ValueError(f"save_pretrained writes a folder (config.json + model.safetensors), and {directory} is a "
                         f"{'file' if directory.is_file() else 'weights file name'}: give a folder")
    config_json = model.config.to_json()
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            cast = v.to(dtype)
            # past its range fp16 gives inf; fp8 saturates at its largest value or gives NaN, by torch's version
            if v.numel() and torch.isfinite(v).all() and v.abs().max() > torch.finfo(dtype).max:
                raise ValueError(f"{k!r} holds values beyond what {dtype} can store (largest magnitude "
                                 f"{v.abs().max().item():.4g}): save in torch.bfloat16 or float32 instead")
            v = cast
        tensors[k] = v.contiguous()
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "phnet_config": config_json}
    target = directory / WEIGHTS_NAME
    licence = directory / "LICENSE-WEIGHTS.txt"
    write_atomic_all([(target, lambda p: _save_file(tensors, metadata, p, target)),
                      (directory / CONFIG_NAME, text_writer(config_json)),
                      *([(licence, text_writer(OFFICIAL_TERMS + "\n"))] if official_terms else [])])
    if not official_terms:
        _remove_official_terms(licence)  # official weights saved here before: their terms are not these weights'
    return directory


def _remove_official_terms(licence: Path) -> None:
    """Remove ``licence`` where it holds the official weights' terms as this library writes them (here, or beside
    a copy fetched by name, whose download site may have moved since): terms a user wrote are theirs to keep."""
    from .official import OFFICIAL, licence_text

    try:
        text = licence.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    ours = [OFFICIAL_TERMS + "\n", *(licence_text(w).partition("\nSource: ")[0] for w in OFFICIAL.values())]
    if text.partition("\nSource: ")[0] in ours:
        licence.unlink(missing_ok=True)


def model_from_folder(directory: str | Path, config: PHNetConfig | None = None) -> PHNet:
    """The model in a folder: its config.json + model.safetensors, or the one weights file it holds; ``config``
    where given instead of the folder's config.json."""
    directory = Path(directory)
    weights = directory / WEIGHTS_NAME
    if weights.is_symlink() and not weights.exists():
        raise FileNotFoundError(f"{missing_target(weights)}: connect it, or give other weights")
    if not weights.is_file():
        candidates = sorted(p for p in directory.iterdir()
                            if p.is_file() and sources.is_weights_file(p.name) and not p.name.startswith("."))
        if len(candidates) != 1:
            listing = ", ".join(p.name for p in candidates) or "nothing"
            raise FileNotFoundError(
                f"{directory} holds no {WEIGHTS_NAME} (found {listing}); point at one weights file, or at a folder "
                "holding config.json + model.safetensors"
            )
        weights = candidates[0]
    if config is None and (directory / CONFIG_NAME).is_file():  # a folder is one model: its config.json rules
        return model_from_file(weights, _folder_config(directory / CONFIG_NAME, weights), directory / CONFIG_NAME)
    return model_from_file(weights, config)


def _folder_config(config_json: Path, weights: Path) -> PHNetConfig:
    """config.json rules; a field it lacks comes from the config stored in the weights file (read off an official
    .pth), or is an error naming the file and the field (a default could silently change the architecture or the
    output mapping)."""
    try:
        d = json.loads(read_text(config_json))
    except (ValueError, RecursionError) as e:  # also a number of thousands of digits, or arrays nested deep
        raise ValueError(f"{config_json} is not JSON this loader can read ({e})") from None
    stored = _stored_config(weights) if isinstance(d, dict) else None
    base = stored
    if isinstance(d, dict) and weights.suffix.lower() in PICKLE_SUFFIXES and is_official_file_name(weights.name):
        base = _config_from_shapes(weights, read_state_dict(weights)[0])  # (model_from_file checks config.json)
    config = PHNetConfig.from_dict({**base.to_dict(), **d} if base else d, source=str(config_json),
                                   required=REQUIRED_FIELDS)
    if stored is not None:
        _check_agreement(config, stored, str(config_json), weights,
                         f"Fix or delete {config_json.name} (the stored config is used then)", config_json.name)
    return config


# What the tensors were trained as: config.json may tune the rest (working size, threshold), never these.
_TRAINED_AS = ("enc_sizes", "grid_counts", "pfe_grid", "se_reduction", "output")


def _trained_as(config: PHNetConfig, key: str):
    return config.feature_grid if key == "pfe_grid" else getattr(config, key)  # unset, pfe_grid has a value too


def _check_agreement(config: PHNetConfig, stored: PHNetConfig, given: str, weights: Path, fix: str,
                     short: str | None = None, held: str = "stored in") -> None:
    clashes = [f"{key}: {_trained_as(config, key)!r} in {short or given}, {_trained_as(stored, key)!r} {held} "
               f"{weights.name}" for key in _TRAINED_AS if _trained_as(config, key) != _trained_as(stored, key)]
    if clashes:
        raise ValueError(
            f"{given} contradicts the config {held} {weights} ({'; '.join(clashes)}): the weights would "
            f"load as something they are not. {fix}"
        )


def _model_from_local_file(path: Path, config: PHNetConfig | None) -> PHNet:
    """Weights in one local file, ruled by the ``config.json`` beside them where they take one (see
    :func:`_takes_folder_config`), else by ``config`` or their own."""
    beside = path.parent / CONFIG_NAME
    if config is None and path.is_file() and _takes_folder_config(path) and beside.is_file():
        return model_from_file(path, _folder_config(beside, path), beside)
    return model_from_file(path, config)


def _takes_folder_config(path: Path) -> bool:
    """Whether a config.json beside weights ``path`` rules them: a model folder's weights, a .pth (which stores
    no config) unless it has an official file's name (the official mapping reads it, whatever else shares its
    folder), or a .safetensors that stores none."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return official_by_file_name(path.name) is None
    return path.name == WEIGHTS_NAME or _stored_config(path) is None


def _stored_config(weights: Path) -> PHNetConfig | None:
    if weights.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return None
    # a damaged file is named now: else a partial config.json beside it was blamed for the fields it lacks
    text = read_metadata(weights, "PHNet weights").get("phnet_config")
    if text is None:
        return None
    return PHNetConfig.from_json(text, source=f"the config in {weights}'s metadata", required=REQUIRED_FIELDS)


class _HubPlace(TypedDict):
    """Where and how a Hub repo's files are looked for: ``sources.download``'s options."""

    revision: str | None
    cache_dir: str | os.PathLike[str] | None
    local_files_only: bool
    token: str | bool | None


def download_from_hub(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """Local folder holding the repo's config.json + model.safetensors (from the HF cache when offline); a
    repo without model.safetensors is an official-style one, and its .pth files are fetched instead (not
    beside it: a repo may also keep a training state of gigabytes)."""
    where = _HubPlace(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    folder = sources.download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME], **where)
    if not (folder / WEIGHTS_NAME).is_file():
        # only a .pth at the repo's top: "*.pth" also matched a model zoo's or a training run's sub-folders
        files = sources.list_files(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                   token=token)
        top = sorted(f for f in files if "/" not in f and f.lower().endswith(tuple(PICKLE_SUFFIXES)))
        if len(top) > 1:
            raise FileNotFoundError(
                f"the Hub repo {repo_id!r} has no {WEIGHTS_NAME} and several checkpoints ({', '.join(top)}): name "
                f"one, e.g. '{repo_id}:{top[0]}'")
        folder = sources.download(repo_id, allow_patterns=[CONFIG_NAME, *top], **where) if top else folder
    if not folder.is_dir() or not any(sources.is_weights_file(p.name) for p in folder.iterdir() if p.is_file()):
        raise FileNotFoundError(
            f"the Hub repo {repo_id!r} (revision {revision or 'main'}) gave no weights file ({folder} holds no "
            f"{WEIGHTS_NAME} or .pth): a download cut short, or weights under another name. Download it again "
            f"(`{sources.hub_command('download ' + repo_id)}`), or name the file: '{repo_id}:FILE.safetensors'"
        )
    return folder


def load_model(
    source: str | os.PathLike[str] | None = None,
    *,
    config: PHNetConfig | None = None,
    revision: str | None = None,
    cache_dir: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PHNet:
    """A PHNet in eval mode from a weights file, a model folder, an official checkpoint's name
    (``official-ffhqh512``: downloaded on first use, see :mod:`phnet.official`), a Hub repo id
    (``owner/name[@revision]``), or (None / ``"default (bundled)"``) the bundled default. See
    :func:`phnet.sources.resolve`. ``cache_dir``: the HF cache for Hub repos (or a list of them, each looked in
    in turn, a download going to the first); for official names the folder (or list of folders, the first one
    written) where they are kept. ``progress(done, total)`` follows an official download in bytes."""
    if config is not None and not isinstance(config, PHNetConfig):
        raise ValueError(f"config must be a phnet.PHNetConfig, got {type(config).__name__}: change the weights' own "
                         "with dataclasses.replace(load_model(...).config, correction_threshold=0), or give a "
                         "config.json beside the weights")
    found = sources.resolve(source, revision=revision)
    if found.kind == "official":
        folder = fetch_official(found.official_name, cache_dir, local_files_only=local_files_only, progress=progress)
        try:
            return model_from_folder(folder, config)
        except DamagedFile as e:  # the name finds this copy again: downloading needs it gone
            raise DamagedFile(f"{e.path} is not a readable safetensors file: the converted copy of {found.name} is "
                              f"damaged. Delete that file and load {found.name} again (it is converted anew, from "
                              "the .pth beside it or a new download; a config.json there is kept)", e.path) from None
    if found.kind == "default":
        if not (DEFAULT_DIR / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(
                "no bundled default PHNet weights in this installation "
                f"({DEFAULT_DIR / WEIGHTS_NAME} is missing). Pass weights explicitly: a folder or .safetensors "
                "file saved by save_pretrained, an official .pth (e.g. iharmony512.pth from the PHNet authors), "
                "or a Hub repo id"
            )
        return model_from_folder(DEFAULT_DIR, config)
    if found.kind == "file":
        return _model_from_local_file(found.local_path, config)
    if found.kind == "folder":
        return model_from_folder(found.local_path, config)
    caches = _hub_caches(cache_dir)
    if len(caches) > 1:  # a list of folders: each one's Hub cache is looked in, in turn, before any download
        for cache in caches:
            try:
                return _model_from_hub(found, config, revision=found.revision, cache_dir=cache, local_files_only=True,
                                       token=token)
            except FileNotFoundError:
                continue
    try:
        return _model_from_hub(found, config, revision=found.revision, cache_dir=caches[0],
                               local_files_only=local_files_only, token=token)
    except sources.NotInCache as e:
        raise e.looked_in(caches) from None


def _hub_caches(cache_dir: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None
                ) -> list[str | os.PathLike[str] | None]:
    """The Hugging Face caches a Hub repo is looked for in: ``cache_dir`` itself, or each folder of a list of them
    (empty entries left out, as for official names; none left: the default cache), a download going to the first."""
    if cache_dir is None or isinstance(cache_dir, (str, os.PathLike)):
        return [cache_dir]
    return [folder for folder in cache_dir if folder] or [None]


def _model_from_hub(found: sources.Source, config: PHNetConfig | None, *, revision: str | None,
                    cache_dir: str | os.PathLike[str] | None, local_files_only: bool, token: str | bool | None
                    ) -> PHNet:
    """The model of a Hub repo, or of one file in it, from the Hugging Face cache ``cache_dir``."""
    if found.filename is not None:
        where = _HubPlace(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        path = sources.download(found.hub_repo, filename=found.filename, **where)
        if config is None and _takes_folder_config(path):  # the config.json beside it in the repo, as for a folder
            try:
                beside = sources.download(found.hub_repo, filename=posixpath.join(
                    posixpath.dirname(found.filename.replace("\\", "/")), CONFIG_NAME), what="its config", **where)
            except FileNotFoundError:  # none there (or, offline, not in the cache): the file's own rules
                beside = None
            if beside is not None:
                return model_from_file(path, _folder_config(beside, path), beside)
        return model_from_file(path, config)
    folder = download_from_hub(
        found.hub_repo, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    return model_from_folder(folder, config)


def carries_official_terms(config: PHNetConfig) -> bool:
    """Weights named as the official ones, or as trained on from them: their authors' terms go with them."""
    return config.name.startswith(("official-", "finetuned-official-"))


def model_card(config: PHNetConfig, base_model: str | None = None) -> str:
    """The README.md of a Hub repo holding weights of ``config``: metadata, the config, and the official terms where
    the weights come from an official checkpoint (``base_model``: the official file they were converted from)."""
    lines = [
        "---",
        "library_name: phnet",
        "tags: [image-harmonization, portrait, phnet, comfyui]",
        "---",
        f"# PHNet ({config.name})",
        "",
        "Weights for [comfyui-phnet](https://github.com/comfyui-phnet/comfyui-phnet): "
        "`phnet.Harmonizer.from_pretrained(\"<this repo>\")`.",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
    ]
    if base_model:
        lines += ["", f"Converted from the official checkpoint `{base_model}`.", "", OFFICIAL_TERMS]
    elif config.name.startswith("official-"):  # fetched by name, or converted from an official file
        lines += ["", f"The official checkpoint `{config.name}`, converted to safetensors.", "", OFFICIAL_TERMS]
    elif config.name.startswith("finetuned-official-"):  # trainer.fit's name for weights trained on from them
        lines += ["", f"Fine-tuned from the official checkpoint `{config.name.removeprefix('finetuned-')}`.", "",
                  OFFICIAL_TERMS]
    return "\n".join(lines) + "\n"


def push_to_hub(
    model: PHNet,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str = "Upload PHNet weights",
    base_model: str | None = None,
) -> str:
    """Upload config.json + model.safetensors (+ a model card) to a Hub model repo; returns its URL.

    ``private``: True creates the repo private, and refuses to upload into one that exists and is public
    (the Hub leaves an existing repo's visibility as it is); None, the account's or organisation's default."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    if private is None:  # left out: huggingface_hub before 0.27 reads None as False (public)
        url = api.create_repo(repo_id, exist_ok=True, repo_type="model")
    else:
        url = api.create_repo(repo_id, exist_ok=True, repo_type="model", private=bool(private))
    if private and not api.repo_info(repo_id, repo_type="model").private:
        raise PermissionError(f"the Hub repo {repo_id} exists and is public: nothing was uploaded. Make it private "
                              "on the Hub first, or give another repo name")
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        (Path(tmp) / "README.md").write_text(model_card(model.config, base_model), encoding="utf-8")
        api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(url)


def check_upload(repo_id: str, token: str | bool | None = None,
                 later: str = "upload later with python -m trainer.push FOLDER REPO") -> None:
    """Refuse an upload that cannot happen before any work is done for it (a training run, a conversion): a
    name the Hub does not take, offline mode, no token. A ``ValueError`` naming the fix (``later``: the way to
    upload once online)."""
    from huggingface_hub.utils import HFValidationError, get_token, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"{repo_id!r} is not a Hub repo id ({str(e).splitlines()[0].rstrip('.')}); give "
                         "owner/name, e.g. you/phnet-portraits") from None
    if sources.hub_offline():
        raise ValueError(f"nothing can be uploaded to {repo_id} offline (HF_HUB_OFFLINE="
                         f"{os.environ.get('HF_HUB_OFFLINE')}): unset it, or {later}")
    if token in (None, True) and not get_token():
        login = sources.hub_command("auth login")
        raise ValueError(f"no Hugging Face token to upload to {repo_id} with: log in with `{login}` or set "
                         "HF_TOKEN, then run again")


def upload_failed(repo_id: str, exc: BaseException) -> str:
    """One line for an upload that failed (no network, no login, no such account): the Hub's own words."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"the upload to {repo_id} failed ({type(exc).__name__}: {first})"


def convert_official(
    checkpoint: str | Path, out_dir: str | Path, *, config: PHNetConfig | str | None = None,
    overwrite: bool = False,
) -> PHNet:
    """Official .pth state_dict → our folder (config.json + model.safetensors), loaded strictly on the way.

    A folder that already holds files is replaced only with ``overwrite``. The official weights' terms
    (LICENSE-WEIGHTS.txt) go with a checkpoint under an official file name, or one whose config names it official
    weights (a converted copy): other weights keep whatever terms their owner gave them."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file: give a folder for the converted weights")
    link = dangling_link(out_dir)
    if link is not None:
        raise FileNotFoundError(f"{missing_target(link)}: connect it, or give another folder for the converted weights")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds files: give a new folder, or replace them with "
                              "overwrite=True (phnet convert --overwrite)")
    if isinstance(config, str):  # a preset by name; a config given whole is kept as it is, name and size
        stored = _stored_config(checkpoint) if checkpoint.is_file() else None
        if stored is not None:  # a preset names the architecture: the file's own config (size, name, ...) is kept
            _check_agreement(dataclasses.replace(PHNetConfig.preset(config), output=stored.output), stored,
                             f"the preset {config!r}", checkpoint, "Leave the preset out: the file stores its config")
            config = stored
        else:
            config = PHNetConfig.preset(config)
            size = _size_from_name(checkpoint.name)
            config = _as_official(dataclasses.replace(config, image_size=size) if size else config, checkpoint.name)
    model = _model_from_local_file(checkpoint, config)  # as load_model reads it (an official one named so there)
    _save_folder(model, out_dir, None, is_official_file_name(checkpoint.name) or carries_official_terms(model.config))
    return model


def is_official_file_name(name: str) -> bool:
    """``name`` is one the authors' files are downloaded or renamed to (best_ffhqh512.pth, ffhqh512.pth)."""
    return official_by_file_name(name) is not None


def official_by_file_name(name: str) -> sources.OfficialWeights | None:
    """The official weights whose file (or the name their authors' README gives it) is ``name``; None for others."""
    return next((w for w in sources.OFFICIAL.values() if name in (w.filename, w.readme_name)), None)


def _as_official(config: PHNetConfig, file_name: str) -> PHNetConfig:
    """An official checkpoint's config under its official name (official-ffhqh512), whatever file it came in:
    the name carries its authors' terms into a model card, and a fine-tune's name into its card too."""
    official = official_by_file_name(file_name)
    if official is None or config.name != official.preset:  # another architecture under an official file name
        return config
    return dataclasses.replace(config, name=official.name, image_size=official.image_size)


def fetch_official(name: str, folders: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None = None,
                   **options: Any) -> Path:
    """The model folder of an official checkpoint by name (``official-ffhqh512``), downloaded and converted
    on first use: :func:`phnet.official.fetch` with this module's strict conversion. ``folders``: where
    it is kept (default: :func:`phnet.official.default_folder`); ``options``: ``local_files_only``,
    ``progress``, ``say``."""
    from . import official

    return official.fetch(name, folders, convert=lambda pth, folder, config: convert_official(
                              pth, folder, config=config, overwrite=True),  # a killed conversion's staging
                          **options)
