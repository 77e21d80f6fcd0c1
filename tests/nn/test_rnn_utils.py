"""``nn.utils.rnn`` and packed input to the recurrent layers, against PyTorch (issue 15): the same
packed data, batch sizes and index orders; from the same weights the same outputs, final states
and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.nn.utils import rnn as bp_rnn

torch = pytest.importorskip("torch")
t_rnn = torch.nn.utils.rnn


def _close(a, b, what=""):
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-9, atol=1e-11, err_msg=what)


def _same_packed(ours, theirs):
    _close(ours.data, theirs.data, "data")
    assert ours.batch_sizes.tolist() == theirs.batch_sizes.tolist()
    for a, b in ((ours.sorted_indices, theirs.sorted_indices),
                 (ours.unsorted_indices, theirs.unsorted_indices)):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.tolist() == b.tolist()


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, enforce_sorted", [([5, 3, 3, 1], True), ([2, 5, 1, 4], False)])
def test_pack_and_pad_match_torch_with_gradients(batch_first, lengths, enforce_sorted, rng):
    seqs = [rng.standard_normal((n, 3)) for n in lengths]
    ours = [bp.tensor(s, requires_grad=True) for s in seqs]
    theirs = [torch.tensor(s, requires_grad=True) for s in seqs]
    padded = bp_rnn.pad_sequence(ours, batch_first=batch_first, padding_value=-1.0)
    tpadded = t_rnn.pad_sequence(theirs, batch_first=batch_first, padding_value=-1.0)
    _close(padded, tpadded)
    packed = bp_rnn.pack_padded_sequence(padded, lengths, batch_first, enforce_sorted)
    tpacked = t_rnn.pack_padded_sequence(tpadded, lengths, batch_first, enforce_sorted)
    _same_packed(packed, tpacked)
    back, back_lengths = bp_rnn.pad_packed_sequence(packed, batch_first, 7.0, total_length=6)
    tback, tback_lengths = t_rnn.pad_packed_sequence(tpacked, batch_first, 7.0, total_length=6)
    _close(back, tback)
    assert back_lengths.tolist() == tback_lengths.tolist() and back_lengths.dtype == np.int64
    weights = rng.standard_normal(back.shape)
    (back * bp.tensor(weights)).sum().backward()
    (tback * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        _close(a.grad, b.grad)
    _same_packed(bp_rnn.pack_sequence(ours, enforce_sorted), t_rnn.pack_sequence(theirs,
                                                                               enforce_sorted))
    for a, b in zip(bp_rnn.unpack_sequence(packed), t_rnn.unpack_sequence(tpacked)):
        _close(a, b)


def test_pad_sequence_left_side_matches_torch(rng):
    seqs = [rng.standard_normal((n, 2)) for n in (1, 3)]
    _close(bp_rnn.pad_sequence([bp.tensor(s) for s in seqs], padding_side="left"),
           t_rnn.pad_sequence([torch.tensor(s) for s in seqs], padding_side="left"))


@pytest.mark.parametrize("bad", [
    lambda m, r: r.pack_padded_sequence(m.zeros(4, 2, 1), [2, 3]),          # not sorted
    lambda m, r: r.pack_padded_sequence(m.zeros(4, 2, 1), [3, 0]),          # a zero length
    lambda m, r: r.pad_packed_sequence(r.pack_padded_sequence(m.zeros(4, 1, 1), [4]),
                                       total_length=2),
])
def test_the_rnn_utilities_raise_where_torch_raises(bad):
    with pytest.raises((RuntimeError, ValueError)):
        bad(torch, t_rnn)
    with pytest.raises((RuntimeError, ValueError)):
        bad(bp, bp_rnn)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layout", ["two_layers", "bidirectional_batch_first_unsorted"])
def test_recurrent_layers_on_packed_input_match_torch(kind, layout, rng):
    kw = ({"num_layers": 2} if layout == "two_layers"
          else {"bidirectional": True, "batch_first": True})
    ours = getattr(bp.nn, kind)(3, 4, dtype=bp.float64, **kw)
    theirs = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.flatten_parameters(), theirs.flatten_parameters()  # a no-op in both, on the CPU
    lengths = [5, 3, 2] if layout == "two_layers" else [2, 5, 3]
    sorted_ = layout == "two_layers"
    batch_first = kw.get("batch_first", False)
    shape = (3, 5, 3) if batch_first else (5, 3, 3)
    x = rng.standard_normal(shape)
    xs, txs = bp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    h0 = rng.standard_normal((layers, 3, 4))
    hx = (bp.tensor(h0), bp.tensor(h0 * 0.5)) if kind == "LSTM" else bp.tensor(h0)
    thx = (torch.tensor(h0), torch.tensor(h0 * 0.5)) if kind == "LSTM" else torch.tensor(h0)
    packed = bp_rnn.pack_padded_sequence(xs, lengths, batch_first, enforce_sorted=sorted_)
    tpacked = t_rnn.pack_padded_sequence(txs, lengths, batch_first, enforce_sorted=sorted_)
    out, state = ours(packed, hx)
    tout, tstate = theirs(tpacked, thx)
    assert isinstance(out, bp_rnn.PackedSequence)
    _same_packed(out, tout)
    states = state if kind == "LSTM" else (state,)
    tstates = tstate if kind == "LSTM" else (tstate,)
    for s, ts in zip(states, tstates):
        _close(s, ts, "final state")
    loss = (out.data ** 2).sum() + sum((s * s).sum() for s in states)
    tloss = (tout.data ** 2).sum() + sum((s * s).sum() for s in tstates)
    loss.backward()
    tloss.backward()
    _close(xs.grad, txs.grad, "input gradient")
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.grad, tp.grad, name)
