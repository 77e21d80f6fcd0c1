"""The ring all-reduce cost model of docs/scaling.md: predicted step time and efficiency of
data-parallel training at N ranks (by hand; prints a Markdown table).

    python benchmarks/scaling_model.py --mlp-ms 3.9 --cnn-ms 50.0

A ring all-reduce of S bytes over N ranks sends 2(N-1) messages of S/N bytes from every rank
(reduce-scatter, then all-gather), so it takes

    T_ar(N) = 2(N-1)·α + 2·(N-1)/N · S / β

with α the latency of one message and β the bandwidth of a link. With a per-rank batch B fixed
(weak scaling) a step takes T_step(N) = T_compute(B) + (1 - h)·T_ar(N), where h is the
fraction of the all-reduce hidden behind backward, and the efficiency is T_compute / T_step.
T_compute and S are the measured figures of one rank (benchmarks/bench_distributed.py).
"""

from __future__ import annotations

import argparse

NETWORKS = [("10 Gb/s Ethernet", 1.25e9, 20e-6), ("100 Gb/s InfiniBand", 12.5e9, 2e-6)]


def allreduce_seconds(n: int, nbytes: float, bandwidth: float, latency: float) -> float:
    if n == 1:
        return 0.0
    return 2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlp-ms", type=float, required=True,
                        help="one rank's step time of the MLP at the per-rank batch, ms")
    parser.add_argument("--cnn-ms", type=float, required=True,
                        help="one rank's step time of the CNN at the per-rank batch, ms")
    parser.add_argument("--hidden", type=float, default=0.0,
                        help="fraction h of the all-reduce hidden behind backward")
    args = parser.parse_args()
    models = [("MLP", args.mlp_ms * 1e-3, 535_818 * 4), ("CNN", args.cnn_ms * 1e-3, 207_018 * 4)]
    print("| model | network | ranks | all-reduce (ms) | step (ms) | efficiency |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, compute, nbytes in models:
        for net, bandwidth, latency in NETWORKS:
            for n in (8, 64, 512):
                t_ar = allreduce_seconds(n, nbytes, bandwidth, latency)
                step = compute + (1 - args.hidden) * t_ar
                print(f"| {name} | {net} | {n} | {1e3 * t_ar:.2f} | {1e3 * step:.2f} | "
                      f"{compute / step:.0%} |")


if __name__ == "__main__":
    main()
