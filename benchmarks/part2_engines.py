"""AO part 2 by each engine from the same start: wall time and the Dinkelbach objective reached.

For each size and seed: the paper scenario, the greedy start (greedy association, equal split,
phi = 0.5) at its own SCR, then :func:`surrogate.optimise_resources` with the
generic cvxpy engine ("conic"), the cone program written directly for Clarabel ("direct") and
the vectorised barrier method ("barrier"). Prints one Markdown row per (size, seed, engine).
Usage::

    python benchmarks/part2_engines.py [--sizes 10x2 20x3 50x5] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.engines import optimise_resources
from mecllm.systems.finetune.solvers.steps import greedy_start

from machine import calibration_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10x2", "20x3", "50x5"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    engines = ("conic", "direct", "barrier")
    # One untimed call per engine first: one-off set-up (cvxpy's first canonicalisation,
    # numba loading the barrier's compiled kernels) is charged to no row.
    warm = generate(preset("paper", n_users=10, n_servers=2), np.random.default_rng(0))
    for engine in engines:
        optimise_resources(warm, greedy_start(warm), 1.0, engine=engine)
    print("| size | seed | engine | time (ms) | objective reached | FP iterations | status |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, m = (int(v) for v in size.lower().split("x"))
        for seed in range(args.seeds):
            instance = generate(
                preset("paper", n_users=n, n_servers=m), np.random.default_rng(seed)
            )
            start = greedy_start(instance)
            y = evaluate(instance, start).scr
            for engine in engines:
                began = time.perf_counter()
                result = optimise_resources(instance, start, y, engine=engine)
                ms = (time.perf_counter() - began) * 1e3
                print(
                    f"| {size} | {seed} | {engine} | {ms:.0f} | {max(result.values):.8g} | "
                    f"{len(result.values) - 1} | {result.status} |",
                    flush=True,
                )


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
