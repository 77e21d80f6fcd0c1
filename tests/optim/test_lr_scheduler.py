"""Every learning-rate schedule against ``torch.optim.lr_scheduler`` (skipped without torch).

Both sides drive an SGD (or Adam, for β₁ cycling) with two param groups of different lrs over
many steps; the lr of every group after every step must agree to rtol 1e-12 (the formulas are
PyTorch's recursive forms, the same float operations, so in practice they agree exactly).
State-dict round trips must continue exactly as an uninterrupted run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.optim import lr_scheduler

torch = pytest.importorskip("torch")

RTOL = 1e-12
LRS = (0.1, 0.03)

# (scheduler, kwargs, steps); kwargs with "lr_lambda" are rebuilt per side by _kwargs
CASES = [
    ("StepLR", {"step_size": 3}, 40),
    ("StepLR", {"step_size": 7, "gamma": 0.5}, 60),
    ("MultiStepLR", {"milestones": [5, 12, 12, 30], "gamma": 0.3}, 50),
    ("ExponentialLR", {"gamma": 0.93}, 80),
    ("CosineAnnealingLR", {"T_max": 10}, 75),  # past T_max: up again, bottom branch included
    ("CosineAnnealingLR", {"T_max": 17, "eta_min": 0.004}, 100),
    ("LinearLR", {}, 20),
    ("LinearLR", {"start_factor": 0.1, "end_factor": 0.6, "total_iters": 13}, 40),
    ("LinearLR", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 9}, 20),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 60}, 59),  # total_steps - 1 steps
    ("OneCycleLR", {"max_lr": [0.5, 0.2], "epochs": 7, "steps_per_epoch": 9,
                    "anneal_strategy": "linear", "pct_start": 0.25}, 62),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 50, "three_phase": True,
                    "div_factor": 10.0, "final_div_factor": 100.0}, 49),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 40, "cycle_momentum": False}, 39),
    ("LambdaLR", {"lr_lambda": "decay"}, 50),
    ("LambdaLR", {"lr_lambda": "per_group"}, 50),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _lambdas(kind):
    if kind == "decay":
        return lambda epoch: 0.95 ** epoch
    return [lambda epoch: 1.0 / (1 + epoch), lambda epoch: 0.5 + 0.5 * np.cos(epoch / 4.0)]


def _kwargs(kwargs):
    kwargs = dict(kwargs)
    if "lr_lambda" in kwargs:
        kwargs["lr_lambda"] = _lambdas(kwargs["lr_lambda"])
    return kwargs


def _bp_optimizer(name="SGD"):
    groups = [{"params": [bp.tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in LRS]
    if name == "Adam":
        return bp.optim.Adam(groups)
    return bp.optim.SGD(groups, momentum=0.9)


def _torch_optimizer(name="SGD"):
    groups = [{"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], "lr": lr}
              for lr in LRS]
    if name == "Adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups, momentum=0.9)


def _group_values(opt):
    """Each group's lr and momentum (or β₁), which OneCycleLR cycles."""
    return [(g["lr"], g["momentum"] if "momentum" in g else g["betas"][0])
            for g in opt.param_groups]


def _run(opt, sched, steps):
    """``steps`` rounds of optimizer.step() -> scheduler.step(); the lrs after each."""
    record = [list(sched.get_last_lr())]
    for _ in range(steps):
        opt.step()
        sched.step()
        record.append(list(sched.get_last_lr()))
        assert [g["lr"] for g in opt.param_groups] == record[-1]
    return np.array(record)


@pytest.mark.parametrize(("name", "kwargs", "steps"), CASES, ids=IDS)
def test_scheduler_lr_sequence_matches_torch(name, kwargs, steps):
    opt, topt = _bp_optimizer(), _torch_optimizer()
    ours = _run(opt, getattr(lr_scheduler, name)(opt, **_kwargs(kwargs)), steps)
    theirs = _run(topt, getattr(torch.optim.lr_scheduler, name)(topt, **_kwargs(kwargs)), steps)
    assert ours.shape == theirs.shape == (steps + 1, 2)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    np.testing.assert_allclose(_group_values(opt), _group_values(topt), rtol=RTOL, atol=0)


@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
def test_one_cycle_cycles_adam_beta1_as_torch(anneal_strategy):
    opt, topt = _bp_optimizer("Adam"), _torch_optimizer("Adam")
    kwargs = {"max_lr": 0.01, "total_steps": 30, "anneal_strategy": anneal_strategy,
              "base_momentum": 0.8, "max_momentum": [0.95, 0.9]}
    sched = lr_scheduler.OneCycleLR(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, **kwargs)
    for _ in range(29):
        np.testing.assert_allclose(_group_values(opt), _group_values(topt), rtol=RTOL, atol=0)
        assert opt.param_groups[0]["betas"][1] == 0.999
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    with pytest.raises(ValueError, match="total_steps is 30"):
        sched.step()
        sched.step()


class _Warmup:
    """A callable object: LambdaLR saves its ``__dict__`` (a plain lambda it cannot)."""

    def __init__(self, warmup):
        self.warmup = warmup

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.warmup)


@pytest.mark.parametrize(("name", "kwargs", "steps"), CASES, ids=IDS)
def test_scheduler_state_dict_round_trip_continues_identically(name, kwargs, steps):
    """Save after `split` steps, rebuild optimizer and scheduler, load both, finish: the lrs
    equal those of an uninterrupted run (and torch's)."""
    split = steps // 3
    opt = _bp_optimizer()
    whole = _run(opt, getattr(lr_scheduler, name)(opt, **_kwargs(kwargs)), steps)

    opt = _bp_optimizer()
    sched = getattr(lr_scheduler, name)(opt, **_kwargs(kwargs))
    first = _run(opt, sched, split)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt = _bp_optimizer()
    sched = getattr(lr_scheduler, name)(opt, **_kwargs(kwargs))
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    rest = _run(opt, sched, steps - split)
    np.testing.assert_array_equal(np.concatenate([first, rest[1:]]), whole)


def test_lambda_lr_saves_callable_objects_but_not_functions():
    opt = _bp_optimizer()
    sched = lr_scheduler.LambdaLR(opt, [_Warmup(5), lambda epoch: 0.9 ** epoch])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"warmup": 5}, None]
    topt = _torch_optimizer()
    tstate = torch.optim.lr_scheduler.LambdaLR(
        topt, [_Warmup(5), lambda epoch: 0.9 ** epoch]).state_dict()
    assert tstate["lr_lambdas"] == state["lr_lambdas"]
    # loading restores the object's attributes into the new scheduler's callable
    fresh = lr_scheduler.LambdaLR(_bp_optimizer(), [_Warmup(99), lambda epoch: 1.0])
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0].warmup == 5
    assert fresh.last_epoch == sched.last_epoch


def test_lambda_lr_warmup_object_matches_torch():
    opt, topt = _bp_optimizer(), _torch_optimizer()
    ours = _run(opt, lr_scheduler.LambdaLR(opt, _Warmup(7)), 20)
    theirs = _run(topt, torch.optim.lr_scheduler.LambdaLR(topt, _Warmup(7)), 20)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("StepLR", {"step_size": 4, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 9]}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 12, "eta_min": 0.001}),
    ("LinearLR", {"start_factor": 0.2, "total_iters": 8}),
])
def test_resuming_with_last_epoch_matches_torch(name, kwargs):
    """last_epoch >= 0 (with initial_lr in the groups) as PyTorch resumes; CosineAnnealingLR
    then takes its closed-form branch on the first step."""
    opt, topt = _bp_optimizer(), _torch_optimizer()
    for o in (opt, topt):
        for g, lr in zip(o.param_groups, (0.2, 0.05)):
            g["initial_lr"] = lr
    ours = _run(opt, getattr(lr_scheduler, name)(opt, last_epoch=5, **kwargs), 30)
    theirs = _run(topt, getattr(torch.optim.lr_scheduler, name)(topt, last_epoch=5, **kwargs),
                  30)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)


def test_resuming_without_initial_lr_raises_key_error():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(_bp_optimizer(), step_size=2, last_epoch=3)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("StepLR", {"step_size": 4, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 9, 9]}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 12, "eta_min": 0.001}),
    ("LinearLR", {"start_factor": 0.2, "total_iters": 8}),
])
def test_step_with_epoch_uses_the_closed_form_as_torch(name, kwargs):
    opt, topt = _bp_optimizer(), _torch_optimizer()
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 7, 10, 20, 4):
            opt.step()
            topt.step()
            sched.step(epoch)
            tsched.step(epoch)
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL,
                                       atol=0)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(1)


# --- ReduceLROnPlateau ---

PLATEAU_CASES = [
    {},
    {"patience": 2},
    {"patience": 1, "factor": 0.5, "cooldown": 2},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"mode": "max", "threshold": 0.05, "threshold_mode": "abs", "patience": 0},
    {"threshold": 0.1, "threshold_mode": "rel", "patience": 1, "cooldown": 1},
    {"threshold": 0.02, "threshold_mode": "abs", "patience": 1, "min_lr": 0.002},
    {"patience": 0, "factor": 0.3, "min_lr": [0.005, 0.0001]},
    {"patience": 0, "factor": 0.9999999, "eps": 1e-3},  # changes below eps are skipped
]


def _metrics(seed, n=80):
    """A noisy loss that falls, plateaus, then oscillates: improvements and stalls."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.maximum(1.0 / (1 + t / 5), 0.3) + 0.02 * np.sin(t) + 0.01 * rng.normal(size=n)


@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=[str(i) for i in range(len(PLATEAU_CASES))])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    opt, topt = _bp_optimizer(), _torch_optimizer()
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    sign = -1.0 if kwargs.get("mode") == "max" else 1.0
    reductions = 0
    for metric in sign * _metrics(7):
        before = sched.get_last_lr()
        opt.step()
        topt.step()
        sched.step(metric)
        tsched.step(metric)
        reductions += sched.get_last_lr() != before
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL, atol=0)
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == (
            tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter)
    if kwargs.get("eps") != 1e-3:
        assert reductions > 0  # the test exercises a reduction
    else:
        assert reductions == 0


def test_reduce_lr_on_plateau_round_trip_continues_identically():
    kwargs = {"patience": 1, "factor": 0.5, "cooldown": 2, "mode": "max"}
    metrics = -_metrics(3)
    opt = _bp_optimizer()
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    whole = []
    for m in metrics:
        sched.step(m)
        whole.append(sched.get_last_lr())
    opt = _bp_optimizer()
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    resumed = []
    for m in metrics[:30]:
        sched.step(m)
        resumed.append(sched.get_last_lr())
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt = _bp_optimizer()
    sched = lr_scheduler.ReduceLROnPlateau(opt)  # defaults: the state dict brings the options
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    assert (sched.mode, sched.mode_worse, sched.patience) == ("max", -np.inf, 1)
    for m in metrics[30:]:
        sched.step(m)
        resumed.append(sched.get_last_lr())
    assert resumed == whole


def test_reduce_lr_on_plateau_rejects_bad_options():
    opt = _bp_optimizer()
    with pytest.raises(ValueError, match="factor=1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode 'median'"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="median")
    with pytest.raises(ValueError, match="threshold mode 'pct'"):
        lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.0, 0.0, 0.0])


# --- bad input ---


def test_schedulers_reject_bad_options():
    opt = _bp_optimizer()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR([bp.tensor([1.0])], step_size=2)
    with pytest.raises(ValueError, match="step_size=0"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max=0"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="start_factor=0"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="end_factor=1.5"):
        lr_scheduler.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="total_steps or"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="total_steps, but got 0"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=0)
    with pytest.raises(ValueError, match="pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have one value per param group"):
        lr_scheduler.OneCycleLR(opt, max_lr=[0.1], total_steps=10)
    adagrad = bp.optim.Adagrad([bp.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="momentum or betas"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=0.1, total_steps=10)
