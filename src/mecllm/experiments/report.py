"""Tables and CSV files from the stored rows of finished experiments (system-independent)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rich.table import Table

from mecllm.core.experiment import Claim, Experiment, Row, Summary
from mecllm.core.fileio import atomic_write_text
from mecllm.core.stats import mean_interval


def summarise(experiment: Experiment, rows: list[Row]) -> list[Summary]:
    """Aggregate rows per (setting, algorithm, metric), in the experiment's order."""
    out = []
    for setting in experiment.settings:
        for algorithm in experiment.algorithms:
            mine = [
                r for r in rows if r["setting"] == setting.label and r["algorithm"] == algorithm
            ]
            if not mine:
                continue
            for metric in (*experiment.metrics, "iterations", "wall_time_s"):
                cell = mean_interval([float(r[metric]) for r in mine])
                out.append(
                    Summary(
                        setting.label,
                        setting.x,
                        algorithm,
                        metric,
                        len(mine),
                        cell.mean,
                        cell.low,
                        cell.high,
                    )
                )
    return out


def write_csvs(
    folder: Path, experiment: Experiment, rows: list[Row], summary: list[Summary]
) -> None:
    """``NAME-trials.csv`` (one row per trial) and ``NAME.csv`` (means and 95% intervals)."""
    scalar_keys = [k for k in rows[0] if not isinstance(rows[0][k], list)] if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=scalar_keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / f"{experiment.name}-trials.csv", buffer.getvalue())
    buffer = io.StringIO()
    writer2 = csv.writer(buffer)
    writer2.writerow(
        ["setting", "x", "algorithm", "metric", "trials", "mean", "ci95_low", "ci95_high"]
    )
    for s in summary:
        writer2.writerow(
            [
                s.setting,
                s.x,
                s.algorithm,
                s.metric,
                s.n,
                f"{s.mean:.10g}",
                f"{s.low:.10g}",
                f"{s.high:.10g}",
            ]
        )
    atomic_write_text(folder / f"{experiment.name}.csv", buffer.getvalue())


def claims_markdown(claims: list[Claim], trials: int) -> str:
    """The claims as a Markdown table (no verdict below the minimum number of trials)."""
    lines = ["| experiment | claim | result | numbers |", "|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c.experiment} | {c.text} | {c.verdict(trials)} | {c.evidence} |")
    return "\n".join(lines)


def results_markdown(experiment: Experiment, summary: list[Summary]) -> str:
    """A table of means and 95% intervals ``mean [low, high]`` of the experiment's metrics."""
    metrics = experiment.metrics
    head = "| setting | algorithm | trials | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (3 + len(metrics))]
    seen = []
    for s in summary:
        if (s.setting, s.algorithm) not in seen:
            seen.append((s.setting, s.algorithm))
    for setting, algorithm in seen:
        cells = []
        n = 0
        for metric in metrics:
            cell = next(
                (
                    s
                    for s in summary
                    if (s.setting, s.algorithm, s.metric) == (setting, algorithm, metric)
                ),
                None,
            )
            if cell:
                n = cell.n
                cells.append(f"{cell.mean:.4g} [{cell.low:.4g}, {cell.high:.4g}]")
        lines.append(f"| {setting} | {algorithm} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Counts(Protocol):
    """What a run did with one experiment's trials
    (:class:`~mecllm.experiments.runner.RunCounts`)."""

    @property
    def experiment(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def computed(self) -> int: ...


def run_tables(counts: Sequence[Counts], claims: Sequence[Claim], trials: int) -> list[Table]:
    """The terminal's view of a run: trials per experiment, then the claims' verdicts."""
    table = Table(title="Trials")
    for column in ("experiment", "total", "skipped (already finished)", "computed now"):
        table.add_column(column, justify="left" if column == "experiment" else "right")
    for c in counts:
        table.add_row(c.experiment, str(c.total), str(c.skipped), str(c.computed))
    if not claims:
        return [table]
    verdicts = Table(title="Claims of the paper")
    for column in ("experiment", "claim", "result", "numbers"):
        verdicts.add_column(column)
    for claim in claims:
        verdict = claim.verdict(trials)
        colour = {"PASS": "green", "FAIL": "red"}.get(verdict, "yellow")
        verdicts.add_row(claim.experiment, claim.text, f"[{colour}]{verdict}[/]", claim.evidence)
    return [table, verdicts]
