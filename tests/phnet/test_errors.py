"""Allocation failures told apart from other errors, the one line of an error worth showing, and the form of the
package's refusals."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from phnet.errors import error_line, out_of_memory
from tests.helpers.messages import first_words, last_words, message_templates

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


def _refusals_defined_in_phnet() -> set[type]:
    """Every public exception class the package defines, found by importing each of its modules."""
    import importlib
    import inspect
    import pkgutil

    import phnet

    found = set()
    for info in pkgutil.walk_packages(phnet.__path__, "phnet."):
        if info.name.endswith("__main__"):  # runs the command
            continue
        module = importlib.import_module(info.name)
        found |= {v for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, BaseException)
                  and v.__module__ == info.name and not n.startswith("_")}
    return found


def test_every_typed_refusal_reads_as_one_sentence_with_no_closing_period():
    """The package's messages end without a period (a host or the command ends the line in its own way); a few of
    these ended with one, and a refusal that quotes a host's words or a path must not make "..". A new refusal
    class fails here until it is given its cases."""
    from phnet import compositing, imageio, sources, state_dicts
    from phnet.sam import batch, loading

    made = {
        compositing.BatchesDiffer: [compositing.BatchesDiffer(2, 3)],
        compositing.FaintSubject: [compositing.FaintSubject(0.001, masked, several)
                                   for masked in (False, True) for several in (False, True)],
        compositing.AlphaLooksInverted: [compositing.AlphaLooksInverted(1, 0.9, 0.95, several, masked=masked)
                                         for masked in (False, True) for several in (False, True)],
        compositing.TransparentSubject: [compositing.TransparentSubject()],
        batch.NoPrompt: [batch.NoPrompt(False), batch.NoPrompt(True)],
        batch.PromptRefused: [batch.PromptRefused("the box lies outside the picture", points=None)],
        batch.GuideLooksInverted: [batch.GuideLooksInverted(2)],
        loading.SeveralCheckpoints: [loading.SeveralCheckpoints("models/sam", ["a.pth", "b.pth"]),
                                     loading.SeveralCheckpoints("models/sam", ["a.pth", "b.pth"], model_type="vit_b"),
                                     loading.SeveralCheckpoints("models/sam", ["a.pth"]).choosing("set hub_filename")],
        sources.NotInCache: [sources.NotInCache("weights", "owner/name", file, revision, "offline: HF_HUB_OFFLINE=1",
                                                caches)
                             for file, revision, caches in ((None, None, []), ("model.safetensors", "v1", ["/c"]),
                                                            (None, "main", ["/c", None]))],
        state_dicts.DamagedFile: [state_dicts.DamagedFile("x.safetensors is truncated", Path("x.safetensors"))],
        imageio.masks.ColourMaskError: [imageio.masks.ColourMaskError("m.png is a colour picture")],
    }
    assert _refusals_defined_in_phnet() == set(made)
    for refusal in (r for made_of_one in made.values() for r in made_of_one):
        text = str(refusal)
        assert "\n" not in text and ".." not in text.replace("...", "") and "  " not in text, text
        assert not text.endswith((".", " ")) and text[:1].strip(), text


def _message_templates():
    import phnet

    return message_templates(Path(phnet.__file__).parent)


def test_no_message_the_package_raises_ends_with_a_period_or_follows_a_quoted_error_with_one():
    """A few messages ended with a period where nearly all did not, and "{e}. Check the connection" read ".." after an
    error whose words end as a sentence: a quoted error goes through errors.clause."""
    ended, doubled = [], []
    templates = list(_message_templates())
    assert len(templates) > 150  # the walk finds them
    for where, message, caught in templates:
        last = last_words(message)
        if last is not None and last.rstrip().endswith(".") and not last.rstrip().endswith("..."):
            ended.append(where)
        parts = message.values if isinstance(message, ast.JoinedStr) else []
        for value, after in zip(parts, parts[1:]):
            if (isinstance(value, ast.FormattedValue) and ast.unparse(value.value) in caught
                    and isinstance(after, ast.Constant) and after.value.startswith(".")):
                doubled.append(where)
    assert ended == [] and doubled == []


def test_every_message_the_package_raises_starts_lower_case_unless_with_a_name():
    """20 messages (mostly the SAM ones and the paste's) started with a capital where the rest did not: a host puts
    its own words before them ("error: ", "PHNet: "). A name keeps its capitals (PHNet, SAM, SamSegmenter)."""
    capitals = []
    for where, message, _ in _message_templates():
        words = (first_words(message) or "").split()
        first = words[0] if words else ""
        if first[:1].isupper() and not any(c.isupper() for c in first[1:]):
            capitals.append(f"{where}: {first}")
    assert capitals == []


@pytest.mark.parametrize("text, kept", [("no connection.", "no connection"), ("no connection", "no connection"),
                                        ("wait...", "wait..."), ("ends. ", "ends"), (OSError("gone."), "gone")])
def test_clause_takes_off_one_closing_period(text, kept):
    from phnet.errors import clause

    assert clause(text) == kept
