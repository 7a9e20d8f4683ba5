"""Where weights come from: one resolver for PHNet weights, SAM checkpoints and every host's model list.

A *source* is what a user types or picks: nothing / ``"default (bundled)"`` (the weights shipped in
``phnet/assets/default``), a weights file, a model folder, a name found in one of the host's model
folders, one of the official checkpoints by name (``official-ffhqh512``, see :mod:`phnet.official`),
or a Hugging Face repo ``owner/name``, optionally ``owner/name@revision`` and, for a single
file in the repo, ``owner/name@revision:path/in/repo.pth``. :func:`resolve` says which one it is
without loading or downloading anything; :func:`download` brings a Hub source into the HF cache
(or finds it there when offline) with one set of error messages.

Offline mode is ``HF_HUB_OFFLINE`` (read by :func:`hub_offline` the way ``huggingface_hub`` reads it)
or ``local_files_only=True``. Caching, revisions and tokens are ``huggingface_hub``'s own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import quote_from_bytes

from .atomic import missing_target
from .errors import clause

__all__ = [
    "DEFAULT_LABEL",
    "BUNDLED_DIR",
    "SAFETENSORS_SUFFIXES",
    "PICKLE_SUFFIXES",
    "WEIGHT_SUFFIXES",
    "Source",
    "is_weights_file",
    "looks_like_repo_id",
    "parse_hub_ref",
    "hub_offline",
    "resolve",
    "download",
    "hub_errors",
    "NotInCache",
    "stamp",
    "transport_errors",
    "list_files",
    "unquoted",
    "list_weights",
    "OfficialWeights",
    "OFFICIAL",
    "OFFICIAL_NAMES",
    "BASE_URL_ENV",
]

DEFAULT_LABEL = "default (bundled)"
BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "default"

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")  # only ever opened with torch.load(weights_only=True)
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

# the Hub's rules: ASCII letters, digits, "-", "_" and "."; no "--" or ".."; no name ending in ".git"
_REPO_ID = re.compile(r"(?!.*(--|\.\.))(?!.*\.git$)[A-Za-z0-9]([\w.-]{0,94}\w)?/[A-Za-z0-9]([\w.-]{0,94}\w)?", re.ASCII)
_TRUE = ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------------------------------
# The official checkpoints (Efremyan et al.): what each name is; phnet.official downloads them.

BASE_URL = "https://n-ws-620xz-pd11.s3pd11.sbercloud.ru/b-ws-620xz-pd11-jux/harmonization/models"
BASE_URL_ENV = "PHNET_OFFICIAL_BASE_URL"

AUTHORS_TERMS = (
    "the authors' public licence with attribution and share-alike conditions (a CC BY-SA 4.0 variant: "
    "license/en_us.pdf in github.com/befozg/PHNet)"
)
FFHQ_TERMS = "trained on FFHQH, derived from FFHQ (CC BY-NC-SA 4.0): non-commercial use only, to be safe"


def _file_url(path: PurePath) -> str:
    """The ``file:`` URL of an absolute path, in the form urllib opens on every Python: a Windows share
    (``\\\\nas\\share\\x``, also a mapped drive once resolved) as ``file:////nas/share/x``, where ``as_uri()``'s
    ``file://nas/share/x`` was refused as "not on local host" before Python 3.14."""
    drive, text = path.drive, path.as_posix()
    if len(drive) == 2 and drive[1] == ":":  # C:/x → file:///C:/x
        return f"file:///{drive}" + quote_from_bytes(os.fsencode(text[2:]))
    return "file://" + quote_from_bytes(os.fsencode(text))  # /x → file:///x, //nas/share/x → file:////nas/share/x


@dataclass(frozen=True)
class OfficialWeights:
    """One checkpoint of the official Model Zoo."""

    name: str  # what users pick: official-ffhqh512
    filename: str  # the file on the authors' server: best_ffhqh512.pth
    readme_name: str  # what the authors' README renames it to: ffhqh512.pth
    preset: str  # the architecture (phnet.config.PRESETS)
    image_size: int  # the resolution it was trained at
    trained_on: str

    @property
    def url(self) -> str:
        """Where the checkpoint is downloaded from: the authors' release, or the mirror named by
        ``PHNET_OFFICIAL_BASE_URL`` (a URL, or a folder on this machine read as a ``file:`` URL)."""
        base = os.environ.get(BASE_URL_ENV, "").strip() or BASE_URL
        if "://" not in base and Path(base).expanduser().is_dir():  # a folder on this machine: its file:// URL
            return _file_url(Path(base).expanduser().resolve().joinpath(self.filename))
        return f"{base.rstrip('/')}/{self.filename}"

    @property
    def licence(self) -> str:
        """The terms these weights keep (their authors'; FFHQ's too for those trained on FFHQH)."""
        terms = AUTHORS_TERMS + ("; " + FFHQ_TERMS if self.trained_on == "FFHQH" else "")
        return f"official PHNet weights (Efremyan et al.), {terms}"

    @property
    def label(self) -> str:
        """One line for a picker's tooltip: what it is and on what terms."""
        use = "portraits" if self.trained_on == "FFHQH" else "any subject"
        return f"{self.name}: trained on {self.trained_on} at {self.image_size} px, {use}; {self.licence}"


OFFICIAL: dict[str, OfficialWeights] = {
    w.name: w
    for w in (
        OfficialWeights("official-iharmony512", "best_iharmony.pth", "iharmony512.pth", "iharmony", 512, "iHarmony4"),
        OfficialWeights("official-ffhqh256", "best_ffhqh256.pth", "ffhqh256.pth", "ffhqh", 256, "FFHQH"),
        OfficialWeights("official-ffhqh512", "best_ffhqh512.pth", "ffhqh512.pth", "ffhqh", 512, "FFHQH"),
        OfficialWeights("official-ffhqh1024", "best_ffhqh1024.pth", "ffhqh1024.pth", "ffhqh", 1024, "FFHQH"),
    )
}
OFFICIAL_NAMES = tuple(OFFICIAL)


def is_weights_file(path: str | os.PathLike[str]) -> bool:
    """True for a name ending in one of :data:`WEIGHT_SUFFIXES` (any case)."""
    return str(path).lower().endswith(WEIGHT_SUFFIXES)


def visible_files(folder: str | os.PathLike[str]) -> list[str]:
    """The files in ``folder`` and its subfolders, as sorted paths relative to it, hidden ones (``.git``, an
    interrupted download's ``.part``) and those in hidden folders left out: where a checkpoint is looked for."""
    found = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [sub for sub in subfolders if not sub.startswith(".")]
        found += [os.path.relpath(os.path.join(parent, name), folder) for name in names if not name.startswith(".")]
    return sorted(found)


def stamp(path: str | os.PathLike[str]) -> str:
    """A value that changes when the local weights at ``path`` change on disk, for a host that keeps models
    loaded: a weights file (with the ``config.json`` beside it, which may rule how it loads), or a model folder
    (any file in it or in its subfolders, where a SAM checkpoint is looked for; hidden ones such as ``.git`` left
    out). Each file counts by its path in the folder, size, time and inode, so a copy that keeps an older time
    (``cp -p``, ``rsync -a``) still counts as a change."""
    path = os.path.expanduser(str(path))
    name = os.path.basename(path).lower()
    folder = os.path.isdir(path)
    if folder:
        files = [os.path.join(path, name) for name in visible_files(path)]
    elif os.path.isfile(path) and is_weights_file(name):
        files = [path, os.path.join(os.path.dirname(path), "config.json")]
    else:
        files = [path]
    facts = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            if file == path:
                return f"{path}:missing"
            continue
        if not os.path.isdir(file):
            where = os.path.relpath(file, path) if folder else os.path.basename(file)
            facts.append((where, st.st_size, st.st_mtime_ns, st.st_ino))
    return f"{path}:{hashlib.sha1(repr(facts).encode()).hexdigest()[:16]}"


def looks_like_repo_id(text: str) -> bool:
    """``owner/name`` as the Hub spells repo ids (no path-like starts, no suffix of a weights file)."""
    return bool(_REPO_ID.fullmatch(text)) and not is_weights_file(text)


def parse_hub_ref(text: str) -> tuple[str, str | None, str | None]:
    """``owner/name[@revision][:filename]`` → (repo_id, revision or None, filename or None); the filename as
    the Hub spells paths (``sub\\file`` or ``/sub/file`` typed is ``sub/file``)."""
    head, _, filename = text.strip().partition(":")
    repo, _, revision = head.partition("@")
    return repo.strip(), (revision.strip() or None), (filename.strip().replace("\\", "/").strip("/") or None)


def unquoted(text: str) -> str:
    """``text`` stripped, without one pair of quotes round it unless the quoted text itself exists: Explorer's
    "Copy as path" quotes the path it copies."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" and not os.path.exists(os.path.expanduser(text)):
        return text[1:-1].strip()
    return text


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` set to a true value (1 / true / yes / on, any case)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Source:
    """A resolved source. ``kind``: "default", "file", "folder", "official" (``name``) or "hub"."""

    kind: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """How the source is named to a user: the bundled default's label, the official name, the Hub reference
        (``owner/name@revision:file``) or the path."""
        if self.kind == "default":
            return DEFAULT_LABEL
        if self.kind == "official":
            return self.official_name
        if self.kind == "hub":
            return self.hub_repo + (f"@{self.revision}" if self.revision else "") + (
                f":{self.filename}" if self.filename else ""
            )
        return str(self.path)

    @property
    def official_name(self) -> str:
        """``name`` of an "official" source (set for that kind)."""
        return _given(self.name, "name", self.kind)

    @property
    def hub_repo(self) -> str:
        """``repo_id`` of a "hub" source (set for that kind)."""
        return _given(self.repo_id, "repo_id", self.kind)

    @property
    def local_path(self) -> Path:
        """``path`` of a "default", "file" or "folder" source (set for those kinds)."""
        return _given(self.path, "path", self.kind)

    def arguments(self) -> tuple[str | None, dict[str, Any]]:
        """``(source, options)`` that load this source through ``load_model(source, **options)`` (or
        ``Harmonizer.from_pretrained``), read back by :func:`resolve` to this same source: None for the bundled
        default, the official name, the path, or the Hub repo id (``owner/name:filename`` for one file) with its
        ``revision`` in ``options``. A new dict each call, to which a caller adds its own options (``cache_dir``,
        ``local_files_only``, ``progress``)."""
        if self.kind == "default":
            return None, {}
        if self.kind == "official":
            return self.official_name, {}
        if self.kind == "hub":
            return self.hub_repo + (f":{self.filename}" if self.filename else ""), {"revision": self.revision}
        return str(self.path), {}


_Field = TypeVar("_Field")


def _given(value: _Field | None, field: str, kind: str) -> _Field:
    if value is None:
        raise ValueError(f"a {kind!r} source needs its {field}: give it when making the Source")
    return value


def _no_revision(revision: str | None, text: str, what: str) -> None:
    if revision:  # it would be ignored
        raise ValueError(f"revision {revision!r} is for a Hub repo, but {text!r} names {what}, which has no "
                         "revisions: drop the revision")


def resolve(
    source: str | os.PathLike[str] | None,
    *,
    revision: str | None = None,
    search_dirs: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "PHNet weights",
) -> Source:
    """Say what ``source`` is, without loading or downloading.

    Order: nothing / the default label → the bundled default; an existing path (``~`` expanded); a name
    found in ``search_dirs``; an official checkpoint's name; a Hub repo id (``revision=`` or the text's
    ``@revision``; two different ones, or a revision with a local path, are refused: one would be ignored).
    Anything else is a ``FileNotFoundError`` that names the source and the folders searched.
    """
    text = "" if source is None else unquoted(source) if isinstance(source, str) else str(source).strip()
    revision = revision.strip() or None if isinstance(revision, str) else revision  # "" is no revision: main
    if not text or text == DEFAULT_LABEL:
        _no_revision(revision, text or DEFAULT_LABEL, "the bundled default weights")
        return Source("default", path=BUNDLED_DIR)
    path = Path(os.path.expanduser(text))
    dirs = [Path(d) for d in search_dirs if d]
    for candidate in [path] + [d / text for d in dirs if not path.is_absolute()]:
        kind = "file" if candidate.is_file() else "folder" if candidate.is_dir() else None
        if kind and revision:  # a local copy wins over the Hub: the revision asked for would be ignored
            raise ValueError(
                f"revision {revision!r} is for a Hub repo, but {text!r} is the {kind} {candidate} on this machine, "
                f"which is used instead: drop the revision, or move that {kind} away to use the Hub repo"
            )
        if kind:
            return Source(kind, path=candidate)
        if candidate.is_symlink():
            raise FileNotFoundError(f"{what} {missing_target(candidate)}: connect it, or give another file or folder")
    if text in OFFICIAL:
        _no_revision(revision, text, "an official checkpoint, downloaded from its authors' release")
        return Source("official", name=text)
    if not isinstance(source, os.PathLike) and not text.startswith((".", "/", "~", "\\")):
        repo, rev, filename = parse_hub_ref(text)
        if looks_like_repo_id(repo):
            if rev and revision and rev != revision:
                raise ValueError(f"{text!r} names revision {rev!r}, and revision {revision!r} is asked for as well: "
                                 "give the revision once")
            return Source("hub", repo_id=repo, revision=rev or revision, filename=filename)
    where = f" (looked in {', '.join(map(str, dirs))})" if dirs else ""
    raise FileNotFoundError(
        f"{what} {text!r} not found{where}: give an existing file or folder, one of the official weights "
        f"({', '.join(OFFICIAL)}), or a Hub repo id 'owner/name' (optionally 'owner/name@revision', and "
        "':path/in/repo.safetensors' for one file of it)"
    )


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    filename: str | None = None,
    allow_patterns: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    what: str = "PHNet weights",
) -> Path:
    """A Hub repo (or one ``filename`` in it) in the local HF cache → its snapshot folder (or that file).

    Offline (``HF_HUB_OFFLINE`` or ``local_files_only``) only the cache is read. Every failure is a
    ``FileNotFoundError`` / ``PermissionError`` / ``ConnectionError`` saying what to do.
    """
    import huggingface_hub

    if filename is not None and ".." in filename.replace("\\", "/").split("/"):
        raise ValueError(f"{what} {repo_id}:{filename}: a file in a Hub repo is named by its path inside the repo, "
                         "without '..' (e.g. owner/name:sub/model.safetensors)")
    offline = bool(local_files_only) or hub_offline()
    hub_cache = os.fspath(cache_dir) if cache_dir is not None else None  # the Hub's functions declare str or Path
    with hub_errors(repo_id, revision, filename, cache_dir, local_files_only, what):
        if filename is not None:
            found = huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=hub_cache, local_files_only=offline, token=token
            )
        else:
            found = huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=hub_cache,
                local_files_only=offline,
                token=token,
                allow_patterns=list(allow_patterns) if allow_patterns else None,
            )
    return Path(found)


def hub_command(words: str) -> str:
    """``hf <words>`` as the installed huggingface_hub spells it: its ``hf`` command came in 0.34, before which
    ``huggingface-cli`` did the same (Forge pins 0.26)."""
    try:
        from huggingface_hub import __version__ as version
        major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    except (ImportError, ValueError):
        return f"hf {words}"
    if (major, minor) >= (0, 34):
        return f"hf {words}"
    return f"huggingface-cli {words.replace('auth login', 'login')}"


def transport_errors() -> tuple[type[BaseException], ...]:
    """The connection errors of the HTTP clients that huggingface_hub uses (httpx's are not ``OSError``s,
    as requests' are): those loaded in this process."""
    found = (getattr(sys.modules.get(module), name, None) for module, name in
             (("httpx", "TransportError"), ("httpx2", "TransportError"), ("requests", "RequestException")))
    return tuple(cls for cls in found if isinstance(cls, type))


class NotInCache(FileNotFoundError):
    """``what`` of a Hub repo (or of its file ``repo_file``) are in none of the Hugging Face ``caches`` looked in
    (None: the default one), and the Hub cannot be used (``why``). The fix names the first cache, where a download
    goes."""

    def __init__(self, what: str, repo_id: str, repo_file: str | None, revision: str | None, why: str,
                 caches: Sequence[str | os.PathLike[str] | None]):
        # (not .filename: an OSError's str() shows that one in place of the message)
        self.what, self.repo_id, self.repo_file, self.revision, self.why = what, repo_id, repo_file, revision, why
        self.caches = list(caches) or [None]
        item = f"{repo_id}:{repo_file}" if repo_file else repo_id
        names = [str(cache) if cache else "the default HF cache" for cache in self.caches]
        where = (f"not in the Hugging Face cache ({names[0]})" if len(names) == 1 else
                 f"in none of the Hugging Face caches looked in ({', '.join(names)})")
        first = self.caches[0]
        super().__init__(
            f"{what} {item!r} (revision {revision or 'main'}) are {where} and the Hub cannot be used ({why}). "
            f"Download them once with network access (`{hub_command('download ' + repo_id)}"
            f"{' ' + repo_file if repo_file else ''}{' --revision ' + revision if revision else ''}"
            f"{f' --cache-dir {first}' if first else ''}`), or give a local file or folder (there is no "
            f"{repo_id!r} in {os.getcwd()} either)")

    def __reduce__(self):  # rebuilt from its fields, not its message, where it is pickled or copied
        return NotInCache, (self.what, self.repo_id, self.repo_file, self.revision, self.why, self.caches)

    def looked_in(self, caches: Sequence[str | os.PathLike[str] | None]) -> NotInCache:
        """The same refusal, naming every cache of ``caches`` as looked in."""
        return NotInCache(self.what, self.repo_id, self.repo_file, self.revision, self.why, caches)


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, filename: str | None, cache_dir: str | os.PathLike[str] | None,
               local_files_only: bool, what: str) -> Iterator[None]:
    """One set of messages for every Hub failure: ``FileNotFoundError`` / ``PermissionError`` /
    ``ConnectionError``, each saying what to do."""
    from huggingface_hub import utils as errors  # these classes are there from 0.23 on (huggingface_hub.errors: 0.25)

    where = f"Hub repo {repo_id!r} (revision {revision or 'main'})"
    try:
        yield
    except errors.LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE") if hub_offline() else None
        why = (f"offline: HF_HUB_OFFLINE={offline}" if offline else
               "offline: local_files_only=True" if local_files_only else "it could not be reached: no connection?")
        raise NotInCache(what, repo_id, filename, revision, why, [cache_dir]) from None
    except errors.GatedRepoError:
        raise PermissionError(
            f"{where} is gated: accept its licence on https://huggingface.co/{repo_id} and log in "
            f"(`{hub_command('auth login')}`), or download the file yourself and give its path"
        ) from None
    except errors.RepositoryNotFoundError:
        raise FileNotFoundError(
            f"no {where} (or it is private: log in with `{hub_command('auth login')}` or pass a token), and no file "
            f"or folder {repo_id!r} in {os.getcwd()}"
        ) from None
    except errors.RevisionNotFoundError:
        raise FileNotFoundError(f"revision {revision!r} does not exist in the Hub repo {repo_id!r}") from None
    except errors.EntryNotFoundError:
        raise FileNotFoundError(f"{filename!r} is not a file of the {where}") from None
    except (OSError, errors.HfHubHTTPError) + transport_errors() as e:
        if isinstance(e, FileNotFoundError):
            raise
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            from huggingface_hub import constants

            # HF_HUB_CACHE (or its old name), where set, rules over HF_HOME: naming that would change nothing
            setting = next((n for n in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if os.environ.get(n)), "HF_HOME")
            cache = cache_dir or constants.HF_HUB_CACHE
            raise PermissionError(
                f"cannot write {what} from the {where} into the Hugging Face cache ({cache}): {e.strerror} "
                f"({e.filename}). Make it writable or free space, or give another cache ({setting}, cache_dir=)"
            ) from None
        raise ConnectionError(
            f"could not download {what} from the {where}: {clause(e)}. Check the connection, set HF_HUB_OFFLINE=1 to "
            "use the local cache only, or give a local file or folder"
        ) from None


def list_files(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    what: str = "weights",
) -> list[str]:
    """The files of a Hub repo: asked of the Hub, or offline (or with the Hub out of reach) those of its snapshot
    in the HF cache."""
    import huggingface_hub

    offline = bool(local_files_only) or hub_offline()
    with hub_errors(repo_id, revision, None, cache_dir, local_files_only, what):
        if not offline:
            try:
                return list(huggingface_hub.list_repo_files(repo_id, revision=revision, token=token))
            # (the client's errors are looked for now: the call may have loaded it)
            except (OSError,) + transport_errors() as e:  # no connection: the cache, as a download falls back to it
                try:
                    folder = _cached_snapshot(repo_id, revision, cache_dir)
                except Exception:
                    raise e from None
        else:
            folder = _cached_snapshot(repo_id, revision, cache_dir)
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def _cached_snapshot(repo_id: str, revision: str | None, cache_dir) -> Path:
    """The repo's snapshot folder in the HF cache, as far as it was downloaded: huggingface_hub 1.x and later
    refuse one that lacks files of the repo's listing, and a snapshot of the files PHNet fetched always does."""
    import huggingface_hub

    incomplete = getattr(getattr(huggingface_hub, "errors", None), "IncompleteSnapshotError", None)
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                                      local_files_only=True))
    except Exception as e:
        if incomplete is not None and isinstance(e, incomplete):
            return Path(e.snapshot_path)
        raise


def list_weights(folder: str | os.PathLike[str] | None, folder_marker: str | None = "config.json") -> list[str]:
    """Entries of a host's model folder a picker can offer: weights files, and sub-folders holding
    ``folder_marker`` (a saved PHNet model folder). Sorted; missing folder → []."""
    if not folder or not Path(folder).is_dir():
        return []
    names = []
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith("."):  # hidden, or a Mac's ._name metadata beside a file copied to another disk
            continue
        if p.is_file() and is_weights_file(p.name):
            names.append(p.name)
        elif p.is_dir() and folder_marker and (p / folder_marker).is_file():
            names.append(p.name)
    return names
