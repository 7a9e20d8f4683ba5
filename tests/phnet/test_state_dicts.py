"""Reading a file of tensors safely: what is not a state_dict of tensors is named as such, in one line."""
from __future__ import annotations

import pytest
import torch

from phnet.state_dicts import read_tensors


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
