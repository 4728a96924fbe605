"""DASHF and the baselines on the paper's default scenario, over many seeds.

Prints, per size and algorithm, the mean and 95% interval of SCR, delay and energy, the mean
iteration count and wall time per solve, and on how many seeds DASHF's SCR was >= every other
algorithm's. Usage::

    python benchmarks/dashf_paper.py [--sizes 10x2 20x3] [--seeds 20] [--preset paper]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mecllm.core.fileio import atomic_write_text
from mecllm.core.stats import mean_interval
from mecllm.systems.finetune.algorithms import ALGORITHMS, solve
from mecllm.systems.finetune.scenario import generate, preset

from machine import calibration_line

PAPER_ALGORITHMS = ("rucaa", "gucaa", "aauco", "gucro", "dashf")


def run(
    sizes: list[tuple[int, int]], seeds: int, preset_name: str, algorithms: list[str]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, m in sizes:
        for seed in range(seeds):
            instance = generate(
                preset(preset_name, n_users=n, n_servers=m), np.random.default_rng(seed)
            )
            for name in algorithms:
                result = solve(instance, name)
                rows.append(
                    {
                        "size": f"{n}x{m}",
                        "seed": seed,
                        "algorithm": name,
                        "scr": result.scr,
                        "delay_s": result.delay_s,
                        "energy_j": result.energy_j,
                        "iterations": result.iterations,
                        "wall_time_s": result.wall_time_s,
                    }
                )
            line = " ".join(f"{r['algorithm']}={r['scr']:.4g}" for r in rows[-len(algorithms) :])
            print(f"[{n}x{m} seed {seed}] {line}", file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict[str, object]], algorithms: list[str]) -> None:
    for size in dict.fromkeys(str(r["size"]) for r in rows):
        part = [r for r in rows if r["size"] == size]
        seeds = sorted({int(r["seed"]) for r in part})  # type: ignore[call-overload]
        print(f"\n## {size}, {len(seeds)} seeds (mean [95% bootstrap interval])\n")
        print("| algorithm | SCR | delay (s) | energy (J) | iterations | wall time per solve (s) |")
        print("|---|---|---|---|---|---|")
        for name in algorithms:
            mine = [r for r in part if r["algorithm"] == name]
            cells = []
            for key in ("scr", "delay_s", "energy_j", "iterations", "wall_time_s"):
                cell = mean_interval([float(r[key]) for r in mine])  # type: ignore[arg-type]
                cells.append(f"{cell.mean:.4g} [{cell.low:.4g}, {cell.high:.4g}]")
            print(f"| {name} | " + " | ".join(cells) + " |")
        if "dashf" in algorithms:
            baselines = [a for a in ("rucaa", "gucaa", "aauco", "gucro") if a in algorithms]
            wins = 0
            for seed in seeds:
                by = {
                    r["algorithm"]: float(r["scr"])  # type: ignore[arg-type]
                    for r in part
                    if r["seed"] == seed
                }
                wins += all(by["dashf"] >= by[a] * (1 - 1e-9) for a in baselines)
            print(
                f"\nDASHF SCR >= every paper baseline ({', '.join(baselines)}) on {wins} "
                f"of {len(seeds)} seeds."
            )
            times = [
                float(r["wall_time_s"])
                for r in part  # type: ignore[arg-type]
                if r["algorithm"] == "dashf"
            ]
            print(
                f"DASHF wall time per solve: max {max(times):.2f} s, "
                f"median {float(np.median(times)):.2f} s."
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10x2", "20x3"])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--algorithms", default=",".join(PAPER_ALGORITHMS))
    parser.add_argument("--json", type=Path, help="also write the per-solve rows here")
    parser.add_argument("--from-json", type=Path, help="only report rows saved by --json")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    algorithms = [a for a in args.algorithms.split(",") if a]
    for name in algorithms:
        if name not in ALGORITHMS:
            parser.error(f"unknown algorithm {name!r}")
    started = time.perf_counter()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        algorithms = [a for a in algorithms if any(r["algorithm"] == a for r in rows)]
    else:
        rows = run(sizes, args.seeds, args.preset, algorithms)  # type: ignore[arg-type]
    report(rows, algorithms)
    print(f"\n(total {time.perf_counter() - started:.0f} s, preset {args.preset})")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
