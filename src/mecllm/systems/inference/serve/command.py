"""``mecllm serve``: the CLI's side of :mod:`mecllm.systems.inference.serve.run` and
:mod:`mecllm.systems.inference.serve.calibrate` (load and check the files, print and save the
results)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.systems.inference.commands import load_plan
from mecllm.systems.inference.instance import KIND, InferenceInstance
from mecllm.systems.inference.requests import Stream, draw, read_trace
from mecllm.systems.inference.serve.calibrate import Calibration, calibrate, calibrated_instance
from mecllm.systems.inference.serve.run import ServeResult, check_servable, parse_kills, serve_plan
from mecllm.systems.inference.solution import Placement

#: Most requests one run may replay.
MAX_SERVED = 100_000


@dataclass(frozen=True)
class ServeRequest:
    """What the user asked for (the CLI's options)."""

    requests: int | None = None
    rate: float | None = None
    seed: int = 0
    trace: Path | None = None
    calibration: Path | None = None
    warmup: int = 40
    core_share: float = 0.5
    failures: tuple[str, ...] = ()
    kills: tuple[str, ...] = ()
    logs: Path | None = None
    records: Path | None = None
    as_json: Path | None = None


def load_instance(path: Path) -> InferenceInstance:
    """An edge-inference instance file."""
    data = read_json(path, "instance")
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != KIND:
        raise InvalidInputError(f"mecllm serve runs {KIND} plans, got an instance of kind {kind!r}")
    return InferenceInstance.from_dict(data)


def request_stream(instance: InferenceInstance, request: ServeRequest) -> Stream:
    """The trace, or a stream drawn from the instance's demand (scaled to ``--rate``); with
    ``--requests K``, its first K requests (drawn over a horizon long enough to hold them)."""
    if request.rate is not None:
        if not 0.0 < request.rate <= 1e4:
            raise InvalidInputError(f"--rate must be in (0, 10000] requests/s, got {request.rate}")
        instance = instance.with_demand(request.rate)
    if request.requests is not None and not 1 <= request.requests <= MAX_SERVED:
        raise InvalidInputError(f"--requests must be in 1..{MAX_SERVED}, got {request.requests}")
    if request.trace is not None:
        stream = read_trace(request.trace, instance)
    else:
        if request.requests is not None:
            rate = instance.total_rate_per_s
            if rate <= 0:
                raise InvalidInputError("the instance's demand is zero: give --rate")
            data = instance.to_dict()
            data["horizon_s"] = (1.5 * request.requests + 30.0) / rate
            instance = InferenceInstance.from_dict(data)
        stream = draw(instance, np.random.default_rng(request.seed))
    if request.requests is not None and len(stream) > request.requests:
        k = request.requests
        stream = Stream(*(np.asarray(a)[:k] for a in _columns(stream)))
    if len(stream) > MAX_SERVED:
        raise InvalidInputError(f"the stream holds {len(stream)} requests, more than {MAX_SERVED}")
    return stream


def _columns(stream: Stream) -> tuple[Any, ...]:
    return (
        stream.arrival_s,
        stream.user,
        stream.task,
        stream.prompt_tokens,
        stream.output_tokens,
        stream.deadline_s,
    )


def trace_text(stream: Stream) -> str:
    """The stream as a trace CSV (``mecllm evaluate --trace`` replays it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arrival_s", "user", "task", "prompt_tokens", "output_tokens", "deadline_s"])
    for row in zip(*(np.asarray(a).tolist() for a in _columns(stream)), strict=True):
        writer.writerow([repr(row[0]), *row[1:5], repr(row[5])])
    return buffer.getvalue()


def plan_shards(plan: Placement | None, blocks: int) -> list[tuple[int, int]]:
    """The distinct block ranges of a plan's shards (the whole model without a plan)."""
    if plan is None:
        return [(0, blocks)]
    return sorted({(s.start, s.end) for s in plan.servers})


def calibrate_files(
    instance_path: Path | None,
    plan_path: Path | None,
    output: Path,
    out: Console,
    err: Console,
) -> Calibration:
    """``--calibrate``: measure, fit, write the calibration (and the calibrated instance)."""
    instance = load_instance(instance_path) if instance_path is not None else None
    plan = load_plan(plan_path, instance) if plan_path is not None and instance else None
    blocks = instance.blocks if instance is not None else 6
    folder = Path(tempfile.mkdtemp(prefix="mecllm-calibrate-"))
    calibration = calibrate(
        plan_shards(plan, blocks),
        blocks,
        folder,
        progress=lambda text: err.print(text, highlight=False),
    )
    calibration.save(output)
    out.print(calibration_table(calibration))
    err.print(f"wrote {output}", highlight=False)
    if instance is not None:
        fitted = calibrated_instance(instance, calibration, ServeRequest().core_share)
        target = output.with_name(output.stem + ".instance.json")
        fitted.save(target)
        err.print(
            f"wrote {target} (the instance with the served speeds, core share "
            f"{ServeRequest().core_share:g}; `mecllm evaluate` simulates plans on it)",
            highlight=False,
        )
    return calibration


def calibration_table(calibration: Calibration) -> Table:
    """Every measured step beside the fitted roofline's time."""
    table = Table(
        title=(
            f"Calibration: F = {calibration.flops_per_s / 1e9:.3g} GFLOP/s, "
            f"M = {calibration.memory_bandwidth_bps / 1e9:.3g} GB/s, "
            f"c = {calibration.block_overhead_s * 1e3:.3g} ms per request and block; hop "
            f"{calibration.hop_latency_s * 1e3:.3g} ms + {calibration.hop_bps / 1e9:.3g} Gbit/s"
        )
    )
    for column in ("shard", "step", "batch", "tokens", "measured (ms)", "model (ms)", "ratio"):
        table.add_column(column, justify="left" if column in ("shard", "step") else "right")
    for s in calibration.steps:
        table.add_row(
            s.part,
            s.kind,
            str(s.batch),
            str(s.tokens),
            f"{s.measured_s * 1e3:.2f}",
            f"{s.model_s * 1e3:.2f}",
            f"{s.model_s / s.measured_s:.2f}" if s.measured_s > 0 else "-",
        )
    return table


def serve_files(
    instance_path: Path,
    plan_path: Path,
    request: ServeRequest,
    out: Console,
    err: Console,
) -> ServeResult:
    """Serve the plan of ``plan_path`` on ``instance_path`` and print measured vs predicted."""
    instance = load_instance(instance_path)
    plan = load_plan(plan_path, instance)
    kills = parse_kills(list(request.kills), plan, list(request.failures), instance.n_nodes)
    stream = request_stream(instance, request)
    check_servable(instance, plan, stream)
    if not 0.0 < request.core_share <= 1.0:
        raise InvalidInputError(f"--core-share must be in (0, 1], got {request.core_share:g}")
    logs = request.logs or Path(tempfile.mkdtemp(prefix="mecllm-serve-"))
    logs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(logs / "stream.csv", trace_text(stream))
    calibration = None
    warmup = None
    if request.calibration is not None:
        calibration = Calibration.load(request.calibration)
    else:
        if not 1 <= request.warmup <= 10_000:
            raise InvalidInputError(f"--warmup must be in 1..10000, got {request.warmup}")
        warm = ServeRequest(requests=request.warmup, rate=request.rate, seed=request.seed + 1)
        warmup = request_stream(instance, warm)
        check_servable(instance, plan, warmup)
    records = request.records or logs / "records.jsonl"
    err.print(
        f"serving {len(stream)} requests over {len(plan.servers)} shards "
        f"(logs, stream and records in {logs})",
        highlight=False,
    )
    result = serve_plan(
        instance,
        plan,
        stream,
        calibration,
        warmup=warmup,
        core_share=request.core_share,
        kills=kills,
        seed=request.seed,
        log_dir=logs,
        records_path=records,
        progress=lambda text: err.print(text, highlight=False),
    )
    document = {
        "measured": result.measured,
        "predicted": result.predicted,
        "lost": result.lost,
        "requests": len(stream),
        "plan": plan.to_dict(),
        "node_shares": result.shares,
        "kills": [{"shard": k.server, "at_s": k.at_s} for k in result.kills],
        "calibration": result.calibration.to_dict(),
        "records": str(records),
        "logs": str(logs),
    }
    result.calibration.save(logs / "calibration.json")
    if request.as_json is not None:
        atomic_write_text(request.as_json, json.dumps(document, indent=1) + "\n")
    out.print(result_table(result, f"{plan_path}: measured vs simulated"))
    for reason, count in sorted(result.measured["rejected_by_reason"].items()):
        out.print(f"measured rejected ({count}): {reason}", markup=False)
    return result


def result_table(result: ServeResult, title: str) -> Table:
    """Measured beside predicted, with their ratio."""
    table = Table(title=title)
    for column in ("figure", "measured", "predicted", "measured / predicted"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key, name in (
        ("requests", "requests"),
        ("on_time_ratio", "on-time ratio"),
        ("late", "late"),
        ("rejected", "rejected"),
        ("lost", "lost"),
        ("p50_latency_s", "latency p50 (s)"),
        ("p95_latency_s", "latency p95 (s)"),
        ("p50_ttft_s", "time to first token p50 (s)"),
        ("tokens_per_s", "tokens/s"),
        ("failovers", "failovers"),
    ):
        m, p = result.measured.get(key), result.predicted.get(key)
        ratio = (
            f"{m / p:.3f}"
            if isinstance(m, int | float) and isinstance(p, int | float) and p
            else "-"
        )
        table.add_row(name, _show(m), _show(p), ratio)
    return table


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
