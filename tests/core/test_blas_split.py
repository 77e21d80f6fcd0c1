"""backprop._blas.matmul: mid-sized products in two blocks on two threads (the caller's and a
helper's), with the same bits as one BLAS call, whichever thread computes the second block."""

import multiprocessing
import threading

import numpy as np
import pytest

from backprop import _blas, _pair


@pytest.fixture
def split(monkeypatch):
    """The cut on its Python path (each block an ``np.matmul``, which ``_Recorder`` watches);
    the fast path's GIL-free blocks have tests of their own below (``gil_free``)."""
    monkeypatch.setattr(_pair, "run_products", lambda *args: False)
    _blas.set_blas_threads("auto")
    if not _blas._split:
        pytest.skip("no cut here: one core, or threadpoolctl cannot see NumPy's BLAS")
    yield _blas
    _blas.set_blas_threads("auto")


class _Recorder:
    """Stands in for ``_blas.np``: records which thread ran each ``matmul``, and holds the
    caller's first block until the helper has taken the second (so the test cannot pass by the
    caller computing both)."""

    def __init__(self, fail_in_helper=False, cut=True):
        self.threads = []
        self.cut = cut
        self.helper_started = threading.Event()
        self.fail_in_helper = fail_in_helper

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, out=None):
        me = threading.current_thread().name
        self.threads.append(me)
        if me == _pair.HELPER_NAME:
            self.helper_started.set()
            if self.fail_in_helper:
                raise MemoryError("injected in the helper")
        elif self.cut and len(self.threads) == 1:
            assert self.helper_started.wait(10), "the helper never took its block"
        return np.matmul(a, b, out=out)


SHAPES = [(128, 784, 512), (512, 128, 784), (128, 256, 512), (150, 6400, 16), (6, 25, 60000)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
def test_the_two_blocks_equal_one_blas_call(split, monkeypatch, rng, m, k, n, dtype, layout):
    a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n)).astype(dtype)
    a = a.T if layout[0] == "t" else a
    b = b.T if layout[1] == "t" else b
    assert split.SPLIT_MACS <= m * k * n < split.LARGE_MACS
    rec = _Recorder()
    monkeypatch.setattr(split, "np", rec)
    got = split.matmul(a, b)
    assert rec.threads.count(_pair.HELPER_NAME) == 1 and len(rec.threads) == 2
    split.gemm_threads(1)  # one BLAS thread, as each block had
    want = np.matmul(a, b)
    assert got.shape == want.shape and got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)  # bits: OpenBLAS sums each element alike


def test_a_leading_batch_of_one_and_out_are_cut_too(split, monkeypatch, rng):
    a = rng.standard_normal((1, 16, 150)).astype(np.float32)
    b = rng.standard_normal((1, 150, 6400)).astype(np.float32)
    out = np.full((1, 16, 6400), np.nan, np.float32)
    rec = _Recorder()
    monkeypatch.setattr(split, "np", rec)
    assert split.matmul(a, b, out=out) is out
    assert _pair.HELPER_NAME in rec.threads
    split.gemm_threads(1)
    np.testing.assert_array_equal(out, np.matmul(a, b))


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 8192, 32)])
def test_small_or_narrow_products_are_not_cut(split, monkeypatch, rng, shape):
    m, k, n = shape
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    rec = _Recorder(cut=False)
    monkeypatch.setattr(split, "np", rec)
    split.matmul(a, b)
    assert rec.threads == [threading.current_thread().name]


@pytest.mark.parametrize("blas_default", [2, 4])
def test_large_products_are_cut_unless_the_blas_has_more_threads(split, monkeypatch, rng,
                                                                 blas_default):
    """From LARGE_MACS up, a BLAS with two threads would only wake its own pool, whose threads
    spin after every call and slow the pair's helper (the LSTM step took 1.26x the time with
    its batch halves beside a 2-thread weight-gradient product): cut it like the smaller ones.
    A BLAS with more threads than the pair has keeps the large products."""
    monkeypatch.setattr(split, "_default", blas_default)
    split.set_blas_threads("auto")
    a = rng.standard_normal((512, 2016)).astype(np.float32)  # the benchmark LSTM's dW_hh
    b = rng.standard_normal((2016, 128)).astype(np.float32)
    assert a.shape[0] * a.shape[1] * b.shape[1] >= split.LARGE_MACS
    rec = _Recorder(cut=blas_default == 2)
    monkeypatch.setattr(split, "np", rec)
    got = split.matmul(a, b)
    if blas_default == 2:
        assert rec.threads.count(_pair.HELPER_NAME) == 1 and len(rec.threads) == 2
        monkeypatch.undo()
        split.set_blas_threads("auto")
        split.gemm_threads(1)
        np.testing.assert_array_equal(got, np.matmul(a, b))
    else:
        assert rec.threads == [threading.current_thread().name]
        assert split.blas_threads_for(split.LARGE_MACS) == 4


def test_one_thread_setting_never_cuts(split, monkeypatch, rng):
    split.set_blas_threads(1)
    rec = _Recorder(cut=False)
    monkeypatch.setattr(split, "np", rec)
    split.matmul(rng.standard_normal((128, 784)), rng.standard_normal((784, 512)))
    assert rec.threads == [threading.current_thread().name]


def test_a_failure_in_the_helper_reaches_the_caller(split, monkeypatch, rng):
    monkeypatch.setattr(split, "np", _Recorder(fail_in_helper=True))
    with pytest.raises(MemoryError, match="injected in the helper"):
        split.matmul(rng.standard_normal((128, 784)), rng.standard_normal((784, 512)))
    monkeypatch.undo()
    a, b = rng.standard_normal((128, 784)), rng.standard_normal((784, 512))
    split.set_blas_threads("auto")
    got = split.matmul(a, b)  # the next product is unaffected
    split.gemm_threads(1)
    np.testing.assert_array_equal(got, np.matmul(a, b))


def test_callers_on_several_threads_get_their_own_products(split, rng):
    pairs = [(rng.standard_normal((128, 784)).astype(np.float32),
              rng.standard_normal((784, 512)).astype(np.float32)) for _ in range(4)]
    results = [[] for _ in pairs]

    def work(i):
        for _ in range(5):
            results[i].append(split.matmul(*pairs[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    split.gemm_threads(1)
    for (a, b), got in zip(pairs, results):
        want = np.matmul(a, b)
        for g in got:
            np.testing.assert_array_equal(g, want)


def _product_in_child(conn):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((128, 784)), rng.standard_normal((784, 512))
    got = _blas.matmul(a, b)
    conn.send((got, _pair._helper is not None and _pair._helper.is_alive()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_starts_its_own_helper(split, rng):
    split.matmul(rng.standard_normal((128, 784)), rng.standard_normal((784, 512)))
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    p = ctx.Process(target=_product_in_child, args=(there,))
    p.start()
    assert here.poll(60), "the forked child hung on its product"
    got, alive = here.recv()
    p.join(10)
    rng1 = np.random.default_rng(1)
    a, b = rng1.standard_normal((128, 784)), rng1.standard_normal((784, 512))
    split.gemm_threads(1)
    np.testing.assert_array_equal(got, np.matmul(a, b))
    assert alive


# --- the fast path's blocks without the GIL (_fast/_pair_gemm.py) ---


@pytest.fixture
def gil_free(split, monkeypatch, needs_fast):
    """The cut through ``_pair.run_products``, with the helper made to take its block."""
    monkeypatch.undo()  # the real run_products
    _blas.set_blas_threads("auto")
    _pair.run_pair(lambda: None, lambda: None)  # the helper and its job array
    if _pair._server is None:
        pytest.skip("no GIL-free blocks here (NumPy's CBLAS gemm not found)")
    mod, job = _pair._server
    job[mod.WAIT_FOR_HELPER] = 1
    yield mod, job
    job[mod.WAIT_FOR_HELPER] = 0


@pytest.fixture
def needs_fast():
    from backprop import _fast

    if not _fast.is_enabled():
        pytest.skip("the fast path is off or numba is not installed")


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
def test_gil_free_blocks_equal_one_blas_call(gil_free, rng, m, k, n, dtype, layout):
    """The helper's block through the CBLAS gemm called from compiled code: the same gemm on
    the same operands as np.matmul, so the same bits, and the helper really ran it."""
    mod, job = gil_free
    a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n)).astype(dtype)
    a = a.T if layout[0] == "t" else a
    b = b.T if layout[1] == "t" else b
    runs = int(job[mod.HELPER_RUNS])
    got = _blas.matmul(a, b)
    assert job[mod.HELPER_RUNS] == runs + 1
    _blas.gemm_threads(1)
    np.testing.assert_array_equal(got, np.matmul(a, b))


def test_a_block_no_helper_takes_is_taken_back(gil_free, rng):
    mod, _ = gil_free
    from backprop._fast import _gemm

    job = mod.new_job()  # no helper serves this one
    a = rng.standard_normal((64, 100)).astype(np.float32)
    b = rng.standard_normal((100, 80)).astype(np.float32)
    out = np.full((64, 80), np.nan, np.float32)
    addr = _gemm.address(np.float32)
    assert mod.post(job, addr, a, b[:, 48:], out[:, 48:])
    mod.finish(job, addr, a, b[:, :48], out[:, :48])
    assert job[mod.HELPER_RUNS] == 0 and job[mod.STATE] == mod.IDLE
    _blas.gemm_threads(1)
    np.testing.assert_array_equal(out, np.matmul(a, b))


def test_a_python_job_reaches_a_spinning_helper(gil_free, rng):
    """Right after a product the helper spins in compiled code; a Python job posted then must
    bring it out (the PY flag), not wait for the spin to end."""
    _blas.matmul(rng.standard_normal((128, 784)), rng.standard_normal((784, 512)))
    names = []
    taken = threading.Event()

    def second():
        names.append(threading.current_thread().name)
        taken.set()

    _pair.run_pair(lambda: taken.wait(10), second)
    assert names == [_pair.HELPER_NAME]


def test_operands_the_gemm_cannot_take_go_through_numpy(gil_free, rng):
    mod, job = gil_free
    big = rng.standard_normal((256, 1568))
    a = big[::2, ::2]  # no unit stride either way
    b = rng.standard_normal((784, 512))
    runs = int(job[mod.HELPER_RUNS])
    got = _blas.matmul(a, b)
    assert job[mod.HELPER_RUNS] == runs
    _blas.gemm_threads(1)
    np.testing.assert_array_equal(got, np.matmul(a, b))


# --- a dense layer's bias (and ReLU) added by the thread that computed each block ---


def _linear_reference(x, w, b, relu):
    y = _blas.matmul(x, w.T)  # the cut product (one BLAS call's bits for most shapes, not all)
    y += b
    return np.maximum(y, 0) if relu else y


LINEAR_SHAPES = [(128, 784, 512), (128, 512, 256), (37, 1000, 300), (500, 200, 130),
                 (128, 784, 65)]


@pytest.mark.parametrize("n,k,m", LINEAR_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_linear_blocks_with_their_epilogue_equal_product_plus_bias(gil_free, rng, n, k, m,
                                                                   dtype, relu):
    """Both blocks' epilogues ran (the helper's on the helper: it was made to take its block),
    and the result is ``matmul``'s product, the bias added, ReLU: bit for bit, NaN and -0.0
    included."""
    mod, job = gil_free
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    x[0, 0] = np.nan  # a NaN row: ReLU keeps NaN
    b[3] = -np.inf
    runs = int(job[mod.HELPER_RUNS])
    got = _blas.linear(x, w, b, relu)
    assert got is not None and job[mod.HELPER_RUNS] == runs + 1
    ref = _linear_reference(x, w, b, relu)
    assert got.tobytes() == ref.tobytes()


def test_linear_relu_gives_positive_zero_as_np_maximum(gil_free):
    # x @ wᵀ = 0 everywhere; a bias of -0.0 leaves -0.0 before ReLU, +0.0 after (np.maximum)
    x = np.zeros((128, 256), np.float32)
    w = np.ones((256, 256), np.float32)
    b = np.full(256, -0.0, np.float32)
    got = _blas.linear(x, w, b, True)
    assert got.tobytes() == np.maximum(np.zeros((128, 256), np.float32), 0).tobytes()
    assert not np.signbit(got).any()


def test_linear_steps_aside_where_the_cut_does_not_apply(split, rng):
    # small products, mixed dtypes, and no GIL-free pair (this fixture): the caller's path
    x, w = rng.standard_normal((8, 16)), rng.standard_normal((32, 16))
    assert _blas.linear(x, w, np.zeros(32)) is None
    x = rng.standard_normal((128, 784)).astype(np.float32)
    w = rng.standard_normal((512, 784)).astype(np.float32)
    assert _blas.linear(x, w, np.zeros(512)) is None  # float64 bias
    assert _blas.linear(x, w, np.zeros(512, np.float32)) is None  # no run_products here


def test_a_block_with_an_epilogue_no_helper_takes_is_taken_back(gil_free, rng):
    mod, _ = gil_free
    from backprop._fast import _gemm

    job = mod.new_job()  # no helper serves this one
    x = rng.standard_normal((64, 100)).astype(np.float32)
    wt = rng.standard_normal((100, 80)).astype(np.float32)
    b = rng.standard_normal(80).astype(np.float32)
    out = np.full((64, 80), np.nan, np.float32)
    addr = _gemm.address(np.float32)
    assert mod.post_with_epilogue(job, addr, x, wt[:, 48:], out[:, 48:], mod.EPI_BIAS_RELU,
                                  b[48:])
    mod.finish_with_epilogue(job, addr, x, wt[:, :48], out[:, :48], mod.EPI_BIAS_RELU, b[:48])
    assert job[mod.HELPER_RUNS] == 0 and job[mod.STATE] == mod.IDLE
    assert out.tobytes() == np.maximum(x @ wt + b, 0).tobytes()
    # a plain block posted next on the same job carries no epilogue from before
    assert mod.post(job, addr, x, wt[:, 48:], out[:, 48:])
    mod.finish(job, addr, x, wt[:, :48], out[:, :48])
    assert out.tobytes() == (x @ wt).tobytes()


def test_a_bias_of_another_width_is_refused(gil_free, rng):
    mod, _ = gil_free
    out = np.empty((8, 80), np.float32)
    assert not mod.bias_fits(out[:, :48], np.zeros(48))  # float64 bias for a float32 block
    assert not mod.bias_fits(out[:, :48], np.zeros(96, np.float32)[::2])  # gaps
    assert not mod.bias_fits(out[:, :48], np.zeros(47, np.float32))
    assert mod.bias_fits(out[:, :48], np.zeros(48, np.float32))
