"""phnet.sources: one resolver for every kind of weights source (no loading, no network)."""
from __future__ import annotations

from pathlib import Path

import pytest

from phnet import sources
from tests.helpers.hub import _add_files


def test_default(monkeypatch):
    for given in (None, "", "  ", sources.DEFAULT_LABEL):
        found = sources.resolve(given)
        assert found.kind == "default" and found.path == sources.BUNDLED_DIR and found.label == "default (bundled)"


def test_local_file_folder_and_search_dirs(tmp_path, monkeypatch):
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "model").mkdir()
    assert sources.resolve(tmp_path / "w.safetensors").kind == "file"
    assert sources.resolve(str(tmp_path / "model")).kind == "folder"
    found = sources.resolve("w.safetensors", search_dirs=[None, tmp_path])
    assert found.kind == "file" and found.path == tmp_path / "w.safetensors"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sources.resolve("~/model").path == tmp_path / "model"


def test_local_folder_named_like_a_repo_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert sources.resolve("owner/name").kind == "folder"


@pytest.mark.parametrize(
    "text, repo, revision, filename",
    [
        ("owner/name", "owner/name", None, None),
        ("owner/name@v1", "owner/name", "v1", None),
        ("owner/name@v1:sub/sam.pth", "owner/name", "v1", "sub/sam.pth"),
        ("owner/name:sam.pth", "owner/name", None, "sam.pth"),
    ],
)
def test_hub_references(tmp_path, monkeypatch, text, repo, revision, filename):
    monkeypatch.chdir(tmp_path)
    found = sources.resolve(text)
    assert (found.kind, found.repo_id, found.revision, found.filename) == ("hub", repo, revision, filename)
    assert found.label == text
    assert sources.resolve("owner/name", revision="main").revision == "main"  # revision= when none in the text


@pytest.mark.parametrize("text, revision", [(None, None), ("official-ffhqh512", None), ("owner/name", None),
                                            ("owner/name@v1", None), ("owner/name:sub/w.pth", "v1"),
                                            ("w.safetensors", None), ("model", None)])
def test_a_resolved_source_gives_the_arguments_that_load_it_again(tmp_path, monkeypatch, text, revision):
    """A host that resolved a choice (its own folders, its own rules) hands the result to the loader without
    spelling each kind's arguments out itself."""
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "model").mkdir()
    found = sources.resolve(text, revision=revision, search_dirs=[tmp_path])
    source, options = found.arguments()
    assert sources.resolve(source, **options) == found
    assert options == ({"revision": found.revision} if found.kind == "hub" else {})
    options["cache_dir"] = tmp_path  # a caller's own options go into a dict of its own
    assert found.arguments()[1] == ({"revision": found.revision} if found.kind == "hub" else {})
    if found.kind in ("file", "folder"):
        assert source == str(tmp_path / text)  # found in a search folder: its full path


@pytest.mark.parametrize("text", ["no/such/place", "./owner/name", "/abs/missing.pth", "missing.safetensors", "a/b.pth",
                                  "runs/my--run", "runs/best.", "runs/-x",
                                  "modèles/phnet", "me/phnet.git"])  # no Hub repo id: a missing folder
def test_not_found(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError,
                       match=r"not found.*owner/name.*:path/in/repo.safetensors. for one file of it"):
        sources.resolve(text, search_dirs=[tmp_path])


@pytest.mark.parametrize("value, offline", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                            ("0", False), ("", False), ("false", False)])
def test_hub_offline(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert sources.hub_offline() is offline


def test_suffixes_and_listing(tmp_path):
    assert all(sources.is_weights_file("x" + s.upper()) for s in sources.WEIGHT_SUFFIXES)
    assert not sources.is_weights_file("config.json")
    for name in ("b.pth", "a.SAFETENSORS", "notes.txt", "config.json", "._b.pth"):  # ._b.pth: a Mac's metadata
        (tmp_path / name).write_text("")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assert sources.list_weights(tmp_path) == ["a.SAFETENSORS", "b.pth", "saved"]
    assert sources.list_weights(tmp_path, folder_marker=None) == ["a.SAFETENSORS", "b.pth"]
    assert sources.list_weights(tmp_path / "nope") == [] and sources.list_weights(None) == []


def test_a_connection_the_hub_client_lost_is_one_connection_error():
    import importlib

    for client in ("httpx2", "httpx", "requests"):  # whichever this huggingface_hub uses, loaded as it would be
        try:
            importlib.import_module(client)
        except ImportError:
            pass
    lost = sources.transport_errors()
    assert lost  # httpx's errors are not OSErrors: without this they ended the CLI in a traceback
    with pytest.raises(ConnectionError,
                       match="could not download weights from the Hub repo 'me/x'.*Check the connection"):
        with sources.hub_errors("me/x", None, None, None, False, "weights"):
            raise lost[0]("peer closed connection without sending complete message body")


def test_no_such_hub_repo_says_there_is_no_such_folder_here_either(tmp_path, monkeypatch):
    """runs/mine is a repo id in shape and a missing folder in intent: the Hub's answer alone blamed a login."""
    from huggingface_hub.utils import RepositoryNotFoundError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no Hub repo 'runs/mine' .*and no file or folder 'runs/mine' in "):
        with sources.hub_errors("runs/mine", None, None, None, False, "weights"):
            raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # what the Hub answers for it


def test_a_cache_miss_online_does_not_blame_an_offline_switch_that_is_off(monkeypatch):
    from huggingface_hub.utils import LocalEntryNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(FileNotFoundError) as caught:
        with sources.hub_errors("me/x", None, None, None, False, "weights"):
            raise LocalEntryNotFoundError("not cached, and the connection failed")
    assert "HF_HUB_OFFLINE" not in str(caught.value) and "could not be reached" in str(caught.value)


def test_a_revision_for_a_name_that_is_a_local_folder_here_is_refused_not_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    with pytest.raises(ValueError, match="revision 'v1' is for a Hub repo, but 'owner/name' is the folder"):
        sources.resolve("owner/name", revision="v1")
    assert sources.resolve("owner/other", revision="v1").revision == "v1"


def test_two_different_revisions_are_refused_not_one_ignored(tmp_path, monkeypatch):
    """owner/name@v1 with --revision v2 loaded v1 without a word."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="'owner/name@v1' names revision 'v1', and revision 'v2' is asked for"):
        sources.resolve("owner/name@v1", revision="v2")
    assert sources.resolve("owner/name@v1", revision="v1").revision == "v1"


def test_the_stamp_of_local_weights_follows_the_files_they_are_loaded_with(tmp_path):
    import os

    def touch(path, seconds):
        os.utime(path, ns=(seconds * 10**9, seconds * 10**9))

    pth, config = tmp_path / "trained.pth", tmp_path / "config.json"
    pth.write_bytes(b"weights")
    touch(pth, 1000)
    alone = sources.stamp(pth)
    config.write_text("{}")
    touch(config, 2000)
    assert sources.stamp(pth) != alone  # a .pth is loaded with the config.json beside it
    bare = tmp_path / "mine.safetensors"  # as is a .safetensors that stores no config
    bare.write_bytes(b"weights")
    alone = sources.stamp(bare)
    touch(config, 2500)
    assert sources.stamp(bare) != alone
    before = sources.stamp(tmp_path)
    touch(config, 3000)
    assert sources.stamp(tmp_path) != before and sources.stamp(tmp_path / "gone.pth").endswith(":missing")
    before, file_before = sources.stamp(tmp_path), sources.stamp(pth)
    pth.unlink()
    pth.write_bytes(b"other weights, copied with their older time")  # as cp -p or rsync -a leave them
    touch(pth, 1000)
    assert sources.stamp(tmp_path) != before and sources.stamp(pth) != file_before


def test_the_stamp_of_a_folder_follows_the_files_in_its_subfolders(tmp_path):
    """A SAM folder's checkpoint is looked for in its subfolders (a clone's checkpoints/): one replaced there kept
    the same stamp, and the old model ran on."""
    import os

    nested = tmp_path / "checkpoints" / "sam_vit_b.pth"
    nested.parent.mkdir()
    nested.write_bytes(b"weights")
    os.utime(nested, ns=(10**12, 10**12))
    before = sources.stamp(tmp_path)
    nested.unlink()
    nested.write_bytes(b"other weights, copied with their older time")
    os.utime(nested, ns=(10**12, 10**12))
    assert sources.stamp(tmp_path) != before
    before = sources.stamp(tmp_path)
    (tmp_path / ".git" / "objects").mkdir(parents=True)  # hidden files are not looked in, nor stamped
    (tmp_path / ".git" / "objects" / "pack").write_bytes(b"history")
    (tmp_path / ".hidden.pth").write_bytes(b"weights")
    assert sources.stamp(tmp_path) == before


@pytest.mark.parametrize("path, url", [
    ("/srv/mirror/best ffhqh512.pth", "file:///srv/mirror/best%20ffhqh512.pth"),
    ("C:\\mirror\\best_ffhqh512.pth", "file:///C:/mirror/best_ffhqh512.pth"),
    ("\\\\nas\\share\\mirror\\best_ffhqh512.pth", "file:////nas/share/mirror/best_ffhqh512.pth"),
])
def test_a_mirror_folder_s_url_is_one_urllib_opens(path, url):
    """A folder on a Windows share (or a mapped drive, which resolve() turns into one) gave file://nas/share/...,
    which urllib before Python 3.14 refused as "file not on local host": the download said the server could not
    be reached."""
    import urllib.parse
    import urllib.request
    import warnings
    from pathlib import PurePosixPath, PureWindowsPath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nturl2path

    pure = PurePosixPath(path) if path.startswith("/") else PureWindowsPath(path)
    assert sources._file_url(pure) == url
    request = urllib.request.Request(url)
    assert not request.host  # FileHandler opens a file of no host, on every Python, as the path it names
    to_path = urllib.parse.unquote if isinstance(pure, PurePosixPath) else nturl2path.url2pathname  # POSIX's, NT's
    assert to_path(request.selector) == path


def test_a_cache_that_cannot_be_written_is_named_not_blamed_on_the_connection(tmp_path):
    import errno

    with pytest.raises(PermissionError, match="cannot write weights .* into the Hugging Face cache .*Read-only"):
        with sources.hub_errors("me/x", None, None, tmp_path, False, "weights"):
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "models--me--x"))
    with pytest.raises(PermissionError, match="cannot write weights .* into the Hugging Face cache .*quota"):
        with sources.hub_errors("me/x", None, None, tmp_path, False, "weights"):  # was "check the connection"
            raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "models--me--x"))


def test_a_cache_set_by_hf_hub_cache_names_that_setting_as_the_fix(tmp_path, monkeypatch):
    """HF_HUB_CACHE rules over HF_HOME: the advice named HF_HOME, which changed nothing."""
    import errno

    for setting in ("HUGGINGFACE_HUB_CACHE", "HF_HUB_CACHE"):  # (the old name, and the one that rules over it)
        monkeypatch.setenv(setting, str(tmp_path))
        with pytest.raises(PermissionError, match=rf"give another cache \({setting}, cache_dir=\)"):
            with sources.hub_errors("me/x", None, None, None, False, "weights"):
                raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "models--me--x"))


@pytest.mark.parametrize("text", [None, "default (bundled)", "official-ffhqh512"])
def test_a_revision_for_the_bundled_default_or_an_official_name_is_refused_not_ignored(text):
    with pytest.raises(ValueError, match="revision 'v2' is for a Hub repo, .* which has no revisions: drop the"):
        sources.resolve(text, revision="v2")


def test_a_path_pasted_with_quotes_is_the_path(tmp_path):
    """Explorer's "Copy as path" quotes it; pasted into a loader's field it was "not found"."""
    (tmp_path / "x.safetensors").write_bytes(b"")
    for quoted in (f'"{tmp_path / "x.safetensors"}"', f"'{tmp_path / 'x.safetensors'}'", f' "{tmp_path}" '):
        assert sources.resolve(quoted).path in (tmp_path / "x.safetensors", tmp_path)
    (tmp_path / "model'").mkdir()  # a quote that belongs to the name stays
    assert sources.resolve(str(tmp_path / "model'")).path == tmp_path / "model'"


@pytest.mark.parametrize("version, download, login", [
    ("0.26.2", "huggingface-cli download me/x", "huggingface-cli login"),  # Forge's pin: no `hf` command yet
    ("0.34.0", "hf download me/x", "hf auth login"),
    ("1.2.3", "hf download me/x", "hf auth login"),
])
def test_the_hub_commands_named_are_those_of_the_installed_huggingface_hub(monkeypatch, version, download, login):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "__version__", version)
    assert sources.hub_command("download me/x") == download and sources.hub_command("auth login") == login


def test_a_hub_file_named_with_dot_dot_is_refused_naming_the_form_to_use():
    """huggingface_hub refused it too, but asked the repo's owner to rename a file that is not there."""
    with pytest.raises(ValueError, match=r"named by its path inside the repo, without '\.\.'"):
        sources.download("owner/name", filename="../../x.safetensors", local_files_only=True)


def test_the_stamp_of_a_file_that_is_no_weights_file_follows_that_file_alone(tmp_path):
    """Only weights are loaded with the config.json beside them: a host's other file is not reloaded for it."""
    other = tmp_path / "sam.onnx"
    other.write_bytes(b"model")
    before = sources.stamp(other)
    (tmp_path / "config.json").write_text("{}")
    assert sources.stamp(other) == before


@pytest.mark.parametrize("text, plain", [('""', ""), ("''", ""), ('"', '"'), ("'", "'"), ('"x"', "x")])
def test_only_a_pair_of_quotes_is_taken_off(text, plain):
    assert sources.unquoted(text) == plain


def test_an_official_checkpoint_s_facts_cannot_be_changed_in_place():
    """One process shares them: a caller changing one's file name would change every later download's URL."""
    import dataclasses

    weights = sources.OFFICIAL["official-ffhqh512"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        weights.filename = "other.pth"
    assert {weights: 1}[sources.OFFICIAL["official-ffhqh512"]] == 1


@pytest.mark.parametrize("filename", [None, "w.safetensors"])
def test_hf_hub_offline_set_after_import_keeps_a_download_to_the_cache(monkeypatch, tmp_path, filename):
    """huggingface_hub reads HF_HUB_OFFLINE once, as it is imported: the switch set later (a host's offline
    setting) reaches it only through local_files_only."""
    import huggingface_hub

    asked = []

    def record(*args, **options):
        asked.append(options["local_files_only"])
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", record)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", record)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sources.download("owner/name", filename=filename)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    sources.download("owner/name", filename=filename)
    sources.download("owner/name", filename=filename, local_files_only=True)
    assert asked == [True, False, True]


def test_a_source_gives_the_field_its_kind_needs_or_says_it_is_missing():
    assert sources.Source("official", name="official-ffhqh512").official_name == "official-ffhqh512"
    assert sources.Source("hub", repo_id="a/b").label == "a/b"
    with pytest.raises(ValueError, match="'hub' source needs its repo_id"):
        sources.Source("hub").label
    assert sources.Source("file", path=Path("w.pth")).local_path == Path("w.pth")
    for kind, field, read in (("official", "name", "official_name"), ("hub", "repo_id", "hub_repo"),
                              ("file", "path", "local_path"), ("folder", "path", "local_path")):
        with pytest.raises(ValueError, match=f"'{kind}' source needs its {field}:"):
            getattr(sources.Source(kind), read)


def test_a_hub_out_of_reach_lists_the_repo_from_the_cache_as_a_download_falls_back_to_it(offline_hub, monkeypatch):
    import huggingface_hub

    from phnet import sources

    _add_files(offline_hub, "owner/offi", {"ffhqh512.pth": b"cached"})
    monkeypatch.setattr(sources, "hub_offline", lambda: False)

    def unreachable(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", unreachable)
    assert sources.list_files("owner/offi", cache_dir=offline_hub) == ["ffhqh512.pth"]
    with pytest.raises(ConnectionError, match="connection refused.*HF_HUB_OFFLINE=1"):
        sources.list_files("owner/elsewhere", cache_dir=offline_hub)


def test_a_client_loaded_by_the_listing_itself_still_falls_back_to_the_cache(offline_hub, monkeypatch):
    """The HTTP client's errors are looked for once the call failed: a client the listing loads on its first use
    (httpx's errors are no OSErrors) counts as out of reach too."""
    import sys
    import types

    import huggingface_hub

    from phnet import sources

    _add_files(offline_hub, "owner/offi", {"ffhqh512.pth": b"cached"})
    monkeypatch.setattr(sources, "hub_offline", lambda: False)
    client = types.ModuleType("httpx2")

    class TransportError(Exception):
        pass

    client.TransportError = TransportError  # type: ignore[attr-defined]

    def loads_its_client_then_fails(*args, **kwargs):
        monkeypatch.setitem(sys.modules, "httpx2", client)
        raise TransportError("connection reset")

    monkeypatch.delitem(sys.modules, "httpx2", raising=False)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", loads_its_client_then_fails)
    assert sources.list_files("owner/offi", cache_dir=offline_hub) == ["ffhqh512.pth"]
