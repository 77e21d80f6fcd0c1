"""The ONNX exporter: the op recorder's trace of one forward pass, translated to ONNX nodes."""

from __future__ import annotations

import os

import numpy as np

from backprop.autograd.grad_mode import no_grad
from backprop.autograd.graph import record_ops
from backprop.nn.conv import Conv1d, Conv2d
from backprop.nn.dropout import Dropout, Dropout2d
from backprop.nn.linear import Flatten, Identity, Linear
from backprop.nn.module import Module
from backprop.nn.normalization import _BatchNorm
from backprop.nn.pooling import AvgPool2d, MaxPool1d, MaxPool2d
from backprop.nn.recurrent import GRU, LSTM
from backprop.tensor import Tensor

OPSET = 17
_INSTALL_HINT = "ONNX export needs the onnx package: pip install 'backprop[onnx]'"


class UnsupportedOpError(NotImplementedError):
    """The model applies an op (or uses a layer setting) that the exporter cannot translate."""


def _onnx():
    try:
        import onnx  # noqa: PLC0415  (optional dependency: imported on use)
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from None
    return onnx


_NATIVE = (Linear, Conv1d, Conv2d, _BatchNorm, MaxPool1d, MaxPool2d, AvgPool2d, Flatten,
           Dropout, Dropout2d, Identity, LSTM, GRU)

_UNARY = {"ReLU": "Relu", "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Exp": "Exp",
          "Log": "Log", "Neg": "Neg", "Abs": "Abs", "Sqrt": "Sqrt", "Erf": "Erf"}
_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Pow": "Pow",
           "Maximum": "Max", "Minimum": "Min"}


class _Call:
    """One call of a native layer: where its ops start and end in the recording."""

    def __init__(self, module, name, start, inputs) -> None:
        self.module, self.name, self.start, self.inputs = module, name, start, inputs
        self.end, self.output = None, None


class _Builder:
    def __init__(self, onnx, dtype) -> None:
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.inits, self.names = [], [], {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs, outputs=None, hint=None, **attrs):
        outputs = outputs or [self.fresh(hint or op.lower())]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), list(outputs), **attrs))
        return outputs if len(outputs) > 1 else outputs[0]

    def name_of(self, t, where: str) -> str:
        if isinstance(t, Tensor) and id(t) in self.names:
            return self.names[id(t)]
        if isinstance(t, Tensor):  # a parameter, buffer or constant tensor
            name = self.const(t.data, "weight")
            self.names[id(t)] = name
            return name
        if isinstance(t, (int, float, np.number, np.ndarray)):
            return self.const(np.asarray(t, dtype=self.dtype), "scalar")
        raise UnsupportedOpError(f"ONNX export: {where}: cannot use an input of type "
                                 f"{type(t).__name__}")


def export(model: Module, example_input: Tensor, path: str | os.PathLike, *,
           opset_version: int = OPSET) -> None:
    """Write ``model`` as an ONNX file that ``onnxruntime`` runs to the same outputs.

    Args:
        model: an ``nn.Module`` taking one Tensor (Sequential or custom ``forward``); it is run
            once in eval mode (Dropout off, BatchNorm on its running statistics).
        example_input: a Tensor of the input's shape (any batch size) and dtype, or a 1-tuple
            holding one (as ``torch.onnx.export``'s ``args``).
        path: the ``.onnx`` file to write.
        opset_version: the ONNX opset (17 or newer).

    The graph's input is ``input``, its output ``output`` (the first Tensor the model returns);
    the batch dimension is dynamic: axis 0, or axis 1 when the first layer is an LSTM/GRU that
    is not ``batch_first``.

    Raises:
        UnsupportedOpError: an op or layer setting with no translation, naming the op and the
            module whose forward applied it.
        ImportError: the onnx package is missing (with how to install it).

    Shapes: example_input (N, ...) -> a model with input (batch, ...).
    """
    onnx = _onnx()
    if opset_version < 17:
        raise ValueError(f"ONNX export: opset_version must be 17 or newer, got {opset_version}")
    if isinstance(example_input, tuple) and len(example_input) == 1:
        example_input = example_input[0]  # torch.onnx.export's ``args`` is a tuple of inputs
    if not isinstance(example_input, Tensor):
        raise TypeError(f"ONNX export: example_input must be a Tensor, got "
                        f"{type(example_input).__name__}")
    calls, stack, hooks, owners = [], [], [], {}
    ops_ref: list = []
    names = {m: n or type(model).__name__ for n, m in model.named_modules()}

    def pre(mod, args):
        stack.append((mod, len(ops_ref[0])))
        if isinstance(mod, _NATIVE) and not any(isinstance(m, _NATIVE) for m, _ in stack[:-1]):
            calls.append(_Call(mod, names.get(mod, type(mod).__name__), len(ops_ref[0]), args))

    def post(mod, args, out):
        _, start = stack.pop()
        if calls and calls[-1].module is mod and calls[-1].end is None:
            calls[-1].end, calls[-1].output = len(ops_ref[0]), out
        for k in range(start, len(ops_ref[0])):  # the innermost module returns first
            owners.setdefault(k, mod)

    for m in model.modules():
        hooks.append(m.register_forward_pre_hook(pre))
        hooks.append(m.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with no_grad(), record_ops() as ops:
            ops_ref.append(ops)
            out = model(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    first = _first_tensor(out)
    dtype = example_input.data.dtype
    b = _Builder(onnx, dtype)
    b.names[id(example_input)] = "input"
    batch_axis = 0
    if calls and isinstance(calls[0].module, (LSTM, GRU)) and not calls[0].module.batch_first \
            and calls[0].start == 0:
        batch_axis = 1
    by_start = {c.start: c for c in calls}
    k = 0
    while k < len(ops):
        call = by_start.get(k)
        if call is not None:
            _emit_layer(b, call)
            k = max(call.end, k + 1)
            continue
        rec = ops[k]
        owner = owners.get(k, model)
        _emit_op(b, rec, f"{rec.op} in {names.get(owner, type(owner).__name__)} "
                         f"({type(owner).__name__})", example_input.shape[batch_axis], batch_axis)
        k += 1
    if id(first) not in b.names:
        raise UnsupportedOpError("ONNX export: the model's output is not computed from its "
                                 "input by recorded ops")
    b.node("Identity", [b.names[id(first)]], ["output"])
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    in_shape = ["batch" if i == batch_axis else d for i, d in enumerate(example_input.shape)]
    out_axis = batch_axis if first.ndim > batch_axis else 0
    out_shape = ["batch" if i == out_axis else d for i, d in enumerate(first.shape)]
    graph = onnx.helper.make_graph(
        b.nodes, type(model).__name__,
        [onnx.helper.make_tensor_value_info("input", elem, in_shape)],
        [onnx.helper.make_tensor_value_info("output", elem, out_shape)], b.inits)
    proto = onnx.helper.make_model(graph, producer_name="backprop",
                                   opset_imports=[onnx.helper.make_opsetid("", opset_version)])
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases of 2024 on
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(path))


def _first_tensor(out):
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


# --- op by op ------------------------------------------------------------------------------


def _emit_op(b: _Builder, rec, where: str, batch: int, batch_axis: int) -> None:
    op, attrs = rec.op, rec.attrs
    ins = [b.name_of(t, where) if t is not None else "" for t in rec.inputs
           if isinstance(t, (Tensor, int, float, np.number, np.ndarray))]
    if op in _UNARY:
        out = b.node(_UNARY[op], ins[:1])
    elif op in _BINARY and len(ins) == 2:
        out = b.node(_BINARY[op], ins)
    elif op == "Addmm":  # F.linear with a bias: x Wᵀ + b
        out = b.node("Gemm", ins[:3], transB=1)
    elif op == "MM" or op == "MatMul":
        rhs = ins[1]
        if attrs.get("transpose_b"):
            rhs = b.node("Transpose", [rhs], perm=[1, 0])
        out = b.node("MatMul", [ins[0], rhs])
    elif op in ("View", "Reshape"):
        shape = list(rec.shapes[1][0])
        in_shape = rec.shapes[0][0]
        if len(in_shape) > batch_axis and len(shape) > batch_axis \
                and in_shape[batch_axis] == shape[batch_axis] == batch:
            shape[batch_axis] = 0  # ONNX: copy the (dynamic) batch size from the input
        elif shape and shape[0] % batch == 0 and batch_axis == 0 and shape[0] == \
                batch * (int(np.prod(in_shape)) // batch // max(int(np.prod(shape[1:])), 1)):
            shape[0] = -1
        out = b.node("Reshape", [ins[0], b.const(np.array(shape, dtype=np.int64), "shape")])
    elif op in ("Permute", "Transpose") and "dims" in attrs:
        out = b.node("Transpose", ins[:1], perm=list(attrs["dims"]))
    elif op == "Softmax" or op == "LogSoftmax":
        out = b.node(op, ins[:1], axis=int(attrs.get("dim", -1)))
    elif op == "Cat":
        out = b.node("Concat", ins, axis=int(attrs.get("dim", 0)))
    elif op == "Index" and _basic_index(attrs.get("index")) is not None:
        out = _emit_index(b, ins[0], _basic_index(attrs["index"]))
    elif op == "Clamp":
        lo, hi = attrs.get("min"), attrs.get("max")
        c = [b.const(np.asarray(v, dtype=b.dtype)) if v is not None else "" for v in (lo, hi)]
        out = b.node("Clip", [ins[0], *c])
    else:
        raise UnsupportedOpError(f"ONNX export: no translation for the op {where}; supported "
                                 f"are the layers Linear, Conv1d/2d, BatchNorm, pooling, "
                                 f"Flatten, Dropout, LSTM, GRU and the ops "
                                 f"{sorted(set(_UNARY) | set(_BINARY))}, Addmm, MM, View, Permute, "
                                 f"Softmax, LogSoftmax, Cat, Clamp, basic indexing (ints and "
                                 f"slices)")
    b.names[id(rec.outputs[0])] = out


def _basic_index(index):
    """``index`` as a tuple of ints and slices (basic indexing), or None."""
    index = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, np.integer, slice)) for i in index):
        return index
    return None


def _emit_index(b: _Builder, x: str, index: tuple) -> str:
    big = np.iinfo(np.int64).max
    starts, ends, axes, steps = [], [], [], []
    for d, i in enumerate(index):
        if isinstance(i, slice) and i != slice(None):
            step = 1 if i.step is None else i.step
            default_start, default_end = (0, big) if step > 0 else (-1, -big)
            starts.append(default_start if i.start is None else i.start)
            ends.append(default_end if i.stop is None else i.stop)
            axes.append(d)
            steps.append(step)
    if axes:
        x = b.node("Slice", [x] + [b.const(np.array(v, np.int64), "slice")
                                   for v in (starts, ends, axes, steps)])
    for d in reversed(range(len(index))):  # the highest axis first: the others keep their place
        if isinstance(index[d], (int, np.integer)):
            x = b.node("Gather", [x, b.const(np.array(int(index[d]), np.int64), "index")],
                       axis=d)
    return x


# --- layers with an operator of their own -------------------------------------------------


def _emit_layer(b: _Builder, call: _Call) -> None:
    m, where = call.module, f"{call.name} ({type(call.module).__name__})"
    if not call.inputs or not isinstance(call.inputs[0], Tensor):
        raise UnsupportedOpError(f"ONNX export: {where} was called without a Tensor input")
    if len(call.inputs) > 1:
        raise UnsupportedOpError(f"ONNX export: {where} was called with {len(call.inputs)} "
                                 f"inputs (an initial state?); only the input is supported")
    x = b.name_of(call.inputs[0], where)
    outputs = call.output
    if isinstance(m, Linear):
        y = b.node("MatMul", [x, b.const(m.weight.data.T.copy(), "weight_t")])
        if m.bias is not None:
            y = b.node("Add", [y, b.name_of(m.bias, where)])
    elif isinstance(m, (Conv1d, Conv2d)):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            raise UnsupportedOpError(f"ONNX export: {where}: padding={m.padding!r}, "
                                     f"padding_mode={m.padding_mode!r} (only numeric zero "
                                     f"padding is supported)")
        ins = [x, b.name_of(m.weight, where)] + ([b.name_of(m.bias, where)] if m.bias
                                                  is not None else [])
        y = b.node("Conv", ins, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                   pads=list(m.padding) * 2, dilations=list(m.dilation), group=m.groups)
    elif isinstance(m, _BatchNorm):
        if m.running_mean is None:
            raise UnsupportedOpError(f"ONNX export: {where} has no running statistics "
                                     f"(track_running_stats=False)")
        c = m.num_features
        scale = m.weight if m.weight is not None else np.ones(c, b.dtype)
        bias = m.bias if m.bias is not None else np.zeros(c, b.dtype)
        y = b.node("BatchNormalization",
                   [x] + [b.name_of(t, where) for t in (scale, bias, m.running_mean,
                                                          m.running_var)],
                   epsilon=float(m.eps))
    elif isinstance(m, (MaxPool1d, MaxPool2d, AvgPool2d)):
        n = 1 if isinstance(m, MaxPool1d) else 2
        tup = lambda v: list(v) if isinstance(v, (tuple, list)) else [int(v)] * n  # noqa: E731
        kw = {"kernel_shape": tup(m.kernel_size), "strides": tup(m.stride),
              "pads": tup(m.padding) * 2, "ceil_mode": int(m.ceil_mode)}
        if isinstance(m, AvgPool2d):
            if m.divisor_override is not None:
                raise UnsupportedOpError(f"ONNX export: {where}: divisor_override")
            y = b.node("AveragePool", [x], count_include_pad=int(m.count_include_pad), **kw)
        else:
            if m.return_indices:
                raise UnsupportedOpError(f"ONNX export: {where}: return_indices=True")
            y = b.node("MaxPool", [x], dilations=tup(m.dilation), **kw)
    elif isinstance(m, Flatten):
        ndim = call.inputs[0].ndim
        if m.end_dim not in (-1, ndim - 1):
            raise UnsupportedOpError(f"ONNX export: {where}: end_dim={m.end_dim}")
        y = b.node("Flatten", [x], axis=m.start_dim % ndim)
    elif isinstance(m, (Dropout, Dropout2d, Identity)):
        y = b.node("Identity", [x])
    else:  # LSTM, GRU
        _emit_recurrent(b, m, x, outputs, where)
        return
    b.names[id(_first_tensor(outputs))] = y


def _emit_recurrent(b: _Builder, m, x: str, outputs, where: str) -> None:
    lstm = isinstance(m, LSTM)
    h = m.hidden_size
    dirs = 2 if m.bidirectional else 1
    if m.batch_first:
        x = b.node("Transpose", [x], perm=[1, 0, 2])
    finals_h, finals_c = [], []
    for layer in range(m.num_layers):
        ws, rs, bs = [], [], []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih = getattr(m, "weight_ih" + sfx).data
            w_hh = getattr(m, "weight_hh" + sfx).data
            b_ih = getattr(m, "bias_ih" + sfx, None)
            b_hh = getattr(m, "bias_hh" + sfx, None)
            b_ih = np.zeros(w_ih.shape[0], w_ih.dtype) if b_ih is None else b_ih.data
            b_hh = np.zeros(w_hh.shape[0], w_hh.dtype) if b_hh is None else b_hh.data
            # PyTorch's gate order is (i, f, g, o) for LSTM and (r, z, n) for GRU; ONNX's is
            # (i, o, f, c) and (z, r, h)
            order = [0, 3, 1, 2] if lstm else [1, 0, 2]

            def perm(a, order=order):
                return np.concatenate([a[i * h:(i + 1) * h] for i in order])

            ws.append(perm(w_ih))
            rs.append(perm(w_hh))
            bs.append(np.concatenate([perm(b_ih), perm(b_hh)]))
        ins = [x, b.const(np.stack(ws)), b.const(np.stack(rs)), b.const(np.stack(bs))]
        direction = "bidirectional" if dirs == 2 else "forward"
        if lstm:
            y, yh, yc = b.node("LSTM", ins, [b.fresh("y"), b.fresh("yh"), b.fresh("yc")],
                               hidden_size=h, direction=direction)
            finals_c.append(yc)
        else:
            y, yh = b.node("GRU", ins, [b.fresh("y"), b.fresh("yh")], hidden_size=h,
                           direction=direction, linear_before_reset=1)
        finals_h.append(yh)
        # Y is (T, dirs, N, H): to (T, N, dirs·H) for the next layer and the output
        y = b.node("Transpose", [y], perm=[0, 2, 1, 3])
        x = b.node("Reshape", [y, b.const(np.array([0, 0, dirs * h], np.int64), "shape")])
    if m.batch_first:
        x = b.node("Transpose", [x], perm=[1, 0, 2])
    out, state = outputs
    b.names[id(out)] = x
    h_n = b.node("Concat", finals_h, axis=0) if len(finals_h) > 1 else finals_h[0]
    if lstm:
        c_n = b.node("Concat", finals_c, axis=0) if len(finals_c) > 1 else finals_c[0]
        b.names[id(state[0])], b.names[id(state[1])] = h_n, c_n
    else:
        b.names[id(state)] = h_n
