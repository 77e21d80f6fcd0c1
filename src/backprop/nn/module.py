"""``Module`` and ``Parameter``: layers that own tensors, with PyTorch's names and semantics.

A Module registers, in assignment order, every ``Parameter``, sub-``Module`` and buffer assigned
to it as an attribute. Everything else (``parameters()``, ``state_dict()``, ``train()``,
``zero_grad()``, ...) walks those ordered dicts, so parameter order is deterministic.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator

import numpy as np

from backprop import devices
from backprop.autograd.grad_mode import no_grad
from backprop.errors import ShapeError
from backprop.tensor import Tensor, _RemovableHandle, _wrap


class Parameter(Tensor):
    """A Tensor that is a module's learnable parameter: assigning it to a Module registers it.

    Args:
        data: a Tensor or an ndarray (its memory is shared, not copied); an empty float32 tensor
            when None.
        requires_grad: whether the optimizer should train it (default True).
    """

    # the qualified name in the outermost module it was registered under, for graph drawings
    __slots__ = ("_qualname",)

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        arr = data.data if isinstance(data, Tensor) else np.asarray(data)
        super().__init__(arr, requires_grad=requires_grad)
        self._qualname = None

    @property
    def qualified_name(self) -> str | None:
        """The dotted name (``'0.weight'``, ``'fc1.bias'``) under which the outermost module
        holding it registered it, or None before any module did; ``backprop.viz`` labels graph
        leaves with it."""
        return getattr(self, "_qualname", None)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _name_module_in(exc: ShapeError, module: Module) -> None:
    """Prefix a shape error's message with the module it happened in: the innermost module
    whose forward raised it, named by its qualified name in the outermost module that sees it
    (``in encoder.fc1 (Linear): ...``), so that a user can tell which of many layers failed."""
    inner = getattr(exc, "_bp_module", None)
    if inner is None:  # the innermost module: remember it and the op's own message
        exc._bp_module, exc._bp_message = module, str(exc)
        exc.args = (f"in {type(module).__name__}: {exc._bp_message}",)
        return
    # modules the error passes on the way out run this again; the outermost one wins
    name = next((n for n, m in module.named_modules() if m is inner), None)
    if name:
        exc.args = (f"in {name} ({type(inner).__name__}): {exc._bp_message}",)


def _prefix_hint(unexpected: list, own) -> str | None:
    """Say so when the keys carry a wrapper's prefix: ``module.`` (DistributedDataParallel,
    DataParallel) or ``_orig_mod.`` (torch.compile)."""
    for prefix, wrapper in (("module.", "DistributedDataParallel or DataParallel"),
                            ("_orig_mod.", "torch.compile")):
        if any(k.startswith(prefix) and k[len(prefix):] in own for k in unexpected):
            return (f"the file's keys start with {prefix!r} (written from a model wrapped by "
                    f"{wrapper}); strip it: {{k.removeprefix({prefix!r}): v for k, v in "
                    f"state_dict.items()}}")
    return None


def _prefix_names(name: str, module: Module) -> None:
    """A module registered under ``name``: its parameters' qualified names now start there
    (models are built inside out, so the last registration is the outermost module's)."""
    for sub_name, param in module.named_parameters():
        param._qualname = f"{name}.{sub_name}"


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Subclasses assign parameters and sub-modules in
    ``__init__`` and define ``forward``; call the module (not ``forward``) to run it.

    Example:
        >>> import backprop as bp
        >>> class TwoLayer(bp.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = bp.nn.Linear(4, 8)
        ...         self.out = bp.nn.Linear(8, 1)
        ...     def forward(self, x):
        ...         return self.out(bp.tanh(self.hidden(x)))
        >>> model = TwoLayer()
        >>> [name for name, _ in model.named_parameters()]
        ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
        >>> model(bp.zeros(2, 4)).shape
        (2, 1)
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "_forward_pre_hooks", [])

    # --- registration ---
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called: call "
                "super().__init__() first in your module's __init__"
            )
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
            value._qualname = name
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
            _prefix_names(name, value)
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r}: use a "
                    "backprop.nn.Parameter (or None)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to sub-module {name!r}")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r}")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        self._non_persistent.discard(name)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter, or None for an absent one such as ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param
        if param is not None:
            param._qualname = name

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a tensor that is state but not a parameter (running statistics).

        Persistent buffers are saved in ``state_dict``.
        """
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, "
                            f"got {type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a sub-module under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module
        if module is not None:
            _prefix_names(name, module)

    register_module = add_module

    # --- running ---
    def forward(self, *args, **kwargs):
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        try:
            out = self.forward(*args, **kwargs)
        except ShapeError as exc:
            _name_module_in(exc, self)
            raise
        for hook in tuple(self._forward_hooks):
            new = hook(self, args, out)
            if new is not None:
                out = new
        return out

    def register_forward_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return replaces
        the output."""
        self._forward_hooks.append(hook)
        return _RemovableHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook: Callable) -> _RemovableHandle:
        """Call ``hook(module, inputs)`` before every forward; a non-None return replaces the
        inputs."""
        self._forward_pre_hooks.append(hook)
        return _RemovableHandle(self._forward_pre_hooks, hook)

    # --- traversal ---
    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator:
        """(dotted name, module) for this module and every descendant, each once."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:  # iterative pre-order, children in registration order
            name, module = stack.pop()
            if id(module) in memo:
                continue
            memo.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items() if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator:
        """(name, module) for the direct sub-modules."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator:
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))  # a shared (tied) tensor is listed once
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator:
        """(dotted name, Parameter) pairs, in registration order, each parameter once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters, in registration order (the order optimizers see)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator:
        """(dotted name, buffer) pairs."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # --- modes and gradients ---
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``self.training``) here and in every descendant; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode (Dropout off, BatchNorm uses running statistics); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter (freeze with False); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default), or to zeros in place."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                with no_grad():
                    p.grad.zero_()

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every descendant and then on self (e.g. custom initialisation)."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    def to(self, *args, **kwargs) -> Module:
        """Cast floating parameters and buffers in place and/or move the module; returns self.

        PyTorch's forms: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(tensor)``
        and the keywords ``device``, ``dtype``, ``non_blocking``. Only the CPU exists here, so a
        device changes nothing and another device raises ``DeviceUnavailableError``.
        """
        dtype, _ = devices.parse_to("Module.to", args, kwargs)
        if dtype is None:
            return self
        if dtype.kind != "f":
            raise TypeError(f"Module.to: only floating dtypes are supported, got {dtype}")
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for t in store.values():
                    if t is not None and t.dtype.kind == "f" and t.dtype != dtype:
                        t.data = t.data.astype(dtype)
                        if t.grad is not None:
                            t.grad = _wrap(t.grad.data.astype(dtype), False, None, 0)
        return self

    def cpu(self) -> Module:
        """Returns self: parameters already live on the CPU."""
        return self

    def cuda(self, device=None) -> Module:
        """Raises ``DeviceUnavailableError``: there is no CUDA backend (as PyTorch without
        CUDA)."""
        devices.check_device("cuda" if device is None else device, "module")
        return self

    def float(self) -> Module:
        """Cast to float32."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Cast to float64."""
        return self.to(np.float64)

    # --- state ---
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """An ordered dict of every parameter and persistent buffer by dotted name.

        Values are detached Tensors sharing memory with the module (``keep_vars=True`` returns
        the parameters themselves). Key names are PyTorch's (``0.weight``, ``fc.bias``, ...).
        """
        out = OrderedDict()
        for module_name, module in self.named_modules(prefix=prefix):
            base = f"{module_name}." if module_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[base + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors or ndarrays) into the parameters and buffers, in place.

        With ``strict`` (the default), missing keys, unexpected keys and shape mismatches raise a
        single error listing every one of them; without it, only shape mismatches raise.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for key, target in own.items():
            if key in state_dict:
                value = state_dict[key]
                shape = tuple(np.shape(value.data if isinstance(value, Tensor) else value))
                if shape != target.shape:
                    mismatched.append(f"{key}: checkpoint {shape}, model {target.shape}")
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        hint = _prefix_hint(unexpected, own) if problems else None
        if hint:
            problems.append(hint)
        if problems:
            raise RuntimeError(
                f"load_state_dict: cannot load into {type(self).__name__}: " + " | ".join(problems)
            )
        with no_grad():
            for key, target in own.items():
                if key in state_dict:
                    value = state_dict[key]
                    arr = value.data if isinstance(value, Tensor) else np.asarray(value)
                    if not np.can_cast(arr.dtype, target.dtype, casting="same_kind"):
                        raise TypeError(
                            f"load_state_dict: {key}: cannot load {arr.dtype} values into a "
                            f"{target.dtype} tensor"
                        )
                    target.copy_(arr)
        return _IncompatibleKeys(missing, unexpected)

    # --- display ---
    def extra_repr(self) -> str:
        """The layer's own settings for its repr (``in_features=4, out_features=8, ...``)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (extra + "\n" if extra else "\n")
        return head + "".join(f"  {line}\n" for line in lines) + ")"

    def summary(self, input_shape, dtype=np.float32, file=None) -> str:
        """A Keras-style table of every leaf layer's output shape and parameter count.

        Runs one forward pass on zeros of ``input_shape`` (batch included) under ``no_grad``.
        Returns the table (and prints it to ``file`` when given).
        """
        rows = []
        handles = []
        for name, module in self.named_modules():
            if next(module.children(), None) is None and module is not self:
                def hook(mod, inputs, output, name=name):
                    shape = output.shape if isinstance(output, Tensor) else "(multiple)"
                    own = sum(p.numel() for p in mod.parameters(recurse=False))
                    rows.append((name, type(mod).__name__, str(shape), own))
                handles.append(module.register_forward_hook(hook))
        try:
            with no_grad():
                out = self(Tensor(np.zeros(tuple(input_shape), dtype=dtype)))
        finally:
            for h in handles:
                h.remove()
        if not rows:
            rows.append(("", type(self).__name__, str(getattr(out, "shape", "")),
                         sum(p.numel() for p in self.parameters())))
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        head = ("Layer (type)", "Output shape", "Param #")
        body = [(f"{n} ({t})" if n else t, s, f"{c:,}") for n, t, s, c in rows]
        w0 = max(len(head[0]), *(len(r[0]) for r in body))
        w1 = max(len(head[1]), *(len(r[1]) for r in body))
        w2 = max(len(head[2]), *(len(r[2]) for r in body))
        rule = "-" * (w0 + w1 + w2 + 4)
        lines = [rule, f"{head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]:>{w2}}", rule]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in body]
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        if file is not None:
            print(text, file=file)
        return text


from backprop.nn.containers import ModuleDict, ModuleList, Sequential  # noqa: E402,F401
