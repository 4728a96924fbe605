"""``mecllm serve INSTANCE PLAN``: start a plan's shard services, replay a request stream through
the gateway, record every request, and set the measured figures beside the simulator's
prediction for the same plan and stream (docs/serving.md section 4).

Every process started here is tied to this one (it dies with it, also on SIGKILL) and stopped
before :func:`serve_plan` returns, also on Ctrl-C or SIGTERM. Each finished request is appended
to the records file (JSON lines) as it ends, so a killed run keeps what it finished.
"""

from __future__ import annotations

import json
import math
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.systems.inference.failures import Failure, parse_failures, parse_times
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.requests import Stream
from mecllm.systems.inference.serve.calibrate import (
    Calibration,
    calibrate,
    calibrated_instance,
    fit_in_service,
    measure_hop,
    node_shares,
)
from mecllm.systems.inference.serve.gateway import Gateway, Record
from mecllm.systems.inference.serve.shard import SERVICE, TOKEN_ENV
from mecllm.systems.inference.simulator import check_memory, simulate
from mecllm.systems.inference.solution import Placement
from mecllm.transport.rpc import Client
from mecllm.transport.service import ServiceError, ServiceProcess
from mecllm.transport.tensors import decode, encode

#: Positions of the served model (MiniLM's position table).
MAX_CONTEXT = 512
#: After the last arrival, how long the run waits for requests still in flight, beyond the
#: latest deadline, s.
DRAIN_GRACE_S = 60.0
#: Token ids of the random prompts (MiniLM's vocabulary without its special tokens).
PROMPT_IDS = (1000, 30000)


@dataclass(frozen=True)
class Kill:
    """Shard ``server`` (an index into the plan's servers) is killed ``at_s`` into the run."""

    server: int
    at_s: float


@dataclass
class ServeResult:
    """The measured and predicted figures, the records and what was run."""

    measured: dict[str, Any]
    predicted: dict[str, Any]
    records: list[Record]
    shares: list[float]
    calibration: Calibration
    kills: list[Kill] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Requests with neither an answer nor a reason."""
        return int(self.measured["lost"])


def check_servable(instance: InferenceInstance, plan: Placement, stream: Stream) -> None:
    """Refuse what the run cannot carry out, before anything starts."""
    if plan.routing != "chains":
        raise InvalidInputError(
            "mecllm serve runs plans routed by chains; this plan is routed by shortest path"
        )
    violations = check_memory(instance, plan)
    if violations:
        raise InvalidInputError(f"the plan does not fit: {violations[0].message}")
    if len(stream) == 0:
        raise InvalidInputError("the request stream is empty: nothing to serve")
    longest = int((stream.prompt_tokens + stream.output_tokens).max())
    if longest > MAX_CONTEXT:
        raise InvalidInputError(
            f"a request needs a context of {longest} tokens; the served model has "
            f"{MAX_CONTEXT} positions"
        )


def parse_kills(
    items: list[str], plan: Placement, failures: list[str] | None = None, n_nodes: int = 0
) -> list[Kill]:
    """The shards to kill: ``--kill SERVER@SECONDS`` items (server: an index into the plan's
    servers) and ``--fail NODE@SECONDS`` items (every shard on the node, as the simulator
    fails a node)."""
    out = [
        Kill(k, failure.time_s)
        for failure in parse_failures(failures or [], n_nodes)
        for k, server in enumerate(plan.servers)
        if server.node == failure.node
    ]
    out += [Kill(k, when) for k, when in parse_times(items, "--kill", "SHARD", len(plan.servers))]
    return out


def summarise(records: list[Record], requests: int) -> dict[str, Any]:
    """The measured figures, with the simulator report's names and definitions."""
    finished = [r for r in records if r.outcome in ("on_time", "late")]
    latency = [r.latency_s for r in finished]
    ttft = [r.first_token_s - r.arrival_s for r in finished if math.isfinite(r.first_token_s)]
    ends = [r.finish_s for r in records if math.isfinite(r.finish_s)]
    start = min((r.arrival_s for r in records), default=0.0)
    span = max(max(ends, default=start) - start, 1e-9)
    reasons: dict[str, int] = {}
    for r in records:
        if r.outcome in ("rejected", "failed"):
            reasons[r.reason] = reasons.get(r.reason, 0) + 1

    def pct(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    on_time = sum(r.outcome == "on_time" for r in records)
    return {
        "requests": requests,
        "on_time_ratio": on_time / requests if requests else 0.0,
        "on_time": on_time,
        "late": sum(r.outcome == "late" for r in records),
        "rejected": sum(r.outcome in ("rejected", "failed") for r in records),
        "lost": requests - len(records),
        "rejected_by_reason": reasons,
        "p50_latency_s": pct(latency, 50),
        "p95_latency_s": pct(latency, 95),
        "p99_latency_s": pct(latency, 99),
        "p50_ttft_s": pct(ttft, 50),
        "p95_ttft_s": pct(ttft, 95),
        "tokens_per_s": sum(len(r.tokens) for r in finished) / span if finished else 0.0,
        "span_s": span,
        "failovers": sum(r.failovers for r in records),
    }


_PREDICTED = (
    "requests",
    "on_time_ratio",
    "on_time",
    "late",
    "rejected",
    "lost",
    "rejected_by_reason",
    "p50_latency_s",
    "p95_latency_s",
    "p99_latency_s",
    "p50_ttft_s",
    "p95_ttft_s",
    "tokens_per_s",
    "span_s",
    "failovers",
)


def predict(
    instance: InferenceInstance, plan: Placement, stream: Stream, kills: list[Kill]
) -> dict[str, Any]:
    """The simulator's figures for the same plan and stream (a killed shard: its node fails)."""
    failures = tuple(Failure(plan.servers[k.server].node, k.at_s) for k in kills)
    report = simulate(instance, plan, stream, failures).to_dict()
    return {key: report[key] for key in _PREDICTED}


def serve_plan(
    instance: InferenceInstance,
    plan: Placement,
    stream: Stream,
    calibration: Calibration | None,
    *,
    warmup: Stream | None = None,
    core_share: float,
    kills: list[Kill],
    seed: int,
    log_dir: Path,
    records_path: Path,
    progress: Callable[[str], None] | None = None,
) -> ServeResult:
    """Serve ``stream`` on ``plan`` for real and predict it (see the module docstring).

    With ``calibration`` None, the shards first serve ``warmup`` (another stream of the same
    demand), and the node speeds are fitted to the steps they took (in service, with the
    contention of the run itself: docs/serving.md section 3); the prediction is made before the
    measured stream starts."""
    check_servable(instance, plan, stream)
    if not 0.0 < core_share <= 1.0:
        raise InvalidInputError(f"--core-share must be in (0, 1], got {core_share:g}")
    if calibration is None and warmup is None:
        raise ValueError("give a calibration or a warm-up stream")
    shares = node_shares(instance, core_share)
    log_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    services: dict[int, ServiceProcess] = {}
    records: list[Record] = []
    try:
        for k, server in enumerate(plan.servers):
            if progress:
                progress(
                    f"starting shard {k}: blocks [{server.start}, {server.end}) on node "
                    f"{server.node} (share {shares[server.node]:.2f} of a core)"
                )
            try:
                services[k] = ServiceProcess(
                    "mecllm.systems.inference.serve.shard",
                    [
                        "--start",
                        str(server.start),
                        "--end",
                        str(server.end),
                        "--blocks",
                        str(instance.blocks),
                        "--max-batch",
                        str(instance.max_batch),
                        "--share",
                        f"{shares[server.node]:.6f}",
                    ],
                    TOKEN_ENV,
                    token,
                    log_dir / f"shard-{k}.log",
                )
            except ServiceError as exc:
                raise SolverError(f"shard {k}: {exc}") from None
        if calibration is None:
            assert warmup is not None
            if progress:
                progress("calibrating each shard alone (the warm-up's routing uses it)")
            first_guess = calibrate(
                sorted({(s.start, s.end) for s in plan.servers}), instance.blocks, log_dir
            )
            trips: list[float] = []
            if progress:
                progress(f"warm-up: {len(warmup)} requests to calibrate the node speeds in service")
            _replay(
                plan,
                calibrated_instance(instance, first_guess, core_share),
                warmup,
                services,
                token,
                [],
                seed + 1,
                log_dir / "warmup.jsonl",
                progress,
                trips,
            )
            calibration = _fit_from_services(plan, instance, services, token, trips)
            if progress:
                progress(
                    f"calibrated in service: F = {calibration.flops_per_s / 1e9:.3g} GFLOP/s, "
                    f"M = {calibration.memory_bandwidth_bps / 1e9:.3g} GB/s, c = "
                    f"{calibration.block_overhead_s * 1e3:.3g} ms per request and block (one core)"
                )
        fitted = calibrated_instance(instance, calibration, core_share)
        predicted = predict(fitted, plan, stream, kills)
        records = _replay(
            plan,
            fitted,
            stream,
            services,
            token,
            kills,
            seed,
            records_path,
            progress,
        )
    finally:
        for service in services.values():
            service.stop()
    measured = summarise(records, len(stream))
    return ServeResult(measured, predicted, records, shares, calibration, kills)


def _fit_from_services(
    plan: Placement,
    instance: InferenceInstance,
    services: dict[int, ServiceProcess],
    token: str,
    trips: list[float],
) -> Calibration:
    """Collect every shard's steps (its Stats method) and fit the node speeds to them."""
    logs = []
    for k, service in services.items():
        server = plan.servers[k]
        with Client(service.address, SERVICE, token) as client:
            reply = decode(client.call("Stats", encode({}, {})[0], 10.0))
        logs.append((server.node, server.start, server.end, instance.blocks, reply.header["steps"]))
    first = next(iter(services.values()))
    idle_latency, rate = measure_hop(first.address, token)
    # The round trip under the warm-up's load (a call's time outside the shard), if measured.
    latency = float(np.median(trips)) if trips else idle_latency
    return fit_in_service(logs, (latency, rate))


def _replay(
    plan: Placement,
    fitted: InferenceInstance,
    stream: Stream,
    services: dict[int, ServiceProcess],
    token: str,
    kills: list[Kill],
    seed: int,
    records_path: Path,
    progress: Callable[[str], None] | None,
    trips: list[float] | None = None,
) -> list[Record]:
    """The load generator: each request's thread starts at its arrival time (``trips``, if
    given, receives the round trip of every Step call)."""
    rng = np.random.default_rng(seed)
    prompts = [
        rng.integers(*PROMPT_IDS, size=int(n)).tolist() for n in stream.prompt_tokens.tolist()
    ]
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    gateway = Gateway(fitted, plan, {k: s.address for k, s in services.items()}, token, clock)
    done: queue.Queue[Record] = queue.Queue()
    records: list[Record] = []
    records_path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def watch() -> None:
        """Kill shards on schedule and tell the gateway about any shard process that ends."""
        pending = sorted(kills, key=lambda k: k.at_s)
        seen: set[int] = set()
        while not stop.is_set():
            while pending and clock() >= pending[0].at_s:
                kill = pending.pop(0)
                service = services[kill.server]
                if service.alive():
                    service.process.send_signal(signal.SIGKILL)
                    if progress:
                        progress(f"t={clock():.1f} s: killed shard {kill.server} (SIGKILL)")
            for k, service in services.items():
                if k not in seen and not service.alive():
                    seen.add(k)
                    gateway.mark_dead(k)
            stop.wait(0.05)

    def drive(record: Record, prompt: list[int]) -> None:
        try:
            gateway.serve(record, prompt)
        except Exception as exc:  # every request ends with a reason
            record.outcome = "failed"
            record.reason = f"gateway error: {type(exc).__name__}: {exc}"
            record.finish_s = clock()
        done.put(record)

    watcher = threading.Thread(target=watch, name="watch", daemon=True)
    watcher.start()
    threads: list[threading.Thread] = []
    last_note = 0.0
    total = len(stream)
    try:
        with records_path.open("w") as sink:

            def collect() -> None:
                while True:
                    try:
                        record = done.get_nowait()
                    except queue.Empty:
                        return
                    records.append(record)
                    sink.write(json.dumps(record.to_dict()) + "\n")
                    sink.flush()

            def note(force: bool = False) -> None:
                nonlocal last_note
                if progress and (force or clock() - last_note >= 2.0):
                    last_note = clock()
                    counts = {o: sum(r.outcome == o for r in records) for o in ("on_time", "late")}
                    refused = len(records) - counts["on_time"] - counts["late"]
                    progress(
                        f"t={clock():6.1f} s  sent {len(threads)}/{total}  done {len(records)}"
                        f"  on time {counts['on_time']}  late {counts['late']}"
                        f"  rejected {refused}  in flight {len(threads) - len(records)}"
                    )

            for rid in range(total):
                arrival = float(stream.arrival_s[rid])
                while clock() < arrival:
                    collect()
                    note()
                    time.sleep(min(0.05, max(arrival - clock(), 0.0)))
                record = Record(
                    rid=rid,
                    user=int(stream.user[rid]),
                    task=int(stream.task[rid]),
                    prompt_tokens=int(stream.prompt_tokens[rid]),
                    output_tokens=int(stream.output_tokens[rid]),
                    deadline_s=float(stream.deadline_s[rid]),
                    arrival_s=arrival,
                )
                thread = threading.Thread(
                    target=drive, args=(record, prompts[rid]), name=f"request-{rid}", daemon=True
                )
                thread.start()
                threads.append(thread)
            end_by = clock() + float(stream.deadline_s.max()) + DRAIN_GRACE_S
            while len(records) < total and clock() < end_by:
                collect()
                note()
                time.sleep(0.05)
            collect()
            note(force=True)
    finally:
        stop.set()
        gateway.close()
        if trips is not None:
            trips.extend(gateway.trips)
    return records
