"""What ``mecllm generate/solve/evaluate/compare`` print and write for an edge-inference
instance (reached through the systems registry)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import read_json
from mecllm.core.options import SolveOptions
from mecllm.systems.inference.algorithms import ALGORITHMS, get_algorithm
from mecllm.systems.inference.failures import parse_failures
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.requests import Stream, draw, read_trace
from mecllm.systems.inference.scenario import generate, preset
from mecllm.systems.inference.simulator import SimulationReport, simulate
from mecllm.systems.inference.solution import InferenceResult, Placement
from mecllm.systems.protocol import EvaluateRequest, OptionsFor


def generate_file(
    output: Path, preset_name: str, seed: int, overrides: dict[str, Any], err: Console
) -> None:
    """Draw a scenario and write it."""
    instance = generate(preset(preset_name, **overrides), np.random.default_rng(seed))
    instance.save(output)
    err.print(
        f"wrote {output} (edge-inference, {instance.n_nodes} nodes, {instance.n_users} users, "
        f"{instance.blocks} blocks, {instance.total_rate_per_s:g} requests/s, preset "
        f"{preset_name}, seed {seed})",
        highlight=False,
    )


def solve_file(
    data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
) -> None:
    """Plan the instance and write the plan."""
    spec = get_algorithm(algorithm)
    instance = InferenceInstance.from_dict(data)
    result = spec.run(instance, options)
    result.save(output)
    err.print(
        f"{spec.name}: {len(result.plan.servers)} shards, {len(result.plan.chains)} chains "
        f"({result.plan.routing} routing), {result.wall_time_s:.2f} s -> {output}",
        highlight=False,
    )
    if result.message:
        err.print(result.message, highlight=False, markup=False)


def load_plan(path: Path, instance: InferenceInstance) -> Placement:
    """The placement of a solution file for ``instance``."""
    data = read_json(path, "solution")
    if not isinstance(data, dict):
        raise InvalidInputError(f"solution file {path} must hold a JSON object")
    return Placement.from_dict(data, instance.n_nodes, instance.blocks)


def stream_of(instance: InferenceInstance, trace: Path | None, seed: int | None) -> Stream:
    """The trace's requests, or a stream drawn from the instance's demand with ``seed``."""
    if trace is not None:
        if seed is not None:
            raise InvalidInputError("--seed draws a stream; a --trace gives one: use one of them")
        return read_trace(trace, instance)
    return draw(instance, np.random.default_rng(0 if seed is None else seed))


def report_table(report: SimulationReport, title: str) -> Table:
    """The headline figures of one simulated run."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("requests", f"{report.requests}"),
        ("on-time ratio", f"{report.on_time_ratio:.4f}"),
        ("late", f"{report.late}"),
        ("rejected", f"{report.rejected}"),
        ("lost", f"{report.lost}"),
        (
            "latency p50 / p95 / p99 (s)",
            f"{report.latency_p50_s:.3g} / {report.latency_p95_s:.3g} / {report.latency_p99_s:.3g}",
        ),
        ("time to first token p50 / p95 (s)", f"{report.ttft_p50_s:.3g} / {report.ttft_p95_s:.3g}"),
        ("tokens/s", f"{report.tokens_per_s:.4g}"),
        ("energy (J)", f"{report.energy_j:.4g}"),
        ("failovers", f"{report.failovers}"),
    ):
        table.add_row(name, value)
    return table


def evaluate_file(
    data: object, solution_path: Path, request: EvaluateRequest, out: Console
) -> bool:
    """Simulate a plan; returns whether it is feasible (its weights fit)."""
    instance = InferenceInstance.from_dict(data)
    plan = load_plan(solution_path, instance)
    failures = parse_failures(request.extra.get("fail", ()), instance.n_nodes)
    seed = request.extra.get("seed")
    if seed is not None and seed < 0:
        raise InvalidInputError(f"--seed must be >= 0, got {seed}")
    stream = stream_of(instance, request.extra.get("trace"), seed)
    report = simulate(instance, plan, stream, failures)
    if request.as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
        return report.feasible
    out.print(report_table(report, f"Simulation of {solution_path}"))
    nodes = Table(title="Per node")
    for column in ("node", "utilisation", "memory peak (GB)", "memory (GB)"):
        nodes.add_column(column, justify="right")
    for v in range(instance.n_nodes):
        nodes.add_row(
            str(v),
            f"{report.node_utilisation[v]:.3f}",
            f"{report.node_memory_peak_bytes[v] / 1e9:.3g}",
            f"{instance.memory_bytes[v] / 1e9:.3g}",
        )
    out.print(nodes)
    for reason, count in sorted(report.rejected_by_reason.items()):
        out.print(f"rejected ({count}): {reason}", markup=False)
    for violation in report.violations:
        out.print(f"violation: {violation.message}", markup=False)
    return report.feasible


def compare(
    data: object,
    names: Sequence[str],
    options_for: OptionsFor,
    out: Console,
    err: Console,
    label: str,
) -> list[tuple[InferenceResult, SimulationReport]]:
    """Every planner on one instance, each plan simulated on the same stream."""
    instance = InferenceInstance.from_dict(data)
    specs = [get_algorithm(n) for n in (list(names) or list(ALGORITHMS))]
    stream = draw(instance, np.random.default_rng(0))
    rows = []
    for spec in specs:
        err.print(f"planning with {spec.name} ...", highlight=False)
        result = spec.run(instance, options_for(spec.name))
        rows.append((result, simulate(instance, result.plan, stream)))
    table = Table(
        title=f"{label}: {instance.n_nodes} nodes, {len(stream)} requests "
        f"({instance.total_rate_per_s:g}/s over {instance.horizon_s:g} s)"
    )
    for column in (
        "algorithm",
        "on-time",
        "late",
        "rejected",
        "p50 (s)",
        "p95 (s)",
        "tokens/s",
        "chains",
        "plan (s)",
    ):
        table.add_column(column, justify="left" if column == "algorithm" else "right")
    best = max(r.on_time_ratio for _, r in rows)
    for result, report in rows:
        table.add_row(
            result.algorithm,
            f"{report.on_time_ratio:.4f}",
            str(report.late),
            str(report.rejected),
            f"{report.latency_p50_s:.3g}",
            f"{report.latency_p95_s:.3g}",
            f"{report.tokens_per_s:.4g}",
            str(len(result.plan.chains)) if result.plan.chains else "dijkstra",
            f"{result.wall_time_s:.2f}",
            style="bold green" if report.on_time_ratio == best else None,
        )
    out.print(table)
    return rows
