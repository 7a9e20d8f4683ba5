"""The official checkpoints by name: downloaded from a loopback site on first use, kept as safetensors.

The site is ``tests.helpers.file_server`` on 127.0.0.1; the checkpoints are official-layout ``.pth``
state_dicts of a tiny architecture, registered under the official names for the test.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from phnet import Harmonizer, PHNet, PHNetConfig, official, weights
from phnet.config import PRESETS
from tests.helpers.file_server import FileServer

NAME = "official-ffhqh512"
FILE = "best_ffhqh512.pth"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def tiny_official(monkeypatch, tiny_config):
    """``official-ffhqh512`` stands for a tiny official-layout checkpoint; returns its .pth bytes."""
    monkeypatch.setitem(PRESETS, "tiny-official", tiny_config)
    tiny = official.OfficialWeights(NAME, FILE, "ffhqh512.pth", "tiny-official", 64, "FFHQH")
    monkeypatch.setitem(official.OFFICIAL, NAME, tiny)
    torch.manual_seed(1)
    buffer = io.BytesIO()
    torch.save(PHNet(tiny_config).state_dict(), buffer)  # a plain state_dict, as the authors publish
    return buffer.getvalue()


@pytest.fixture()
def site(monkeypatch, tiny_official):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FileServer() as server:
        server.files[FILE] = tiny_official
        monkeypatch.setenv(official.BASE_URL_ENV, server.url)
        yield server


def _image_and_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.float32)
    mask[10:30, 15:40] = 1
    return image, mask


def test_names_and_licences_are_listed():
    assert official.NAMES == ("official-iharmony512", "official-ffhqh256", "official-ffhqh512", "official-ffhqh1024")
    assert official.OFFICIAL["official-ffhqh512"].url.endswith("/harmonization/models/best_ffhqh512.pth")
    assert "non-commercial" in official.OFFICIAL["official-ffhqh256"].licence
    assert "non-commercial" not in official.OFFICIAL["official-iharmony512"].licence
    assert "CC BY-SA 4.0" in official.OFFICIAL["official-iharmony512"].licence


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PHNET_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert official.default_folder() == tmp_path / "xdg" / "phnet" / "official"
    monkeypatch.setenv("PHNET_HOME", str(tmp_path / "home"))
    assert official.default_folder() == tmp_path / "home" / "official"


def test_download_converts_once_and_loads_from_the_copy_with_the_site_gone(site, tmp_path):
    progress, said = [], []
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: progress.append((d, t)), say=said.append)
    assert folder == tmp_path / NAME
    assert sorted(p.name for p in folder.iterdir()) == ["LICENSE-WEIGHTS.txt", "config.json", "model.safetensors"]
    assert "non-commercial" in (folder / "LICENSE-WEIGHTS.txt").read_text()
    assert not list(tmp_path.glob("*.pth*"))  # the pickle is gone: later loads never unpickle
    assert progress[-1] == (len(site.files[FILE]),) * 2 and len(said) == 1 and "licence" in said[0]
    site.close()  # the server is gone
    assert weights.fetch_official(NAME, tmp_path) == folder
    image, mask = _image_and_mask()
    assert Harmonizer.from_pretrained(NAME, cache_dir=tmp_path, device="cpu")(image, mask).shape == image.shape


def test_downloaded_and_hand_placed_copies_give_identical_output(site, tmp_path, tiny_official):
    downloaded = Harmonizer.from_pretrained(NAME, cache_dir=tmp_path / "a", device="cpu", dtype="fp32")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ffhqh512.pth").write_bytes(tiny_official)  # placed by hand under its README name
    site.close()
    by_hand = Harmonizer.from_pretrained(NAME, cache_dir=tmp_path / "b", device="cpu", dtype="fp32")
    assert (tmp_path / "b" / "ffhqh512.pth").is_file()  # the user's own file is kept
    plain = Harmonizer.from_pretrained(tmp_path / "b" / "ffhqh512.pth", config=by_hand.config, device="cpu",
                                       dtype="fp32")  # the .pth read directly, as before this feature
    image, mask = _image_and_mask()
    assert np.array_equal(downloaded(image, mask), by_hand(image, mask))
    assert np.array_equal(downloaded(image, mask), plain(image, mask))


def test_a_pth_placed_in_the_folder_of_its_name_is_converted_there_and_kept(site, tmp_path, tiny_official):
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / FILE).write_bytes(tiny_official)
    (tmp_path / NAME / "notes.txt").write_text("mine")
    site.close()
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert folder == tmp_path / NAME and official.find(NAME, tmp_path) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["LICENSE-WEIGHTS.txt", "config.json", "model.safetensors", FILE, "notes.txt"])
    assert not list(tmp_path.glob(".*converting"))


def test_a_download_into_a_folder_of_its_name_that_holds_other_files(site, tmp_path):
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "notes.txt").write_text("mine")
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert official.find(NAME, tmp_path) == folder and (folder / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".*converting")) and not list(tmp_path.glob("*.pth*"))


def test_a_cut_connection_resumes_on_the_next_try(site, tmp_path):
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    part = tmp_path / (FILE + ".part")
    assert 0 < part.stat().st_size < len(site.files[FILE])
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests[-1][1] == f"bytes={len(site.files[FILE]) // 2}-" and not part.exists()


def test_a_download_that_breaks_off_ends_its_progress_bar_before_the_error(site, tmp_path, capsys):
    """The bar was left open at 50 %: the error was written on its line, and the bar drawn again after it."""
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError) as caught:  # (held, as a host holds it while it prints the error)
        weights.fetch_official(NAME, tmp_path, say=lambda s: None)
    drawn = capsys.readouterr().err
    assert caught.value is not None
    assert drawn.endswith("\n") and "%" in drawn.splitlines()[-1]  # the bar's last state, its line ended


def test_a_full_disk_while_downloading_is_named_and_the_part_resumes(site, tmp_path, monkeypatch):
    """The full disk was called a broken connection ("run again to resume", which fails the same way), and the
    file's close, flushing what it still held, replaced even that with a bare OSError."""
    import builtins
    import errno

    room = len(site.files[FILE]) // 3

    class FullDisk(io.RawIOBase):
        def __init__(self, file):
            self.file = file

        def writable(self):
            return True

        def write(self, data):
            left = room - self.file.tell()
            if left <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(bytes(data[:left]))

        def close(self):
            self.file.close()
            super().close()

    def full_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".part"):
            return io.BufferedWriter(FullDisk(builtins.open(path, mode, buffering=0)))
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(official, "open", full_open, raising=False)
    with pytest.raises(PermissionError, match=rf"cannot write {FILE}.part into .* \(No space left on device\): free "
                                              r"space there; run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    written = room
    assert (tmp_path / (FILE + ".part")).stat().st_size == written
    room = len(site.files[FILE])  # space made
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests[-1][1] == f"bytes={written}-"


def test_a_download_that_trickles_stops_and_a_garbled_length_is_no_length(site, tmp_path, monkeypatch):
    """A byte every tenth of a second kept each read inside its timeout: the download went on for hours; a
    Content-Length of '12abc' stopped it with int()'s words."""
    import time

    monkeypatch.setattr(official, "TIMEOUT_S", 0.5)
    site.faults[FILE] = "trickle"
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"slowed to under 64 KB in 0.5 s .*run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert time.monotonic() - started < 10
    (tmp_path / (FILE + ".part")).unlink()
    site.faults[FILE] = "bad-length"
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME


@pytest.mark.parametrize("quirk", [None, "ignores-if-range"])
def test_a_file_changed_on_the_site_between_tries_is_downloaded_whole_not_spliced(site, tmp_path, tiny_config, quirk):
    site.quirks = {quirk} - {None}  # a server may answer the range whatever If-Range says: its ETag tells
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    torch.manual_seed(2)
    buffer = io.BytesIO()
    torch.save(PHNet(tiny_config).state_dict(), buffer)
    site.files[FILE] = buffer.getvalue()  # the authors replaced the file meanwhile
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert site.requests[1][1] is not None  # it asked to resume, and got the new file whole (at once, or next)
    converted = Harmonizer.from_pretrained(folder, device="cpu").model.state_dict()
    new = torch.load(io.BytesIO(site.files[FILE]), weights_only=True)
    assert all(torch.equal(converted[k], v) for k, v in new.items())
    assert not list(tmp_path.glob("*.part*"))


def test_a_weak_etag_is_not_resumed_against(site, tmp_path):
    site.quirks = {"weak-etag"}  # If-Range cannot use it: a server would send the whole file every time
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert [r for _, r in site.requests] == [None, None]


def test_a_range_answered_without_a_validator_is_downloaded_whole_not_spliced(site, tmp_path):
    site.quirks = {"no-etag-on-206", "ignores-if-range"}  # nothing tells the range's file from the part's
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert [r is not None for _, r in site.requests] == [False, True, False]
    assert not list(tmp_path.glob("*.part*"))


@pytest.mark.parametrize("quirk", ["range-from-earlier", "range-of-half"])
def test_a_range_answered_from_another_byte_or_short_of_the_end_is_downloaded_whole_not_spliced(site, tmp_path,
                                                                                                 quirk):
    """A 206 whose Content-Range did not start at the byte asked (a proxy's), or stopped short of the file's end,
    was appended to the part as it came: the file was spliced wrong, and its conversion failed in vague words."""
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    site.quirks = {quirk}
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert [r is not None for _, r in site.requests] == [False, True, False]
    assert not list(tmp_path.glob("*.part*"))


@pytest.mark.parametrize("headers, continues", [
    ({}, False),  # no Content-Range: a multipart/byteranges body, or bytes from nowhere said (RFC 9110 15.3.7)
    ({"Content-Range": "bytes 100-999/1000", "Content-Length": "900"}, True),
    ({"Content-Range": "bytes 100-999/*"}, True),  # the size not known to the server
    ({"Content-Range": "bytes 100-999/*", "Content-Length": "900"}, True),
    ({"Content-Range": "bytes 100-999/*", "Content-Length": "400"}, False),  # an unknown size, a length that disagrees
    ({"Content-Range": "bytes 93-999/*"}, False),  # an unknown size, from another byte
    ({"Content-Range": "bytes 100-99/1000"}, False),  # ends before it starts: invalid (RFC 9110 14.4)
    ({"Content-Range": "bytes 100-99/*"}, False),  # the same under an unknown size
    ({"Content-Range": "bytes 150-999/1000", "Content-Length": "850"}, False),  # from a later byte: a gap
    ({"Content-Range": "bytes 100-999/999"}, False),  # a size not past its last byte: invalid
    ({"Content-Range": "Bytes 100-999/1000"}, True),  # a range unit's name is case-insensitive (RFC 9110)
    ({"Content-Range": "bytes 100-100/101", "Content-Length": "1"}, True),  # one byte left: a range of one
    ({"Content-Range": "bytes 93-999/1000", "Content-Length": "907"}, False),  # from another byte
    ({"Content-Range": "bytes 100-499/1000", "Content-Length": "400"}, False),  # short of the end
    ({"Content-Range": "bytes 100-999/1000", "Content-Length": "400"}, False),  # its length disagrees
    ({"Content-Range": "bytes 100-999/2000"}, False),  # the size of another file
    ({"Content-Range": "bytes */1000"}, False),  # garbled for a 206
    ({"Content-Range": "items 100-999/1000"}, False),  # a unit not understood: never recombined (RFC 9110 14.4)
])
def test_a_range_answer_continues_the_part_only_from_the_byte_asked_to_the_end(headers, continues):
    assert official._continues(headers, 100) is continues


def test_a_range_answered_without_its_content_range_is_downloaded_whole_not_spliced(site, tmp_path):
    """A 206 without a Content-Range was appended to the part as it came: a multipart/byteranges body, or bytes
    the server did not say the place of."""
    site.faults[FILE] = "cut"
    with pytest.raises(ConnectionError, match="run again to resume"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    site.quirks = {"no-content-range"}
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert [r is not None for _, r in site.requests] == [False, True, False]
    assert not list(tmp_path.glob("*.part*"))


def _part(site, tmp_path, data: bytes, etag_of: bytes | None = None) -> None:
    """A part of ``data`` with the validator of ``etag_of`` (default: the served file's) kept beside it."""
    import hashlib

    (tmp_path / (FILE + ".part")).write_bytes(data)
    etag = hashlib.md5(site.files[FILE] if etag_of is None else etag_of).hexdigest()
    (tmp_path / (FILE + ".part.validator")).write_text(f'"{etag}"', encoding="utf-8")


def test_a_part_the_server_says_is_whole_is_kept_not_downloaded_again(site, tmp_path):
    """A run stopped after the last byte, before the rename, left a whole part: its range past the end is answered
    416 "bytes */<size>" under the part's ETag, and the part was removed and the whole file downloaded again."""
    data = site.files[FILE]
    _part(site, tmp_path, data)
    seen = []
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: seen.append((d, t)),
                                  say=lambda s: None) == tmp_path / NAME
    assert site.requests == [(FILE, f"bytes={len(data)}-")] and seen == [(len(data), len(data))]
    assert not list(tmp_path.glob("*.part*")) and not list(tmp_path.glob("*.pth"))
    converted = Harmonizer.from_pretrained(tmp_path / NAME, device="cpu").model.state_dict()
    assert all(torch.equal(converted[k], v) for k, v in torch.load(io.BytesIO(data), weights_only=True).items())


@pytest.mark.parametrize("case", ["longer than the file", "416 without size or ETag", "of another file's ETag",
                                  "of another file's ETag, If-Range ignored"])
def test_a_part_a_416_does_not_show_whole_is_downloaded_whole(site, tmp_path, case):
    """A 416 proves a part whole only with the part's size and ETag: else the part is removed and the file asked
    for from its start (a server that ignores If-Range refuses a range past the end of whatever file it has)."""
    data = site.files[FILE]
    if case == "longer than the file":
        _part(site, tmp_path, data + b"tail")
    elif case == "416 without size or ETag":
        site.quirks = {"bare-416"}
        _part(site, tmp_path, data)
    else:
        site.quirks = {"ignores-if-range"} if "ignored" in case else set()
        _part(site, tmp_path, data, etag_of=b"the file the part began")
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    asked = len(data) + 4 if case == "longer than the file" else len(data)
    if case == "of another file's ETag":  # the server itself sends the whole file for a changed If-Range
        assert site.requests == [(FILE, f"bytes={asked}-")]
    else:
        assert site.requests == [(FILE, f"bytes={asked}-"), (FILE, None)]
    assert not list(tmp_path.glob("*.part*"))
    converted = Harmonizer.from_pretrained(tmp_path / NAME, device="cpu").model.state_dict()
    assert all(torch.equal(converted[k], v) for k, v in torch.load(io.BytesIO(data), weights_only=True).items())


@pytest.mark.parametrize("headers, have, kept, whole", [
    ({"Content-Range": "bytes */1000", "ETag": '"a"'}, 1000, '"a"', True),
    ({"Content-Range": "Bytes */1000", "ETag": '"a"'}, 1000, '"a"', True),  # a unit's name is case-insensitive
    ({"Content-Range": "bytes */1000", "Last-Modified": "Mon, 07 Dec 2026"}, 1000, "Mon, 07 Dec 2026", True),
    ({"Content-Range": "bytes */1000", "ETag": '"a"'}, 500, '"a"', False),  # a size the part is not: short of it
    ({"Content-Range": "bytes */1000", "ETag": '"a"'}, 1004, '"a"', False),  # or past it
    ({"Content-Range": "bytes */1000x", "ETag": '"a"'}, 1000, '"a"', False),  # garbled
    ({"Content-Range": "bytes 0-999/1000", "ETag": '"a"'}, 1000, '"a"', False),  # not a refusal's form
    ({"Content-Range": "bytes */1000", "ETag": '"b"'}, 1000, '"a"', False),  # another file's
    ({"Content-Range": "bytes */1000"}, 1000, '"a"', False),  # no validator said
    ({"Content-Range": "bytes */1000"}, 1000, None, False),  # none said and none kept: nothing ties them
    ({}, 1000, '"a"', False),
])
def test_a_416_shows_a_part_whole_only_by_its_size_and_validator(headers, have, kept, whole):
    assert official._already_whole(headers, have, kept) is whole


def test_an_http_error_while_resuming_keeps_the_part_for_the_next_try(site, tmp_path):
    """Only a 416 removes a part: a file gone from the site, or a server error, says so and leaves the part."""
    data = site.files.pop(FILE)
    _part(site, tmp_path, data[:100], etag_of=data)
    with pytest.raises(FileNotFoundError, match="HTTP 404"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert site.requests == [(FILE, "bytes=100-")]
    assert (tmp_path / (FILE + ".part")).read_bytes() == data[:100]
    assert (tmp_path / (FILE + ".part.validator")).is_file()


def test_a_416_to_a_request_without_a_range_is_named_as_the_server_s_answer(tmp_path, monkeypatch):
    """A server that refuses a plain request with 416 is answering wrongly: its answer is named, as any other's."""
    import urllib.error
    import urllib.request

    def refuse(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    tiny = official.OfficialWeights(NAME, FILE, "ffhqh512.pth", "tiny-official", 64, "FFHQH")
    monkeypatch.setenv(official.BASE_URL_ENV, "http://127.0.0.1:9/")
    with pytest.raises(FileNotFoundError, match="HTTP 416"):
        official._request(tiny, tmp_path, tmp_path / "x.part", tmp_path / "x.part.validator", 0, None)


@pytest.mark.parametrize("left", [None, b"stale bytes"])
def test_a_whole_file_answered_with_206_is_downloaded_whole(site, tmp_path, left):
    """A server that answers every request with 206 (no range asked) ended the download in a bare
    FileNotFoundError of the part's validator; the body, from byte 0, would have been appended to a part left."""
    site.quirks = {"always-206"}
    if left is not None:
        (tmp_path / (FILE + ".part")).write_bytes(left)  # a part without its validator: not resumed
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests == [(FILE, None)]


def test_a_part_without_its_validator_is_not_resumed(site, tmp_path):
    (tmp_path / (FILE + ".part")).write_bytes(site.files[FILE][:100])  # left by a version that kept none
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests == [(FILE, None)]


@pytest.mark.parametrize("damaged", [b"\xff\xfe not text", b"two\nlines", b""])
def test_a_part_whose_validator_is_damaged_is_downloaded_whole(site, tmp_path, damaged):
    """A validator that was not one line of text ended the download in a UnicodeDecodeError's words (or urllib's
    'Invalid header value'), run after run."""
    (tmp_path / (FILE + ".part")).write_bytes(site.files[FILE][:100])
    (tmp_path / (FILE + ".part.validator")).write_bytes(damaged)
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests == [(FILE, None)]


def test_a_server_that_ignores_ranges_restarts_the_file(site, tmp_path):
    (tmp_path / (FILE + ".part")).write_bytes(b"stale bytes from another file")
    site.faults[FILE] = "no-range"
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME


@pytest.mark.parametrize("fault, words", [("endless", "sent more than"),
                                          ("huge", "announced 1,099,511,627,776 bytes, more than")])
def test_a_server_sending_more_than_a_checkpoint_is_refused_and_its_part_removed(site, tmp_path, monkeypatch,
                                                                                 fault, words):
    """A body that never ended, or a length of 1 TiB, was written into the part until the disk was full, and the
    part was resumed on the next run."""
    monkeypatch.setattr(official, "MAX_BYTES", 1 << 20, raising=False)
    assert len(site.files[FILE]) < 1 << 20
    site.faults[FILE] = fault

    def progress(done, total):
        assert done <= 1 << 20, "still writing past the cap"

    with pytest.raises(ValueError, match=rf"{words} the 1 MB cap, so it is not the checkpoint {FILE}: check that "
                                         rf"URL, or set {official.BASE_URL_ENV} to a mirror") as caught:
        weights.fetch_official(NAME, tmp_path, progress=progress, say=lambda s: None)
    assert site.url in str(caught.value)
    assert not list(tmp_path.glob("*.part*")) and official.find(NAME, tmp_path) is None


@pytest.mark.parametrize(
    "fault, error, words",
    [
        ("missing", FileNotFoundError, "HTTP 404"),
        ("short", ConnectionError, "ended after"),
        ("html", ValueError, "text/html page"),
        ("truncated", ValueError, "did not give the official PHNet checkpoint"),
    ],
)
def test_bad_answers_name_the_url_and_leave_no_model(site, tmp_path, fault, error, words):
    if fault == "missing":
        del site.files[FILE]
    elif fault == "truncated":  # a whole transfer of a broken file: the strict load is the integrity check
        site.files[FILE] = site.files[FILE][: len(site.files[FILE]) // 2]
    else:
        site.faults[FILE] = fault
    with pytest.raises(error, match=words) as caught:
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert site.url in str(caught.value)
    assert official.find(NAME, tmp_path) is None and not (tmp_path / FILE).exists()


@pytest.mark.parametrize("code", [404, 416])
def test_an_error_answer_is_closed_when_it_is_refused_or_a_part_dropped(site, tmp_path, monkeypatch, code):
    """An HTTP error is the server's answer too, with its connection: a refused download kept it open in the
    raised error's context, and a dropped part (a bare 416) left it to the garbage collector."""
    import urllib.error
    import urllib.request

    answers = []

    def answered(request, timeout=None):
        body = io.BytesIO(b"")
        answers.append(body)
        raise urllib.error.HTTPError(request.full_url, code, "no", {}, body)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib.request, "urlopen", answered)
    if code == 416:  # a part kept whose range the server cannot give: dropped, and the whole file asked for
        (tmp_path / f"{FILE}.part").write_bytes(b"x")
        (tmp_path / f"{FILE}.part.validator").write_text('"v1"', encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=f"HTTP {code}") as caught:
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert len(answers) == (2 if code == 416 else 1)
    assert all(body.closed for body in answers), "closed while the error is still held, not by the collector"
    assert caught.value


def test_offline_with_no_copy_names_the_url_file_and_folder_at_once(monkeypatch, tiny_official, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as caught:
        Harmonizer.from_pretrained(NAME, cache_dir=tmp_path)
    message = str(caught.value)
    assert official.OFFICIAL[NAME].url in message and FILE in message and str(tmp_path) in message
    assert message.endswith(f"The file keeps its terms: {official.OFFICIAL[NAME].licence}")  # as a download says
    assert time.monotonic() - start < 5


def test_offline_with_a_list_of_folders_names_each_one_looked_in_and_the_first_to_put_the_file(monkeypatch,
                                                                                                 tiny_official,
                                                                                                 tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    first, second = tmp_path / "first", tmp_path / "second"
    with pytest.raises(FileNotFoundError) as caught:
        weights.load_model(NAME, cache_dir=[first, None, second])
    message = str(caught.value)
    assert f"in none of the folders looked in ({first}, {second})" in message
    assert f"put {FILE} into {first} " in message and official.OFFICIAL[NAME].url in message
    with pytest.raises(FileNotFoundError, match="are not on this machine"):  # one folder: named once, in the fix
        weights.load_model(NAME, cache_dir=[first])


def test_a_folder_that_cannot_be_written_is_named_and_offline_says_where_to_put_the_file(monkeypatch, tiny_official,
                                                                                        tmp_path):
    import errno

    import filelock

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(filelock.FileLock, "acquire", read_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=f"put {FILE} into"):
        weights.fetch_official(NAME, tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(PermissionError, match=f"cannot write into {tmp_path} \\(Read-only file system\\)"):
        weights.fetch_official(NAME, tmp_path)
    # a .pth placed there by hand can be loaded itself (what a ComfyUI user can pick in the list)
    (tmp_path / FILE).write_bytes(tiny_official)
    with pytest.raises(PermissionError, match=f"or load {tmp_path / FILE} itself"):
        weights.fetch_official(NAME, tmp_path)


def test_a_mirror_in_a_local_folder_serves_as_a_site(monkeypatch, tiny_official, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / FILE).write_bytes(tiny_official)
    monkeypatch.setenv(official.BASE_URL_ENV, mirror.as_uri())
    folder = weights.fetch_official(NAME, tmp_path / "models", progress=lambda d, t: None, say=lambda s: None)
    assert official.find(NAME, tmp_path / "models") == folder
    monkeypatch.setenv(official.BASE_URL_ENV, str(mirror))  # the folder's path (urllib said "unknown url type")
    folder = weights.fetch_official(NAME, tmp_path / "by-path", progress=lambda d, t: None, say=lambda s: None)
    assert official.find(NAME, tmp_path / "by-path") == folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a folder is no network: an air-gapped machine's mirror
    folder = weights.fetch_official(NAME, tmp_path / "offline", progress=lambda d, t: None, say=lambda s: None)
    assert official.find(NAME, tmp_path / "offline") == folder
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv(official.BASE_URL_ENV, str(tmp_path / "no-such-mirror"))
    with pytest.raises(ValueError, match="neither a URL .* nor a folder on this machine"):
        weights.fetch_official(NAME, tmp_path / "other", progress=lambda d, t: None, say=lambda s: None)
    placed = tmp_path / "by-hand"  # a setting for downloads does not stand in the way of a file placed by hand
    placed.mkdir()
    (placed / FILE).write_bytes(tiny_official)
    assert official.find(NAME, placed) is None
    assert weights.fetch_official(NAME, placed, progress=lambda d, t: None, say=lambda s: None) == placed / NAME


def test_an_unreachable_site_fails_in_seconds(monkeypatch, tiny_official, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FileServer() as server:
        url = server.url
    monkeypatch.setenv(official.BASE_URL_ENV, url)  # nothing listens there any more
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="could not be reached"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert time.monotonic() - start < 5


def test_two_processes_download_the_same_file_once(site, tmp_path, tiny_config):
    site.faults[FILE] = "slow"
    script = (
        "import sys, torch; from phnet import official, weights, PHNetConfig; from phnet.config import PRESETS\n"
        f"PRESETS['tiny-official'] = PHNetConfig.from_json({tiny_config.to_json()!r})\n"
        f"official.OFFICIAL[{NAME!r}] = official.OfficialWeights({NAME!r}, {FILE!r}, 'x.pth', 'tiny-official', 64, "
        "'FFHQH')\n"
        f"print(weights.fetch_official({NAME!r}, sys.argv[1], progress=lambda d, t: None, say=lambda s: None))\n"
    )
    env = {**os.environ, official.BASE_URL_ENV: site.url, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert {out.strip() for out, _ in results} == {str(tmp_path / NAME)}
    assert [path for path, _ in site.requests] == [FILE]  # one download between them


def _fetch_in_a_thread(tmp_path, said):
    """fetch_official run beside the test: → the thread and a dict that gets its result or error."""
    out = {}

    def run():
        try:
            out["folder"] = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=said.append)
        except Exception as e:
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _wait_for(condition, seconds=30.0) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)


def test_an_empty_lock_file_left_by_a_killed_download_is_no_obstacle(site, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "FileLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
                               str(tmp_path / f".{NAME}.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # as a kill -9 or a closed window leaves it
    holder.wait()
    holder.stdout.close()
    assert (tmp_path / f".{NAME}.lock").exists()
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME


def test_a_lock_held_long_is_named_and_waited_for(site, tmp_path, monkeypatch):
    from filelock import FileLock

    monkeypatch.setattr(official, "LOCK_NOTICE_S", 0.2)
    held, done = threading.Event(), threading.Event()

    def another_download():  # here in a thread of its own
        with FileLock(str(tmp_path / f".{NAME}.lock")):
            held.set()
            done.wait(60)

    threading.Thread(target=another_download, daemon=True).start()
    assert held.wait(30)
    said = []
    thread, out = _fetch_in_a_thread(tmp_path, said)
    _wait_for(lambda: said)
    assert said and said[0].startswith(f"waiting for another download of the official PHNet weights {NAME}")
    assert said[0].endswith(f"if none is running (one was killed), delete {tmp_path / f'.{NAME}.lock'}")
    assert thread.is_alive() and site.requests == []
    done.set()
    thread.join(60)
    assert out == {"folder": tmp_path / NAME}


def test_a_marker_left_where_the_disk_has_no_file_locks_names_the_file_to_delete(site, tmp_path, monkeypatch):
    """There a marker file stands in for the lock, and one a killed download left is waited for without end: the
    wait said nothing."""
    import filelock

    monkeypatch.setattr(official, "LOCK_NOTICE_S", 0.2)
    monkeypatch.setattr(filelock, "FileLock", filelock.SoftFileLock)
    (tmp_path / f".{NAME}.lock").write_bytes(b"")
    said = []
    thread, out = _fetch_in_a_thread(tmp_path, said)
    _wait_for(lambda: said)
    assert said and said[0].endswith(f"delete {tmp_path / f'.{NAME}.lock'}")
    (tmp_path / f".{NAME}.lock").unlink()  # as the message says
    thread.join(60)
    assert out == {"folder": tmp_path / NAME}


def _filelock_3_without_file_locks(monkeypatch):
    """filelock 3's FileLock on a disk without file locks: it opens (makes) the lock file, flock fails with ENOSYS,
    and it raises NotImplementedError ("use SoftFileLock instead"), leaving the file."""
    import filelock

    class NoFlock(filelock.SoftFileLock):
        def acquire(self, *args, **kwargs):
            Path(self.lock_file).touch()
            raise NotImplementedError("FileSystem does not appear to support flock; use SoftFileLock instead")

    monkeypatch.setattr(filelock, "FileLock", NoFlock)


def test_a_disk_filelock_3_finds_without_file_locks_gets_the_marker_file_instead(site, tmp_path, monkeypatch):
    """filelock 3 there raises NotImplementedError, which escaped the download bare."""
    monkeypatch.setattr(official, "LOCK_NOTICE_S", 0.2)
    _filelock_3_without_file_locks(monkeypatch)
    marker = tmp_path / f".{NAME}.lock.marker"
    marker.write_bytes(b"")  # a killed download's marker: the fallback names it too
    said = []
    thread, out = _fetch_in_a_thread(tmp_path, said)
    _wait_for(lambda: said or out)
    assert "error" not in out and said and said[0].endswith(f"delete {marker}")
    marker.unlink()
    thread.join(60)
    assert out == {"folder": tmp_path / NAME}


def test_the_lock_file_filelock_3_leaves_where_it_finds_no_file_locks_is_no_marker(site, tmp_path, monkeypatch):
    """The marker stood at the lock file's own path, which filelock 3 had just made: every download there waited
    for it without end, naming it as another download's."""
    monkeypatch.setattr(official, "LOCK_NOTICE_S", 0.2)
    _filelock_3_without_file_locks(monkeypatch)
    said = []
    thread, out = _fetch_in_a_thread(tmp_path, said)
    thread.join(60)
    assert out == {"folder": tmp_path / NAME} and not any(s.startswith("waiting") for s in said)
    assert not (tmp_path / f".{NAME}.lock.marker").exists()  # removed with the lock


def test_the_resolver_knows_the_names_and_a_local_file_wins(tmp_path):
    from phnet import sources

    assert sources.resolve(NAME).kind == "official" and sources.resolve(NAME).label == NAME
    (tmp_path / NAME).mkdir()
    assert sources.resolve(NAME, search_dirs=[tmp_path]).kind == "folder"
    with pytest.raises(FileNotFoundError, match="official-ffhqh512"):
        sources.resolve("no-such-weights")


def test_the_converted_copy_keeps_the_official_mapping(site, tmp_path):
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    config = PHNetConfig.load(folder / "config.json")
    assert config.output == "image" and config.correction_threshold == 0 and config.name == NAME


def test_cli_downloads_by_name_then_runs_without_the_site_and_offline_names_the_url(site, tmp_path, monkeypatch,
                                                                                 tiny_official, capsys):
    from PIL import Image

    from phnet import cli

    monkeypatch.setenv("PHNET_HOME", str(tmp_path / "home"))
    image, mask = _image_and_mask()
    Image.fromarray(image).save(tmp_path / "comp.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")

    def run(*extra: str) -> int:
        return cli.main(["harmonize", str(tmp_path / "comp.png"), str(tmp_path / "mask.png"), "--device", "cpu",
                         "--dtype", "fp32", *extra])

    assert run("-o", str(tmp_path / "downloaded.png"), "--weights", NAME) == 0
    assert "licence" in capsys.readouterr().err
    (tmp_path / "ffhqh512.pth").write_bytes(tiny_official)
    config = str(tmp_path / "home" / "official" / NAME / "config.json")
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text(Path(config).read_text())
    (local / "ffhqh512.pth").write_bytes(tiny_official)  # the same .pth, given by hand as a model folder
    assert run("-o", str(tmp_path / "local.png"), "--weights", str(local)) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "downloaded.png")),
                          np.asarray(Image.open(tmp_path / "local.png")))

    site.close()
    assert run("-o", str(tmp_path / "again.png"), "--weights", NAME) == 0
    monkeypatch.setenv("PHNET_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run("-o", str(tmp_path / "offline.png"), "--weights", NAME) == 2
    assert official.OFFICIAL[NAME].url in capsys.readouterr().err


def test_a_download_whose_conversion_was_killed_is_converted_and_removed_next_time(tiny_official, tmp_path,
                                                                                 monkeypatch):
    """The downloaded .pth stayed for good beside the converted copy (a second choice in the pickers)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no site: the leftover alone must do
    (tmp_path / FILE).write_bytes(tiny_official)
    (tmp_path / f".{FILE}.downloaded").touch()  # what the download leaves before its conversion
    folder = weights.fetch_official(NAME, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{NAME}.lock", NAME]
    assert (folder / "model.safetensors").is_file()


def test_a_conversion_stopped_by_ctrl_c_keeps_the_download_for_the_next_try(site, tmp_path):
    """Any error in the conversion removed the .pth: a Ctrl-C in its second threw 160 MB away."""
    from phnet import official

    def interrupted(pth, folder, config):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        official.fetch(NAME, [tmp_path], convert=interrupted, progress=lambda d, t: None, say=lambda s: None)
    assert (tmp_path / FILE).is_file() and (tmp_path / f".{FILE}.downloaded").exists()
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert (folder / "model.safetensors").is_file() and not (tmp_path / FILE).exists()


def test_a_download_killed_as_it_is_renamed_is_still_known_as_ours(site, tmp_path, monkeypatch):
    """The marker was made after the .pth appeared: a kill between left a .pth taken for one put there by hand,
    converted and kept for good beside its copy."""
    from phnet import official

    rename = os.replace

    def killed_after_the_rename(src, dst):
        rename(src, dst)
        if str(src).endswith(".part"):
            raise KeyboardInterrupt

    quiet = {"progress": lambda d, t: None, "say": lambda s: None}
    with monkeypatch.context() as m:
        m.setattr(official.os, "replace", killed_after_the_rename)
        with pytest.raises(KeyboardInterrupt):
            weights.fetch_official(NAME, tmp_path, **quiet)
    assert (tmp_path / FILE).is_file()
    site.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the leftover alone must do
    folder = weights.fetch_official(NAME, tmp_path, **quiet)
    assert (folder / "model.safetensors").is_file()
    assert not (tmp_path / FILE).exists() and not (tmp_path / f".{FILE}.downloaded").exists()


def test_a_marker_without_its_download_makes_no_pth_put_there_later_ours(tiny_official, tmp_path, monkeypatch):
    """A kill between the marker and the rename: the .pth the user puts there by hand is theirs to keep."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / f".{FILE}.downloaded").touch()
    (tmp_path / f"{FILE}.part").write_bytes(tiny_official)
    with pytest.raises(FileNotFoundError, match=f"put {FILE} into"):
        weights.fetch_official(NAME, tmp_path)
    (tmp_path / FILE).write_bytes(tiny_official)
    folder = weights.fetch_official(NAME, tmp_path)
    assert (folder / "model.safetensors").is_file() and (tmp_path / FILE).is_file()


def test_a_folder_that_cannot_be_written_is_named_before_the_lock_is_waited_for(monkeypatch, tmp_path):
    """filelock 3 on Windows takes a lock file it may not create for one another process holds, and waits for
    ever: the folder is tried first."""
    import filelock

    waited = []
    monkeypatch.setattr(filelock.FileLock, "acquire", lambda self, *a, **k: waited.append(1))
    monkeypatch.setattr(official.tempfile, "mkstemp",
                        lambda **kw: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(PermissionError, match=f"cannot write into {tmp_path}"):
        weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert waited == []


def test_phnet_home_is_named_only_for_the_library_s_own_folder(monkeypatch, tmp_path):
    """ComfyUI and the WebUI give their model folders, where PHNET_HOME changes nothing and cache_dir= cannot be
    typed: their users were told to set them; the host words its own way out."""
    monkeypatch.setattr(official.tempfile, "mkstemp",
                        lambda **kw: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("PHNET_HOME", str(tmp_path / "home"))
    with pytest.raises(PermissionError) as given:
        weights.fetch_official(NAME, tmp_path / "models", progress=lambda d, t: None, say=lambda s: None)
    assert str(given.value).endswith(f"cannot write into {tmp_path / 'models'} (Permission denied), where the "
                                     f"official PHNet weights {NAME} are downloaded and converted: make it writable")
    with pytest.raises(PermissionError) as own:
        weights.fetch_official(NAME, progress=lambda d, t: None, say=lambda s: None)
    assert str(own.value).endswith("make it writable, or give another folder (PHNET_HOME, cache_dir=)")


def test_a_cache_folder_that_cannot_be_made_or_filled_is_named_with_phnet_home(monkeypatch, tiny_official, tmp_path):
    """A read-only home said "give another folder", which the CLI has no option for; a disk that filled while
    converting raised OSError naming the hidden .official-ffhqh512.converting/model.safetensors."""
    import errno

    import safetensors
    import safetensors.torch

    monkeypatch.delenv("PHNET_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mkdir = Path.mkdir

    def read_only_home(path, *args, **kwargs):  # (root may write anything)
        if Path(path).is_relative_to(tmp_path / "home"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return mkdir(path, *args, **kwargs)

    # Path.mkdir, not os.mkdir: before Python 3.11 it called the os.mkdir it was imported with
    monkeypatch.setattr(Path, "mkdir", read_only_home)
    target = tmp_path / "home" / ".cache" / "phnet" / "official"
    with pytest.raises(PermissionError) as e:
        weights.fetch_official(NAME, local_files_only=True)
    assert str(e.value).startswith(f"cannot create the folder {target} for the official PHNet weights {NAME} ")
    assert str(e.value).endswith("free space there, or give another folder (PHNET_HOME, cache_dir=)")
    monkeypatch.setattr(Path, "mkdir", mkdir)

    def full(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    (tmp_path / FILE).write_bytes(tiny_official)
    with pytest.raises(PermissionError) as e:
        weights.fetch_official(NAME, tmp_path)
    assert str(e.value) == (f"cannot write the official PHNet weights {NAME} into {tmp_path} (No space left on "
                            "device): free space there")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{NAME}.lock", FILE]


def test_a_subject_lost_in_the_official_square_leaves_the_picture_as_it_was_and_says_why(tiny_model):
    """Nearest sampling stepped over a 1-px subject: the network proposed 0, the picture was resampled all the
    same (its background moved by up to 86 levels) and the report said 'harmonized'."""
    import numpy as np

    from phnet import Harmonizer
    from phnet.corrections import summary

    h = Harmonizer(tiny_model, device="cpu", dtype="fp32")
    picture = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
    tiny = np.zeros((200, 200), np.uint8)
    tiny[2, 2] = 255  # between the pixels nearest sampling reads for the 64 px square (1 and 4)
    result = h.harmonize(picture, tiny, mode="official")
    assert np.array_equal(result.image, picture)
    assert result.corrections[0].describe().startswith("unchanged: the subject vanished from the square mask of "
                                                       "mode 'official'")
    assert result.corrections[0].label() == "unchanged: subject lost in the square"
    whole = np.zeros((200, 200), np.uint8)
    whole[50:150, 60:140] = 255
    line = summary(h.harmonize(np.stack([picture, picture]), np.stack([tiny, whole]), mode="official",
                               threshold=0).corrections)
    assert "1 whose subject vanished from the square mask of mode 'official'" in line
    assert "empty mask" not in line


def test_a_config_json_kept_beside_a_pth_placed_by_hand_still_tunes_it_once_converted(site, tmp_path,
                                                                                       tiny_official):
    """The README's tuning (a config.json beside the official .pth in its folder) was written over when the
    weights were picked by name and converted there."""
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / FILE).write_bytes(tiny_official)
    tuned = {"image_size": 96, "correction_threshold": 10.0}
    (tmp_path / NAME / "config.json").write_text(json.dumps(tuned))
    site.close()
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert json.loads((folder / "config.json").read_text()) == tuned
    config = weights.load_model(NAME, cache_dir=tmp_path).config
    assert (config.name, config.image_size, config.correction_threshold) == (NAME, 96, 10.0)


def test_a_damaged_converted_copy_says_to_delete_it(tmp_path, tiny_official):
    """It said "download it again", which picking the name cannot do: the damaged copy is found again."""
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / FILE).write_bytes(tiny_official)
    weights.fetch_official(NAME, tmp_path, local_files_only=True, progress=lambda d, t: None, say=lambda s: None)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"converted copy of {NAME} is damaged. Delete that file and load"):
        weights.load_model(NAME, cache_dir=tmp_path)
    (folder / "model.safetensors").unlink()  # as it says: converted again from the .pth placed there
    assert weights.load_model(NAME, cache_dir=tmp_path, local_files_only=True).config.name == NAME


def test_the_download_bar_is_left_out_where_stderr_is_none(site, tmp_path, monkeypatch):
    """Under pythonw (or with fd 2 closed) the first download of official weights died in tqdm, writing to None."""
    monkeypatch.setattr("sys.stderr", None)
    assert weights.fetch_official(NAME, tmp_path, say=lambda s: None) == tmp_path / NAME


def test_a_converted_copy_whose_config_json_was_deleted_is_still_found(site, tmp_path):
    """A config.json that contradicts the weights is refused with "fix or delete config.json": once deleted, the
    copy was no longer found (offline: not on this machine; online: downloaded and converted again)."""
    folder = weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    (folder / "config.json").unlink()
    assert official.find(NAME, tmp_path) == folder
    site.close()
    assert weights.load_model(NAME, cache_dir=tmp_path, local_files_only=True).config.name == NAME
    assert len(site.requests) == 1 and sorted(p.name for p in folder.iterdir()) == ["LICENSE-WEIGHTS.txt",
                                                                                     "model.safetensors"]


def test_a_conversion_into_a_folder_of_its_name_moves_the_weights_in_last(site, tmp_path, tiny_official, monkeypatch):
    """The weights mark a finished copy: a conversion stopped while its files move in leaves none behind them."""
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / FILE).write_bytes(tiny_official)
    moved = []
    replace = os.replace
    monkeypatch.setattr(official.os, "replace", lambda a, b: (moved.append(Path(b)), replace(a, b)))
    weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None)
    assert [p.name for p in moved if p.parent == tmp_path / NAME] == ["LICENSE-WEIGHTS.txt", "config.json",
                                                                       "model.safetensors"]


def test_a_part_of_one_byte_is_resumed_from_its_second(site, tmp_path):
    """The smallest part kept is resumed like any other: the range answered from byte 1 is appended to it."""
    import hashlib

    data = site.files[FILE]
    (tmp_path / (FILE + ".part")).write_bytes(data[:1])
    (tmp_path / (FILE + ".part.validator")).write_text(f'"{hashlib.md5(data).hexdigest()}"', encoding="utf-8")
    assert weights.fetch_official(NAME, tmp_path, progress=lambda d, t: None, say=lambda s: None) == tmp_path / NAME
    assert site.requests == [(FILE, "bytes=1-")] and not list(tmp_path.glob("*.part*"))
