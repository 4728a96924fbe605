"""What ``mecllm generate/solve/evaluate/compare/demo`` print and write for a fine-tuning
instance. The command line (:mod:`mecllm.cli`) reaches these through the systems registry."""

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
from mecllm.systems.finetune.algorithms import ALGORITHMS, get_algorithm
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import PHASES, Evaluation, evaluate
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solution import Plan, SolveResult
from mecllm.systems.protocol import OptionsFor

#: What ``demo`` runs: the paper's five and the project's faster and better variants (the
#: exhaustive reference and the dense-SDR timing variant are left to ``compare``).
DEMO_ALGORITHMS = ("rucaa", "gucaa", "aauco", "gucro", "dashf", "dashf-milp", "dashf-plus")


def generate_file(
    output: Path,
    preset_name: str,
    seed: int,
    overrides: dict[str, Any],
    err: Console,
    *,
    work_model: Path | None = None,
    plan_model: str = "profiled",
) -> None:
    """Draw a scenario and write it; with ``work_model`` (a cost file of ``mecllm profile``),
    the profiled scenario of docs/finetune.md section 12, planned with ``plan_model``."""
    rng = np.random.default_rng(seed)
    instance = generate(preset(preset_name, **overrides), rng)
    note = ""
    if work_model is not None:
        from mecllm.systems.finetune.profiled_scenario import profiled_instance

        cost = read_json(work_model, "cost file")
        instance = profiled_instance(instance, cost, rng, plan_model)
        note = f", work model from {work_model}, planned with the {plan_model} model"
    instance.save(output)
    err.print(
        f"wrote {output} ({instance.n_users} users, {instance.n_servers} servers, "
        f"preset {preset_name}, seed {seed}{note})",
        highlight=False,
    )


def generate_field_file(
    output: Path, preset_name: str, seed: int, overrides: dict[str, Any], err: Console
) -> None:
    """Write a field: the settings and the seed, channels computed on demand (docs/regions.md)."""
    from mecllm.systems.finetune.field import Field

    fld = Field(preset(preset_name, **overrides), seed)
    fld.save(output)
    err.print(
        f"wrote {output} (a field of {fld.n_users} users, {fld.n_servers} servers, preset "
        f"{preset_name}, seed {seed}; solve it with `mecllm solve-regions`)",
        highlight=False,
    )


def solve_file(
    data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
) -> None:
    """Solve the instance ``data`` (raw JSON) and write the solution."""
    spec = get_algorithm(algorithm)
    instance = Instance.from_dict(data)
    result = spec.run(instance, options)
    result.save(output)
    err.print(
        f"{spec.name}: SCR {result.scr:.6g}, delay {result.delay_s:.4g} s, energy "
        f"{result.energy_j:.6g} J, status {result.status}, {result.iterations} "
        f"iterations, {result.wall_time_s:.2f} s -> {output}",
        highlight=False,
    )
    idle = idle_line(instance, result)
    if idle:
        err.print(idle, highlight=False, markup=False)


#: Users and servers an idle-allocation warning names before it summarises the rest.
IDLE_SHOWN = 5


def _some(values: list[Any]) -> str:
    """The first :data:`IDLE_SHOWN` of ``values``, and how many more there are."""
    shown = ", ".join(str(v) for v in values[:IDLE_SHOWN])
    more = len(values) - IDLE_SHOWN
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def idle_line(instance: Instance, result: SolveResult) -> str:
    """One sentence on server resources held by users the server has no work for: how many,
    a few of them, the largest shares and how to switch the scoring (never a list of every
    user)."""
    idle = evaluate(instance, result.plan).idle
    if idle is None:
        return ""
    users = [int(u) for u in idle.users]
    compute = np.asarray(idle.compute_share, dtype=float)
    power = np.asarray(idle.power_share, dtype=float)
    return (
        f"idle allocations: {len(users)} of {instance.n_users} users have phi = 1 yet hold "
        f"server resources (users {_some(users)}; at most {compute.max():.3g} of a server's "
        f"compute and {power.max():.3g} of its power); the paper's score rewards this: "
        "`mecllm generate --no-count-idle` (service.count_idle = false) forbids it"
    )


def load_solution(path: Path, instance: Instance) -> tuple[Plan, dict[str, Any]]:
    """The plan of a solution file for ``instance``, and the file's raw mapping."""
    data = read_json(path, "solution")
    if not isinstance(data, dict):
        raise InvalidInputError(f"solution file {path} must hold a JSON object")
    return Plan.from_dict(data, instance.n_users, instance.n_servers), data


def phase_table(report: Evaluation) -> Table:
    """Per-user phases."""
    table = Table(title="Per-user phases (T in s, E in J)")
    table.add_column("user", justify="right")
    for k in range(1, 5):
        table.add_column(f"T{k}", justify="right")
    for k in range(1, 5):
        table.add_column(f"E{k}", justify="right")
    table.add_column("delay", justify="right")
    table.add_column("service", justify="right")
    for n in range(report.t1.shape[0]):
        table.add_row(
            str(n),
            *(f"{v:.4g}" for v in report.times[:, n]),
            *(f"{v:.4g}" for v in report.energies[:, n]),
            f"{report.user_delay_s[n]:.4g}",
            f"{report.user_service[n]:.5g}",
        )
    return table


def dominant_phases(report: Evaluation) -> tuple[str, str]:
    """Which of T1..T4 and E1..E4 add up to the most over all users."""
    t = np.where(np.isfinite(report.times), report.times, 0.0).sum(axis=1)
    e = np.where(np.isfinite(report.energies), report.energies, 0.0).sum(axis=1)
    ti, ei = int(np.argmax(t)), int(np.argmax(e))
    return (
        f"T{ti + 1} ({PHASES[ti]}, {t[ti] / max(t.sum(), 1e-300):.0%} of summed delay)",
        f"E{ei + 1} ({PHASES[ei]}, {e[ei] / max(e.sum(), 1e-300):.0%} of energy)",
    )


def evaluate_file(data: object, solution_path: Path, as_json: bool, out: Console) -> bool:
    """Recompute a solution of the instance ``data``; returns whether it is feasible."""
    instance = Instance.from_dict(data)
    plan, stored = load_solution(solution_path, instance)
    report = evaluate(instance, plan)
    mismatches = _mismatches(report, stored)
    if as_json:
        payload = report.to_dict()
        payload["reported_mismatch"] = mismatches
        sys.stdout.write(json.dumps(payload, indent=1) + "\n")
        return report.feasible
    summary = Table(title=f"Evaluation of {solution_path}")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in (
        ("SCR", f"{report.scr:.6g}"),
        ("delay (s)", f"{report.delay_s:.6g}"),
        ("energy (J)", f"{report.energy_j:.6g}"),
        ("service", f"{report.service:.6g}"),
        ("feasible", "yes" if report.feasible else "NO"),
    ):
        summary.add_row(name, value)
    t_dom, e_dom = dominant_phases(report)
    summary.add_row("dominant delay", t_dom)
    summary.add_row("dominant energy", e_dom)
    out.print(summary)
    out.print(phase_table(report))
    for v in report.violations:
        out.print(f"violation: {v.message}", markup=False)
    if report.idle is not None:
        out.print(
            f"idle allocations (phi = 1 users holding server resources): users "
            f"{report.idle.users}; compute share per server "
            f"{np.round(report.idle.compute_share, 3).tolist()}, power share "
            f"{np.round(report.idle.power_share, 3).tolist()}",
            markup=False,
        )
    for line in mismatches:
        out.print(f"note: {line}", markup=False)
    return report.feasible


def _mismatches(report: Evaluation, stored: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("scr", "delay_s", "energy_j", "service"):
        value = stored.get(key)
        mine = getattr(report, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value - mine) > 1e-6 * max(abs(mine), 1e-12):
                lines.append(f"the file reports {key} = {value:.10g}, recomputed {mine:.10g}")
    return lines


def results_table(instance: Instance, results: Sequence[SolveResult], title: str) -> Table:
    """One row per algorithm; "idle users" counts users with phi = 1 holding server resources."""
    table = Table(title=title)
    for name, justify in (
        ("algorithm", "left"),
        ("SCR", "right"),
        ("delay (s)", "right"),
        ("energy (J)", "right"),
        ("service", "right"),
        ("iterations", "right"),
        ("status", "left"),
        ("idle users", "right"),
        ("wall time (s)", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    best = max(r.scr for r in results)
    for r in results:
        style = "bold green" if r.scr == best else None
        table.add_row(
            r.algorithm,
            f"{r.scr:.5g}",
            f"{r.delay_s:.4g}",
            f"{r.energy_j:.5g}",
            f"{r.service:.5g}",
            str(r.iterations),
            r.status,
            str(len(idle.users)) if (idle := evaluate(instance, r.plan).idle) else "0",
            f"{r.wall_time_s:.2f}",
            style=style,
        )
    return table


def run_all(
    instance: Instance, names: Sequence[str], options_for: OptionsFor, err: Console
) -> list[SolveResult]:
    """Solve with each named algorithm in turn (unknown names fail before any work)."""
    specs = [get_algorithm(name) for name in names]
    results = []
    for spec in specs:
        err.print(f"solving with {spec.name} ...", highlight=False)
        results.append(spec.run(instance, options_for(spec.name)))
    return results


def compare(
    data: object,
    names: Sequence[str],
    options_for: OptionsFor,
    plot: Path | None,
    out: Console,
    err: Console,
    label: str,
) -> None:
    """Several algorithms on one instance, side by side (and a PNG)."""
    instance = Instance.from_dict(data)
    results = run_all(instance, list(names) or list(ALGORITHMS), options_for, err)
    out.print(
        results_table(
            instance, results, f"{label}: {instance.n_users} users, {instance.n_servers} servers"
        )
    )
    if plot is not None:
        from mecllm.systems.finetune.plots import plot_comparison  # matplotlib: 0.2 s

        plot_comparison(instance, results, plot)
        err.print(f"wrote {plot}", highlight=False)


def demo(
    out_dir: Path,
    preset_name: str,
    seed: int,
    names: Sequence[str],
    options_for: OptionsFor,
    out: Console,
    err: Console,
) -> None:
    """The main job: the paper's default scenario, DASHF and the baselines, a table and a PNG."""
    chosen = list(names) or list(DEMO_ALGORITHMS)
    for name in chosen:
        get_algorithm(name)  # unknown names fail before anything is written
    instance = generate(preset(preset_name), np.random.default_rng(seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    instance.save(out_dir / "instance.json")
    results = run_all(instance, chosen, options_for, err)
    for r in results:
        r.save(out_dir / f"solution-{r.algorithm}.json")
    out.print(
        results_table(
            instance,
            results,
            f"Paper default scenario ({preset_name} preset, seed {seed}): "
            f"{instance.n_users} users, {instance.n_servers} servers",
        )
    )
    best = max(results, key=lambda r: r.scr)
    t_dom, e_dom = dominant_phases(evaluate(instance, best.plan))
    out.print(
        f"Best: {best.algorithm} (SCR {best.scr:.5g}); in its plan the largest delay "
        f"share is {t_dom} and the largest energy share {e_dom}.",
        highlight=False,
    )
    figure = out_dir / "demo.png"
    from mecllm.systems.finetune.plots import plot_comparison  # matplotlib: 0.2 s

    plot_comparison(instance, results, figure, topology_of=best.algorithm)
    out.print(
        f"Wrote {figure} (topology + SCR bars), the instance and one solution file "
        f"per algorithm in {out_dir}/",
        highlight=False,
    )
