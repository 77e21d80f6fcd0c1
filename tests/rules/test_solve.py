"""Every rule learns, through the ordinary training loop: XOR exactly, and the 8x8 digits."""

import pytest

import backprop as bp
from backprop import rules
from backprop.data import TensorDataset
from backprop.data.datasets import load_digits, xor
from backprop.train import Trainer

RULES = ("backprop", "fa", "dfa", "ff", "perturbation")


def _mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [bp.nn.Linear(a, b), bp.nn.Tanh()]
    return bp.nn.Sequential(*layers, bp.nn.Linear(sizes[-2], sizes[-1]))


def _build(rule, sizes, ff_hidden, directions):
    """(model, loss_fn) of a rule; backprop, fa and dfa share the initial weights."""
    bp.manual_seed(0)
    ce = bp.nn.CrossEntropyLoss()
    if rule == "ff":
        ff = rules.ForwardForward(sizes[0], ff_hidden, sizes[-1])
        return ff, ff.loss
    if rule == "perturbation":
        wp = rules.WeightPerturbation(_mlp(sizes[:1] + (16,) + sizes[-1:]), ce, epsilon=1e-2,
                                      directions=directions)
        return wp, wp.loss
    net = _mlp(sizes)
    return {"backprop": net, "fa": rules.feedback_alignment(net),
            "dfa": rules.DFA(net) if len(sizes) > 2 else None}[rule], ce


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_solves_xor(rule):
    model, loss_fn = _build(rule, (2, 16, 2), (16, 16), directions=4)
    lr = {"ff": 0.03, "perturbation": 0.05}.get(rule, 0.05)
    trainer = Trainer(model, loss_fn, bp.optim.Adam(model.parameters(), lr=lr), seed=0,
                      progress=False)
    trainer.fit(xor(), epochs=150, batch_size="full")
    assert trainer.evaluate(xor())["accuracy"] == 1.0


@pytest.fixture(scope="module")
def digits():
    train, test = load_digits(train=True, seed=0), load_digits(train=False, seed=0)
    flat = lambda ds: TensorDataset(ds.data.reshape(len(ds), -1), ds.targets)  # noqa: E731
    return flat(train), flat(test)


@pytest.mark.parametrize("rule,floor", [("backprop", 0.85), ("fa", 0.85), ("dfa", 0.85),
                                        ("ff", 0.85), ("perturbation", 0.75)])
def test_every_rule_learns_the_digits_in_seconds(digits, rule, floor):
    train, test = digits
    model, loss_fn = _build(rule, (64, 128, 10), (128, 128), directions=8)
    lr = {"ff": 3e-3, "perturbation": 1e-2}.get(rule, 1e-3)
    trainer = Trainer(model, loss_fn, bp.optim.Adam(model.parameters(), lr=lr), seed=0,
                      progress=False)
    trainer.fit(train, epochs=8, batch_size=32)
    accuracy = trainer.evaluate(test)["accuracy"]
    assert accuracy >= floor, f"{rule}: {accuracy:.3f}"
