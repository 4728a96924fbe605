"""Run experiments: skip finished trials, run the rest on a backend, commit each one, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mecllm.core.errors import InvalidInputError
from mecllm.core.executors import check_backend, run_trials
from mecllm.core.experiment import MIN_TRIALS_FOR_VERDICT, Claim, Experiment, TrialSpec
from mecllm.core.fileio import atomic_write_text, check_output_folder
from mecllm.experiments.figures import plot_experiment
from mecllm.experiments.report import claims_markdown, results_markdown, summarise, write_csvs
from mecllm.experiments.store import ResultsStore, code_version
from mecllm.experiments.trials import run_trial
from mecllm.systems.registry import get_system


@dataclass(frozen=True)
class RunCounts:
    """How many trials an experiment had, found finished, and computed now."""

    experiment: str
    total: int
    skipped: int
    computed: int


def plan_trials(
    experiment: Experiment, trials: int, preset: str, base_seed: int, version: str
) -> list[TrialSpec]:
    """Every trial of an experiment, in a stable order."""
    return [
        TrialSpec(
            experiment.name,
            setting.label,
            setting.x,
            tuple(sorted(setting.overrides.items())),
            seed,
            algorithm,
            preset,
            base_seed,
            version,
            experiment.system,
        )
        for setting in experiment.settings
        for seed in range(trials)
        for algorithm in experiment.algorithms
    ]


def check_run(
    experiments: list[Experiment],
    trials: int,
    out: Path,
    preset: str,
    backend: str,
    workers: int,
    scheduler: str | None,
) -> None:
    """Refuse a run that cannot work, before any file or process exists: the trial count, the
    backend, the output folder, and every experiment's algorithms and settings (names, types,
    ranges and sizes) under ``preset``.

    Raises
    ------
    InvalidInputError
        For the first problem, in one sentence.
    """
    if isinstance(trials, bool) or trials < 1:
        raise InvalidInputError(f"--trials must be >= 1, got {trials}")
    check_backend(backend, workers, scheduler)
    check_output_folder(out, "--out")
    kinds = sorted({e.system for e in experiments})
    if len(kinds) != 1:
        raise InvalidInputError(f"one run holds experiments of one system, got {kinds}")
    system = get_system(kinds[0])
    if preset not in system.presets:
        raise InvalidInputError(
            f"--preset must be one of {', '.join(system.presets)} for {system.kind}, got {preset!r}"
        )
    for experiment in experiments:
        system.check_algorithms(experiment.algorithms)
        for setting in experiment.settings:
            system.normalise_settings(preset, setting.overrides)


def run_experiments(
    experiments: list[Experiment],
    *,
    trials: int,
    out: Path,
    preset: str,
    backend: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    fresh: bool = False,
    base_seed: int = 0,
    console: Console | None = None,
) -> tuple[list[RunCounts], list[Claim]]:
    """Run (or resume) the experiments and write CSVs, PNGs and REPORT.md under ``out``.

    Everything is checked before anything is written or started (:func:`check_run`).
    """
    check_run(experiments, trials, out, preset, backend, workers, scheduler)
    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(out, fresh=fresh)
    version = code_version()
    counts: list[RunCounts] = []
    try:
        todo: list[TrialSpec] = []
        for experiment in experiments:
            specs = plan_trials(experiment, trials, preset, base_seed, version)
            done = store.done(experiment.name, preset, version)
            missing = [s for s in specs if s.key not in done]
            counts.append(
                RunCounts(experiment.name, len(specs), len(specs) - len(missing), len(missing))
            )
            todo.extend(missing)
        skipped = sum(c.skipped for c in counts)
        console.print(
            f"{sum(c.total for c in counts)} trials: {skipped} already finished "
            f"(skipped), {len(todo)} to run on backend {backend} "
            f"with {workers} worker(s); results in {store.path}",
            highlight=False,
        )
        started = time.perf_counter()
        # On a terminal the bar redraws in place; in a log file print a line every 5%.
        step = max(1, len(todo) // 20)
        with Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("trials", total=len(todo), rate="")
            for finished, (key, row) in enumerate(
                run_trials(run_trial, todo, backend=backend, workers=workers, scheduler=scheduler),
                start=1,
            ):
                store.add(key, row)
                rate = finished / max(time.perf_counter() - started, 1e-9)
                progress.update(task, advance=1, rate=f"{rate:.2f} trials/s")
                if not console.is_terminal and (finished % step == 0 or finished == len(todo)):
                    eta = (len(todo) - finished) / max(rate, 1e-9)
                    console.print(
                        f"{finished}/{len(todo)} trials, {rate:.2f} trials/s, ETA {eta:.0f} s",
                        highlight=False,
                    )
        claims = write_reports(experiments, store, out, preset, version, trials)
    finally:
        store.close()
    console.print(
        f"finished in {time.perf_counter() - started:.0f} s; "
        f"wrote CSVs, PNGs and REPORT.md in {out}",
        highlight=False,
    )
    return counts, claims


def write_reports(
    experiments: list[Experiment],
    store: ResultsStore,
    out: Path,
    preset: str,
    version: str,
    trials: int,
) -> list[Claim]:
    """CSVs and a PNG per experiment, and REPORT.md with the claims and the tables."""
    all_claims: list[Claim] = []
    sections = []
    for experiment in experiments:
        rows = [r for r in store.rows(experiment.name, preset, version) if r["seed"] < trials]
        if not rows:
            continue
        system = get_system(experiment.system)
        summary = summarise(experiment, rows)
        write_csvs(out, experiment, rows, summary)
        figure = plot_experiment(out, experiment, rows, summary, system.metric_labels)
        claims = system.check_claims(experiment, rows, summary)
        all_claims.extend(claims)
        sections.append(
            f"## {experiment.title}\n\nFigure: `{figure.name}`; data: "
            f"`{experiment.name}.csv` (means), `{experiment.name}-trials.csv` "
            f"(per trial).\n\n{results_markdown(experiment, summary)}\n"
        )
    header = (
        f"# Reproduction report\n\nPreset: `{preset}`; {trials} trials per setting; "
        f"code version `{version}`. Intervals are 95% percentile-bootstrap intervals of the "
        f"mean; a claim gets PASS or FAIL only from {MIN_TRIALS_FOR_VERDICT} trials per "
        "setting on.\n"
    )
    body = "\n## Claims of the papers (each system's page in docs/ lists them)\n\n"
    body += (
        claims_markdown(all_claims, trials) if all_claims else "No claim applies to these runs.\n"
    )
    atomic_write_text(out / "REPORT.md", header + body + "\n\n" + "\n".join(sections))
    return all_claims
