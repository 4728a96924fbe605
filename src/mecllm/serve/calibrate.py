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
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core import checks
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.systems.inference.instance import InferenceInstance

DECODE_BATCHES = (1, 2, 4, 8, 16)
DECODE_CONTEXT = 64
PREFILL_TOKENS = (16, 32, 64, 128)
#: Timed repetitions of each step (after one untimed).
REPEATS = 7


@dataclass(frozen=True)
class StepTime:
    """One measured step and what the fitted roofline says of it."""

    part: str  # "block" or "block+head"
    kind: str  # "decode" or "prefill"
    batch: int  # requests in the step
    tokens: int  # token rows in the step
    flops: float
    bytes_read: float
    measured_s: float
    model_s: float = 0.0


@dataclass(frozen=True)
class Calibration:
    """This machine's speeds for the served model, per core (see the module docstring)."""

    flops_per_s: float
    memory_bandwidth_bps: float
    hop_latency_s: float
    hop_bps: float
    steps: list[StepTime] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": "serve-calibration",
            "flops_per_s": self.flops_per_s,
            "memory_bandwidth_bps": self.memory_bandwidth_bps,
            "hop_latency_s": self.hop_latency_s,
            "hop_bps": self.hop_bps,
            "machine": self.machine,
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
            for key in ("flops_per_s", "memory_bandwidth_bps", "hop_latency_s", "hop_bps")
        }
        steps = [StepTime(**s) for s in data.get("steps", []) if isinstance(s, dict)]
        machine = data.get("machine", {})
        return cls(**values, steps=steps, machine=machine if isinstance(machine, dict) else {})


def node_shares(instance: InferenceInstance, core_share: float) -> list[float]:
    """Each node's share of a core: ``core_share`` for the fastest, the others in proportion to
    their FLOP/s."""
    top = float(instance.flops.max())
    return [core_share * float(f) / top for f in instance.flops]


def calibrated_instance(
    instance: InferenceInstance, calibration: Calibration, core_share: float
) -> InferenceInstance:
    """``instance`` with the speeds the served run has: node ``v`` runs at its share of one of
    this machine's cores (:func:`node_shares`), hops take the measured round trip."""
    shares = np.array(node_shares(instance, core_share))
    data = instance.to_dict()
    data["nodes"]["flops"] = (shares * calibration.flops_per_s).tolist()
    data["nodes"]["memory_bandwidth_bps"] = (shares * calibration.memory_bandwidth_bps).tolist()
    data["backhaul"]["latency_s"] = calibration.hop_latency_s
    data["backhaul"]["bandwidth_bps"] = calibration.hop_bps
    return InferenceInstance.from_dict(data)


def _median_time(run: Callable[[], object], repeats: int = REPEATS) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_steps(progress: Callable[[str], None] | None = None) -> list[StepTime]:
    """Time decode and prefill steps of one block and of the last block with the head."""
    import torch

    from mecllm.serve.causal import ShardModel, WorkItem

    torch.set_num_threads(1)
    out: list[StepTime] = []
    blocks = 6
    for part, (start, end) in (("block", (1, 2)), ("block+head", (blocks - 1, blocks))):
        model = ShardModel(start, end, blocks)
        h = model.width
        block_params = sum(w.numel() + b.numel() for w, b in model.layers[0].values())
        block_bytes = 4.0 * block_params
        head = part == "block+head"
        head_params = float(model.word.numel()) if head else 0.0
        kvb = 2 * h * 4  # keys and values of one token in one block, bytes

        def hidden(t: int, width: int = h) -> np.ndarray:
            return np.zeros((t, width), dtype=np.float32)

        if progress:
            progress(f"calibrating: {part} decode and prefill steps")
        for b in DECODE_BATCHES:
            model.caches.clear()
            for r in range(b):
                model.step([WorkItem(r, 0, hidden=hidden(DECODE_CONTEXT))])
            position = [DECODE_CONTEXT]

            def decode_step(model: Any = model, b: int = b, position: list[int] = position) -> None:
                model.step([WorkItem(r, position[0], hidden=hidden(1)) for r in range(b)])
                position[0] += 1

            seconds = _median_time(decode_step)
            context = DECODE_CONTEXT + REPEATS // 2 + 1
            out.append(
                StepTime(
                    part,
                    "decode",
                    b,
                    b,
                    flops=b * (2.0 * block_params + 2.0 * head_params),
                    bytes_read=block_bytes + 4.0 * head_params + b * context * kvb,
                    measured_s=seconds,
                )
            )
        for t in PREFILL_TOKENS:

            def prefill_step(model: Any = model, t: int = t) -> None:
                model.caches.clear()
                model.step([WorkItem(0, 0, hidden=hidden(t))])

            seconds = _median_time(prefill_step)
            out.append(
                StepTime(
                    part,
                    "prefill",
                    1,
                    t,
                    flops=t * 2.0 * block_params + 2.0 * head_params,
                    bytes_read=block_bytes + 4.0 * head_params + t * kvb,
                    measured_s=seconds,
                )
            )
    return out


def fit_roofline(steps: list[StepTime]) -> tuple[float, float]:
    """The (F, M) minimising the squared log error of ``max(flops / F, bytes / M)``."""
    flops = np.array([s.flops for s in steps])
    read = np.array([s.bytes_read for s in steps])
    measured = np.log(np.array([s.measured_s for s in steps]))
    best = (math.inf, 1.0, 1.0)
    # A log grid around the values each measurement alone would imply, refined twice.
    f_lo, f_hi = (
        np.log(flops / np.exp(measured)).min() - 1,
        np.log(flops / np.exp(measured)).max() + 1,
    )
    m_lo, m_hi = (
        np.log(read / np.exp(measured)).min() - 1,
        np.log(read / np.exp(measured)).max() + 1,
    )
    for _ in range(3):
        fs = np.linspace(f_lo, f_hi, 81)
        ms = np.linspace(m_lo, m_hi, 81)
        pred = np.maximum(
            np.log(flops)[None, None, :] - fs[:, None, None],
            np.log(read)[None, None, :] - ms[None, :, None],
        )
        error = ((pred - measured[None, None, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(error)), error.shape)
        if error[i, j] < best[0]:
            best = (float(error[i, j]), float(fs[i]), float(ms[j]))
        f_step, m_step = fs[1] - fs[0], ms[1] - ms[0]
        f_lo, f_hi = fs[i] - 2 * f_step, fs[i] + 2 * f_step
        m_lo, m_hi = ms[j] - 2 * m_step, ms[j] + 2 * m_step
    return math.exp(best[1]), math.exp(best[2])


def measure_hop(log_dir: Path) -> tuple[float, float]:
    """Round trips of a Step-sized call to a shard process: (latency s, rate bit/s)."""
    from mecllm.serve.shard import SERVICE, TOKEN_ENV
    from mecllm.transport.rpc import Client
    from mecllm.transport.service import ServiceProcess
    from mecllm.transport.tensors import encode

    token = secrets.token_urlsafe(24)
    service = ServiceProcess(
        "mecllm.serve.shard",
        ["--start", "1", "--end", "2", "--blocks", "6"],
        TOKEN_ENV,
        token,
        log_dir / "calibrate-shard.log",
    )
    try:
        with Client(service.address, SERVICE, token) as client:
            small, _ = encode({"rid": 0}, {"hidden": np.zeros((1, 384), np.float32)})
            large, _ = encode({"rid": 0}, {"hidden": np.zeros((64, 384), np.float32)})

            def trip(message: bytes) -> float:
                return _median_time(lambda: client.call("Health", message, 5.0), 41)

            one, many = trip(small), trip(large)
    finally:
        service.stop()
    extra_bits = 8.0 * (len(large) - len(small))
    rate = extra_bits / max(many - one, 1e-6)
    return one, float(min(rate, 1e13))


def calibrate(log_dir: Path, progress: Callable[[str], None] | None = None) -> Calibration:
    """Measure and fit (about half a minute)."""
    import torch

    steps = measure_steps(progress)
    flops, bandwidth = fit_roofline(steps)
    fitted = [
        StepTime(**{**asdict(s), "model_s": max(s.flops / flops, s.bytes_read / bandwidth)})
        for s in steps
    ]
    if progress:
        progress("calibrating: round trips to a shard process")
    latency, rate = measure_hop(log_dir)
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torch_threads": 1,
    }
    return Calibration(flops, bandwidth, latency, rate, fitted, machine)
