"""The benchmarks refuse numbers they cannot run with before any work (--rounds 0 ran every memory case, then
failed on a missing key)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("module, argv", [
    ("training_speed", ["--steps", "5"]),
    ("training_speed", ["--batch", "0"]),
    ("pipeline_speed", ["--rounds", "0"]),
    ("pipeline_speed", ["--threads", "0"]),
    ("synthesis_speed", ["--batch", "0"]),
    ("synthesis_speed", ["--rounds", "0"]),
])
def test_a_count_under_one_is_refused_by_name(module, argv, capsys):
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and "must be at least" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here")
def test_a_device_this_machine_lacks_and_a_pool_split_for_a_pool_are_refused_by_name(tmp_path, capsys):
    from benchmarks import pipeline_speed, training_speed

    with pytest.raises(SystemExit):
        pipeline_speed.main(["--device", "cuda"])
    assert "--device cuda: no CUDA GPU is visible to torch here" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # it ended in torch's traceback from naming the GPU
        training_speed.main(["--device", "cuda"])
    assert "--device cuda: no CUDA GPU is visible to torch here" in capsys.readouterr().err
    (tmp_path / "images").mkdir()
    with pytest.raises(SystemExit):
        training_speed.main(["--data", str(tmp_path)])
    assert "give the pool's root" in capsys.readouterr().err


def test_a_gpu_index_beyond_those_present_and_a_device_the_benchmark_cannot_time_are_refused(monkeypatch, capsys):
    """cuda:3 on a one-GPU machine used to pass the check and fail later inside torch."""
    import torch

    from benchmarks import pipeline_speed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit):
        pipeline_speed.main(["--device", "cuda:3"])
    assert "--device cuda:3: torch sees 1 CUDA GPU(s), numbered from 0; use cuda:0" in capsys.readouterr().err
    for other in ("mps", "cuda:x"):  # (not told to try mps, which it would then refuse)
        with pytest.raises(SystemExit):
            pipeline_speed.main(["--device", other])
        assert f"--device {other}: the benchmark runs on cpu or cuda[:N]" in capsys.readouterr().err


def test_tables_with_signs_beyond_latin_1_are_written_to_a_cp1252_file():
    """A table's − and Δ stopped a run redirected to a file on Windows (cp1252) after all its work."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = ("import io, sys; sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding='cp1252'); "
              "sys.argv = ['x', '--rounds', '0']\n"
              "from benchmarks import pipeline_speed\n"
              "try:\n    pipeline_speed.main(['--rounds', '0'])\nexcept SystemExit: pass\n"
              "print('\u2212 \u0394')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=repo, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script, argv, words", [
    ("video_and_reference.py", ["--frames", "2", "--timing-only"], "--frames must be at least 4"),  # NaN columns
    ("fullres_methods.py", ["--data", ".", "--size", "100"], "--size must be a multiple of 8"),  # after the load
])
def test_a_size_the_benchmark_cannot_use_is_refused_before_the_work(script, argv, words):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / script), *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and words in done.stderr


@pytest.mark.parametrize("pipeline", ["official", "ours fp32"])
def test_every_timed_call_applies_the_correction_whatever_the_weights_rule(tmp_path, pipeline):
    """Weights whose do-no-harm rule left the benchmark's subject as it was were timed doing nothing (no
    full-resolution step, no resize back), and their ratios printed as the pipeline's."""
    import argparse

    import numpy as np

    from benchmarks import pipeline_speed
    from phnet import PHNet, PHNetConfig
    from phnet.weights import save_pretrained

    config = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64,
                         output="image", correction_threshold=255.0)
    save_pretrained(PHNet(config), tmp_path / "strict")
    run, _ = pipeline_speed.build(argparse.Namespace(weights=str(tmp_path / "strict"), device="cpu"), pipeline)
    image, mask = pipeline_speed.photo(96, 128), pipeline_speed.portrait_mask(96, 128)
    assert not np.array_equal(run(image, mask), image)


@pytest.mark.parametrize("argv, words", [
    (["--weights", "/nope.safetensors"], "PHNet weights '/nope.safetensors' not found"),  # two tracebacks
    (["--config", "bogus"], "unknown PHNet preset 'bogus'"),
    (["--weights", "phnet/assets/default", "--output", "transform"], "--output sets the output of --config"),
    (["--weights", "examples"], "examples holds no model.safetensors"),  # tracebacks after the header
    (["--weights", "README.md"], "unsupported PHNet weights file type 'README.md'"),
])
def test_weights_and_settings_the_pipeline_benchmark_cannot_use_are_one_line(argv, words, capsys):
    from benchmarks import pipeline_speed

    with pytest.raises(SystemExit) as caught:
        pipeline_speed.main([*argv, "--sizes", "512²", "--rounds", "1", "--no-frames"])
    assert caught.value.code == 2 and words in capsys.readouterr().err


def test_weights_the_video_benchmark_cannot_load_are_one_line():
    """A raw FileNotFoundError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / "video_and_reference.py"), "--timing-only",
                           "--size", "64", "--weights", "/nope"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "PHNet weights '/nope' not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_weights_the_full_resolution_benchmark_cannot_load_are_one_line(tmp_path, monkeypatch, capsys):
    """A raw FileNotFoundError traceback."""
    import sys

    from benchmarks import fullres_methods

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    monkeypatch.setattr(sys, "argv", ["fullres_methods.py", "--data", str(tmp_path), "--weights", "/nope"])
    with pytest.raises(SystemExit) as caught:
        fullres_methods.main()
    assert caught.value.code == 2 and "PHNet weights '/nope' not found" in capsys.readouterr().err
