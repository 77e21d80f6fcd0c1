"""``backprop.rules``: learning rules other than backprop, on the same engine, as ordinary modules.

Each rule is a ``Function`` whose backward computes the rule's update instead of the exact
gradient, wrapped in modules that work with ``backprop.nn`` layers, any optimizer and the
training loop (``loss.backward()`` then ``optimizer.step()``):

- **Feedback alignment** (Lillicrap et al. 2016): ``FALinear``, ``FAConv2d`` and
  ``feedback_alignment(model)``: the error goes back through a fixed random matrix B.
- **Direct feedback alignment** (Nøkland 2016): ``DFA(sequential)``: the output error reaches
  each hidden layer through its own fixed random matrix, with no layer-to-layer pass.
- **Forward-Forward** (Hinton 2022): ``ForwardForward``: each layer trained locally on the
  goodness of positive and negative data; no gradient crosses a layer.
- **Weight perturbation** (SPSA): ``WeightPerturbation(model, loss_fn)``: gradient estimates
  from loss differences in random directions; no backward pass through the network.

``gradient_angles`` / ``alignment_angle`` measure how far a rule's updates are from backprop's,
and ``backprop compare-rules`` trains them all side by side.

Example:
    >>> import backprop as bp
    >>> _ = bp.manual_seed(0)
    >>> net = bp.nn.Sequential(bp.nn.Linear(2, 16), bp.nn.Tanh(), bp.nn.Linear(16, 2))
    >>> fa = bp.rules.feedback_alignment(net)
    >>> opt = bp.optim.Adam(fa.parameters(), lr=0.05)
    >>> x, y = bp.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]), bp.tensor([0, 1, 1, 0])
    >>> for _ in range(300):
    ...     opt.zero_grad()
    ...     bp.nn.functional.cross_entropy(fa(x), y).backward()
    ...     opt.step()
    >>> fa(x).argmax(1).tolist()
    [0, 1, 1, 0]
"""

from backprop.rules.angles import alignment_angle, exact_gradients, gradient_angles
from backprop.rules.dfa import DFA, DirectFeedback
from backprop.rules.fa import (
    FAConv2d,
    FAConv2dFunction,
    FALinear,
    FALinearFunction,
    fa_conv2d,
    fa_linear,
    feedback_alignment,
)
from backprop.rules.ff import ForwardForward, Goodness, ff_loss, goodness
from backprop.rules.perturbation import PerturbationEstimate, WeightPerturbation

__all__ = [
    "DFA", "DirectFeedback", "FAConv2d", "FAConv2dFunction", "FALinear", "FALinearFunction",
    "ForwardForward", "Goodness", "PerturbationEstimate", "WeightPerturbation",
    "alignment_angle", "exact_gradients", "fa_conv2d", "fa_linear", "feedback_alignment",
    "ff_loss", "gradient_angles", "goodness",
]
