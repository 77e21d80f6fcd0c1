"""numba kernels of the optimizers' updates: one pass over the parameter, its gradient and its
state instead of one NumPy sweep (and often a fresh temporary) per term of the rule.

SGD with momentum is four sweeps in NumPy (``buf *= μ``, ``buf += g``, ``-γ·buf``, ``θ +=``) and
Adam about ten; the update of the 784-512-256-10 MLP took 449 µs with NumPy and 215 µs here with
SGD and momentum, 1.82 and 0.37 ms with Adam (float32). Each kernel does exactly the NumPy
rule's operations in its order, each rounded to the array's dtype (no fastmath, so no fused
multiply-add), with the scalars cast to that dtype as NumPy casts a Python float: the results
are bit-identical to the NumPy path (tests/fast/test_optim_fast.py), so switching the fast path
on or off, or compiling a step, never changes a training run. Serial: the work is memory-bound
and a parallel launch would cost more than it saves at these sizes.

The rules in ``optim`` call these for their common cases only (the rest of a rule, such as
weight decay, stays in NumPy before the call).
"""

from __future__ import annotations

import numba
import numpy as np

# error_model="numpy": a float division may not raise ZeroDivisionError (Adam's denominator is
# at least ε > 0 anyway), so LLVM can vectorise the loops; no fastmath (see _jit.py)
jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@jit
def sgd_momentum(p, grad, buf, momentum, neg_lr):
    """buf ← μ·buf + g; θ ← θ + (-γ)·buf (flat arrays of one dtype; scalars of that dtype)."""
    for i in range(p.size):
        b = buf[i] * momentum + grad[i]
        buf[i] = b
        p[i] = p[i] + b * neg_lr


@jit
def adam(p, grad, m, v, one_minus_beta1, beta2, one_minus_beta2, bias2_sqrt, eps, neg_step):
    """m ← m + (g - m)(1 - β₁); v ← β₂v + ((1 - β₂)g)g;
    θ ← θ + (-step_size·m) / (√v / √(1 - β₂ᵗ) + ε) (flat arrays; scalars of their dtype)."""
    for i in range(p.size):
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta1
        m[i] = mi
        vi = v[i] * beta2 + (one_minus_beta2 * g) * g
        v[i] = vi
        p[i] = p[i] + (neg_step * mi) / (np.sqrt(vi) / bias2_sqrt + eps)
