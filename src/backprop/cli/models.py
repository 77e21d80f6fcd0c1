"""The models the ``backprop train`` command builds by name: an MLP, a small CNN, a row-LSTM.

``build_model`` turns the command line's choices (model, hidden sizes, activation, initialiser,
dropout) into a ``backprop.nn.Module`` that maps inputs (N, *input_shape) to raw logits
(N, num_classes). Construction draws from backprop's global generator, so after
``backprop.manual_seed(s)`` the same arguments give the same weights.

Only the CLI imports this module: ``import backprop`` stays NumPy-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from backprop import creation, nn
from backprop.cli.errors import RunError, UsageError
from backprop.tensor import Tensor

MODELS = ("mlp", "cnn", "lstm")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "silu": nn.SiLU,
}

INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
         "orthogonal")

CNN_CHANNELS = (16, 32)  # output channels of the CNN's two conv blocks

# calculate_gain knows relu, leaky_relu, tanh and sigmoid; GELU, SiLU and ELU are rectifiers
# with a smooth knee, so they take relu's gain (what He et al.'s argument gives to first order).
_GAIN_NAME = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "relu",
              "leaky_relu": "leaky_relu", "elu": "relu", "silu": "relu"}


class RowLSTM(nn.Module):
    """Reads an image as a sequence of rows with stacked LSTMs, then classifies the last state.

    (N, C, H, W) -> (N, H, C·W): row t (all channels) is time step t. Each entry of ``hidden``
    is one single-layer ``nn.LSTM(batch_first=True)`` (sizes may differ, which one multi-layer
    LSTM cannot do), with dropout between them; the last layer's output at the last row goes
    through ``Linear(hidden[-1], num_classes)``.

    Args:
        input_shape: (C, H, W).
        num_classes: K, the number of logits.
        hidden: the hidden size of each stacked LSTM (at least one).
        dropout: dropout probability between LSTM layers (training only).

    Shapes: (N, C, H, W) -> (N, K) logits.

    Example:
        >>> import backprop as bp
        >>> RowLSTM((1, 8, 8), 10, hidden=(16, 12))(bp.zeros(3, 1, 8, 8)).shape
        (3, 10)
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 hidden: Sequence[int] = (128,), dropout: float = 0.0) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = (c, h, w)
        sizes = [c * w, *hidden]
        self.lstms = nn.ModuleList([nn.LSTM(a, b, batch_first=True)
                                    for a, b in zip(sizes[:-1], sizes[1:])])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(n, h, c * w)  # (N, H, C·W): rows are time steps
        for k, lstm in enumerate(self.lstms):
            if k and self.dropout is not None:
                seq = self.dropout(seq)
            seq, _ = lstm(seq)
        return self.fc(seq[:, -1, :])


def _choice(value, choices, what: str) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _check_hidden(hidden) -> tuple[int, ...]:
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    try:
        sizes = tuple(hidden)
    except TypeError:
        raise UsageError(f"--hidden takes layer sizes (positive integers), got {hidden!r}") \
            from None
    bad = [h for h in sizes if isinstance(h, bool) or not isinstance(h, (int, np.integer))
           or h <= 0]
    if bad:
        raise UsageError(f"--hidden sizes must be positive integers, got {list(sizes)} "
                         f"(bad: {', '.join(repr(b) for b in bad)}), e.g. --hidden 128 64")
    return tuple(int(h) for h in sizes)


def _image_shape(model: str, input_shape: tuple, dataset: str | None) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        of = f"dataset {dataset!r}" if dataset else "the dataset"
        raise UsageError(f"{model} needs image inputs (C, H, W); {of} has inputs of shape "
                         f"{_shape_text(input_shape)}; use --model mlp")
    return input_shape


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def parameter_count(name: str, input_shape: Sequence[int], num_classes: int,
                    hidden: Sequence[int]) -> int:
    """How many parameters (and buffer values) ``build_model`` would create, computed without
    creating them, so that an absurd size is refused before any memory is asked for."""
    hidden = tuple(int(h) for h in hidden)
    if name == "mlp":
        sizes = [math.prod(input_shape), *hidden, num_classes]
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    c, h, w = input_shape
    if name == "cnn":
        c1, c2 = CNN_CHANNELS
        convs = (c * 9 + 1) * c1 + (c1 * 9 + 1) * c2
        norms = 4 * (c1 + c2) + 2  # weight, bias, running mean and variance; two counters
        flat = c2 * (h // 4) * (w // 4)
        return convs + norms + (flat + 1) * hidden[0] + (hidden[0] + 1) * num_classes
    sizes = [c * w, *hidden]  # lstm: per layer 4 gates of (input + hidden) weights, two biases
    lstms = sum(4 * b * (a + b) + 8 * b for a, b in zip(sizes[:-1], sizes[1:]))
    return lstms + (sizes[-1] + 1) * num_classes


# float32 weights, their gradients and up to two optimizer moments (Adam): a lower bound on
# what training needs, before activations and the checkpoint's copy
TRAINING_BYTES_PER_PARAMETER = 4 * 4


def _check_memory(name: str, input_shape: tuple, num_classes: int,
                  hidden: tuple[int, ...]) -> None:
    from backprop.train._resources import available_memory, format_bytes

    n = parameter_count(name, input_shape, num_classes, hidden)
    need = n * TRAINING_BYTES_PER_PARAMETER
    memory = available_memory()
    if memory is not None and need > memory:
        raise UsageError(
            f"a {name} with --hidden {','.join(map(str, hidden))} on inputs of shape "
            f"{_shape_text(input_shape)} has {n:,} parameters and needs at least "
            f"{format_bytes(need)} of memory to train (float32 weights, gradients and optimizer "
            f"state), more than the {format_bytes(memory)} available; choose smaller sizes"
        )


def build_model(name: str, input_shape: Sequence[int], num_classes: int,
                hidden: Sequence[int] = (128,), activation: str = "relu",
                init: str = "default", dropout: float = 0.0,
                dataset: str | None = None) -> nn.Module:
    """Build a classifier by name; it maps (N, *input_shape) inputs to (N, num_classes) logits.

    ========  ==========================================================================
    mlp       Flatten, [Linear(prev, h), act, Dropout] for each h in hidden, Linear(prev, K);
              ``hidden=()`` is multinomial logistic regression.
    cnn       two blocks [Conv2d(3x3, padding 1), BatchNorm2d, act, MaxPool2d(2)] with
              ``CNN_CHANNELS`` channels, Flatten, Linear(.., hidden[0]), act, Dropout,
              Linear(hidden[0], K); images (C, H, W) with H, W >= 4 only.
    lstm      ``RowLSTM``: the image's rows as a sequence, one LSTM per hidden size;
              images only.
    ========  ==========================================================================

    Dropout layers appear only when ``dropout > 0``. With ``init="default"`` every layer keeps
    its PyTorch default; otherwise every Linear and Conv2d weight (and each LSTM gate's weight
    block) is redrawn with ``backprop.nn.init.<init>_`` and every such bias is zeroed. The gain
    is that of the activation that follows (``calculate_gain``; relu's for gelu, elu, silu);
    the output layer and the LSTM gates get gain 1.

    Args:
        name: one of ``MODELS``.
        input_shape: one sample's shape, (C, H, W) or (F,).
        num_classes: K, the number of logits.
        hidden: hidden layer sizes (positive ints); cnn uses hidden[0], lstm one LSTM each.
        activation: a key of ``ACTIVATIONS`` (cnn and mlp; the LSTM's gates are fixed).
        init: one of ``INITS``.
        dropout: probability in [0, 1).
        dataset: the dataset's name, only to make the refusal messages specific.

    Returns:
        the model (in training mode).

    Raises:
        UsageError: an unknown model, activation or init, bad hidden sizes or dropout, a model
            that cannot take these inputs (cnn/lstm on a table, a too-small image), or one too
            large to train in the memory available.

    Example:
        >>> import backprop as bp
        >>> _ = bp.manual_seed(0)
        >>> model = build_model("mlp", (1, 8, 8), 10, hidden=(32,), init="xavier_uniform")
        >>> model(bp.zeros(5, 1, 8, 8)).shape
        (5, 10)
    """
    _choice(name, MODELS, "model")
    _choice(activation, ACTIVATIONS, "activation")
    _choice(init, INITS, "init")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)) \
            or not 0.0 <= dropout < 1.0:
        raise UsageError(f"--dropout must be a probability in [0, 1), got {dropout!r}")
    hidden = _check_hidden(hidden)
    input_shape = tuple(int(d) for d in input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    if name != "mlp" and not hidden:
        raise UsageError(f"{name} needs at least one hidden size, got --hidden with none; "
                         "e.g. --hidden 128")
    act = ACTIVATIONS[activation]
    if name != "mlp":
        _image_shape(name, input_shape, dataset)
    _check_memory(name, input_shape, num_classes, hidden)

    if name == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        prev = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(prev, h), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = h
        layers.append(nn.Linear(prev, num_classes))
        model = nn.Sequential(*layers)
    elif name == "cnn":
        c, h, w = _image_shape(name, input_shape, dataset)
        if h < 4 or w < 4:
            raise UsageError(f"cnn pools twice by 2, so it needs images at least 4x4; got "
                             f"{h}x{w}; use --model mlp")
        c1, c2 = CNN_CHANNELS
        layers = [
            nn.Conv2d(c, c1, 3, padding=1), nn.BatchNorm2d(c1), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), act(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * (h // 2 // 2) * (w // 2 // 2), hidden[0]), act(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden[0], num_classes))
        model = nn.Sequential(*layers)
    else:
        model = RowLSTM(_image_shape(name, input_shape, dataset), num_classes, hidden, dropout)

    if init != "default":
        _reinitialise(model, init, activation)
    return model


def _init_weight(weight: Tensor, init: str, gain_name: str) -> None:
    """Redraw one weight with ``nn.init.<init>_`` at the gain of ``gain_name``."""
    if init in ("kaiming_uniform", "kaiming_normal"):
        # kaiming computes the gain itself from the nonlinearity's name (and leaky_relu's
        # slope, here LeakyReLU's default 0.01)
        getattr(nn.init, init + "_")(weight, a=0.01, nonlinearity=gain_name)
    else:
        gain = nn.init.calculate_gain(gain_name)
        getattr(nn.init, init + "_")(weight, gain=gain)


def _reinitialise(model: nn.Module, init: str, activation: str) -> None:
    """Redraw every Linear/Conv2d weight and LSTM gate block; zero their biases."""
    gain_name = _GAIN_NAME[activation]
    # The last Linear produces the logits: no nonlinearity follows it, so gain 1 ("linear").
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    output = linears[-1] if linears else None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            _init_weight(m.weight, init, "linear" if m is output else gain_name)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LSTM):
            for pname, p in m.named_parameters():
                if pname.startswith("bias"):
                    nn.init.zeros_(p)
                    continue
                # One draw per gate block (i, f, g, o), so that each gate's matrix has the fans
                # (and, for orthogonal, the orthogonality) of an (H, ·) layer of its own.
                hsize = m.hidden_size
                for k in range(4):
                    block = creation.empty(hsize, p.shape[1], dtype=p.dtype)
                    _init_weight(block, init, "linear")
                    p.data[k * hsize:(k + 1) * hsize] = block.data


def check_input(model_name: str, input_shape: Sequence[int], x_shape: Sequence[int]) -> None:
    """Refuse a batch the model cannot take, with a message saying what it takes.

    mlp takes (N, *input_shape) or the flattened (N, prod(input_shape)); cnn and lstm take
    (N, *input_shape) only. (``datasets.read_inputs`` already reshapes flattened images, so
    this is the last check before the forward pass.)

    Args:
        model_name: one of ``MODELS``.
        input_shape: one sample's shape the model was built for.
        x_shape: the batch's shape.

    Raises:
        RunError: e.g. "model expects inputs of shape (N, 1, 8, 8) (or (N, 64)); got (5, 3)".
    """
    _choice(model_name, MODELS, "model")
    input_shape, x_shape = tuple(input_shape), tuple(x_shape)
    flat = math.prod(input_shape)
    if len(x_shape) >= 1 and x_shape[1:] == input_shape:
        return
    also_flat = model_name == "mlp" and len(input_shape) > 1
    if also_flat and x_shape[1:] == (flat,):
        return
    alt = f" (or (N, {flat}))" if also_flat else ""
    raise RunError(f"{model_name} model expects inputs of shape "
                   f"{_shape_text(('N', *input_shape))}{alt}; got {_shape_text(x_shape)}")
