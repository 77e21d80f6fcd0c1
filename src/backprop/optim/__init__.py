"""``backprop.optim``: optimizers with PyTorch's names, arguments and update rules.

Every optimizer takes ``params`` (Tensors, or dicts of them with per-group options), keeps its
per-parameter state in ``state``, and offers ``step(closure=None)``,
``zero_grad(set_to_none=True)``, ``add_param_group`` and ``state_dict`` / ``load_state_dict``.
``Sophia`` refreshes a diagonal Hessian estimate from a closure every k steps. Learning-rate
schedules are in ``backprop.optim.lr_scheduler``.

Example:
    >>> import backprop as bp
    >>> w = bp.tensor([3.0], requires_grad=True)
    >>> opt = bp.optim.SGD([w], lr=0.25)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()  # gradient 2w: each step halves w
    ...     opt.step()
    >>> w
    tensor([0.375], requires_grad=True)
"""

from backprop.optim import lr_scheduler
from backprop.optim.adadelta import Adadelta
from backprop.optim.adagrad import Adagrad
from backprop.optim.adam import Adam, AdamW
from backprop.optim.lbfgs import LBFGS
from backprop.optim.nadam import NAdam
from backprop.optim.optimizer import Optimizer
from backprop.optim.rmsprop import RMSprop
from backprop.optim.sgd import SGD
from backprop.optim.sophia import Sophia

__all__ = ["LBFGS", "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "NAdam", "Optimizer",
           "RMSprop", "Sophia", "lr_scheduler"]
