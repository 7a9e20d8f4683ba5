"""Data sets read while training and evaluating: iHarmony4, FFHQH, or any folder of photos.

``build_dataset(data_cfg, split, image_size=...)`` picks the loader from ``data.kind``
(``auto`` looks at the folder) and applies the shared options. The parts:

* ``base.py``       HarmonizationDataset: load a pair, fit it to the working size, augment, synthesise
* ``common.py``     file reading, the bad-sample policy, geometry, batching (``collate``)
* ``iharmony.py``, ``ffhqh.py``, ``folder.py``  the three layouts (records and loaders)
* ``synthesis.py``  composites made on the fly from a photo and a mask (the ``[data.synthesis]`` table)
* ``synthesis_torch.py``  the same composites made in batches on the training device (``on_device``)

Sets written to disk beforehand come from :mod:`trainer.builders`.
"""
from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

from trainer.data.base import HarmonizationDataset
from trainer.data.common import BadSampleError, Record, collate, spread_sample
from trainer.data.ffhqh import FFHQHDataset, ffhqh_records, is_ffhqh_root
from trainer.data.folder import FolderDataset, folder_records, folder_splits
from trainer.data.iharmony import IHarmony4Dataset, carves_validation, iharmony_records, is_iharmony_root
from trainer.data.synthesis import SynthesisOptions, sample_strength, synthesize

KINDS = ("auto", "iharmony", "ffhqh", "folder")
FOLDER_SETTINGS = ("root", "mask_dir", "val_root", "val_mask_dir", "ffhq_root")  # [data] keys naming a folder

__all__ = ["build_dataset", "check_data_folders", "detect_kind", "data_kind", "split_settings",
           "trained_photos_held_out", "collate",
           "BadSampleError", "Record", "HarmonizationDataset", "IHarmony4Dataset", "FFHQHDataset", "FolderDataset",
           "SynthesisOptions", "synthesize", "sample_strength", "KINDS"]


def detect_kind(root: Path) -> str:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data root not found: {root}")
    if is_iharmony_root(root):
        return "iharmony"
    if is_ffhqh_root(root):
        return "ffhqh"
    return "folder"


def check_data_folders(data: dict) -> None:
    """Every folder the ``[data]`` table names must exist (a training run reads them all)."""
    for key in FOLDER_SETTINGS:
        configured_folder(data, key)


def configured_folder(data: dict, key: str) -> Path | None:
    """``data[key]`` as an existing folder (None when unset, except the root, which must be set): a mistyped path
    must not quietly train on other data."""
    return required_folder(data, key) if data.get(key) or key == "root" else None


def required_folder(data: dict, key: str) -> Path:
    """``data[key]`` as an existing folder, for a setting the data set cannot do without."""
    if not data.get(key):
        fix = "pass --data FOLDER (the data-set folder)" if key == "root" else f"set data.{key}"
        raise ValueError(f"data.{key} is not set: {fix}")
    path = Path(data[key]).expanduser()
    if path.is_dir():
        return path
    fix = f"correct data.{key}" + (" (--data)" if key == "root" else " or leave it empty")
    if path.exists():
        raise NotADirectoryError(f"data.{key}: {path} is a file, not a folder; {fix}")
    raise FileNotFoundError(f"data.{key}: the folder {path} does not exist; {fix}")


def data_kind(data: dict) -> str:
    """The kind of data set a ``[data]`` table describes: its ``kind``, or with ``auto`` the one its root holds."""
    kind = data.get("kind", "auto")
    return detect_kind(required_folder(data, "root")) if kind == "auto" else kind


def split_settings(data: dict) -> tuple[str, ...]:
    """The ``[data]`` keys that decide which photos of the data set ``data`` describes are trained on and which are
    held out for validation or testing: a photo folder's fractions and whether it has a ``val_root`` (a pool's and
    a ready set's splits are their own, though a set without a validation list carves it by ``val_fraction``)."""
    root = required_folder(data, "root")
    kind = data_kind(data)
    if kind == "iharmony":
        return ("data.val_fraction",) if carves_validation(root, data.get("subsets") or None) else ()
    if kind == "ffhqh":
        return () if (root / "val_split.txt").exists() else ("data.val_fraction",)
    if is_pool(root) and not data.get("mask_dir"):
        return ()
    return ("data.test_fraction", "data.val_root") + (() if data.get("val_root") else ("data.val_fraction",))


def trained_photos_held_out(old: dict, new: dict) -> list[Path] | None:
    """The photos the old ``[data]`` table of a photo folder trains on and does not hold out that the new one
    holds out for validation or testing, by resolved path (a root given as another path, or moved to the folder
    above, is compared photo by photo); None where the splits of either cannot be listed (a folder gone, a
    set of another kind)."""
    try:
        before, after = _split_photos(old), _split_photos(new)
    except Exception:  # an old table today's code cannot build (a setting since removed, say): not listable
        return None
    if before is None or after is None:
        return None
    trained = before["train"] - before["val"] - before["test"]  # a folder of a single photo serves every split
    return sorted((after["val"] | after["test"]) & trained)


def _split_photos(data: dict) -> dict[str, set[Path]] | None:
    """Each split's photos (resolved paths) of the photo folder or pool ``data`` describes, as ``build_dataset``
    reads them; None for another kind of set."""
    import warnings

    root = required_folder(data, "root")
    if data_kind(data) != "folder":
        return None
    plain = {**data, "max_samples": 0, "preload": False, "kind": "folder"}
    out: dict[str, set[Path]] = {}
    with warnings.catch_warnings():  # photos without masks: the run itself warns
        warnings.simplefilter("ignore")
        by_splits = is_pool(root) and not data.get("mask_dir")  # a pool read by its split folders
        for split in ("train", "val", "test"):
            if by_splits and not _pool_has(root, data, split):
                out[split] = set()
                continue
            try:
                ds = build_dataset(plain, split, image_size=256, progress=False, report=False)  # any size
            except ValueError as exc:
                if not str(exc).startswith(f"the {split} split of "):  # not an empty split
                    raise
                out[split] = set()
                continue
            out[split] = {Path(r.real).resolve() for r in ds.records}
    return out


def pool_split(root: Path, split: str) -> tuple[Path, Path] | None:
    """(photos, masks) of ``split`` when ``root`` is a pool written by ``trainer.builders.package_portraits``
    (a ``manifest.json`` beside ``train/``, ``val/`` and ``test/``, each with ``images/`` and ``masks/``);
    None for any other folder. Read as one plain folder, a pool would mix its splits and its masks into
    the photos."""
    photos, masks = root / split / "images", root / split / "masks"
    if not is_pool(root):
        return None
    if photos.is_dir() and masks.is_dir():
        return photos, masks
    there = sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    flag = {"test": " --test-percent 10", "val": " --val-percent 10"}.get(split, "")
    raise ValueError(f"{root} is a pool (manifest.json) without a {split}/ split (it has "
                     f"{', '.join(there) or 'none'}): rebuild it with{flag or ' that split'} "
                     "(trainer.builders.package_portraits), or choose one of its splits; read as a plain folder it "
                     "would mix its splits and its masks into the photos")


def pool_part(folder: Path, split: str) -> tuple[Path, Path] | None:
    """(photos, masks) of a pool's ``split`` (:func:`pool_split`), or of ``folder`` when it is one split of a pool
    (``images/`` and ``masks/``, the pool's ``manifest.json`` above, or a copy of one: pictures in those two alone,
    each mask named as a photo): read as a plain folder, its masks would be photos too. None for any other folder."""
    if split != "all" and (found := pool_split(folder, split)) is not None:
        return found
    if (folder / "images").is_dir() and (folder / "masks").is_dir() and (is_pool(folder.parent)
                                                                         or _photos_beside_masks(folder)):
        return folder / "images", folder / "masks"
    return None


def _photos_beside_masks(folder: Path) -> bool:
    """Whether the pictures under ``folder`` all lie in its ``images/`` and ``masks/``, each mask named as one of
    the photos (same relative path and stem): a pool's split copied out of the pool."""
    from trainer.data.common import list_images
    from trainer.data.folder import stem_of

    parts = [p.relative_to(folder).parts for p in list_images(folder)]
    if any(len(p) < 2 or p[0] not in ("images", "masks") for p in parts):
        return False
    photos, masks = ({stem_of("/".join(p[1:])) for p in parts if p[0] == sub} for sub in ("images", "masks"))
    return bool(masks) and masks <= photos


def _photos_and_masks(data: dict, folder: Path, mask_key: str, split: str) -> tuple[Path, Path | None, bool]:
    """(photos, masks, whether they are a pool's) of a photo folder named in ``data``: a pool's ``split``, or one
    split of a pool (:func:`pool_part`), unless ``data[mask_key]`` names the masks; else the folder itself."""
    part = None if data.get(mask_key) else pool_part(folder, split)
    return (*part, True) if part else (folder, configured_folder(data, mask_key), False)


def _pool_has(root: Path, data: dict, split: str) -> bool:
    """Whether ``root`` is a pool read by its split folders (no ``data.mask_dir``) that has ``split``."""
    if data.get("mask_dir") or not is_pool(root):
        return False
    return (root / split / "images").is_dir() and (root / split / "masks").is_dir()


def is_pool(folder: Path) -> bool:
    """A pool of ``trainer.builders.package_portraits`` (or a subset of one): its manifest names that builder
    (another tool's manifest.json beside photos makes no pool)."""
    import json

    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["builder"] in POOL_BUILDERS
    except (OSError, ValueError, KeyError, TypeError):
        return False


def pool_manifest(pool: Path) -> dict:
    """The manifest of a pool (:func:`is_pool`), each of its entries with its ``name``, ``split`` and ``source``:
    the split one of train, val and test and the name a file's stem, as the paths of its files are made of them."""
    import json

    path = Path(pool) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["entries"]
        if not isinstance(entries, list) or not all(_pool_entry(e) for e in entries):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a pool's manifest (entries with name, split and source): rebuild the pool "
                         "with python -m trainer.builders.package_portraits") from None
    return manifest


def pool_entries(pool: Path) -> list[dict]:
    """The entries of the manifest of a pool (:func:`pool_manifest`)."""
    return pool_manifest(pool)["entries"]


def _pool_entry(entry) -> bool:
    if not (isinstance(entry, dict) and {"name", "split", "source"} <= set(entry)):
        return False
    name = entry["name"]
    return (entry["split"] in ("train", "val", "test") and isinstance(name, str) and name not in ("", ".", "..")
            and PurePosixPath(name).name == name == PureWindowsPath(name).name)  # no folder, root or drive


POOL_BUILDERS = ("trainer.builders.package_portraits", "trainer.datasets.package_portraits")  # (its name until 12-02)


TEST_IS_VALIDATION = (
    "NOT A HELD-OUT SCORE: the test split of the photo folder {root} is its validation split (data.test_fraction "
    "= 0, the default). A run trained on this folder chose its best/ checkpoint and calibrated its do-no-harm rule "
    "on these very composites. For a real test split, train with data.test_fraction > 0 (e.g. --set "
    "data.test_fraction=0.1; evaluating with --config RUN then reads it), or evaluate on photos the run never saw "
    "(a package_portraits pool's test/, or another folder with --split all).")


TEST_IS_TRAINING = (
    "NOT A HELD-OUT SCORE: the test photos of the photo folder {root} are its training photos too (a folder of a "
    "single photo serves it in every split): a run trained on this folder has trained on them. Evaluate on photos "
    "the run never saw (a folder with more photos and data.test_fraction > 0, a package_portraits pool's test/, or "
    "another folder with --split all).")


def build_dataset(data: dict, split: str, *, train: bool | None = None, image_size: int | None = None,
                  resize: str | None = None, seed: int | None = None, progress: bool = True,
                  report: bool = True) -> HarmonizationDataset:
    """Build the ``split`` ("train", "val", "test"; "all": every photo of a photo folder, none held back, for
    scoring a folder a run never saw) of the data set described by a ``[data]`` table.

    The folders the split reads must exist (:func:`configured_folder`); the others are not looked at, so a
    recorded config can be evaluated on another machine. ``max_samples`` keeps a fixed spread of the split
    (:func:`~trainer.data.common.spread_sample`). A test split that is not held out (a photo folder's, without
    ``test_fraction``) carries the warning to print with its scores in ``not_held_out``. ``progress`` and
    ``report``: the preload's tqdm bar and its memory line (:meth:`FolderDataset.preload`).
    """
    root = required_folder(data, "root")
    kind = checked_kind(data, root, split)
    options = dataset_options(data, kind, root, split, train=train, image_size=image_size, resize=resize, seed=seed)
    val_fraction = float(data.get("val_fraction", 0.05))
    if kind in ("iharmony", "ffhqh"):
        ds = ready_set_split(data, kind, root, split, val_fraction, options)
    else:
        ds = photo_folder_split(data, root, split, val_fraction, options)
    limit = int(data.get("max_samples", 0) or 0)
    if limit and len(ds.records) > limit:
        ds.records = [ds.records[i] for i in spread_sample([r.name for r in ds.records], limit)]
    if len(ds) == 0:
        raise ValueError(empty_split_message(data, kind, root, split, val_fraction))
    if data.get("preload"):
        preload_photos(ds, kind, progress=progress, report=report)
    return ds


def checked_kind(data: dict, root: Path, split: str) -> str:
    """The kind of set ``data.root`` is read as (``data.kind``, or with ``auto`` the one the folder holds), once it
    is known to fit the folder, the split and ``data.subsets``."""
    kind = data.get("kind", "auto")
    if kind not in KINDS:
        raise ValueError(f"data.kind must be one of {KINDS}, got {kind!r}")
    found = detect_kind(root)
    if kind == "auto":
        kind = found
    elif kind == "folder" and found != "folder":
        raise ValueError(
            f"data.kind is \"folder\" (photos to synthesise composites from), but {root} holds a ready {found} set "
            f"(composites, masks and real pictures in their own folders, split lists): read as photos, every "
            f"picture in it, masks included, would become a training photo; pass --kind auto (or --kind {found})")
    if split == "all" and (kind != "folder" or is_pool(root)):
        raise ValueError(f"split 'all' reads every photo of a photo folder; {root} is a "
                         f"{'pool' if kind == 'folder' else kind} set with splits of its own: choose one of them")
    if data.get("subsets") and kind != "iharmony":
        raise ValueError(f"data.subsets {list(data['subsets'])} picks iHarmony4 subsets, but {root} is a {kind} set, "
                         "which has none: drop data.subsets (--set data.subsets=[] or remove it from the config)")
    return kind


def dataset_options(data: dict, kind: str, root: Path, split: str, *, train: bool | None, image_size: int | None,
                    resize: str | None, seed: int | None) -> dict:
    """The keyword arguments every data-set class takes (:class:`HarmonizationDataset`): the ``[data]`` table's
    settings, where the call does not override them. Training augments, unless ``train`` says otherwise."""
    synthesis = dict(data.get("synthesis", {}))
    size = image_size or data.get("image_size")
    if not size:
        raise ValueError("no working size: pass image_size= or set data.image_size")
    return dict(
        image_size=size,
        resize=resize or data.get("resize", "stretch"),
        train=(split == "train") if train is None else train,
        hflip=data.get("hflip", 0.0), crop_scale=tuple(data.get("crop_scale", (1.0, 1.0))),
        on_bad_sample=data.get("on_bad_sample", "error"), seed=data.get("seed", 0) if seed is None else seed,
        synthesis=SynthesisOptions(**synthesis), description=f"{kind}:{root}:{split}",
    )


def ready_set_split(data: dict, kind: str, root: Path, split: str, val_fraction: float,
                    options: dict) -> HarmonizationDataset:
    """``split`` of an iHarmony4 or FFHQH set (composites made beforehand), by its split lists; without a
    validation list, validation is carved from the training list by ``val_fraction``."""
    if split == "val" and data.get("val_root"):
        print(f"[data] data.val_root is for folder data sets: {kind} data validate on their own split, not on "
              f"{data['val_root']}", file=sys.stderr)
    policy = options["on_bad_sample"]
    if kind == "iharmony":
        recs = iharmony_records(root, split, data.get("subsets") or None, val_fraction, policy)
        return IHarmony4Dataset(recs, identity_pairs=data.get("identity_pairs", 0.0), **options)
    recs = ffhqh_records(root, split, configured_folder(data, "ffhq_root"), val_fraction, policy)
    return FFHQHDataset(recs, identity_pairs=data.get("identity_pairs", 0.0), **options)


def photo_folder_split(data: dict, root: Path, split: str, val_fraction: float, options: dict) -> FolderDataset:
    """``split`` of a folder of photos (composites made from them as they are read), from where it lies: the
    validation folder ``data.val_root``, every photo (split "all"), a pool's split folder, or the photos carved
    from the folder by ``val_fraction`` and ``test_fraction``."""
    if reads_val_root(data, root, split):
        return val_root_split(data, root, split, options)
    if split == "all":  # a folder of photos, or one split of a pool (its images/ with their masks/)
        photos, masks, _ = _photos_and_masks(data, root, "mask_dir", "all")
        return _photo_dataset(data, folder_records(photos, "train", masks, 0.0, 0.0), options)
    if (pool := pool_split(root, split)) is not None and not data.get("mask_dir"):
        # every photo of the pool's split, with its mask
        return _photo_dataset(data, folder_records(pool[0], "train", pool[1], 0.0, 0.0), options)
    return carved_split(data, root, split, val_fraction, options)


def reads_val_root(data: dict, root: Path, split: str) -> bool:
    """Whether ``split`` of a photo folder is read from its ``data.val_root``: validation always; the test split
    too, unless one is carved (``test_fraction``) or the pool has its own."""
    if not data.get("val_root"):
        return False
    return split == "val" or (split == "test" and not float(data.get("test_fraction", 0))
                              and not _pool_has(root, data, "test"))


def val_root_split(data: dict, root: Path, split: str, options: dict) -> FolderDataset:
    """The photos of the validation folder ``data.val_root`` (each ``val_copies`` times), which must be a folder of
    photos or a pool; as the test split, it is the validation split, and says so in ``not_held_out``."""
    val_root = required_folder(data, "val_root")  # read only when set
    if (held := detect_kind(val_root)) != "folder":
        raise ValueError(f"data.val_root {val_root} holds a ready {held} set (composites, masks and real pictures "
                         "in folders of their own): read as photos, its masks and composites would be validation "
                         "photos; give a folder of photos (or a package_portraits pool), or train on that set")
    photos, masks, _ = _photos_and_masks(data, val_root, "val_mask_dir", "val")
    recs = folder_records(photos, "train", masks, 0.0, 0.0, mask_setting="data.val_mask_dir")
    recs *= max(1, int(data.get("val_copies", 1)))
    ds = _photo_dataset(data, recs, options)
    ds.folder = str(data["val_root"])
    if split == "test":
        ds.not_held_out = TEST_IS_VALIDATION.format(root=f"{root} (its validation folder {data['val_root']})")
    return ds


def carved_split(data: dict, root: Path, split: str, val_fraction: float, options: dict) -> FolderDataset:
    """``split`` of the photos of ``data.root`` carved by ``val_fraction`` (none with a ``data.val_root``) and
    ``test_fraction`` (:func:`~trainer.data.folder.folder_splits`); a test split that is not held out says so in
    ``not_held_out``."""
    test_fraction = float(data.get("test_fraction", 0.0))
    # validation on a folder of its own: none of these photos is set aside for it (5 % were, unused)
    carved = 0.0 if data.get("val_root") else val_fraction
    photos, masks, in_pool = _photos_and_masks(data, root, "mask_dir", "all")
    # POOL/test for the test split: all of it; a copy of one out of its pool is carved as any folder (a run on
    # it trained on its photos)
    whole = in_pool and split == root.name == "test" and is_pool(root.parent)
    splits = folder_splits(photos, masks, *((0.0, 0.0) if whole else (carved, test_fraction)))
    recs = splits.get("train" if whole else split, [])
    ds = _photo_dataset(data, recs, options)
    if split == "test" and test_fraction <= 0 and not data.get("val_root") and not whole:
        ds.not_held_out = TEST_IS_VALIDATION.format(root=root)
    elif split == "test" and not whole and {r.real for r in recs} & {r.real for r in splits["train"]}:
        ds.not_held_out = TEST_IS_TRAINING.format(root=root)
    return ds


def _photo_dataset(data: dict, records: list[Record], options: dict) -> FolderDataset:
    return FolderDataset(records, mask_fallback=data.get("mask_fallback", "ellipse"), **options)


def empty_split_message(data: dict, kind: str, root: Path, split: str, val_fraction: float) -> str:
    """Why ``split`` has no sample, and how to get some: an empty validation split is told apart by whether the set
    has a validation list, and, where it carves one, whether too few photos are left to carve it from."""
    fix = {"val": "; set data.val_fraction above 0 (e.g. 0.05) or give a data.val_root folder",
           "test": "; set data.test_fraction above 0 or evaluate on another folder"}.get(split, "")
    listed = ((root / "val_split.txt").exists() if kind == "ffhqh" else  # iHarmony4's root, or one subset's
              any(root.glob("*/*_val.txt")) or any(root.glob("*_val.txt")))
    if split == "val" and kind in ("iharmony", "ffhqh") and listed:
        fix = (": its validation list names no usable sample (missing or skipped files: the warnings above say "
               "which)")
    elif split == "val" and kind in ("iharmony", "ffhqh") and val_fraction > 0:
        fix = (f": it has no validation list, and its train split has too few photos to carve one from with "
               f"data.val_fraction {val_fraction:g}; give a set with more photos (from trainer.builders."
               "synthetic_set: build it from more photos, or with a --val-fraction that keeps one)")
    elif split == "val" and kind == "folder" and val_fraction > 0 and not data.get("val_root"):
        test_fraction = float(data.get("test_fraction", 0.0))
        taken = f" once data.test_fraction {test_fraction:g} has taken its share" if test_fraction > 0 else ""
        fix = (f": too few photos are left to carve one from with data.val_fraction {val_fraction:g}{taken}; "
               "add photos, or give a data.val_root folder")
    return f"the {split} split of {root} ({kind}) is empty{fix}"


def preload_photos(ds: HarmonizationDataset, kind: str, *, progress: bool, report: bool) -> None:
    """``data.preload``: a folder of photos is decoded into memory now (:meth:`FolderDataset.preload`); a set of
    ready composites is read from its files as before."""
    if isinstance(ds, FolderDataset):
        ds.preload(progress=progress, report=report)
    elif report:  # a speed setting: a recorded folder config still evaluates on iHarmony4 or FFHQH
        print(f"[data] data.preload is for folder data sets (photos and masks); {kind} is read from its files",
              file=sys.stderr)
