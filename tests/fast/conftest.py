"""Fixtures for the fast-path tests: run a test on the NumPy path and, when numba is installed,
on the numba path too."""

import pytest

from backprop import _fast
from backprop.backends import fast


@pytest.fixture(params=["numpy", "numba"])
def path(request):
    """The path under test ('numpy' or 'numba'); skips 'numba' without the [fast] extra."""
    if request.param == "numba" and not _fast.is_available():
        pytest.skip("numba is not installed (pip install 'backprop[fast]')")
    with fast.flags(enabled=request.param == "numba"):
        yield request.param


@pytest.fixture
def needs_numba():
    """Skip without numba; otherwise run with the fast path on."""
    if not _fast.is_available():
        pytest.skip("numba is not installed (pip install 'backprop[fast]')")
    with fast.flags(enabled=True):
        yield


def spy_calls(monkeypatch, module, names) -> dict:
    """Replace each named kernel entry point of ``module`` by one that counts its calls (so a
    test can tell the kernel path from a silent fall-back to NumPy); returns the counts."""
    calls: dict = {}
    for name in names:
        real = getattr(module, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args)

        monkeypatch.setattr(module, name, counted)
    return calls


def helper_forced(real_run_pair, helper_names: list):
    """A stand-in for ``_pair.run_pair`` whose second job runs on the helper thread for
    certain: the caller's job waits until the helper has taken its own (else the caller could
    take it back and a test would pass without a second thread). Records the helper's name in
    ``helper_names`` for each job it ran."""
    import threading

    def run_pair(first, second):
        taken = threading.Event()

        def helper_side():
            helper_names.append(threading.current_thread().name)
            taken.set()
            return second()

        def caller_side():
            assert taken.wait(10), "the helper never took its half"
            return first()

        return real_run_pair(caller_side, helper_side)

    return run_pair
