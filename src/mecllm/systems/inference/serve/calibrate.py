"""``mecllm serve --calibrate``: measure the served model's step times on this machine and fit the
simulator's node speeds to them (docs/serving.md section 3).

What is measured, on one core (one PyTorch thread), medians of repeated runs:

- **a block**: decode steps of ``b`` requests (``b`` in :data:`DECODE_BATCHES`, each with a
  context of :data:`DECODE_CONTEXT` tokens) and prefills of ``t`` tokens (:data:`PREFILL_TOKENS`);
- **the last block with the head** (the tied vocabulary matrix): the same steps;
- **a hop**: round trips of the gateway's call to a shard process with one token's and 64
  tokens' activations.

The simulator's step time is the roofline ``max(FLOPs / F, bytes read / M)``; the calibration
picks the one core's ``F`` (FLOP/s) and ``M`` (bytes/s) that minimise the squared log error
over every measured step, and the hop latency and rate from the round trips. The file keeps
every measurement beside the fitted model's time for it, so the fit can be judged.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core import checks
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.core.timing import median_seconds
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.routing import step_seconds

DECODE_BATCHES = (1, 2, 4, 8, 16)
DECODE_CONTEXT = 64
PREFILL_TOKENS = (16, 32, 64, 128)
#: Timed repetitions of each step (after one untimed).
REPEATS = 15


@dataclass(frozen=True)
class StepTime:
    """One measured step and what the fitted roofline says of it."""

    part: str  # the shard, e.g. "block 4 + head"
    kind: str  # "decode" or "prefill"
    batch: int  # requests in the step
    tokens: int  # token rows in the step
    flops: float
    bytes_read: float
    measured_s: float
    blocks: int = 1  # blocks of the shard
    model_s: float = 0.0


@dataclass(frozen=True)
class Calibration:
    """This machine's speeds for the served model, per core (see the module docstring)."""

    flops_per_s: float
    memory_bandwidth_bps: float
    block_overhead_s: float
    hop_latency_s: float
    hop_bps: float
    steps: list[StepTime] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    #: Per node (fitted in service to the steps of that node's shards): its own (F, M, c).
    nodes: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": "serve-calibration",
            "flops_per_s": self.flops_per_s,
            "memory_bandwidth_bps": self.memory_bandwidth_bps,
            "block_overhead_s": self.block_overhead_s,
            "hop_latency_s": self.hop_latency_s,
            "hop_bps": self.hop_bps,
            "machine": self.machine,
            "nodes": {
                str(v): {"flops_per_s": f, "memory_bandwidth_bps": m, "block_overhead_s": c}
                for v, (f, m, c) in sorted(self.nodes.items())
            },
            "steps": [asdict(s) for s in self.steps],
        }

    def save(self, path: Path) -> None:
        """Write the calibration file atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a calibration file, checking its four speeds."""
        data = read_json(path, "calibration")
        if not isinstance(data, dict) or data.get("kind") != "serve-calibration":
            raise InvalidInputError(
                f"{path} is not a calibration file (write one with mecllm serve --calibrate)"
            )
        values = {
            key: checks.scalar(data, key, "calibration", low=0.0, high=1e18)
            for key in (
                "flops_per_s",
                "memory_bandwidth_bps",
                "block_overhead_s",
                "hop_latency_s",
                "hop_bps",
            )
        }
        steps = [StepTime(**s) for s in data.get("steps", []) if isinstance(s, dict)]
        machine = data.get("machine", {})
        nodes: dict[int, tuple[float, float, float]] = {}
        raw_nodes = data.get("nodes", {})
        if not isinstance(raw_nodes, dict):
            raise InvalidInputError(f"{path}: nodes must be an object")
        for key, entry in raw_nodes.items():
            if not key.isdigit() or not isinstance(entry, dict):
                raise InvalidInputError(f"{path}: nodes must map node indices to speeds")
            nodes[int(key)] = tuple(  # type: ignore[assignment]
                checks.scalar(entry, name, f"calibration.nodes.{key}", low=0.0, high=1e18)
                for name in ("flops_per_s", "memory_bandwidth_bps", "block_overhead_s")
            )
        return cls(
            **values,
            steps=steps,
            machine=machine if isinstance(machine, dict) else {},
            nodes=nodes,
        )


def node_shares(instance: InferenceInstance, core_share: float) -> list[float]:
    """Each node's share of a core: ``core_share`` for the fastest, the others in proportion to
    their FLOP/s."""
    top = float(instance.flops.max())
    return [core_share * float(f) / top for f in instance.flops]


def calibrated_instance(
    instance: InferenceInstance, calibration: Calibration, core_share: float
) -> InferenceInstance:
    """``instance`` with the speeds and the model the served run has: node ``v`` runs at its
    share of one of this machine's cores (:func:`node_shares`), hops take the measured round
    trip, and the model's sizes are the served MiniLM's (its number of blocks stays the
    instance's)."""
    shares = np.array(node_shares(instance, core_share))
    pooled = (
        calibration.flops_per_s,
        calibration.memory_bandwidth_bps,
        calibration.block_overhead_s,
    )
    speeds = np.array([calibration.nodes.get(v, pooled) for v in range(instance.n_nodes)])
    data = instance.to_dict()
    # The model served is MiniLM's blocks (in turn, if the plan's model has more), whatever the
    # instance says of its model: its sizes are the ones the steps are made of.
    block, head, width = served_sizes()
    data["model"].update(
        params_per_block=float(block),
        hidden=width,
        weight_bits=32.0,
        activation_bits=32.0,
        head_params=float(head),
    )
    data["nodes"]["flops"] = (shares * speeds[:, 0]).tolist()
    data["nodes"]["memory_bandwidth_bps"] = (shares * speeds[:, 1]).tolist()
    data["nodes"]["block_overhead_s"] = (speeds[:, 2] / shares).tolist()
    data["backhaul"]["latency_s"] = calibration.hop_latency_s
    data["backhaul"]["bandwidth_bps"] = calibration.hop_bps
    return InferenceInstance.from_dict(data)


def shard_name(start: int, end: int, blocks: int) -> str:
    """``blocks 1-4``, with ``embeddings`` and ``head`` where the shard has them."""
    name = f"blocks {start}-{end - 1}" if end - start > 1 else f"block {start}"
    if start == 0:
        name = "embeddings + " + name
    if end == blocks:
        name += " + head"
    return name


def measure_steps(
    shards: list[tuple[int, int]], blocks: int, progress: Callable[[str], None] | None = None
) -> list[StepTime]:
    """Time decode and prefill steps of each shard ``[start, end)`` of a ``blocks``-block model."""
    import torch

    from mecllm.models.causal import ShardModel, WorkItem

    torch.set_num_threads(1)
    out: list[StepTime] = []
    for start, end in shards:
        part = shard_name(start, end, blocks)
        model = ShardModel(start, end, blocks)
        h = model.width
        used = end - start
        block_params = sum(w.numel() + b.numel() for w, b in model.layers[0].values())
        head_params = float(model.word.numel()) if model.last else 0.0
        weights = 4.0 * (used * block_params + head_params)
        kvb = 2 * h * 4 * used  # keys and values of one token in the shard's blocks, bytes

        def given(t: int, first: bool = model.first, width: int = h) -> dict[str, Any]:
            if first:
                return {"tokens": [1000 + j for j in range(t)]}
            return {"hidden": np.zeros((t, width), dtype=np.float32)}

        if progress:
            progress(f"calibrating: {part}, decode and prefill steps")
        for b in DECODE_BATCHES:
            model.caches.clear()
            for r in range(b):
                model.step([WorkItem(r, 0, **given(DECODE_CONTEXT))])
            position = [DECODE_CONTEXT]

            def decode_step(model: Any = model, b: int = b, position: list[int] = position) -> None:
                model.step([WorkItem(r, position[0], **given(1)) for r in range(b)])
                position[0] += 1

            seconds = median_seconds(decode_step, REPEATS)
            context = DECODE_CONTEXT + REPEATS // 2 + 1
            out.append(
                StepTime(
                    part,
                    "decode",
                    b,
                    b,
                    flops=b * (2.0 * used * block_params + 2.0 * head_params),
                    bytes_read=weights + b * context * kvb,
                    measured_s=seconds,
                    blocks=used,
                )
            )
        for t in PREFILL_TOKENS:

            def prefill_step(model: Any = model, t: int = t) -> None:
                model.caches.clear()
                model.step([WorkItem(0, 0, **given(t))])

            seconds = median_seconds(prefill_step, REPEATS)
            out.append(
                StepTime(
                    part,
                    "prefill",
                    1,
                    t,
                    flops=t * 2.0 * used * block_params + 2.0 * head_params,
                    bytes_read=weights + t * kvb,
                    measured_s=seconds,
                    blocks=used,
                )
            )
    return out


def step_model(step: StepTime, speeds: tuple[float, float, float]) -> float:
    """The simulator's step time (:func:`~mecllm.systems.inference.routing.step_seconds`):
    ``max(flops / F, bytes / M) + requests x blocks x c``."""
    f, m, c = speeds
    return step_seconds(step.flops, step.bytes_read, f, m, step.batch * step.blocks * c)


def fit_steps(
    steps: list[StepTime], weights: list[float] | None = None
) -> tuple[float, float, float]:
    """The (F, M, c) minimising the (weighted) squared log error of :func:`step_model` over
    ``steps`` (a grid over log F, log M and c, refined three times)."""
    weight = np.ones(len(steps)) if weights is None else np.asarray(weights, dtype=float)
    flops = np.array([s.flops for s in steps])
    read = np.array([s.bytes_read for s in steps])
    requests = np.array([s.batch * s.blocks for s in steps], dtype=float)
    measured = np.array([s.measured_s for s in steps])
    log_measured = np.log(measured)
    f_lo, f_hi = np.log(flops / measured).min() - 1, np.log(flops / measured).max() + 2
    m_lo, m_hi = np.log(read / measured).min() - 1, np.log(read / measured).max() + 2
    c_lo, c_hi = 0.0, float((measured / requests).max())
    best = (math.inf, 0.0, 0.0, 0.0)
    for _ in range(4):
        fs, ms, cs = (
            np.linspace(f_lo, f_hi, 41),
            np.linspace(m_lo, m_hi, 41),
            np.linspace(c_lo, c_hi, 41),
        )
        roof = np.maximum(
            flops[None, None, :] / np.exp(fs)[:, None, None],
            read[None, None, :] / np.exp(ms)[None, :, None],
        )  # (F, M, steps)
        total = roof[:, :, None, :] + cs[None, None, :, None] * requests
        error = (weight * (np.log(total) - log_measured) ** 2).sum(-1)
        i, j, k = np.unravel_index(int(np.argmin(error)), error.shape)
        if error[i, j, k] < best[0]:
            best = (float(error[i, j, k]), float(fs[i]), float(ms[j]), float(cs[k]))
        f_step, m_step, c_step = fs[1] - fs[0], ms[1] - ms[0], cs[1] - cs[0]
        f_lo, f_hi = fs[i] - 2 * f_step, fs[i] + 2 * f_step
        m_lo, m_hi = ms[j] - 2 * m_step, ms[j] + 2 * m_step
        c_lo, c_hi = max(cs[k] - 2 * c_step, 0.0), cs[k] + 2 * c_step
    return math.exp(best[1]), math.exp(best[2]), best[3]


def measure_hop(address: str, token: str) -> tuple[float, float]:
    """Round trips of a Step-sized call to the shard service at ``address``: (latency s, rate
    bit/s), from one token's and 64 tokens' activations."""
    from mecllm.systems.inference.serve.shard import SERVICE
    from mecllm.transport.rpc import Client
    from mecllm.transport.tensors import encode

    with Client(address, SERVICE, token) as client:
        small, _ = encode({"rid": 0}, {"hidden": np.zeros((1, 384), np.float32)})
        large, _ = encode({"rid": 0}, {"hidden": np.zeros((64, 384), np.float32)})

        def trip(message: bytes) -> float:
            return median_seconds(lambda: client.call("Health", message, 5.0), 41)

        one, many = trip(small), trip(large)
    extra_bits = 8.0 * (len(large) - len(small))
    rate = extra_bits / max(many - one, 1e-6)
    return one, float(min(rate, 1e13))


def _machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torch_threads": 1,
    }


def served_sizes() -> tuple[int, int, int]:
    """The served model's (parameters per block, head parameters, width)."""
    from mecllm.models.minilm import BertConfig, model_dir

    cfg = BertConfig.load(model_dir())
    h, inner = cfg.hidden_size, cfg.intermediate_size
    block = 4 * (h * h + h) + 2 * h * inner + inner + h + 4 * h
    return block, cfg.vocab_size * h, h


def fit_in_service(
    logs: list[tuple[int, int, int, int, list[list[float]]]],
    hop: tuple[float, float],
) -> Calibration:
    """Fit (F, M, c) to the steps the shard services took while serving (a warm-up stream):
    ``logs`` holds, per shard, its ``(node, start, end, blocks of the model, steps)`` with each
    step as sent by the shard's Stats method. Steps of one shard with the same requests and
    prefill length (to 16 tokens) are pooled (their median time, weighted by their count).

    One (F, M, c) is fitted to every step, and each node that took steps gets its own, fitted
    to its steps plus the pooled ones at a tenth of the weight (so that a node seen in few
    kinds of steps does not extrapolate wildly)."""
    block, head, h = served_sizes()
    groups: dict[tuple[int, str, int, int, int, int], list[tuple[float, float, float]]] = {}
    for node, start, end, blocks, steps in logs:
        used = end - start
        last = end == blocks
        name = shard_name(start, end, blocks)
        weights = 4.0 * (used * block + (head if last else 0))
        kvb = 2 * h * 4 * used
        for decoding, prefill_tokens, prefills, context, cpu_s, _ in steps:
            d, pt, pf = int(decoding), int(prefill_tokens), int(prefills)
            flops = (
                d * (2.0 * used * block + (2.0 * head if last else 0.0))
                + pt * 2.0 * used * block
                + pf * (2.0 * head if last else 0.0)
            )
            key = (node, name, used, d, pf, 16 * round(pt / 16))
            groups.setdefault(key, []).append((flops, weights + context * kvb, float(cpu_s)))
    steps_out: list[StepTime] = []
    counts: list[float] = []
    owners: list[int] = []
    for (node, name, used, d, pf, pt), rows in sorted(groups.items()):
        owners.append(node)
        table = np.array(rows)
        steps_out.append(
            StepTime(
                name,
                "decode" if pf == 0 else f"prefill+{d}",
                d + pf,
                d + pt,
                flops=float(np.median(table[:, 0])),
                bytes_read=float(np.median(table[:, 1])),
                measured_s=float(np.median(table[:, 2])),
                blocks=used,
            )
        )
        counts.append(float(len(rows)))
    if not steps_out:
        raise ValueError("the warm-up took no steps to calibrate on")
    speeds = fit_steps(steps_out, counts)
    total = sum(counts)
    nodes = {}
    for node in sorted(set(owners)):
        mine = sum(c for c, o in zip(counts, owners, strict=True) if o == node)
        mix = [
            c if o == node else 0.1 * c * mine / total for c, o in zip(counts, owners, strict=True)
        ]
        nodes[node] = fit_steps(steps_out, mix)
    fitted = [
        replace(s, model_s=step_model(s, nodes.get(o, speeds)))
        for s, o in zip(steps_out, owners, strict=True)
    ]
    machine = {**_machine(), "source": "steps taken while serving a warm-up stream"}
    machine["steps_per_group"] = counts
    machine["node_of_group"] = owners
    return Calibration(*speeds, *hop, fitted, machine, nodes)


def calibrate(
    shards: list[tuple[int, int]],
    blocks: int,
    log_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Measure the ``shards`` of a ``blocks``-block model and fit (a few seconds a shard)."""

    steps = measure_steps(shards, blocks, progress)
    speeds = fit_steps(steps)
    if progress:
        progress("calibrating: round trips to a shard process")
    from mecllm.systems.inference.serve.shard import TOKEN_ENV
    from mecllm.transport.service import ServiceProcess

    token = secrets.token_urlsafe(24)
    service = ServiceProcess(
        "mecllm.systems.inference.serve.shard",
        ["--start", "1", "--end", "2", "--blocks", "6"],
        TOKEN_ENV,
        token,
        log_dir / "calibrate-shard.log",
    )
    try:
        latency, rate = measure_hop(service.address, token)
    finally:
        service.stop()
    machine = {**_machine(), "source": "each shard timed alone in one process"}
    fitted = [replace(s, model_s=step_model(s, speeds)) for s in steps]
    return Calibration(*speeds, latency, rate, fitted, machine)
