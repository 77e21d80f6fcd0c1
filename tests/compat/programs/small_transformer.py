"""A small Transformer trained on a copy-and-reverse task: nn.Transformer with masks, an
embedding, teacher forcing, Adam, then greedy decoding with topk - PyTorch's seq2seq idiom."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, D, LENGTH = 12, 16, 6
rng = np.random.default_rng(0)


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.transformer = nn.Transformer(d_model=D, nhead=4, num_encoder_layers=2,
                                          num_decoder_layers=2, dim_feedforward=32,
                                          dropout=0.0, batch_first=True)
        self.out = nn.Linear(D, VOCAB)

    def forward(self, src, tgt, src_padding):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        h = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=mask,
                             src_key_padding_mask=src_padding,
                             memory_key_padding_mask=src_padding)
        return self.out(h)


model = Seq2Seq().double()
with torch.no_grad():
    for _name, p in model.named_parameters():
        scale = 0.3 if p.dim() > 1 else 0.05
        p.copy_(torch.from_numpy(rng.normal(0.0, scale, tuple(p.shape))))

src = torch.from_numpy(rng.integers(2, VOCAB, (8, LENGTH)))
src_padding = torch.zeros(8, LENGTH, dtype=torch.bool)
src_padding[::3, -2:] = True  # some sources are shorter
tgt_full = torch.cat([torch.ones(8, 1, dtype=torch.long), src.flip(1)], dim=1)
tgt_in, tgt_out = tgt_full[:, :-1], tgt_full[:, 1:]

optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
losses = []
for _step in range(12):
    optimizer.zero_grad()
    logits = model(src, tgt_in, src_padding)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt_out.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(loss.item())

model.eval()
with torch.inference_mode():
    logits = model(src, tgt_in, src_padding)
    top_values, top_indices = logits.topk(2, dim=-1)
    sorted_logits, order = logits[0].sort(dim=-1, descending=True)
    probs = F.softmax(logits, dim=-1)
    one_hot = F.one_hot(tgt_out, num_classes=VOCAB)
    agreement = (probs * one_hot).sum(-1).mean().item()
    attn = model.transformer.encoder.layers[0].self_attn(
        model.embed(src), model.embed(src), model.embed(src), key_padding_mask=src_padding)[1]

RESULT = {"losses": losses, "top_values": top_values.numpy(),
          "top_indices": top_indices.numpy(), "order": order.numpy(),
          "agreement": agreement, "attn": attn.numpy(),
          "keys": list(model.state_dict())}
