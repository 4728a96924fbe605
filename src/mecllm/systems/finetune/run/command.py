"""``mecllm train INSTANCE SOLUTION``: load a fine-tuning plan, run it for real, print and save
the records (the CLI's side of :mod:`mecllm.systems.finetune.run.training`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from mecllm.core.conditions import Conditions
from mecllm.core.conditions import measure as measure_conditions
from mecllm.core.errors import InfeasiblePlanError, InvalidInputError, SolverError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.systems.finetune.commands import load_solution
from mecllm.systems.finetune.instance import KIND, Instance
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.run.loop import Settings
from mecllm.systems.finetune.run.report import phases_table, records_table, split_table, sweep_table
from mecllm.systems.finetune.run.training import Mode, split_sweep, train_plan


def train_files(
    instance_path: Path,
    solution_path: Path,
    settings: Settings,
    logs: Path | None,
    json_path: Path | None,
    out: Console,
    err: Console,
    *,
    predict: bool = False,
    sizes_given: list[str] | None = None,
    mode: Mode = "adapters",
    splits: list[int] | None = None,
) -> None:
    """Train the plan of ``solution_path`` on ``instance_path`` (a fine-tuning instance)."""
    data = read_json(instance_path, "instance")
    kind = data.get("kind", KIND) if isinstance(data, dict) else KIND
    if kind != KIND:
        raise InvalidInputError(f"mecllm train runs {KIND} plans, got an instance of kind {kind!r}")
    instance = Instance.from_dict(data)
    if instance.profile is not None and sizes_given:
        raise InvalidInputError(
            f"{' and '.join(sizes_given)} cannot be given for a profiled instance: its profile "
            "sets each user's data and the instance its epochs"
        )
    plan, _ = load_solution(solution_path, instance)
    report = evaluate(instance, plan)
    if not report.feasible:
        raise InfeasiblePlanError(
            f"the plan in {solution_path} is infeasible ({report.violations[0].message}; "
            f"{len(report.violations)} violations in all, `mecllm evaluate` lists them); "
            "nothing was started"
        )

    def progress(text: str) -> None:
        err.print(text, highlight=False)

    for line in condition_warnings(instance.profile.conditions if instance.profile else None):
        err.print(line, style="yellow", highlight=False)

    if splits:
        sweep = split_sweep(instance, plan, settings, splits, log_dir=logs, progress=progress)
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(sweep, indent=1) + "\n")
        for row in sweep["splits"]:
            out.print(split_table(row))
        out.print(sweep_table(sweep))
        _raise_failures([u for row in sweep["splits"] for u in row["users"]])
        return
    run = train_plan(instance, plan, settings, log_dir=logs, progress=progress, mode=mode)
    if mode == "split":
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(run, indent=1) + "\n")
        out.print(split_table(run))
        _raise_failures(run["users"])
        return
    if json_path is not None:  # also when some users failed: the finished ones are kept
        atomic_write_text(json_path, json.dumps(run, indent=1) + "\n")
    records = run["users"]
    finished = [r for r in records if "error" not in r]
    for line in overrun_warnings(finished):
        err.print(line, style="yellow", highlight=False)
    for table in records_table(finished) if finished else []:
        out.print(table)
    if predict and finished:
        out.print(phases_table(run))
    _raise_failures(records)


#: A paced thread this much behind its plan's time at its last step is reported.
OVERRUN_REPORTED = 1.10


def condition_warnings(recorded: Conditions | None, now: Conditions | None = None) -> list[str]:
    """Lines saying how this moment differs from the profile's conditions (none if it does not
    or nothing was recorded)."""
    if recorded is None:
        return []
    found = recorded.differences(now or measure_conditions())
    if not found:
        return []
    return [
        "warning: the profile behind this plan was measured under other conditions: "
        + "; ".join(found)
        + ". The run paces itself by its own FLOPs, so a machine at least as fast holds the "
        "plan; a slower or busier one runs behind it (each thread's overrun is reported)."
    ]


def overrun_warnings(records: list[dict[str, Any]]) -> list[str]:
    """Lines naming the users whose paced training fell behind its planned speed."""
    late = [
        f"user {r['user']} ({side}) {r[f'{side}_pace_overrun']:.2f}x"
        for r in records
        for side in ("user", "server")
        if float(r.get(f"{side}_pace_overrun", 1.0)) > OVERRUN_REPORTED
    ]
    if not late:
        return []
    return [
        f"warning: {len(late)} paced training phase(s) ran behind the plan's speed ("
        + ", ".join(late[:5])
        + (f", {len(late) - 5} more" if len(late) > 5 else "")
        + "): this machine, as loaded now, is slower than the plan assumes; "
        "`mecllm profile` here and plan again"
    ]


def _raise_failures(records: list[dict[str, Any]]) -> None:
    failed = [r for r in records if "error" in r]
    if failed:
        raise SolverError(
            f"{len(failed)} of {len(records)} users failed: "
            + "; ".join(r["error"] for r in failed)
        )
