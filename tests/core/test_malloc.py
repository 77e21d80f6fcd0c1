"""Training keeps freed memory for reuse (backprop._malloc): fewer page
faults for each step's fresh arrays, or nothing at all where it cannot or should not."""

import os
import subprocess
import sys

import pytest

# In a child: allocate and touch eight 4 MiB arrays, then free them, 20 times (a step's big
# intermediates, alive together until backward frees them), counting minor page faults, before
# and after retain_freed_memory(). glibc's own dynamic threshold serves one block reused alone,
# but trims the heap when a step frees more than twice that at once.
CHILD = """
import resource, sys
import numpy as np
from backprop._malloc import retain_freed_memory
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        arrays = [np.ones(1 << 20, np.float32) for _ in range(8)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
plain = faults()
ok = retain_freed_memory()
faults()  # the first reuse may still fault the block in once
print(ok, plain, faults())
"""


def _child(**env):
    full = {k: v for k, v in os.environ.items() if k != "BACKPROP_MALLOC"}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD], env=full, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_blocks_are_reused_without_page_faults():
    ok, plain, retained = _child()
    if not ok:
        pytest.skip("not glibc: mallopt's settings are not there")
    assert plain >= 20 * 4000  # 8,192 pages a round: most of them faulted in every time
    assert retained < plain / 20


def test_the_environment_can_leave_malloc_alone():
    ok, plain, again = _child(BACKPROP_MALLOC="default")
    assert not ok
    if sys.platform.startswith("linux"):
        assert again > plain / 2  # still faulting every round


def test_fit_sets_it(monkeypatch):
    import backprop as bp
    from backprop.train import trainer

    calls = []
    monkeypatch.setattr(trainer, "retain_freed_memory", lambda: calls.append(1) or True)
    model = bp.nn.Linear(2, 1)
    t = bp.train.Trainer(model, bp.nn.MSELoss(), bp.optim.SGD(model.parameters(), lr=0.1))
    t.fit(bp.data.TensorDataset(bp.randn(8, 2), bp.randn(8, 1)), epochs=1, batch_size=4)
    assert calls == [1]


def test_a_compiled_step_sets_it_when_it_captures(monkeypatch):
    import backprop as bp
    from backprop import _compile

    calls = []
    monkeypatch.setattr(_compile, "retain_freed_memory", lambda: calls.append(1) or True)
    model = bp.nn.Linear(2, 1)
    opt = bp.optim.SGD(model.parameters(), lr=0.1)

    @bp.compile
    def step(x, y):
        opt.zero_grad()
        loss = bp.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = bp.randn(4, 2), bp.randn(4, 1)
    step(x, y)
    assert calls == []  # the warm-up call runs eagerly
    step(x, y)
    step(x, y)
    assert calls == [1]  # once, at the capture


def test_the_first_backward_sets_it(monkeypatch):
    import backprop as bp
    from backprop.autograd import engine

    calls = []
    monkeypatch.setattr(engine, "retain_freed_memory", lambda: calls.append(1) or True)
    x = bp.randn(3, requires_grad=True)
    (x * x).sum().backward()
    assert calls == [1]


def test_a_backward_in_a_child_sets_it():
    code = ("import backprop as bp, backprop._malloc as m; print(m._done); "
            "x = bp.randn(3, requires_grad=True); (x * x).sum().backward(); print(m._done)")
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_MALLOC"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "None"  # importing backprop leaves malloc alone
    assert out[1] in ("True", "False")  # decided at the first backward (False: not glibc)
