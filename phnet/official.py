"""The official PHNet checkpoints by name, downloaded on first use and kept as safetensors.

``official-iharmony512``, ``official-ffhqh256``, ``official-ffhqh512`` and ``official-ffhqh1024`` are
the four files of the authors' Model Zoo (``best_iharmony.pth`` … ``best_ffhqh1024.pth``). Nothing is
downloaded until a name is asked for. :func:`fetch` then looks for a copy in the given folders (our
converted ``<name>/`` folder, or the ``.pth`` placed there or in ``<name>/`` by hand under its download
or README name), and only when there is none downloads it:

- into ``<name>.pth.part`` beside the target, resumed with an HTTP range request after an interruption
  if the server's file is still the one it began (``If-Range``; else, or when the server ignores ranges or
  answers with another ``Content-Range`` than the rest of the file from the byte asked, restarted; a part the
  server says is already whole, HTTP 416 ``bytes */<its size>`` under its ETag, is kept as the download), its
  size checked against the server's and capped at :data:`MAX_BYTES`;
- under a lock file, so two processes asking at once download it once (a long wait names the file);
- then loaded strictly (every key and shape, no extra; no checksum is published) with ``torch.load(weights_only=True)``
  and written as ``<name>/config.json + model.safetensors`` with the authors' licence beside it. The
  downloaded ``.pth`` is removed; later loads read only the safetensors copy and never unpickle.

The download site is ``PHNET_OFFICIAL_BASE_URL`` when set (a mirror, or a test server), else the
authors'. Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only``) or with the site unreachable, the
error names the URL, the file and the folder to put it in. The library's own folder is
:func:`default_folder`: ``$PHNET_HOME/official``, else ``$XDG_CACHE_HOME/phnet/official``, else
``~/.cache/phnet/official``; host programs pass their own model folders instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import http.client
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .config import PHNetConfig
from .sources import BASE_URL_ENV, OFFICIAL, OfficialWeights, hub_offline
from .sources import OFFICIAL_NAMES as NAMES

__all__ = ["OfficialWeights", "OFFICIAL", "NAMES", "BASE_URL_ENV", "TIMEOUT_S", "default_folder", "find", "fetch"]

OFFLINE = "offline: HF_HUB_OFFLINE=1 or local_files_only"  # why nothing may be downloaded
TIMEOUT_S = 15.0  # per connection attempt and per read: a dead network fails in seconds, not minutes
CHUNK = 1 << 20
MIN_PROGRESS = 64 << 10  # bytes per TIMEOUT_S under which a download counts as stalled
MAX_BYTES = 1 << 30  # far above the largest official checkpoint (about 160 MB): a server sending more is wrong
LOCK_NOTICE_S = 20.0  # a lock waited for this long is named, with the file to delete if no download holds it
SOFT_LOCK_SUFFIX = ".marker"  # the marker file beside the lock file, where the disk has no file locks


def default_folder() -> Path:
    """Where the library keeps official weights (see the module docstring for the variables it reads)."""
    if os.environ.get("PHNET_HOME"):
        return Path(os.path.expanduser(os.environ["PHNET_HOME"])) / "official"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "phnet" / "official"


def _weights(name: str) -> OfficialWeights:
    try:
        return OFFICIAL[name]
    except KeyError:
        raise ValueError(f"unknown official PHNet weights {name!r}; choose one of {', '.join(NAMES)}") from None


def _folders(folders: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None) -> list[Path]:
    if folders is None:
        return [default_folder()]
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    found = [Path(os.path.expanduser(str(f))) for f in folders if f]
    return found or [default_folder()]


def find(name: str, folders: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None = None
         ) -> Path | None:
    """The converted copy of ``name`` (a model folder) in ``folders``, if there is one; nothing is changed. Its
    model.safetensors stores its config: a config.json beside it only tunes it, and may be deleted."""
    _weights(name)
    for folder in _folders(folders):
        converted = folder / name
        if (converted / "model.safetensors").is_file():
            return converted
    return None


Convert = Callable[[Path, Path, PHNetConfig], object]  # (the .pth, the folder to write, its config); result unused


def fetch(
    name: str,
    folders: Iterable[str | os.PathLike[str] | None] | str | os.PathLike[str] | None = None,
    *,
    convert: Convert,
    local_files_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Path:
    """The model folder of the official weights ``name``: found, converted from a ``.pth`` beside it, or
    downloaded into the first of ``folders`` (default: :func:`default_folder`) and converted.

    ``convert(checkpoint, folder, config)`` loads the ``.pth`` strictly and writes the folder
    (``phnet.weights.fetch_official`` passes its own). ``progress(done_bytes, total_bytes)`` follows a
    download (default: a tqdm bar on stderr); ``say`` gets the one line that starts it, with the licence
    (default: stderr).
    """
    weights = _weights(name)
    folders = _folders(folders)
    found = find(name, folders)
    if found is not None:
        return found
    target = folders[0]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"cannot create the folder {target} for the official PHNet weights {name} ({e}): "
                              f"make the folder above it writable or free space there{_elsewhere(target)}") from None
    offline = (local_files_only or hub_offline()) and not weights.url.startswith("file:")
    with _locked(weights, folders, offline=offline, say=say or _stderr):
        found = find(name, folders)  # another process may have finished while this one waited
        if found is not None:
            return found
        checkpoint = target / weights.filename
        downloaded = _marker(checkpoint)
        if not checkpoint.is_file():  # left by a kill before its .pth appeared: a .pth put here later is the user's
            downloaded.unlink(missing_ok=True)
        local = _local_checkpoint(weights, folders)
        if local is not None and not (local == checkpoint and downloaded.exists()):
            return _convert(weights, local, target / name, convert)
        if local is None:
            if offline:  # a mirror in a folder of this machine (file:) is no network: an air-gapped machine's way in
                raise FileNotFoundError(_missing(weights, target, OFFLINE, folders))
            _download(weights, checkpoint, target, progress, say or _stderr)
        try:  # a download, or one whose conversion a kill cut short: converted, then removed
            found = _convert(weights, checkpoint, target / name, convert)
        except ValueError as e:  # not the checkpoint: removed. Anything else (Ctrl-C) keeps it for the next try
            checkpoint.unlink(missing_ok=True)
            downloaded.unlink(missing_ok=True)
            raise ValueError(
                f"{weights.url} did not give the official PHNet checkpoint {weights.filename} ({e}); the file "
                f"was removed: try again later, or download it by hand into {target}"
            ) from None
        checkpoint.unlink(missing_ok=True)
        downloaded.unlink(missing_ok=True)
        return found


def _elsewhere(target: Path) -> str:
    """The other way out of a folder that cannot be written: PHNET_HOME moves only the library's own folder; one
    the caller gave (a host program's model folder) is the caller's to change, in its own words."""
    return ", or give another folder (PHNET_HOME, cache_dir=)" if target == default_folder() else ""


def _marker(checkpoint: Path) -> Path:
    """The file that says the ``.pth`` beside it is a download of ours to remove once converted, not the user's."""
    return checkpoint.with_name(f".{checkpoint.name}.downloaded")


@contextlib.contextmanager
def _locked(weights: OfficialWeights, folders: list[Path], offline: bool,
            say: Callable[[str], None]) -> Iterator[None]:
    """The lock on ``weights`` in the first folder, where they are downloaded and converted (it must be
    writable); offline with no copy anywhere, the message says where to put one instead. A lock still held after
    :data:`LOCK_NOTICE_S` is named through ``say``, then waited for."""
    from filelock import FileLock, SoftFileLock

    target = folders[0]
    path = str(target / f".{weights.name}.lock")
    try:
        # filelock 3 on Windows reads a lock file it may not create as one another process holds, and waits for
        # ever: a file made and removed first turns that into this message
        handle, probe = tempfile.mkstemp(dir=target, prefix=".phnet-write-test-")
        os.close(handle)
        os.unlink(probe)
        try:
            lock = _acquired(FileLock(path), weights, target, say)
        except NotImplementedError:
            # filelock 3 on a disk without file locks (some network and FUSE mounts) refuses where filelock 4
            # stands a marker file in; it has made the lock file first and leaves it, so a marker at that path
            # would be waited for without end: the marker is a file of its own
            lock = _acquired(SoftFileLock(path + SOFT_LOCK_SUFFIX), weights, target, say)
    except OSError as e:
        placed = _local_checkpoint(weights, folders)
        if offline and placed is None:
            raise FileNotFoundError(_missing(weights, target, OFFLINE, folders)) from None
        # the .pth by itself is read as it is (ComfyUI lists it too), where no folder here can be changed
        itself = f", or load {placed} itself (read without converting)" if placed is not None else ""
        raise PermissionError(
            f"cannot write into {target} ({e.strerror or e}), where the official PHNet weights {weights.name} are "
            f"downloaded and converted: make it writable{_elsewhere(target)}{itself}"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _acquired(lock: Any, weights: OfficialWeights, target: Path, say: Callable[[str], None]) -> Any:
    """``lock``, acquired: past :data:`LOCK_NOTICE_S` the wait is named through ``say``, then goes on."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=LOCK_NOTICE_S)
    except Timeout:
        # another process downloading it, or (where the disk has no file locks and a marker file stands in)
        # one killed earlier, whose marker nothing removes: the wait is not silent, and says the way out
        say(f"waiting for another download of the official PHNet weights {weights.name} into {target} to end; "
            f"if none is running (one was killed), delete {lock.lock_file}")
        lock.acquire()
    return lock


def _local_checkpoint(weights: OfficialWeights, folders: list[Path]) -> Path | None:
    """A ``.pth`` placed by hand: in a folder, or in the folder of its name there (``<name>/``)."""
    for folder in folders:
        for place in (folder, folder / weights.name):
            for filename in (weights.filename, weights.readme_name):
                if (place / filename).is_file():
                    return place / filename
    return None


def _convert(weights: OfficialWeights, checkpoint: Path, out_dir: Path, convert: Convert) -> Path:
    """The .pth → ``out_dir`` with config, safetensors and the licence, appearing whole."""
    config = dataclasses.replace(PHNetConfig.preset(weights.preset), image_size=weights.image_size, name=weights.name)
    staging = out_dir.with_name(f".{out_dir.name}.converting")
    try:
        convert(checkpoint, staging, config)
        (staging / "LICENSE-WEIGHTS.txt").write_text(licence_text(weights), encoding="utf-8")
        if not out_dir.exists():
            os.replace(staging, out_dir)  # the folder appears whole: a later find() never sees half a model
            return out_dir
        # the folder is there already (the .pth placed in it by hand, or what a user keeps beside it): the
        # files move in one by one, the weights last, as find() takes them for a finished copy. A config.json
        # of the user's stays: it tunes these weights (working size, threshold), checked as they load
        for name in ("LICENSE-WEIGHTS.txt", "config.json", "model.safetensors"):
            if name != "config.json" or not (out_dir / name).is_file():
                os.replace(staging / name, out_dir / name)
        return out_dir
    except OSError as e:  # writing the copy (a full disk): named by the folder, not the hidden staging one
        if not str(e.filename or "").startswith(str(staging)):
            raise
        fix = "free space there" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "make it writable"
        raise PermissionError(
            f"cannot write the official PHNet weights {weights.name} into {out_dir.parent} ({e.strerror or e}): "
            f"{fix}{_elsewhere(out_dir.parent)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def licence_text(weights: OfficialWeights) -> str:
    """The LICENSE-WEIGHTS.txt of a converted copy: its terms, then where it was downloaded from."""
    return f"{weights.name} ({weights.filename}): {weights.licence}.\nSource: {weights.url}\n"


def _missing(weights: OfficialWeights, target: Path, why: str, folders: list[Path] | None = None) -> str:
    """Why the weights cannot be had, and the fix: their .pth put into ``target``, on their terms (a download
    by hand is told them as the download here is). ``folders``: where they were looked for, named where there are
    several."""
    where = ("not on this machine" if folders is None or len(folders) < 2 else
             f"in none of the folders looked in ({', '.join(str(folder) for folder in folders)})")
    return (
        f"the official PHNet weights {weights.name} are {where} and cannot be downloaded ({why}). "
        f"Download {weights.url} and put {weights.filename} into {target} (it is converted to safetensors on "
        f"first use), or use the bundled default weights. The file keeps its terms: {weights.licence}"
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _tqdm_progress(name: str) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total or None, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                       disable=sys.stderr is None)  # (pythonw, a closed descriptor: the bar would write to None)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    def close() -> None:
        if bar is not None:
            bar.close()

    update.close = close  # type: ignore[attr-defined]
    return update


def _validator(headers) -> str | None:
    """What tells this version of the file from another: its strong ETag (a weak one, W/"...", cannot be used
    with If-Range), else its date."""
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")


def _received(read, weights: OfficialWeights, have: int, total: int, part: Path) -> bytes:
    """The next bytes of the download; a connection cut mid-file is a ConnectionError (the part stays, and the
    next try resumes it)."""
    try:
        return read(CHUNK)
    except (OSError, http.client.HTTPException) as e:
        raise ConnectionError(f"the download of {weights.url} broke off after {have:,} of {total or '?'} bytes ({e}); "
                              f"run again to resume it ({part} is kept)") from None


def _too_big(weights: OfficialWeights, part: Path, validator: Path, what: str) -> None:
    part.unlink(missing_ok=True)  # never resumed: it is not the checkpoint
    validator.unlink(missing_ok=True)
    raise ValueError(f"{weights.url} {what} the {MAX_BYTES >> 20:,} MB cap, so it is not the checkpoint "
                     f"{weights.filename}: check that URL, or set {BASE_URL_ENV} to a mirror that serves the file")


def _download(weights: OfficialWeights, checkpoint: Path, target: Path,
              progress: Callable[[int, int], None] | None, say: Callable[[str], None]) -> None:
    """``weights.url`` → ``checkpoint`` (:func:`_transfer`), with a progress bar of its own unless ``progress``
    is given: closed however the download ends, so an error's words start a line of their own."""
    bar = progress or _tqdm_progress(weights.filename)
    try:
        _transfer(weights, checkpoint, target, bar, say)
    finally:
        if progress is None:
            bar.close()  # type: ignore[attr-defined]


def _transfer(weights: OfficialWeights, checkpoint: Path, target: Path, progress: Callable[[int, int], None],
              say: Callable[[str], None]) -> None:
    """``weights.url`` → ``checkpoint``, through ``<checkpoint>.part``: a part left over is resumed only if
    the server's file is still the one it began (``If-Range`` with the validator kept beside it, its ETag
    or date); otherwise the server sends the whole file again, and two files are never spliced."""
    part = checkpoint.with_name(checkpoint.name + ".part")
    validator = part.with_name(part.name + ".validator")
    kept = _kept_validator(validator) if part.is_file() else None  # read once: If-Range carries this one
    have = part.stat().st_size if kept is not None else 0
    response = _request(weights, target, part, validator, have, kept)
    if response is None:  # the part was removed: the whole file is asked for
        return _transfer(weights, checkpoint, target, progress, say)
    if response is _WHOLE:  # a run stopped after the last byte, before the rename
        progress(have, have)
        return _finish(checkpoint, part, validator)
    with response:
        _refuse_a_page(response, weights, target)
        if _drop_a_changed_part(response, part, validator, have):
            return _transfer(weights, checkpoint, target, progress, say)
        say(f"downloading {weights.filename} for {weights.name} from {weights.url} into {target} "
            f"(licence: {weights.licence})")
        resumed, have, total = _expected(response, weights, part, validator, have)
        have, stopped = _copy_body(response, weights, target, part, resumed, have, total, progress)
    _check_body(weights, part, validator, have, total, stopped)
    _finish(checkpoint, part, validator)


def _finish(checkpoint: Path, part: Path, validator: Path) -> None:
    _marker(checkpoint).touch()  # before the .pth appears: one a kill left behind is still known as ours
    os.replace(part, checkpoint)
    validator.unlink(missing_ok=True)


def _kept_validator(validator: Path) -> str | None:
    """The validator kept beside a part, or None where there is none a request can carry (missing, unreadable, not
    text, or not one line: a damaged one): the part is then not resumed, and the whole file is asked for."""
    try:
        text = validator.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and not any(c in text for c in "\r\n\0") else None


_WHOLE = object()  # what _request gives for a part the server says is the whole file already


def _request(weights: OfficialWeights, target: Path, part: Path, validator: Path, have: int, kept: str | None):
    """The server's answer for ``weights.url``, asked from byte ``have`` of the part where one is kept (if the
    file is still the one its validator ``kept`` names). A range the file cannot satisfy (HTTP 416) gives
    :data:`_WHOLE` where the answer shows the part is that whole file (:func:`_already_whole`), else None: the part
    is removed, for the whole file to be asked for. Any other HTTP error, or a site out of reach, raises."""
    headers = {"Range": f"bytes={have}-", "If-Range": kept} if have and kept is not None else {}
    if "://" not in weights.url:
        raise ValueError(f"{BASE_URL_ENV}={os.environ.get(BASE_URL_ENV, '')!r} is neither a URL (https://..., "
                         "file:///...) nor a folder on this machine: set it to the mirror's folder URL")
    request = urllib.request.Request(weights.url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()  # the answer and its connection: the error raised below keeps this one as its context
        if e.code == 416 and have:
            if _already_whole(e.headers, have, kept):
                return _WHOLE
            part.unlink()
            validator.unlink()
            return None
        raise FileNotFoundError(_missing(weights, target, f"the server answered HTTP {e.code} {e.reason}")) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(_missing(weights, target, f"the server could not be reached: {reason}")) from None


def _refuse_a_page(response, weights: OfficialWeights, target: Path) -> None:
    """A web site's text answer (an error or login page sent with status 200) is not the checkpoint."""
    kind = response.headers.get("Content-Type", "")
    if kind.startswith("text/") and weights.url.startswith(("http:", "https:")):  # a file: mirror says text/plain
        raise ValueError(
            f"{weights.url} answered with a {kind.split(';')[0]} page, not the checkpoint: the link may have "
            f"moved. Download {weights.filename} by hand into {target}, or set {BASE_URL_ENV} to a mirror"
        )


def _drop_a_changed_part(response, part: Path, validator: Path, have: int) -> bool:
    """Whether the range answered is of another file than the part's (a server that honours Range but not
    If-Range, and whose file changed, or that names no version with it), or is not the rest of the file from byte
    ``have`` (:func:`_continues`): then the answer is closed and the part removed, never spliced."""
    if _resumes(response, have) and (_validator(response.headers) != _kept_validator(validator)
                                     or not _continues(response.headers, have)):
        response.close()
        part.unlink()
        validator.unlink()
        return True
    return False


def _resumes(response, have: int) -> bool:
    """Whether the answer continues the part: a 206 to the range asked from byte ``have``. A 206 where no range was
    asked (a server that answers every request so) carries the whole file, from its first byte."""
    return response.status == 206 and have > 0


def _already_whole(headers, have: int, kept: str | None) -> bool:
    """Whether a 416 says the part of ``have`` bytes is the whole file: its Content-Range gives that size
    (``bytes */<size>``, RFC 9110 14.4) and its ETag or date is the part's. A server honouring If-Range answers a
    changed file whole, but one that ignores it measured whatever file it now has, so without its validator, or
    with a size the part is not, the 416 says nothing about the part."""
    found = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", headers.get("Content-Range") or "", re.IGNORECASE)
    return found is not None and int(found[1]) == have and kept is not None and _validator(headers) == kept


def _continues(headers, have: int) -> bool:
    """Whether a range answer's Content-Range is the rest of the file from byte ``have``: it starts there, runs to
    the end of the size it gives (where it gives one: ``*`` is a size the server did not know), and its
    Content-Length, where given, agrees. A server or proxy answering from another byte, or a piece of the rest,
    would be spliced in wrong; and a 206 without one (a multipart/byteranges body, or a server breaking RFC 9110's
    rule that one range is answered with its Content-Range) says nothing of where its bytes go."""
    given = headers.get("Content-Range")
    if given is None:
        return False
    found = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", given, re.IGNORECASE)  # units ignore case
    if found is None:  # a garbled one says nothing to trust
        return False
    start, end, size = int(found[1]), int(found[2]), found[3]
    length = (headers.get("Content-Length") or "").strip()
    return (start == have and end >= start and (size == "*" or int(size) == end + 1)
            and (not length.isdigit() or int(length) == end - start + 1))


def _expected(response, weights: OfficialWeights, part: Path, validator: Path, have: int) -> tuple[bool, int, int]:
    """Whether the answer resumes the part, the bytes had before its body, and the size the whole file will have
    (0 where not announced). A whole file's validator is kept for a later try; a size over the cap is refused."""
    resumed = _resumes(response, have)
    if not resumed:
        have = 0  # the server sent the whole file
        same_file = _validator(response.headers)
        if same_file:  # what a later try asks to resume against
            validator.write_text(same_file, encoding="utf-8")
        else:  # nothing to tell its file from another one's by: a cut part is never resumed
            validator.unlink(missing_ok=True)
    length = (response.headers.get("Content-Length") or "").strip()
    total = have + int(length) if length.isdigit() else 0  # a garbled length is no length
    if total > MAX_BYTES:
        _too_big(weights, part, validator, f"announced {total:,} bytes, more than")
    return resumed, have, total


def _copy_body(response, weights: OfficialWeights, target: Path, part: Path, resumed: bool, have: int, total: int,
               progress: Callable[[int, int], None]) -> tuple[int, str | None]:
    """The answer's body → ``part`` (after its ``have`` bytes where ``resumed``), followed by ``progress``. →
    the bytes the part then holds, and why the copy stopped before the body ended: "too big" (it would pass
    :data:`MAX_BYTES`), "stalled" (under :data:`MIN_PROGRESS` in :data:`TIMEOUT_S`), or None. A cut connection
    is a ConnectionError and a failed write (a full disk) a PermissionError; the part stays for the next try."""
    read = getattr(response, "read1", response.read)  # what has arrived, not a whole chunk's wait
    since, got = time.monotonic(), 0
    try:
        with open(part, "ab" if resumed else "wb") as out:
            progress(have, total)
            while chunk := _received(read, weights, have, total, part):
                if have + len(chunk) > MAX_BYTES:  # a body without a length that does not end
                    return have, "too big"
                out.write(chunk)
                have += len(chunk)
                progress(have, total)
                got += len(chunk)
                if got >= MIN_PROGRESS:
                    since, got = time.monotonic(), 0
                elif time.monotonic() - since > TIMEOUT_S:  # bytes that trickle keep each read alive
                    return have, "stalled"
    except ConnectionError:
        raise
    except OSError as e:  # writing it: a full disk, a quota, a folder made read-only meanwhile
        raise PermissionError(
            f"cannot write {part.name} into {target} ({e.strerror or e}): free space there{_elsewhere(target)}; "
            "run again to resume the part that was written") from None
    return have, None


def _check_body(weights: OfficialWeights, part: Path, validator: Path, have: int, total: int,
                stopped: str | None) -> None:
    """Refuses a copy that stopped early (:func:`_copy_body`) or ended short of the announced size: a body over
    the cap removes the part, a stalled or short one keeps it to be resumed."""
    if stopped == "too big":
        _too_big(weights, part, validator, "sent more than")
    if stopped == "stalled":
        raise ConnectionError(
            f"the download of {weights.url} slowed to under {MIN_PROGRESS // 1024} KB in {TIMEOUT_S:g} s after "
            f"{have:,} of {total or '?'} bytes; run again to resume it ({part} is kept)")
    if total and have != total:
        raise ConnectionError(
            f"the download of {weights.url} ended after {have:,} of {total:,} bytes; run again to resume it "
            f"({part} is kept)"
        )
