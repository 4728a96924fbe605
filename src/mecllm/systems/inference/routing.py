"""Tier 2 of the edge-inference system: routes through a plan's shards, the step time of a
node, the estimate admission reads and the admission rule itself (docs/inference.md section
3). The simulator (:mod:`~mecllm.systems.inference.simulator`) and the real gateway of
``mecllm serve`` (:mod:`~mecllm.systems.inference.serve.gateway`) both route through here, so
the plan that is judged is the plan that is served.

A *route* is a sequence of *stages*, one per shard it passes (a server of the plan and the
first of its blocks the route uses); its per-stage constants (compute per token, bytes read,
hops) are fixed when the route is built. A node's *step* serves every request ready there at
once, in the roofline time :func:`step_seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.solution import Placement

#: Bits of one token id on the radio downlink and on the ring back to the first shard.
TOKEN_ID_BITS = 16.0
#: Admission routes a request to the slowest route whose estimated finish leaves this share of
#: the time to its deadline unused (the fastest route if none does); chosen on the default
#: scenario (docs/inference.md section 3).
SLACK_SHARE = 0.5
#: Time constant of the recent prefill load the admission estimate reads (s).
PREFILL_WINDOW_S = 30.0

#: Why a request is turned away (the simulator's and the gateway's records use these words).
NO_ALIVE_ROUTE = "no alive route through every shard"
FAILOVER_NO_ROUTE = "a node failed and no replica route is alive"
FAILOVER_NO_ROOM = "a node failed and no replica route had room"
DEADLINE_UNREACHABLE = "deadline unreachable at admission"
WAITED_PAST_DEADLINE = "waited for memory past its deadline"


def step_seconds(
    flops: float,
    bytes_read: float,
    node_flops: float,
    node_bandwidth_bps: float,
    overhead_s: float = 0.0,
) -> float:
    """The roofline time of one step of a node, s: ``max(FLOPs / F, bytes / M)`` plus the
    requests' time beyond the roofline (``overhead_s``, calibrated by ``mecllm serve``)."""
    compute = flops / node_flops
    read = bytes_read / node_bandwidth_bps
    return (compute if compute > read else read) + overhead_s


def typical_context(instance: InferenceInstance) -> float:
    """A typical request's context while it decodes: prompt + half its output, tokens."""
    return sum(
        t.share * (sum(t.prompt_tokens) / 2 + sum(t.output_tokens) / 4) for t in instance.tasks
    )


class RecentPrefills:
    """Per node, the seconds of prefill compute of the last :data:`PREFILL_WINDOW_S` (an
    exponentially decayed sum): the share of a node's time prefills take, by which admission
    stretches the decode period it expects."""

    def __init__(self, nodes: int) -> None:
        self.recent = [0.0] * nodes
        self.seen = [0.0] * nodes

    def note(self, node: int, seconds: float, now: float) -> None:
        """Add ``seconds`` of prefill compute on ``node`` at time ``now``."""
        decay = math.exp(-(now - self.seen[node]) / PREFILL_WINDOW_S)
        self.recent[node] = self.recent[node] * decay + seconds
        self.seen[node] = now

    def share(self, node: int, now: float) -> float:
        """The share of the node's recent time spent on prefills (capped at 0.9)."""
        decay = math.exp(-(now - self.seen[node]) / PREFILL_WINDOW_S)
        return min(0.9, self.recent[node] * decay / PREFILL_WINDOW_S)


@dataclass
class Stage:
    """One shard of a route: what a token costs there and where it goes next."""

    server: int
    node: int
    flops_per_token: float  # a decode token: the blocks, and the head on the last stage
    head_flops: float  # the head's logits of one position (last stage only, else 0)
    kv_bytes_per_token: float
    weight_bytes: float
    hop_latency_s: float  # to the next stage (or back to the first, for the last)
    hop_s_per_token: float
    next_node: int  # the next stage's node (the first stage's, for the last)
    last: bool
    # Constants of the admission estimate (seconds): compute per token, reading the stage's
    # weights, reading the node's weights, and reading a typical request's KV cache.
    compute_s_per_token: float = 0.0
    weight_read_s: float = 0.0
    node_weight_read_s: float = 0.0
    typical_kv_read_s: float = 0.0
    overhead_s: float = 0.0  # each request's time beyond the roofline in a step of the stage

    def prefill_flops(self, tokens: int) -> float:
        """FLOPs of prefilling ``tokens`` positions here (logits of the last one only)."""
        return tokens * (self.flops_per_token - self.head_flops) + self.head_flops


@dataclass
class Route:
    """A route through shards: ``segments`` are (server, first block used) pairs."""

    segments: tuple[tuple[int, int], ...]
    stages: list[Stage]
    reserve_per_token: dict[int, float]  # node -> KV bytes per token of context


class Network:
    """A plan's nodes as routing sees them (speeds, weights held, KV room) and its routes,
    each built once and known by an id.

    Attributes
    ----------
    flops, memory_bandwidth_bps, overhead_s : per node, FLOP/s, bytes/s and s per request and
        block.
    weight_bytes : per node, the weights of the shards it holds, bytes.
    read_bytes : per node, what a step reads besides KV caches: its shards' weights and, on the
        node of the last shard, the head's, bytes.
    kv_room : per node, memory left for KV caches, bytes.
    routes : every route built so far; ``plan_routes`` are the ids of the plan's chains.
    """

    def __init__(self, instance: InferenceInstance, plan: Placement) -> None:
        self.instance = instance
        self.plan = plan
        v = instance.n_nodes
        self.flops: list[float] = instance.flops.tolist()
        self.memory_bandwidth_bps: list[float] = instance.memory_bandwidth_bps.tolist()
        self.overhead_s: list[float] = instance.overhead_s.tolist()
        self.weight_bytes = [0.0] * v
        for server in plan.servers:
            self.weight_bytes[server.node] += server.blocks * instance.block_bytes
        self.kv_room = [float(instance.memory_bytes[k]) - self.weight_bytes[k] for k in range(v)]
        # What a step reads: a shard's blocks and, on the last shard, the head's weights (the
        # logits of every token read the whole vocabulary matrix).
        self.head_bytes = instance.head_params * instance.weight_bits / 8.0
        self.read_bytes = list(self.weight_bytes)
        for server in plan.servers:
            if server.end == instance.blocks:
                self.read_bytes[server.node] += self.head_bytes
        self.block_flops = 2.0 * instance.params_per_block
        #: A typical request's context (prompt + half its output), for load estimates.
        self.typical_context = typical_context(instance)
        self.routes: list[Route] = []
        self._ids: dict[tuple[tuple[int, int], ...], int] = {}
        self.plan_routes = [
            self.route_id(tuple((k, plan.servers[k].start) for k in servers))
            for servers in plan.chains
        ]

    def route_id(self, segments: tuple[tuple[int, int], ...]) -> int:
        """The id of the route through ``segments`` (built on first use): each is a server and
        the first of its blocks the route uses (a plan's chains use whole servers; a
        Petals-style route may enter a server part-way through its blocks)."""
        known = self._ids.get(segments)
        if known is not None:
            return known
        inst = self.instance
        kvb = inst.kv_bytes_per_token_block
        stages = []
        reserve: dict[int, float] = {}
        nodes = [self.plan.servers[k].node for k, _ in segments]
        for j, (k, start) in enumerate(segments):
            server = self.plan.servers[k]
            node = server.node
            used = server.end - start
            nxt = nodes[(j + 1) % len(nodes)]
            bps = float(inst.route_bps[node, nxt]) if nxt != node else math.inf
            last = j == len(segments) - 1
            per_token_bits = TOKEN_ID_BITS if last else inst.activation_bits_per_token
            head_flops = 2.0 * inst.head_params if last else 0.0
            flops = self.block_flops * used + head_flops
            weight_bytes = used * inst.block_bytes + (self.head_bytes if last else 0.0)
            bandwidth = self.memory_bandwidth_bps[node]
            stages.append(
                Stage(
                    server=k,
                    node=node,
                    flops_per_token=flops,
                    head_flops=head_flops,
                    kv_bytes_per_token=used * kvb,
                    weight_bytes=weight_bytes,
                    hop_latency_s=float(inst.route_latency_s[node, nxt]) if nxt != node else 0.0,
                    hop_s_per_token=per_token_bits / bps,
                    next_node=nxt,
                    last=last,
                    compute_s_per_token=flops / self.flops[node],
                    weight_read_s=weight_bytes / bandwidth,
                    node_weight_read_s=self.read_bytes[node] / bandwidth,
                    typical_kv_read_s=self.typical_context * used * kvb / bandwidth,
                    overhead_s=used * self.overhead_s[node],
                )
            )
            reserve[node] = reserve.get(node, 0.0) + used * kvb
        self.routes.append(Route(segments, stages, reserve))
        self._ids[segments] = len(self.routes) - 1
        return len(self.routes) - 1

    def block_step_s(self, node: int, blocks: int, requests: int) -> float:
        """A decode step of ``blocks`` blocks on ``node`` with ``requests`` requests of the
        typical context: what a Petals-style route search prices a server at, s."""
        inst = self.instance
        kv = requests * self.typical_context * inst.kv_bytes_per_token_block
        return step_seconds(
            requests * self.block_flops * blocks,
            blocks * (inst.block_bytes + kv),
            self.flops[node],
            self.memory_bandwidth_bps[node],
            requests * blocks * self.overhead_s[node],
        )


def route_estimate(
    stages: list[Stage],
    tokens: int,
    flops: list[float],
    active: list[int],
    prefills: RecentPrefills,
    now: float,
    busy_until: list[float] | None = None,
) -> tuple[float, float]:
    """Admission's estimate of a route: the seconds until a context of ``tokens`` is prefilled
    through ``stages`` (after each node's current step, if ``busy_until`` is known), and the
    decode period every stage would have with one more request (each stage's step the roofline
    of its active requests' compute and of reading the node's weights and their typical KV
    cache, stretched by the node's recent prefills). ``flops``: each node's FLOP/s;
    ``active``: each node's admitted requests."""
    prefill = 0.0
    period = 0.0
    for stage in stages:
        if busy_until is not None:
            wait = busy_until[stage.node] - now
            if wait > 0.0:
                prefill += wait
        compute = stage.prefill_flops(tokens) / flops[stage.node]
        prefill += (
            (compute if compute > stage.weight_read_s else stage.weight_read_s)
            + stage.overhead_s
            + stage.hop_latency_s
            + tokens * stage.hop_s_per_token
        )
        n = active[stage.node] + 1
        compute = n * stage.compute_s_per_token
        memory = stage.node_weight_read_s + n * stage.typical_kv_read_s
        # Decode steps share the node with other requests' prefills.
        stretch = 1.0 / (1.0 - prefills.share(stage.node, now))
        period += (
            ((compute if compute > memory else memory) + n * stage.overhead_s) * stretch
            + stage.hop_latency_s
            + stage.hop_s_per_token
        )
    return prefill, period


@dataclass(frozen=True)
class Decision:
    """What admission decided for one request: admitted on ``route``, rejected for
    ``reason``, or no room now (every alive route lacks KV memory; the request waits)."""

    outcome: Literal["admitted", "rejected", "no room"]
    route: int = -1
    reason: str = ""


def admit(
    candidates: Sequence[int],
    fits: Callable[[int], bool],
    estimate: Callable[[int], float],
    time_left_s: float,
    *,
    failover: bool = False,
    waited: bool = False,
) -> Decision:
    """The admission rule, for a new request or one failed over from a dead node.

    Of the ``candidates`` (alive routes) that ``fits`` (KV memory on every node now), take the
    slowest whose ``estimate`` (seconds to the answer) leaves :data:`SLACK_SHARE` of
    ``time_left_s`` unused, so that fast routes stay free for urgent requests; the fastest if
    none does (on a tie, the first route). Reject a new request whose best estimate misses
    its deadline; a failed-over request takes the fastest route whatever its deadline.
    """
    if not candidates:
        return Decision("rejected", reason=FAILOVER_NO_ROUTE if failover else NO_ALIVE_ROUTE)
    fitting = [c for c in candidates if fits(c)]
    if not fitting:
        if failover:
            return Decision("rejected", reason=FAILOVER_NO_ROOM)
        return Decision("no room")
    estimates = sorted((estimate(c), c) for c in fitting)
    best, route = estimates[0]
    if not failover and len(estimates) > 1:
        budget = time_left_s * (1.0 - SLACK_SHARE)
        fits_budget = [(guess, -option) for guess, option in estimates if guess <= budget]
        if fits_budget:  # the slowest that fits; on a tie the first route
            best, negative = max(fits_budget)
            route = -negative
    if not failover and best > time_left_s:
        return Decision("rejected", reason=WAITED_PAST_DEADLINE if waited else DEADLINE_UNREACHABLE)
    return Decision("admitted", route=route)
