"""RNN, LSTM and GRU on a ``PackedSequence``: each sequence runs for its own length.

The batch is packed longest first, so at step t exactly the first ``batch_sizes[t]`` rows are
running: each step updates that prefix of the state and carries the rest unchanged. A sequence's
final state is therefore its state at its last real step, and in a reverse direction a sequence
starts from the initial state at its own last step, as in PyTorch. This path loops over steps
with the cells' ops (it cannot use the fused whole-layer LSTM op, whose loop updates every row),
so it is slower than padded input; the maths is the same as the padded layers'.
"""

from __future__ import annotations

from backprop import creation
from backprop.nn.recurrent import _gru_step
from backprop.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from backprop.ops.activation import relu
from backprop.ops.elementwise import tanh
from backprop.ops.linalg import MatMul
from backprop.ops.recurrent import LSTMCellStep
from backprop.ops.shape import cat, index_select, stack
from backprop.tensor import Tensor


def forward_packed(rnn, packed: PackedSequence, hx=None) -> tuple:
    """``rnn(packed, hx)`` for an ``RNNBase`` module: returns (PackedSequence, h_n) or
    (PackedSequence, (h_n, c_n)) with the states in the caller's batch order."""
    data = packed.data
    if data.ndim != 2 or data.shape[1] != rnn.input_size:
        raise ValueError(f"{type(rnn).__name__}: packed data of shape {data.shape} does not "
                         f"have input_size={rnn.input_size} features")
    batch_sizes = packed.batch_sizes.data
    batch = int(batch_sizes[0])
    directions = 2 if rnn.bidirectional else 1
    state_shape = (rnn.num_layers * directions, batch, rnn.hidden_size)
    lstm = rnn.mode == "LSTM"
    if hx is None:
        h0 = c0 = creation.zeros(*state_shape, dtype=data.dtype)
    else:
        h0, c0 = hx if lstm else (hx, hx)
        for t, what in ((h0, "h_0"), (c0, "c_0")):
            rnn._check_state(t, state_shape, what)
        if packed.sorted_indices is not None:  # the states follow the packed (sorted) order
            h0 = index_select(h0, 1, packed.sorted_indices)
            c0 = index_select(c0, 1, packed.sorted_indices)
    # padded, time-major, in the packed (sorted) order: what each layer reads and writes
    x, _ = pad_packed_sequence(packed._replace(sorted_indices=None, unsorted_indices=None))
    sizes = [int(b) for b in batch_sizes]

    def run(x, h, c, layer, d):
        out, h, c = _run(rnn, x, h, c, layer, d, sizes)
        return h, c, out

    x, h_n, c_n = rnn._layers(x, h0, c0, run)
    lengths = [sum(1 for b in sizes if b > i) for i in range(batch)]
    out = pack_padded_sequence(x, lengths)
    out = PackedSequence(out.data, packed.batch_sizes, packed.sorted_indices,
                         packed.unsorted_indices)
    h_n = _unsort(stack(h_n, 0), packed)
    if not lstm:
        return out, h_n
    return out, (h_n, _unsort(stack(c_n, 0), packed))


def _unsort(state: Tensor, packed: PackedSequence) -> Tensor:
    if packed.unsorted_indices is None:
        return state
    return index_select(state, 1, packed.unsorted_indices)


def _run(rnn, x: Tensor, h: Tensor, c, layer: int, d: int, sizes: list[int]) -> tuple:
    """One direction of one layer over (T, N, H_in): outputs (T, N, H), final h and c."""
    w_hh, b_hh, xg = rnn._input_gates(x, layer, d)
    steps, batch = x.shape[0], x.shape[1]
    mode = rnn.mode
    outs = [None] * steps
    for t in (range(steps - 1, -1, -1) if d else range(steps)):
        n = sizes[t]  # the running sequences: a prefix of the batch
        xt, ht = xg[t, :n], h[:n]
        if mode == "LSTM":
            h_new, c_new = LSTMCellStep.apply(xt, ht, c[:n], w_hh)
            c = c_new if n == batch else cat([c_new, c[n:]], 0)
        elif mode == "GRU":
            h_new = _gru_step(xt, ht, w_hh, b_hh)
        else:
            act = tanh if mode == "RNN_TANH" else relu
            h_new = act(xt + MatMul.apply(ht, w_hh, transpose_b=True))
        h = h_new if n == batch else cat([h_new, h[n:]], 0)
        outs[t] = h
    return stack(outs, 0), h, c
