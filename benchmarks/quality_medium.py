"""Solution quality at medium sizes against a reference that shares no start with the methods.

Instances at 10x2, 20x3 and 40x4 (``--sizes``), the ``paper`` and ``paper-literal`` presets
alternating, seeds drawn from ``--base-seed`` (use one the methods were not tuned on; they were
tuned on seed 901), each with ``service.count_idle`` true and false. For every instance:

- each method's SCR and wall time (``--methods``; ``dashf-plus`` only up to 40 users, where its
  20 s budget still lets it finish its seeds);
- **the reference**: :func:`reference`, the sparse joint solve from ``--starts`` random
  associations (each user on a server drawn with probability rising with its channel gain) and
  random continuous starts, then single-user moves re-solved jointly up to 40 users (full solves,
  first improvement, for at most ``--reference-seconds``). It never
  sees a plan or an association of any method, so the methods' shared starts cannot hide what
  they all miss; it is not a bound.

Each method's ratio to the best SCR of any method or the reference is printed per instance,
then the median and worst per method. Every plan is checked by ``physics.evaluate``. Usage::

    python benchmarks/quality_medium.py [--base-seed 4242] [--workers 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.fileio import atomic_write_text
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.joint import structured_starts
from mecllm.systems.finetune.solvers.allocation.joint_sparse import solve_joint_sparse
from mecllm.systems.finetune.solvers.search.multistart import _moved
from ratio_tables import print_summary, ratio_cells

from machine import calibration_line

SIZES = ("10x2", "20x3", "40x4")
METHODS = ("dashf-scale", "dashf-plus", "dashf-joint")
#: The reference's move search stops after this many seconds (per instance).
REFERENCE_SECONDS = 150.0
#: dashf-plus is run up to this many users.
PLUS_USERS = 40
#: The reference's move search runs up to this many users.
REFERENCE_MOVE_USERS = 40


def reference(instance: Instance, starts: int, seed: int, seconds: float) -> float:
    """The best SCR of the independent reference (see the module docstring)."""
    rng = np.random.default_rng([seed, 77])
    n, m = instance.n_users, instance.n_servers
    gain = instance.channel_gain
    best_scr, best_plan = -np.inf, None
    for _ in range(starts):
        # An association drawn by channel: server j with probability ~ gain^(1/2).
        weights = np.sqrt(gain / gain.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        assignment = np.array([rng.choice(m, p=weights[i]) for i in range(n)])
        for start in structured_starts(instance, assignment, rng)[1:]:
            result = solve_joint_sparse(instance, start)
            if result.plan is not None and result.scr > best_scr:
                best_scr, best_plan = result.scr, result.plan
    if best_plan is None or m == 1 or n > REFERENCE_MOVE_USERS:
        return float(best_scr)
    stop = time.perf_counter() + seconds
    improved = True
    while improved and time.perf_counter() < stop:
        improved = False
        for user in range(n):
            for server in range(m):
                if server == best_plan.assignment[user] or time.perf_counter() > stop:
                    continue
                result = solve_joint_sparse(instance, _moved(instance, best_plan, user, server))
                if result.plan is not None and result.scr > best_scr * (1 + 1e-6):
                    best_scr, best_plan, improved = result.scr, result.plan, True
    return float(best_scr)


def run_case(spec: tuple[str, str, int, bool, tuple[str, ...], int, float]) -> dict[str, Any]:
    """Every method and the reference on one instance."""
    size, preset_name, seed, count_idle, methods, starts, seconds_cap = spec
    n, m = (int(v) for v in size.split("x"))
    instance = generate(
        preset(preset_name, n_users=n, n_servers=m, count_idle=count_idle),
        np.random.default_rng(seed),
    )
    scr: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name in methods:
        if name == "dashf-plus" and n > PLUS_USERS:
            continue
        began = time.perf_counter()
        result = solve(instance, name, SolveOptions(seed=0))
        seconds[name] = time.perf_counter() - began
        assert evaluate(instance, result.plan).feasible, name
        scr[name] = result.scr
    began = time.perf_counter()
    scr["reference"] = reference(instance, starts, seed, seconds_cap)
    seconds["reference"] = time.perf_counter() - began
    return {
        "size": size,
        "preset": preset_name,
        "seed": seed,
        "count_idle": count_idle,
        "scr": scr,
        "seconds": seconds,
    }


def report(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> None:
    """Markdown: per instance, then per method and count_idle setting."""
    columns = [*methods, "reference"]
    for flag in (True, False):
        part = [r for r in rows if r["count_idle"] == flag]
        if not part:
            continue
        print(f"\n## count_idle = {str(flag).lower()} ({len(part)} instances)\n")
        print("| size | preset | seed | " + " | ".join(columns) + " | best SCR | dashf-joint s |")
        print("|---|---|---|" + "---|" * (len(columns) + 2))
        ratios: dict[str, list[float]] = {a: [] for a in columns}
        for r in part:
            best = max(r["scr"].values())
            cells = ratio_cells(r, columns, ratios)
            joint_s = r["seconds"].get("dashf-joint")
            print(
                f"| {r['size']} | {r['preset']} | {r['seed']} | "
                + " | ".join(cells)
                + f" | {best:.5g} | {'' if joint_s is None else f'{joint_s:.1f}'} |"
            )
        print_summary(part, columns, ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--per-size", type=int, default=2, help="instances per size")
    parser.add_argument("--base-seed", type=int, default=4242)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--starts", type=int, default=4, help="the reference's associations")
    parser.add_argument(
        "--reference-seconds", type=float, default=REFERENCE_SECONDS, help="its move search"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows")
    parser.add_argument("--from-json", type=Path, help="only report rows saved by --json")
    args = parser.parse_args()
    methods = tuple(args.methods)
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
    else:
        rng = np.random.default_rng(args.base_seed)
        drawn = [
            (size, ("paper", "paper-literal")[k % 2], int(rng.integers(0, 2**31)))
            for size in args.sizes
            for k in range(args.per_size)
        ]
        specs = [
            (size, name, seed, flag, methods, args.starts, args.reference_seconds)
            for size, name, seed in drawn
            for flag in (True, False)
        ]
        rows = []
        with ProcessPoolExecutor(args.workers) as pool:
            for row in pool.map(run_case, specs):
                rows.append(row)
                best = max(row["scr"].values())
                shown = ", ".join(f"{k} {v / best:.3f}" for k, v in row["scr"].items())
                print(
                    f"[{len(rows)}/{len(specs)}] {row['size']} {row['preset']} seed {row['seed']} "
                    f"count_idle={row['count_idle']}: {shown}",
                    file=sys.stderr,
                    flush=True,
                )
        if args.json:
            atomic_write_text(args.json, json.dumps(rows, indent=1))
    report(rows, methods)


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
