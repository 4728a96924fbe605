"""The edge-inference experiments: on-time ratio and tail latency against offered load, the
number of nodes, the deadline and the model size, and one node failing mid-run (R = 1 vs R = 2);
one trial; and the claims checked on them (docs/inference.md section 6)."""

from __future__ import annotations

import time

import numpy as np

from mecllm.core.experiment import Claim, Experiment, Row, Setting, Summary, TrialSpec, lookup
from mecllm.core.options import SolveOptions
from mecllm.systems.inference.algorithms import solve
from mecllm.systems.inference.failures import Failure
from mecllm.systems.inference.instance import KIND
from mecllm.systems.inference.requests import draw
from mecllm.systems.inference.scenario import generate, preset
from mecllm.systems.inference.simulator import simulate

PLANNERS = (
    "infer-planner",
    "infer-monolithic",
    "infer-exo",
    "infer-petals",
    "infer-edgeshard",
    "infer-random",
)
METRICS = ("on_time_ratio", "p95_latency_s", "tokens_per_s")
#: Settings only the trials read (the scenario draws no failure): which node fails, and when
#: (as a share of the horizon).
FAILURE_KEYS = ("fail_node", "fail_at_share")


def _builtin() -> dict[str, Experiment]:
    loads = (2, 4, 8, 12, 16, 24, 32)
    return {
        "inference-load": Experiment(
            name="inference-load",
            title="Edge inference: on-time ratio, p95 latency and tokens/s vs offered load",
            settings=tuple(Setting(f"{r}/s", {"total_rate_per_s": float(r)}, r) for r in loads),
            algorithms=PLANNERS,
            metrics=METRICS,
            x_label="offered load (requests/s, all users)",
            system=KIND,
        ),
        "inference-nodes": Experiment(
            name="inference-nodes",
            title="Edge inference: vs number of medium nodes (default load)",
            settings=tuple(Setting(f"{k} medium", {"n_medium": k}, k) for k in (0, 2, 4, 6, 8)),
            algorithms=PLANNERS,
            metrics=METRICS,
            x_label="medium nodes (besides 1 strong and 4 weak)",
            system=KIND,
        ),
        "inference-deadline": Experiment(
            name="inference-deadline",
            title="Edge inference: vs deadline (uniform in [d/10, d])",
            settings=tuple(
                Setting(f"{d}s", {"deadline_max_s": float(d), "deadline_min_s": d / 10}, d)
                for d in (5, 10, 20, 40)
            ),
            algorithms=PLANNERS,
            metrics=METRICS,
            x_label="largest deadline d (s)",
            system=KIND,
        ),
        "inference-model": Experiment(
            name="inference-model",
            title="Edge inference: vs model size (blocks of the 13B model's size)",
            settings=tuple(Setting(f"{b} blocks", {"blocks": b}, b) for b in (20, 30, 40, 50)),
            algorithms=PLANNERS,
            metrics=METRICS,
            x_label="blocks (0.634 GB each)",
            system=KIND,
        ),
        "inference-failure": Experiment(
            name="inference-failure",
            title="Edge inference: a node fails mid-run (R = 1 vs R = 2)",
            settings=(
                Setting("no failure", {}, 0),
                Setting("strong node fails", {"fail_node": 0, "fail_at_share": 0.5}, 1),
                Setting("medium node fails", {"fail_node": 1, "fail_at_share": 0.5}, 2),
            ),
            algorithms=("infer-planner", "infer-planner-r2", "infer-monolithic"),
            metrics=(*METRICS, "failovers", "lost"),
            x_label="0: no failure, 1: the strong node fails, 2: a medium node fails (mid-run)",
            system=KIND,
        ),
    }


EXPERIMENTS: dict[str, Experiment] = _builtin()
GROUPS: dict[str, tuple[str, ...]] = {"inference": tuple(EXPERIMENTS)}


def run_trial(spec: TrialSpec, rng: np.random.Generator) -> Row:
    """Draw the instance and its stream, plan, simulate (with the setting's failure)."""
    overrides = dict(spec.overrides)
    fail = {k: overrides.pop(k) for k in FAILURE_KEYS if k in overrides}
    instance = generate(preset(spec.preset, **overrides), rng)
    stream = draw(instance, rng)
    started = time.perf_counter()
    result = solve(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    plan_s = time.perf_counter() - started
    failures: tuple[Failure, ...] = ()
    if fail:
        failures = (Failure(int(fail["fail_node"]), fail["fail_at_share"] * instance.horizon_s),)
    started = time.perf_counter()
    report = simulate(instance, result.plan, stream, failures)
    return {
        **spec.base_row(),
        "requests": report.requests,
        "on_time_ratio": report.on_time_ratio,
        "late": report.late,
        "rejected": report.rejected,
        "lost": report.lost,
        "p50_latency_s": report.latency_p50_s,
        "p95_latency_s": report.latency_p95_s,
        "tokens_per_s": report.tokens_per_s,
        "energy_j": report.energy_j,
        "failovers": report.failovers,
        "plan_s": plan_s,
        "simulation_s": time.perf_counter() - started,
        "wall_time_s": plan_s,
        "iterations": 0,
    }


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """Ours (the issue's): the planner's on-time ratio is at least every baseline's at every
    load; with R = 2 no request is lost when a node fails."""
    if experiment.name == "inference-load":
        worst = []
        for setting in experiment.settings:
            mine = lookup(summary, setting.label, "infer-planner", "on_time_ratio")
            best_other = max(
                lookup(summary, setting.label, a, "on_time_ratio")
                for a in experiment.algorithms
                if a != "infer-planner"
            )
            worst.append((mine - best_other, setting.label, mine, best_other))
        gap, label, mine, other = min(worst)
        return [
            Claim(
                experiment.name,
                "the planner's mean on-time ratio is at least every baseline's at every load",
                gap >= -1e-9,
                f"smallest margin {gap:+.4f} at {label} (planner {mine:.4f}, best baseline "
                f"{other:.4f})",
            )
        ]
    if experiment.name == "inference-failure":
        lost = sum(int(r["lost"]) for r in rows)
        return [
            Claim(
                experiment.name,
                "no request is lost when a node fails (each ends on time, late or rejected)",
                lost == 0,
                f"{lost} lost over {len(rows)} trials",
            )
        ]
    return []
