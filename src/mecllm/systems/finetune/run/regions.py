"""The runner of the solve by regions: the system's rounds
(:func:`~mecllm.systems.finetune.regions.solve_regions`) with each round's regions in parallel
(Dask or a local process pool), every finished region saved at once so that a killed run keeps
it and a re-run skips it.

The output folder holds ``manifest.json`` (what is being solved), ``regions/region-R.npz``
(one per finished region), and, at the end, ``plan.npz`` (the stitched plan, field indices)
and ``summary.json`` (figures, per-region table, timings, peak memory).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError
from mecllm.core.executors import check_backend, run_dask, run_local
from mecllm.core.fileio import atomic_write_bytes, atomic_write_text
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import get_algorithm
from mecllm.systems.finetune.field import Field
from mecllm.systems.finetune.regions import (
    DELAY_START_FACTOR,
    PLAN_FIELDS,
    Progress,
    RegionResult,
    RegionTask,
    RoundRunner,
    Stitched,
    check_delay_start,
    solve_region,
    solve_regions,
)


class PeakMemory:
    """The peak resident memory of this process and all its descendants (Dask's nanny and
    worker processes included), sampled every ``interval_s`` in a thread; bytes."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil  # a dependency of dask.distributed

        me = psutil.Process(os.getpid())
        while True:
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            if self._stop.wait(self.interval_s):
                return


@dataclass
class RegionsRun:
    """What :func:`solve_by_regions` did."""

    stitched: Stitched
    results: list[RegionResult]
    balance: dict[str, float]
    wall_time_s: float
    plan_s: float
    solve_s: float
    peak_memory_bytes: int
    reused: int
    summary: dict[str, Any] = field(default_factory=dict)


def _manifest(
    fld: Field,
    servers_per_region: int,
    algorithm: str,
    seed: int,
    reprice: bool,
    relax: bool,
    delay_start: float,
) -> dict[str, Any]:
    body = {
        "field": fld.to_dict(),
        "servers_per_region": servers_per_region,
        "algorithm": algorithm,
        "seed": seed,
        "reprice": reprice,
        **({"relax": True} if relax else {}),
        "delay_start": delay_start,
    }
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {**body, "key": key}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an ``.npz`` file of ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _stem(region: int, round_: int) -> str:
    return f"region-{region}" if round_ == 0 else f"region-{region}-round{round_}"


def _save_region(folder: Path, result: RegionResult) -> None:
    arrays: dict[str, np.ndarray] = {
        "users": result.users,
        "servers": result.servers,
        "assignment": result.assignment,
        "figures": np.array(
            [result.service, result.energy_j, result.delay_s, result.scr, result.wall_time_s]
        ),
    }
    arrays.update({f"value_{name}": result.values[name] for name in PLAN_FIELDS})
    meta = {
        "status": result.status,
        "message": result.message,
        "round": result.round,
        "weight_delay": result.weight_delay,
    }
    stem = _stem(result.region, result.round)
    atomic_write_bytes(folder / f"{stem}.npz", _npz(arrays))
    atomic_write_text(folder / f"{stem}.json", json.dumps(meta))


def _load_region(folder: Path, task: RegionTask) -> RegionResult | None:
    """A saved region, if it is there, and for the same users, servers and delay weight."""
    stem = _stem(task.region, task.round)
    npz, meta = folder / f"{stem}.npz", folder / f"{stem}.json"
    if not (npz.exists() and meta.exists()):
        return None
    info = json.loads(meta.read_text())
    if info.get("weight_delay") != task.weight_delay:
        return None
    with np.load(npz) as data:
        if not (
            np.array_equal(data["users"], task.users)
            and np.array_equal(data["servers"], task.servers)
        ):
            return None
        service, energy, delay, scr, wall = (float(v) for v in data["figures"])
        return RegionResult(
            region=task.region,
            users=task.users,
            servers=task.servers,
            assignment=data["assignment"],
            values={name: data[f"value_{name}"] for name in PLAN_FIELDS},
            status=info["status"],
            service=service,
            energy_j=energy,
            delay_s=delay,
            scr=scr,
            wall_time_s=wall,
            message=info["message"],
            round=task.round,
            weight_delay=task.weight_delay,
        )


def _checkpointed_rounds(
    fld: Field,
    folder: Path,
    backend: str,
    workers: int,
    scheduler: str | None,
    say: Progress,
    started: float,
) -> RoundRunner:
    """A round runner that skips the regions saved in ``folder``, solves the others on the
    backend and saves each as it finishes."""
    work = partial(solve_region, fld, get_algorithm)

    def run_round(round_tasks: list[RegionTask], what: str) -> tuple[list[RegionResult], int]:
        done: list[RegionResult] = []
        pending: list[RegionTask] = []
        for task in round_tasks:
            saved = _load_region(folder, task)
            if saved is not None and saved.status != "failed":
                done.append(saved)
            else:
                pending.append(task)
        if done:
            say(f"{len(done)} {what} already solved in {folder}; {len(pending)} to go")
        runner: Iterator[RegionResult] = iter(())
        if pending and backend == "dask":
            runner = run_dask(work, pending, workers, scheduler)
        elif pending:
            runner = run_local(work, pending, workers)
        reused = len(done)
        for result in runner:
            _save_region(folder, result)
            done.append(result)
            say(
                f"{what[:-1]} {result.region}: {result.users.size} users, "
                f"{result.servers.size} servers, {result.status}, SCR {result.scr:.6g}, "
                f"delay {result.delay_s:.4g} s, {result.wall_time_s:.1f} s "
                f"({len(done)}/{len(round_tasks)} done, {time.perf_counter() - started:.0f} s)"
            )
        return done, reused

    return run_round


def solve_by_regions(
    fld: Field,
    out: Path,
    *,
    servers_per_region: int = 50,
    algorithm: str = "dashf-scale",
    options: SolveOptions | None = None,
    backend: str = "dask",
    workers: int = 2,
    scheduler: str | None = None,
    progress: Progress | None = None,
    reprice: bool = True,
    relax: bool = False,
    delay_start: float = DELAY_START_FACTOR,
) -> RegionsRun:
    """The system's solve by regions (:func:`~mecllm.systems.finetune.regions.solve_regions`)
    with the regions in parallel on ``backend``, every finished region saved in ``out`` (a
    folder) and skipped by a re-run; then the stitched plan and the summary written there.

    Raises
    ------
    InvalidInputError
        For a bad backend, worker count, scheduler address or region size, before any work.
    """
    options = options or SolveOptions()
    check_backend(backend, workers, scheduler)
    check_delay_start(delay_start)
    get_algorithm(algorithm)  # an unknown name is refused before any work
    say = progress or (lambda text: None)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "regions"
    folder.mkdir(exist_ok=True)
    manifest = _manifest(
        fld, servers_per_region, algorithm, options.seed, reprice, relax, delay_start
    )
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("key") != manifest["key"]:
            raise InvalidInputError(
                f"{out} holds regions of another run (field, region size, algorithm, seed, "
                "re-pricing, --relax or --delay-start differ); choose another folder or delete it"
            )
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    with PeakMemory() as memory:
        solved = solve_regions(
            fld,
            get_algorithm,
            servers_per_region=servers_per_region,
            algorithm=algorithm,
            options=options,
            reprice=reprice,
            relax=relax,
            delay_start=delay_start,
            run_round=_checkpointed_rounds(fld, folder, backend, workers, scheduler, say, started),
            progress=say,
        )
    wall = time.perf_counter() - started
    run = RegionsRun(
        solved.stitched,
        solved.results,
        solved.balance,
        wall,
        solved.plan_s,
        solved.solve_s,
        memory.peak_bytes,
        solved.reused,
    )
    run.summary = summary_of(fld, run, manifest)
    plan = {"assignment": solved.stitched.plan.assignment}
    plan.update({name: getattr(solved.stitched.plan, name) for name in PLAN_FIELDS})
    atomic_write_bytes(out / "plan.npz", _npz(plan))
    atomic_write_text(out / "summary.json", json.dumps(run.summary, indent=1) + "\n")
    return run


def summary_of(fld: Field, run: RegionsRun, manifest: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary of a run."""
    s = run.stitched
    return {
        "field": manifest["field"],
        "servers_per_region": manifest["servers_per_region"],
        "algorithm": manifest["algorithm"],
        "n_users": fld.n_users,
        "n_servers": fld.n_servers,
        "feasible": s.feasible,
        "scr": s.scr,
        "service": s.service,
        "delay_s": s.delay_s,
        "energy_j": s.energy_j,
        "cost": s.cost,
        "balance": run.balance,
        "wall_time_s": run.wall_time_s,
        "plan_s": run.plan_s,
        "solve_s": run.solve_s,
        "peak_memory_bytes": run.peak_memory_bytes,
        "regions_reused": run.reused,
        "regions": [
            {
                "region": r.region,
                "users": int(r.users.size),
                "servers": int(r.servers.size),
                "status": r.status,
                "round": r.round,
                "weight_delay": r.weight_delay,
                "scr": r.scr,
                "delay_s": r.delay_s,
                "energy_j": r.energy_j,
                "wall_time_s": r.wall_time_s,
                "message": r.message,
            }
            for r in sorted(run.results, key=lambda r: r.region)
        ],
    }
