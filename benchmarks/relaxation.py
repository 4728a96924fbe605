"""The part-1 semidefinite relaxation: dense form (as printed) vs chordal form vs the MILP.

For each size and seed, prices part 1 at the GUCAA plan and solves the relaxation both ways
and the exact MILP; prints times, values and the relative differences. Usage::

    python benchmarks/relaxation.py [--sizes 10x2 20x3] [--seeds 3] [--no-full]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.association.milp import solve_milp
from mecllm.systems.finetune.solvers.association.pricing import price_moves
from mecllm.systems.finetune.solvers.association.relaxation import solve_relaxation

from machine import calibration_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10x2", "20x3"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-full", action="store_true", help="skip the dense form")
    args = parser.parse_args()
    print(
        "| size | seed | dense SDR (s) | chordal SDR (s) | MILP (s) | dense value | "
        "chordal value | MILP value | speed-up dense/chordal |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, m = (int(v) for v in size.lower().split("x"))
        for seed in range(args.seeds):
            instance = generate(
                preset("paper", n_users=n, n_servers=m), np.random.default_rng(seed)
            )
            start = solve(instance, "gucaa")
            costs, _ = price_moves(instance, start.plan, start.scr)
            t = time.perf_counter()
            chordal = solve_relaxation(costs, form="chordal")
            t_chordal = time.perf_counter() - t
            t = time.perf_counter()
            exact = solve_milp(costs)
            t_milp = time.perf_counter() - t
            if args.no_full:
                t_full, full_value = float("nan"), float("nan")
            else:
                t = time.perf_counter()
                full = solve_relaxation(costs, form="full")
                t_full, full_value = time.perf_counter() - t, full.value
            print(
                f"| {size} | {seed} | {t_full:.2f} | {t_chordal:.3f} | {t_milp:.3f} | "
                f"{full_value:.8g} | {chordal.value:.8g} | {exact.value:.8g} | "
                f"{t_full / t_chordal:.0f}x |",
                flush=True,
            )


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
