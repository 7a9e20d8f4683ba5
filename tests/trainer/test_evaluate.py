"""trainer.evaluate: the command and its loop, run end to end (its pieces' own tests are in evaluation/; the runs
with trained weights are in test_fit.py)."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal

import pytest
import torch


@pytest.fixture(scope="module")
def landscapes(tmp_path_factory):
    """Photo folder of 1:2 landscape portraits with their masks."""
    from procedural_portraits import write_photos

    root = tmp_path_factory.mktemp("landscapes")
    write_photos(root / "img", 12, seed=4, masks=root / "masks", sizes=((32, 64),))
    return {"root": str(root / "img"), "mask_dir": str(root / "masks"), "num_workers": 0,
            "synthesis": {"identity_fraction": 0.0, "mild_fraction": 0.0}}


def test_a_padded_picture_is_scored_without_its_padding(landscapes, tmp_path):
    """Padding is the same zeros in every output and the photo: counted, it made every MSE half as large here."""
    from phnet import metrics
    from trainer.data import build_dataset
    from trainer.evaluate import evaluate

    data = {**landscapes, "resize": "pad", "val_fraction": 0.5}
    res = evaluate(None, data, split="val", resolution=32, out_dir=tmp_path / "ev", progress=False, grid_rows=1)
    ds = build_dataset(data, "val", train=False, image_size=32, resize="pad")
    cut, whole = [], []
    for i in range(len(ds)):
        s = ds[i]
        top, left, h, w = s["box"].tolist()
        c, r = (s[k][None, :, top:top + h, left:left + w] for k in ("comp", "real"))
        cut.append(float(metrics.mse(c, r)))
        whole.append(float(metrics.mse(s["comp"][None], s["real"][None])))
    assert res["overall"]["composite"]["MSE"] == pytest.approx(sum(cut) / len(cut))
    assert res["overall"]["composite"]["MSE"] > 1.8 * sum(whole) / len(whole)
    assert "the padding left out" in res["markdown"]
    assert res["untouched"]["reinhard"]["count"] == len(ds) > 2
    # the baselines match colours to the picture's own background, not to the padding's black
    from trainer.baselines import reinhard_batch

    rows = []
    for i in range(len(ds)):
        s = ds[i]
        top, left, h, w = s["box"].tolist()
        c, r, m = (s[k][None, :, top:top + h, left:left + w] for k in ("comp", "real", "mask"))
        rows.append(float(metrics.mse(metrics.blend(reinhard_batch(c, m), c, m), r)))
    assert res["overall"]["reinhard"]["MSE"] == pytest.approx(sum(rows) / len(rows), rel=1e-4)


def test_a_photo_folders_test_split_is_reported_as_not_held_out(landscapes, tmp_path, capsys):
    from trainer.evaluate import main

    args = ["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
            "--no-untouched", "--no-progress", "--grid-rows", "1", "--out", str(tmp_path / "ev")]
    assert main(args) == 0
    printed = capsys.readouterr()
    first = printed.out.split("\n## ")[0]  # the header, before the first table
    assert "NOT A HELD-OUT SCORE" in first and "is its validation split" in first and "data.test_fraction" in first
    assert "NOT A HELD-OUT SCORE" in printed.err
    with pytest.raises(SystemExit):  # a second run replaced the first one's results without a word
        main(args + ["--split", "val"])
    assert "holds the results of an earlier evaluation" in capsys.readouterr().err
    assert main(args + ["--split", "val", "--overwrite"]) == 0
    assert "HELD-OUT" not in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--resolution", "abc"], "--resolution must be a multiple of 8 from 16 (e.g. 256) or 'native', got 'abc'"),
    (["--resolution", "8"], "--resolution must be a multiple of 8 from 16"),  # torch's 'when training' at 8
    (["--max-samples", "-1"], "--max-samples must be a number of composites"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),  # torch's words, after loading the model
    (["--num-workers", "-1"], "--num-workers must be 0 (load in this process) or more, got -1"),
    (["--grid-rows", "-2"], "--grid-rows must be 0 or more"),
    (["--val-fraction", "1.5"], "--val-fraction must be from 0 to 1, got 1.5"),
    # the library's words naming no flag, after loading the model and the data
    (["--resolution", "native", "--working-size", "30"], "--working-size must be a multiple of 8 from 16 to 4096"),
    (["--config", "/nope/run_config.json"], "config"),
])
def test_settings_that_cannot_be_used_are_refused_before_any_work(tmp_path, capsys, extra, message):
    from trainer.evaluate import main

    try:
        rc = main(["--data", str(tmp_path), "--out", str(tmp_path / "ev"), *extra])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("error", [RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                                                 "6442450944 bytes"),
                                    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                    MemoryError(),
                                    RuntimeError("Caught MemoryError in DataLoader worker process 0.\nOriginal "
                                                 "Traceback (most recent call last):\nnumpy._core._exceptions."
                                                 "_ArrayMemoryError: Unable to allocate 137. MiB for an array")])
@pytest.mark.parametrize("resolution, fix", [("32", "lower --batch-size or --resolution"),
                                             ("native", "give a smaller --working-size")])
def test_running_out_of_memory_names_the_options_that_use_it(landscapes, tmp_path, capsys, monkeypatch, error,
                                                             resolution, fix):
    """An allocation that failed ended the evaluation in a traceback."""
    from trainer.evaluate import Candidates, main

    def no_memory(self, img, mask, boxes=None):
        raise error

    monkeypatch.setattr(Candidates, "outputs", no_memory)
    rc = main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", resolution,
               "--no-untouched", "--no-progress", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: not enough memory (") and fix in err.splitlines()[-1]
    assert "DataLoader worker" not in err and ("Unable to allocate 137. MiB" in err) == ("Caught" in str(error))


def test_ctrl_c_ends_with_one_line_and_leaves_no_half_written_file(landscapes, tmp_path, capsys, monkeypatch):
    """It ended in a traceback; stopped while grid.png was written, half of it was left."""
    from PIL import Image

    from tests.helpers.interrupts import exit_code, interrupted_at
    from trainer.evaluate import Candidates, main

    args = ["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
            "--no-untouched", "--no-progress", "--grid-rows", "1", "--out", str(tmp_path / "ev")]
    line = "error: interrupted; no file was left half-written: run it again for the results"
    with monkeypatch.context() as m:
        m.setattr(Candidates, "outputs", interrupted_at(1, Candidates.outputs))
        assert exit_code(lambda: main(args)) == 130
    assert capsys.readouterr().err.splitlines()[-1] == line and not (tmp_path / "ev").exists()

    written = []

    def half_a_png(img, fp, filename, *rest, **kw):
        fp.write(b"\x89PNG")
        written.append(fp)
        raise KeyboardInterrupt

    Image.init()  # (a plugin imported later would register its own save again)
    monkeypatch.setitem(Image.SAVE, "PNG", half_a_png)
    assert exit_code(lambda: main(args)) == 130
    assert capsys.readouterr().err.splitlines()[-1] == line
    assert not any((tmp_path / "ev").iterdir())
    assert len(written) == 1 and written[0].closed  # (on Windows an open file cannot be removed)


def test_an_out_that_links_to_nothing_is_refused_before_any_work(landscapes, tmp_path, capsys, monkeypatch):
    """An --out linked to an unmounted drive passed the check, and every sample was scored before "File exists"."""
    from trainer.evaluate import Candidates, main

    out = tmp_path / "ev"
    out.symlink_to(tmp_path / "unmounted" / "ev")
    monkeypatch.setattr(Candidates, "outputs", lambda *a: pytest.fail("a sample was scored"))
    with pytest.raises(SystemExit) as e:
        main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
              "--no-progress", "--out", str(out)])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --out {out}: {out} links to {tmp_path / 'unmounted' / 'ev'}, which does not exist (an unmounted "
        "drive?); connect it, or give another --out")


def test_an_out_folder_that_takes_no_file_is_refused_before_any_work(landscapes, tmp_path, capsys, monkeypatch):
    """A read-only --out failed after every sample was scored, the report unprinted, naming no file."""
    import tempfile

    from trainer.evaluate import Candidates, main

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(Candidates, "outputs", lambda *a: pytest.fail("a sample was scored"))
    with pytest.raises(SystemExit) as e:
        main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
              "--no-progress", "--out", str(tmp_path / "new" / "ev")])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --out {tmp_path / 'new' / 'ev'}: cannot write into {tmp_path} (Permission denied): make it "
        "writable, or give another --out")


def test_a_failed_write_prints_the_report_and_leaves_the_earlier_results_whole(landscapes, tmp_path, capsys,
                                                                               monkeypatch):
    """A full disk lost every score, and with --overwrite left new results.json and results.md beside the old
    grid.png."""
    import errno

    from PIL import Image

    from trainer.evaluate import main

    out = tmp_path / "ev"
    args = ["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
            "--no-untouched", "--no-progress", "--grid-rows", "1", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(img, fp, filename, *rest, **kw):
        fp.write(b"\x89PNG")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(Image.SAVE, "PNG", disk_full)
    assert main(args + ["--split", "val", "--overwrite"]) == 2
    printed = capsys.readouterr()
    assert "## " in printed.out and "Traceback" not in printed.err  # the scores are on the screen
    assert printed.err.splitlines()[-1] == (
        f"error: cannot write the results into {out} (No space left on device); none of the files there was "
        "replaced: free some space or make it writable, or give another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_max_samples_scores_a_spread_of_the_split(landscapes, tmp_path):
    from trainer.data import build_dataset
    from trainer.data.common import spread_sample
    from trainer.evaluate import evaluate

    data = {**landscapes, "val_fraction": 0.5}
    names = [r.name for r in build_dataset(data, "val", image_size=32).records]
    res = evaluate(None, data, split="val", resolution=32, max_samples=3, untouched_check=False, progress=False)
    scored = sorted(k.split("/", 1)[1] for k in res["per_image"])
    assert scored == sorted(names[i] for i in spread_sample(names, 3)) != sorted(names[:3])
    assert f"3 samples of {len(names)}: a fixed spread of 3 over the split (--max-samples)" in res["markdown"]


def test_skipped_samples_are_named_as_skipped_not_blamed_on_max_samples(photos, tmp_path):
    import shutil

    from trainer.evaluate import evaluate

    img_dir, mask_dir = photos
    shutil.copytree(mask_dir, tmp_path / "masks")
    sorted((tmp_path / "masks").iterdir())[0].write_bytes(b"not a png")
    data = {"root": str(img_dir), "mask_dir": str(tmp_path / "masks"), "on_bad_sample": "skip"}
    with pytest.warns(UserWarning, match=r"skipping bad sample #0: unreadable image .*masks/p000\.png") as said:
        res = evaluate(None, data, split="all", resolution=32, untouched_check=False, progress=False)
    assert len([w for w in said if "skipping bad sample" in str(w.message)]) == 1
    assert "23 samples of 24: 1 skipped as unreadable" in res["markdown"] and "--max-samples" not in res["markdown"]


def test_an_out_folder_inside_the_data_is_refused(landscapes, tmp_path, capsys):
    """Its grid.png was read as a photo by the next run on that folder."""
    from trainer.evaluate import main

    with pytest.raises(SystemExit):
        main(["--data", landscapes["root"], "--out", landscapes["root"], "--resolution", "32"])
    assert "is inside the data folder" in capsys.readouterr().err


def test_a_data_setting_given_by_its_flag_is_named_by_the_flag_in_an_error(landscapes, tmp_path, capsys):
    """--val-fraction 0 --split val was told to set data.val_fraction above 0, a setting of a config."""
    from trainer.evaluate import main

    base = ["--data", landscapes["root"], "--resolution", "32", "--no-progress", "--out", str(tmp_path / "ev")]
    assert main([*base, "--mask-dir", landscapes["mask_dir"], "--val-fraction", "0", "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "val split" in err and "set --val-fraction above 0" in err and "data.val_fraction" not in err
    # (there is no flag for data.val_root, and --data drops a config's)
    assert err.endswith("or score a folder of held-out photos with --data and --split all\n") and "--config" not in err
    assert main([*base, "--mask-dir", landscapes["root"]]) == 2
    assert capsys.readouterr().err.startswith("error: --mask-dir: the mask folder ")
    assert main([*base, "--subsets", "HCOCO"]) == 2  # trainer.fit's --set is no flag here
    assert capsys.readouterr().err.endswith("is a folder set, which has none: drop --subsets\n")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_unreadable_picture_is_one_line_naming_the_flag_that_skips_it(landscapes, tmp_path, capsys, workers):
    """With workers the error was the DataLoader's 15-line traceback; without, it named data.on_bad_sample, a config
    key, "to train"."""
    from trainer.evaluate import main

    root = tmp_path / "img"
    shutil.copytree(landscapes["root"], root)
    first = sorted(root.iterdir())[0]
    first.write_bytes(first.read_bytes()[:200])  # truncated
    rc = main(["--data", str(root), "--mask-dir", landscapes["mask_dir"], "--split", "all", "--resolution", "32",
               "--no-untouched", "--no-progress", "--num-workers", workers, "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: unreadable image {first}"), err
    assert err.endswith("mend or remove the file, or pass --on-bad-sample skip to leave such samples out\n"), err


def test_out_given_as_a_home_path_after_an_equals_sign_is_the_home_folder(landscapes, tmp_path, monkeypatch):
    """--out=~/ev (the shell leaves a ~ after = as it is) wrote into a folder named ~ in the current one."""
    from trainer.evaluate import main

    for var in ("HOME", "USERPROFILE"):
        monkeypatch.setenv(var, str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
                 "--max-samples", "1", "--grid-rows", "1", "--no-untouched", "--no-progress", "--out=~/ev"]) == 0
    assert (tmp_path / "home" / "ev" / "results.json").is_file() and not any((tmp_path / "cwd").iterdir())


def test_another_folder_is_scored_whole_with_split_all_and_without_the_runs_own_folders(landscapes, tmp_path,
                                                                                        capsys):
    """The test split of a folder a run never saw was its 5 % validation slice, called "not held out"; and with
    --config RUN, --data was ignored for the run's val_root photos and its mask_dir masks."""
    import json

    from trainer.evaluate import main

    other = tmp_path / "elsewhere"
    (other / "photos").mkdir(parents=True)
    (other / "masks").mkdir()
    run = tmp_path / "run.toml"  # a run whose photos, validation photos and masks were all elsewhere
    run.write_text(f'[data]\nroot = "{other / "photos"}"\nmask_dir = "{other / "masks"}"\n'
                   f'val_root = "{other / "photos"}"\nval_mask_dir = "{other / "masks"}"\n')
    args = ["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32", "--no-untouched",
            "--no-progress", "--grid-rows", "0", "--config", str(run), "--out", str(tmp_path / "ev")]
    assert main(args + ["--split", "all"]) == 0
    printed = capsys.readouterr()
    assert "12 samples" in printed.out and "HELD-OUT" not in printed.out + printed.err
    for refused, words in ((["--config", str(run), "--split", "all"], "give --data"),
                           (["--data", str(other / "photos"), "--config", str(run), "--split", "all"],
                            "holds the run's own training photos"),
                           (["--data", str(other), "--config", str(run), "--split", "all"],  # a folder above them
                            "holds the run's own training photos")):
        with pytest.raises(SystemExit):
            main(refused + ["--resolution", "32", "--out", str(tmp_path / "no")])
        assert words in capsys.readouterr().err
    (tmp_path / "held").mkdir()  # a run validated on a folder of its own: those photos chose its best/
    validated = tmp_path / "validated.toml"
    validated.write_text(f'[data]\nroot = "{other / "photos"}"\nval_root = "{tmp_path / "held"}"\n')
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "held"), "--config", str(validated), "--split", "all", "--resolution", "32",
              "--out", str(tmp_path / "no")])
    assert "holds the run's own validation photos, which chose its best/" in capsys.readouterr().err
    assert main(args + ["--split", "val", "--out", str(tmp_path / "ev-val")]) == 0  # the landscapes' own val slice
    results = json.loads((tmp_path / "ev-val" / "results.json").read_text())
    assert results["per_image"] and all(name.startswith("img/") for name in results["per_image"])


def test_a_runs_cap_on_its_samples_does_not_shrink_its_evaluation(tmp_path):
    """data.max_samples of the run cut the scored split without a word: --max-samples is the evaluation's own."""
    import argparse

    from trainer.evaluate import _data_table

    (tmp_path / "run.toml").write_text("[data]\nroot = \"photos\"\nmax_samples = 2\n")
    args = argparse.Namespace(config=str(tmp_path / "run.toml"), data=None, kind=None, ffhq_root=None,
                              mask_dir=None, resize=None, seed=None, on_bad_sample=None, val_fraction=None,
                              num_workers=None, subsets=None)
    assert "max_samples" not in _data_table(args)


def test_with_data_a_runs_ffhq_photo_folder_is_not_taken_for_the_other_sets_real_photos(tmp_path):
    """--config RUN --data OTHER kept the run's data.ffhq_root: OTHER's composites were scored against the run's
    real photos of the same names, and calibrate chose its rule on those pairs."""
    import argparse

    from trainer.evaluate import _data_table

    run = tmp_path / "run.toml"
    run.write_text(f'[data]\nroot = "{tmp_path / "set"}"\nffhq_root = "{tmp_path / "ffhq"}"\n')
    args = argparse.Namespace(config=str(run), data=str(tmp_path / "other"), kind=None, ffhq_root=None,
                              mask_dir=None, resize=None, seed=None, on_bad_sample=None, val_fraction=None,
                              num_workers=None, subsets=None)
    assert "ffhq_root" not in _data_table(args)
    args.ffhq_root = str(tmp_path / "their_ffhq")  # given for the other set: kept
    assert _data_table(args)["ffhq_root"] == str(tmp_path / "their_ffhq")


def test_a_stdout_that_cannot_hold_the_report_still_gets_the_files_and_the_report(landscapes, tmp_path, monkeypatch):
    """Its ² and · (an ASCII stdout; Windows' code page, redirected) failed the print after the work: exit 2 with
    the codec's words, and none of the results written."""
    import io
    import sys

    from trainer.evaluate import main

    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    rc = main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
               "--no-untouched", "--no-progress", "--max-samples", "2", "--out", str(tmp_path / "ev")])
    stream.flush()
    assert rc == 0 and sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["grid.png", "results.json",
                                                                              "results.md"]
    assert "\\xb2" in stream.buffer.getvalue().decode("ascii")  # the ² as an escape


def test_data_workers_start_as_the_trainers_do(landscapes, tmp_path, monkeypatch, recwarn):
    """The evaluation's workers forked the process torch had started threads in, as the trainer's did: from
    Python 3.12 on, each start warned "use of fork() may lead to deadlocks in the child"."""
    import multiprocessing
    import warnings

    import trainer.evaluate
    from trainer.evaluate import main

    contexts = []
    real = trainer.evaluate.DataLoader

    def recording(*args, **kwargs):
        loader = real(*args, **kwargs)
        contexts.append(loader.multiprocessing_context)
        return loader

    monkeypatch.setattr(trainer.evaluate, "DataLoader", recording)
    warnings.simplefilter("always", DeprecationWarning)
    assert main(["--data", landscapes["root"], "--mask-dir", landscapes["mask_dir"], "--resolution", "32",
                 "--max-samples", "2", "--grid-rows", "1", "--no-untouched", "--no-progress", "--num-workers", "2",
                 "--out", str(tmp_path / "ev")]) == 0
    default = multiprocessing.get_all_start_methods()[0]
    assert [c.get_start_method() for c in contexts] == ["forkserver" if default in ("fork", "forkserver") else default]
    assert not [w for w in recwarn if "fork()" in str(w.message)]


@pytest.mark.skipif(not os.path.isdir("/proc/self") or "forkserver" not in multiprocessing.get_all_start_methods(),
                    reason="lists the command's processes in /proc; needs a forkserver")
def test_an_evaluation_killed_outright_leaves_none_of_its_processes_running(shift_set, tmp_path, subprocess_env):
    """Killed with SIGKILL, the command left its data workers' forkserver, the workers and the resource tracker
    running for good (see test_loop's test of a killed trainer)."""
    import subprocess
    import sys
    import time

    from training_runs import REPO, kill_leaving_none, process_group

    cmd = [sys.executable, "-m", "trainer.evaluate", "--data", str(shift_set), "--split", "train", "--resolution",
           "256", "--batch-size", "1", "--num-workers", "2", "--no-progress", "--out", str(tmp_path / "ev")]
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        while len(process_group(proc.pid)) < 5:  # the command, the tracker, the server, two workers
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            time.sleep(0.05)
        assert kill_leaving_none(proc) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
