"""The ``mecllm`` command line: typer declarations that dispatch through the systems registry.

Exit status: 0 success, 1 solver failure (or, for ``evaluate``, an infeasible solution),
2 invalid input. Bad input prints one line on stderr and writes nothing else. No command here
knows a system by name: each reads the instance's ``kind`` (or ``--system``) and asks the
registry for the system that does the work.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from mecllm.core.errors import InvalidInputError, MecllmError, SolverError
from mecllm.core.experiment import Experiment
from mecllm.core.fileio import check_output_file, check_output_folder, read_json
from mecllm.core.options import SolveOptions
from mecllm.core.processes import Terminated, stop_on_sigterm
from mecllm.systems.protocol import EvaluateRequest, GenerateRequest, OptionsFor
from mecllm.systems.registry import (
    DEFAULT_KIND,
    SYSTEMS,
    all_systems,
    experiments_named,
    get_system,
    system_of,
)

# Tables are wide: when output goes to a file or pipe, do not squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


#: click's base exception class as typer uses it (typer may bundle its own copy of click).
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _OneLineErrors(TyperGroup):
    """Every error the command line itself finds (an unknown option, a missing argument, a value
    of the wrong type) is one line on stderr and exit status 2, like the project's own errors."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _CLICK_ERROR as exc:
            message = exc.format_message()  # type: ignore[attr-defined]
            err.print(f"error: {message}", markup=False, highlight=False)
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        except typer.Abort:
            err.print("interrupted", highlight=False)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


app = typer.Typer(
    name="mecllm",
    cls=_OneLineErrors,
    help="Plan large models at the wireless edge: several systems, each with its papers' "
    "algorithms and baselines (see `mecllm algorithms` and docs/README.md).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)

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
    except OSError as exc:
        # A file or folder the checks could not foresee (a full disk, a read-only mount).
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; finished work is kept", highlight=False)
        raise typer.Exit(130) from None
    except Terminated:
        err.print("terminated; finished work is kept", highlight=False)
        raise typer.Exit(Terminated.exit_code) from None


def _check_seed(seed: int, option: str = "--seed") -> None:
    if seed < 0:
        raise InvalidInputError(f"{option} must be >= 0, got {seed}")


def _check_time_limit(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"--time-limit must be a positive number of seconds, got {seconds}")


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


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides of scenario settings: whole numbers, numbers and true/false are
    converted; anything else stays text, so the system names an unknown setting before it
    judges the value."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"--set must look like KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        text = raw.strip()
        value: Any = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for convert in (int, float):
                try:
                    value = convert(text)
                    break
                except ValueError:
                    continue
        result[key.strip()] = value
    return result


def _progress_printer(algorithm: str) -> Callable[[dict[str, Any]], None]:
    def show(record: dict[str, Any]) -> None:
        where = record.get("stage", f"iter {record.get('iteration', '?')}")
        parts = [f"[{algorithm}] {where}", f"y = {record.get('y', float('nan')):.6g}"]
        if "moved_user" in record:
            parts.append(f"user {record['moved_user']} -> server {record['to_server']}")
        for key, value in record.items():
            if key.endswith("_s") and isinstance(value, float):
                parts.append(f"{key[:-2]} {value:.2f}s")
        for key in ("inner_iterations", "moves_screened", "moves_improving", "moves_taken", "note"):
            if key in record:
                parts.append(f"{key.replace('_', ' ')} {record[key]}")
        err.print(", ".join(parts), highlight=False, markup=False)

    return show


def _options_for(seed: int, time_limit: float, verbose: bool) -> OptionsFor:
    """Solve options for a named algorithm (a progress printer per name with ``--verbose``)."""

    def make(name: str) -> SolveOptions:
        return SolveOptions(
            seed=seed,
            time_limit_s=time_limit,
            progress=_progress_printer(name) if verbose else None,
        )

    return make


def _names(text: str | None, option: str = "--algorithms") -> list[str]:
    """A comma-separated list of names; ``None`` (not given) means the command's default."""
    if text is None:
        return []
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise InvalidInputError(f"{option} must name at least one algorithm, got {text!r}")
    return names


def _plan_model(text: str) -> Literal["profiled", "paper"]:
    if text == "profiled":
        return "profiled"
    if text == "paper":
        return "paper"
    raise InvalidInputError(f"--plan-model must be 'profiled' or 'paper', got {text!r}")


@app.command("generate")
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
    as_field: Annotated[
        bool,
        typer.Option(
            "--field",
            help="edge-llm only: write a field (settings and seed; channels computed on "
            "demand) for `mecllm solve-regions`, at any size.",
            metavar="",
        ),
    ] = False,
    work_model: Annotated[
        Path | None,
        typer.Option(
            "--work-model",
            help="edge-llm only: a cost file of `mecllm profile`; the instance then describes "
            "a `mecllm train` run on this machine (docs/finetune.md section 12).",
        ),
    ] = None,
    plan_model: Annotated[
        str,
        typer.Option(
            "--plan-model",
            help="With --work-model: plan with the 'profiled' costs or the 'paper' model.",
        ),
    ] = "profiled",
) -> None:
    """Draw a random scenario of a system and write it as an instance file."""

    def run() -> None:
        _check_seed(seed)
        check_output_file(output, "--output")
        request = GenerateRequest(
            preset=preset_name,
            seed=seed,
            users=users,
            servers=servers,
            bandwidth_mhz=bandwidth_mhz,
            noise_dbm_hz=noise_dbm_hz,
            weights=weights,
            shadowing_db=shadowing_db,
            count_idle=count_idle,
            overrides=_parse_set(set_ or []),
            field=as_field,
            work_model=work_model,
            plan_model=_plan_model(plan_model),
        )
        get_system(system).generate_command(request, output, err)

    _guard(run)


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
        bool,
        typer.Option("--verbose", "-v", help="Print each iteration as it happens.", metavar=""),
    ] = False,
) -> None:
    """Solve an instance with one algorithm and write the solution file."""

    def run() -> None:
        _check_seed(seed)
        _check_time_limit(time_limit)
        check_output_file(output, "--output")
        data = read_json(instance_path, "instance")
        options = _options_for(seed, time_limit, verbose)(algorithm)
        system_of(data).solve_command(data, algorithm, output, options, err)

    _guard(run)


@app.command("evaluate")
def evaluate_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of tables.", metavar="")
    ] = False,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="Replay this request trace (simulated systems)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the drawn request stream.")
    ] = None,
    fail: Annotated[
        list[str] | None,
        typer.Option("--fail", help="NODE@SECONDS: a node fails then (repeatable)."),
    ] = None,
) -> None:
    """Recompute every figure of a solution and check its feasibility (exit 1 if infeasible);
    for a simulated system, run the simulator on the plan."""

    def run() -> bool:
        if seed is not None:
            _check_seed(seed)
        data = read_json(instance_path, "instance")
        request = EvaluateRequest(as_json, trace, seed, tuple(fail or ()))
        return system_of(data).evaluate_command(data, solution_path, request, out)

    if not _guard(run):
        raise typer.Exit(1)


@app.command("compare")
def compare_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    algorithms: Annotated[
        str | None,
        typer.Option("--algorithms", help="Comma-separated names (default: all registered)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of randomised algorithms.")] = 0,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Budget per solve, s.")] = 600.0,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write this PNG.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each iteration.", metavar="")
    ] = False,
) -> None:
    """Run several algorithms on one instance and print them side by side."""

    def run() -> None:
        _check_seed(seed)
        _check_time_limit(time_limit)
        if plot is not None:
            check_output_file(plot, "--plot")
        data = read_json(instance_path, "instance")
        system_of(data).compare_command(
            data,
            _names(algorithms),
            _options_for(seed, time_limit, verbose),
            plot,
            out,
            err,
            str(instance_path),
        )

    _guard(run)


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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each iteration.", metavar="")
    ] = False,
) -> None:
    """The main job: the paper's default 10-user, 2-server scenario, DASHF and the baselines."""

    def run() -> None:
        _check_seed(seed)
        check_output_folder(out_dir, "--out")
        system = get_system(DEFAULT_KIND)
        system.demo_command(
            out_dir,
            preset_name or system.default_preset,
            seed,
            _names(algorithms),
            _options_for(seed, 600.0, verbose),
            out,
            err,
        )

    _guard(run)


def _run_experiments(
    experiments: list[Experiment],
    trials: int,
    out_dir: Path,
    preset_name: str | None,
    backend: str,
    workers: int,
    scheduler: str | None,
    fresh: bool,
    seed: int,
) -> None:
    # Imported here: the engine pulls in matplotlib and the solvers, which the other commands
    # (and --help) need not load.
    from mecllm.experiments.runner import run_experiments

    system = get_system(experiments[0].system)
    counts, claims = run_experiments(
        experiments,
        trials=trials,
        out=out_dir,
        preset=preset_name or system.default_preset,
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
                _coloured(claim.verdict(trials)),
                claim.evidence,
            )
        out.print(verdicts)


def _coloured(verdict: str) -> str:
    colour = {"PASS": "green", "FAIL": "red"}.get(verdict, "yellow")
    return f"[{colour}]{verdict}[/]"


# Options shared by `reproduce` and `sweep`.
BackendOpt = Annotated[str, typer.Option("--backend", help="local (process pool) or dask.")]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="Parallel workers (local pool or LocalCluster).")
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler.")
]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Forget finished trials.", metavar="")]
BaseSeedOpt = Annotated[int, typer.Option("--seed", help="Base seed of the trials.")]


#: The experiment that runs plans for real (docs/train.md): not a sweep of trials.
TRAIN_FIDELITY = "train-fidelity"


#: Scenarios ``train-fidelity`` runs when --trials is not given (each takes about 80 s).
FIDELITY_SCENARIOS = 3


def _train_fidelity(out_dir: Path, seed: int, scenarios: int, fresh: bool) -> None:
    try:
        from mecllm.train.fidelity import reproduce_fidelity
    except ImportError:
        raise InvalidInputError(
            f"{TRAIN_FIDELITY} needs the train extra: pip install -e '.[train]'"
        ) from None
    reproduce_fidelity(
        out_dir,
        seed,
        scenarios,
        fresh=fresh,
        progress=lambda text: err.print(text, highlight=False),
    )
    out.print((out_dir / "REPORT.md").read_text(), markup=False, highlight=False)
    err.print(f"wrote {out_dir / 'REPORT.md'}", highlight=False)


@app.command("reproduce")
def reproduce_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="A built-in experiment or a group of them: all (the main paper's figures), "
            "train-fidelity (plans run for real; --seed, --out and --fresh only) or any name "
            "listed in docs/experiments.md."
        ),
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Seeded instances per setting (default 10; train-fidelity: scenarios, default 3).",
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
        _check_seed(seed)
        if trials is not None and trials < 1:
            raise InvalidInputError(f"--trials must be >= 1, got {trials}")
        if name == TRAIN_FIDELITY:
            _train_fidelity(out_dir, seed, trials or FIDELITY_SCENARIOS, fresh)
            return
        _run_experiments(
            experiments_named(name),
            10 if trials is None else trials,
            out_dir,
            preset_name,
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

        _check_seed(seed)
        experiment, options = load_sweep(file)
        file_preset = options.get("preset")
        _run_experiments(
            [experiment],
            trials if trials is not None else int(options.get("trials", 10)),
            out_dir,
            preset_name or (str(file_preset) if file_preset is not None else None),
            backend,
            workers,
            scheduler,
            fresh,
            seed,
        )

    _guard(run)


@app.command("solve-regions")
def solve_regions_cmd(
    field_path: Annotated[
        Path, typer.Argument(metavar="FIELD", help="Field file (`mecllm generate --field`).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Output folder (re-running it skips solved regions).")
    ] = Path("regions-out"),
    servers_per_region: Annotated[
        int, typer.Option("--servers-per-region", help="Servers in each region (about).")
    ] = 50,
    algorithm: Annotated[
        str, typer.Option("--algorithm", "-a", help="Algorithm each region is solved by.")
    ] = "dashf-scale",
    backend: Annotated[
        str, typer.Option("--backend", help="dask (LocalCluster or --scheduler) or local.")
    ] = "dask",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of randomised algorithms.")] = 0,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Wall-clock budget of each region, s.")
    ] = 600.0,
    relax: Annotated[
        bool,
        typer.Option(
            "--relax",
            help="Re-split the regions faster than the stitched delay with it as a floor "
            "(one more pass; docs/regions.md).",
        ),
    ] = False,
    delay_start: Annotated[
        float,
        typer.Option(
            "--delay-start",
            help="dashf-scale: start each region from a short solve at this multiple of its "
            "delay weight (1: off; docs/regions.md).",
        ),
    ] = 4.0,
) -> None:
    """Solve a large fine-tuning field by regions in parallel and stitch one plan
    (docs/regions.md)."""

    def run() -> None:
        from mecllm.decompose.command import solve_regions_file

        _check_seed(seed)
        _check_time_limit(time_limit)
        check_output_folder(out_dir, "--out")
        options = SolveOptions(seed=seed, time_limit_s=time_limit)
        solve_regions_file(
            field_path,
            out_dir,
            servers_per_region,
            algorithm,
            options,
            backend,
            workers,
            scheduler,
            out,
            err,
            relax,
            delay_start,
        )

    _guard(run)


def _train_mode(text: str) -> Literal["adapters", "split"]:
    if text == "adapters":
        return "adapters"
    if text == "split":
        return "split"
    raise InvalidInputError(f"--mode must be 'adapters' or 'split', got {text!r}")


def _splits(text: str | None, mode: str) -> list[int] | None:
    if text is None:
        return None
    if mode != "split":
        raise InvalidInputError("--splits needs --mode split")
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"--splits must list whole numbers, got {text!r}") from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise InvalidInputError(
            f"--splits must list distinct whole numbers 0..L (L the model's blocks), got {text!r}"
        )
    return values


_MODEL_DIR_OPTION = typer.Option(
    "--model-dir",
    help="A local model directory (config, weights, tokenizer as save_pretrained writes them), "
    "loaded offline through transformers with peft LoRA adapters of rank --bottleneck (the hf "
    "extra). Default: the packaged MiniLM with bottleneck adapters.",
)


def _model_dir(folder: Path | None) -> str | None:
    """The model directory as the run's settings hold it, checked before anything starts."""
    if folder is None:
        return None
    if not folder.is_dir():
        raise InvalidInputError(f"--model-dir {folder}: no such directory")
    try:
        from mecllm.train.hf_model import config_shape
    except ImportError:
        raise InvalidInputError(
            "--model-dir needs the train and hf extras: pip install -e '.[train,hf]'"
        ) from None
    config_shape(folder)
    return str(folder.resolve())


@app.command("train")
def train_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="Epochs on each side (default 2; a profiled instance sets its own)."
        ),
    ] = None,
    train_examples: Annotated[
        int | None,
        typer.Option(
            "--train-examples",
            help="Training sentences per user (default 160; a profiled instance sets its own).",
        ),
    ] = None,
    bottleneck: Annotated[
        int, typer.Option("--bottleneck", help="Adapter width r (the LoRA rank with --model-dir).")
    ] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data and adapters.")] = 0,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Folder for the servers' logs.")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Also write the records (users, makespan).")
    ] = None,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict", help="Print each phase T1..T4 as planned and as measured.", metavar=""
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="adapters (the plan's adapter split) or split (full-parameter split training "
            "at k = round(6 phi), activations up and gradients down every batch).",
        ),
    ] = "adapters",
    splits: Annotated[
        str | None,
        typer.Option(
            "--splits",
            help="With --mode split: run every user at each of these cuts, e.g. 0,1,2,3,4,5,6, "
            "and compare the planner's recommended cut with the measured best.",
        ),
    ] = None,
    model_dir: Annotated[Path | None, _MODEL_DIR_OPTION] = None,
) -> None:
    """Run a fine-tuning plan's split adapter training for real, all users at once (MiniLM,
    gRPC on loopback; needs the train extra)."""

    def run() -> None:
        _check_seed(seed)
        if logs is not None:
            check_output_folder(logs, "--logs")
        if as_json is not None:
            check_output_file(as_json, "--json")
        for name, value in (("--epochs", epochs), ("--train-examples", train_examples)):
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        if not 1 <= bottleneck <= 384:
            raise InvalidInputError(f"--bottleneck must be in 1..384, got {bottleneck}")
        try:
            from mecllm.train.command import train_files
            from mecllm.train.loop import Settings
        except ImportError:
            raise InvalidInputError(
                "mecllm train needs the train extra: pip install -e '.[train]'"
            ) from None
        settings = Settings(
            bottleneck=bottleneck,
            n_train=160 if train_examples is None else train_examples,
            epochs=2 if epochs is None else epochs,
            seed=seed,
            model_dir=_model_dir(model_dir),
        )
        sizes = [n for n, v in (("--epochs", epochs), ("--train-examples", train_examples)) if v]
        train_files(
            instance_path,
            solution_path,
            settings,
            logs,
            as_json,
            out,
            err,
            predict=predict,
            sizes_given=sizes,
            mode=_train_mode(mode),
            splits=_splits(splits, mode),
        )

    _guard(run)


@app.command("profile")
def profile_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Cost file to write.")] = Path(
        "cost.json"
    ),
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")] = 24,
    batch: Annotated[int, typer.Option("--batch", help="Sequences per step.")] = 16,
    bottleneck: Annotated[
        int, typer.Option("--bottleneck", help="Adapter width r (the LoRA rank with --model-dir).")
    ] = 16,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs of each step.")] = 5,
    model_dir: Annotated[Path | None, _MODEL_DIR_OPTION] = None,
) -> None:
    """Measure what a training step of `mecllm train`'s model costs by split (FLOPs and seconds,
    forward and backward) and write a cost file (needs the train extra)."""

    def run() -> None:
        check_output_file(output, "--output")
        for name, value, high in (
            ("--seq-len", seq_len, 512),
            ("--batch", batch, 4096),
            ("--repeats", repeats, 1000),
            ("--bottleneck", bottleneck, 384),
        ):
            if not 1 <= value <= high:
                raise InvalidInputError(f"{name} must be in 1..{high}, got {value}")
        try:
            from mecllm.train.profile import profile, save
        except ImportError:
            raise InvalidInputError(
                "mecllm profile needs the train extra: pip install -e '.[train]'"
            ) from None
        costs = profile(
            seq_len,
            batch,
            bottleneck,
            repeats,
            progress=lambda t: err.print(t, highlight=False),
            model_dir=_model_dir(model_dir),
        )
        save(costs, output)
        tokens = costs["tokens_per_step"]
        table = Table(
            title=(
                f"Training step costs, {batch} x {seq_len} tokens (forward of the frozen model: "
                f"{costs['forward']['flops'] / tokens / 1e6:.1f} MFLOP/token, "
                f"{costs['forward']['seconds'] * 1e3:.1f} ms)"
            )
        )
        for column in (
            "split k",
            "user MFLOP/token",
            "user s",
            "user FLOP/param/token",
            "server MFLOP/token",
            "server s",
            "server FLOP/param/token",
        ):
            table.add_column(column, justify="right")
        for step in costs["train_steps"]:
            cells = [str(step["split"])]
            for side in ("user", "server"):
                c = step[side]
                per_param = c["flops"] / tokens / c["params"] if c["params"] else 0.0
                cells += [
                    f"{c['flops'] / tokens / 1e6:.2f}",
                    f"{c['seconds']:.3f}",
                    f"{per_param:.0f}",
                ]
            table.add_row(*cells)
        out.print(table)
        err.print(f"wrote {output}", highlight=False)

    _guard(run)


@app.command("serve")
def serve_cmd(
    instance_path: Annotated[
        Path | None, typer.Argument(metavar="INSTANCE", help="Edge-inference instance JSON.")
    ] = None,
    plan_path: Annotated[
        Path | None, typer.Argument(metavar="PLAN", help="Its solution (placement) JSON.")
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", help="Serve the stream's first K requests.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Total demand, requests/s (default: the instance's)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stream and prompts.")] = 0,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Replay this request trace (CSV or JSON).")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration", help="Calibration file (default: calibrate in service, --warmup)."
        ),
    ] = None,
    warmup: Annotated[
        int,
        typer.Option("--warmup", help="Requests of the warm-up that calibrates in service."),
    ] = 40,
    core_share: Annotated[
        float,
        typer.Option("--core-share", help="Share of a core the fastest node runs at, (0, 1]."),
    ] = 0.5,
    kill: Annotated[
        list[str] | None,
        typer.Option("--kill", help="SHARD@SECONDS: SIGKILL that shard then (repeatable)."),
    ] = None,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Folder for logs, stream and records.")
    ] = None,
    records: Annotated[
        Path | None, typer.Option("--records", help="Per-request records (JSON lines).")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Write measured and predicted figures.")
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option("--calibrate", help="Only measure step times and fit node speeds."),
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="With --calibrate: the calibration file.")
    ] = Path("calibration.json"),
) -> None:
    """Serve an edge-inference plan for real: shard processes of MiniLM, a gateway, a load
    generator; measured figures beside the simulator's (needs the train extra)."""

    def run() -> None:
        _check_seed(seed)
        for path, name in ((logs, "--logs"),):
            if path is not None:
                check_output_folder(path, name)
        for path, name in ((records, "--records"), (as_json, "--json")):
            if path is not None:
                check_output_file(path, name)
        try:
            from mecllm.serve.command import ServeRequest, calibrate_files, serve_files
        except ImportError:
            raise InvalidInputError(
                "mecllm serve needs the train extra: pip install -e '.[train]'"
            ) from None
        if calibrate:
            check_output_file(output, "--output")
            if plan_path is not None and instance_path is None:
                raise InvalidInputError("give the INSTANCE of the PLAN")
            calibrate_files(instance_path, plan_path, output, out, err)
            return
        if instance_path is None or plan_path is None:
            raise InvalidInputError("mecllm serve needs INSTANCE and PLAN (or --calibrate)")
        request = ServeRequest(
            requests=requests,
            rate=rate,
            seed=seed,
            trace=trace,
            calibration=calibration,
            warmup=warmup,
            core_share=core_share,
            kills=tuple(kill or ()),
            logs=logs,
            records=records,
            as_json=as_json,
        )
        result = serve_files(instance_path, plan_path, request, out, err)
        if result.lost:
            raise SolverError(f"{result.lost} requests ended with neither an answer nor a reason")

    _guard(run)


@app.command("algorithms")
def algorithms_cmd() -> None:
    """List the registered algorithms: name<TAB>system<TAB>description."""
    for system in all_systems():
        for spec in system.algorithms().values():
            sys.stdout.write(f"{spec.name}\t{system.kind}\t{spec.description}\n")


def main() -> None:
    """Console entry point: SIGTERM stops a command as cleanly as Ctrl-C (children stopped,
    finished work kept)."""
    stop_on_sigterm()
    app()


if __name__ == "__main__":
    main()
