"""Allocation failures told apart from other errors, and the one line of an error worth showing."""
from __future__ import annotations

import pytest

from phnet.errors import error_line, out_of_memory

WORKER_NO_MEMORY = ("Caught MemoryError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                    '  File "fetch.py", line 52, in fetch\n    data = [self.dataset[idx] for idx in indices]\n'
                    "numpy._core._exceptions._ArrayMemoryError: Unable to allocate 137. MiB for an array with shape "
                    "(6000, 8000, 3) and data type uint8")


@pytest.mark.parametrize("error, expected", [
    (RuntimeError(WORKER_NO_MEMORY), True),  # numpy's MemoryError in a data-loader worker, passed on
    (MemoryError("Unable to allocate 137. MiB for an array with shape (6000, 8000, 3) and data type uint8"), True),
    (OSError(12, "Cannot allocate memory"), True),  # errno 12: a fork or mmap that failed
    (RuntimeError("NCCL error: unhandled cuda error, NCCL version 2.21.5\nCuda failure 'out of memory'"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 6442450944 bytes"), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), False),  # a bug, not a full memory
    (RuntimeError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                  "ValueError: memory layout not supported"), False),
    # words of an allocation failure in another error's text: a file's name, a quoted line of code, a peer's
    (FileNotFoundError(2, "No such file or directory", "/data/out of memory/x.png"), False),
    (RuntimeError("unexpected value in manifest.json: 'Unable to allocate' is not a builder"), False),
    (RuntimeError("Caught KeyError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                  "    raise MemoryError('Cannot allocate memory')  # out of memory\nKeyError: 'mask'"), False),
    (RuntimeError("rank 0 could not open the run folder: OSError: [Errno 12] Cannot allocate memory"), False),
])
def test_out_of_memory_knows_each_allocation_failure(error, expected):
    """A worker's numpy MemoryError came as a RuntimeError 'Caught MemoryError ... Unable to allocate': not known."""
    assert out_of_memory(error) is expected


def test_error_line_is_the_wrapped_error_s_own_message():
    assert error_line(RuntimeError(WORKER_NO_MEMORY)) == ("Unable to allocate 137. MiB for an array with shape "
                                                        "(6000, 8000, 3) and data type uint8")
    assert error_line(RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")) == "CUDA out of memory."
    assert error_line(MemoryError()) == "MemoryError"


def test_refusals_made_from_their_fields_survive_pickling_and_copying():
    """Their constructors take fields and word the message: pickle and copy gave them the message alone
    (TypeError), so a worker process or a host copying exceptions lost the refusal."""
    import copy
    import pickle

    from phnet import compositing
    from phnet.sam import batch, loading

    refusals = [compositing.BatchesDiffer(2, 3), compositing.FaintSubject(0.001, True, False),
                compositing.AlphaLooksInverted(1, 0.9, 0.95, True, masked=True), compositing.TransparentSubject(),
                batch.NoPrompt(True), batch.PromptRefused("no box", points="2 points"), batch.GuideLooksInverted(2),
                loading.SeveralCheckpoints("models/sam", ["a.pth", "b.pth"], choose="a.pth", model_type="vit_b")]
    for refusal in refusals:
        for again in (pickle.loads(pickle.dumps(refusal)), copy.copy(refusal), copy.deepcopy(refusal)):
            assert type(again) is type(refusal) and str(again) == str(refusal) and vars(again) == vars(refusal)
