"""Recurrent layers: RNN, LSTM, GRU and their cells, with PyTorch's names, shapes, gate order,
initialisation and return values, so a PyTorch ``state_dict`` loads and gives the same outputs.

Backpropagation through time is plain backprop over the unrolled graph. Each layer computes
the input projection of *all* time steps in one GEMM before its loop; the loop then runs one
matrix product with ``W_hh`` and the gate arithmetic per step. The whole loop of a layer and
direction is one op, ``ops.recurrent.LSTMLayer``, ``GRULayer`` and
``RNNLayer`` (NumPy time loop, hand-derived BPTT); ``LSTMCell`` uses the fused step
``ops.recurrent.LSTMCellStep``.

Truncated BPTT: carry the state from one chunk of the sequence to the next, cut from the graph
with :func:`detach_state` every k steps::

    state = None
    for t in range(0, seq_len, k):
        output, state = lstm(x[t : t + k], state)
        loss = criterion(head(output), y[t : t + k])
        opt.zero_grad(); loss.backward(); opt.step()
        state = detach_state(state)   # keep the values, drop the history

With k equal to the sequence length this is full BPTT.
"""

from __future__ import annotations

import math

from backprop import creation
from backprop.devices import check_device
from backprop.errors import ShapeError, check_same_dtype
from backprop.nn import _functional_layers as FL
from backprop.nn import init
from backprop.nn.module import Module, Parameter
from backprop.nn.utils.rnn import PackedSequence
from backprop.ops.activation import relu
from backprop.ops.elementwise import sigmoid, tanh
from backprop.ops.linalg import Addmm, MatMul
from backprop.ops.recurrent import GRULayer, LSTMCellStep, LSTMLayer, RNNLayer
from backprop.ops.shape import cat, reshape, stack, transpose
from backprop.tensor import Tensor

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase",
           "detach_state", "gru_cell", "lstm_cell", "rnn_relu_cell", "rnn_tanh_cell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def detach_state(state):
    """Cut a recurrent state from its history (truncated BPTT): a Tensor, or a (nested) tuple or
    list of them as LSTM's ``(h, c)``, comes back detached; ``None`` stays ``None``.

    Example:
        >>> import backprop as bp
        >>> h = bp.ones(2, requires_grad=True) * 2
        >>> detach_state((h, h))[0].requires_grad
        False
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected a Tensor or a tuple of them, got {type(state)}")


# --- one step of each cell (functional; the layers' loops inline the same maths) ---


def _proj(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x Wᵀ (+ b). Addmm adds the bias into the product's own output: MatMul then Add would
    allocate and sweep a second (T·N, G·H) array (0.3-0.7 ms a step for the benchmark LSTM)."""
    if b is None:
        return MatMul.apply(x, w, transpose_b=True)
    if x.ndim == 2 and b.ndim == 1:
        return Addmm.apply(x, w, b)
    return MatMul.apply(x, w, transpose_b=True) + b


def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh). Shapes: (N, H_in), (N, H) -> (N, H)."""
    return tanh(_proj(input, w_ih, b_ih) + _proj(hx, w_hh, b_hh))


def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh). Shapes: (N, H_in), (N, H) -> (N, H)."""
    return relu(_proj(input, w_ih, b_ih) + _proj(hx, w_hh, b_hh))


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None) -> tuple:
    """PyTorch's LSTM cell, gates (i, f, g, o): returns (h', c'). Shapes: (N, H_in), ((N, H),
    (N, H)) -> ((N, H), (N, H))."""
    h, c = hx
    xg = _proj(input, w_ih, b_ih)
    if b_hh is not None:
        xg = xg + b_hh
    return LSTMCellStep.apply(xg, h, c, w_hh)


def _gru_step(xg: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    n = h.shape[-1]
    hg = _proj(h, w_hh, b_hh)
    r = sigmoid(xg[:, :n] + hg[:, :n])
    z = sigmoid(xg[:, n : 2 * n] + hg[:, n : 2 * n])
    new = tanh(xg[:, 2 * n :] + r * hg[:, 2 * n :])
    return new + z * (h - new)  # = (1 - z)·n + z·h


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """PyTorch's GRU cell, gates (r, z, n): n = tanh(W_in x + b_in + r·(W_hn h + b_hn)),
    h' = (1 - z)·n + z·h. Shapes: (N, H_in), (N, H) -> (N, H)."""
    return _gru_step(_proj(input, w_ih, b_ih), hx, w_hh, b_hh)


# --- layers ---


class RNNBase(Module):
    """The multi-layer recurrent network behind RNN, LSTM and GRU (PyTorch's ``RNNBase``)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype=None) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(
                f"{self._name()}: input_size, hidden_size and num_layers must be positive, got "
                f"{input_size}, {hidden_size} and {num_layers}"
            )
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{self._name()}: dropout must be a number in [0, 1], got {dropout}")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        gates = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            size_in = input_size if layer == 0 else hidden_size * directions
            for d in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx,
                        Parameter(creation.empty(gates, size_in, dtype=dtype)))
                setattr(self, "weight_hh" + sfx,
                        Parameter(creation.empty(gates, hidden_size, dtype=dtype)))
                if bias:
                    setattr(self, "bias_ih" + sfx, Parameter(creation.empty(gates, dtype=dtype)))
                    setattr(self, "bias_hh" + sfx, Parameter(creation.empty(gates, dtype=dtype)))
        self.reset_parameters()

    def _name(self) -> str:
        return type(self).__name__

    def flatten_parameters(self) -> None:
        """A no-op, as PyTorch's on the CPU (it compacts weights for cuDNN)."""

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/√hidden_size, 1/√hidden_size), as PyTorch."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, d: int) -> tuple:
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        def get(name):
            return getattr(self, name)

        if self.bias:
            return (get("weight_ih" + sfx), get("weight_hh" + sfx), get("bias_ih" + sfx),
                    get("bias_hh" + sfx))
        return get("weight_ih" + sfx), get("weight_hh" + sfx), None, None

    def _check_input(self, input: Tensor) -> tuple:
        name = self._name()
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ShapeError(
                f"{name}: expected a 3-D input {layout} or a 2-D unbatched input (L, H_in), got "
                f"shape {input.shape}"
            )
        if input.shape[-1] != self.input_size:
            raise ShapeError(
                f"{name}: input of shape {input.shape} has {input.shape[-1]} features in its last "
                f"dimension, expected input_size={self.input_size} (layout {layout})"
            )
        check_same_dtype(name, input, self.weight_ih_l0, layer=True)

    def _check_state(self, h: Tensor, expected: tuple, what: str) -> None:
        if not isinstance(h, Tensor) or tuple(h.shape) != expected:
            got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ShapeError(
                f"{self._name()}: expected {what} of shape {expected}, got {got} "
                "(num_layers * num_directions, batch, hidden_size)"
            )

    def forward(self, input: Tensor, hx=None):
        if isinstance(input, PackedSequence):
            # imported here: the packed path builds on this module's cells
            from backprop.nn._recurrent_packed import forward_packed

            return forward_packed(self, input, hx)
        self._check_input(input)
        unbatched = input.ndim == 2
        if unbatched:
            input = reshape(input, (input.shape[0], 1, input.shape[1]))
        elif self.batch_first:
            input = transpose(input, 0, 1)
        seq, batch = input.shape[0], input.shape[1]
        directions = 2 if self.bidirectional else 1
        state_shape = (self.num_layers * directions, batch, self.hidden_size)
        lstm = self.mode == "LSTM"
        if hx is None:
            zeros = creation.zeros(*state_shape, dtype=input.dtype)
            h0 = c0 = zeros
        else:
            shown = state_shape[:1] + state_shape[2:] if unbatched else state_shape
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{self._name()}: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
                self._check_state(h0, shown, "h_0")
                self._check_state(c0, shown, "c_0")
            else:
                h0 = c0 = hx
                self._check_state(h0, shown, "h_0")
            if unbatched:
                h0, c0 = reshape(h0, state_shape), reshape(c0, state_shape)
        if seq == 0:
            raise ShapeError(f"{self._name()}: the input sequence is empty (shape {input.shape})")
        output, h_n, c_n = self._layers(input, h0, c0, self._run)
        h_n = stack(h_n, 0)
        if unbatched:
            output = reshape(output, (seq, output.shape[2]))
            h_n = reshape(h_n, (h_n.shape[0], h_n.shape[2]))
        elif self.batch_first:
            output = transpose(output, 0, 1)
        if not lstm:
            return output, h_n
        c_n = stack(c_n, 0)
        if unbatched:
            c_n = reshape(c_n, (c_n.shape[0], c_n.shape[2]))
        return output, (h_n, c_n)

    def _layers(self, x: Tensor, h0: Tensor, c0: Tensor, run) -> tuple:
        """Every layer and direction in turn, each by ``run(x, h, c, layer, d) -> (h, c,
        outputs)``: the last layer's outputs (T, N, D·H) and the lists of final h and c."""
        directions = 2 if self.bidirectional else 1
        lstm = self.mode == "LSTM"
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                h, c, out = run(x, h0[k], c0[k] if lstm else None, layer, d)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = FL.dropout(x, self.dropout, True)
        return x, h_n, c_n

    def _input_gates(self, x: Tensor, layer: int, d: int) -> tuple:
        """(W_hh, b_hh, the input projection of every step (T, N, G·H) in one GEMM)."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
        seq, batch = x.shape[0], x.shape[1]
        bias = b_ih
        if b_ih is not None and self.mode != "GRU":  # GRU's b_hn sits inside r·(...): apart
            bias = b_ih + b_hh
        xg = reshape(_proj(reshape(x, (seq * batch, x.shape[2])), w_ih, bias),
                     (seq, batch, w_ih.shape[0]))
        return w_hh, b_hh, xg

    def _run(self, x: Tensor, h: Tensor, c, layer: int, d: int) -> tuple:
        """One direction of one layer: (T, N, H_in) -> last h, last c, outputs (T, N, H)."""
        w_hh, b_hh, xg = self._input_gates(x, layer, d)
        mode = self.mode
        if mode == "LSTM":  # the whole time loop is one op (a reverse direction runs T-1 .. 0)
            hs, h, c = LSTMLayer.apply(xg, h, c, w_hh, reverse=bool(d))
            return h, c, hs
        if mode == "GRU":  # one op too; b_hn stays inside r·(...), so b_hh goes in apart
            hs, h = GRULayer.apply(xg, h, w_hh, b_hh, reverse=bool(d))
            return h, c, hs
        hs, h = RNNLayer.apply(xg, h, w_hh, nonlinearity="tanh" if mode == "RNN_TANH"
                               else "relu", reverse=bool(d))
        return h, c, hs

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN, PyTorch's ``RNN``: hₜ = tanh(xₜ W_ihᵀ + b_ih + hₜ₋₁ W_hhᵀ + b_hh) (or relu).

    Args:
        input_size: features per time step.
        hidden_size: features of the hidden state.
        num_layers: stacked layers (each takes the previous one's output sequence).
        nonlinearity: ``'tanh'`` or ``'relu'``.
        bias: whether to learn ``bias_ih`` and ``bias_hh``.
        batch_first: input and output laid out (N, L, ·) instead of (L, N, ·).
        dropout: dropout probability on each layer's output except the last's (training only).
        bidirectional: also run each layer backwards in time, concatenating the two outputs.
        dtype: parameter dtype (float32 by default).

    Shapes: input (L, N, H_in) [(N, L, H_in) if batch_first, (L, H_in) unbatched], h_0
    (D·num_layers, N, H) or None (zeros) -> output (L, N, D·H), h_n (D·num_layers, N, H), with
    D = 2 if bidirectional else 1. Parameters ``weight_ih_l{k}`` (H, H_in or D·H),
    ``weight_hh_l{k}`` (H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,), ``..._reverse`` for the
    backward direction; all from U(-1/√H, 1/√H).

    Example:
        >>> import backprop as bp
        >>> out, h_n = bp.nn.RNN(3, 5, num_layers=2)(bp.ones(7, 2, 3))
        >>> out.shape, h_n.shape
        ((7, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype=None,
                 device=None) -> None:
        check_device(device, "module")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, PyTorch's ``LSTM`` (gates i, f, g, o in that order)::

        i, f, o = σ(xW_i… + hW_h… + b…),  g = tanh(…),  c' = f·c + i·g,  h' = o·tanh(c')

    Args as :class:`RNN` (without ``nonlinearity``). ``hx`` is ``(h_0, c_0)`` or None; returns
    ``output, (h_n, c_n)``. Weights are (4H, ·), the four gates stacked as [i; f; g; o].

    Example:
        >>> import backprop as bp
        >>> out, (h_n, c_n) = bp.nn.LSTM(3, 5, batch_first=True, bidirectional=True)(
        ...     bp.ones(2, 7, 3))
        >>> out.shape, h_n.shape, c_n.shape
        ((2, 7, 10), (2, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype=None, device=None) -> None:
        check_device(device, "module")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's ``GRU`` (gates r, z, n in that order)::

        r, z = σ(xW_i… + b_i… + hW_h… + b_h…),  n = tanh(xW_in + b_in + r·(hW_hn + b_hn)),
        h' = (1 - z)·n + z·h

    Args, shapes and return values as :class:`RNN`; weights are (3H, ·), stacked [r; z; n].

    Example:
        >>> import backprop as bp
        >>> out, h_n = bp.nn.GRU(3, 5)(bp.ones(7, 2, 3))
        >>> out.shape, h_n.shape
        ((7, 2, 5), (1, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype=None, device=None) -> None:
        check_device(device, "module")
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype)


# --- cells ---


class RNNCellBase(Module):
    """Parameters ``weight_ih`` (G·H, H_in), ``weight_hh`` (G·H, H), ``bias_ih``, ``bias_hh``
    (G·H,), all from U(-1/√H, 1/√H), as PyTorch's cells."""

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=None, device=None) -> None:
        super().__init__()
        check_device(device, "module")
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"{type(self).__name__}: input_size and hidden_size must be positive, got "
                f"{input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = self._gates * hidden_size
        self.weight_ih = Parameter(creation.empty(g, input_size, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(g, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(g, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(g, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/√hidden_size, 1/√hidden_size), as PyTorch."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input: Tensor, hx, n_states: int) -> tuple:
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in (1, 2) or (
                input.shape[-1] != self.input_size):
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ShapeError(
                f"{name}: expected input of shape (N, {self.input_size}) or "
                f"({self.input_size},), got {got}"
            )
        check_same_dtype(name, input, self.weight_ih, layer=True)
        unbatched = input.ndim == 1
        if unbatched:
            input = reshape(input, (1, self.input_size))
        batch = input.shape[0]
        expected = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if hx is None:
            states = [creation.zeros(batch, self.hidden_size, dtype=input.dtype)] * n_states
        else:
            states = list(hx) if n_states == 2 else [hx]
            if len(states) != n_states:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0)")
            for s, what in zip(states, ("h_0", "c_0")):
                if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                    got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                    raise ShapeError(f"{name}: expected {what} of shape {expected}, got {got}")
            if unbatched:
                states = [reshape(s, (1, self.hidden_size)) for s in states]
        return input, states, unbatched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


def _unbatch(t: Tensor, unbatched: bool) -> Tensor:
    return reshape(t, (t.shape[1],)) if unbatched else t


class RNNCell(RNNCellBase):
    """One Elman step, PyTorch's ``RNNCell``: h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh).

    Args: input_size, hidden_size, bias=True, nonlinearity='tanh' (or 'relu'), dtype.
    Shapes: input (N, H_in) or (H_in,), hx (N, H) / (H,) or None (zeros) -> h' of hx's shape.

    Example:
        >>> import backprop as bp
        >>> bp.nn.RNNCell(3, 4)(bp.ones(2, 3)).shape
        (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype=None, device=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'"
            )
        super().__init__(input_size, hidden_size, bias, dtype, device)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), unbatched = self._prepare(input, hx, 1)
        cell = rnn_tanh_cell if self.nonlinearity == "tanh" else rnn_relu_cell
        h = cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return _unbatch(h, unbatched)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class LSTMCell(RNNCellBase):
    """One LSTM step, PyTorch's ``LSTMCell`` (gates i, f, g, o): returns ``(h', c')``.

    Shapes: input (N, H_in) or (H_in,), hx ``(h, c)`` each (N, H) / (H,), or None (zeros).

    Example:
        >>> import backprop as bp
        >>> h, c = bp.nn.LSTMCell(3, 4)(bp.ones(2, 3))
        >>> h.shape, c.shape
        ((2, 4), (2, 4))
    """

    _gates = 4

    def forward(self, input: Tensor, hx=None) -> tuple:
        input, states, unbatched = self._prepare(input, hx, 2)
        h, c = lstm_cell(input, states, self.weight_ih, self.weight_hh, self.bias_ih,
                         self.bias_hh)
        return _unbatch(h, unbatched), _unbatch(c, unbatched)


class GRUCell(RNNCellBase):
    """One GRU step, PyTorch's ``GRUCell`` (gates r, z, n): h' = (1 - z)·n + z·h.

    Shapes: input (N, H_in) or (H_in,), hx (N, H) / (H,) or None (zeros) -> h'.

    Example:
        >>> import backprop as bp
        >>> bp.nn.GRUCell(3, 4)(bp.ones(2, 3)).shape
        (2, 4)
    """

    _gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), unbatched = self._prepare(input, hx, 1)
        h = gru_cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return _unbatch(h, unbatched)
