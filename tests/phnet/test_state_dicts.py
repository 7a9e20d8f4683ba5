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
