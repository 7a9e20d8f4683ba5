"""Pictures from every published version of the allowed template bundles, not just the newest.

    python -m trainer.builders.package_history [--cache DIR] [--no-faces]
    python -m trainer.builders.package_portraits OUT --all-versions      # the same, as extra sources

Old versions of the five allowed ``comfyui-workflow-templates-media-*`` bundles hold pictures the
newest ones dropped. For each bundle:

1. *List*: the published wheels come from PyPI's JSON API. The file list of each wheel (name, CRC-32,
   size of every member) is read from the end of the wheel on PyPI with HTTP range requests (the zip
   central directory, tens of kB instead of the whole wheel) and cached.
2. *Choose*: a greedy set cover over image files told apart by (CRC-32, size): files that the
   installed (newest) version already ships count as covered; take the version with the most
   uncovered files (the newest on a tie) until none is left. Byte-identical files count once; a
   re-encoded picture counts as new here and is only recognised as a duplicate after the download.
3. *Download*: ``pip download --no-deps`` of each chosen version into the cache; a wheel already
   there is not downloaded again.
4. *Read*: images straight out of the wheel zips (nothing installed); a wheel whose METADATA names no MIT
   licence is left out, with a warning. A picture is *found* when it is
   usable (the builder's test on its first frame) and not byte-identical to an installed file. It is
   dropped when it is held out for evaluation (:mod:`trainer.builders.held_out`) or a near-duplicate
   (dHash within 6 bits) of a picture in the installed versions or of one already kept. ``package_portraits``
   gets the reserved pictures too (usable or not), to drop every near-duplicate of them with them.

The cache is ``~/.cache/phnet/package-history`` unless ``--cache`` or ``PHNET_PACKAGE_HISTORY`` says
otherwise: ``listings/`` (one JSON per wheel) and ``wheels/``. Results depend on what PyPI has
published: ``package_portraits`` reads old versions only with ``--all-versions``.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Callable

import numpy as np
from packaging.version import Version

from phnet.atomic import write_atomic_text
from phnet.console import interrupted_status, printable_anywhere
from trainer.builders import held_out
from trainer.builders.package_pictures import (
    IMAGE_SUFFIXES, MEDIA_PACKAGES, Source, frames_from_file, installed_folder, is_mit, licence_of, usable,
)
from trainer.builders.subject_masks import GRABCUT_SIDE, detect_face, resize_long

DEFAULT_CACHE = Path("~/.cache/phnet/package-history")
PYPI_JSON = "https://pypi.org/pypi/{dist}/json"
TAIL_BYTES = 256 * 1024  # one range request holds a wheel's whole central directory


def cache_dir(path: Path | str | None = None) -> Path:
    return Path(path or os.environ.get("PHNET_PACKAGE_HISTORY") or DEFAULT_CACHE).expanduser()


# ---------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wheel:
    dist: str
    version: str
    filename: str
    url: str
    size: int


def published_wheels(dist: str) -> list[Wheel]:
    """Every published wheel of ``dist``, newest version first (PyPI's JSON API)."""
    url = PYPI_JSON.format(dist=dist)
    with urllib.request.urlopen(url, timeout=60) as r:
        try:
            releases = json.load(r)["releases"]
        except (ValueError, KeyError):  # a proxy's or a captive portal's page, answered with 200
            raise OSError(f"PyPI's JSON API answered {url} with no list of releases (a proxy's page?)") from None
    # a mirror may give file addresses relative to the JSON's
    wheels = [Wheel(dist, v, f["filename"], urllib.parse.urljoin(url, f["url"]), f["size"])
              for v, files in releases.items() for f in files
              if f["filename"].endswith(".whl") and not f.get("yanked")]
    return sorted(wheels, key=lambda w: Version(w.version), reverse=True)


def known_wheels(dist: str, cache: Path, log: Callable[[str], None] = print) -> list[Wheel]:
    """:func:`published_wheels`, or with PyPI out of reach the versions whose listings the cache holds (an
    offline machine rebuilds from its cache), newest first; neither is an error naming both."""
    try:
        return published_wheels(dist)
    except OSError as e:  # urllib's URLError, a timeout
        prefix = dist.replace("-", "_") + "-"
        cached = sorted(p.name.removesuffix(".json") for p in (cache / "listings").glob(f"{prefix}*.whl.json"))
        if not cached:
            raise OSError(f"cannot reach PyPI to list the versions of {dist} ({e}), and {cache / 'listings'} holds "
                          "none of them: run once with network access") from None
        log(f"warning: cannot reach PyPI ({e}): the {len(cached)} versions of {dist} listed in the cache are read")
        wheels = [Wheel(dist, name.split("-")[1], name, "", 0) for name in cached]
        return sorted(wheels, key=lambda w: Version(w.version), reverse=True)


class _RemoteFile:
    """Just enough of a read-only file over HTTP range requests for :class:`zipfile.ZipFile`."""

    def __init__(self, url: str, size: int):
        self.url, self.size, self.pos = url, size, 0
        self.tail_start = max(0, size - TAIL_BYTES)
        self.tail = self._get(self.tail_start, size)

    def _get(self, start: int, end: int) -> bytes:
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            if r.status != 206 and (start, end) != (0, self.size):  # every offset would be off by ``start``
                raise OSError(f"{self.url} ignored the Range request (a proxy?): it answered HTTP {r.status}, not "
                              f"bytes {start}-{end - 1}; connect without that proxy, or put the wheel into the "
                              "cache's wheels/ folder")
            return r.read()

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if self.pos >= self.tail_start:
            data = self.tail[self.pos - self.tail_start:end - self.tail_start]
        else:
            data = self._get(self.pos, end)
        self.pos = end
        return data


def _members(zf: zipfile.ZipFile) -> dict[str, list[int]]:
    return {i.filename: [i.CRC, i.file_size] for i in zf.infolist() if not i.is_dir()}


def read_listing(wheel: Wheel) -> dict[str, list[int]]:
    """{member: [CRC-32, size]} of a wheel on PyPI, from its central directory only."""
    try:
        with zipfile.ZipFile(_RemoteFile(wheel.url, wheel.size)) as zf:
            return _members(zf)
    except zipfile.BadZipFile as e:  # a page, or a file other than the one PyPI lists
        raise OSError(f"{wheel.url} did not give the wheel PyPI lists ({e}): run again later, or put the wheel "
                      "into the cache's wheels/ folder") from None


def wheel_listing(wheel: Wheel, cache: Path) -> dict[str, list[int]]:
    """The wheel's file list: from the cache, the downloaded wheel, or PyPI (then cached)."""
    path = cache / "listings" / f"{wheel.filename}.json"
    if path.exists():
        return json.loads(path.read_text())
    local = cache / "wheels" / wheel.filename
    if local.exists():
        with open_wheel(local) as zf:
            listing = _members(zf)
    else:
        listing = read_listing(wheel)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_text(path, json.dumps(listing))  # the cache trusts any file it finds: never half of one
    return listing


# ---------------------------------------------------------------------------------------
# Choosing and downloading
# ---------------------------------------------------------------------------------------
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def image_ids(listing: dict[str, list[int]]) -> set[tuple[int, int]]:
    return {(crc, size) for name, (crc, size) in listing.items() if _is_image(name)}


def choose_versions(listings: dict[str, dict[str, list[int]]], have: set[tuple[int, int]]) -> list[str]:
    """Greedy set cover: versions (keys of ``listings``, newest first) that together hold every image
    file not in ``have``; each pick holds the most files not yet covered, the newest on a tie."""
    files = {v: image_ids(listing) for v, listing in listings.items()}
    left = set().union(*files.values()) - have
    chosen = []
    while left:
        best = max(files, key=lambda v: len(files[v] & left))  # max keeps the first: the newest
        chosen.append(best)
        left -= files[best]
    return chosen


def download(wheel: Wheel, cache: Path) -> Path:
    path = cache / "wheels" / wheel.filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:  # renamed in whole
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                "--disable-pip-version-check", "-q", "-d", tmp, f"{wheel.dist}=={wheel.version}"],
                               check=True)
            except subprocess.CalledProcessError as e:  # offline, a proxy, no such version: pip said why above
                raise OSError(f"pip download {wheel.dist}=={wheel.version} failed (exit status {e.returncode}): "
                              f"run once with network access, or put {wheel.filename} into {path.parent}") from None
            got = Path(tmp) / wheel.filename
            if not got.exists():
                raise OSError(f"pip download {wheel.dist}=={wheel.version} gave {os.listdir(tmp)}, not "
                              f"{wheel.filename}: download that file by hand into {path.parent}")
            os.replace(got, path)
    return path


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
def installed_files(import_name: str) -> dict[str, Path]:
    """{path inside the package: file} of an installed bundle's images; empty when not installed."""
    root = installed_folder(import_name)
    if root is None:
        return {}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def open_wheel(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:  # a web page saved under the wheel's name, a download cut short
        raise ValueError(f"{path} is not a wheel: delete it, and run again with network access or put the wheel "
                         "itself there") from None


def read_member(wheel_path: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel_path) as zf:
        return zf.read(member)


def wheel_licence(zf: zipfile.ZipFile) -> str:
    name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
    if name is None:
        raise ValueError(f"{zf.filename} has no .dist-info/METADATA (no wheel pip made): delete it, and run again "
                         "with network access or put the wheel itself there")
    return licence_of(HeaderParser().parsestr(zf.read(name).decode("utf-8", "replace")))


def first_frame(data: bytes, min_side: int) -> np.ndarray | None:
    """The first frame when the builder would use the picture, else None."""
    try:
        frames = frames_from_file(io.BytesIO(data), 1)
    except Exception:  # unreadable: the builder would skip it too
        return None
    return frames[0] if frames and usable(frames[0], min_side) else None


def has_face(rgb: np.ndarray) -> bool:
    return detect_face(resize_long(rgb, GRABCUT_SIDE)[0]) is not None


@dataclass
class Tally:
    source: str
    versions: list[str] = field(default_factory=list)
    licence: str = ""
    licences: dict[str, str] = field(default_factory=dict)  # each version read: its wheel's licence
    found: int = 0
    duplicates: int = 0
    held_out: int = 0
    kept: int = 0
    faces: int = 0
    today: int = 0              # usable pictures in the installed version
    today_faces: int = 0
    faces_counted: bool = False  # whether faces and today_faces were counted
    reserved: list[Picture] = field(default_factory=list)  # every reserved picture read, usable or not


@dataclass(frozen=True)
class Picture:
    key: str          # "<bundle>/v<version>/<path inside the package>"
    wheel: Path
    member: str

    def source(self) -> Source:
        data = functools.partial(read_member, self.wheel, self.member)
        return Source(self.key, lambda k: frames_from_file(io.BytesIO(data()), k), data)


class _Seen:
    """dHashes of the pictures so far, for near-duplicate tests."""

    def __init__(self):
        self.hashes = np.zeros(0, np.uint64)

    def add(self, h: int) -> None:
        self.hashes = np.append(self.hashes, np.uint64(h))

    def near(self, h: int) -> bool:
        return held_out.near(h, self.hashes)


def _today(files: dict[str, Path], tally: Tally, seen: _Seen, min_side: int, faces: bool) -> set[str]:
    """Record the installed pictures (dHashes of the usable and the reserved ones, usable count); their md5s."""
    md5s = set()
    for path in files.values():
        data = path.read_bytes()
        md5s.add(hashlib.md5(data).hexdigest())
        rgb = first_frame(data, min_side)
        try:
            held = held_out.is_held_out(data)
        except Exception:  # unreadable
            continue
        if rgb is None and not held:  # a flat placeholder's dHash is 0: it would make usable pictures its duplicates
            continue
        seen.add(held_out.dhash64(data))
        if rgb is not None and not held:
            tally.today += 1
            if faces:
                tally.today_faces += has_face(rgb)
    return md5s


def harvest_bundle(import_name: str, dist: str, cache: Path, seen: _Seen, min_side: int = 256,
                   faces: bool = True, log: Callable[[str], None] = print) -> tuple[list[Picture], Tally]:
    short = dist.replace("comfyui-workflow-templates-", "")
    tally = Tally(short, faces_counted=faces)
    files = installed_files(import_name)
    if not files:
        log(f"warning: {dist} not installed: every version counts as new")
    have = {(zlib.crc32(p.read_bytes()), p.stat().st_size) for p in files.values()}
    today_md5s = _today(files, tally, seen, min_side, faces)
    wheels = {w.version: w for w in known_wheels(dist, cache, log)}
    listings = {v: wheel_listing(w, cache) for v, w in wheels.items()}
    tally.versions = choose_versions(listings, have)
    log(f"{short}: {len(wheels)} versions published, reading {len(tally.versions)}: {', '.join(tally.versions)}")
    kept, done_md5s = [], set(today_md5s)
    prefix = import_name + "/"
    for version in tally.versions:
        path = download(wheels[version], cache)
        with open_wheel(path) as zf:
            licence = tally.licences[version] = wheel_licence(zf)
            if not is_mit(licence):
                log(f"warning: {dist} {version} is licensed {licence!r}, not MIT: its pictures are left out")
                continue
            for member in sorted(n for n in zf.namelist() if n.startswith(prefix) and _is_image(n)):
                data = zf.read(member)
                md5 = hashlib.md5(data).hexdigest()
                if md5 in done_md5s:
                    continue
                done_md5s.add(md5)
                key = f"{short}/v{version}/{member[len(prefix):]}"
                rgb = first_frame(data, min_side)
                try:
                    held = held_out.is_held_out(data)
                except Exception:  # unreadable: the builder would skip it too
                    held = False
                if held:
                    tally.reserved.append(Picture(key, path, member))
                if rgb is None:
                    continue
                tally.found += 1
                if held:
                    tally.held_out += 1
                    continue
                h = held_out.dhash64(data)
                if seen.near(h):
                    tally.duplicates += 1
                    continue
                seen.add(h)
                tally.kept += 1
                if faces:
                    tally.faces += has_face(rgb)
                kept.append(Picture(key, path, member))
    tally.licence = ", ".join(sorted(set(tally.licences.values()))) or "-"
    return kept, tally


def harvest(cache: Path | str | None = None, min_side: int = 256, faces: bool = True,
            log: Callable[[str], None] = print) -> tuple[list[Picture], list[Tally]]:
    """Pictures of old versions worth adding (all bundles), and the per-bundle counts."""
    cache = cache_dir(cache)
    seen, pictures, tallies = _Seen(), [], []
    for import_name, dist in MEDIA_PACKAGES:
        if import_name in held_out.FORBIDDEN_PACKAGES:
            raise RuntimeError(f"internal error: {import_name} is reserved for evaluation but listed in "
                               "MEDIA_PACKAGES")
        kept, tally = harvest_bundle(import_name, dist, cache, seen, min_side, faces, log)
        pictures += kept
        tallies.append(tally)
    return pictures, tallies


def history_sources(cache: Path | str | None = None, min_side: int = 256,
                    log: Callable[[str], None] = print) -> tuple[list[Source], list[Tally]]:
    """The harvest as extra sources for :mod:`trainer.builders.package_portraits`, and its per-bundle counts. The
    reserved pictures the old versions hold come too: the build drops them, and their near-duplicates with them."""
    pictures, tallies = harvest(cache, min_side, faces=True, log=log)
    log(format_table(tallies))
    return [p.source() for p in pictures + [r for t in tallies for r in t.reserved]], tallies


def format_table(tallies: list[Tally]) -> str:
    faces = all(t.faces_counted for t in tallies)
    head = ["source", "versions read", "licence", "pictures found", "duplicates", "held out", "kept"]
    head += ["with a face"] * faces
    counts = [[t.found, t.duplicates, t.held_out, t.kept] + [t.faces] * faces for t in tallies]
    rows: list[list[object]] = [[t.source, str(len(t.versions)), t.licence, *c] for t, c in zip(tallies, counts)]
    total: list[object] = ["total", str(sum(len(t.versions) for t in tallies)), ""]
    total += [sum(c[i] for c in counts) for i in range(len(head) - 3)]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---|" + "---:|" * (len(head) - 3)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows + [total]]
    today = sum(t.today for t in tallies)
    kept = sum(t.kept for t in tallies)
    summary = f"today (installed versions): {today} usable pictures"
    if faces:
        today_faces = sum(t.today_faces for t in tallies)
        summary += f", {today_faces} with a face"
    summary += f"; with all versions: {today + kept} ({_gain(kept, today)})"
    if faces:
        kept_faces = sum(t.faces for t in tallies)
        summary += f", {today_faces + kept_faces} with a face ({_gain(kept_faces, today_faces)})"
    return "\n".join(lines + ["", summary])


def _gain(extra: int, base: int) -> str:
    return f"+{100 * extra / base:.0f} %" if base else "new"


def main(argv: list[str] | None = None) -> None:
    printable_anywhere()
    p = argparse.ArgumentParser(prog="python -m trainer.builders.package_history",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=None,
                   help=f"listings and wheels (default $PHNET_PACKAGE_HISTORY or {DEFAULT_CACHE})")
    p.add_argument("--min-side", type=int, default=256, help="the builder's smallest usable side (default 256)")
    p.add_argument("--no-faces", action="store_true", help="skip the face count (faster)")
    a = p.parse_args(argv)
    if a.min_side < 1:
        p.error(f"--min-side must be at least 1, got {a.min_side}")
    try:
        _, tallies = harvest(a.cache, a.min_side, faces=not a.no_faces)
    except (OSError, ValueError) as e:  # PyPI out of reach with nothing cached, a failed download
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the cache holds whole files only
        print("error: interrupted; what was downloaded so far is kept in the cache: run it again to go on",
              file=sys.stderr)
        raise SystemExit(interrupted_status()) from None
    print(format_table(tallies))


if __name__ == "__main__":
    main()
