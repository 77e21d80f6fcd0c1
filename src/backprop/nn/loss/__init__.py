"""Loss functions and loss modules, with PyTorch's names, signatures, defaults and semantics.

The functions (``mse_loss``, ``l1_loss``, ``huber_loss``, ``smooth_l1_loss``, ``cross_entropy``,
``nll_loss``, ``binary_cross_entropy``, ``binary_cross_entropy_with_logits``, ``kl_div``,
``multi_margin_loss``, ``hinge_embedding_loss``, ``cosine_embedding_loss``,
``triplet_margin_loss``) are re-exported by ``backprop.nn.functional``; the modules (``MSELoss``,
``CrossEntropyLoss``, ...) by ``backprop.nn``. Every loss takes ``reduction='mean' | 'sum' |
'none'`` (``kl_div`` also ``'batchmean'``).

Only cross_entropy, nll_loss and binary_cross_entropy use primitives of their own; every other
loss is a composite of core ops, so its gradients (of any order) follow automatically. cross_entropy
with class indices is one ``CrossEntropy`` op (log-softmax and NLL fused: stable for logits of
±1e4, and its backward is softmax - onehot in three in-place passes), and
binary_cross_entropy has its own primitive (``BinaryCrossEntropy``) to keep PyTorch's finite
gradient where the log is clamped. See ``backprop.ops.nn_ops`` for the reasons.

Arguments after the first few are keyword-only: PyTorch still carries the deprecated
``size_average`` and ``reduce`` in those positions, so a positional call that means one thing in
PyTorch fails here instead of silently meaning another.
"""

from __future__ import annotations

from backprop.nn.loss.classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    nll_loss,
)
from backprop.nn.loss.margin import (
    cosine_embedding_loss,
    hinge_embedding_loss,
    multi_margin_loss,
    triplet_margin_loss,
)
from backprop.nn.loss.modules import (
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
from backprop.nn.loss.regression import (
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CosineEmbeddingLoss", "CrossEntropyLoss",
    "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss", "MultiMarginLoss",
    "NLLLoss", "SmoothL1Loss", "TripletMarginLoss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss",
    "cross_entropy", "hinge_embedding_loss", "huber_loss", "kl_div", "l1_loss", "mse_loss",
    "multi_margin_loss", "nll_loss", "smooth_l1_loss", "triplet_margin_loss",
]

