"""One PNG per experiment: sweeps with error bars, grouped bars, convergence curves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mecllm.core.experiment import Experiment, Row, Summary
from mecllm.core.plotting import save_figure
from mecllm.core.stats import mean_interval


def plot_experiment(
    folder: Path,
    experiment: Experiment,
    rows: list[Row],
    summary: list[Summary],
    labels: Mapping[str, str],
) -> Path:
    """Draw the experiment's figure and return its path (``labels``: axis label per metric)."""
    path = folder / f"{experiment.name}.png"
    if experiment.kind == "convergence":
        _convergence(path, experiment, rows)
    elif experiment.kind == "bars":
        _bars(path, experiment, summary, labels)
    else:
        _sweep(path, experiment, summary, labels)
    return path


def _sweep(
    path: Path, experiment: Experiment, summary: list[Summary], labels: Mapping[str, str]
) -> None:
    metrics = experiment.metrics
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for algorithm in experiment.algorithms:
            cells = [s for s in summary if s.algorithm == algorithm and s.metric == metric]
            if not cells:
                continue
            ax.errorbar(
                [c.x for c in cells],
                [c.mean for c in cells],
                yerr=[[c.mean - c.low for c in cells], [c.high - c.mean for c in cells]],
                marker="o",
                capsize=3,
                label=algorithm.upper(),
            )
        ax.set_xlabel(experiment.x_label)
        ax.set_ylabel(labels.get(metric, metric))
        if metric == "energy_j":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(experiment.title + " — mean, 95% bootstrap interval")
    save_figure(fig, path)


def _bars(
    path: Path, experiment: Experiment, summary: list[Summary], labels: Mapping[str, str]
) -> None:
    metrics = experiment.metrics
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4.2), squeeze=False)
    names = [a for a in experiment.algorithms]
    for ax, metric in zip(axes[0], metrics, strict=True):
        cells = {s.algorithm: s for s in summary if s.metric == metric}
        ax.bar(
            [n.upper() for n in names],
            [cells[n].mean for n in names],
            yerr=[
                [cells[n].mean - cells[n].low for n in names],
                [cells[n].high - cells[n].mean for n in names],
            ],
            capsize=4,
            color="tab:blue",
        )
        ax.set_ylabel(labels.get(metric, metric))
        if metric == "energy_j":
            ax.set_yscale("log")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(experiment.title + " — mean, 95% bootstrap interval")
    save_figure(fig, path)


def _padded(series: list[list[float]]) -> np.ndarray:
    length = max(len(s) for s in series)
    return np.array([s + [s[-1]] * (length - len(s)) for s in series if s], dtype=float)


def _convergence(path: Path, experiment: Experiment, rows: list[Row]) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("part1_objective", "AO part 1 objective (min form)", "Dinkelbach iteration"),
        ("part2_values_first", "AO part 2 objective", "FP inner iteration"),
        ("y_history", "DASHF ratio y (SCR)", "Dinkelbach iteration"),
    )
    for ax, (key, ylabel, xlabel) in zip(axes, panels, strict=True):
        for setting in experiment.settings:
            series = [list(r[key]) for r in rows if r["setting"] == setting.label and r[key]]
            if not series:
                continue
            data = _padded(series)
            stats = [mean_interval(list(col)) for col in data.T]
            x = np.arange(1, data.shape[1] + 1)
            ax.errorbar(
                x,
                [s.mean for s in stats],
                yerr=[[s.minus for s in stats], [s.plus for s in stats]],
                marker="o",
                capsize=3,
                label=f"{setting.label} ({len(series)} trials)",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(experiment.title + " — mean, 95% bootstrap interval")
    save_figure(fig, path)
