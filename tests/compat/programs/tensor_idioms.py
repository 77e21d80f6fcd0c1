"""Everyday tensor idioms: dtype aliases, new_* constructors, in-place fills, narrow, mm/bmm,
type names, generators and random_split, one_hot, format specs."""

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset, random_split

a = torch.arange(12, dtype=torch.float).reshape(3, 4)
b = a.new_zeros(2, 2).fill_diagonal_(1.5)
c = a.new_full((3, 3), 2.0).index_fill_(1, torch.tensor([0, 2]), -1.0)
d = a.narrow(1, 1, 2).mm(torch.ones(2, 3))
e = torch.bmm(a.reshape(1, 3, 4), a.t().reshape(1, 4, 3))
f = a.clone().masked_fill_(a > 6, 0.0)
counts = (a.long() % 3).eq(0).sum().item()
g = torch.Generator().manual_seed(0)
train, val = random_split(TensorDataset(torch.arange(10)), [0.8, 0.2], generator=g)
ints = torch.randint(0, 5, (4,), generator=g)
perm = torch.randperm(6, generator=g)
mask = torch.triu(torch.ones(3, 3), diagonal=1).bool()

RESULT = {
    "b": b.numpy(), "c": c.numpy(), "d": d.numpy(), "e": e.numpy(), "f": f.numpy(),
    "counts": counts, "type": a.type(), "double_type": a.double().type(),
    "element_size": a.element_size(), "long_size": a.long().element_size(),
    "dims": (a.dim(), a.size(1), a.numel()), "lens": (len(train), len(val)),
    "ints_ok": bool(((ints >= 0) & (ints < 5)).all()), "perm": sorted(perm.tolist()),
    "one_hot": F.one_hot(torch.tensor([0, 2]), 3).numpy(),
    "format": f"{a.sum():.2f}|{a.mean():8.3f}", "mask": mask.numpy(),
    "contiguous": tuple(a.t().contiguous().shape),
    "half": str(a.half().dtype).split(".")[-1],
    "aliases": [str(torch.zeros(1, dtype=t).dtype).split(".")[-1]
                for t in (torch.float, torch.double, torch.long, torch.int, torch.bool)],
}
