"""Tables, figures and REPORT.md from the stored rows of finished experiments."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mecllm.experiments.definitions import Experiment
from mecllm.fileio import atomic_write_text

Row = dict[str, Any]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval (0 with fewer than two values)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1)
    return float(data.mean()), float(half / math.sqrt(data.size))


@dataclass(frozen=True)
class Summary:
    """Mean and 95% half-width of one metric for (setting, algorithm)."""

    setting: str
    x: float
    algorithm: str
    metric: str
    n: int
    mean: float
    half: float


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
                mean, half = mean_ci([float(r[metric]) for r in mine])
                out.append(
                    Summary(setting.label, setting.x, algorithm, metric, len(mine), mean, half)
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
    writer2.writerow(["setting", "x", "algorithm", "metric", "trials", "mean", "ci95_half"])
    for s in summary:
        writer2.writerow(
            [s.setting, s.x, s.algorithm, s.metric, s.n, f"{s.mean:.10g}", f"{s.half:.6g}"]
        )
    atomic_write_text(folder / f"{experiment.name}.csv", buffer.getvalue())


def lookup(summary: list[Summary], setting: str, algorithm: str, metric: str) -> float:
    """The mean of one cell (nan when absent)."""
    for s in summary:
        if (s.setting, s.algorithm, s.metric) == (setting, algorithm, metric):
            return s.mean
    return math.nan


# ----------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    """One claim of MODEL.md section 9, checked against the measured numbers."""

    experiment: str
    text: str
    passed: bool
    evidence: str


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """The section-9 claims that this experiment's numbers can confirm or refute."""
    if experiment.name == "convergence":
        return _convergence_claims(rows)
    if experiment.name == "baselines":
        return _baseline_claims(summary)
    if experiment.name == "bandwidth":
        return _bandwidth_claims(experiment, summary)
    if experiment.name == "weights":
        return _weight_claims(summary)
    if experiment.name == "secure-methods":
        return _secure_claims(rows)
    return []


def _secure_claims(rows: list[Row]) -> list[Claim]:
    """The secure paper's abstract: the method "outperforms baselines in energy, delay, and the
    overall utility-cost ratio", checked per metric on the seeds' means and per seed."""
    ours = "secure-ao"
    baselines = sorted({r["algorithm"] for r in rows} - {ours})
    by_seed: dict[tuple[str, int], Row] = {(r["algorithm"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if r["algorithm"] == ours})
    claims = []
    for metric, better, word in (
        ("us_ratio", 1, "a higher U/S"),
        ("energy_j", -1, "a lower energy"),
        ("delay_s", -1, "a lower delay"),
    ):
        wins, total, lost = 0, 0, []
        for b in baselines:
            for seed in seeds:
                mine, theirs = by_seed.get((ours, seed)), by_seed.get((b, seed))
                if mine is None or theirs is None:
                    continue
                total += 1
                if better * (mine[metric] - theirs[metric]) >= -1e-9 * abs(theirs[metric]):
                    wins += 1
                elif b not in lost:
                    lost.append(b)
        mean = {a: float(np.mean([r[metric] for r in rows if r["algorithm"] == a])) for a in
                [ours, *baselines]}  # fmt: skip
        claims.append(
            Claim(
                "secure-methods",
                f"secure-ao has {word} than every baseline",
                wins == total and total > 0,
                f"{wins}/{total} (baseline, seed) pairs; means: "
                + ", ".join(f"{a} {_fmt(v)}" for a, v in mean.items())
                + (f"; loses to {', '.join(lost)} on some seeds" if lost else ""),
            )
        )
    blind = [r for r in rows if r["algorithm"] == "secure-blind"]
    mine_rows = [r for r in rows if r["algorithm"] == ours]
    leaks = sum(1 for r in blind if r["floor_violations"] > 0)
    claims.append(
        Claim(
            "secure-methods",
            "ignoring the eavesdropper breaks the secrecy floor; the secure plan never does",
            leaks > 0 and all(r["floor_violations"] == 0 for r in mine_rows),
            f"secure-blind breaks it on {leaks}/{len(blind)} seeds "
            f"({sum(r['floor_violations'] for r in blind)} owner-plans); secure-ao on "
            f"{sum(1 for r in mine_rows if r['floor_violations'] > 0)}/{len(mine_rows)}",
        )
    )
    return claims


def _convergence_claims(rows: list[Row]) -> list[Claim]:
    claims = []
    for label in sorted({r["setting"] for r in rows}):
        mine = [r for r in rows if r["setting"] == label]
        outer = max(len(r["y_history"]) for r in mine)
        inner = max((max(r["inner_iterations"]) for r in mine if r["inner_iterations"]), default=0)
        claims.append(
            Claim(
                "convergence",
                f"{label}: AO part 1 within 15, AO part 2 within 9, DASHF within 9 iterations",
                outer <= 9 and inner <= 9,
                f"largest over {len(mine)} trials: DASHF (and its part-1 loop) {outer} outer "
                f"iterations, part 2 {inner} inner iterations",
            )
        )
        p1 = float(np.mean([np.mean(r["part1_s"]) for r in mine if r["part1_s"]]))
        p2 = float(np.mean([np.mean(r["part2_s"]) for r in mine if r["part2_s"]]))
        claims.append(
            Claim(
                "convergence",
                f"{label}: the relaxation (part 1) is the step that limits scale",
                p1 > p2,
                f"mean time per iteration: part 1 {p1:.3f} s, part 2 {p2:.3f} s "
                "(part 1 solves the SDR in chordal form; dashf-fullsdr times the dense form)",
            )
        )
    return claims


def _baseline_claims(summary: list[Summary]) -> list[Claim]:
    def scr(a: str) -> float:
        return lookup(summary, "default", a, "scr")

    order = ["dashf", "aauco", "gucro"]
    values = {a: scr(a) for a in ("dashf", "aauco", "gucro", "rucaa", "gucaa")}
    chain = (
        values["dashf"] > values["aauco"] > values["gucro"] > max(values["rucaa"], values["gucaa"])
    )
    claims = [
        Claim(
            "baselines",
            "SCR order DASHF > AAUCO > GUCRO > {RUCAA, GUCAA}",
            chain,
            ", ".join(f"{a.upper()} {_fmt(values[a])}" for a in [*order, "rucaa", "gucaa"]),
        )
    ]
    delays = {a: lookup(summary, "default", a, "delay_s") for a in values}
    lowest = min(delays, key=lambda a: delays[a])
    claims.append(
        Claim(
            "baselines",
            "DASHF has the lowest delay",
            lowest == "dashf",
            ", ".join(f"{a.upper()} {_fmt(v)} s" for a, v in delays.items()),
        )
    )
    e_d = lookup(summary, "default", "dashf", "energy_j")
    e_a = lookup(summary, "default", "aauco", "energy_j")
    claims.append(
        Claim(
            "baselines",
            "DASHF's energy is slightly above AAUCO's",
            e_a < e_d <= 1.5 * e_a,
            f"DASHF {_fmt(e_d)} J, AAUCO {_fmt(e_a)} J",
        )
    )
    return claims


def _bandwidth_claims(experiment: Experiment, summary: list[Summary]) -> list[Claim]:
    labels = [s.label for s in experiment.settings]
    dashf = [lookup(summary, label, "dashf", "scr") for label in labels]
    rising = all(b >= a for a, b in itertools.pairwise(dashf))
    on_top = all(
        lookup(summary, label, "dashf", "scr")
        >= max(lookup(summary, label, a, "scr") for a in experiment.algorithms)
        for label in labels
    )
    return [
        Claim(
            "bandwidth",
            "SCR rises with bandwidth 10 -> 100 MHz (DASHF)",
            rising,
            "DASHF mean SCR: "
            + ", ".join(f"{la} {_fmt(v)}" for la, v in zip(labels, dashf, strict=True)),
        ),
        Claim(
            "bandwidth",
            "DASHF stays on top at every bandwidth",
            on_top,
            "compared with the mean SCR of every other algorithm at each point",
        ),
    ]


def _weight_claims(summary: list[Summary]) -> list[Claim]:
    low, high = "(0.1,0.009)", "(0.5,0.005)"
    d = {w: lookup(summary, w, "dashf", "delay_s") for w in (low, high)}
    e = {w: lookup(summary, w, "dashf", "energy_j") for w in (low, high)}
    s = {w: lookup(summary, w, "dashf", "scr") for w in (low, high)}
    return [
        Claim(
            "weights",
            "(0.1, 0.009) gives lower energy and higher delay than (0.5, 0.005)",
            e[low] < e[high] and d[low] > d[high],
            f"DASHF energy {_fmt(e[low])} vs {_fmt(e[high])} J, delay {_fmt(d[low])} vs "
            f"{_fmt(d[high])} s",
        ),
        Claim(
            "weights",
            "(0.5, 0.005) gives a higher SCR than (0.1, 0.009)",
            s[high] > s[low],
            f"DASHF SCR {_fmt(s[high])} vs {_fmt(s[low])}",
        ),
    ]


def claims_markdown(claims: list[Claim]) -> str:
    """The claims as a Markdown table."""
    lines = ["| experiment | claim | result | numbers |", "|---|---|---|---|"]
    for c in claims:
        lines.append(
            f"| {c.experiment} | {c.text} | {'PASS' if c.passed else 'FAIL'} | {c.evidence} |"
        )
    return "\n".join(lines)


def results_markdown(experiment: Experiment, summary: list[Summary]) -> str:
    """A table of means ± 95% half-widths of the experiment's metrics."""
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
                cells.append(f"{cell.mean:.4g} ± {cell.half:.2g}")
        lines.append(f"| {setting} | {algorithm} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
