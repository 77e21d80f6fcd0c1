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
from backprop.nn.linear import Flatten, Identity, Linear, Unflatten
from backprop.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from backprop.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = [
    "ELU", "GELU", "Flatten", "Identity", "LeakyReLU", "Linear", "LogSoftmax", "Module",
    "ModuleDict", "ModuleList", "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax",
    "Softplus", "Tanh", "Unflatten", "functional", "init", "utils",
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss",
]
