"""The cost of solving by regions: the decomposed plan's SCR against the same field solved whole,
and the time and peak memory of a field too large to solve whole.

For each seed, the field of ``--size`` (default 10000x100) is solved whole by ``dashf-scale``
(its dense instance, in this process) and by regions for every ``--servers-per-region`` value
(the local process pool, ``--workers``); the table gives both SCRs, their ratio, the spread of
the regions' delays and the wall times. ``--big NxM`` then solves that field by regions only
(the Dask backend, a LocalCluster of ``--workers``) and reports wall time and the peak resident
memory of the process tree. Writes Markdown to stdout. Usage::

    python benchmarks/regions.py [--size 10000x100] [--seeds 1] [--servers-per-region 10,25,50]
                                 [--big 100000x1000 --big-servers-per-region 25] [--workers 2]
                                 [--relax] [--delay-start 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.field import Field
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.regions import DELAY_START_FACTOR
from mecllm.systems.finetune.run.regions import solve_by_regions
from mecllm.systems.finetune.scenario import preset

from machine import calibration_line


def _size(text: str) -> tuple[int, int]:
    n, m = text.lower().split("x")
    return int(n), int(m)


def compare(
    size: str,
    seeds: int,
    per_region: list[int],
    workers: int,
    relax: bool = False,
    delay_start: float = DELAY_START_FACTOR,
) -> None:
    """Whole against decomposed, on the fields of ``size`` with seeds 0..seeds-1."""
    n, m = _size(size)
    flags = (" --relax" if relax else "") + f" --delay-start {delay_start:g}"
    print(f"\n### {size}: whole (dashf-scale) against regions ({flags.strip()})\n")
    print(
        "| seed | servers/region | regions | whole SCR | regions SCR | regions / whole | "
        "region delays (s) | whole time (s) | regions time (s) | feasible |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for seed in range(seeds):
        fld = Field(preset("paper", n_users=n, n_servers=m), seed)
        started = time.perf_counter()
        whole = solve(fld.instance(), "dashf-scale", SolveOptions(seed=0))
        whole_s = time.perf_counter() - started
        for spr in per_region:
            with tempfile.TemporaryDirectory() as tmp:
                run = solve_by_regions(
                    fld,
                    Path(tmp),
                    servers_per_region=spr,
                    backend="local",
                    workers=workers,
                    relax=relax,
                    delay_start=delay_start,
                )
            check = evaluate(fld.instance(), run.stitched.plan)
            delays = sorted(r.delay_s for r in run.results)
            print(
                f"| {seed} | {spr} | {len(run.results)} | {whole.scr:.1f} | "
                f"{run.stitched.scr:.1f} | {run.stitched.scr / whole.scr:.3f} | "
                f"{delays[0]:.1f}-{delays[-1]:.1f} | {whole_s:.1f} | {run.wall_time_s:.1f} | "
                f"{'yes' if check.feasible and run.stitched.feasible else 'NO'} |",
                flush=True,
            )


def big(size: str, per_region: int, workers: int) -> None:
    """A field too large to solve whole, by regions on Dask."""
    n, m = _size(size)
    fld = Field(preset("paper", n_users=n, n_servers=m), 0)
    with tempfile.TemporaryDirectory() as tmp:
        run = solve_by_regions(
            fld, Path(tmp), servers_per_region=per_region, backend="dask", workers=workers
        )
    delays = sorted(r.delay_s for r in run.results)
    print(f"\n### {size} by regions (Dask LocalCluster, {workers} workers)\n")
    print(
        "| servers/region | regions | feasible | SCR | delay (s) | energy (J) | region delays (s) "
        "| wall time (s) | of which regions (s) | peak memory, process tree (GiB) |"
    )
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|")
    s = run.stitched
    print(
        f"| {per_region} | {len(run.results)} | {'yes' if s.feasible else 'NO'} | {s.scr:.1f} | "
        f"{s.delay_s:.1f} | {s.energy_j:.1f} | {delays[0]:.1f}-{delays[-1]:.1f} | "
        f"{run.wall_time_s:.1f} | {run.solve_s:.1f} | {run.peak_memory_bytes / 2**30:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="10000x100")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--servers-per-region", default="10,25,50")
    parser.add_argument("--big", default=None)
    parser.add_argument("--big-servers-per-region", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument(
        "--relax", action="store_true", help="re-split the faster regions (solve-regions --relax)"
    )
    parser.add_argument(
        "--delay-start",
        type=float,
        default=DELAY_START_FACTOR,
        help="regions start from a solve at this multiple of their delay weight (1: off)",
    )
    args = parser.parse_args()
    if not args.skip_compare:
        per_region = [int(x) for x in args.servers_per_region.split(",")]
        compare(args.size, args.seeds, per_region, args.workers, args.relax, args.delay_start)
    if args.big:
        big(args.big, args.big_servers_per_region, args.workers)


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
