"""The ``mecllm`` command line (MODEL.md section 10).

Exit status: 0 success, 1 solver failure (or, for ``evaluate``, an infeasible solution),
2 invalid input. Bad input prints one line on stderr and writes nothing else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from mecllm.errors import InvalidInputError, MecllmError, SolverError
from mecllm.instance import Instance, read_json
from mecllm.physics import PHASES, Evaluation, evaluate
from mecllm.scenario import PRESETS, generate, preset
from mecllm.secure.instance import KIND as SECURE_KIND
from mecllm.secure.instance import instance_kind
from mecllm.solution import Plan, SolveResult
from mecllm.solvers.base import SolveOptions
from mecllm.solvers.registry import ALGORITHMS, get_algorithm

#: What ``demo`` runs: the paper's five and the project's faster and better variants (the
#: exhaustive reference and the dense-SDR timing variant are left to ``compare``).
DEMO_ALGORITHMS = ("rucaa", "gucaa", "aauco", "gucro", "dashf", "dashf-milp", "dashf-plus")

app = typer.Typer(
    name="mecllm",
    help="Plan collaborative LLM adapter fine-tuning at the wireless edge "
    "(user association, adapter split phi, bandwidth, power and compute).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
# Tables are wide: when output goes to a file or pipe, do not squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)

T = TypeVar("T")


def _guard(action: Callable[[], T]) -> T:
    """Run ``action``; turn project errors into one stderr line and the right exit status."""
    try:
        return action()
    except InvalidInputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except SolverError as exc:
        err.print(f"solver failure: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except MecllmError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides of scenario settings (numbers, true/false)."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"--set must look like KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        text = raw.strip().lower()
        value: Any
        if text in ("true", "false"):
            value = text == "true"
        else:
            try:
                value = float(raw)
            except ValueError:
                raise InvalidInputError(
                    f"--set {key} must be a number or true/false, got {raw!r}"
                ) from None
            if key.strip() in ("n_users", "n_servers"):
                value = int(value)
        result[key.strip()] = value
    return result


@app.command("generate")
def generate_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Instance JSON to write.")],
    system: Annotated[
        str,
        typer.Option("--system", help="edge-llm (the default, the main system) or secure-offsite."),
    ] = "edge-llm",
    preset_name: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help=f"edge-llm: one of {', '.join(PRESETS)} (default paper); secure-offsite: "
            "default or balanced (default default).",
        ),
    ] = None,
    users: Annotated[int | None, typer.Option("--users", help="Number of users N.")] = None,
    servers: Annotated[int | None, typer.Option("--servers", help="Number of servers M.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    bandwidth_mhz: Annotated[
        float | None, typer.Option("--bandwidth-mhz", help="Bandwidth of every server, MHz.")
    ] = None,
    noise_dbm_hz: Annotated[
        float | None, typer.Option("--noise-dbm-hz", help="Noise PSD, dBm/Hz.")
    ] = None,
    weights: Annotated[
        tuple[float, float] | None,
        typer.Option("--weights", help="Delay and energy weights omega_t omega_e."),
    ] = None,
    shadowing_db: Annotated[
        float | None,
        typer.Option("--shadowing-db", help="Log-normal shadowing spread, dB (default none)."),
    ] = None,
    count_idle: Annotated[
        bool | None,
        typer.Option(
            "--count-idle/--no-count-idle",
            help="Whether server resources of users with no server work earn service score.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other scenario setting, KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Draw a random scenario (MODEL.md section 8) and write it as an instance file."""

    def run() -> None:
        overrides = _parse_set(set_ or [])
        if system == SECURE_KIND:
            _secure_generate(
                output,
                preset_name,
                seed,
                overrides,
                users=users,
                noise_dbm_hz=noise_dbm_hz,
                bandwidth_mhz=bandwidth_mhz,
                weights=weights,
                not_applicable={
                    "--servers": servers,
                    "--shadowing-db": shadowing_db,
                    "--count-idle": count_idle,
                },
            )
            return
        if system != "edge-llm":
            raise InvalidInputError(f"--system must be edge-llm or {SECURE_KIND}, got {system!r}")
        for key, value in (
            ("n_users", users),
            ("n_servers", servers),
            ("noise_dbm_per_hz", noise_dbm_hz),
            ("shadowing_db", shadowing_db),
            ("count_idle", count_idle),
        ):
            if value is not None:
                overrides[key] = value
        if bandwidth_mhz is not None:
            overrides["bandwidth_hz"] = bandwidth_mhz * 1e6
        if weights is not None:
            overrides["weight_delay"], overrides["weight_energy"] = weights
        name = preset_name or "paper"
        instance = generate(preset(name, **overrides), np.random.default_rng(seed))
        instance.save(output)
        err.print(
            f"wrote {output} ({instance.n_users} users, {instance.n_servers} servers, "
            f"preset {name}, seed {seed})",
            highlight=False,
        )

    _guard(run)


def _secure_generate(
    output: Path,
    preset_name: str | None,
    seed: int,
    overrides: dict[str, Any],
    *,
    users: int | None,
    noise_dbm_hz: float | None,
    bandwidth_mhz: float | None,
    weights: tuple[float, float] | None,
    not_applicable: dict[str, object],
) -> None:
    """``generate --system secure-offsite``: the options that exist for that system."""
    from mecllm.secure.commands import generate_secure_file

    for option, value in not_applicable.items():
        if value is not None:
            raise InvalidInputError(f"{option} does not apply to --system {SECURE_KIND}")
    if users is not None:
        overrides["n_users"] = users
    if noise_dbm_hz is not None:
        overrides["noise_dbm_per_hz"] = noise_dbm_hz
    if bandwidth_mhz is not None:
        overrides["bandwidth_hz"] = bandwidth_mhz * 1e6
    if weights is not None:
        overrides["weight_delay"], overrides["weight_energy"] = weights
    generate_secure_file(output, preset_name, seed, overrides, err)


def _progress_printer(algorithm: str) -> Callable[[dict[str, Any]], None]:
    def show(record: dict[str, Any]) -> None:
        where = record.get("stage", f"iter {record.get('iteration', '?')}")
        parts = [f"[{algorithm}] {where}", f"y = {record.get('y', float('nan')):.6g}"]
        if "moved_user" in record:
            parts.append(f"user {record['moved_user']} -> server {record['to_server']}")
        for key, value in record.items():
            if key.endswith("_s") and isinstance(value, float):
                parts.append(f"{key[:-2]} {value:.2f}s")
        for key in ("inner_iterations", "note"):
            if key in record:
                parts.append(f"{key.replace('_', ' ')} {record[key]}")
        err.print(", ".join(parts), highlight=False, markup=False)

    return show


@app.command("solve")
def solve_cmd(
    instance_path: Annotated[Path, typer.Argument(help="Instance JSON.", metavar="INSTANCE")],
    algorithm: Annotated[
        str, typer.Option("--algorithm", "-a", help="Registered name (see `mecllm algorithms`).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Solution JSON to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of randomised algorithms.")] = 0,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Wall-clock budget, s.")
    ] = 600.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each iteration as it happens.")
    ] = False,
) -> None:
    """Solve an instance with one algorithm and write the solution file."""

    def run() -> None:
        data = read_json(instance_path, "instance")
        if instance_kind(data) == SECURE_KIND:
            from mecllm.secure.commands import solve_secure_file

            progress = _progress_printer(algorithm) if verbose else None
            solve_secure_file(data, algorithm, output, seed, time_limit, progress, err)
            return
        spec = get_algorithm(algorithm)
        instance = Instance.from_dict(data)
        options = SolveOptions(
            seed=seed,
            time_limit_s=time_limit,
            progress=_progress_printer(spec.name) if verbose else None,
        )
        result = spec.run(instance, options)
        result.save(output)
        err.print(
            f"{spec.name}: SCR {result.scr:.6g}, delay {result.delay_s:.4g} s, energy "
            f"{result.energy_j:.6g} J, status {result.status}, {result.iterations} "
            f"iterations, {result.wall_time_s:.2f} s -> {output}",
            highlight=False,
        )
        idle = _idle_line(instance, result)
        if idle:
            err.print(idle, highlight=False, markup=False)

    _guard(run)


def _idle_line(instance: Instance, result: SolveResult) -> str:
    """One sentence on server resources held by users the server has no work for."""
    idle = evaluate(instance, result.plan).idle
    if idle is None:
        return ""
    return (
        f"idle allocations: users {idle.users} have phi = 1 yet hold server resources "
        f"(compute share per server {np.round(idle.compute_share, 3).tolist()}, power share "
        f"{np.round(idle.power_share, 3).tolist()}); the paper's score rewards this, "
        "service.count_idle = false forbids it"
    )


def _load_solution(path: Path, instance: Instance) -> tuple[Plan, dict[str, Any]]:
    data = read_json(path, "solution")
    if not isinstance(data, dict):
        raise InvalidInputError(f"solution file {path} must hold a JSON object")
    return Plan.from_dict(data, instance.n_users, instance.n_servers), data


def _phase_table(report: Evaluation) -> Table:
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


@app.command("evaluate")
def evaluate_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Recompute every figure of a solution and check its feasibility (exit 1 if infeasible)."""

    def run() -> bool:
        data = read_json(instance_path, "instance")
        if instance_kind(data) == SECURE_KIND:
            from mecllm.secure.commands import evaluate_secure_file

            return evaluate_secure_file(data, solution_path, as_json, out)
        instance = Instance.from_dict(data)
        plan, stored = _load_solution(solution_path, instance)
        report = evaluate(instance, plan)
        mismatches = _mismatches(report, stored)
        if as_json:
            data = report.to_dict()
            data["reported_mismatch"] = mismatches
            sys.stdout.write(json.dumps(data, indent=1) + "\n")
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
        out.print(_phase_table(report))
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

    if not _guard(run):
        raise typer.Exit(1)


def _mismatches(report: Evaluation, stored: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("scr", "delay_s", "energy_j", "service"):
        value = stored.get(key)
        mine = getattr(report, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value - mine) > 1e-6 * max(abs(mine), 1e-12):
                lines.append(f"the file reports {key} = {value:.10g}, recomputed {mine:.10g}")
    return lines


def _results_table(instance: Instance, results: Sequence[SolveResult], title: str) -> Table:
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


def _run_all(
    instance: Instance, names: Sequence[str], seed: int, time_limit: float, verbose: bool
) -> list[SolveResult]:
    results = []
    for name in names:
        spec = get_algorithm(name)
        err.print(f"solving with {spec.name} ...", highlight=False)
        options = SolveOptions(
            seed=seed,
            time_limit_s=time_limit,
            progress=_progress_printer(spec.name) if verbose else None,
        )
        results.append(spec.run(instance, options))
    return results


@app.command("compare")
def compare_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    algorithms: Annotated[
        str, typer.Option("--algorithms", help="Comma-separated names (default: all registered).")
    ] = "",
    seed: Annotated[int, typer.Option("--seed", help="Seed of randomised algorithms.")] = 0,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Budget per solve, s.")] = 600.0,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write this PNG.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run several algorithms on one instance and print them side by side."""

    def run() -> None:
        data = read_json(instance_path, "instance")
        if instance_kind(data) == SECURE_KIND:
            from mecllm.secure.commands import compare_secure

            def progress_for(name: str) -> Callable[[dict[str, Any]], None] | None:
                return _progress_printer(name) if verbose else None

            if plot is not None:
                raise InvalidInputError("--plot is not available for secure-offsite instances")
            chosen = [a.strip() for a in algorithms.split(",") if a.strip()]
            compare_secure(
                data, chosen, seed, time_limit, progress_for, out, err, str(instance_path)
            )
            return
        instance = Instance.from_dict(data)
        names = [a for a in algorithms.split(",") if a.strip()] or list(ALGORITHMS)
        results = _run_all(instance, names, seed, time_limit, verbose)
        out.print(
            _results_table(
                instance,
                results,
                f"{instance_path}: {instance.n_users} users, {instance.n_servers} servers",
            )
        )
        if plot is not None:
            from mecllm.plots import plot_comparison

            plot_comparison(instance, results, plot)
            err.print(f"wrote {plot}", highlight=False)

    _guard(run)


@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the files.")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Scenario seed.")] = 0,
    preset_name: Annotated[str, typer.Option("--preset")] = "paper",
    algorithms: Annotated[
        str,
        typer.Option(
            "--algorithms",
            help="Comma-separated names (default: the paper's five, dashf-milp and dashf-plus).",
        ),
    ] = "",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """The main job: the paper's default 10-user, 2-server scenario, DASHF and the baselines."""

    def run() -> None:
        from mecllm.plots import plot_comparison

        settings = preset(preset_name)
        instance = generate(settings, np.random.default_rng(seed))
        out_dir.mkdir(parents=True, exist_ok=True)
        instance.save(out_dir / "instance.json")
        names = [a for a in algorithms.split(",") if a.strip()] or list(DEMO_ALGORITHMS)
        results = _run_all(instance, names, seed, 600.0, verbose)
        for r in results:
            r.save(out_dir / f"solution-{r.algorithm}.json")
        out.print(
            _results_table(
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
        plot_comparison(instance, results, figure, topology_of=best.algorithm)
        out.print(
            f"Wrote {figure} (topology + SCR bars), the instance and one solution file "
            f"per algorithm in {out_dir}/",
            highlight=False,
        )

    _guard(run)


def _run_experiments(
    experiments: list[Any],
    trials: int,
    out_dir: Path,
    preset_name: str,
    backend: str,
    workers: int,
    scheduler: str | None,
    fresh: bool,
    seed: int,
) -> None:
    from mecllm.experiments.runner import run_experiments

    if trials < 1:
        raise InvalidInputError(f"--trials must be >= 1, got {trials}")
    systems = {e.system for e in experiments}
    if len(systems) > 1:
        raise InvalidInputError("one run holds experiments of one system (edge-llm or secure)")
    if systems == {SECURE_KIND}:
        from mecllm.secure.scenario import secure_preset

        secure_preset(preset_name)  # validate the name before any work
    else:
        preset(preset_name)
    counts, claims = run_experiments(
        experiments,
        trials=trials,
        out=out_dir,
        preset=preset_name,
        backend=backend,
        workers=workers,
        scheduler=scheduler,
        fresh=fresh,
        base_seed=seed,
        console=err,
    )
    table = Table(title="Trials")
    for column in ("experiment", "total", "skipped (already finished)", "computed now"):
        table.add_column(column, justify="left" if column == "experiment" else "right")
    for c in counts:
        table.add_row(c.experiment, str(c.total), str(c.skipped), str(c.computed))
    out.print(table)
    if claims:
        verdicts = Table(title="Claims of the paper")
        for column in ("experiment", "claim", "result", "numbers"):
            verdicts.add_column(column)
        for claim in claims:
            verdicts.add_row(
                claim.experiment,
                claim.text,
                "[green]PASS[/]" if claim.passed else "[red]FAIL[/]",
                claim.evidence,
            )
        out.print(verdicts)


# Options shared by `reproduce` and `sweep`.
BackendOpt = Annotated[str, typer.Option("--backend", help="local (process pool) or dask.")]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="Parallel workers (local pool or LocalCluster).")
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler.")
]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Forget finished trials.")]
BaseSeedOpt = Annotated[int, typer.Option("--seed", help="Base seed of the trials.")]


@app.command("reproduce")
def reproduce_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="convergence, baselines, bandwidth, weights or all (the main paper); secure "
            "(the second system: secure-methods, secure-eavesdropper, secure-rho, or one of them)."
        ),
    ],
    trials: Annotated[int, typer.Option("--trials", help="Seeded instances per setting.")] = 10,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("reproduce"),
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="Default: paper (main) or default (secure)."),
    ] = None,
    backend: BackendOpt = "local",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    fresh: FreshOpt = False,
    seed: BaseSeedOpt = 0,
) -> None:
    """Reproduce the paper's Section V: CSVs, PNGs and REPORT.md (resumable)."""

    def run() -> None:
        from mecllm.experiments.definitions import BUILTIN, SECURE_BUILTIN, get_experiment

        if name == "secure":
            chosen = list(SECURE_BUILTIN.values())
        elif name in SECURE_BUILTIN:
            chosen = [SECURE_BUILTIN[name]]
        else:
            chosen = list(BUILTIN.values()) if name == "all" else [get_experiment(name)]
        default = "default" if chosen[0].system == SECURE_KIND else "paper"
        _run_experiments(
            chosen,
            trials,
            out_dir,
            preset_name or default,
            backend,
            workers,
            scheduler,
            fresh,
            seed,
        )

    _guard(run)


@app.command("sweep")
def sweep_cmd(
    file: Annotated[Path, typer.Argument(help="Sweep definition (TOML).", metavar="FILE")],
    trials: Annotated[int | None, typer.Option("--trials", help="Overrides the file.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("sweep-out"),
    preset_name: Annotated[str | None, typer.Option("--preset")] = None,
    backend: BackendOpt = "local",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    fresh: FreshOpt = False,
    seed: BaseSeedOpt = 0,
) -> None:
    """Sweep any scenario setting defined in a TOML file (see README)."""

    def run() -> None:
        from mecllm.experiments.definitions import load_sweep

        experiment, options = load_sweep(file)
        _run_experiments(
            [experiment],
            int(trials or options.get("trials", 10)),
            out_dir,
            str(preset_name or options.get("preset", "paper")),
            backend,
            workers,
            scheduler,
            fresh,
            seed,
        )

    _guard(run)


@app.command("train")
def train_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs on each side.")] = 2,
    train_examples: Annotated[
        int, typer.Option("--train-examples", help="Training sentences per user.")
    ] = 160,
    bottleneck: Annotated[int, typer.Option("--bottleneck", help="Adapter width r.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data and adapters.")] = 0,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Folder for the servers' logs.")
    ] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="Also write the records.")] = None,
) -> None:
    """Run the plan's split adapter fine-tuning for real (MiniLM, loopback HTTP; needs [train])."""

    def run() -> None:
        try:
            from mecllm.train.loop import Settings
            from mecllm.train.run import train_plan
        except ImportError:
            raise InvalidInputError(
                "mecllm train needs the [train] extra: pip install -e '.[train]'"
            ) from None
        from mecllm.train.report import records_table

        instance = Instance.load(instance_path)
        plan, _ = _load_solution(solution_path, instance)
        for name, value in (("--epochs", epochs), ("--train-examples", train_examples)):
            if value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        if not 1 <= bottleneck <= 384:
            raise InvalidInputError(f"--bottleneck must be in 1..384, got {bottleneck}")
        settings = Settings(bottleneck=bottleneck, n_train=train_examples, epochs=epochs, seed=seed)
        records = train_plan(
            instance,
            plan,
            settings,
            log_dir=logs,
            progress=lambda text: err.print(text, highlight=False),
        )
        for table in records_table(records):
            out.print(table)
        if as_json is not None:
            from mecllm.fileio import atomic_write_text

            atomic_write_text(as_json, json.dumps(records, indent=1) + "\n")

    _guard(run)


@app.command("algorithms")
def algorithms_cmd() -> None:
    """List the registered algorithms: name<TAB>system<TAB>description."""
    from mecllm.secure.solvers import SECURE_ALGORITHMS

    for spec in ALGORITHMS.values():
        sys.stdout.write(f"{spec.name}\tedge-llm\t{spec.description}\n")
    for secure in SECURE_ALGORITHMS.values():
        sys.stdout.write(f"{secure.name}\t{SECURE_KIND}\t{secure.description}\n")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
