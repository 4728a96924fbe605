"""The fine-tuning system's experiments: the paper's Section V figures as data, one trial, and
the paper's claims (docs/finetune.md, "Claims of the paper") checked on the numbers."""

from __future__ import annotations

import itertools

import numpy as np

from mecllm.core.experiment import (
    Claim,
    Experiment,
    Row,
    Setting,
    Summary,
    TrialSpec,
    lookup,
)
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import KIND
from mecllm.systems.finetune.scenario import generate, preset

PAPER_ALGORITHMS = ("rucaa", "gucaa", "aauco", "gucro", "dashf")


def _builtin() -> dict[str, Experiment]:
    bandwidths = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    weights = [(0.1, 0.009), (0.3, 0.007), (0.5, 0.005), (0.7, 0.003), (0.9, 0.001)]
    return {
        "convergence": Experiment(
            name="convergence",
            title="Convergence of AO part 1, AO part 2 and DASHF (paper Fig. 2)",
            settings=(
                Setting("10x2", {"n_users": 10, "n_servers": 2}, 10),
                Setting("20x3", {"n_users": 20, "n_servers": 3}, 20),
            ),
            algorithms=("dashf",),
            system=KIND,
            kind="convergence",
            x_label="iteration",
        ),
        "baselines": Experiment(
            name="baselines",
            title="Delay, energy and SCR of the five algorithms (paper Fig. 3a)",
            settings=(Setting("default", {}, 0),),
            algorithms=PAPER_ALGORITHMS,
            system=KIND,
            kind="bars",
        ),
        "bandwidth": Experiment(
            name="bandwidth",
            title="SCR vs bandwidth per server (paper Fig. 3b)",
            settings=tuple(Setting(f"{b}MHz", {"bandwidth_hz": b * 1e6}, b) for b in bandwidths),
            algorithms=PAPER_ALGORITHMS,
            system=KIND,
            metrics=("scr",),
            x_label="bandwidth per server (MHz)",
        ),
        "weights": Experiment(
            name="weights",
            title="Delay, energy and SCR vs cost weights (paper Fig. 3c)",
            settings=tuple(
                Setting(f"({wt},{we})", {"weight_delay": wt, "weight_energy": we}, wt)
                for wt, we in weights
            ),
            algorithms=PAPER_ALGORITHMS,
            system=KIND,
            x_label="delay weight ω_t (energy weight ω_e = 0.01 − ω_t/100)",
        ),
    }


#: The built-in experiments; ``mecllm reproduce all`` runs every one.
EXPERIMENTS: dict[str, Experiment] = _builtin()
GROUPS: dict[str, tuple[str, ...]] = {"all": tuple(EXPERIMENTS)}


def run_trial(spec: TrialSpec, rng: np.random.Generator) -> Row:
    """Generate, solve and summarise one trial (a pure function of its spec and generator)."""
    settings = preset(spec.preset, **dict(spec.overrides))
    instance = generate(settings, rng)
    result = solve(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    history = result.history
    row: Row = {
        **spec.base_row(),
        "n_users": instance.n_users,
        "n_servers": instance.n_servers,
        "scr": result.scr,
        "delay_s": result.delay_s,
        "energy_j": result.energy_j,
        "service": result.service,
        "iterations": result.iterations,
        "status": result.status,
        "wall_time_s": result.wall_time_s,
        "y_history": [h["y"] for h in history],
        "part1_objective": [h["part1_objective"] for h in history if "part1_objective" in h],
        "part1_s": [h["part1_s"] for h in history if "part1_s" in h],
        "part2_s": [h["part2_s"] for h in history if "part2_s" in h],
        "inner_iterations": [h["inner_iterations"] for h in history if "inner_iterations" in h],
        "part2_values_first": next((h["part2_values"] for h in history if "part2_values" in h), []),
    }
    return row


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """The paper's claims that this experiment's numbers can confirm or refute."""
    if experiment.name == "convergence":
        return _convergence_claims(rows)
    if experiment.name == "baselines":
        return _baseline_claims(summary)
    if experiment.name == "bandwidth":
        return _bandwidth_claims(experiment, summary)
    if experiment.name == "weights":
        return _weight_claims(summary)
    return []


def _fmt(value: float) -> str:
    return f"{value:.4g}"


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
