"""``backprop bench gradient-cost [--out DIR]``: the cost of a gradient by finite differences
against backprop, measured on MLPs from 9 to about 100,000 parameters (see
``backprop.diagnostics.cost``). Prints one line per network and, last,
``backward/forward ratio: X.XX`` (one backward pass over one forward pass, largest network);
writes ``DIR/gradient-cost.png`` and ``DIR/gradient-cost.csv``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop.cli.errors import RunError, UsageError


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``bench`` (with its ``gradient-cost`` benchmark) on the subparsers."""
    p = sub.add_parser("bench", allow_abbrev=False, help="measure what backprop saves",
                       description="Benchmarks that explain backprop.")
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    g = which.add_parser(
        "gradient-cost", allow_abbrev=False,
        help="time a full gradient by finite differences and by backprop",
        description="For h-h-1 tanh MLPs of 9 to 99,856 parameters (batch 32, float64), time "
                    "the full gradient by forward finite differences (one extra forward pass "
                    "per parameter) and by backprop (one forward, one backward), check that "
                    "they agree, print and plot the times.")
    g.add_argument("--out", default="runs/gradient-cost", metavar="DIR",
                   help="where gradient-cost.png and .csv go (default: runs/gradient-cost)")
    g.add_argument("--fd-budget", type=float, default=4.0, metavar="SECONDS",
                   help="run finite differences in full only up to this predicted time per "
                        "network; extrapolate beyond (default: 4)")
    g.add_argument("--seed", type=int, default=0, help="weights and data (default: 0)")
    return p


def cmd_bench(args: argparse.Namespace, out=None) -> int:
    """``backprop bench gradient-cost``."""
    out = out or sys.stdout
    from backprop.diagnostics import cost

    if not args.fd_budget > 0:
        raise UsageError("--fd-budget must be positive")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print("the full gradient of an h-h-1 tanh MLP's MSE on a batch of 32, float64: forward "
          f"finite differences (eps {cost.EPS:g}) against backprop; agreement: max |diff| <= "
          f"{cost.RTOL:g} x max(1, max |gradient|)", file=out, flush=True)
    rows = cost.measure(fd_budget=args.fd_budget, seed=args.seed,
                        log=lambda line: print(line, file=out, flush=True))
    extra = [r for r in rows if r.extrapolated]
    if extra:
        print(f"finite differences from {extra[0].params:,} parameters on were not run in "
              f"full: {extra[0].checked} random coordinates were computed and checked, and "
              "the time is extrapolated as (P + 1) x their median time per pass", file=out)
    lines = ["params,forward_s,backprop_s,backward_s,finite_difference_s,extrapolated,"
             "max_abs_diff,checked,agree"]
    lines += [f"{r.params},{r.forward:.6g},{r.backprop:.6g},{r.backward:.6g},"
              f"{r.finite_difference:.6g},{int(r.extrapolated)},{r.max_abs_diff:.3g},"
              f"{r.checked},{int(r.agree)}" for r in rows]
    (out_dir / "gradient-cost.csv").write_text("\n".join(lines) + "\n")
    try:
        cost.plot(rows, out_dir / "gradient-cost.png")
        print(f"wrote {out_dir / 'gradient-cost.png'} and {out_dir / 'gradient-cost.csv'}",
              file=out)
    except ImportError:
        print("note: gradient-cost.png not drawn: matplotlib is not installed (pip install "
              "'backprop[plot]')", file=out)
    if not all(r.agree for r in rows):
        bad = ", ".join(f"{r.params:,}" for r in rows if not r.agree)
        raise RunError(f"the gradients disagree for the networks of {bad} parameters")
    last = rows[-1]
    print(f"largest network ({last.params:,} parameters): finite differences "
          f"{last.finite_difference / last.backprop:,.0f} x slower than backprop", file=out)
    print(f"backward/forward ratio: {last.backward / last.forward:.2f}", file=out)
    return 0
