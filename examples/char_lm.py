"""A character-level LSTM language model trained with truncated BPTT on Python's own docs.

    python examples/char_lm.py

The text is the documentation that ships with every Python: ``pydoc_data.topics.topics``, a dict
of topic -> text, whose values are joined with newlines in sorted key order (about 465,000
characters). The last 5% is held out. The model reads characters through an embedding, an LSTM
and a linear head onto the vocabulary, trained with cross-entropy.

Truncated backpropagation through time: the training text is cut into ``--batch-size`` parallel
streams, read in chunks of ``--bptt`` characters; the LSTM state is carried from one chunk to
the next and cut from the graph with ``backprop.nn.detach_state`` after each chunk, so gradients
flow back at most ``--bptt`` steps while the state remembers further. Gradients are clipped to
``--clip`` with ``clip_grad_norm_``, the cure for the exploding gradients of recurrent nets; the
log shows the norms before clipping.

Reported: bits per character on the held-out tail against the unigram baseline (the entropy of
the training characters' distribution, in bits), then text sampled from the trained model.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import backprop as bp
import backprop.nn.functional as F
from backprop import nn
from backprop.data import DataLoader, TensorDataset
from backprop.nn import detach_state
from backprop.nn.utils import clip_grad_norm_
from backprop.optim import Adam
from backprop.optim.lr_scheduler import CosineAnnealingLR

LN2 = math.log(2.0)


def load_text() -> str:
    """Python's documentation topics, joined with newlines in sorted key order."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def encode(text: str) -> tuple[list[str], np.ndarray]:
    """The sorted vocabulary of ``text`` and its characters as int64 indices into it."""
    chars = sorted(set(text))
    lookup = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
    lookup[[ord(c) for c in chars]] = np.arange(len(chars))
    return chars, lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]


def add_text_args(p: argparse.ArgumentParser) -> None:
    """The flags of the text, its split and the sample, shared with transformer_lm.py."""
    p.add_argument("--holdout", type=float, default=0.05,
                   help="fraction of the text, at its end, held out for evaluation")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    p.add_argument("--sample-len", type=int, default=400, help="characters to sample")
    p.add_argument("--prime", default="The ", help="text the sample starts from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=positive, default=None,
                   help="use only the first N characters of the text (smoke tests)")


def check_text_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 < args.holdout < 1:
        p.error(f"argument --holdout: must be in (0, 1), got {args.holdout}")
    if args.temperature <= 0:
        p.error(f"argument --temperature: must be positive, got {args.temperature}")


def unigram_bits(ids: np.ndarray, vocab_size: int) -> float:
    """Entropy, in bits, of the distribution of the characters ``ids``."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def stream_chunks(ids: np.ndarray, n_streams: int, bptt: int) -> TensorDataset:
    """Cut ``ids`` into ``n_streams`` contiguous streams read ``bptt`` characters at a time.

    Row ``j * n_streams + b`` holds chunk ``j`` of stream ``b`` (inputs) and the same chunk
    shifted by one character (targets), so a ``DataLoader`` with ``batch_size=n_streams`` and no
    shuffling yields chunk ``j`` of every stream, in order: what truncated BPTT needs to carry
    the state from one batch to the next.
    """
    length = (len(ids) - 1) // n_streams  # characters per stream, one kept for the last target
    n_chunks = length // bptt
    if n_chunks == 0:
        raise ValueError(f"{len(ids):,} characters are too few for {n_streams} streams of "
                         f"{bptt}-character chunks")
    usable = n_chunks * bptt
    streams = ids[: n_streams * length + 1]
    x = streams[:-1].reshape(n_streams, length)[:, :usable]
    y = streams[1:].reshape(n_streams, length)[:, :usable]

    def layout(a):
        return a.reshape(n_streams, n_chunks, bptt).transpose(1, 0, 2).reshape(-1, bptt)

    return TensorDataset(layout(x), layout(y))


class CharLSTM(nn.Module):
    """Embedding -> LSTM (batch_first) -> linear head onto the vocabulary."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int,
                 num_layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: bp.Tensor, state=None) -> tuple:
        output, state = self.lstm(self.embed(x), state)
        return self.head(output), state


def chunk_loss(model: CharLSTM, x: bp.Tensor, y: bp.Tensor, state) -> tuple:
    """Mean cross-entropy (nats) of one (N, T) chunk, and the state after it."""
    logits, state = model(x, state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


def evaluate(model: CharLSTM, loader: DataLoader) -> float:
    """Bits per character of ``model`` over ``loader``'s streams, state carried across chunks."""
    model.eval()
    total = count = 0.0
    state = None
    with bp.no_grad():
        for x, y in loader:
            loss, state = chunk_loss(model, x, y, state)
            total += loss.item() * y.data.size
            count += y.data.size
    model.train()
    return total / count / LN2


def sample(model: CharLSTM, chars: list[str], prime: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """``length`` characters drawn from the model after reading ``prime``, at ``temperature``."""
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in prime if c in index] or [0]
    model.eval()
    out = []
    with bp.no_grad():
        logits, state = model(bp.tensor(np.array([ids], dtype=np.int64)))
        for _ in range(length):
            z = logits.data[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[nxt])
            logits, state = model(bp.tensor(np.array([[nxt]], dtype=np.int64)), state)
    model.train()
    return prime + "".join(out)


def positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--steps", type=positive, default=1500,
                   help="optimizer steps, one per chunk of batch-size x bptt characters")
    p.add_argument("--eval-every", type=positive, default=250,
                   help="report training and held-out bits per character every N steps")
    p.add_argument("--batch-size", type=positive, default=32, help="parallel text streams")
    p.add_argument("--bptt", type=positive, default=64,
                   help="truncation length k: detach the state every k characters")
    p.add_argument("--embed-dim", type=positive, default=32)
    p.add_argument("--hidden-size", type=positive, default=256)
    p.add_argument("--num-layers", type=positive, default=1)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's initial learning rate")
    p.add_argument("--clip", type=float, default=1.0,
                   help="max gradient norm (clip_grad_norm_); 0 disables clipping")
    add_text_args(p)
    args = p.parse_args(argv)
    check_text_args(p, args)
    return args


def main(argv: list[str] | None = None) -> float:
    """Train, evaluate and sample; return the held-out bits per character."""
    args = parse_args(argv)
    bp.manual_seed(args.seed)
    text = load_text()
    if args.limit is not None:
        text = text[: args.limit]
    chars, ids = encode(text)
    split = int(len(ids) * (1 - args.holdout))
    train_ids, test_ids = ids[:split], ids[split:]
    eval_streams = max(1, min(16, (len(test_ids) - 1) // args.bptt))
    try:
        train = stream_chunks(train_ids, args.batch_size, args.bptt)
        test = stream_chunks(test_ids, eval_streams, args.bptt)
    except ValueError as exc:
        sys.exit(f"error: {exc} (text of {len(ids):,} characters, holdout {args.holdout})")
    train_loader = DataLoader(train, batch_size=args.batch_size)  # in order, chunk by chunk
    test_loader = DataLoader(test, batch_size=eval_streams)
    baseline = unigram_bits(train_ids, len(chars))

    model = CharLSTM(len(chars), args.embed_dim, args.hidden_size, args.num_layers)
    optimizer = Adam(model.parameters(), lr=args.lr)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 20)
    per_step = args.batch_size * args.bptt
    print(f"pydoc_data topics: {len(text):,} characters, vocabulary {len(chars)}; "
          f"train {len(train_ids):,} / held out {len(test_ids):,} (last {args.holdout:.0%})")
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; truncated BPTT, "
          f"k = {args.bptt}, {args.batch_size} streams; training limited to {args.steps} steps "
          f"= {args.steps * per_step:,} characters "
          f"({args.steps * per_step / len(train_ids):.1f} passes over the training text)")
    print(f"unigram baseline: {baseline:.3f} bits per character")

    start = t0 = time.perf_counter()
    step, losses, norms, clipped, state, bpc = 0, [], [], 0, None, baseline
    while step < args.steps:
        state = None  # each pass over the text starts the streams afresh
        for x, y in train_loader:
            optimizer.zero_grad()
            loss, state = chunk_loss(model, x, y, state)
            loss.backward()
            if args.clip > 0:
                norm = clip_grad_norm_(model.parameters(), args.clip).item()
                clipped += norm > args.clip
            else:
                norm = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum())
                                     for p in model.parameters() if p.grad is not None))
            norms.append(norm)
            optimizer.step()
            scheduler.step()
            state = detach_state(state)  # keep the values, drop the history: truncated BPTT
            losses.append(loss.item())
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                bpc = evaluate(model, test_loader)
                print(f"step {step}/{args.steps}: train bpc {np.mean(losses) / LN2:.3f}, "
                      f"pre-clip grad norm mean {np.mean(norms):.2f} max {np.max(norms):.2f} "
                      f"({clipped}/{len(norms)} clipped), held-out bpc {bpc:.3f}, "
                      f"{time.perf_counter() - t0:.1f} s")
                losses, norms, clipped, t0 = [], [], 0, time.perf_counter()
            if step == args.steps:
                break
    print(f"total time: {time.perf_counter() - start:.1f} s")
    rng = np.random.default_rng(args.seed)
    if args.sample_len > 0:
        print(f"--- sample (temperature {args.temperature}) ---")
        print(sample(model, chars, args.prime, args.sample_len, args.temperature, rng))
        print("---")
    print(f"held-out bits per character: {bpc:.3f} (unigram baseline {baseline:.3f})")
    return bpc


if __name__ == "__main__":
    main()
