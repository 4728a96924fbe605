"""Solution quality: every algorithm's SCR over the best known SCR on small instances.

20 random instances (N in 3..8, M in 1..3, presets alternating paper / paper-literal), each
solved with ``service.count_idle`` true (the paper's score) and false (resources follow work).
The best known SCR of an instance is the largest found by any method, the exhaustive
enumeration (``exhaustive``, without extra starts) included. Prints per-instance ratios,
then per algorithm the median and worst ratio. Usage::

    python benchmarks/quality.py [--instances 20] [--workers 2] [--json rows.json]
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
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.search.exhaustive import exhaustive

ALGORITHMS = (
    "rucaa",
    "gucaa",
    "aauco",
    "gucro",
    "dashf",
    "dashf-milp",
    "dashf-plus",
    "enumeration",
)


def case(index: int) -> dict[str, Any]:
    """The size, preset and seed of instance ``index`` (fixed by the index alone)."""
    rng = np.random.default_rng([2026, index])
    return {
        "index": index,
        "n_users": int(rng.integers(3, 9)),
        "n_servers": int(rng.integers(1, 4)),
        "preset": "paper" if index % 2 == 0 else "paper-literal",
        "seed": 1000 + index,
    }


def run_case(spec: tuple[int, bool]) -> dict[str, Any]:
    index, count_idle = spec
    c = case(index)
    settings = preset(
        c["preset"], n_users=c["n_users"], n_servers=c["n_servers"], count_idle=count_idle
    )
    instance = generate(settings, np.random.default_rng(c["seed"]))
    scr, seconds = {}, {}
    for name in ALGORITHMS:
        started = time.perf_counter()
        if name == "enumeration":  # the exhaustive reference alone, without extra starts
            scr[name] = exhaustive(instance, SolveOptions()).scr
        else:
            scr[name] = solve(instance, name).scr
        seconds[name] = time.perf_counter() - started
    return {**c, "count_idle": count_idle, "scr": scr, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--from-json", type=Path, help="only report rows saved by --json")
    args = parser.parse_args()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
    else:
        specs = [(i, flag) for flag in (True, False) for i in range(args.instances)]
        rows = []
        with ProcessPoolExecutor(args.workers) as pool:
            for row in pool.map(run_case, specs):
                rows.append(row)
                print(
                    f"[{len(rows)}/{len(specs)}] instance {row['index']} "
                    f"{row['n_users']}x{row['n_servers']} {row['preset']} count_idle="
                    f"{row['count_idle']}: dashf {row['scr']['dashf']:.5g}, dashf-plus "
                    f"{row['scr']['dashf-plus']:.5g}, enumeration "
                    f"{row['scr']['enumeration']:.5g}",
                    file=sys.stderr,
                    flush=True,
                )
        if args.json:
            atomic_write_text(args.json, json.dumps(rows, indent=1))
    for flag in (True, False):
        part = [r for r in rows if r["count_idle"] == flag]
        print(f"\n## count_idle = {str(flag).lower()} ({len(part)} instances)\n")
        print("| instance | size | preset | " + " | ".join(ALGORITHMS) + " |")
        print("|---|---|---|" + "---|" * len(ALGORITHMS))
        ratios: dict[str, list[float]] = {a: [] for a in ALGORITHMS}
        for r in part:
            best = max(r["scr"].values())
            cells = []
            for a in ALGORITHMS:
                ratio = r["scr"][a] / best
                ratios[a].append(ratio)
                cells.append(f"{ratio:.3f}")
            print(
                f"| {r['index']} | {r['n_users']}x{r['n_servers']} | {r['preset']} | "
                + " | ".join(cells)
                + " |"
            )
        print("\n| algorithm | median ratio | worst ratio | mean time (s) |")
        print("|---|---|---|---|")
        for a in ALGORITHMS:
            mean_time = float(np.mean([r["seconds"][a] for r in part]))
            print(f"| {a} | {np.median(ratios[a]):.4f} | {min(ratios[a]):.4f} | {mean_time:.2f} |")


if __name__ == "__main__":
    main()
