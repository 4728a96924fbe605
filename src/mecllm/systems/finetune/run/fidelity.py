"""``mecllm reproduce train-fidelity``: does a plan predict the run it drives? (docs/train.md)

On this machine, in ``OUT``:

1. ``cost.json``: ``mecllm profile`` (16 x 24 tokens a step);
2. for each scenario seed (``--seed`` and the next ``--trials - 1``): ``instance-profiled-sS.json``
   and ``instance-paper-sS.json``, one 4-user, 2-server scenario (preset ``paper``) described
   by the cost file, planned with the profiled work model and with the paper's ``6 x tokens``;
3. ``solution-*.json``: each solved by ``dashf-scale``;
4. ``run-*.json``: each plan run for real by ``mecllm train`` (all users at once, speeds held
   by time slicing, transfers shaped to the plan's rates);
5. ``REPORT.md``: a summary per seed, the checks counted over the seeds (the profiled model's
   T1, T3 and makespan within 25 % of measured; the profiled plan's measured makespan below the
   paper plan's) and every user's T1..T4 as planned and as measured under both models.

Every step's file is written atomically and kept: a second call resumes after the last one
finished (``--fresh`` starts over).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.fileio import atomic_write_text
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.profiled_scenario import profiled_instance
from mecllm.systems.finetune.run.loop import Settings
from mecllm.systems.finetune.run.profile import profile
from mecllm.systems.finetune.run.training import PHASES, train_plan
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solution import Plan

#: The experiment's scenario: users, servers, preset, algorithm.
USERS, SERVERS, PRESET, ALGORITHM = 4, 2, "paper", "dashf-scale"
MODELS = ("profiled", "paper")
#: Largest allowed |measured / predicted - 1| of the profiled model's T1, T3 and makespan.
TOLERANCE = 0.25


def _cached(path: Path, make: Callable[[], Any]) -> Any:
    """The JSON in ``path``, made (and written atomically) if it is not there yet."""
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    atomic_write_text(path, json.dumps(value, indent=1) + "\n")
    return value


def reproduce_fidelity(
    out: Path,
    seed: int,
    scenarios: int,
    *,
    fresh: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the experiment on ``scenarios`` seeds from ``seed`` (see the module docstring);
    the summary written to REPORT.md."""
    out.mkdir(parents=True, exist_ok=True)
    if fresh:
        for old in out.glob("*.json"):
            old.unlink()
    cost = _cached(
        out / "cost.json",
        lambda: profile(seq_len=24, batch=16, bottleneck=16, repeats=5, progress=progress),
    )
    summaries = {}
    for s in range(seed, seed + scenarios):
        runs: dict[str, dict[str, Any]] = {}
        for model in MODELS:
            rng = np.random.default_rng(s)
            base = generate(preset(PRESET, n_users=USERS, n_servers=SERVERS), rng)
            instance = profiled_instance(base, cost, rng, model)
            tag = f"{model}-s{s}"
            _cached(out / f"instance-{tag}.json", instance.to_dict)
            solution = _cached(out / f"solution-{tag}.json", _solver(instance))
            plan = Plan.from_dict(solution, instance.n_users, instance.n_servers)
            progress(f"seed {s}: running the plan made with the {model} model ...")
            runs[model] = _cached(
                out / f"run-{tag}.json",
                _runner(instance, plan, Settings(seed=s), out / f"logs-{tag}", progress),
            )
        summaries[s] = summarise(runs)
    atomic_write_text(out / "REPORT.md", report(summaries))
    return {"seeds": summaries, "checks": overall_checks(summaries)}


def _solver(instance: Instance) -> Callable[[], dict[str, Any]]:
    return lambda: solve(instance, ALGORITHM).to_dict()


def _runner(
    instance: Instance,
    plan: Plan,
    settings: Settings,
    logs: Path,
    progress: Callable[[str], None],
) -> Callable[[], dict[str, Any]]:
    return lambda: train_plan(instance, plan, settings, log_dir=logs, progress=progress)


def _ratio(predicted: float | None, measured: float) -> float | None:
    if predicted is None or predicted <= 0:
        return None
    return measured / predicted


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per model: per user and phase the ratio measured / predicted, the makespans; checks."""
    out: dict[str, Any] = {}
    for model, run in runs.items():
        users = []
        for r in run["users"]:
            if "error" in r:
                users.append({"user": r["user"], "error": r["error"]})
                continue
            users.append(
                {
                    "user": r["user"],
                    "phi_realised": r["phi_realised"],
                    "predicted": r["predicted"],
                    "measured": r["measured"],
                    "ratio": {p: _ratio(r["predicted"][p], r["measured"][p]) for p in PHASES},
                }
            )
        span = run["makespan_s"]
        out[model] = {
            "users": users,
            "makespan_s": span,
            "makespan_ratio": _ratio(span["predicted"], span["measured"] or 0.0),
        }
    profiled = out["profiled"]
    within = [
        abs(ratio - 1.0) <= TOLERANCE
        for u in profiled["users"]
        if "error" not in u
        for p in ("T1_s", "T3_s")
        if (ratio := u["ratio"][p]) is not None
    ]
    makespan_ok = (
        profiled["makespan_ratio"] is not None
        and abs(profiled["makespan_ratio"] - 1.0) <= TOLERANCE
    )
    measured = {m: out[m]["makespan_s"]["measured"] for m in MODELS}
    out["checks"] = {
        "profiled_T1_T3_within_25pct": bool(within) and all(within),
        "profiled_makespan_within_25pct": makespan_ok,
        "profiled_plan_faster": None not in measured.values()
        and measured["profiled"] < measured["paper"],
    }
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def overall_checks(summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The checks over every scenario: counts of scenarios that pass each."""
    return {
        name: sum(bool(summary["checks"][name]) for summary in summaries.values())
        for name in next(iter(summaries.values()))["checks"]
    } | {"scenarios": len(summaries)}


def _seed_section(seed: int, summary: dict[str, Any]) -> list[str]:
    lines = [f"## Seed {seed}", ""]
    for model in MODELS:
        part = summary[model]
        span = part["makespan_s"]
        lines += [
            f"Plan made with the **{model}** work model:",
            "",
            "| user | phi | "
            + " | ".join(f"{p[:2]} plan | {p[:2]} run | run/plan" for p in PHASES)
            + " |",
            "|---:|---:|" + "---:|---:|---:|" * len(PHASES),
        ]
        for u in part["users"]:
            if "error" in u:
                lines.append(f"| {u['user']} | failed: {u['error']} |")
                continue
            cells = [str(u["user"]), f"{u['phi_realised']:.3f}"]
            for p in PHASES:
                cells += [_cell(u["predicted"][p]), _cell(u["measured"][p]), _cell(u["ratio"][p])]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Makespan: planned {_cell(span['predicted'])} s, measured "
            f"{_cell(span['measured'])} s (run/plan {_cell(part['makespan_ratio'])}).",
            "",
        ]
    return lines


def report(summaries: dict[int, dict[str, Any]]) -> str:
    """REPORT.md: a summary table, the checks, then every scenario's phase tables."""
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        "# train-fidelity: planned vs measured phases of real runs",
        "",
        f"{USERS} users, {SERVERS} servers, preset `{PRESET}`, plans by `{ALGORITHM}`; "
        "predictions at the realised split k / 6; measured on this machine with speeds held "
        "by time slicing and transfers shaped to the plan's rates (docs/train.md).",
        "",
        "| seed | profiled plan: planned / measured makespan (s) | run/plan | paper plan: "
        "planned / measured makespan (s) | run/plan | T1, T3 within 25 % | faster plan |",
        "|---:|---:|---:|---:|---:|:---:|:---:|",
    ]
    for seed, summary in summaries.items():
        prof, paper = summary["profiled"], summary["paper"]
        faster = "profiled" if summary["checks"]["profiled_plan_faster"] else "paper"
        lines.append(
            f"| {seed} | {_cell(prof['makespan_s']['predicted'])} / "
            f"{_cell(prof['makespan_s']['measured'])} | {_cell(prof['makespan_ratio'])} | "
            f"{_cell(paper['makespan_s']['predicted'])} / "
            f"{_cell(paper['makespan_s']['measured'])} | {_cell(paper['makespan_ratio'])} | "
            f"{verdict[summary['checks']['profiled_T1_T3_within_25pct']]} | {faster} |"
        )
    counts = overall_checks(summaries)
    total = counts["scenarios"]
    lines += [
        "",
        "## Checks",
        "",
        f"- Profiled model, T1 and T3 of every user within 25 %: "
        f"{counts['profiled_T1_T3_within_25pct']} of {total} scenarios",
        f"- Profiled model, makespan within 25 %: "
        f"{counts['profiled_makespan_within_25pct']} of {total} scenarios",
        f"- The profiled plan's measured makespan below the paper plan's: "
        f"{counts['profiled_plan_faster']} of {total} scenarios",
        "",
    ]
    for seed, summary in summaries.items():
        lines += _seed_section(seed, summary)
    return "\n".join(lines)
