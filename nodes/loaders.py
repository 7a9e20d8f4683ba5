"""Model loaders: PHNet (-> PHNET_MODEL, a ``phnet.Harmonizer``) and Segment Anything (-> PHNET_SAM)."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import secrets
import shutil
import time
import weakref
from dataclasses import dataclass
from typing import Any

import comfy.model_management as mm

from . import paths

log = logging.getLogger("comfyui-phnet")

DEVICES = ["auto", "cpu"]
SAM_TYPES = ["auto", "vit_b", "vit_l", "vit_h"]
SAM_TYPE = "PHNET_SAM"  # not Impact Pack's SAM_MODEL: a different object their detectors cannot use
SAM_VIT_B_URL = "https://huggingface.co/facebook/sam-vit-base/resolve/main/model.safetensors"  # the templates' SAM


def _offline() -> bool:
    from ..phnet.sources import hub_offline

    return hub_offline()


def unquoted(text: str) -> str:
    """A path as Explorer's "Copy as path" quotes it, unquoted (see ``phnet.sources.unquoted``)."""
    from ..phnet.sources import unquoted

    return unquoted(text)


def _device(choice: str):
    import torch

    return torch.device("cpu") if choice == "cpu" else mm.get_torch_device()


# Models still held by ComfyUI's cache, by what was loaded and the state of its files: two loaders of the same
# weights share one model. A loader whose input comes over a link runs each time (IS_CHANGED cannot see a linked
# value) and reads its weights again, as ComfyUI lets go of its output first; nothing here holds a model longer
# than ComfyUI does (a model held for good outlives its node and ComfyUI's "Free model and node cache").
_LOADED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _reused(key: tuple, path: str | None, load):
    """``load()``'s model for ``key``, the one still alive when the files at ``path`` (local weights) have not
    changed since."""
    from ..phnet.sources import stamp

    local = path is not None and os.path.exists(os.path.expanduser(path))
    key = (*key, stamp(path) if local else None)
    model = _LOADED.get(key)
    if model is None:
        model = load()
        _LOADED[key] = model
    return model


# --------------------------------------------------------------------------------------------------
# PHNet
# --------------------------------------------------------------------------------------------------
def _download_progress():
    """A ComfyUI progress bar for an official download, made when the size is known (Cancel stops it)."""
    import comfy.utils

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy.utils.ProgressBar(max(total, 1))
        bar.update_absolute(done, max(total, 1))

    return update


_FETCHED: dict[str, str] = {}  # official copies this process downloaded: their stamps as written


def _official_copy(name: str | None) -> str | None:
    """The converted copy of the official weights ``name`` in models/phnet, if that is what it names."""
    if name not in paths.official_names():
        return None
    from ..phnet import official

    found = official.find(name, paths.phnet_folders())
    return None if found is None else str(found)


def resolve_phnet_source(model_name: str, hub_repo_id: str = "") -> tuple[str | None, dict]:
    """(source, extra from_pretrained arguments): None = the bundled default, else a path, an official name
    (downloaded into models/phnet on first use) or a repo id."""
    from ..phnet.sources import Source, resolve

    model_name = paths.listed_name(model_name)
    typed = unquoted(hub_repo_id or "")
    if typed in paths.official_names():  # typed rather than picked: kept in models/phnet all the same
        model_name, typed = typed, ""
    if typed:  # a path or a Hub repo id "owner/name[@revision][:file]"; else the library says what it is not
        found = resolve(typed)
    elif model_name in paths.official_names():
        found = Source("official", name=model_name)
    elif not model_name or model_name == paths.BUNDLED_DEFAULT:
        found = resolve(None)
    else:  # a file; a config.json next to it (a folder written by save_pretrained) is picked up by the core
        found = resolve(paths.full_path(paths.PHNET_FOLDER, model_name))
    source, extra = found.arguments()
    if found.kind in ("official", "hub"):
        extra["local_files_only"] = _offline()
    if found.kind == "official":
        extra.update(cache_dir=paths.phnet_folders(), progress=_download_progress())
    return source, extra


class PHNetModelLoader:
    DESCRIPTION = (
        "Loads PHNet harmonization weights: the default model bundled with this node pack (offline, tuned to do "
        "no harm: a fifth of a small correction and a large one whole; PHNet Harmonize says how much changed), "
        "the official weights (official-ffhqh512 for portraits; downloaded into ComfyUI/models/phnet when first "
        "picked; the authors' CC BY-SA 4.0-variant licence, the ffhqh ones also FFHQ's non-commercial terms), a "
        "file from ComfyUI/models/phnet (a .safetensors/.pth file or a saved folder with config.json + "
        "model.safetensors), or a Hugging Face Hub repo id."
    )
    CATEGORY = "PHNet/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("PHNET_MODEL",)
    RETURN_NAMES = ("phnet_model",)
    OUTPUT_TOOLTIPS = ("The loaded PHNet model; connect it to 'PHNet Harmonize' or 'PHNet Harmonize Frames'.",)

    @classmethod
    def INPUT_TYPES(cls):
        from ..phnet.precision import CHOICES as PRECISIONS

        return {
            "required": {
                "model_name": (paths.phnet_choices(), {
                    "default": paths.BUNDLED_DEFAULT,
                    "tooltip": "Weights to load. 'default (bundled)' ships with the node pack: offline, tuned to do "
                               "no harm: a fifth of a small correction is applied, a large one whole, so every "
                               "subject changes a little. The official-* entries are the "
                               "PHNet authors' weights, downloaded once into ComfyUI/models/phnet when picked: "
                               "official-ffhqh256/512/1024 for portraits (trained on FFHQH), official-iharmony512 "
                               "for any subject (iHarmony4). Their licence: the authors' CC BY-SA 4.0 variant; the "
                               "ffhqh ones are also bound by FFHQ's non-commercial terms. Other entries are files "
                               "found in ComfyUI/models/phnet (and extra_model_paths.yaml 'phnet' paths). Ignored "
                               "when hub_repo_id is set.",
                }),
                "hub_repo_id": ("STRING", {
                    "default": "",
                    "multiline": False,
                    "tooltip": "Optional Hugging Face Hub repo id ('owner/name', or 'owner/name@revision') or a "
                               "local folder/file path. When set it is used instead of model_name. Set "
                               "HF_HUB_OFFLINE=1 to use only the local Hub cache.",
                }),
                "device": (DEVICES, {
                    "default": "auto",
                    "tooltip": "'auto' runs on ComfyUI's compute device (GPU when available); 'cpu' always runs "
                               "on the CPU.",
                }),
                "dtype": (list(PRECISIONS), {
                    "default": "auto",
                    "tooltip": "Compute precision. 'auto' picks at run time: bf16 on CPUs with AMX bf16 units (about "
                               "2x faster, within 1/255 of fp32), fp32 on GPUs (bf16 measured no faster there) and "
                               "elsewhere. fp32 is exact on the CPU; on a GPU it follows torch's cuDNN TF32 setting. "
                               "Low precision runs the convolutions under autocast; normalisation statistics stay "
                               "fp32. fp16 is slower than fp32 on the CPU; bf16 needs AMX on the CPU, or a GPU of "
                               "compute capability 8 or later (RTX 30xx, A100 and newer): elsewhere it is slower "
                               "than fp32. A precision slower than fp32 runs all the same, and the console says so.",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name, hub_repo_id=""):
        # ComfyUI repeats a refusal for every input named here; hub_repo_id must be, since it makes model_name
        # unused (a shared workflow keeps its sender's file name)
        linked = model_name is None or hub_repo_id is None  # known when it runs
        if linked or (hub_repo_id or "").strip() or paths.listed_name(model_name) in paths.phnet_choices():
            return True
        return (
            f"PHNet model {model_name!r} is not in ComfyUI/models/phnet (or the extra 'phnet' paths); "
            "download it there, pick another model, or give hub_repo_id (a Hub repo or a path)"
        )

    @classmethod
    def IS_CHANGED(cls, model_name, hub_repo_id="", device="auto", dtype="auto"):
        # Reload when the weights file changes on disk.
        model_name = paths.listed_name(model_name)
        repo = unquoted(hub_repo_id or "")
        if repo and os.path.exists(os.path.expanduser(repo)):  # a local file or folder given as hub_repo_id
            from ..phnet.sources import stamp

            return stamp(repo)
        if model_name is None or hub_repo_id is None:  # linked: its value, and the file it names, are unknown
            return float("nan")  # here, so it runs each time (see _reused)
        copy = _official_copy(repo or model_name)
        if copy is not None:  # its converted copy, whose config.json may be tuned
            from ..phnet.sources import stamp

            now = stamp(copy)
            if _FETCHED.get(copy) != now:  # (as fetched by this process, the name stands for it: no rerun)
                return now
        named = model_name == paths.BUNDLED_DEFAULT or model_name in paths.official_names()
        if repo or named:
            return f"{model_name}|{hub_repo_id}"
        return paths.mtime(paths.PHNET_FOLDER, model_name)

    def load(self, model_name, hub_repo_id="", device="auto", dtype="auto"):
        from ..phnet.harmonizer import Harmonizer

        target = _device(device)
        source, extra = resolve_phnet_source(model_name, hub_repo_id)

        def load():
            try:
                h = Harmonizer.from_pretrained(source, device=target, dtype=None if dtype == "auto" else dtype,
                                               **extra)
            except PermissionError as e:  # models/phnet cannot be written: the library names the folder
                if source not in paths.official_names():
                    raise
                from ..phnet.errors import clause
                from ..phnet.official import OFFICIAL

                raise PermissionError(
                    f"{clause(e)}. In ComfyUI: list a writable folder under 'phnet:' in extra_model_paths.yaml "
                    f"(downloads go into the first writable one), or put {OFFICIAL[source].filename} (from "
                    f"{OFFICIAL[source].url}) into a phnet folder by hand and pick that file") from None
            log.info("comfyui-phnet: loaded PHNet %s (%s) on %s", source or paths.BUNDLED_DEFAULT, h.config.name,
                     target)
            return h

        key = ("phnet", source, extra.get("revision"), str(target), dtype)
        before = _official_copy(source)
        model = _reused(key, before or source, load)
        after = _official_copy(source)
        if before is None and after is not None:  # downloaded and converted just now: known by its copy from here
            from ..phnet.sources import stamp

            _FETCHED[after] = stamp(after)
            _LOADED[key + (_FETCHED[after],)] = model
        return (model,)


# --------------------------------------------------------------------------------------------------
# Segment Anything
# --------------------------------------------------------------------------------------------------
@dataclass
class PHNetSAM:
    """What travels on a PHNET_SAM socket: a ``phnet.sam.SamSegmenter`` and where it runs.

    SAM is large (375 MB to 2.5 GB), so it waits on ``offload_device`` between runs and works on
    ``load_device``; ``on_device()`` does the round trip.
    """

    segmenter: Any
    load_device: Any
    offload_device: Any

    @contextlib.contextmanager
    def on_device(self):
        try:
            if self.segmenter.device != self.load_device:
                make_room(sam_memory(self.segmenter.model), self.load_device)
                self.segmenter.to(self.load_device)
            yield self.segmenter
        finally:  # a move cut short by a full GPU is undone too
            if self.offload_device != self.load_device:
                self.segmenter.to(self.offload_device)
                mm.soft_empty_cache()

    def __repr__(self) -> str:  # shown in ComfyUI error messages
        return f"PHNetSAM({self.segmenter.model_type}, runs on {self.load_device})"


def make_room(needed: int, device) -> None:
    """Ask ComfyUI for ``needed`` bytes on ``device`` (and the reserve a user set with --reserve-vram): it moves
    its own models out to make them (a diffusion model may fill the GPU); ours it does not know of."""
    if device.type == "cpu":
        return
    reserve = getattr(mm, "extra_reserved_memory", lambda: 0)()
    mm.free_memory(needed + reserve, device)


# peak bytes the network holds per working-size pixel of each picture in a call (fp32, measured by tracking live
# tensors): 673 for the official ffhqh architecture, 329 for our small one
NETWORK_BYTES_PER_PIXEL = 700


def phnet_memory(harmonizer, image, working_size: int | None) -> int:
    """Bytes a Harmonize call on the B×H×W×C ``image`` needs on the model's device besides the weights: the
    network's activations for one call's pictures (as many as the batch has, up to the call's share), and
    where they are copied there for their full-resolution work, each picture with its float mask, and room
    for the tiles."""
    from ..phnet.fullres import working_shape
    from ..phnet.pipeline import full_resolution_device, pictures_per_call

    size = working_size or harmonizer.config.image_size
    height, width = working_shape(image.shape[1], image.shape[2], size)
    pictures = min(int(image.shape[0]), pictures_per_call(harmonizer, image, size))
    network = pictures * height * width * NETWORK_BYTES_PER_PIXEL
    if full_resolution_device(harmonizer, image[0]) == image.device:
        return network
    picture, mask = image[0].nbytes, image.shape[1] * image.shape[2] * 4
    return network + pictures * (picture + mask) + picture


def sam_memory(model) -> int:
    """Bytes SAM needs on its device while it segments: its weights, and as much again for the image
    encoder's activations at 1024² (a rule of thumb, generous for ViT-B, near the mark for ViT-H in fp32)."""
    return 2 * sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


# Meta's checkpoint names carry a hash of the weights: under such a name a file is the same wherever it was kept
CONTENT_NAME = re.compile(r"sam_vit_[blh]_[0-9a-f]{6}\.(?:pth|pt|safetensors)", re.IGNORECASE)


def _download_sam(repo_id: str, filename: str, revision: str | None = None) -> str:
    """``filename`` of a Hub repo as ComfyUI/models/sams/<owner>--<repo>--<its path, / as -->, so it also shows
    in the list. The repo and the path are part of the name because files share names: Meta's sam-vit-base,
    -large and -huge all hold a model.safetensors, a repo may hold vit_b/ and vit_h/ ones, and a file found
    under the name is used as it is.

    It goes through the HF cache (only the cache when downloading is off) and is then linked (or copied) into
    the folder whole, so no half file and none of the Hub client's bookkeeping folders are left in models/sams.
    Where the folder cannot take it (it cannot be made or written, a full disk), the cache's file is used."""
    folder = paths.download_dir(paths.SAM_FOLDER)
    filename = filename.replace("\\", "/").strip("/")  # a Windows path, or one pasted with a leading /
    repo_name = repo_id.strip("/") + (f"@{revision}" if revision else "")  # another revision, another file
    name = "--".join([*repo_name.split("/"), *filename.split("/")])
    base = filename.rsplit("/", 1)[-1]
    # in any of ComfyUI's 'sams' folders; or under the name an earlier release gave it, without the file's
    # folders, where that name cannot be another file's (the repo's top-level one, another folder's)
    earlier = "--".join([*repo_name.split("/"), base]) if CONTENT_NAME.fullmatch(base) else name
    with contextlib.suppress(OSError):  # (a folder that is not there, or not ours to change)
        _remove_stale_parts(folder, name)
    for known in dict.fromkeys((name, earlier)):
        placed = paths.placed(paths.SAM_FOLDER, known)
        if placed is not None:
            return placed
    target = os.path.join(folder, name)
    from huggingface_hub import hf_hub_download, hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision)  # quoted as the Hub needs, on HF_ENDPOINT's mirror
    by_hand = f"Download {url} by hand, save it into {folder} as {name}, and pick it in model_name"
    offline = _offline()
    try:
        cached = hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, etag_timeout=5,
                                 local_files_only=offline)
    except Exception as e:
        if offline:
            raise FileNotFoundError(f"{name} is neither in {folder} nor in the Hugging Face cache, and downloading "
                                    f"is off (HF_HUB_OFFLINE=1). {by_hand}") from None
        raise RuntimeError(f"could not download {url} ({type(e).__name__}: {e}). {by_hand}") from None
    entry = cached
    # the cache's snapshot entry is a relative link into its blobs: a hard link to the link would dangle
    cached = os.path.realpath(cached)
    partial = _partial(folder, name)
    try:
        os.makedirs(folder, exist_ok=True)
        try:
            os.link(cached, partial)
        except OSError:  # another file system, or no hard links: a copy
            shutil.copyfile(cached, partial)
        os.replace(partial, target)
    except OSError as e:
        log.warning("comfyui-phnet: PHNet SAM Loader: could not place %s in %s (%s); loading it from the Hugging "
                    "Face cache, %s, instead (free space there, or make it writable, to see it in model_name's list)",
                    name, folder, e, entry)
        return entry  # by its cache entry's name: the blob's has no extension to tell its format
    finally:
        if os.path.lexists(partial):  # a copy cut short (a full disk): no gigabytes of half file left behind
            os.unlink(partial)
    return target


def _partial(folder: str, name: str) -> str:
    """A partial file of this try's own for ``name``: two processes placing it each place it whole. Only the
    name's start, as phnet.atomic's temporary files: the whole name and a suffix could pass the file system's 255
    bytes."""
    return os.path.join(folder, f".{name[:40]}.{secrets.token_hex(6)}.part")


STALE_PART_S = 600  # a copy in progress writes all the time, and a link is made at once


def _remove_stale_parts(folder: str, name: str) -> None:
    """The half copies that killed tries left of ``name`` (up to 2.5 GB each): the one .part of earlier releases,
    and partial files (:func:`_partial`) untouched for ten minutes. By age, not by process: a ComfyUI in another
    container sharing the folder has its own process numbers."""
    parts = glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name[:40])}.*.part"))
    for part in [os.path.join(folder, f"{name}.part"), *parts]:
        with contextlib.suppress(OSError):  # gone already
            info = os.lstat(part)  # (an earlier version left a link that dangles)
            if part not in parts or max(info.st_mtime, info.st_ctime) < time.time() - STALE_PART_S:
                os.unlink(part)


class PHNetSAMLoader:
    DESCRIPTION = (
        "Loads a Segment Anything (SAM v1) checkpoint from ComfyUI/models/sams, or downloads one file from a "
        "Hugging Face Hub repo into that folder. The model size (vit_b/l/h or custom) is read from the weights."
    )
    CATEGORY = "PHNet/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (SAM_TYPE,)
    RETURN_NAMES = ("sam_model",)
    OUTPUT_TOOLTIPS = ("The loaded SAM model; connect it to 'PHNet SAM Segment'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (paths.sam_choices(), {
                    "tooltip": "SAM checkpoint in ComfyUI/models/sams (shared with Impact Pack and other SAM "
                               "packs), e.g. sam-vit-base.safetensors (Meta's SAM ViT-B) or sam_vit_b_01ec64.pth; "
                               "the size is read from the weights. Ignored when hub_repo_id is set; pick "
                               f"'{paths.SAM_FROM_HUB}' when you have no local file.",
                }),
                "hub_repo_id": ("STRING", {
                    "default": "",
                    "tooltip": "Optional Hugging Face Hub repo id holding a SAM checkpoint ('owner/name', or "
                               "'owner/name@revision'), or a local file or folder; the file named in hub_filename is "
                               "downloaded into ComfyUI/models/sams and used instead of model_name.",
                }),
                "hub_filename": ("STRING", {
                    "default": "",
                    "tooltip": "File to download from hub_repo_id (e.g. 'sam_vit_b_01ec64.pth'). Leave empty to "
                               "let the library pick the checkpoint in the repo.",
                }),
                "model_type": (SAM_TYPES, {
                    "default": "auto",
                    "tooltip": "SAM architecture. It is always read off the weights (vit_b/l/h and custom sizes); "
                               "a type set here is checked against them, and picks one checkpoint in a folder or "
                               "repo holding several.",
                }),
                "device": (DEVICES, {
                    "default": "auto",
                    "tooltip": "'auto' runs SAM on ComfyUI's compute device (GPU when available) and parks it on "
                               "the offload device between runs; 'cpu' forces CPU.",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name, hub_repo_id=""):
        # as the PHNet loader's: hub_repo_id makes model_name unused
        linked = model_name is None or hub_repo_id is None  # known when it runs
        if linked or (hub_repo_id or "").strip() or model_name in paths.sam_choices():
            return True
        return (
            f"SAM checkpoint {model_name!r} is not in ComfyUI/models/sams (or the extra 'sams' paths). Download "
            f"it there: for sam-vit-base.safetensors, {SAM_VIT_B_URL} saved under that name (any SAM v1 file works "
            f"under any name); or pick another file, or pick '{paths.SAM_FROM_HUB}' and set hub_repo_id "
            "(+ hub_filename)"
        )

    @classmethod
    def IS_CHANGED(cls, model_name, hub_repo_id="", hub_filename="", model_type="auto", device="auto"):
        repo = unquoted(hub_repo_id or "")
        if repo and os.path.exists(os.path.expanduser(repo)):  # a local file or folder given as hub_repo_id
            from ..phnet.sources import stamp

            return stamp(repo)
        if model_name is None or hub_repo_id is None or hub_filename is None:  # linked: see the PHNet loader's
            return float("nan")
        if repo:
            return f"{model_name}|{hub_repo_id}|{hub_filename}"
        return paths.mtime(paths.SAM_FOLDER, model_name)

    def load(self, model_name, hub_repo_id="", hub_filename="", model_type="auto", device="auto"):
        from ..phnet.sam import SamSegmenter, SeveralCheckpoints
        from ..phnet.sources import looks_like_repo_id, parse_hub_ref

        repo = unquoted(hub_repo_id or "")
        filename = (hub_filename or "").strip() or None
        kwargs = {} if model_type == "auto" else {"model_type": model_type}
        # owner/name[@revision][:file], as for PHNet; a path that is not there stays a path, named as missing
        hub_repo, revision, named = parse_hub_ref(repo)
        if repo and not os.path.exists(os.path.expanduser(repo)) and looks_like_repo_id(hub_repo):
            repo, filename = hub_repo, filename or named
            if revision:
                kwargs["revision"] = revision
        if repo and not os.path.exists(os.path.expanduser(repo)) and not looks_like_repo_id(repo):
            raise FileNotFoundError(
                f"PHNet SAM Loader: hub_repo_id {repo!r} is no file or folder on this machine and no Hub repo id: "
                "give the full path of a SAM checkpoint or of its folder, or a Hub repo as owner/name with its file "
                "in hub_filename")
        if repo and os.path.isfile(os.path.expanduser(repo)) and filename:
            raise ValueError(
                f"PHNet SAM Loader: hub_repo_id {repo!r} is a file, and hub_filename {filename!r} names a file inside "
                "a Hub repo or a local folder: leave hub_filename empty to load that file, or give its folder")
        if repo and os.path.isdir(os.path.expanduser(repo)) and filename:  # a local folder and one of its files
            source, filename = os.path.join(os.path.expanduser(repo), filename), None
        elif repo and filename:
            source, filename = _download_sam(repo, filename, kwargs.pop("revision", None)), None
        elif repo:
            source, kwargs["local_files_only"] = repo, _offline()
        elif model_name and model_name != paths.SAM_FROM_HUB:  # hub_filename names a file of hub_repo_id only
            source, filename = paths.full_path(paths.SAM_FOLDER, model_name), None
        else:
            raise ValueError(
                f"no SAM checkpoint selected: put one into ComfyUI/models/sams (e.g. {SAM_VIT_B_URL} saved as "
                f"sam-vit-base.safetensors) and refresh, or set hub_repo_id when model_name is '{paths.SAM_FROM_HUB}'"
            )
        load_device = _device(device)
        offload = load_device if device == "cpu" else mm.unet_offload_device()

        def load():
            try:
                seg = SamSegmenter.from_pretrained(source, filename=filename, device=offload, **kwargs)
            except SeveralCheckpoints as e:
                other = "" if e.model_type else ", or set model_type to the one you want"
                raise e.choosing(f"name its file in hub_filename{other}") from None
            log.info("comfyui-phnet: loaded SAM %s (runs on %s)", source, load_device)
            return PHNetSAM(seg, load_device, offload)

        key = ("sam", str(source), filename, tuple(sorted(kwargs.items())), str(load_device), str(offload))
        return (_reused(key, str(source), load),)
