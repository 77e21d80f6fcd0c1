"""Classifying variable-length sequences with an LSTM over packed sequences: pad_sequence,
pack_padded_sequence (unsorted), the final hidden state, Adam; float64 throughout."""

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

rng = np.random.default_rng(0)
lengths = [7, 3, 5, 2, 6, 4]
seqs = [torch.from_numpy(rng.standard_normal((n, 3))) for n in lengths]
labels = torch.tensor([int(s[:, 0].sum() > 0) for s in seqs])


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, padded, lengths):
        self.lstm.flatten_parameters()
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed)
        unpacked, out_lengths = pad_packed_sequence(out, batch_first=True)
        return self.fc(torch.cat([h[0], h[1]], dim=1)), unpacked, out_lengths


model = Classifier().double()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape))))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
padded = pad_sequence(seqs, batch_first=True)
losses = []
for _step in range(10):
    optimizer.zero_grad()
    logits, unpacked, out_lengths = model(padded, torch.tensor(lengths))
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

RESULT = {"losses": losses, "unpacked": unpacked.detach().numpy(),
          "out_lengths": out_lengths.tolist(), "padded_shape": tuple(padded.shape)}
