"""Recurrent kernels: the fused LSTM time step, the whole LSTM, GRU and RNN layers over a
sequence, and the split of a sequence into its steps.

All exist for speed: a recurrent layer runs the step kernels once per time step, so every op
saved there is saved T times in forward and again in backward (STYLE §10: per-op overhead is the
enemy); ``LSTMLayer`` goes further and makes a whole LSTM layer one op.

Their backward is differentiable: while a graph is being recorded (``create_graph=True``) it is
written in Tensor ops; otherwise (first order, nothing is recorded) the very same formulas run
in NumPy, which is only faster, never different.

With the fast path on (``backprop._fast``: numba and SciPy installed, ``BACKPROP_FAST`` not 0)
the layers' forward and first-order backward run as numba kernels (``_fast/recurrent.py``) on
the very same buffers; arrays the kernels are not compiled for take the NumPy loops, which stay
complete on their own.
"""


from backprop.ops.recurrent._common import Stack, Unbind, movedim0, unbind
from backprop.ops.recurrent.gru import GRULayer
from backprop.ops.recurrent.lstm import LSTMCellStep, LSTMLayer
from backprop.ops.recurrent.rnn import RNNLayer

__all__ = ["GRULayer", "LSTMCellStep", "LSTMLayer", "RNNLayer", "Stack", "Unbind", "movedim0",
           "unbind"]
