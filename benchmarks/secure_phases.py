"""Which phase dominates the secure system's delay and energy (docs/secure.md section 5 check).

For each preset, over several seeds: the four delays and energies summed over served owners, at
the equal split with the midpoint phi and at the ``secure-ao`` plan, and the largest/smallest
ratio between phases. Usage::

    python benchmarks/secure_phases.py [--seeds 5] [--presets default,balanced]
"""

from __future__ import annotations

import argparse

import numpy as np

from mecllm.systems.secure.algorithms import solve_secure
from mecllm.systems.secure.physics import evaluate_secure
from mecllm.systems.secure.scenario import generate_secure, secure_preset
from mecllm.systems.secure.subproblems import equal_resources

from machine import calibration_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--presets", default="default,balanced")
    args = parser.parse_args()
    print("| preset | plan | T1 | T2 | T3 | T4 | E1 | E2 | E3 | E4 | max/min T | max/min E |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        sums = {"equal split": np.zeros((2, 4)), "secure-ao": np.zeros((2, 4))}
        for seed in range(args.seeds):
            inst = generate_secure(secure_preset(name), np.random.default_rng(seed))
            plans = {
                "equal split": equal_resources(inst, np.full(inst.n_users, inst.phi_mid)),
                "secure-ao": solve_secure(inst, "secure-ao").plan,
            }
            for label, plan in plans.items():
                report = evaluate_secure(inst, plan)
                sums[label][0] += report.times.sum(axis=1) / args.seeds
                sums[label][1] += report.energies.sum(axis=1) / args.seeds
        for label, (t, e) in sums.items():
            cells = " | ".join(f"{v:.3g}" for v in (*t, *e))
            print(
                f"| {name} | {label} | {cells} | {t.max() / t.min():.3g} | "
                f"{e.max() / e.min():.3g} |"
            )
    print(
        f"\nDelays in s and energies in J, summed over served owners, mean over {args.seeds} seeds."
    )


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
