"""Reading a file of tensors safely: what is not a state_dict of tensors is named as such, in one line."""
from __future__ import annotations

import argparse
import re

import pytest
import torch

from phnet.state_dicts import read_tensors
from phnet.weights import load_model


@pytest.mark.parametrize("saved", [{1: torch.ones(1)}, {"state_dict": {1: torch.ones(1)}}])
def test_a_mapping_whose_keys_are_not_names_is_not_a_state_dict(tmp_path, saved):
    """Keys of another type than str gave a raw TypeError from the prefix stripping."""
    path = tmp_path / "numbered.pth"
    torch.save(saved, path)
    with pytest.raises(ValueError, match="does not contain a state_dict of tensors .*: it is not PHNet weights"):
        read_tensors(path, "PHNet weights")


def test_a_torchscript_archive_is_named_as_such_without_torch_s_warning(tmp_path):
    """It was called an empty file (torch's one sentence mentions weights_only, which is never passed on), after
    torch's warning about dispatching it to torch.jit.load."""
    import warnings

    path = tmp_path / "scripted.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's own deprecation, in newer versions
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"it is a TorchScript archive \(torch.jit.save\), not a state_dict: save "
                                             r"model.state_dict\(\) \(or .safetensors\) instead"):
            read_tensors(path, "PHNet weights")


@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_a_plain_pickle_of_protocol_4_is_refused_without_torch_s_warning(tmp_path, suffix):
    """torch's 'Detected pickle protocol 4 ... please file an issue' came before the refusal, which says it all."""
    import pickle
    import warnings

    path = tmp_path / f"plain{suffix}"
    with open(path, "wb") as f:
        pickle.dump({"weight": [1.0, 2.0]}, f, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=f"could not read {path} as plain PHNet weights"):
            read_tensors(path, "PHNet weights")
    assert [str(w.message) for w in caught] == []


def test_a_damaged_file_error_survives_pickling_and_copying(tmp_path):
    """Its constructor takes the path too: pickle and copy.copy called it with the message alone (TypeError), so a
    worker process or a host that copies exceptions lost the refusal."""
    import copy
    import pickle

    from phnet.state_dicts import DamagedFile

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(DamagedFile) as caught:
        read_tensors(path)
    for again in (pickle.loads(pickle.dumps(caught.value)), copy.copy(caught.value)):
        assert type(again) is DamagedFile and str(again) == str(caught.value) and again.path == caught.value.path


@pytest.mark.parametrize("name", ["WEIGHTS.SAFETENSORS", "weights.Sft", "WEIGHTS.PTH", "weights.Ckpt"])
def test_a_suffix_in_capitals_is_read_as_its_kind(tmp_path, name):
    """A download saved as MODEL.SAFETENSORS (a Windows tool's capitals) is the same file as model.safetensors."""
    from safetensors.torch import save_file

    path = tmp_path / name
    tensors = {"w": torch.arange(3.0)}
    if name.lower().endswith((".safetensors", ".sft")):
        save_file(tensors, str(path), metadata={"kind": "test"})
    else:
        torch.save(tensors, path)
    found, metadata = read_tensors(path)
    assert torch.equal(found["w"], tensors["w"])
    assert metadata == ({"kind": "test"} if name.lower().endswith((".safetensors", ".sft")) else {})


def test_a_zip_whose_central_directory_is_damaged_is_named_as_damaged(tmp_path):
    """zipfile's BadZipFile, raised while looking for a TorchScript archive, came through instead of the refusal
    that says to download the file again."""
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    data = bytearray(buffer.getvalue())
    at = data.rfind(b"PK\x01\x02")  # the last entry of the central directory
    data[at:at + 2] = b"XX"
    path = tmp_path / "damaged.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"could not read {path} as plain weights .*download it again"):
        read_tensors(path)


def test_torch_s_refusal_is_told_by_what_was_refused_in_plain_words():
    """Older torch gives its advice and the refused opcode on one line (which the advice filter drops whole), and
    a refusal may come in colour; what is told is the opcode, or the first sentence without the escape codes."""
    import pickle

    from phnet.state_dicts import load_failure

    one_line = pickle.UnpicklingError(
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, "
        "but it can result in arbitrary code execution. Do it only if you got the file from a trusted source. "
        "WeightsUnpickler error: Unsupported operand 149")
    assert load_failure(one_line) == "Unsupported operand 149"
    assert load_failure(RuntimeError("\x1b[1mPytorchStreamReader failed reading zip archive.\x1b[0m More.")) == (
        "PytorchStreamReader failed reading zip archive")


def test_an_empty_wrapper_is_passed_over_for_the_one_that_holds_the_tensors(tmp_path):
    """A trainer's checkpoint with an empty state_dict entry beside its model: the empty one gave no tensors."""
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {}, "model": {"module.w": torch.ones(2)}, "epoch": 3}, path)
    tensors, _ = read_tensors(path)
    assert list(tensors) == ["w"] and torch.equal(tensors["w"], torch.ones(2))


@pytest.mark.parametrize("saved,names", [
    ({"model_state_dict": {"w": torch.ones(1)}, "optimizer_state_dict": {}}, ["w"]),  # PyTorch's tutorial layout
    ({"model.module.w": torch.ones(1)}, ["w"]),  # a training module holding a DDP-wrapped model
    ({"model.w": torch.ones(1), "head.b": torch.ones(1)}, ["model.w", "head.b"]),  # model. is not every name's
])
def test_wrappers_and_their_prefixes_come_off_only_where_they_wrap_every_tensor(tmp_path, saved, names):
    path = tmp_path / "checkpoint.pth"
    torch.save(saved, path)
    assert list(read_tensors(path)[0]) == names


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth"])
def test_any_path_like_names_the_file(tmp_path, name):
    """Any os.PathLike of a str is read, as the signature says, not only a pathlib.Path; a missing one is named."""
    import os

    from safetensors.torch import save_file

    class Where(os.PathLike):
        def __init__(self, path):
            self.path = str(path)

        def __fspath__(self):
            return self.path

    tensors = {"w": torch.arange(3.0)}
    if name.endswith(".safetensors"):
        save_file(tensors, str(tmp_path / name))
    else:
        torch.save(tensors, tmp_path / name)
    found, _ = read_tensors(Where(tmp_path / name))
    assert torch.equal(found["w"], tensors["w"])
    with pytest.raises(FileNotFoundError, match=re.escape(f"weights not found: {tmp_path / 'gone.pth'}")):
        read_tensors(Where(tmp_path / "gone.pth"))


def test_pickled_objects_are_refused(tiny_model, tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": tiny_model.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ValueError) as e:
        load_model(path)
    msg = str(e.value)
    assert "UnpicklingError" in msg and "weights_only" in msg and "pickled Python objects" in msg
    assert "argparse.Namespace" in msg and "\x1b[" not in msg


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_payload_refusal_never_advises_weights_only_false(tmp_path, protocol):
    import pickle

    path = tmp_path / "payload.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": _Payload()}, f, protocol=protocol)
    with pytest.raises(ValueError) as e:
        load_model(path)
    msg = str(e.value)
    assert "weights_only=False" not in msg.replace(" ", "") and "will likely succeed" not in msg
    assert "set to `False`" not in msg and "trusted source" not in msg
    if protocol == 2:
        assert "unsupported global posix.system" in msg.lower()
    assert "pickled Python objects" in msg


def test_a_pth_whose_entries_would_unpack_to_gigabytes_is_refused_before_loading(tmp_path):
    """A deflated 1 GB tensor in a 1 MB .pth took 1.5 GB of memory before it was found not to be PHNet."""
    import zipfile

    from phnet.state_dicts import safe_torch_load

    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(4)}, plain)
    assert torch.equal(safe_torch_load(plain)["w"], torch.zeros(4))  # a checkpoint as saved passes
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
        out.writestr("bomb/data/9", bytes(200 << 20))  # 200 MB of zeros: a few hundred kB deflated
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"would unpack to 200 MB from a 0.2 MB file"):
        safe_torch_load(bomb)
