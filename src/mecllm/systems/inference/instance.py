"""The edge-inference instance (docs/inference.md): edge nodes, the backhaul between them, users
on their access nodes, the model, the task types and the demand.

An :class:`InferenceInstance` is validated once, when it is built, and is immutable afterwards.
JSON files carry ``"kind": "edge-inference"``. Units: bytes for memory, FLOP/s for compute,
bytes/s for memory bandwidth, bit/s for links, seconds, watts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.csgraph import shortest_path

from mecllm.core import checks
from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json

#: The value of the JSON ``kind`` field of this system.
KIND = "edge-inference"
_MAX_NODES = 100_000
_TOP = {"kind", "name", "nodes", "backhaul", "users", "model", "tasks", "horizon_s", "max_batch"}
_NODE = {
    "memory_bytes",
    "flops",
    "memory_bandwidth_bps",
    "power_w",
    "position_m",
    "block_overhead_s",
}
_BACKHAUL = {"bandwidth_bps", "latency_s"}
_USER = {
    "access_node",
    "uplink_bps",
    "downlink_bps",
    "radio_power_w",
    "arrival_rate_per_s",
    "position_m",
}
_MODEL = {"blocks", "params_per_block", "hidden", "weight_bits", "activation_bits", "head_params"}
_TASK = {"name", "share", "prompt_tokens", "output_tokens", "deadline_s", "input_bits_per_token"}


@dataclass(frozen=True)
class TaskType:
    """A kind of request: token ranges (inclusive), deadline range, share of the demand."""

    name: str
    share: float
    prompt_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    deadline_s: tuple[float, float]
    input_bits_per_token: float = 16.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "share": self.share,
            "prompt_tokens": list(self.prompt_tokens),
            "output_tokens": list(self.output_tokens),
            "deadline_s": list(self.deadline_s),
            "input_bits_per_token": self.input_bits_per_token,
        }


@dataclass(frozen=True, eq=False)
class InferenceInstance:
    """One edge-inference scenario (per-node arrays have shape (V,), per-user (N,)).

    Attributes
    ----------
    memory_bytes, flops, memory_bandwidth_bps, power_w : (V,) node capacities (bytes,
        FLOP/s, bytes/s, W when busy).
    backhaul_bps, backhaul_latency_s : (V, V) direct links (0 bit/s: no link); routes between
        nodes follow the lowest-latency path (:attr:`route_latency_s`, :attr:`route_bps`).
    access_node : (N,) int, each user's node; uplink_bps, downlink_bps : (N,) radio rates;
        radio_power_w : (N,) the user's transmit power; arrival_rate_per_s : (N,) Poisson rate.
    blocks, params_per_block, hidden, weight_bits, activation_bits, head_params : the model
        (L transformer blocks of P parameters, width H; the embedding/head of the pre and post
        services has ``head_params`` parameters).
    tasks : the task types (their shares sum to 1).
    horizon_s : length of the request stream the simulator draws.
    max_batch : most requests one node step serves.
    block_overhead_s : (V,) seconds each request adds to a step of the node per block the
        step runs it through, beyond the roofline (0 unless calibrated on real hardware,
        docs/inference.md section 2).
    """

    memory_bytes: FloatArray
    flops: FloatArray
    memory_bandwidth_bps: FloatArray
    power_w: FloatArray
    backhaul_bps: FloatArray
    backhaul_latency_s: FloatArray
    access_node: IntArray
    uplink_bps: FloatArray
    downlink_bps: FloatArray
    radio_power_w: FloatArray
    arrival_rate_per_s: FloatArray
    blocks: int
    params_per_block: float
    hidden: int
    weight_bits: float
    activation_bits: float
    head_params: float
    tasks: tuple[TaskType, ...]
    horizon_s: float
    max_batch: int = 64
    node_position_m: FloatArray | None = None
    block_overhead_s: FloatArray | None = None
    user_position_m: FloatArray | None = None
    route_latency_s: FloatArray = field(init=False, repr=False)
    route_bps: FloatArray = field(init=False, repr=False)
    kind: ClassVar[str] = KIND

    def __post_init__(self) -> None:
        for name in (
            "memory_bytes",
            "flops",
            "memory_bandwidth_bps",
            "power_w",
            "backhaul_bps",
            "backhaul_latency_s",
            "uplink_bps",
            "downlink_bps",
            "radio_power_w",
            "arrival_rate_per_s",
        ):
            value = np.array(getattr(self, name), dtype=float)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        overhead = np.zeros(self.n_nodes_declared) if self.block_overhead_s is None else None
        if overhead is not None:
            overhead.setflags(write=False)
            object.__setattr__(self, "block_overhead_s", overhead)
        else:
            value = np.array(self.block_overhead_s, dtype=float)
            value.setflags(write=False)
            object.__setattr__(self, "block_overhead_s", value)
        access = np.array(self.access_node, dtype=np.int64)
        access.setflags(write=False)
        object.__setattr__(self, "access_node", access)
        latency, bandwidth = _routes(self.backhaul_bps, self.backhaul_latency_s)
        object.__setattr__(self, "route_latency_s", latency)
        object.__setattr__(self, "route_bps", bandwidth)

    # ------------------------------------------------------------------ sizes
    @property
    def n_nodes_declared(self) -> int:
        """V, from the memory vector (before the other arrays are checked)."""
        return int(np.shape(self.memory_bytes)[0])

    @property
    def overhead_s(self) -> FloatArray:
        """(V,) seconds per request and block in a step, beyond the roofline (zeros unless
        given)."""
        assert self.block_overhead_s is not None
        return self.block_overhead_s

    @property
    def n_nodes(self) -> int:
        """V."""
        return int(self.memory_bytes.shape[0])

    @property
    def n_users(self) -> int:
        """N."""
        return int(self.access_node.shape[0])

    @property
    def block_bytes(self) -> float:
        """Weights of one block, bytes."""
        return self.params_per_block * self.weight_bits / 8.0

    @property
    def kv_bytes_per_token_block(self) -> float:
        """KV cache of one token in one block (keys and values), bytes: ``2 H omega_a / 8``."""
        return 2.0 * self.hidden * self.activation_bits / 8.0

    @property
    def activation_bits_per_token(self) -> float:
        """What passes between two shards per token, bits: ``H omega_a``."""
        return self.hidden * self.activation_bits

    @property
    def total_rate_per_s(self) -> float:
        """Requests per second over all users."""
        return float(self.arrival_rate_per_s.sum())

    def hop_s(self, a: int, b: int, tokens: int) -> float:
        """Time to pass ``tokens`` tokens' activations from node a to node b (0 on one node)."""
        if a == b:
            return 0.0
        return float(
            tokens * self.activation_bits_per_token / self.route_bps[a, b]
            + self.route_latency_s[a, b]
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        nodes: dict[str, Any] = {
            "memory_bytes": self.memory_bytes.tolist(),
            "flops": self.flops.tolist(),
            "memory_bandwidth_bps": self.memory_bandwidth_bps.tolist(),
            "power_w": self.power_w.tolist(),
        }
        users: dict[str, Any] = {
            "access_node": self.access_node.tolist(),
            "uplink_bps": self.uplink_bps.tolist(),
            "downlink_bps": self.downlink_bps.tolist(),
            "radio_power_w": self.radio_power_w.tolist(),
            "arrival_rate_per_s": self.arrival_rate_per_s.tolist(),
        }
        if self.node_position_m is not None:
            nodes["position_m"] = np.asarray(self.node_position_m).tolist()
        if np.any(self.overhead_s > 0):
            nodes["block_overhead_s"] = self.overhead_s.tolist()
        if self.user_position_m is not None:
            users["position_m"] = np.asarray(self.user_position_m).tolist()
        return {
            "kind": KIND,
            "nodes": nodes,
            "backhaul": {
                "bandwidth_bps": self.backhaul_bps.tolist(),
                "latency_s": self.backhaul_latency_s.tolist(),
            },
            "users": users,
            "model": {
                "blocks": self.blocks,
                "params_per_block": self.params_per_block,
                "hidden": self.hidden,
                "weight_bits": self.weight_bits,
                "activation_bits": self.activation_bits,
                "head_params": self.head_params,
            },
            "tasks": [t.to_dict() for t in self.tasks],
            "horizon_s": self.horizon_s,
            "max_batch": self.max_batch,
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON file atomically."""
        atomic_write_text(path, json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> InferenceInstance:
        """Read and validate an instance file."""
        return cls.from_dict(read_json(path, "instance"))

    def with_demand(self, total_rate_per_s: float) -> InferenceInstance:
        """A copy whose users' rates are scaled to ``total_rate_per_s`` in all."""
        data = self.to_dict()
        scale = total_rate_per_s / max(self.total_rate_per_s, 1e-300)
        data["users"]["arrival_rate_per_s"] = (self.arrival_rate_per_s * scale).tolist()
        return InferenceInstance.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> InferenceInstance:
        """Validate the JSON form and build the instance.

        Raises
        ------
        InvalidInputError
            For the first rule the data breaks, naming the field, the rule and the value.
        """
        if not isinstance(data, Mapping):
            raise checks.fail("instance", "must be a JSON object", type(data).__name__)
        checks.reject_unknown(data, _TOP)
        if data.get("kind", KIND) != KIND:
            raise checks.fail("kind", f"must be {KIND!r} for this system", data.get("kind"))
        nodes = checks.section(data, "nodes")
        checks.reject_unknown(nodes, _NODE, "nodes")
        memory = checks.vector(nodes, "memory_bytes", "nodes", None, low=0, high=1e15, floor=1)
        v = memory.shape[0]
        if not 1 <= v <= _MAX_NODES:
            raise InvalidInputError(f"nodes must list 1..{_MAX_NODES} nodes, got {v}")
        flops = checks.vector(nodes, "flops", "nodes", v, low=0, high=1e19, floor=1)
        bandwidth = checks.vector(
            nodes, "memory_bandwidth_bps", "nodes", v, low=0, high=1e15, floor=1
        )
        power = (
            checks.vector(nodes, "power_w", "nodes", v, low=0, low_inclusive=True, high=1e6)
            if "power_w" in nodes
            else np.zeros(v)
        )
        node_xy = _positions(nodes, "nodes", v)
        overhead = (
            checks.vector(
                nodes, "block_overhead_s", "nodes", v, low=0, low_inclusive=True, high=10.0
            )
            if "block_overhead_s" in nodes
            else np.zeros(v)
        )
        backhaul = checks.section(data, "backhaul")
        checks.reject_unknown(backhaul, _BACKHAUL, "backhaul")
        links = _square(backhaul, "bandwidth_bps", v, low=0.0, high=1e15, low_inclusive=True)
        latency = _square(backhaul, "latency_s", v, low=0.0, high=1e3, low_inclusive=True)
        users = checks.section(data, "users")
        checks.reject_unknown(users, _USER, "users")
        access = _indices(users, "access_node", v)
        n = access.shape[0]
        if n == 0:
            raise InvalidInputError("users.access_node must list at least one user, got 0")
        up = checks.vector(users, "uplink_bps", "users", n, low=0, high=1e13, floor=1)
        down = checks.vector(users, "downlink_bps", "users", n, low=0, high=1e13, floor=1)
        radio = checks.vector(
            users, "radio_power_w", "users", n, low=0, low_inclusive=True, high=1e3
        )
        rates = checks.vector(
            users, "arrival_rate_per_s", "users", n, low=0, low_inclusive=True, high=1e6
        )
        user_xy = _positions(users, "users", n)
        model = checks.section(data, "model")
        checks.reject_unknown(model, _MODEL, "model")
        blocks = _whole(model, "blocks", "model", 1, 10_000)
        params = checks.scalar(model, "params_per_block", "model", low=0, high=1e12)
        hidden = _whole(model, "hidden", "model", 1, 1_000_000)
        weight_bits = checks.scalar(model, "weight_bits", "model", low=0, high=64)
        act_bits = checks.scalar(model, "activation_bits", "model", low=0, high=64)
        head = checks.scalar(model, "head_params", "model", low=0, low_inclusive=True, high=1e12)
        tasks = _tasks(data.get("tasks"))
        horizon = checks.scalar(data, "horizon_s", "", low=0, high=1e7)
        max_batch = _whole(data, "max_batch", "", 1, 100_000) if "max_batch" in data else 64
        _reachable(links, v)
        return cls(
            memory_bytes=memory,
            flops=flops,
            memory_bandwidth_bps=bandwidth,
            power_w=power,
            backhaul_bps=links,
            backhaul_latency_s=latency,
            access_node=access,
            uplink_bps=up,
            downlink_bps=down,
            radio_power_w=radio,
            arrival_rate_per_s=rates,
            blocks=blocks,
            params_per_block=params,
            hidden=hidden,
            weight_bits=weight_bits,
            activation_bits=act_bits,
            head_params=head,
            tasks=tasks,
            horizon_s=horizon,
            max_batch=max_batch,
            node_position_m=node_xy,
            block_overhead_s=overhead,
            user_position_m=user_xy,
        )


def _positions(data: Mapping[str, Any], path: str, count: int) -> FloatArray | None:
    if "position_m" not in data:
        return None
    return checks.matrix(
        data, "position_m", count, 2, low=-1e8, low_inclusive=True, high=1e8, path=path
    )


def _square(
    data: Mapping[str, Any], key: str, v: int, *, low: float, high: float, low_inclusive: bool
) -> FloatArray:
    """A (V, V) matrix, or one number meaning the same value on every link (a full mesh)."""
    raw = data.get(key)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = checks.scalar(
            data, key, "backhaul", low=low, low_inclusive=low_inclusive, high=high
        )
        out = np.full((v, v), value)
    else:
        out = checks.matrix(
            data, key, v, v, low=low, low_inclusive=low_inclusive, high=high, path="backhaul"
        )
    np.fill_diagonal(out, 0.0)
    return out


def _indices(data: Mapping[str, Any], key: str, v: int) -> IntArray:
    raw = data.get(key)
    where = f"users.{key}"
    if not isinstance(raw, list):
        raise checks.fail(where, "must be a list of node indices", type(raw).__name__)
    for i, a in enumerate(raw):
        if type(a) is not int or not 0 <= a < v:
            raise checks.fail(f"{where}[{i}]", f"must be a node index in 0..{v - 1}", a)
    return np.array(raw, dtype=np.int64)


def _whole(data: Mapping[str, Any], key: str, path: str, low: int, high: int) -> int:
    where = f"{path}.{key}" if path else key
    if key not in data:
        raise InvalidInputError(f"{where} is missing (required whole number)")
    value = data[key]
    if type(value) is not int or not low <= value <= high:
        raise checks.fail(where, f"must be a whole number in {low}..{high}", value)
    return value


def _pair(raw: object, where: str, whole: bool, low: float) -> tuple[Any, Any]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise checks.fail(where, "must be [low, high]", raw)
    values = []
    for k, item in enumerate(raw):
        if whole and type(item) is not int:
            raise checks.fail(f"{where}[{k}]", "must be a whole number", item)
        number = checks.number(item, f"{where}[{k}]")
        if number < low:
            raise checks.fail(f"{where}[{k}]", f"must be >= {low:g}", item)
        values.append(int(number) if whole else number)
    if values[0] > values[1]:
        raise checks.fail(where, "must have low <= high", raw)
    return values[0], values[1]


def _tasks(raw: object) -> tuple[TaskType, ...]:
    if not isinstance(raw, list) or not raw:
        raise checks.fail("tasks", "must be a non-empty list of task types", type(raw).__name__)
    out = []
    for k, item in enumerate(raw):
        where = f"tasks[{k}]"
        if not isinstance(item, Mapping):
            raise checks.fail(where, "must be an object", type(item).__name__)
        checks.reject_unknown(item, _TASK, where)
        name = item.get("name", f"task{k}")
        if not isinstance(name, str) or not name:
            raise checks.fail(f"{where}.name", "must be a non-empty string", name)
        share = checks.scalar(item, "share", where, low=0, high=1e6)
        prompt = _pair(item.get("prompt_tokens"), f"{where}.prompt_tokens", True, 1)
        output = _pair(item.get("output_tokens"), f"{where}.output_tokens", True, 1)
        deadline = _pair(item.get("deadline_s"), f"{where}.deadline_s", False, 1e-6)
        bits = checks.scalar(
            item, "input_bits_per_token", where, low=0, low_inclusive=True, high=1e6, default=16.0
        )
        out.append(TaskType(name, share, prompt, output, deadline, bits))
    total = sum(t.share for t in out)
    return tuple(TaskType(t.name, t.share / total, *_rest(t)) for t in out)


def _rest(task: TaskType) -> tuple[Any, ...]:
    return task.prompt_tokens, task.output_tokens, task.deadline_s, task.input_bits_per_token


def _reachable(links: FloatArray, v: int) -> None:
    """Every node reaches every other through the backhaul."""
    present = links > 0
    np.fill_diagonal(present, True)
    if v == 1 or present.all():  # a full mesh
        return
    hops = shortest_path((links > 0).astype(float), unweighted=True)
    if not np.all(np.isfinite(hops)):
        a, b = np.argwhere(~np.isfinite(hops))[0]
        raise InvalidInputError(f"backhaul.bandwidth_bps leaves node {b} unreachable from node {a}")


def _routes(links: FloatArray, latency: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Lowest-latency routes between nodes: their latency and their bottleneck bandwidth.

    A full mesh (every link present) is its own routing table; otherwise the latency of each
    route comes from Dijkstra and its bandwidth is the smallest along it.
    """
    v = links.shape[0]
    present = links > 0
    np.fill_diagonal(present, True)
    if present.all():
        bps = links.copy()
        np.fill_diagonal(bps, math.inf)
        return latency.copy(), bps
    weights = np.where(present, np.maximum(latency, 1e-12), 0.0)
    np.fill_diagonal(weights, 0.0)
    dist, predecessors = shortest_path(weights, directed=True, return_predecessors=True)
    bps = np.full((v, v), math.inf)
    for a in range(v):
        for b in range(v):
            if a == b:
                continue
            node, narrow = b, math.inf
            while node != a:
                previous = int(predecessors[a, node])
                narrow = min(narrow, float(links[previous, node]))
                node = previous
            bps[a, b] = narrow
    return dist, bps
