"""``Optimizer``: the base of every update rule, with PyTorch's param groups, state and state_dict.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus that group's
hyperparameters) and ``state`` (a dict keyed by the parameter Tensor itself; Tensors hash by
identity). ``step()`` updates every parameter that has a gradient, under ``no_grad``, each with
one ``ParamUpdate`` op. Conventions the subclasses share:

- ``_prepare(p, state, group)`` allocates the state buffers (Tensors) at a parameter's first
  step, advances counters, and returns the buffers the update changes and the hyperparameters;
  ``_rule(p, grad, *buffers, **hyper)`` is the update itself, NumPy in place on the arrays.
- The update is one op through ``Function.apply``: the parameter's and the buffers' version
  counters move, as in PyTorch (a graph that saved the old value refuses to backprop), and the
  op recorder sees it, with every hyperparameter among its attributes.
- Hyperparameters are read as Python floats: a NumPy float64 scalar would promote a float32
  array to float64 (NEP 50), a Python float never does.
- The arithmetic follows PyTorch's single-tensor (``foreach=False``) code, operation by
  operation, so float64 runs agree with ``torch.optim`` to rounding.
"""

from __future__ import annotations

import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

from backprop import _fast
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import _debug, enable_grad, no_grad
from backprop.optim._flat import _Flat
from backprop.tensor import Tensor


def _floats(group: dict, *names: str) -> tuple[float, ...]:
    """The named hyperparameters of ``group`` as Python floats (weak scalars: no upcasting)."""
    return tuple(float(group[name]) for name in names)


FAST_MIN = 4096
"""Rules hand an update of at least this many elements to the ``[fast]`` extra's one-pass
kernel (``backprop._fast.optim``) when it is on; below it NumPy's sweeps cost less than the
call (a size rule: both give the same bits)."""


def _fast_kernels(p: np.ndarray, *state: np.ndarray):
    """The ``[fast]`` extra's update kernels (``backprop._fast.optim``) when a rule may use them
    on a parameter and its gradient and state arrays: the path on, at least ``FAST_MIN``
    elements, one shape, one float dtype, C-contiguous. Else None (the NumPy rule)."""
    if p.size < FAST_MIN:
        return None
    fk = _fast.kernels("optim")
    if fk is None or any(a.shape != p.shape for a in state) or not _fast.suits(p, *state):
        return None
    return fk


def _weight_decay(p: np.ndarray, grad: np.ndarray, lr: float, weight_decay: float,
                  decoupled: bool = False) -> np.ndarray:
    """Apply weight decay for one parameter (arrays); returns the gradient to use.

    Coupled (L2, PyTorch's default): the gradient becomes grad + weight_decay·p. Decoupled (AdamW,
    Loshchilov & Hutter): p shrinks in place by 1 - lr·weight_decay and the gradient is unchanged.
    A weight decay of 0 does nothing.
    """
    if weight_decay == 0:
        return grad
    if decoupled:
        p *= 1 - lr * weight_decay
        return grad
    return grad + weight_decay * p


class ParamUpdate(Function):
    """One optimizer step of a param group, in place, as one op (PyTorch's ``foreach`` idea):
    for each parameter, ``rule(p, grad, *state, *extra, **hyper)`` on the arrays changes p and
    its ``n_state`` state arrays; ``extra`` arrays are only read. ``layout`` gives
    (n_state, n_extra) per parameter and ``hypers`` its hyperparameters; under ``maximize``
    the rule sees -grad. ``optimizer`` is the Optimizer that applied it (not used here:
    ``backprop.compile`` re-reads its state and hyperparameters on every replayed step).
    No gradient: it runs under ``no_grad``."""

    inplace = True

    @staticmethod
    def forward(ctx, *arrays, rule=None, layout=(), hypers=(), maximize=False,
                optimizer=None):
        changed = []
        i = 0
        for (n_state, n_extra), hyper in zip(layout, hypers):
            p, grad = arrays[i], arrays[i + 1]
            state = arrays[i + 2 : i + 2 + n_state + n_extra]
            rule(p, -grad if maximize else grad, *state, **hyper)
            changed.append(p)
            changed.extend(state[:n_state])
            i += 2 + n_state + n_extra
        ctx.mark_dirty(*changed)
        return tuple(changed)


def _copy_state_value(value, like: Tensor | None = None):
    """A state value with its own memory: Tensors are copied (cast to ``like``'s floating dtype,
    as PyTorch casts loaded state to the parameter's dtype); numbers are returned as they are."""
    if isinstance(value, (Tensor, np.ndarray)):
        arr = value.data if isinstance(value, Tensor) else value
        if like is not None and arr.dtype.kind == "f" and like.dtype.kind == "f":
            return Tensor(arr.astype(like.dtype, copy=True))
        return Tensor(arr.copy())
    return value


class Optimizer:
    """Base class of the optimizers: parameter groups, per-parameter state, ``state_dict``.

    Args:
        params: an iterable of Tensors (``model.parameters()``), or of dicts (param groups),
            each with a ``"params"`` entry and any hyperparameters that override ``defaults``
            for that group.
        defaults: the hyperparameters of every group that does not set its own.

    Attributes:
        param_groups: list of dicts, ``"params"`` (a list of Tensors) plus hyperparameters.
        state: dict from parameter Tensor to that parameter's state dict (empty until the
            parameter's first step).

    A subclass defines ``_prepare(p, state, group)`` (state buffers and hyperparameters for one
    parameter's step), ``_rule(p, grad, *buffers, **hyper)`` (the update on arrays; ``grad`` is
    already negated under ``maximize``) and ``_check_group(group)``, which validates
    hyperparameters (it runs for every group added).

    Example:
        >>> import backprop as bp
        >>> model = bp.nn.Linear(3, 1)
        >>> opt = bp.optim.SGD([{"params": [model.weight]},
        ...                     {"params": [model.bias], "lr": 0.1}], lr=0.01, momentum=0.9)
        >>> [group["lr"] for group in opt.param_groups]
        [0.01, 0.1]
    """

    # state tensors have their parameter's shape (checked on load); LBFGS keeps global state
    _per_parameter_state = True
    # the rule is elementwise, so one call over flat buffers equals the per-parameter loop
    _elementwise_rule = False

    def __init__(self, params: Iterable, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict] = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._flat: dict[int, _Flat] = {}  # id(group's params list) -> flat buffers
        name = type(self).__name__
        if isinstance(params, (Tensor, set, frozenset)):
            raise TypeError(
                f"{name}: params must be an ordered iterable of Tensors or of dicts (a list, "
                f"model.parameters(), ...), got {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- hyperparameter checks (used by the subclasses' _check_group) ---
    def _check_range(self, name: str, value, low: float = 0.0, high: float | None = None,
                     closed: bool = False) -> None:
        """Raise unless ``low <= value`` (and ``value < high``, or ``<= high`` when closed)."""
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{type(self).__name__}: {name} must be a real number, got "
                            f"{value!r} ({type(value).__name__})")
        ok = low <= value and (high is None or (value <= high if closed else value < high))
        if not ok:  # NaN fails every comparison, so it lands here too
            rule = f">= {low:g}" if high is None else (
                f"in [{low:g}, {high:g}{']' if closed else ')'}")
            raise ValueError(f"{type(self).__name__}: invalid {name}={value!r}: it must be {rule}")

    def _check_betas(self, betas) -> None:
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got "
                            f"{betas!r}")
        for i, beta in enumerate(betas):
            self._check_range(f"betas[{i}]", beta, 0.0, 1.0)

    def _check_group(self, group: dict) -> None:
        """Validate a group's hyperparameters (subclasses override)."""

    def _check_implementation(self, group: dict) -> None:
        """PyTorch's implementation switches, for programs that pass them. ``foreach`` and
        ``fused`` choose the update over flat buffers (``_flat_update``: None lets the size
        rule decide, True always when the group allows it, ``foreach=False`` never);
        ``differentiable`` and ``capturable`` ask for what this CPU library does not do."""
        name = type(self).__name__
        for key in ("foreach", "fused"):
            value = group.get(key)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name}: {key} must be None, True or False, got {value!r}")
        if group.get("foreach") and group.get("fused"):
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together "
                               "(PyTorch's rule); pass one of them")
        if group.get("differentiable"):
            raise ValueError(f"{name}: differentiable=True (gradients through the update "
                             "itself) is not supported; take the update out of autograd, or "
                             "write it as tensor operations in your training loop")
        if group.get("capturable"):
            raise ValueError(f"{name}: capturable=True is for CUDA graph capture and there "
                             "is no GPU here; leave it False (backprop.compile captures CPU "
                             "steps without it)")

    # --- groups ---
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (unset ones take the defaults).

        Useful to unfreeze layers during fine-tuning. A parameter may belong to one group only.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a param group needs a 'params' entry, got keys "
                             f"{sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: a group's params must be ordered (a list), not a set: "
                            "set order changes between runs")
        params = [params] if isinstance(params, Tensor) else list(params)
        index = len(self.param_groups)
        seen = {id(p): (g, j) for g, group in enumerate(self.param_groups)
                for j, p in enumerate(group["params"])}
        for i, p in enumerate(params):
            where = f"param group {index}, params[{i}]"
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but {where} is a "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(
                    f"{name}: can't optimize a non-leaf Tensor: {where} (shape {p.shape}) was "
                    f"computed by {p.grad_fn.name()}; pass leaf tensors (model.parameters())"
                )
            if id(p) in seen:
                g, j = seen[id(p)]
                raise ValueError(f"{name}: {where} (shape {p.shape}) is already optimized as "
                                 f"param group {g}, params[{j}]; a parameter may appear once")
            seen[id(p)] = (index, i)
        group = dict(param_group)
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_implementation(group)
        self._check_group(group)
        self.param_groups.append(group)

    # --- the training-loop API ---
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (the default), or to zeros in place.

        With None, a parameter that gets no gradient in the next backward is skipped by
        ``step()``; with zeros it is updated with a zero gradient (weight decay and momentum
        still act), as in PyTorch.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    def step(self, closure: Callable[[], Tensor] | None = None):
        """Update every parameter that has a gradient; parameters whose ``.grad`` is None are
        skipped.

        Args:
            closure: optional; re-evaluates the model and returns the loss (it runs with
                recording on, so it may call ``backward()``).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict, extras: dict | None = None) -> None:
        """Update every parameter of ``group`` that has a gradient, with one op. ``extras``
        maps id(parameter) to a tuple of Tensors the rule reads after the state."""
        if not (_debug.recorders or _debug.anomaly):
            self._step_group_direct(group, extras)
            return
        flat, layout, hypers = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            buffers, hyper = self._prepare(p, self.state[p], group)
            extra = extras.get(id(p), ()) if extras else ()
            flat += (p, p.grad, *buffers, *extra)
            layout.append((len(buffers), len(extra)))
            hypers.append(hyper)
        if layout:
            ParamUpdate.apply(*flat, rule=self._rule, layout=tuple(layout), hypers=tuple(hypers),
                              maximize=bool(group.get("maximize", False)), optimizer=self)

    def _step_group_direct(self, group: dict, extras: dict | None) -> None:
        """What ``ParamUpdate`` does, without the op's dispatch when nothing records ops (the
        usual step): the same rule on the same arrays, and the same version bumps."""
        params = [p for p in group["params"] if p.grad is not None]
        if params:
            prepared = self._update(group, params, extras)
            label = ParamUpdate.label
            for p, (buffers, _) in zip(params, prepared):
                p._bump(label)
                for b in buffers:
                    b._bump(label)

    def _update(self, group: dict, params: list, extras: dict | None = None) -> list:
        """Prepare and apply one step of ``params`` (each has a ``.grad``) on arrays: over one
        flat buffer when the group allows it (``_flat_update``), else parameter by parameter.
        Returns what ``_prepare`` gave for each parameter: (state buffers, hyperparameters)."""
        maximize = bool(group.get("maximize", False))
        prepared = self._prepare_group(params, group)
        if not extras and self._elementwise_rule and group.get("foreach") is not False \
                and self._flat_update(group, params, prepared, maximize):
            return prepared
        rule = self._rule
        for p, (buffers, hyper) in zip(params, prepared):
            g = p.grad.data
            extra = extras.get(id(p), ()) if extras else ()
            rule(p.data, -g if maximize else g, *[b.data for b in buffers],
                 *[e.data for e in extra], **hyper)
        return prepared

    def _flat_update(self, group: dict, params: list, prepared: list, maximize: bool) -> bool:
        """The rule once over flat buffers instead of once per parameter (PyTorch's foreach
        idea, for NumPy: the cost of a small step is Python per parameter, not arithmetic).

        The parameters' and state buffers' arrays become views into one flat array each (their
        values copied once); every step gathers the gradients into a flat array and applies
        the rule to the flat arrays, which updates each parameter through its view. Returns
        False, leaving the per-parameter loop to do the step, when it would not pay or is not
        safe: hyperparameters differing between parameters, mixed dtypes, large parameters
        (gathering their gradients costs more than the loop saves), or an array that something
        else also refers to (a view of a parameter kept elsewhere would stop seeing updates if
        the parameter moved into the flat buffer). The same arithmetic on the same elements, so
        the result is bit-identical to the per-parameter loop.
        """
        hyper = prepared[0][1]
        for _, h in prepared:
            if h is not hyper and h != hyper:
                return False
        # keyed by the params list, which load_state_dict keeps while it replaces group dicts
        key = id(group["params"])
        flat = self._flat.get(key)
        if flat is None or not flat.covers(params, prepared):
            always = bool(group.get("foreach") or group.get("fused"))
            flat = self._flat[key] = _Flat.build(params, prepared, always, flat)
        if flat.P is None:
            return False
        g = flat.G
        try:  # casting="no": a gradient of another dtype (set by hand) takes the loop instead
            np.concatenate([p.grad.data for p in params], axis=None, out=g, casting="no")
        except TypeError:
            return False
        if maximize:
            np.negative(g, out=g)
        self._rule(flat.P, g, *flat.S, **hyper)
        return True

    def _prepare_group(self, params: list, group: dict) -> list:
        """``_prepare`` for each parameter, in order (a subclass may do it with less Python per
        parameter, e.g. reading the hyperparameters once)."""
        state = self.state
        return [self._prepare(p, state[p], group) for p in params]

    def _prepare(self, p: Tensor, state: dict, group: dict) -> tuple[tuple, dict]:
        """Allocate or advance ``state`` for one step of ``p``; return the state Tensors the
        update changes and the hyperparameters (Python floats) the rule takes."""
        raise NotImplementedError(f"{type(self).__name__} must define _prepare() and _rule()")

    @staticmethod
    def _rule(p: np.ndarray, grad: np.ndarray, *buffers, **hyper) -> None:
        """Update ``p`` (and the buffers) in place; ``grad`` must not be written to."""
        raise NotImplementedError("an optimizer must define _rule()")

    # --- checkpoints ---
    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's format, with its own copies of the state tensors.

        ``{"state": {index: {name: value}}, "param_groups": [{hyperparameters, "params":
        [index, ...]}]}``: parameters are referred to by their position, counted through the
        groups in order. Load it into an optimizer built over the same parameters in the same
        order.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: _copy_state_value(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Replace the state and the hyperparameters with those of ``state_dict`` (copied).

        The groups must match this optimizer's in number and size. Floating state tensors are
        cast to their parameter's dtype. Training then continues exactly where it was saved.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"param groups, this optimizer {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: param group {i} has {len(saved['params'])} "
                    f"parameters in the state dict but {len(group['params'])} here"
                )
        params = {}
        for saved, group in zip(saved_groups, self.param_groups):
            params.update(zip(saved["params"], group["params"]))
        state: defaultdict[Tensor, dict] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if key not in params:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key!r}, which "
                                 "no param group lists")
            p = params[key]
            for k, v in values.items():
                if self._per_parameter_state and isinstance(v, (Tensor, np.ndarray)) and \
                        np.shape(v) != p.shape:
                    raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {key} "
                                     f"has shape {np.shape(v)}, the parameter {p.shape}")
            state[p] = {k: _copy_state_value(v, like=p) for k, v in values.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new_group = {k: v for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            for key, default in self.defaults.items():
                new_group.setdefault(key, default)
            self._check_implementation(new_group)
            self._check_group(new_group)
            new_groups.append(new_group)
        self.state, self.param_groups = state, new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])
