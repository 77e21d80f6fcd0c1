"""PyTorch's MNIST example, in miniature: a CNN trained with SGD and StepLR on data from a
DataLoader with workers, a checkpoint saved and loaded mid-way, an evaluation loop. Synthetic
16x16 "images" stand in for MNIST; the weights start from a NumPy seed so both libraries begin
from the same point (dropout off, so they stay together)."""

import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
use_accel = torch.accelerator.is_available()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout(0.0)
        self.fc1 = nn.Linear(8 * 6 * 6, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def init_from_numpy(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else p.shape[0]
            bound = 1 / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(p.shape))
                                     .astype(np.float32)))


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.normal(0.0, 0.3, (n, 1, 16, 16)).astype(np.float32)
    for i, c in enumerate(labels):  # a class-dependent bright bar
        images[i, 0, c + 3, 2:14] += 1.5
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def train(model, loader, optimizer, log):
    model.train()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        log.append(loss.item())
        text = f"loss: {loss:.6f}"  # a 0-d tensor in a format spec
        assert text.startswith("loss: ")


def test(model, loader):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return test_loss / len(loader.dataset), correct


train_kwargs = {"batch_size": 32}
test_kwargs = {"batch_size": 100}
if use_accel:
    train_kwargs.update({"pin_memory": True})
loader_kwargs = {"num_workers": 2, "persistent_workers": True, "shuffle": False}
train_loader = DataLoader(make_data(256, 1), **train_kwargs, **loader_kwargs)
test_loader = DataLoader(make_data(200, 2), **test_kwargs, num_workers=2)

model = Net().to(device)
init_from_numpy(model, 0)
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
losses = []
for _epoch in range(1, 3):
    train(model, train_loader, optimizer, losses)
    scheduler.step()

path = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
torch.save({"epoch": 2, "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(), "losses": losses}, path)
checkpoint = torch.load(path, map_location=device, weights_only=True)
resumed = Net().to(device)
resumed.load_state_dict(checkpoint["model_state_dict"])
optimizer = optim.SGD(resumed.parameters(), lr=0.05, momentum=0.9)
optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
train(resumed, train_loader, optimizer, losses)
test_loss, correct = test(resumed, test_loader)
torch.save(resumed.state_dict(), path)
reloaded = Net()
reloaded.load_state_dict(torch.load(path))

RESULT = {
    "losses": losses,
    "test_loss": test_loss,
    "correct": correct,
    "epoch": checkpoint["epoch"],
    "saved_losses": checkpoint["losses"],
    "fc2": reloaded.fc2.weight.detach().cpu().numpy(),
    "device": str(device),
    "lr": optimizer.param_groups[0]["lr"],
}
