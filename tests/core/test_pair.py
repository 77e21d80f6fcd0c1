"""backprop._pair: the second job runs on the helper thread when it is there to take it, on the
caller's thread when it is not, and never outlives the call."""

import threading
import time

import pytest

from backprop import _pair


def _names():
    seen = []
    started = threading.Event()

    def first():
        seen.append(("first", threading.current_thread().name))
        assert started.wait(10), "the helper never took the second job"
        return "result"

    def second():
        started.set()
        seen.append(("second", threading.current_thread().name))

    return seen, first, second


def test_the_helper_runs_the_second_job():
    seen, first, second = _names()
    assert _pair.run_pair(first, second) == "result"
    assert sorted(seen) == [("first", threading.current_thread().name),
                            ("second", _pair.HELPER_NAME)]


def test_the_caller_takes_the_job_back_from_a_helper_that_never_wakes(monkeypatch):
    _pair.run_pair(lambda: None, lambda: None)  # the helper exists and sleeps
    # the helper's own event, its set() made to wake nobody: a helper never scheduled
    monkeypatch.setattr(_pair._wake, "set", lambda: None)
    here = threading.current_thread().name
    seen = []
    _pair.run_pair(lambda: seen.append(threading.current_thread().name),
                   lambda: seen.append(threading.current_thread().name))
    assert seen == [here, here]


def test_a_failure_of_either_job_reaches_the_caller_and_the_next_pair_works():
    def boom():
        raise ValueError("second failed")

    started = threading.Event()

    def second():
        started.set()
        boom()

    with pytest.raises(ValueError, match="second failed"):
        _pair.run_pair(lambda: started.wait(10), second)
    helper_ran = []

    def slow_second():
        helper_ran.append(1)

    with pytest.raises(KeyError):
        _pair.run_pair(lambda: {}["missing"], slow_second)
    # dropped (taken back) or waited for: never still running after the call
    after = list(helper_ran)
    time.sleep(0.05)
    assert helper_ran == after and after in ([], [1])
    seen, first, second = _names()
    assert _pair.run_pair(first, second) == "result" and len(seen) == 2


def test_pairs_from_several_threads_all_complete():
    counts = [0] * 8
    lock = threading.Lock()

    def bump(i):
        with lock:
            counts[i] += 1

    def work(i):
        for _ in range(50):
            _pair.run_pair(lambda: bump(i), lambda: bump(i))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counts == [100] * 8
