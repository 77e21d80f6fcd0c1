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


import importlib

from backprop.ops.recurrent._common import Stack, Unbind, movedim0, unbind

__all__ = ["GRULayer", "LSTMCellStep", "LSTMLayer", "RNNLayer", "Stack", "Unbind", "movedim0",
           "unbind"]

# the layer ops load on first use (nn's recurrent modules ask for them): `import backprop`
# needs only unbind, and does not pay for three modules of layer code
_LAZY = {"GRULayer": "gru", "LSTMCellStep": "lstm", "LSTMLayer": "lstm", "RNNLayer": "rnn"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backprop.ops.recurrent' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"backprop.ops.recurrent.{module}"), name)
    globals()[name] = value
    return value
