"""How the DASHF variants scale: wall time and SCR from 10x2 upwards, with a time limit.

Each solve runs in its own process and is stopped at ``--time-limit`` seconds (reported as
``timeout``; a worker that dies, for example out of memory, is reported as ``crashed``). For
every size where the paper's route (``dashf-fullsdr``: the relaxation as one dense PSD matrix)
finishes, each variant's time and SCR are divided by the paper route's from the same run.

A second table compares the scalable steps with the exact/generic ones on the same input (the
greedy start of seed 0, at its own SCR): the T-scan association against the MILP (part-1
objective and the SCR after the step), and the barrier allocation and the directly written cone
program against the generic cvxpy one (SCR after part 2), wherever both finish within the limit.

Peak memory is the solving process's peak resident set (it includes what it shares with the
benchmark process it was forked from, about 200 MB). ``--startup`` instead times the commands a
user types as whole processes (``mecllm --help``; ``mecllm solve`` on 20x3, beside the time the
solver reports), the median of 5 runs.

Writes Markdown tables to stdout and a log-log plot of time vs N. Usage::

    python benchmarks/scale.py [--sizes 10x2 20x3 50x5 100x10 1000x20 10000x100] [--seeds 1]
                               [--time-limit 600] [--plot scale.png] [--step-sizes 10x2 ...]
    python benchmarks/scale.py --startup [--variants dashf,dashf-scale]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.steps import greedy_start, part1_step, part2_step

from machine import calibration_line

VARIANTS = ("rucaa", "gucaa", "dashf-fullsdr", "dashf", "dashf-milp", "dashf-scale")
PAPER_ROUTE = "dashf-fullsdr"


def _rss_mb() -> float:
    """This process's resident memory now, MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _worker(n: int, m: int, seed: int, name: str, limit: float, out: Any) -> None:
    baseline = _rss_mb()  # what the child shares with the benchmark process it forked from
    instance = generate(preset("paper", n_users=n, n_servers=m), np.random.default_rng(seed))
    result = solve(instance, name, SolveOptions(seed=seed, time_limit_s=limit))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
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
            "peak_mb": peak,
            "baseline_mb": baseline,
        }
    )


def _step_worker(n: int, m: int, step: str, out: Any) -> None:
    """One exact/generic or scalable step from the greedy start of seed 0."""
    instance = generate(preset("paper", n_users=n, n_servers=m), np.random.default_rng(0))
    start = greedy_start(instance)
    y = evaluate(instance, start).scr
    started = time.perf_counter()
    if step in ("milp", "threshold"):
        plan, record = part1_step(step, "keep", time_limit_s=3600.0)(instance, start, y)
        objective = record["association_value"]
    else:
        plan, _ = part2_step(engine=step)(instance, start, y)
        objective = float("nan")
    out.put(
        {
            "seconds": time.perf_counter() - started,
            "objective": objective,
            "scr": evaluate(instance, plan).scr,
        }
    )


def _run_child(target: Any, args: tuple[Any, ...], limit: float) -> dict[str, Any]:
    """Run ``target(*args, queue)`` in a child; its result, or {"timeout"} / {"crashed"}."""
    results: Any = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=target, args=(*args, results))
    started = time.perf_counter()
    child.start()
    try:
        while True:
            try:
                return dict(results.get(timeout=1.0))
            except queue.Empty:
                if not child.is_alive():
                    return {"crashed": child.exitcode}
                if time.perf_counter() - started > limit:
                    return {"timeout": limit}
    finally:
        child.kill()
        child.join()


def timed_solve(n: int, m: int, seed: int, name: str, limit: float) -> dict[str, Any]:
    """Solve in a child process, stopped after ``limit`` seconds."""
    return _run_child(_worker, (n, m, seed, name, limit), limit)


def step_gaps(sizes: list[tuple[int, int]], limit: float) -> None:
    """Print the scalable steps against the exact/generic ones where both finish."""
    print(
        "\n| size | step | exact/generic (s) | scalable (s) | part-1 objective gap | "
        "SCR after step: exact/generic | scalable | SCR gap |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, m in sizes:
        done: dict[str, dict[str, Any]] = {}
        for label, exact, fast in (
            ("association", "milp", "threshold"),
            ("allocation (barrier)", "conic", "barrier"),
            ("allocation (direct cone program)", "conic", "direct"),
        ):
            if exact not in done:
                done[exact] = _run_child(_step_worker, (n, m, exact), limit)
            a = done[exact]
            b = _run_child(_step_worker, (n, m, fast), limit)
            if "scr" not in a or "scr" not in b:
                what = "timeout" if "timeout" in a else "crashed" if "crashed" in a else ""
                shown = f"{b['seconds']:.3g}" if "scr" in b else "timeout"
                print(f"| {n}x{m} | {label} | {what or 'failed'} | {shown} | | | | |")
                continue
            objective_gap = ""
            if np.isfinite(a["objective"]):
                objective_gap = f"{(b['objective'] - a['objective']) / abs(a['objective']):.2e}"
            print(
                f"| {n}x{m} | {label} | {a['seconds']:.3g} | {b['seconds']:.3g} | "
                f"{objective_gap} | {a['scr']:.6g} | {b['scr']:.6g} | "
                f"{(a['scr'] - b['scr']) / a['scr']:+.2%} |",
                flush=True,
            )


def _warm_up() -> None:
    """Throwaway solves in this process before any timing. The timed solves run in children
    forked from it, so one-off set-up (numba loading the compiled kernels, about 0.4 s per
    process from its on-disk cache, which small solves skip; solvers' first calls) is charged
    to no variant."""
    instance = generate(preset("paper", n_users=10, n_servers=2), np.random.default_rng(0))
    for name in ("dashf", "dashf-scale"):
        solve(instance, name, SolveOptions(seed=0))
    # Large enough for the compiled kernels (the barrier's above 32 users, the scan's loads
    # above 1000 pairs), which small solves no longer load.
    larger = generate(preset("paper", n_users=120, n_servers=10), np.random.default_rng(0))
    solve(larger, "dashf-scale", SolveOptions(seed=0, max_iterations=1))


def startup(names: list[str], repeats: int = 5) -> None:
    """Whole-process times of the commands a user types, beside the solver's own time: the
    median of ``repeats`` runs of ``mecllm --help`` and of ``mecllm solve`` on 20x3."""
    folder = Path(tempfile.mkdtemp(prefix="mecllm-startup-"))
    instance = folder / "i.json"
    generate(preset("paper", n_users=20, n_servers=3), np.random.default_rng(0)).save(instance)
    command = [sys.executable, "-m", "mecllm.cli"]

    def whole(args: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run([*command, *args], check=True, capture_output=True)
        return time.perf_counter() - started

    print(
        "\n| command (20x3) | whole process, median of 5 (s) | its solver, cold (s) | "
        "the solve in a warm process (s) | fixed: whole - warm (s) |"
    )
    print("|---|---:|---:|---:|---:|")
    help_s = float(np.median([whole(["--help"]) for _ in range(repeats)]))
    print(f"| mecllm --help | {help_s:.3f} | | | {help_s:.3f} |")
    loaded = Instance.load(instance)
    for name in names:
        times, inside = [], []
        for _ in range(repeats):
            times.append(whole(["solve", str(instance), "-a", name, "-o", str(folder / "s.json")]))
            inside.append(json.loads((folder / "s.json").read_text())["wall_time_s"])
        solve(loaded, name, SolveOptions(seed=0))  # imports, kernels and first calls done
        warm = float(
            np.median(
                [solve(loaded, name, SolveOptions(seed=0)).wall_time_s for _ in range(repeats)]
            )
        )
        t, i = float(np.median(times)), float(np.median(inside))
        print(
            f"| mecllm solve -a {name} | {t:.3f} | {i:.3f} | {warm:.3f} | {t - warm:.3f} |",
            flush=True,
        )


def _size(text: str) -> tuple[int, int]:
    n, m = (int(v) for v in text.lower().split("x"))
    return n, m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["10x2", "20x3", "50x5", "100x10", "1000x20", "10000x100"]
    )
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument(
        "--step-sizes",
        nargs="*",
        default=None,
        help="sizes for the step-gap table (default: those of --sizes up to 1000 users)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--plot", type=Path, default=Path("scale.png"))
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only time whole commands (mecllm --help, mecllm solve on 20x3) as a user runs them",
    )
    args = parser.parse_args()
    if args.startup:
        startup([v for v in args.variants.split(",") if v])
        return
    variants = [v for v in args.variants.split(",") if v]
    _warm_up()
    rows = []
    print(
        "| size | seed | algorithm | wall time (s) | SCR | delay (s) | energy (J) | "
        "iterations | MIP gap | feasible | time / paper route | SCR / paper route | "
        "peak memory (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, m = (int(v) for v in size.lower().split("x"))
        for seed in range(args.seeds):
            found = {}
            for name in variants:
                found[name] = timed_solve(n, m, seed, name, args.time_limit)
            paper = found.get(PAPER_ROUTE, {})
            for name in variants:
                r = found[name]
                if "scr" not in r:
                    what = (
                        f"timeout (> {args.time_limit:g})"
                        if "timeout" in r
                        else f"crashed (exit {r['crashed']})"
                    )
                    print(f"| {size} | {seed} | {name} | {what} | | | | | | | | | |")
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
                    f"{'yes' if r['feasible'] else 'NO'} | "
                    f"{ratio_t} | {ratio_s} | {r['peak_mb']:.0f} |",
                    flush=True,
                )
                rows.append({"n": n, "algorithm": name, "time": r["wall_time_s"]})
    step_sizes = (
        [_size(v) for v in args.step_sizes]
        if args.step_sizes is not None
        else [_size(v) for v in args.sizes if _size(v)[0] <= 1000]
    )
    if step_sizes:
        step_gaps(step_sizes, args.time_limit)
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
    print(calibration_line(), flush=True)
    main()
