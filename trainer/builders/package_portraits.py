"""Build a harmonisation training set from images that ship inside installed packages.

    python -m trainer.builders.package_portraits OUT [--size 256] [--val-size 512] [--all-versions]

Sources (all installed with pip, nothing downloaded at run time unless ``--all-versions``):

* ``comfyui-workflow-templates-media-api``, ``-media-video`` and ``-media-other`` (MIT):
  the thumbnails of ComfyUI's workflow templates, many of them generated portraits.
  Animated thumbnails contribute up to ``--frames`` frames, spread over the animation.
* ``comfyui-workflow-templates-media-assets-01`` and ``-02`` (MIT): newer template thumbnails,
  many of them renders, interface screenshots and logos. Only their pictures of people (a face
  found, so a *person* mask) are kept: training pictures should look like the use.
* ``scikit-image``'s ``skimage.data`` colour photos (astronaut, chelsea, coffee, rocket).

A bundle whose installed METADATA does not license it MIT (MIT, or a choice that offers MIT) is left out,
with a warning; ``licences`` in the manifest gives what each one's METADATA says.

``comfyui-workflow-templates-media-image`` is **never** read: it is reserved for held-out
evaluation elsewhere in the project. Its pictures also turn up in old versions of the allowed
bundles, so every source is checked against the reserved list (:mod:`trainer.builders.held_out`:
same file, or a dHash within 6 bits) and dropped when it matches, with every near-duplicate of it (its
group, below); the build prints how many.

``--all-versions`` adds the pictures that only older published versions of the five bundles hold
(:mod:`trainer.builders.package_history`: downloaded once into a cache, near-duplicates of the
installed pictures dropped; ``older_versions`` in the manifest lists the versions read and each one's
licence, and ``held_out_excluded`` counts the reserved pictures they held). Off by default, so the default
build depends only on what is installed.

Subject masks (:mod:`trainer.builders.subject_masks`, documented in docs/default-weights.md):

1. *person*: OpenCV's Haar frontal-face cascade (shipped in ``opencv-python-headless`` < 5)
   finds the largest face; a person-shaped region around it (face core = sure foreground,
   a body-sized box under it = probable foreground, everything else = sure background)
   seeds GrabCut. The result is cleaned (largest component holding the face, holes filled).
2. *object*: no face → GrabCut initialised with a central rectangle (the picture's subject).
3. *random*: neither gives an acceptable mask → a smooth random blob (union of ellipses).

Every training source also gets one extra *random*-shape mask as augmentation. A mask is
rejected when it covers less than 4 % or more than 65 % of the picture, or is mostly made
of scattered pieces. A picture wider or taller than 4:3 is cropped to 4:3 around its subject; when
that leaves the mask outside 4-65 % of the crop, the crop gets a mask of its own (the frame is
skipped when none is acceptable either).

Split: by source (package + path inside it, so all frames of one animation land together), by its
group's key (below): ``int.from_bytes(sha1("split:" + key)[:8], "little") % 100 < --val-percent`` goes
to validation (checkpoint selection), the next ``--test-percent`` to test (the report);
``skimage/astronaut`` is always held out (in test when there is a test split) because the repo's example
composite is made from it. Near-duplicate sources
(dHash within 6 bits, of any frame a source gives or its mirror image: one template's thumbnail shipped by
two bundles, a re-encoded, retitled or mirrored copy, a still of an animation's later frame) are split
together, by the first key of their group, so no copy of a held-out picture is trained on; a group
holding a reserved picture is dropped whole. A file shipped byte for byte under two keys is one source,
the first key's (the others are skipped). Held-out splits keep
one frame and its subject mask per source, at a larger size so native-resolution scores mean
something.

Output::

    OUT/train/images/<name>.png   OUT/train/masks/<name>.png   (mask: L, 0 / 255)
    OUT/val/images/<name>.png     OUT/val/masks/<name>.png
    OUT/manifest.json             sources, package versions and licences, mask method per pair

Everything is deterministic for fixed package versions (per-source seeds, OpenCV RNG seeded
before each GrabCut, single-threaded OpenCV).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import multiprocessing
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from PIL import Image

from phnet.console import interrupted_status, printable_anywhere
from trainer.builders import staging
from trainer.builders.held_out import FORBIDDEN_PACKAGES, NEAR_DUPLICATE_BITS, as_image, dhash64, hamming, is_held_out
from trainer.builders.names import distinct_bases
from trainer.builders.package_pictures import (IMAGE_SUFFIXES, LICENCES, MEDIA_PACKAGES, PEOPLE_ONLY, Source,
                                              frames_from_file, installed_folder, installed_licence, is_mit, usable)
from trainer.builders.subject_masks import acceptable, load_cv2, random_shape_mask, subject_mask

if TYPE_CHECKING:
    from trainer.builders.package_history import Tally

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
ALWAYS_VAL = ("skimage/astronaut",)

MAX_ASPECT = 4 / 3  # sources are cropped around the subject to at most this aspect ratio


# ---------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------
def _seed(key: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha1((salt + key).encode()).digest()[:8], "little")


def split_of(key: str, val_percent: int, test_percent: int = 0) -> str:
    if key in ALWAYS_VAL:
        return "test" if test_percent > 0 else "val"
    h = _seed(key, "split:") % 100
    return "val" if h < val_percent else "test" if h < val_percent + test_percent else "train"


def split_groups(keys: list[str], hashes: list, bits: int = NEAR_DUPLICATE_BITS) -> dict[str, str]:
    """Each key's group: the key whose split it takes. ``hashes``: each key's dHash, or several (every frame
    it gives, and their mirror images), or None (unreadable: its own group). Keys any of whose dHashes lie
    within ``bits`` of each other (directly or through others) form one group, named by its first key in
    sorted order, or by its ``ALWAYS_VAL`` key when it holds one."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner, flat = [], []  # every hash, and the key it belongs to
    for i, h in enumerate(hashes):
        for one in ([] if h is None else [h] if isinstance(h, (int, np.integer)) else h):
            owner.append(i)
            flat.append(int(one))
    table = np.array(flat, np.uint64)
    for n in range(len(flat) - 1):
        for m in np.flatnonzero(hamming(flat[n], table[n + 1:]) <= bits).tolist():
            parent[root(owner[n + 1 + m])] = root(owner[n])
    members: dict[int, list[str]] = {}
    for i, key in enumerate(keys):
        members.setdefault(root(i), []).append(key)
    group = {}
    for names in members.values():
        name = next((k for k in ALWAYS_VAL if k in names), min(names))
        group.update(dict.fromkeys(names, name))
    return group


def iter_sources() -> Iterator[Source]:
    for mod_name in FORBIDDEN_PACKAGES:
        if any(mod_name == m for m, _ in MEDIA_PACKAGES):
            raise RuntimeError(f"internal error: {mod_name} is reserved for evaluation but listed in MEDIA_PACKAGES")
    for mod_name, dist in MEDIA_PACKAGES:
        root = installed_folder(mod_name)
        if root is None:
            print(f"warning: {dist} not installed, skipped", file=sys.stderr)
            continue
        licence = installed_licence(dist) or "unknown"
        if not is_mit(licence):
            print(f"warning: {dist} is licensed {licence!r}, not MIT: its pictures are left out", file=sys.stderr)
            continue
        short = dist.replace("comfyui-workflow-templates-", "")
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                key = f"{short}/{p.relative_to(root).as_posix()}"
                yield Source(key, partial(frames_from_file, p), p.read_bytes)
    try:
        import skimage.data as skd
    except ImportError:
        print("warning: scikit-image not installed, skimage.data skipped", file=sys.stderr)
        return
    for name in SKIMAGE_PHOTOS:
        yield Source(f"skimage/{name}", partial(_sample_frames, skd, name))


def _sample_frames(samples: Any, name: str, max_frames: int) -> list[np.ndarray]:
    """The sample photo ``name`` of scikit-image's ``samples`` module: one frame, RGB."""
    return [np.ascontiguousarray(getattr(samples, name)()[..., :3])]


def licences() -> dict[str, str]:
    """The licence of each source's pictures: the bundles' as their installed METADATA gives it."""
    out = {}
    for _, dist in MEDIA_PACKAGES:
        licence = installed_licence(dist)
        out[dist] = ("not installed" if licence is None else licence if is_mit(licence)
                     else f"{licence} (not MIT: left out)")
    return {**out, **LICENCES}


def package_versions() -> dict[str, str]:
    out = {}
    for dist in [d for _, d in MEDIA_PACKAGES] + ["scikit-image", "opencv-python-headless", "numpy", "pillow"]:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# ---------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------
def crop_window(h: int, w: int, mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the largest window with aspect <= MAX_ASPECT centred on the subject."""
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean(), xs.mean()) if len(ys) else (h / 2, w / 2)
    nh, nw = h, w
    if w > h * MAX_ASPECT:
        nw = int(h * MAX_ASPECT)
    elif h > w * MAX_ASPECT:
        nh = int(w * MAX_ASPECT)
    y0 = int(np.clip(cy - nh / 2, 0, h - nh))
    x0 = int(np.clip(cx - nw / 2, 0, w - nw))
    return y0, y0 + nh, x0, x0 + nw


def _resize_short(a: np.ndarray, side: int, resample) -> np.ndarray:
    h, w = a.shape[:2]
    s = side / min(h, w)
    if s >= 1:
        return a
    size = (max(8, round(w * s)), max(8, round(h * s)))
    return np.asarray(Image.fromarray(a).resize(size, resample))


def cropped(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The picture and its mask in the :func:`crop_window` of the mask."""
    h, w = rgb.shape[:2]
    y0, y1, x0, x1 = crop_window(h, w, mask)
    return rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def _save_pair(out: Path, split: str, name: str, rgb: np.ndarray, mask: np.ndarray, side: int) -> tuple[int, int]:
    """Save a picture and its mask, already :func:`cropped` (no wider or taller than MAX_ASPECT)."""
    img = _resize_short(rgb, side, Image.Resampling.LANCZOS)
    m = _resize_short(mask.astype(np.uint8) * 255, side, Image.Resampling.BILINEAR)
    m = np.where(m >= 128, 255, 0).astype(np.uint8)
    Image.fromarray(img).save(out / split / "images" / f"{name}.png", optimize=False)
    Image.fromarray(m, "L").save(out / split / "masks" / f"{name}.png")
    return img.shape[0], img.shape[1]


def _slug(key: str) -> str:
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return stem.replace("/templates/", "_").replace("/", "_")


def file_bases(keys: list[str]) -> dict[str, str]:
    """Each source's file name base: its :func:`_slug`, unless another source's comes out the same (x.png and
    x.webp, a_b.png and a/b.png), when its extension and a number are kept: one picture was written over the
    other, and the manifest described it twice."""
    return distinct_bases(keys, _slug, lambda key: key.replace("/templates/", "_").replace("/", "_").replace(".", "_"))


# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------
_BUILD: dict = {}  # the build's arguments, shared with forked workers
HELD_OUT = "held out for evaluation"  # the skip reason of a reserved picture


def _held_out(data: bytes | None, frames: list[np.ndarray]) -> bool:
    """A reserved picture: the file (its bytes ``data``), or any frame the build would use (a later frame of an
    animation too)."""
    return (data is not None and is_held_out(data)) or any(is_held_out(f) for f in frames)


def _hash_one(i: int) -> tuple[list[int] | None, bool, str | None]:
    """The dHashes of every frame the build may take from a source, and of their mirror images (training
    flips pictures: a mirrored copy is the same picture to a model), or None when it cannot be read (the build
    records why); whether the source is a reserved picture; the md5 of its file (None without one). A reserved
    picture's frames are all hashed, usable or not, so that its near-duplicates are dropped with it."""
    src = _BUILD["sources"][i]
    try:
        loaded = src.load(_BUILD["frames"])
        data = None if src.data is None else src.data()  # read once (an old version's: inflated from its wheel)
        held = _held_out(data, loaded)
        md5 = None if data is None else hashlib.md5(data).hexdigest()
        if held:  # a cut-out on transparency loads no frame: its file's first one
            frames = loaded or ([np.asarray(as_image(data).convert("RGB"))] if data is not None else [])
        else:  # the frames the build takes: a flat one (a black frame's dHash is 0) would join unrelated sources
            frames = [f for f in loaded if usable(f, _BUILD["min_side"])]
        return [dhash64(np.ascontiguousarray(f[:, ::-1] if mirrored else f)) for f in frames
                for mirrored in (False, True)] or None, held, md5
    except Exception:
        return None, False, None


def _build_one(i: int) -> tuple[list[dict], list[dict]]:
    """Masks and files of one source: (manifest entries, skipped records)."""
    b = _BUILD
    src, out = b["sources"][i], b["out"]
    split = split_of(b["groups"][src.key], b["val_percent"], b["test_percent"])
    if b["groups"][src.key] in b["held_groups"]:  # a near-duplicate of a reserved picture, directly or through others
        return [], [{"source": src.key, "reason": HELD_OUT}]
    if src.key in b["copies"]:
        return [], [{"source": src.key, "reason": f"byte-identical to {b['copies'][src.key]}"}]
    try:
        frs = src.load(1 if split != "train" else b["frames"])
        if _held_out(None if src.data is None else src.data(), frs):
            return [], [{"source": src.key, "reason": HELD_OUT}]
    except Exception as e:  # unreadable file: record it, carry on
        return [], [{"source": src.key, "reason": f"unreadable: {e}"}]
    frs = [f for f in frs if usable(f, b["min_side"])]
    if not frs:
        return [], [{"source": src.key, "reason": "too small, transparent or flat"}]
    people_only = src.key.startswith(PEOPLE_ONLY)
    base = b["bases"][src.key]
    entries = []
    for j, rgb in enumerate(frs):
        seed = _seed(f"{src.key}#{j}")
        m, method, _ = subject_mask(rgb, seed)
        crop, m = cropped(rgb, m)
        if crop.shape != rgb.shape and not acceptable(m):
            # the crop to MAX_ASPECT left too little or too much of the subject: a mask of the cropped picture
            m, method, _ = subject_mask(crop, seed)
            if not acceptable(m):
                continue
        if people_only and method != "person":
            continue
        side = b["size"] if split == "train" else b["val_size"]
        name = f"{base}_f{j}"
        hw = _save_pair(out, split, name, crop, m, side)
        entries.append({"name": name, "split": split, "source": src.key, "frame": j,
                        "mask": method, "fg": round(float(m.mean()), 4), "size": hw})
        if split == "train" and j == len(frs) // 2:
            # augmentation: the same picture with a random-shape region
            ch, cw = crop.shape[:2]
            rm = random_shape_mask(ch, cw, np.random.default_rng(seed + 1))
            name = f"{base}_f{j}_rand"
            hw = _save_pair(out, split, name, crop, rm, side)
            entries.append({"name": name, "split": split, "source": src.key, "frame": j,
                            "mask": "random", "fg": round(float(rm.mean()), 4), "size": hw})
    if not entries:
        reason = "no person found (a people-only bundle)" if people_only else "no acceptable mask after the crop"
        return [], [{"source": src.key, "reason": reason}]
    return entries, []


def _can_fork() -> bool:
    try:
        multiprocessing.get_context("fork")
    except ValueError:  # cannot find context for 'fork'
        return False
    return True


def _each(fn: Callable[[int], Any], count: int, workers: int) -> Iterator[Any]:
    """``fn(0) .. fn(count - 1)`` in order, in ``workers`` forked processes (they share ``_BUILD``)."""
    if workers <= 1:
        yield from map(fn, range(count))
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # not multiprocessing.Pool: a worker killed (out of memory) raises BrokenProcessPool here instead of
    # leaving its task unanswered and the build waiting for ever
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            yield from pool.map(fn, range(count))
        except BrokenProcessPool:
            raise SystemExit(f"a worker process died (out of memory?): run again with fewer than {workers} "
                             "--workers") from None


def build(out: Path, size: int = 256, val_size: int = 512, frames: int = 3,
          val_percent: int = 15, min_side: int = 256, limit: int | None = None,
          log: Callable[[str], None] = print, test_percent: int = 0, workers: int = 1,
          all_versions: bool = False, history_cache: Path | None = None) -> dict:
    """The pool, built beside ``out`` and then put in place of it whole (:mod:`trainer.builders.staging`)."""
    from trainer.data import is_pool

    out = Path(out)
    staging.check_replaceable(out, is_pool, "pool", {"train", "val", "test", "manifest.json"})
    load_cv2()
    if workers > 1 and not _can_fork():  # Windows: one process builds the same pool
        log(f"note: this system cannot fork worker processes: the pool is built in this one, not in {workers}")
        workers = 1
    with staging.staged(out) as tmp:
        manifest = _build_into(tmp, size, val_size, frames, val_percent, min_side, limit, log, test_percent,
                               workers, all_versions, history_cache)
        if not manifest["sources"]:  # nothing to read photos from: an install without the data extra
            raise ValueError("no photo source is installed (scikit-image, the ComfyUI media bundles): install them "
                             "with pip install \"comfyui-phnet[data]\" (in a checkout: pip install -e \".[data]\")")
        if not manifest["entries"] and out.exists():  # an error here keeps the earlier pool (the staging's rule)
            raise ValueError(f"no pair from {manifest['sources']} sources ({len(manifest['skipped'])} skipped): the "
                             f"pool in {out} is kept as it was")
    log(f"pool in place: {out}")
    return manifest


def _build_into(out: Path, size: int, val_size: int, frames: int, val_percent: int, min_side: int,
                limit: int | None, log: Callable[[str], None], test_percent: int, workers: int,
                all_versions: bool, history_cache: Path | None) -> dict:
    for split in ("train", "val", "test") if test_percent > 0 else ("train", "val"):
        for sub in ("images", "masks"):
            (out / split / sub).mkdir(parents=True, exist_ok=True)
    entries, skipped, older_keys = [], [], set()
    history: list[Tally] = []
    t0 = time.time()
    sources = list(iter_sources())
    if all_versions:
        from trainer.builders.package_history import history_sources

        older, history = history_sources(history_cache, min_side, log=log)
        sources += older
        older_keys = {src.key for src in older}
    if limit is not None:
        sources = sources[:limit]
    global _BUILD
    _BUILD = dict(sources=sources, out=out, size=size, val_size=val_size, frames=frames,
                  val_percent=val_percent, test_percent=test_percent, min_side=min_side)
    keys = [src.key for src in sources]
    _BUILD["bases"] = file_bases(keys)
    hashed = list(_each(_hash_one, len(sources), workers))
    groups = _BUILD["groups"] = split_groups(keys, [h for h, _, _ in hashed])
    _BUILD["held_groups"] = {groups[k] for k, (_, held, _) in zip(keys, hashed) if held}
    first: dict[str, str] = {}  # one file shipped by two bundles is one source: the first key's
    copies = _BUILD["copies"] = {}
    for k, (_, _, md5) in zip(keys, hashed):
        if md5 is not None and first.setdefault(md5, k) != k:
            copies[k] = first[md5]
    if copies:
        log(f"byte-identical copies: {len(copies)} sources skipped (each file is read under its first key)")
    joined = {g for k, g in groups.items() if k != g}
    log(f"near-duplicates: {sum(1 for g in groups.values() if g in joined)} sources in {len(joined)} groups, "
        f"each group split together")
    for i, (new, skip) in enumerate(_each(_build_one, len(sources), workers)):
        entries += new
        skipped += skip
        if (i + 1) % 25 == 0:
            log(f"{i + 1}/{len(sources)} sources, {len(entries)} pairs, {time.time() - t0:.0f}s")
    held = sum(1 for s in skipped if s["reason"] == HELD_OUT)
    log(f"held out: {held} of {len(sources)} sources excluded (reserved pictures or near-duplicates of them)")
    if history:
        older_held = sum(1 for s in skipped if s["reason"] == HELD_OUT and s["source"] in older_keys)
        log(f"of them from older versions: {older_held}")
    counts = {s: {m: sum(1 for e in entries if e["split"] == s and e["mask"] == m)
                  for m in ("person", "object", "random")} for s in ("train", "val", "test")}
    manifest = {
        "builder": "trainer.builders.package_portraits",
        "args": {"size": size, "val_size": val_size, "frames": frames, "val_percent": val_percent,
                 "min_side": min_side, "limit": limit, "test_percent": test_percent,
                 "all_versions": all_versions},
        "packages": package_versions(),
        "licences": licences(),
        # --all-versions: each older version read, by bundle, with the licence its wheel's METADATA gives
        **({"older_versions": {t.source: t.licences for t in history}} if all_versions else {}),
        "sources": len(sources),
        "held_out_excluded": held,
        "near_duplicate_groups": sorted(sorted(k for k, g in groups.items() if g == name) for name in joined),
        "sources_by_split": {s: len({e["source"] for e in entries if e["split"] == s})
                             for s in ("train", "val", "test")},
        "pairs_by_split_and_mask": counts,
        "entries": entries,
        "skipped": skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log(f"done: {len(entries)} pairs from {len(sources) - len(skipped)} sources "
        f"({counts}) in {time.time() - t0:.0f}s")
    return manifest


def main(argv: list[str] | None = None) -> None:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.builders.package_portraits",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (train/, val/, test/ with --test-percent, manifest.json)")
    p.add_argument("--size", type=int, default=256, help="short side of training images (default 256)")
    p.add_argument("--val-size", type=int, default=512,
                   help="short side of validation images, for native-resolution scoring (default 512)")
    p.add_argument("--frames", type=int, default=3, help="frames taken from an animated source (default 3)")
    p.add_argument("--val-percent", type=int, default=15, help="share of sources held out (default 15)")
    p.add_argument("--test-percent", type=int, default=0,
                   help="share of sources held out for the final report, after --val-percent (default 0)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes, where the system can fork them (the result does not depend on it)")
    p.add_argument("--min-side", type=int, default=256, help="skip sources smaller than this (default 256)")
    p.add_argument("--limit", type=int, default=None, help="only the first N sources (quick tests)")
    p.add_argument("--all-versions", action="store_true",
                   help="also pictures that only older published versions of the bundles hold (downloads them once)")
    p.add_argument("--history-cache", type=Path, default=None,
                   help="where --all-versions keeps the wheels "
                        "(default $PHNET_PACKAGE_HISTORY or ~/.cache/phnet/package-history)")
    a = p.parse_args(argv)
    for option, value, low in (("--size", a.size, 8), ("--val-size", a.val_size, 8), ("--frames", a.frames, 1),
                               ("--workers", a.workers, 1), ("--min-side", a.min_side, 1),
                               ("--val-percent", a.val_percent, 0), ("--test-percent", a.test_percent, 0)):
        if value < low:
            p.error(f"{option} must be at least {low}, got {value}")
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit must be a number of sources from 1 (leave it out for all of them), got {a.limit}")
    if a.val_percent + a.test_percent >= 100:
        p.error(f"--val-percent {a.val_percent} and --test-percent {a.test_percent} leave no source for training")
    try:
        build(a.out, size=a.size, val_size=a.val_size, frames=a.frames, val_percent=a.val_percent,
              min_side=a.min_side, limit=a.limit, test_percent=a.test_percent, workers=a.workers,
              all_versions=a.all_versions, history_cache=a.history_cache)
    except (OSError, ValueError) as e:  # a folder that cannot be replaced, a full disk, nothing to train on
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:
        print(staging.interrupted(a.out, "pool"), file=sys.stderr)
        raise SystemExit(interrupted_status()) from None


if __name__ == "__main__":
    main()
