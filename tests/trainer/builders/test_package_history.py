"""trainer.builders.package_history on fake wheels: choice of versions, cache, dedup, held out. No network."""
from __future__ import annotations

import io
import shutil
import sys
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.helpers.interrupts import exit_code
from tests.helpers.opencv import needs_opencv
from trainer.builders import package_history as ph

DIST = "comfyui-workflow-templates-media-fake"
MODULE = "comfyui_workflow_templates_media_fake"


def test_greedy_choice_covers_every_new_file_with_few_versions():
    listings = {
        "4": {"p/a.png": [1, 10], "p/b.png": [2, 10]},
        "3": {"p/a.png": [1, 10], "p/c.png": [3, 10], "p/x.txt": [9, 10]},
        "2": {"p/c.png": [3, 10], "p/d.png": [4, 10], "p/e.png": [5, 10]},
        "1": {"p/c.png": [3, 10], "p/d.png": [4, 10], "p/f.png": [6, 10]},
    }
    assert ph.choose_versions(listings, have={(1, 10), (2, 10)}) == ["2", "1"]
    assert ph.choose_versions(listings, have={(1, 10), (2, 10), (6, 10)}) == ["2"]
    assert ph.choose_versions(listings, have=set()) == ["2", "4", "1"]   # ties go to the newest


def _wheel(path, version: str, files: dict[str, bytes], licence: str = "MIT"):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{MODULE}/templates/{name}", data)
        zf.writestr(f"{MODULE}/__init__.py", "")
        zf.writestr(f"{MODULE}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.4\nName: {DIST}\nVersion: {version}\nLicense-Expression: {licence}\n")


@pytest.fixture()
def downloads(tmp_path, monkeypatch, reserved, picture, encoded) -> list[str]:
    """A fake bundle (version 3 installed; 3, 2 and 1 on a fake index, a folder); the versions downloaded."""
    a, b, c, d = (encoded(picture(s)) for s in (11, 12, 13, 14))
    b_again = encoded(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), "JPEG", quality=85)
    reserved_again = encoded(np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB")), "WEBP", quality=80)
    icon = encoded(picture(15, size=32))
    index = tmp_path / "index"
    index.mkdir()
    published = {"3": {"a.png": a, "b.png": b},
                 "2": {"a.png": a, "b.png": b_again, "c.png": c, "r.webp": reserved_again},
                 "1": {"a.png": a, "c.png": c, "d.png": d, "icon.png": icon}}
    for v, files in published.items():
        _wheel(index / f"{MODULE}-{v}-py3-none-any.whl", v, files)
    site = tmp_path / "site"
    (site / MODULE / "templates").mkdir(parents=True)
    (site / MODULE / "__init__.py").write_text("")
    for name, data in published["3"].items():
        (site / MODULE / "templates" / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)

    monkeypatch.setattr(ph, "MEDIA_PACKAGES", ((MODULE, DIST),))
    monkeypatch.setattr(ph, "published_wheels", lambda dist: [
        ph.Wheel(dist, v, f"{MODULE}-{v}-py3-none-any.whl", f"https://example.invalid/{v}.whl", 0)
        for v in ("3", "2", "1")])
    monkeypatch.setattr(ph, "read_listing", lambda wheel: ph._members(zipfile.ZipFile(index / wheel.filename)))
    done = []

    def fake_pip(cmd, check):
        version = cmd[-1].split("==")[1]
        done.append(version)
        shutil.copy(index / f"{MODULE}-{version}-py3-none-any.whl", cmd[cmd.index("-d") + 1])

    monkeypatch.setattr(ph.subprocess, "run", fake_pip)

    def no_network(*args, **kw):
        raise AssertionError("the test touched the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return done


def test_harvest_keeps_new_pictures_only_and_drops_the_held_out(tmp_path, downloads):
    cache = tmp_path / "cache"
    pictures, (tally,) = ph.harvest(cache, min_side=64, faces=False, log=lambda m: None)
    assert tally.versions == ["2", "1"] and downloads == ["2", "1"]
    assert tally.licence == "MIT"
    assert tally.today == 2
    # found: b re-encoded, c, the reserved picture, d (a, and c in version 1, are the same files; the icon is too small)
    assert (tally.found, tally.duplicates, tally.held_out, tally.kept) == (4, 1, 1, 2)
    assert [p.key for p in pictures] == ["media-fake/v2/templates/c.png", "media-fake/v1/templates/d.png"]
    src = pictures[0].source()
    assert src.load(1)[0].shape == (96, 96, 3) and src.data()[:4] == b"\x89PNG"

    # a second run reads the cache: no downloads, the same result
    downloads.clear()
    again, _ = ph.harvest(cache, min_side=64, faces=False, log=lambda m: None)
    assert downloads == [] and [p.key for p in again] == [p.key for p in pictures]
    assert sorted(p.name for p in (cache / "wheels").iterdir()) == [f"{MODULE}-{v}-py3-none-any.whl" for v in "12"]


def test_the_table_has_the_counts_and_the_gain(tmp_path, downloads):
    _, tallies = ph.harvest(tmp_path / "cache", min_side=64, faces=False, log=lambda m: None)
    table = ph.format_table(tallies)
    assert "| media-fake | 2 | MIT | 4 | 1 | 1 | 2 |" in table
    assert "with a face" not in table
    assert "today (installed versions): 2 usable pictures; with all versions: 4 (+100 %)" in table


def test_the_table_counts_faces_only_when_every_bundle_counted_them():
    counted = [ph.Tally("a", found=4, duplicates=1, held_out=1, kept=2, faces=1, today=2, today_faces=1,
                        faces_counted=True),
               ph.Tally("b", found=1, kept=1, faces=0, today=3, today_faces=2, faces_counted=True)]
    table = ph.format_table(counted)
    assert "| a | 0 |  | 4 | 1 | 1 | 2 | 1 |" in table and "| total | 0 |  | 5 | 1 | 1 | 3 | 1 |" in table
    assert table.endswith("5 usable pictures, 3 with a face; with all versions: 8 (+60 %), 4 with a face (+33 %)")
    assert "with a face" not in ph.format_table(counted + [ph.Tally("c", found=1, kept=1)])


def test_a_bundle_folder_without_its_package_file_counts_as_not_installed(tmp_path, monkeypatch, picture, encoded):
    """A folder of the bundle's name without __init__.py imports as a namespace package, which has no file: the
    harvest stopped with a TypeError instead of counting every version as new."""
    (tmp_path / "site" / MODULE / "templates").mkdir(parents=True)
    (tmp_path / "site" / MODULE / "templates" / "a.png").write_bytes(encoded(picture(16)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    assert ph.installed_files(MODULE) == {}


def test_cache_folder_can_be_chosen(monkeypatch, tmp_path):
    monkeypatch.setenv("PHNET_PACKAGE_HISTORY", str(tmp_path / "h"))
    assert ph.cache_dir() == tmp_path / "h"
    assert ph.cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("PHNET_PACKAGE_HISTORY")
    assert ph.cache_dir().parts[-3:] == (".cache", "phnet", "package-history")


def test_licence_comes_from_the_wheel_metadata(tmp_path):
    path = tmp_path / "w.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x-1.dist-info/METADATA", "Metadata-Version: 2.1\nName: x\n"
                    "Classifier: License :: OSI Approved :: MIT License\n")
    with zipfile.ZipFile(path) as zf:
        assert ph.wheel_licence(zf) == "MIT License"


def test_an_interrupted_download_leaves_nothing_the_cache_would_trust(tmp_path, monkeypatch):
    """pip wrote the wheel straight into the cache and the cache trusts any file it finds: a Ctrl-C mid-way
    left a truncated wheel that failed every later run with BadZipFile."""
    wheel = ph.Wheel(DIST, "2", f"{MODULE}-2-py3-none-any.whl", "https://example.invalid/2.whl", 0)

    def pip_cut_short(cmd, check):
        (tmp_path / "started").touch()
        with open(f"{cmd[cmd.index('-d') + 1]}/{wheel.filename}", "wb") as f:
            f.write(b"PK\x03\x04 half a wheel")
        raise KeyboardInterrupt

    monkeypatch.setattr(ph.subprocess, "run", pip_cut_short)
    with pytest.raises(KeyboardInterrupt):
        ph.download(wheel, tmp_path / "cache")
    assert (tmp_path / "started").exists() and list((tmp_path / "cache" / "wheels").iterdir()) == []

    def pip_renames(cmd, check):
        with open(f"{cmd[cmd.index('-d') + 1]}/{MODULE.replace('_', '-')}-2.tar.gz", "wb") as f:
            f.write(b"not the wheel")

    monkeypatch.setattr(ph.subprocess, "run", pip_renames)
    with pytest.raises(OSError, match="download that file by hand into"):
        ph.download(wheel, tmp_path / "cache")
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []


def test_a_wheel_s_listing_is_read_with_ranges_and_a_host_that_ignores_them_is_named():
    """A host or proxy that answered a range with the whole wheel shifted every offset: a BadZipFile traceback."""
    from tests.helpers.file_server import FileServer

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{MODULE}/templates/noise.bin", np.random.default_rng(0).bytes(ph.TAIL_BYTES + 1000))
        zf.writestr(f"{MODULE}/templates/a.png", b"x" * 10)
    data, name = buffer.getvalue(), f"{MODULE}-1-py3-none-any.whl"
    with FileServer() as server:
        server.files[name] = data
        wheel = ph.Wheel(DIST, "1", name, f"{server.url}/{name}", len(data))
        assert ph.read_listing(wheel)[f"{MODULE}/templates/a.png"] == [zipfile.crc32(b"x" * 10), 10]
        assert all(r is not None for _, r in server.requests)  # ranges only, never the whole wheel
        server.faults[name] = "no-range"
        with pytest.raises(OSError, match=rf"^{wheel.url} ignored the Range request \(a proxy\?\): it answered HTTP "
                                          r"200, not bytes \d+-\d+; connect without that proxy, or put the wheel"):
            ph.read_listing(wheel)
        server.files[name] = b"<html>Sign in to continue</html>"  # the whole file asked for, and no zip
        wheel = ph.Wheel(DIST, "1", name, f"{server.url}/{name}", len(server.files[name]))
        with pytest.raises(OSError, match=rf"^{wheel.url} did not give the wheel PyPI lists \(.*\): run again later"):
            ph.read_listing(wheel)


def test_an_offline_rebuild_reads_the_versions_the_cache_lists(tmp_path, downloads, monkeypatch):
    """Every run asked PyPI for the version list first: with every wheel cached, offline, a URLError traceback."""
    cache = tmp_path / "cache"
    first = ph.harvest(cache, min_side=64, faces=False, log=lambda m: None)

    def unreachable(dist):
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(ph, "published_wheels", unreachable)
    said = []
    again = ph.harvest(cache, min_side=64, faces=False, log=said.append)
    assert [p.key for p in again[0]] == [p.key for p in first[0]]
    assert any("cannot reach PyPI" in line for line in said)
    with pytest.raises(OSError, match="cannot reach PyPI to list the versions of .* run once with network access"):
        ph.harvest(tmp_path / "empty", min_side=64, faces=False, log=lambda m: None)


def test_offline_with_nothing_cached_is_one_line_naming_the_fix(tmp_path, monkeypatch, capsys):
    """A listing cached without its wheel gave pip's CalledProcessError traceback, and the command line printed
    'cannot reach PyPI' as a traceback."""
    wheel = ph.Wheel(DIST, "2", f"{MODULE}-2-py3-none-any.whl", "", 0)

    def pip_offline(cmd, check):
        raise ph.subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(ph.subprocess, "run", pip_offline)
    with pytest.raises(OSError, match=f"run once with network access, or put {wheel.filename} into .*wheels"):
        ph.download(wheel, tmp_path / "cache")

    def unreachable(dist):
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(ph, "published_wheels", unreachable)
    with pytest.raises(SystemExit) as stop:
        ph.main(["--cache", str(tmp_path / "empty"), "--no-faces"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: cannot reach PyPI to list the versions of ")


def test_a_wheel_not_licensed_mit_is_left_out_and_each_versions_licence_recorded(tmp_path, downloads):
    """Every wheel's pictures were kept whatever its METADATA said, and the pool claimed MIT for them all."""
    path = tmp_path / "index" / f"{MODULE}-1-py3-none-any.whl"
    with zipfile.ZipFile(path) as zf:
        files = {n.rsplit("/", 1)[1]: zf.read(n) for n in zf.namelist() if "/templates/" in n}
    _wheel(path, "1", files, licence="LicenseRef-Proprietary")
    said = []
    pictures, (tally,) = ph.harvest(tmp_path / "cache", min_side=64, faces=False, log=said.append)
    assert [p.key for p in pictures] == ["media-fake/v2/templates/c.png"]  # not version 1's d.png
    assert tally.licences == {"2": "MIT", "1": "LicenseRef-Proprietary"}
    assert tally.licence == "LicenseRef-Proprietary, MIT"
    assert f"warning: {DIST} 1 is licensed 'LicenseRef-Proprietary', not MIT: its pictures are left out" in said


@pytest.mark.parametrize("copy", ["usable", "too small"])
def test_an_all_versions_build_drops_a_near_duplicate_of_an_old_versions_reserved_picture(
        tmp_path, monkeypatch, reserved, encoded, copy):
    """A reserved picture of an old version was left out before it became a source: a crop 5 bits from it
    and 10 from the reserved list formed no group with it and was trained on."""
    needs_opencv()
    from trainer.builders import package_portraits as pp

    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    crop8 = np.ascontiguousarray(rgb[8:-8, 8:-8])
    if copy == "too small":
        crop8 = np.asarray(Image.fromarray(crop8).resize((40, 40), Image.LANCZOS))
    files = {"crop8.png": encoded(crop8), "crop10.png": encoded(np.ascontiguousarray(rgb[10:-10, 10:-10]))}
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    _wheel(tmp_path / "cache" / "wheels" / f"{MODULE}-1-py3-none-any.whl", "1", files)
    monkeypatch.setattr(ph, "MEDIA_PACKAGES", ((MODULE, DIST),))
    monkeypatch.setattr(ph, "published_wheels", lambda dist: [
        ph.Wheel(DIST, "1", f"{MODULE}-1-py3-none-any.whl", "https://example.invalid/1.whl", 0)])
    monkeypatch.setattr(pp, "iter_sources", lambda: iter([]))
    lines = []
    manifest = pp.build(tmp_path / "pool", size=64, val_size=64, frames=1, val_percent=0, min_side=64,
                        log=lines.append, all_versions=True, history_cache=tmp_path / "cache")
    assert manifest["entries"] == []
    assert manifest["skipped"] == [{"source": f"media-fake/v1/templates/{name}", "reason": pp.HELD_OUT}
                                   for name in ("crop10.png", "crop8.png")]
    assert manifest["held_out_excluded"] == 2 and "of them from older versions: 2" in lines


def test_an_installed_flat_placeholder_makes_no_old_picture_its_duplicate(tmp_path, monkeypatch, reserved, encoded):
    """Every installed file's dHash counted, a blank thumbnail's (0) too: an old picture darkening from left to
    right (dHash 0 as well) was dropped as its duplicate."""
    site = tmp_path / "site"
    (site / MODULE / "templates").mkdir(parents=True)
    (site / MODULE / "__init__.py").write_text("")
    (site / MODULE / "templates" / "placeholder.png").write_bytes(encoded(np.zeros((96, 96, 3), np.uint8)))
    (site / MODULE / "templates" / "r.png").write_bytes(reserved)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    ramp = np.linspace(255, 40, 128)[None, :, None] * np.array([1.0, 0.6, 0.3])
    sunset = np.clip(ramp + np.random.default_rng(0).normal(0, 3, (96, 128, 3)), 0, 255).astype(np.uint8)
    rgb = np.asarray(Image.open(io.BytesIO(reserved)).convert("RGB"))
    resized = encoded(np.asarray(Image.fromarray(rgb).resize((90, 90), Image.LANCZOS)))
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    _wheel(tmp_path / "cache" / "wheels" / f"{MODULE}-1-py3-none-any.whl", "1",
           {"sunset.png": encoded(sunset), "resized.png": resized})
    monkeypatch.setattr(ph, "MEDIA_PACKAGES", ((MODULE, DIST),))
    monkeypatch.setattr(ph, "published_wheels", lambda dist: [
        ph.Wheel(DIST, "1", f"{MODULE}-1-py3-none-any.whl", "https://example.invalid/1.whl", 0)])
    pictures, (tally,) = ph.harvest(tmp_path / "cache", min_side=64, faces=False, log=lambda m: None)
    assert ph.held_out.dhash64(sunset) == 0 and [p.key for p in pictures] == ["media-fake/v1/templates/sunset.png"]
    assert (tally.found, tally.duplicates, tally.held_out, tally.kept) == (2, 0, 1, 1)


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize("content", ["a web page", "no METADATA"])
def test_a_cached_file_that_is_no_wheel_is_named_with_the_fix(tmp_path, monkeypatch, capsys, listed, content):
    """A web page or a half download put where the offline message says ended in a BadZipFile traceback, a zip
    without METADATA in a bare StopIteration."""
    cache = tmp_path / "cache"
    wheel = cache / "wheels" / f"{MODULE}-1-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    if content == "a web page":
        wheel.write_bytes(b"<html>Sign in to continue</html>")
    else:
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{MODULE}/templates/a.png", b"")
    if listed:
        (cache / "listings").mkdir()
        (cache / "listings" / f"{wheel.name}.json").write_text(f'{{"{MODULE}/templates/a.png": [1, 2]}}')
    monkeypatch.setattr(ph, "MEDIA_PACKAGES", ((MODULE, DIST),))
    monkeypatch.setattr(ph, "published_wheels", lambda dist: [ph.Wheel(DIST, "1", wheel.name, "", 0)])
    with pytest.raises(SystemExit) as stop:
        ph.main(["--cache", str(cache), "--no-faces"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {wheel} ") and err.rstrip().endswith("delete it, and run again with network "
                                                                        "access or put the wheel itself there")


def test_a_page_instead_of_pypis_json_is_taken_for_pypi_out_of_reach(tmp_path, monkeypatch):
    """A proxy's page answered with 200 ended in 'error: Expecting value: line 1 column 1 (char 0)', and the
    versions the cache lists were not read."""
    class Page(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **kw: Page(b"<html>Proxy login required</html>"))
    with pytest.raises(OSError, match=r"PyPI's JSON API answered https://pypi.org/pypi/x/json with no list of "):
        ph.published_wheels("x")
    (tmp_path / "listings").mkdir()
    (tmp_path / "listings" / f"{MODULE}-2-py3-none-any.whl.json").write_text("{}")
    said = []
    assert [w.version for w in ph.known_wheels(DIST, tmp_path, said.append)] == ["2"]
    assert said[0].startswith("warning: cannot reach PyPI (PyPI's JSON API answered ")


@pytest.mark.parametrize("side", ["0", "-5"])
def test_a_min_side_under_1_is_refused_before_any_download(tmp_path, monkeypatch, capsys, side):
    """It was taken (every picture counted as big enough) and the versions were downloaded and read."""
    def harvest(*args, **kwargs):
        raise AssertionError("harvested")

    monkeypatch.setattr(ph, "harvest", harvest)
    with pytest.raises(SystemExit) as stop:
        ph.main(["--cache", str(tmp_path / "cache"), "--min-side", side])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: --min-side must be at least 1, got {side}")


def test_a_download_that_gives_another_file_is_one_line_naming_the_fix(tmp_path, downloads, monkeypatch, capsys):
    """The command line ended in a RuntimeError traceback (so did package_portraits --all-versions)."""
    def pip_renames(cmd, check):
        with open(f"{cmd[cmd.index('-d') + 1]}/{MODULE.replace('_', '-')}-2.tar.gz", "wb") as f:
            f.write(b"not the wheel")

    monkeypatch.setattr(ph.subprocess, "run", pip_renames)
    with pytest.raises(SystemExit) as stop:
        ph.main(["--cache", str(tmp_path / "cache"), "--no-faces"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"error: pip download {DIST}==2 gave ['{MODULE.replace('_', '-')}-2.tar.gz'], not {MODULE}-2-py3-none-any.whl: "
        "download that file by hand into ")


def test_ctrl_c_midway_ends_with_one_line_and_keeps_the_whole_wheels(tmp_path, downloads, monkeypatch, capsys):
    """It ended in a traceback."""
    copy = ph.subprocess.run

    def pip_then_ctrl_c(cmd, check):
        if downloads:
            raise KeyboardInterrupt
        copy(cmd, check)

    monkeypatch.setattr(ph.subprocess, "run", pip_then_ctrl_c)
    assert exit_code(lambda: ph.main(["--cache", str(tmp_path / "cache"), "--no-faces"])) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: interrupted; what was downloaded so far is kept in the cache: run it again to go on")
    assert [p.name for p in (tmp_path / "cache" / "wheels").iterdir()] == [f"{MODULE}-2-py3-none-any.whl"]


def test_a_reserved_bundle_listed_as_a_source_is_not_harvested_under_python_O_too(monkeypatch, tmp_path):
    """The check was an assert: under ``python -O`` the reserved evaluation bundle's old versions were read."""
    from trainer.builders import held_out

    monkeypatch.setattr(ph, "MEDIA_PACKAGES", ((held_out.FORBIDDEN_PACKAGES[0], "reserved"),))
    monkeypatch.setattr(ph, "harvest_bundle", lambda *a, **k: pytest.fail("the reserved bundle was harvested"))
    with pytest.raises(RuntimeError, match="internal error: comfyui_workflow_templates_media_image is reserved"):
        ph.harvest(tmp_path, faces=False, log=lambda m: None)
