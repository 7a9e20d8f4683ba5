"""The one-thread rule for many small CPU ops, among threads and nested calls."""
from __future__ import annotations

import torch


def test_threads_that_share_one_thread_calls_get_the_first_callers_count_back():
    """A thread that started inside another's call read its 1, kept it, and ran every later call on one thread;
    a process-wide count restored only in the last thread out left the others on 1."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from phnet.tiling import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)

    def work(i):
        time.sleep(0.005 * i)
        for _ in range(4):
            with one_thread(torch.device("cpu")):
                time.sleep(0.005)
        return torch.get_num_threads()

    try:
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(work, range(8))) == [2] * 8
    finally:
        torch.set_num_threads(before)


def test_a_one_thread_call_inside_another_in_the_same_thread_changes_nothing():
    """A 16-bit picture's downscale runs its bands in a block of its own inside prepare_low's: the inner exit gave
    the full count back while the outer block still ran its small ops."""
    from phnet.tiling import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread(torch.device("cpu")):
            with one_thread(torch.device("cpu")):
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_thread_gives_back_the_count_of_its_own_time_not_of_an_earlier_call():
    """A count changed between two calls (by the user, or a host) is the one the second call restores."""
    from phnet.tiling import one_thread

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with one_thread(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        torch.set_num_threads(3)
        with one_thread(torch.device("cpu")):
            with one_thread(torch.device("cpu")):
                assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
