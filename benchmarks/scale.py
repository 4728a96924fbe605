"""How the DASHF variants scale: wall time and SCR from 10x2 upwards, with a time limit.

Each solve runs in its own process and is stopped at ``--time-limit`` seconds (reported as
``timeout``). For every size where the paper's route (``dashf-fullsdr``: the relaxation as one
dense PSD matrix) finishes, each variant's time and SCR are divided by the paper route's from
the same run. Writes a Markdown table to stdout and a log-log plot of time vs N. Usage::

    python benchmarks/scale.py [--sizes 10x2 20x3 50x5 100x10 1000x20] [--seeds 1]
                               [--time-limit 120] [--plot scale.png]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import time
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.physics import evaluate
from mecllm.scenario import generate, preset
from mecllm.solvers.base import SolveOptions
from mecllm.solvers.registry import solve

VARIANTS = ("rucaa", "gucaa", "dashf-fullsdr", "dashf", "dashf-milp", "dashf-plus")
PAPER_ROUTE = "dashf-fullsdr"


def _worker(n: int, m: int, seed: int, name: str, limit: float, out: Any) -> None:
    instance = generate(preset("paper", n_users=n, n_servers=m), np.random.default_rng(seed))
    result = solve(instance, name, SolveOptions(seed=seed, time_limit_s=limit))
    gaps = [h["milp_gap"] for h in result.history if "milp_gap" in h]
    out.put(
        {
            "scr": result.scr,
            "delay_s": result.delay_s,
            "energy_j": result.energy_j,
            "iterations": result.iterations,
            "wall_time_s": result.wall_time_s,
            "feasible": evaluate(instance, result.plan).feasible,
            "mip_gap": max(gaps) if gaps else None,
        }
    )


def timed_solve(n: int, m: int, seed: int, name: str, limit: float) -> dict[str, Any] | None:
    """Solve in a child process; None when it does not finish within ``limit`` seconds."""
    results: Any = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=_worker, args=(n, m, seed, name, limit, results))
    child.start()
    try:
        return dict(results.get(timeout=limit))
    except queue.Empty:
        return None
    finally:
        child.kill()
        child.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10x2", "20x3", "50x5", "100x10", "1000x20"])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--plot", type=Path, default=Path("scale.png"))
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    rows = []
    print(
        "| size | seed | algorithm | wall time (s) | SCR | delay (s) | energy (J) | "
        "iterations | MIP gap | time / paper route | SCR / paper route |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, m = (int(v) for v in size.lower().split("x"))
        for seed in range(args.seeds):
            found = {}
            for name in variants:
                started = time.perf_counter()
                found[name] = timed_solve(n, m, seed, name, args.time_limit)
                if found[name] is None:
                    found[name] = {"timeout": time.perf_counter() - started}
            paper = found.get(PAPER_ROUTE, {})
            for name in variants:
                r = found[name]
                if "timeout" in r:
                    print(
                        f"| {size} | {seed} | {name} | timeout (> {args.time_limit:g}) "
                        "| | | | | | | |"
                    )
                    rows.append({"n": n, "algorithm": name, "time": None})
                    continue
                ratio_t = ratio_s = ""
                if "scr" in paper:
                    ratio_t = f"{r['wall_time_s'] / paper['wall_time_s']:.3g}"
                    ratio_s = f"{r['scr'] / paper['scr']:.4f}"
                gap = "" if r["mip_gap"] is None else f"{r['mip_gap']:.1e}"
                print(
                    f"| {size} | {seed} | {name} | {r['wall_time_s']:.3g} | {r['scr']:.5g} | "
                    f"{r['delay_s']:.4g} | {r['energy_j']:.5g} | {r['iterations']} | {gap} | "
                    f"{ratio_t} | {ratio_s} |",
                    flush=True,
                )
                rows.append({"n": n, "algorithm": name, "time": r["wall_time_s"]})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name in variants:
        points = [(r["n"], r["time"]) for r in rows if r["algorithm"] == name and r["time"]]
        if points:
            ax.loglog(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xlabel("users N")
    ax.set_ylabel("wall time per solve (s)")
    ax.set_title(f"Scaling (time limit {args.time_limit:g} s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.savefig(args.plot, dpi=120, bbox_inches="tight")
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
