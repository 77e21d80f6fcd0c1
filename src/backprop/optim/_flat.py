"""Flat buffers for the optimizers' update (``Optimizer._flat_update``): the parameters and each
state buffer of a param group moved, once, into one flat array each, so an elementwise rule runs
once per group instead of once per parameter (PyTorch's ``foreach`` idea; for NumPy the cost of
a small step is the Python per parameter, not the arithmetic).

Moving an array is only safe when nothing else refers to it: a view of a parameter kept
elsewhere would stop seeing the updates. ``_movable`` checks that with reference counts, which
CPython keeps exactly; anything in doubt keeps the per-parameter loop.
"""

from __future__ import annotations

import sys
from operator import is_

import numpy as np

from backprop.tensor import Tensor

FLAT_MAX_MEAN = 8192
"""Groups whose parameters hold at most this many elements on average are updated over flat
buffers: gathering the gradients is one more pass over memory, which costs less than the
per-parameter Python it saves only while parameters are small (a size rule, not a timing)."""


def _count(arr) -> int:
    """How many references ``arr`` has (always counted through this one function, so counts
    compare with each other and with ``_SOLE``)."""
    return sys.getrefcount(arr)


class _Holder:
    __slots__ = ("data",)


def _sole_owner_baseline() -> int:
    h = _Holder()
    h.data = np.empty(1)
    return _count(h.data)


_SOLE = _sole_owner_baseline()


def _movable(t: Tensor, free: set) -> bool:
    """True when rebinding ``t.data`` to a copy elsewhere changes nothing anyone else can see:
    its array owns its memory, or is a view into a flat buffer of ours (in ``free``: ids of
    flat arrays nothing outside our records refers to), and nothing but ``t`` (and our record
    of the view) refers to it: no view of it, no other Tensor sharing it."""
    base = t.data.base
    if not t.data.flags.c_contiguous:
        return False
    if base is None:
        return _count(t.data) <= _SOLE
    return id(base) in free and _count(t.data) <= _SOLE + 1


class _Flat:
    """Flat buffers of one param group: ``P`` (the parameters), ``S`` (one per state buffer
    slot) and ``G`` (the gathered gradients), and the per-parameter views they were split into.
    ``P`` is None when the group cannot be flattened (see ``Optimizer._flat_update``)."""

    __slots__ = ("params", "views", "buffers", "bviews", "P", "S", "G", "refs")

    def __init__(self) -> None:
        self.params, self.views, self.buffers, self.bviews = (), (), (), ()
        self.P, self.S, self.G, self.refs = None, (), None, ()

    def __reduce__(self):
        # a copy (copy.deepcopy, pickle) starts empty and rebuilds from its own parameters:
        # copied views would be arrays of their own, no longer views of the copied buffer
        return (_Flat, ())

    def covers(self, params: list, prepared: list) -> bool:
        """Still these parameters and state buffers, each still bound to its view (a refused
        group is remembered as long as its parameters are the same)."""
        if len(params) != len(self.params) or not all(map(is_, params, self.params)):
            return False
        if self.P is None:
            return True
        bufs = [b for bs, _ in prepared for b in bs]
        return (all(map(is_, [p.data for p in params], self.views))
                and len(bufs) == len(self.buffers) and all(map(is_, bufs, self.buffers))
                and all(map(is_, [b.data for b in bufs], self.bviews)))

    def free(self) -> set:
        """Ids of this record's flat arrays that nothing else refers to (no view of them was
        taken since they were built): their views may move again."""
        if self.P is None:
            return set()
        now = self.counts()  # before the tuple below exists: it refers to the arrays too
        return {id(a) for a, n, c in zip((self.P, *self.S), self.refs, now) if c <= n}

    def counts(self) -> tuple:
        """The reference counts of the flat arrays (one expression, so counts compare)."""
        return tuple(map(_count, (self.P, *self.S)))

    @classmethod
    def build(cls, params: list, prepared: list, always: bool = False,
              old: _Flat | None = None) -> _Flat:
        flat = cls()
        flat.params = tuple(params)
        dtype = params[0].data.dtype
        n_slots = len(prepared[0][0])
        total = 0
        for p, (bufs, _) in zip(params, prepared):
            if p.data.dtype != dtype or p.grad.data.dtype != dtype or len(bufs) != n_slots:
                return flat
            total += p.data.size
        if dtype.kind != "f" or (total > FLAT_MAX_MEAN * len(params) and not always):
            return flat
        free = old.free() if old is not None else set()
        tensors = list(params)
        for bufs, _ in prepared:
            tensors.extend(bufs)
        for t in tensors:
            if t.data.dtype != dtype or not _movable(t, free):
                return flat
        del old, tensors  # drop our references before the counts below
        flat.P, flat.views = _pack(params, dtype, total)
        slots = [_pack([bufs[k] for bufs, _ in prepared], dtype, total)
                 for k in range(n_slots)]
        flat.S = tuple(s[0] for s in slots)
        # buffers and their views in parameter order, as covers() lists them
        flat.buffers = tuple(b for bufs, _ in prepared for b in bufs)
        flat.bviews = tuple(v for vs in zip(*(s[1] for s in slots)) for v in vs)
        del slots
        flat.G = np.empty(total, dtype)
        flat.refs = flat.counts()
        return flat


def _pack(tensors: list, dtype, total: int) -> tuple:
    """Copy the tensors' values into one flat array and rebind each ``.data`` to its view."""
    flat = np.empty(total, dtype)
    views = []
    offset = 0
    for t in tensors:
        n = t.data.size
        part = flat[offset:offset + n]
        part[...] = t.data.reshape(-1)
        view = part.reshape(t.data.shape)
        t.data = view
        views.append(view)
        offset += n
    return flat, tuple(views)
