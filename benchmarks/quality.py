"""Solution quality against yardsticks that share none of the methods' starts.

Random small instances (N in 3..8, M in 1..4, the paper and paper-literal presets alternating),
each solved with ``service.count_idle`` true (the paper's score) and false. For every instance:

- every registered optimiser's SCR and wall time;
- the exhaustive reference (``exhaustive``: every association screened, the best solved from
  fixed starts; it takes no other method's plan), where M^N <= ``--exhaustive-limit``;
- a certified upper bound (SCIP, ``mecllm.systems.finetune.bound``) where M^N <=
  ``--bound-limit``: no plan of the instance reaches it.

"Best" is the largest SCR any method or the reference found; each method's ratio to it is
printed per instance, then the median and worst per ``count_idle`` setting, and the gap of the
best plan to the certified bound per instance. Instances come from ``--base-seed``: use one the
methods were not tuned on. Usage::

    python benchmarks/quality.py [--instances 12] [--base-seed 31] [--workers 2] [--json FILE]
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
from mecllm.systems.finetune.bound import certify
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.scenario import generate, preset
from ratio_tables import print_summary, ratio_cells

from machine import calibration_line

METHODS = ("dashf", "dashf-milp", "dashf-scale", "dashf-plus")


def case(base_seed: int, index: int) -> dict[str, Any]:
    """Size, preset and seed of instance ``index`` (fixed by the base seed and the index)."""
    rng = np.random.default_rng([base_seed, index])
    return {
        "index": index,
        "n_users": int(rng.integers(3, 9)),
        "n_servers": int(rng.integers(1, 5)),
        "preset": "paper" if index % 2 == 0 else "paper-literal",
        "seed": int(rng.integers(0, 2**31)),
    }


def run_case(spec: tuple[dict[str, Any], bool, int, int, float]) -> dict[str, Any]:
    """Every method, the reference and the bound on one instance."""
    c, count_idle, exhaustive_limit, bound_limit, bound_seconds = spec
    settings = preset(
        c["preset"], n_users=c["n_users"], n_servers=c["n_servers"], count_idle=count_idle
    )
    instance = generate(settings, np.random.default_rng(c["seed"]))
    scr: dict[str, float] = {}
    seconds: dict[str, float] = {}
    names = list(METHODS)
    if instance.n_servers**instance.n_users <= exhaustive_limit:
        names.append("exhaustive")
    for name in names:
        started = time.perf_counter()
        result = solve(instance, name, SolveOptions(seed=0))
        seconds[name] = time.perf_counter() - started
        assert evaluate(instance, result.plan).feasible, name
        scr[name] = result.scr
    row: dict[str, Any] = {**c, "count_idle": count_idle, "scr": scr, "seconds": seconds}
    if instance.n_servers**instance.n_users <= bound_limit:
        best = max(scr.values())
        certificate = certify(instance, best, time_limit_s=bound_seconds)
        row["bound"] = certificate.bound
        row["bound_seconds"] = certificate.seconds
    return row


def report(rows: list[dict[str, Any]]) -> None:
    """Markdown tables: per instance, then per method and count_idle setting."""
    columns = [*METHODS, "exhaustive"]
    for flag in (True, False):
        part = [r for r in rows if r["count_idle"] == flag]
        if not part:
            continue
        print(f"\n## count_idle = {str(flag).lower()} ({len(part)} instances)\n")
        print(
            "| instance | size | preset | "
            + " | ".join(columns)
            + " | best SCR | certified bound | best / bound | dashf-plus time (s) |"
        )
        print("|---|---|---|" + "---|" * (len(columns) + 4))
        ratios: dict[str, list[float]] = {a: [] for a in columns}
        for r in part:
            best = max(r["scr"].values())
            cells = ratio_cells(r, columns, ratios)
            bound = r.get("bound")
            bound_cell = f"{bound:.5g}" if bound else ("none proven" if "bound" in r else "")
            gap = f"{best / bound:.3f}" if bound else ""
            print(
                f"| {r['index']} | {r['n_users']}x{r['n_servers']} | {r['preset']} | "
                + " | ".join(cells)
                + f" | {best:.5g} | {bound_cell} | {gap} | {r['seconds']['dashf-plus']:.1f} |"
            )
        print_summary(part, columns, ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=12)
    parser.add_argument("--base-seed", type=int, default=31)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--exhaustive-limit", type=int, default=729)
    parser.add_argument("--bound-limit", type=int, default=8)
    parser.add_argument("--bound-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="also write the rows")
    parser.add_argument("--from-json", type=Path, help="only report rows saved by --json")
    args = parser.parse_args()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
    else:
        cases = [case(args.base_seed, i) for i in range(args.instances)]
        specs = [
            (c, flag, args.exhaustive_limit, args.bound_limit, args.bound_seconds)
            for flag in (True, False)
            for c in cases
        ]
        rows = []
        with ProcessPoolExecutor(args.workers) as pool:
            for row in pool.map(run_case, specs):
                rows.append(row)
                best = max(row["scr"].values())
                print(
                    f"[{len(rows)}/{len(specs)}] instance {row['index']} "
                    f"{row['n_users']}x{row['n_servers']} {row['preset']} count_idle="
                    f"{row['count_idle']}: dashf-plus {row['scr']['dashf-plus'] / best:.4f} of "
                    f"best {best:.5g} in {row['seconds']['dashf-plus']:.1f} s"
                    + (f", bound {row['bound']:.5g}" if row.get("bound") else ""),
                    file=sys.stderr,
                    flush=True,
                )
        if args.json:
            atomic_write_text(args.json, json.dumps(rows, indent=1))
    report(rows)


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
