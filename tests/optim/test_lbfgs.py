"""LBFGS against torch.optim.LBFGS (issue 15): from the same start, the same iterates, losses,
evaluation counts and state, with and without the strong-Wolfe line search, in float64."""

from __future__ import annotations

import io

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch")


def _problem(rng):
    x = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    return x, y, rng.standard_normal((8, 5)) * 0.5, rng.standard_normal((3, 8)) * 0.5


def _run(m, data, steps, **kw):
    x_np, y_np, w1_np, w2_np = data
    w1, w2 = m.tensor(w1_np, requires_grad=True), m.tensor(w2_np, requires_grad=True)
    x, y = m.tensor(x_np), m.tensor(y_np)
    opt = m.optim.LBFGS([w1, w2], **kw)

    def closure():
        opt.zero_grad()
        loss = m.nn.functional.cross_entropy(m.tanh(x @ w1.T) @ w2.T, y)
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(steps)]
    state = opt.state[w1]
    return (losses, [w.detach().numpy().copy() for w in (w1, w2)], state["func_evals"],
            state["n_iter"], opt)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [100, 3])
def test_one_step_takes_torch_s_iterates(line_search_fn, history_size, rng):
    data = _problem(rng)
    kw = {"lr": 0.8, "history_size": history_size, "line_search_fn": line_search_fn}
    ours, theirs = _run(bp, data, 1, **kw), _run(torch, data, 1, **kw)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    for w, tw in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(w, tw, rtol=1e-9, atol=1e-10)
    assert ours[2:4] == theirs[2:4]  # closure evaluations and iterations, exactly


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_several_steps_reach_torch_s_losses_with_the_same_work(line_search_fn, rng):
    data = _problem(rng)
    kw = {"lr": 0.8, "history_size": 5, "line_search_fn": line_search_fn, "max_iter": 10}
    ours, theirs = _run(bp, data, 4, **kw), _run(torch, data, 4, **kw)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-8)
    assert ours[2:4] == theirs[2:4]
    assert ours[0][-1] < 0.5 * ours[0][0]


def test_tolerances_and_max_eval_stop_early_as_torch(rng):
    data = _problem(rng)
    for kw in ({"tolerance_grad": 1e-1}, {"tolerance_change": 1e-2}, {"max_eval": 7},
               {"max_iter": 3}):
        ours, theirs = _run(bp, data, 1, **kw), _run(torch, data, 1, **kw)
        assert ours[2:4] == theirs[2:4], kw
        np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=1e-9, atol=1e-10)


def test_state_dict_resumes_exactly(rng):
    data = _problem(rng)
    kw = {"history_size": 4, "line_search_fn": "strong_wolfe", "max_iter": 5}
    straight = _run(bp, data, 3, **kw)
    # two steps, save the optimizer's state, rebuild, load, one more step
    first = _run(bp, data, 2, **kw)
    opt = first[4]
    w1, w2 = opt.param_groups[0]["params"]
    buf = io.BytesIO()
    bp.save(opt.state_dict(), buf)  # its lists of flat vectors survive a checkpoint file
    buf.seek(0)
    saved = bp.load(buf)
    again = bp.optim.LBFGS([w1, w2], **kw)
    again.load_state_dict(saved)
    x, y = bp.tensor(data[0]), bp.tensor(data[1])

    def closure():
        again.zero_grad()
        loss = bp.nn.functional.cross_entropy(bp.tanh(x @ w1.T) @ w2.T, y)
        loss.backward()
        return loss

    again.step(closure)
    np.testing.assert_array_equal(w1.data, straight[1][0])


def test_lbfgs_refuses_what_torch_refuses():
    w = bp.zeros(2, requires_grad=True)
    with pytest.raises(ValueError):
        bp.optim.LBFGS([{"params": [w]}, {"params": [bp.zeros(1, requires_grad=True)]}])
    with pytest.raises(ValueError):
        torch.optim.LBFGS([{"params": [torch.zeros(2, requires_grad=True)]},
                           {"params": [torch.zeros(1, requires_grad=True)]}])
    with pytest.raises(ValueError):
        bp.optim.LBFGS([w], lr=-1.0)
    with pytest.raises(ValueError):
        bp.optim.LBFGS([w], line_search_fn="armijo")
    with pytest.raises((TypeError, RuntimeError)):
        bp.optim.LBFGS([w]).step(None)
