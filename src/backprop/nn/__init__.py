"""``backprop.nn``: modules, layers, activations, losses and initialisers (PyTorch's names)."""

from backprop.nn import functional, init, utils
from backprop.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from backprop.nn.attention import MultiheadAttention
from backprop.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from backprop.nn.dropout import Dropout, Dropout2d
from backprop.nn.linear import Bilinear, Flatten, Identity, Linear, Unflatten
from backprop.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    SmoothL1Loss,
    TripletMarginLoss,
)
from backprop.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from backprop.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from backprop.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool1d, MaxPool2d
from backprop.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, detach_state
from backprop.nn.sparse import Embedding
from backprop.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d",
    "MaxPool2d",
    "BatchNorm1d", "BatchNorm2d", "Bilinear", "Dropout", "Dropout2d", "Embedding", "LayerNorm",
    "ELU", "GELU", "Flatten", "Identity", "LeakyReLU", "Linear", "LogSoftmax", "Module",
    "ModuleDict", "ModuleList", "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax",
    "Softplus", "Tanh", "Unflatten", "functional", "init", "utils",
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
    "CosineEmbeddingLoss", "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "MultiMarginLoss",
    "SmoothL1Loss", "TripletMarginLoss",
    "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "detach_state",
    "MultiheadAttention", "Transformer", "TransformerDecoder", "TransformerDecoderLayer",
    "TransformerEncoder", "TransformerEncoderLayer", "SyncBatchNorm",
]


def __getattr__(name: str):
    # SyncBatchNorm communicates, so it lives in backprop.distributed (which sits above nn);
    # nn.SyncBatchNorm is PyTorch's name for it, resolved on first use
    if name == "SyncBatchNorm":
        from backprop.distributed.sync_batchnorm import SyncBatchNorm  # noqa: PLC0415

        return SyncBatchNorm
    raise AttributeError(f"module 'backprop.nn' has no attribute {name!r}")
