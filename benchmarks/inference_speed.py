"""How fast the edge-inference simulator and planner run (issue: 10^5 requests in seconds; a
1,000-node, 100,000-user scenario planned in under a minute).

Simulator: the ``default`` preset at its own offered load (and, with ``--rates``, at others),
with the horizon stretched so that the stream holds about ``--requests`` requests; each row is
the simulation of the planner's plan (``infer-planner``) over one drawn stream, timed from the
start of the simulation to its report (drawing the stream and planning are timed apart).

Planner: ``--nodes`` nodes in the default preset's class proportions and ``--users`` users,
generated from seed 0, then planned by ``infer-planner``.

Usage::

    python benchmarks/inference_speed.py [--requests 100000] [--rates 12 16]
                                         [--nodes 1000] [--users 100000] [--skip-plan]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mecllm.core.options import SolveOptions
from mecllm.systems.inference.algorithms import solve
from mecllm.systems.inference.requests import draw
from mecllm.systems.inference.scenario import generate, preset
from mecllm.systems.inference.simulator import simulate

from machine import calibration_line


def _simulator_rows(requests: int, rates: list[float], seed: int) -> None:
    print(
        "| offered load (req/s) | requests | draw (s) | plan (s) | simulate (s) | "
        "requests/s simulated | on-time ratio | rejected | lost |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate in rates:
        settings = preset("default").replace(total_rate_per_s=rate, horizon_s=requests / rate)
        instance = generate(settings, np.random.default_rng(seed))
        started = time.perf_counter()
        stream = draw(instance, np.random.default_rng(seed + 1))
        drawn = time.perf_counter()
        plan = solve(instance, "infer-planner", SolveOptions(seed=seed)).plan
        planned = time.perf_counter()
        report = simulate(instance, plan, stream)
        done = time.perf_counter()
        print(
            f"| {rate:g} | {len(stream)} | {drawn - started:.2f} | {planned - drawn:.2f} | "
            f"{done - planned:.2f} | {len(stream) / (done - planned):,.0f} | "
            f"{report.on_time_ratio:.3f} | {report.rejected} | {report.lost} |",
            flush=True,
        )


def _planner_row(nodes: int, users: int) -> None:
    base = preset("default")
    total = base.n_strong + base.n_medium + base.n_weak
    strong = max(1, round(nodes * base.n_strong / total))
    medium = round(nodes * base.n_medium / total)
    settings = base.replace(
        n_strong=strong,
        n_medium=medium,
        n_weak=nodes - strong - medium,
        n_users=users,
        area_m=base.area_m * (nodes / total) ** 0.5,
    )
    started = time.perf_counter()
    instance = generate(settings, np.random.default_rng(0))
    generated = time.perf_counter()
    result = solve(instance, "infer-planner", SolveOptions(seed=0))
    done = time.perf_counter()
    print()
    print("| nodes | users | generate (s) | plan (s) | chains | status |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {instance.n_nodes} | {instance.n_users} | {generated - started:.1f} | "
        f"{done - generated:.1f} | {len(result.plan.chains)} | {result.status} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[12.0, 16.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--skip-plan", action="store_true")
    args = parser.parse_args()
    _simulator_rows(args.requests, args.rates, args.seed)
    if not args.skip_plan:
        _planner_row(args.nodes, args.users)


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
