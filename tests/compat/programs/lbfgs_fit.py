"""Fitting a small model with L-BFGS and a closure, as in PyTorch's time-sequence-prediction
example: double precision, strong-Wolfe line search, a few outer steps."""

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(0)
x = torch.from_numpy(np.linspace(-2, 2, 64).reshape(-1, 1))
y = torch.sin(2 * x) + 0.1 * torch.from_numpy(rng.standard_normal((64, 1)))

model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).double()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.from_numpy(rng.uniform(-1.0, 1.0, tuple(p.shape))))
criterion = nn.MSELoss()
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8, line_search_fn="strong_wolfe")

losses = []
for _i in range(3):
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    losses.append(optimizer.step(closure).item())

with torch.no_grad():
    final = criterion(model(x), y).item()

RESULT = {"losses": losses, "final": final,
          "evals": optimizer.state[optimizer.param_groups[0]["params"][0]]["func_evals"],
          "weights": model[0].weight.detach().numpy()}
