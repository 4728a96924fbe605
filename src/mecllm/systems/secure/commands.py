"""What ``mecllm generate/solve/evaluate/compare`` do for a ``secure-offsite`` instance.

The command-line layer (:mod:`mecllm.cli`) reads the file, finds its system through the registry
and calls these; they print with the console they are given and raise the project's errors for
bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mecllm.core.fileio import read_json
from mecllm.core.options import SolveOptions
from mecllm.systems.protocol import OptionsFor
from mecllm.systems.secure.algorithms import SECURE_ALGORITHMS, get_secure_algorithm
from mecllm.systems.secure.instance import SecureInstance
from mecllm.systems.secure.physics import (
    SECURE_PHASES,
    SecureEvaluation,
    evaluate_secure,
    service_status,
)
from mecllm.systems.secure.scenario import generate_secure, secure_preset
from mecllm.systems.secure.solution import SecureResult, load_secure_plan


def generate_secure_file(
    output: Path, preset_name: str | None, seed: int, overrides: dict[str, Any], err: Console
) -> None:
    """Draw a secure scenario and write it."""
    name = preset_name or "default"
    instance = generate_secure(secure_preset(name, **overrides), np.random.default_rng(seed))
    instance.save(output)
    err.print(
        f"wrote {output} (secure-offsite, {instance.n_users} data owners, preset {name}, "
        f"seed {seed})",
        highlight=False,
    )
    for line in service_status(instance).lines():
        err.print(f"note: {line}", highlight=False, markup=False)


def solve_secure_file(
    data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
) -> None:
    """Solve a secure instance (raw JSON ``data``) and write the solution."""
    spec = get_secure_algorithm(algorithm)
    instance = SecureInstance.from_dict(data)
    result = spec.run(instance, options)
    result.save(output)
    err.print(
        f"{spec.name}: U/S {result.ratio:.6g}, utility {result.utility:.4g}, delay "
        f"{result.delay_s:.4g} s, energy {result.energy_j:.6g} J, status {result.status}, "
        f"{result.iterations} iterations, {result.wall_time_s:.2f} s -> {output}",
        highlight=False,
    )
    for line in service_status(instance).lines():
        err.print(f"note: {line}", highlight=False, markup=False)
    if result.floor_violations:
        err.print(
            f"warning: the plan breaks the secrecy floor for users {result.floor_violations}",
            highlight=False,
        )


def phase_table(report: SecureEvaluation) -> Table:
    """Per-owner phases, rates and status."""
    table = Table(title="Per-owner phases (T in s, E in J, rates in Mbit/s)")
    table.add_column("user", justify="right")
    table.add_column("status")
    for k in range(4):
        table.add_column(f"T{k + 1}", justify="right")
    for k in range(4):
        table.add_column(f"E{k + 1}", justify="right")
    table.add_column("R_sec", justify="right")
    table.add_column("R_eve", justify="right")
    table.add_column("utility", justify="right")
    for n in range(report.times.shape[1]):
        table.add_row(
            str(n),
            report.status.status[n],
            *(f"{v:.4g}" for v in report.times[:, n]),
            *(f"{v:.4g}" for v in report.energies[:, n]),
            f"{report.secrecy_rate_bps[n] / 1e6:.4g}",
            f"{report.eavesdropper_rate_bps[n] / 1e6:.4g}",
            f"{report.user_utility[n]:.4g}",
        )
    return table


def dominant(report: SecureEvaluation) -> tuple[str, str]:
    """The phases with the largest summed delay and energy."""
    t = np.where(np.isfinite(report.times), report.times, 0.0).sum(axis=1)
    e = np.where(np.isfinite(report.energies), report.energies, 0.0).sum(axis=1)
    ti, ei = int(np.argmax(t)), int(np.argmax(e))
    return (
        f"T{ti + 1} ({SECURE_PHASES[ti]}, {t[ti] / max(t.sum(), 1e-300):.0%} of summed delay)",
        f"E{ei + 1} ({SECURE_PHASES[ei]}, {e[ei] / max(e.sum(), 1e-300):.0%} of energy)",
    )


def evaluate_secure_file(data: object, solution_path: Path, as_json: bool, out: Console) -> bool:
    """Recompute a secure solution; returns whether it is feasible."""
    instance = SecureInstance.from_dict(data)
    stored = read_json(solution_path, "solution")
    plan = load_secure_plan(stored, instance)
    report = evaluate_secure(instance, plan)
    mismatches = []
    for key, mine in (
        ("us_ratio", report.ratio),
        ("delay_s", report.delay_s),
        ("energy_j", report.energy_j),
    ):
        value = stored.get(key) if isinstance(stored, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value - mine) > 1e-6 * max(abs(mine), 1e-12):
                mismatches.append(f"the file reports {key} = {value:.10g}, recomputed {mine:.10g}")
    if as_json:
        payload = report.to_dict()
        payload["reported_mismatch"] = mismatches
        sys.stdout.write(json.dumps(payload, indent=1) + "\n")
        return report.feasible
    summary = Table(title=f"Evaluation of {solution_path} (secure offsite-tuning)")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    t_dom, e_dom = dominant(report)
    for name, value in (
        ("U/S", f"{report.ratio:.6g}"),
        ("utility U", f"{report.utility:.6g}"),
        ("delay T (s)", f"{report.delay_s:.6g}"),
        ("energy E (J)", f"{report.energy_j:.6g}"),
        ("cost S", f"{report.cost:.6g}"),
        ("feasible", "yes" if report.feasible else "NO"),
        ("dominant delay", t_dom),
        ("dominant energy", e_dom),
    ):
        summary.add_row(name, value)
    out.print(summary)
    out.print(phase_table(report))
    for line in report.status.lines():
        out.print(f"note: {line}", markup=False)
    for v in report.violations:
        out.print(f"violation: {v.message}", markup=False)
    for line in mismatches:
        out.print(f"note: {line}", markup=False)
    return report.feasible


def results_table(results: Sequence[SecureResult], title: str) -> Table:
    """One row per algorithm."""
    table = Table(title=title)
    for name in (
        "algorithm",
        "U/S",
        "utility",
        "delay (s)",
        "energy (J)",
        "floor violations",
        "believed U/S",
        "iterations",
        "wall time (s)",
    ):
        table.add_column(name, justify="left" if name == "algorithm" else "right")
    best = max(r.ratio for r in results if r.feasible) if any(r.feasible for r in results) else None
    for r in results:
        table.add_row(
            r.algorithm,
            f"{r.ratio:.5g}",
            f"{r.utility:.4g}",
            f"{r.delay_s:.4g}",
            f"{r.energy_j:.5g}",
            str(r.floor_violations) if r.floor_violations else "none",
            f"{r.believed_ratio:.5g}" if r.believed_ratio is not None else "",
            str(r.iterations),
            f"{r.wall_time_s:.2f}",
            style="bold green" if r.ratio == best and r.feasible else None,
        )
    return table


def compare_secure(
    data: object,
    names: Sequence[str],
    options_for: OptionsFor,
    out: Console,
    err: Console,
    label: str,
) -> list[SecureResult]:
    """Run several secure algorithms on one instance and print the table."""
    instance = SecureInstance.from_dict(data)
    chosen = list(names) or list(SECURE_ALGORITHMS)
    specs = [get_secure_algorithm(n) for n in chosen]  # unknown names fail before any work
    results = []
    for spec in specs:
        err.print(f"solving with {spec.name} ...", highlight=False)
        results.append(spec.run(instance, options_for(spec.name)))
    out.print(results_table(results, f"{label}: {instance.n_users} data owners (secure)"))
    for line in service_status(instance).lines():
        out.print(f"note: {line}", markup=False)
    return results
