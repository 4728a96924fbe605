"""The ``mecllm`` command line: the generic commands, and whatever the systems add.

Exit status: 0 success, 1 solver failure (or, for ``evaluate``, an infeasible solution),
2 invalid input. Bad input prints one line on stderr and writes nothing else.

No command here knows a system by name: each reads the instance's ``kind`` (or ``--system``)
and asks the registry for the system that does the work. A system adds its own commands, and
options of ``generate`` and ``evaluate``, through its ``cli`` module
(:mod:`mecllm.systems.registry`).
"""

from __future__ import annotations

import sys
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer

from mecllm.core.commandline import (
    BackendOpt,
    FreshOpt,
    OneLineErrors,
    SchedulerOpt,
    SeedOpt,
    TimeLimitOpt,
    VerboseOpt,
    WorkersOpt,
    check_seed,
    check_time_limit,
    err,
    guard,
    names,
    options_for,
    out,
    parse_settings,
    with_extra_options,
)
from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Experiment
from mecllm.core.fileio import check_output_file, check_output_folder, read_json
from mecllm.core.processes import stop_on_sigterm
from mecllm.systems.protocol import EvaluateRequest, GenerateRequest, RunRequest
from mecllm.systems.registry import (
    DEFAULT_KIND,
    SYSTEMS,
    all_systems,
    check_extra,
    commands_of,
    experiments_named,
    extra_options,
    get_system,
    kind_of,
    run_named,
    system_of,
)

app = typer.Typer(
    name="mecllm",
    cls=OneLineErrors,
    help="Plan large models at the wireless edge: several systems, each with its papers' "
    "algorithms and baselines (see `mecllm algorithms` and docs/README.md).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


@app.callback(invoke_without_command=True)
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, metavar=""),
    ] = False,
) -> None:
    """Plan large models at the wireless edge."""
    if show_version:
        sys.stdout.write(f"mecllm {package_version('mecllm')}\n")
        raise typer.Exit(0)


@app.command("generate")
@with_extra_options([option for _, option in extra_options("generate")])
def generate_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Instance JSON to write.")],
    system: Annotated[
        str,
        typer.Option("--system", help=f"Kind of instance: {', '.join(SYSTEMS)}."),
    ] = DEFAULT_KIND,
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="Scenario preset of the system (default: its first)."),
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
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other scenario setting, KEY=VALUE (repeatable)."),
    ] = None,
    *,
    extra: dict[str, Any],
) -> None:
    """Draw a random scenario of a system and write it as an instance file."""

    def run() -> None:
        check_seed(seed)
        check_output_file(output, "--output")
        target = get_system(system)
        check_extra(target.kind, "generate", extra)
        request = GenerateRequest(
            preset=preset_name,
            seed=seed,
            users=users,
            servers=servers,
            bandwidth_mhz=bandwidth_mhz,
            noise_dbm_hz=noise_dbm_hz,
            weights=weights,
            overrides=parse_settings(set_ or []),
            extra=extra,
        )
        target.generate_command(request, output, err)

    guard(run)


@app.command("solve")
def solve_cmd(
    instance_path: Annotated[Path, typer.Argument(help="Instance JSON.", metavar="INSTANCE")],
    algorithm: Annotated[
        str, typer.Option("--algorithm", "-a", help="Registered name (see `mecllm algorithms`).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Solution JSON to write.")],
    seed: SeedOpt = 0,
    time_limit: TimeLimitOpt = 600.0,
    verbose: VerboseOpt = False,
) -> None:
    """Solve an instance with one algorithm and write the solution file."""

    def run() -> None:
        check_seed(seed)
        check_time_limit(time_limit)
        check_output_file(output, "--output")
        data = read_json(instance_path, "instance")
        options = options_for(seed, time_limit, verbose)(algorithm)
        system_of(data).solve_command(data, algorithm, output, options, err)

    guard(run)


@app.command("evaluate")
@with_extra_options([option for _, option in extra_options("evaluate")])
def evaluate_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of tables.", metavar="")
    ] = False,
    *,
    extra: dict[str, Any],
) -> None:
    """Recompute every figure of a solution and check its feasibility (exit 1 if infeasible);
    for a simulated system, run the simulator on the plan."""

    def run() -> bool:
        data = read_json(instance_path, "instance")
        kind = kind_of(data)
        check_extra(kind, "evaluate", extra)
        request = EvaluateRequest(as_json, extra)
        return get_system(kind).evaluate_command(data, solution_path, request, out)

    if not guard(run):
        raise typer.Exit(1)


@app.command("compare")
def compare_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    algorithms: Annotated[
        str | None,
        typer.Option("--algorithms", help="Comma-separated names (default: all registered)."),
    ] = None,
    seed: SeedOpt = 0,
    time_limit: TimeLimitOpt = 600.0,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write this PNG.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run several algorithms on one instance and print them side by side."""

    def run() -> None:
        check_seed(seed)
        check_time_limit(time_limit)
        if plot is not None:
            check_output_file(plot, "--plot")
            if plot.suffix.lower() != ".png":
                raise InvalidInputError(
                    f"--plot writes a PNG: give a name ending in .png, got {plot}"
                )
        data = read_json(instance_path, "instance")
        system_of(data).compare_command(
            data,
            names(algorithms),
            options_for(seed, time_limit, verbose),
            plot,
            out,
            err,
            str(instance_path),
        )

    guard(run)


@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the files.")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Scenario seed.")] = 0,
    preset_name: Annotated[
        str | None, typer.Option("--preset", help="Scenario preset (default: paper).")
    ] = None,
    algorithms: Annotated[
        str | None,
        typer.Option(
            "--algorithms",
            help="Comma-separated names (default: the paper's five, dashf-milp and dashf-plus).",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """The main job: the paper's default 10-user, 2-server scenario, DASHF and the baselines."""

    def run() -> None:
        check_seed(seed)
        check_output_folder(out_dir, "--out")
        system = get_system(DEFAULT_KIND)
        system.demo_command(
            out_dir,
            preset_name or system.default_preset,
            seed,
            names(algorithms),
            options_for(seed, 600.0, verbose),
            out,
            err,
        )

    guard(run)


def _run_experiments(
    experiments: list[Experiment], trials: int, preset: str | None, **engine: Any
) -> None:
    """Run (or resume) sweeps of trials and print their tables; ``engine``: the output folder,
    backend, workers, scheduler, ``fresh`` and the base seed."""
    # Imported here: the engine pulls in matplotlib and the solvers, which the other commands
    # (and --help) need not load.
    from mecllm.experiments.report import run_tables
    from mecllm.experiments.runner import run_experiments

    default = get_system(experiments[0].system).default_preset
    counts, claims = run_experiments(
        experiments, trials=trials, preset=preset or default, console=err, **engine
    )
    for table in run_tables(counts, claims, trials):
        out.print(table)


BaseSeedOpt = Annotated[int, typer.Option("--seed", help="Base seed of the trials.")]


@app.command("reproduce")
def reproduce_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="A built-in experiment or a group of them (all: the main paper's figures), or "
            "a run a system carries out for real (its own options: --seed, --out, --fresh, "
            "--trials); every name is listed in docs/experiments.md."
        ),
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Seeded instances per setting (default 10; for a run, its own count).",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("reproduce"),
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="Scenario preset (default: the system's first)."),
    ] = None,
    backend: BackendOpt = "local",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    fresh: FreshOpt = False,
    seed: BaseSeedOpt = 0,
) -> None:
    """Reproduce the papers' figures: CSVs, PNGs and REPORT.md (resumable)."""

    def run() -> None:
        check_seed(seed)
        if trials is not None and trials < 1:
            raise InvalidInputError(f"--trials must be >= 1, got {trials}")
        runner = run_named(name)
        if runner is not None:
            check_output_folder(out_dir, "--out")
            runner.reproduce_run(name, RunRequest(out_dir, seed, trials, fresh), out, err)
            return
        engine = {"backend": backend, "workers": workers, "scheduler": scheduler}
        trials_ = 10 if trials is None else trials
        _run_experiments(
            experiments_named(name),
            trials_,
            preset_name,
            out=out_dir,
            fresh=fresh,
            base_seed=seed,
            **engine,
        )

    guard(run)


@app.command("sweep")
def sweep_cmd(
    file: Annotated[Path, typer.Argument(help="Sweep definition (TOML).", metavar="FILE")],
    trials: Annotated[int | None, typer.Option("--trials", help="Overrides the file.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("sweep-out"),
    preset_name: Annotated[
        str | None, typer.Option("--preset", help="Overrides the file's preset.")
    ] = None,
    backend: BackendOpt = "local",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    fresh: FreshOpt = False,
    seed: BaseSeedOpt = 0,
) -> None:
    """Sweep any scenario setting defined in a TOML file (see docs/experiments.md)."""

    def run() -> None:
        from mecllm.experiments.definitions import load_sweep

        check_seed(seed)
        experiment, options = load_sweep(file)
        file_preset = options.get("preset")
        engine = {"backend": backend, "workers": workers, "scheduler": scheduler}
        trials_ = trials if trials is not None else int(options.get("trials", 10))
        preset = preset_name or (str(file_preset) if file_preset is not None else None)
        _run_experiments(
            [experiment], trials_, preset, out=out_dir, fresh=fresh, base_seed=seed, **engine
        )

    guard(run)


@app.command("algorithms")
def algorithms_cmd() -> None:
    """List the registered algorithms: name<TAB>system<TAB>description."""
    for system in all_systems():
        for spec in system.algorithms().values():
            sys.stdout.write(f"{spec.name}\t{system.kind}\t{spec.description}\n")


# Each system's own commands (its cli module, imported light; see the registry).
for _kind in SYSTEMS:
    _commands = commands_of(_kind)
    if _commands is not None:
        _commands.register(app)


def main() -> None:
    """Console entry point: SIGTERM stops a command as cleanly as Ctrl-C (children stopped,
    finished work kept)."""
    stop_on_sigterm()
    app()


if __name__ == "__main__":
    main()
