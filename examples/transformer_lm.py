"""A character-level Transformer language model on Python's own docs, written the PyTorch way.

    python examples/transformer_lm.py

The same text and held-out split as ``examples/char_lm.py`` (``pydoc_data.topics`` joined in
sorted key order, the last 5% held out), so the two models' bits per character compare. The
model is a decoder-only Transformer built from ``nn.TransformerEncoderLayer`` with a causal
mask: character embedding plus sinusoidal positional encoding (Vaswani et al. 2017),
``--num-layers`` pre-norm layers of ``--nhead``-head self-attention and a ReLU (or
``--activation gelu``) feed-forward block, a final LayerNorm and a linear head onto the
vocabulary.

Training reads random windows of ``--context`` characters from the training text (every
position predicts the next character, seeing only the ones before it), with AdamW, a linear
warm-up and a cosine decay, and gradients clipped to ``--clip``. Evaluation slides a window of
``--context`` characters over the held-out text by half a window and scores the second half
of each (all of the first window), so every held-out character but the first is predicted
from at least half a window of context.

Reported: held-out bits per character against the unigram baseline and the LSTM's 1.593
(README), then text sampled from the model.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import numpy as np

import backprop as torch  # the PyTorch idiom, run on backprop
import backprop.nn.functional as F
from backprop import nn

LN2 = math.log(2.0)
LSTM_BPC = 1.593  # examples/char_lm.py with its defaults (README)


def _char_lm():
    """examples/char_lm.py as a module (examples/ is not a package): the text and baseline."""
    path = Path(__file__).resolve().with_name("char_lm.py")
    spec = importlib.util.spec_from_file_location("char_lm_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_char = _char_lm()


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position code: PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d)). Shape (N, T, d) -> same."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = np.arange(max_len)[:, None]
        div = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model), dtype=np.float32)
        pe[:, 0::2] = np.sin(position * div)
        pe[:, 1::2] = np.cos(position * div)
        self.register_buffer("pe", torch.tensor(pe))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class CharTransformer(nn.Module):
    """Embedding + positions -> causal pre-norm Transformer layers -> LayerNorm -> head."""

    def __init__(self, vocab_size: int, d_model: int, nhead: int, num_layers: int,
                 dim_feedforward: int, dropout: float, context: int,
                 activation: str = "relu") -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = PositionalEncoding(d_model, context)
        if activation == "gelu":  # nn.GELU's tanh form: the exact one needs erf, slow in NumPy
            activation = nn.GELU(approximate="tanh")
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                           activation=activation, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, 0.5)  # comparable to the position code's amplitude
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, T) character ids -> (N, T, vocab) next-character logits."""
        t = ids.shape[1]
        x = self.pos(self.embed(ids))
        x = self.encoder(x, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(x))


def windows(ids: np.ndarray, context: int, starts: np.ndarray) -> tuple:
    """Inputs ids[s : s + context] and targets one character later, for every start s."""
    offsets = starts[:, None] + np.arange(context)[None, :]
    return torch.from_numpy(ids[offsets]), torch.from_numpy(ids[offsets + 1])


def evaluate(model: CharTransformer, ids: np.ndarray, context: int, batch: int) -> float:
    """Bits per character over ``ids[1:]``: windows of ``context`` every ``context // 2``
    characters, each scoring the characters the previous window did not."""
    model.eval()
    stride = max(1, context // 2)
    last = max(0, len(ids) - 1 - context)
    starts = np.unique(np.append(np.arange(0, last + 1, stride), last))
    total, count, scored_to = 0.0, 0, 0  # scored_to: targets ids[1 : scored_to + 1] are done
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            s = starts[i:i + batch]
            length = min(context, len(ids) - 1)
            x, y = windows(ids, length, s)
            logp = F.log_softmax(model(x), dim=-1).data
            picked = np.take_along_axis(logp, y.data[..., None], -1)[..., 0]
            for row, start in zip(picked, s):
                first_new = max(0, scored_to - start)  # skip targets already scored
                total -= row[first_new:].sum(dtype=np.float64)
                count += len(row) - first_new
                scored_to = start + length
    model.train()
    return total / count / LN2


def sample(model: CharTransformer, chars: list[str], prime: str, length: int, context: int,
           temperature: float, rng: np.random.Generator) -> str:
    """``length`` characters drawn from the model after ``prime``, each from the last
    ``context`` characters."""
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in prime if c in index] or [0]
    model.eval()
    with torch.no_grad():
        for _ in range(length):
            logits = model(torch.tensor([ids[-context:]]))
            z = logits.data[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            ids.append(int(rng.choice(len(chars), p=p / p.sum())))
    model.train()
    return prime + "".join(chars[i] for i in ids[len(prime):])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--steps", type=_char.positive, default=1000, help="optimizer steps")
    p.add_argument("--eval-every", type=_char.positive, default=250,
                   help="report training and held-out bits per character every N steps")
    p.add_argument("--batch-size", type=_char.positive, default=32, help="windows per step")
    p.add_argument("--context", type=_char.positive, default=128, help="characters per window")
    p.add_argument("--d-model", type=_char.positive, default=128)
    p.add_argument("--nhead", type=_char.positive, default=4)
    p.add_argument("--num-layers", type=_char.positive, default=3)
    p.add_argument("--dim-feedforward", type=_char.positive, default=512)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--activation", choices=("relu", "gelu"), default="relu",
                   help="feed-forward activation (gelu: its tanh form; about 15%% slower)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    p.add_argument("--warmup", type=int, default=100, help="steps of linear warm-up")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm; 0: off")
    _char.add_text_args(p)
    args = p.parse_args(argv)
    _char.check_text_args(p, args)
    if args.d_model % args.nhead:
        p.error(f"argument --nhead: must divide --d-model {args.d_model}, got {args.nhead}")
    return args


def main(argv: list[str] | None = None) -> float:
    """Train, evaluate and sample; return the held-out bits per character."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    text = _char.load_text()
    if args.limit is not None:
        text = text[: args.limit]
    chars, ids = _char.encode(text)
    split = int(len(ids) * (1 - args.holdout))  # the split of char_lm.py
    train_ids, test_ids = ids[:split], ids[split:]
    if len(train_ids) <= args.context + 1 or len(test_ids) < 2:
        sys.exit(f"error: {len(ids):,} characters are too few for a context of {args.context}")
    baseline = _char.unigram_bits(train_ids, len(chars))

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = CharTransformer(len(chars), args.d_model, args.nhead, args.num_layers,
                            args.dim_feedforward, args.dropout, args.context,
                            args.activation).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2 or "embed" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=args.lr,
                                  betas=(0.9, 0.98))

    def schedule(step: int) -> float:  # linear warm-up, then cosine down to lr / 20
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    print(f"pydoc_data topics: {len(text):,} characters, vocabulary {len(chars)}; "
          f"train {len(train_ids):,} / held out {len(test_ids):,} (last {args.holdout:.0%})")
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters: {args.num_layers} "
          f"layers, d_model {args.d_model}, {args.nhead} heads, feed-forward "
          f"{args.dim_feedforward} ({args.activation}), context {args.context}; {args.steps} "
          f"steps of "
          f"{args.batch_size} windows = {args.steps * args.batch_size * args.context:,} "
          f"predicted characters")
    print(f"unigram baseline: {baseline:.3f} bits per character; the LSTM "
          f"(examples/char_lm.py): {LSTM_BPC} held out")

    rng = np.random.default_rng(args.seed)
    start = t0 = time.perf_counter()
    losses, bpc = [], baseline
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(train_ids) - args.context - 1, args.batch_size)
        x, y = (t.to(device) for t in windows(train_ids, args.context, starts))
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            bpc = evaluate(model, test_ids, args.context, args.batch_size)
            print(f"step {step}/{args.steps}: train bpc {np.mean(losses) / LN2:.3f}, held-out "
                  f"bpc {bpc:.3f}, {time.perf_counter() - t0:.1f} s")
            losses, t0 = [], time.perf_counter()
    print(f"total time: {time.perf_counter() - start:.1f} s")
    if args.sample_len > 0:
        print(f"--- sample (temperature {args.temperature}) ---")
        print(sample(model, chars, args.prime, args.sample_len, args.context,
                     args.temperature, rng))
        print("---")
    print(f"held-out bits per character: {bpc:.3f} (unigram baseline {baseline:.3f}, "
          f"LSTM {LSTM_BPC})")
    return bpc


if __name__ == "__main__":
    main()
