"""What ``mecllm generate/solve/evaluate/compare`` do for an ``edge-air`` instance."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mecllm.core.options import SolveOptions
from mecllm.systems.air.algorithms import AIR_ALGORITHMS, get_air_algorithm
from mecllm.systems.air.evaluation import SE_SNRS_DB, AirEvaluation, evaluate_air
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.settings import air_preset
from mecllm.systems.air.solution import AirResult, load_air_plan
from mecllm.systems.protocol import OptionsFor

#: Seconds between two progress lines of the same kind.
PROGRESS_EVERY_S = 2.0


def reporter(err: Console) -> Callable[[str], None]:
    """Print progress lines to ``err``, at most one every few seconds unless the kind of line
    changes (each training epoch is always printed)."""
    last_time = [0.0]
    last_head = [""]

    def report(line: str) -> None:
        head = line.split(":")[0]
        now = time.monotonic()
        epoch = "epoch" in line
        if epoch or head != last_head[0] or now - last_time[0] >= PROGRESS_EVERY_S:
            err.print(line, highlight=False, markup=False)
            last_time[0], last_head[0] = now, head

    return report


def with_reporter(options: SolveOptions, err: Console) -> SolveOptions:
    return replace(options, extra={**options.extra, "report": reporter(err)})


def generate_air_file(
    output: Path, preset_name: str | None, seed: int, overrides: dict[str, Any], err: Console
) -> AirInstance:
    """Write an instance and generate its channels (with progress)."""
    name = preset_name or "tiny"
    settings = air_preset(name, **overrides)
    instance = AirInstance(settings=settings, seed=seed, name=f"{name}-{seed}", preset=name)
    instance.save(output)
    report = reporter(err)
    instance.data(lambda done, total: report(f"generating channels: {done}/{total} drops"))
    s = settings
    err.print(
        f"wrote {output} (edge-air, preset {name}, seed {seed}: {s.generator} CDL-{s.cdl_model}, "
        f"{s.train_drops}/{s.val_drops}/{s.test_drops} drops, {s.antennas} antennas x "
        f"{s.subcarriers} subcarriers, {s.mode}; channels in {instance.folder})",
        highlight=False,
        markup=False,
    )
    return instance


def solve_air_file(
    data: object, algorithm: str, output: Path, options: SolveOptions, err: Console
) -> AirResult:
    spec = get_air_algorithm(algorithm)
    instance = AirInstance.from_dict(data)
    result = spec.run(instance, with_reporter(options, err))
    result.save(output)
    steps = " ".join(f"{v:.2f}" for v in result.nmse_db)
    err.print(
        f"{spec.name}: NMSE per step {steps} dB (mean {result.nmse_db_mean:.2f}), fit "
        f"{result.cost.fit_s:.2f} s, {result.wall_time_s:.2f} s -> {output}",
        highlight=False,
        markup=False,
    )
    return result


def evaluation_table(report: AirEvaluation, title: str) -> Table:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("NMSE per step (dB)", " ".join(f"{v:.2f}" for v in report.nmse_db)),
        ("NMSE mean (dB)", f"{report.nmse_db_mean:.2f}"),
        ("MRT SE, 1 user, 10 dB", f"{report.se_mrt:.3f} of {report.se_mrt_perfect:.3f} (perfect)"),
    ]
    for kind in report.se_sum:
        for snr in report.se_sum[kind]:
            rows.append(
                (
                    f"{kind.upper()} sum SE, {report.users} users, {snr} dB",
                    f"{report.se_sum[kind][snr]:.3f} (outdated "
                    f"{report.se_sum_outdated[kind][snr]:.3f}, perfect "
                    f"{report.se_sum_perfect[kind][snr]:.3f})",
                )
            )
    rows += [
        ("beam top-1 / top-3", f"{report.beam_top1:.3f} / {report.beam_top3:.3f}"),
        ("beam gain lost (dB)", f"{report.beam_gain_loss_db:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def evaluate_air_file(data: object, solution_path: Path, as_json: bool, out: Console) -> bool:
    instance = AirInstance.from_dict(data)
    plan = load_air_plan(solution_path, instance)
    report = evaluate_air(instance, plan)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
        return report.feasible
    out.print(evaluation_table(report, f"Evaluation of {solution_path} ({plan.algorithm})"))
    return report.feasible


def results_table(
    results: Sequence[AirResult], reports: Sequence[AirEvaluation], title: str
) -> Table:
    table = Table(title=title)
    snr = f"{SE_SNRS_DB[1]:g}"
    horizon = len(results[0].nmse_db) if results else 0
    for name in (
        "predictor",
        *(f"NMSE {j + 1}" for j in range(horizon)),
        "NMSE mean",
        "MRT SE",
        f"ZF sum SE {snr} dB",
        f"WMMSE sum SE {snr} dB",
        "top-1",
        "fit (s)",
        "ms/drop",
    ):
        table.add_column(name, justify="left" if name == "predictor" else "right")
    best = min(r.nmse_db_mean for r in reports) if reports else None
    for r, e in zip(results, reports, strict=True):
        table.add_row(
            r.algorithm,
            *(f"{v:.2f}" for v in e.nmse_db),
            f"{e.nmse_db_mean:.2f}",
            f"{e.se_mrt:.3f}",
            f"{e.se_sum['zf'][snr]:.3f}",
            f"{e.se_sum['wmmse'][snr]:.3f}",
            f"{e.beam_top1:.3f}",
            f"{r.cost.fit_s:.2f}",
            f"{r.cost.ms_per_drop_batch256:.3g}",
            style="bold green" if e.nmse_db_mean == best else None,
        )
    return table


def compare_air(
    data: object,
    names: Sequence[str],
    options_for: OptionsFor,
    out: Console,
    err: Console,
    label: str,
) -> list[AirResult]:
    instance = AirInstance.from_dict(data)
    chosen = list(names) or [n for n in AIR_ALGORITHMS if n in DEFAULT_COMPARE]
    specs = [get_air_algorithm(n) for n in chosen]
    results, reports = [], []
    for spec in specs:
        err.print(f"solving with {spec.name} ...", highlight=False)
        result = spec.run(instance, with_reporter(options_for(spec.name), err))
        results.append(result)
        reports.append(evaluate_air(instance, result.plan))
    s = instance.settings
    out.print(
        results_table(
            results,
            reports,
            f"{label}: {s.test_drops} test drops, CDL-{s.cdl_model}, {s.mode}, "
            f"{s.speed_min_kmh:g}-{s.speed_max_kmh:g} km/h",
        )
    )
    first = reports[0] if reports else None
    if first is not None:
        out.print(
            f"bounds at {SE_SNRS_DB[1]:g} dB: ZF sum SE outdated "
            f"{first.se_sum_outdated['zf'][f'{SE_SNRS_DB[1]:g}']:.3f}, perfect "
            f"{first.se_sum_perfect['zf'][f'{SE_SNRS_DB[1]:g}']:.3f}; MRT SE perfect "
            f"{first.se_mrt_perfect:.3f}",
            highlight=False,
        )
    return results


#: What ``mecllm compare`` runs when no algorithm is named: the predictors that need no
#: training (the networks take minutes; name them to run them).
DEFAULT_COMPARE = ("air-outdated", "air-ls-ar", "air-wiener", "air-ar-kalman", "air-pad")
