"""The physics of the edge-inference system: a deterministic discrete-event simulation of a
placement plan over a request stream (docs/inference.md section 4).

What it models, per request: the upload to its access node, the prompt's hop to the first
shard, the **prefill** through the chain's shards, then the **decode** loop, one token per turn
through every shard and back to the first (a ring, as exo and prima.cpp run it), and the
download of the answer. Per node: **iteration-level batching** (each step serves every request
ready at the node, up to ``max_batch``) with a **roofline** step time,
``max(FLOPs / F_v, (weights read + KV cache read) / M_v)``; weights are read once per step
whatever the batch, which is why batching raises throughput. **KV-cache memory** is reserved
for ``(I + O)`` tokens on every node of the route when a request is admitted; a request that
does not fit waits, and is rejected with its reason when it can no longer make its deadline.
Tier 2 routing and admission happen here: each arrival takes the slowest route whose
load-aware estimated finish leaves half its time to the deadline unused (the route with the
earliest estimated finish if none does), or is rejected at once when no route can meet its
deadline. **Node failures** at given times move the requests of the failed node to another
route, where their prompt and the tokens generated so far are prefilled again, or end them
with a reason. Every request ends on time, late or rejected with a reason; none is lost.

Speed: requests that decode together on the same route move as one *cohort* (they leave a step
together, so they arrive at the next shard together), so an event is a cohort's step, not a
token's; a cohort keeps its members' finishing turns in a heap and the sum of their contexts.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.core.feasibility import Violation
from mecllm.systems.inference.failures import Failure
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.requests import Stream
from mecllm.systems.inference.routing import (
    TOKEN_ID_BITS,
    Network,
    RecentPrefills,
    Route,
    Stage,
    admit,
    route_estimate,
    step_seconds,
)
from mecllm.systems.inference.solution import Placement

_PENDING, _ON_TIME, _LATE, _REJECTED = 0, 1, 2, 3
# Event kinds, in the order they run at equal times: failures, step ends, arrivals and items
# reaching a node. An idle node that has work starts its next step only once every event of
# the instant has run, so that everything ready at one instant is batched together.
_FAIL, _STEP_END, _ARRIVE, _READY = 0, 1, 2, 3


class _Cohort:
    """Requests decoding together on one chain, at one stage."""

    __slots__ = ("chain", "clock", "finish", "kv_tokens", "members", "stage", "stages")

    def __init__(self, chain: int, stages: list[Stage]) -> None:
        self.chain = chain
        self.stages = stages
        self.stage = 0
        self.clock = 0
        self.members: dict[int, tuple[int, int]] = {}  # rid -> (clock at join, tokens then)
        self.finish: list[tuple[int, int]] = []
        self.kv_tokens = 0


@dataclass(frozen=True, slots=True)
class _Prefill:
    rid: int
    epoch: int
    chain: int
    stage: int
    tokens: int


@dataclass
class SimulationReport:
    """Every figure of one simulated run (seconds, tokens, joules; per-node lists)."""

    requests: int
    on_time: int
    late: int
    rejected: int
    lost: int
    rejected_by_reason: dict[str, int]
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    tokens_per_s: float
    node_utilisation: list[float]
    node_memory_peak_bytes: list[float]
    energy_j: float
    span_s: float
    failovers: int
    violations: list[Violation] = field(default_factory=list)
    latency_s: FloatArray | None = field(default=None, repr=False)
    status: list[str] = field(default_factory=list, repr=False)

    @property
    def on_time_ratio(self) -> float:
        """On-time completions over all requests (0 when there were none)."""
        return self.on_time / self.requests if self.requests else 0.0

    @property
    def feasible(self) -> bool:
        """True when the plan's weights fit and the run could be simulated."""
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """JSON form (non-finite numbers become null)."""

        def num(value: float) -> float | None:
            return float(value) if math.isfinite(value) else None

        return {
            "feasible": self.feasible,
            "requests": self.requests,
            "on_time_ratio": self.on_time_ratio,
            "on_time": self.on_time,
            "late": self.late,
            "rejected": self.rejected,
            "lost": self.lost,
            "rejected_by_reason": self.rejected_by_reason,
            "p50_latency_s": num(self.latency_p50_s),
            "p95_latency_s": num(self.latency_p95_s),
            "p99_latency_s": num(self.latency_p99_s),
            "p50_ttft_s": num(self.ttft_p50_s),
            "p95_ttft_s": num(self.ttft_p95_s),
            "tokens_per_s": self.tokens_per_s,
            "node_utilisation": self.node_utilisation,
            "node_memory_peak_bytes": self.node_memory_peak_bytes,
            "energy_j": self.energy_j,
            "span_s": self.span_s,
            "failovers": self.failovers,
            "violations": [v.to_dict() for v in self.violations],
        }


def check_memory(instance: InferenceInstance, plan: Placement) -> list[Violation]:
    """Nodes whose shards' weights alone exceed their memory."""
    weights = np.zeros(instance.n_nodes)
    for server in plan.servers:
        weights[server.node] += server.blocks * instance.block_bytes
    out = []
    for v in np.flatnonzero(weights > instance.memory_bytes * (1 + 1e-9)):
        out.append(
            Violation(
                "node_memory",
                int(v),
                float(weights[v] - instance.memory_bytes[v]),
                f"node {v} holds {weights[v] / 1e9:.3g} GB of weights but has "
                f"{instance.memory_bytes[v] / 1e9:.3g} GB of memory",
            )
        )
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


class Simulator:
    """One run of a plan over a stream (see the module docstring)."""

    def __init__(
        self,
        instance: InferenceInstance,
        plan: Placement,
        stream: Stream,
        failures: tuple[Failure, ...] = (),
    ) -> None:
        self.instance = instance
        self.plan = plan
        self.stream = stream
        self.failures = failures
        inst = instance
        v = inst.n_nodes
        #: Speeds, weights and routes (the gateway of ``mecllm serve`` builds the same).
        self.network = network = Network(instance, plan)
        self.flops = network.flops
        self.mem_bw = network.memory_bandwidth_bps
        self.kv_free = list(network.kv_room)
        self.kv_peak = [0.0] * v
        self.alive = [True] * v
        self.epoch = [0] * v
        self.busy = [False] * v
        self.kicked = [False] * v
        self.pending: list[int] = []  # nodes to start a step once this instant is over
        self.busy_until = [0.0] * v
        self.busy_time = [0.0] * v
        self.ready: list[list[Any]] = [[] for _ in range(v)]
        self.active = [0] * v  # admitted requests whose route uses the node
        self.prefills = RecentPrefills(v)
        self.mean_hop_s = float(inst.route_latency_s.mean())
        #: Every route built so far (the plan's chains first), by id.
        self.chains = network.routes
        self.planned = list(network.plan_routes)
        # Per-request state.
        r = len(stream)
        self.arrival: list[float] = stream.arrival_s.tolist()
        self.user: list[int] = stream.user.tolist()
        self.prompt: list[int] = stream.prompt_tokens.tolist()
        self.output: list[int] = stream.output_tokens.tolist()
        self.deadline: list[float] = stream.deadline_s.tolist()
        self.uplink: list[float] = inst.uplink_bps.tolist()
        self.downlink: list[float] = inst.downlink_bps.tolist()
        self.radio: list[float] = inst.radio_power_w.tolist()
        self.access: list[int] = inst.access_node.tolist()
        bits = [t.input_bits_per_token for t in inst.tasks]
        self.input_bits = [
            bits[k] * i for k, i in zip(stream.task.tolist(), self.prompt, strict=True)
        ]
        self.status = [_PENDING] * r
        self.reason: list[str] = [""] * r
        self.route = [-1] * r
        self.generated = [0] * r
        self.req_epoch = [0] * r
        self.cohort_of: list[_Cohort | None] = [None] * r
        self.first_token = [math.nan] * r
        self.done = [math.nan] * r
        self.waiting: deque[int] = deque()
        self.heap: list[tuple[float, int, int, Any]] = []
        self.counter = itertools.count(1)  # ties between events at one time: first come first
        self.failovers = 0
        #: With ``record_steps``: per node step, (node, decoding requests, prefill tokens).
        self.steps: list[tuple[int, int, int]] | None = None
        self.radio_energy = 0.0

    def _hop(self, stage: Stage, tokens: int) -> float:
        return stage.hop_latency_s + tokens * stage.hop_s_per_token

    # ------------------------------------------------------------------ events
    def _push(self, time: float, kind: int, payload: Any, now: float | None = None) -> None:
        if kind == _READY and now is not None and time <= now:
            node, item = payload  # no hop: straight into the node's queue
            self._ready(node, item, now)
            return
        heapq.heappush(self.heap, (time, kind, next(self.counter), payload))

    def run(self) -> SimulationReport:
        """Simulate every request to its end and report."""
        violations = check_memory(self.instance, self.plan)
        if violations:
            return self._report(violations)
        # Arrivals (after the upload) are read from a sorted list rather than the heap, which
        # then holds only the events in flight: a smaller heap is a faster one.
        arrive_at = []
        for rid, time in enumerate(self.arrival):
            upload = self.input_bits[rid] / self.uplink[self.user[rid]]
            self.radio_energy += upload * self.radio[self.user[rid]]
            arrive_at.append(time + upload)
        arrive_order = sorted(range(len(arrive_at)), key=arrive_at.__getitem__)
        arrive_t = [arrive_at[rid] for rid in arrive_order]
        n_arrivals = len(arrive_t)
        k = 0
        for failure in self.failures:
            self._push(failure.time_s, _FAIL, failure.node)
        # The loop is written out (locals, the decode path inlined) because it runs once per
        # node step: about 18 times per request on the default scenario.
        heap = self.heap
        pop = heapq.heappop
        push = heapq.heappush
        pending = self.pending
        epochs = self.epoch
        busy = self.busy
        kicked = self.kicked
        ready = self.ready
        alive = self.alive
        chains = self.chains
        start_step = self._start_step
        max_batch = self.instance.max_batch
        counter = self.counter
        flops = self.flops
        mem_bw = self.mem_bw
        busy_until = self.busy_until
        busy_time = self.busy_time
        while True:
            if k < n_arrivals and (
                not heap
                or arrive_t[k] < heap[0][0]
                or (arrive_t[k] == heap[0][0] and heap[0][1] > _ARRIVE)
            ):
                now = arrive_t[k]
                rid = arrive_order[k]
                k += 1
                self._arrive(rid, now)
                kind = _ARRIVE
            elif heap:
                now, kind, _, payload = pop(heap)
            else:
                break
            if kind == _STEP_END:
                node, epoch, batch = payload
                if epoch == epochs[node]:
                    # Items whose next step is on this same node join its queue before the
                    # node is marked idle, so that they are batched together.
                    for item in batch:
                        if type(item) is _Prefill:
                            self._prefill_done(item, now)
                            continue
                        members = item.members
                        if not members:
                            continue
                        stage = item.stages[item.stage]
                        if not stage.last:
                            item.stage += 1
                            hop = stage.hop_latency_s + len(members) * stage.hop_s_per_token
                            target = stage.next_node
                        else:
                            item.clock += 1
                            item.kv_tokens += len(members)
                            if item.finish[0][0] <= item.clock:
                                self._finish_due(item, now)
                                if not members:
                                    continue
                            item.stage = 0
                            hop = stage.hop_latency_s + stage.hop_s_per_token
                            target = stage.next_node
                        if hop > 0.0:
                            push(heap, (now + hop, _READY, next(counter), (target, item)))
                        elif alive[target]:
                            ready[target].append(item)
                            if not busy[target] and not kicked[target]:
                                kicked[target] = True
                                pending.append(target)
                        else:
                            self._fail_item(item, target, now)
                    busy[node] = False
                    if ready[node] and not kicked[node]:
                        kicked[node] = True
                        pending.append(node)
            elif kind == _READY:
                node, item = payload
                if type(item) is _Cohort and item.members and alive[node]:
                    ready[node].append(item)
                    if not busy[node] and not kicked[node]:
                        kicked[node] = True
                        pending.append(node)
                else:
                    self._ready(node, item, now)
            elif kind == _FAIL:
                self._fail(payload, now)
            if (
                pending
                and (not heap or heap[0][0] > now)
                and (k >= n_arrivals or arrive_t[k] > now)
            ):
                # Nothing else happens at this instant: the kicked nodes start their steps.
                for node in pending:
                    kicked[node] = False
                    if busy[node] or not alive[node]:
                        continue
                    queue = ready[node]
                    if len(queue) == 1 and type(queue[0]) is _Cohort:
                        # The common case, written out: one cohort decoding alone at the node.
                        item = queue[0]
                        count = len(item.members)
                        if 0 < count <= max_batch:
                            ready[node] = []
                            stage = chains[item.chain].stages[item.stage]
                            seconds = step_seconds(
                                count * stage.flops_per_token,
                                stage.weight_bytes + item.kv_tokens * stage.kv_bytes_per_token,
                                flops[node],
                                mem_bw[node],
                                count * stage.overhead_s,
                            )
                            if self.steps is not None:
                                self.steps.append((node, count, 0))
                            busy[node] = True
                            busy_until[node] = now + seconds
                            busy_time[node] += seconds
                            push(
                                heap,
                                (
                                    now + seconds,
                                    _STEP_END,
                                    next(counter),
                                    (node, epochs[node], queue),
                                ),
                            )
                            continue
                    start_step(node, now)
                pending.clear()
        end = max([t for t in self.done if not math.isnan(t)], default=0.0)
        while self.waiting:  # nothing will ever free room for them
            rid = self.waiting.popleft()
            self._reject(rid, "no memory on any alive route before the end of the run", end)
        return self._report([])

    # ------------------------------------------------------------------ admission (tier 2)
    def _estimate(self, chain: Route, rid: int, now: float) -> float:
        """Estimated seconds from ``now`` until request ``rid`` is answered on ``chain``: the
        wait for each stage's current step, the prefill of its context, then its remaining
        tokens at the decode period every stage would have with one more request (each stage's
        step the roofline of its active requests' compute and of reading the node's weights
        and their typical KV cache), and the download."""
        tokens = self.prompt[rid] + self.generated[rid]
        prefill, period = route_estimate(
            chain.stages, tokens, self.flops, self.active, self.prefills, now, self.busy_until
        )
        left = self.output[rid] - max(self.generated[rid], 1)
        prefill += self._access_hop_s(rid, chain.stages[0].node)
        return prefill + left * period + self._answer_s(chain, rid)

    def _access_hop_s(self, rid: int, node: int) -> float:
        """Seconds for the prompt to go from the user's access node to ``node`` (0 if same)."""
        access = self.access[self.user[rid]]
        if access == node:
            return 0.0
        latency = float(self.instance.route_latency_s[access, node])
        return latency + float(self.input_bits[rid]) / float(self.instance.route_bps[access, node])

    def _answer_s(self, chain: Route, rid: int) -> float:
        """Seconds from the last token to the user: a backhaul hop to the access node (if the
        last shard is elsewhere) and the radio download of the ``O`` token ids."""
        bits = self.output[rid] * TOKEN_ID_BITS
        access = self.access[self.user[rid]]
        last = chain.stages[-1].node
        hop = 0.0
        if access != last:
            hop = float(self.instance.route_latency_s[last, access]) + bits / float(
                self.instance.route_bps[last, access]
            )
        return hop + bits / self.downlink[self.user[rid]]

    def _fits(self, chain: Route, rid: int) -> bool:
        context = self.prompt[rid] + self.output[rid]
        return all(
            self.alive[node] and self.kv_free[node] >= context * per_token
            for node, per_token in chain.reserve_per_token.items()
        )

    def _candidates(self) -> list[int]:
        """The chains a request may take: the plan's, or a shortest path over all servers."""
        if self.plan.routing == "chains":
            return [
                c
                for c in self.planned
                if all(self.alive[stage.node] for stage in self.chains[c].stages)
            ]
        path = self._shortest_path()
        return [] if path is None else [self.network.route_id(path)]

    def _shortest_path(self) -> tuple[tuple[int, int], ...] | None:
        """Dijkstra over block positions, as a Petals client routes: a server holding blocks
        ``[start, end)`` is an edge from any position in that range to ``end``, costing its
        node's decode step for the blocks used with one more request (the roofline of its
        active requests' compute and of reading those blocks' weights and the requests' typical
        KV cache) plus a hop latency."""
        blocks = self.instance.blocks
        best = [math.inf] * (blocks + 1)
        via: list[tuple[int, int] | None] = [None] * (blocks + 1)
        best[0] = 0.0
        queue = [(0.0, 0)]
        while queue:
            cost, position = heapq.heappop(queue)
            if cost > best[position] or position == blocks:
                continue
            for k, server in enumerate(self.plan.servers):
                if not server.start <= position < server.end or not self.alive[server.node]:
                    continue
                node = server.node
                step = self.network.block_step_s(node, server.end - position, self.active[node] + 1)
                total = cost + step + self.mean_hop_s
                if total < best[server.end]:
                    best[server.end] = total
                    via[server.end] = (position, k)
                    heapq.heappush(queue, (total, server.end))
        if not math.isfinite(best[blocks]):
            return None
        path = []
        position = blocks
        while position > 0:
            link = via[position]
            assert link is not None
            position, k = link
            path.append((k, position))
        return tuple(reversed(path))

    def _admit(self, rid: int, now: float, failover: bool = False, waited: bool = False) -> str:
        """Route and admit ``rid`` by the rule of :func:`~mecllm.systems.inference.routing.admit`:
        "admitted", "rejected" (with its reason) or "no room" (every alive route lacks KV
        memory now; the caller queues it)."""
        decision = admit(
            self._candidates(),
            lambda c: self._fits(self.chains[c], rid),
            lambda c: self._estimate(self.chains[c], rid, now),
            self.arrival[rid] + self.deadline[rid] - now,
            failover=failover,
            waited=waited,
        )
        if decision.outcome == "rejected":
            self._reject(rid, decision.reason, now)
            return "rejected"
        if decision.outcome == "no room":
            return "no room"
        chain = decision.route
        self._reserve(rid, chain)
        self.route[rid] = chain
        tokens = self.prompt[rid] + self.generated[rid]
        first = self.chains[chain].stages[0].node
        item = _Prefill(rid, self.req_epoch[rid], chain, 0, tokens)
        self._push(now + self._access_hop_s(rid, first), _READY, (first, item))
        return "admitted"

    def _arrive(self, rid: int, now: float) -> None:
        """A new request: admitted, rejected, or queued behind those already waiting."""
        if self.waiting:
            self.waiting.append(rid)  # first come, first served
            return
        if self._admit(rid, now) == "no room":
            self.waiting.append(rid)

    def _reserve(self, rid: int, chain: int) -> None:
        context = self.prompt[rid] + self.output[rid]
        for node, per_token in self.chains[chain].reserve_per_token.items():
            self.kv_free[node] -= context * per_token
            self.active[node] += 1
            used = float(self.instance.memory_bytes[node]) - self.kv_free[node]
            self.kv_peak[node] = max(self.kv_peak[node], used)

    def _release(self, rid: int) -> None:
        chain = self.route[rid]
        if chain < 0:
            return
        context = self.prompt[rid] + self.output[rid]
        for node, per_token in self.chains[chain].reserve_per_token.items():
            self.kv_free[node] += context * per_token
            self.active[node] -= 1
        self.route[rid] = -1

    def _retry_waiting(self, now: float) -> None:
        """Admit waiting requests from the head of the queue while they fit; a request that
        can no longer make its deadline is rejected with that reason."""
        while self.waiting:
            rid = self.waiting[0]
            if now >= self.arrival[rid] + self.deadline[rid]:
                self.waiting.popleft()
                self._reject(rid, "waited for memory past its deadline", now)
                continue
            if self._admit(rid, now, waited=True) == "no room":
                return
            self.waiting.popleft()

    def _reject(self, rid: int, reason: str, now: float) -> None:
        self.status[rid] = _REJECTED
        self.reason[rid] = reason
        self.done[rid] = now
        self.req_epoch[rid] += 1

    # ------------------------------------------------------------------ node steps
    def _ready(self, node: int, item: Any, now: float) -> None:
        if isinstance(item, _Prefill):
            if item.epoch != self.req_epoch[item.rid]:
                return  # the request moved (failover) or ended
        elif not item.members:
            return
        if not self.alive[node]:
            self._fail_item(item, node, now)
            return
        self.ready[node].append(item)
        self._kick(node)

    def _kick(self, node: int) -> None:
        """Start the node's next step once everything ready at this instant has arrived (the
        run loop starts it when the next event is later than now)."""
        if not self.busy[node] and not self.kicked[node] and self.ready[node]:
            self.kicked[node] = True
            self.pending.append(node)

    def _start_step(self, node: int, now: float) -> None:
        """Start a step over the node's ready queue (a lone cohort is started by the run loop
        itself)."""
        queue = self.ready[node]
        batch: list[Any] = []
        cohorts = 0
        count = 0
        limit = self.instance.max_batch
        rest: list[Any] = []
        req_epoch = self.req_epoch
        for item in queue:
            if type(item) is _Prefill:
                if item.epoch != req_epoch[item.rid]:
                    continue
                size = 1
            else:
                size = len(item.members)
                if size == 0:
                    continue
                cohorts += 1
            if batch and count + size > limit:
                rest.append(item)
                continue
            batch.append(item)
            count += size
        self.ready[node] = rest
        if not batch:
            return
        if cohorts > 1:
            batch = self._merge(batch)
        flops = 0.0
        memory = 0.0
        chains = self.chains
        # Each server's weights are read once per step: as many blocks as the widest use of
        # it in the batch.
        read: dict[int, float] = {}
        prefill_flops = 0.0
        decoding = prefill_tokens = 0
        extra = 0.0  # the requests' time beyond the roofline
        for item in batch:
            stage = chains[item.chain].stages[item.stage]
            if read.get(stage.server, 0.0) < stage.weight_bytes:
                read[stage.server] = stage.weight_bytes
            if type(item) is _Prefill:
                # Logits only for the prompt's last position: the next token.
                prefill_flops += stage.prefill_flops(item.tokens)
                memory += item.tokens * stage.kv_bytes_per_token
                prefill_tokens += item.tokens
                extra += stage.overhead_s
            else:
                decoding += len(item.members)
                extra += len(item.members) * stage.overhead_s
                flops += len(item.members) * stage.flops_per_token
                memory += item.kv_tokens * stage.kv_bytes_per_token
        memory += sum(read.values())
        if prefill_flops > 0.0:
            flops += prefill_flops
            self.prefills.note(node, prefill_flops / self.flops[node], now)
        seconds = step_seconds(flops, memory, self.flops[node], self.mem_bw[node], extra)
        if self.steps is not None:
            self.steps.append((node, decoding, prefill_tokens))
        self.busy[node] = True
        self.busy_until[node] = now + seconds
        self.busy_time[node] += seconds
        heapq.heappush(
            self.heap,
            (now + seconds, _STEP_END, next(self.counter), (node, self.epoch[node], batch)),
        )

    def _merge(self, batch: list[Any]) -> list[Any]:
        """Cohorts of one chain at one stage become one (they move together from now on); the
        largest hosts the others, so a merge costs the size of the smaller ones."""
        groups: dict[tuple[int, int], list[_Cohort]] = {}
        out: list[Any] = []
        for item in batch:
            if type(item) is _Prefill:
                out.append(item)
                continue
            key = (item.chain, item.stage)
            group = groups.get(key)
            if group is None:
                groups[key] = [item]
            else:
                group.append(item)
        for group in groups.values():
            host = max(group, key=lambda cohort: len(cohort.members))
            out.append(host)
            for item in group:
                if item is host:
                    continue
                for rid, (joined, tokens) in item.members.items():
                    now_tokens = tokens + item.clock - joined
                    host.members[rid] = (host.clock, now_tokens)
                    heapq.heappush(host.finish, (host.clock + self.output[rid] - now_tokens, rid))
                    self.cohort_of[rid] = host
                host.kv_tokens += item.kv_tokens
                item.members = {}
        return out

    def _prefill_done(self, item: _Prefill, now: float) -> None:
        if item.epoch != self.req_epoch[item.rid]:
            return
        chain = self.chains[item.chain]
        stage = chain.stages[item.stage]
        if item.stage + 1 < len(chain.stages):
            nxt = _Prefill(item.rid, item.epoch, item.chain, item.stage + 1, item.tokens)
            node = chain.stages[item.stage + 1].node
            self._push(now + self._hop(stage, item.tokens), _READY, (node, nxt), now)
            return
        rid = item.rid
        if self.generated[rid] == 0:
            self.generated[rid] = 1
            self.first_token[rid] = now + TOKEN_ID_BITS / self.downlink[self.user[rid]]
        if self.generated[rid] >= self.output[rid]:
            self._complete(rid, now)
            return
        cohort = _Cohort(item.chain, chain.stages)
        cohort.members[rid] = (0, self.generated[rid])
        cohort.finish.append((self.output[rid] - self.generated[rid], rid))
        cohort.kv_tokens = self.prompt[rid] + self.generated[rid]
        self.cohort_of[rid] = cohort
        self._push(now + self._hop(stage, 1), _READY, (chain.stages[0].node, cohort), now)

    def _finish_due(self, cohort: _Cohort, now: float) -> None:
        """Complete the members whose last token the cohort's turn just produced."""
        while cohort.finish and cohort.finish[0][0] <= cohort.clock:
            _, rid = heapq.heappop(cohort.finish)
            entry = cohort.members.pop(rid, None)
            if entry is None:
                continue  # it left the cohort (failover)
            joined, tokens = entry
            self.generated[rid] = tokens + cohort.clock - joined
            cohort.kv_tokens -= self.prompt[rid] + self.generated[rid]
            self.cohort_of[rid] = None
            self._complete(rid, now)

    def _complete(self, rid: int, now: float) -> None:
        """The answer leaves the last shard's node for the user's access node, then the radio."""
        done = now + self._answer_s(self.chains[self.route[rid]], rid)
        self.done[rid] = done
        on_time = done - self.arrival[rid] <= self.deadline[rid]
        self.status[rid] = _ON_TIME if on_time else _LATE
        self.req_epoch[rid] += 1
        self._release(rid)
        if self.waiting:
            self._retry_waiting(now)

    # ------------------------------------------------------------------ failures
    def _fail(self, node: int, now: float) -> None:
        if not self.alive[node]:
            return
        self.alive[node] = False
        self.epoch[node] += 1
        self.busy[node] = False
        self.ready[node] = []
        affected = [
            rid
            for rid, chain in enumerate(self.route)
            if chain >= 0 and node in self.chains[chain].reserve_per_token
        ]
        for rid in affected:
            self._move(rid, now)

    def _fail_item(self, item: Any, node: int, now: float) -> None:
        """An item reached a node that has failed: move its requests."""
        if isinstance(item, _Prefill):
            if item.epoch == self.req_epoch[item.rid]:
                self._move(item.rid, now)
        else:
            for rid in list(item.members):
                self._move(rid, now)

    def _move(self, rid: int, now: float) -> None:
        """Take ``rid`` off its route and admit it elsewhere (re-prefilling its context)."""
        if self.status[rid] != _PENDING:
            return
        cohort = self.cohort_of[rid]
        if cohort is not None:
            entry = cohort.members.pop(rid, None)
            if entry is not None:
                joined, tokens = entry
                self.generated[rid] = tokens + cohort.clock - joined
                cohort.kv_tokens -= self.prompt[rid] + self.generated[rid]
            self.cohort_of[rid] = None
        self.req_epoch[rid] += 1
        self._release(rid)
        self.failovers += 1
        self._admit(rid, now, failover=True)

    # ------------------------------------------------------------------ report
    def _report(self, violations: list[Violation]) -> SimulationReport:
        r = len(self.arrival)
        status = self.status
        reasons: dict[str, int] = {}
        for rid in range(r):
            if status[rid] == _REJECTED:
                reasons[self.reason[rid]] = reasons.get(self.reason[rid], 0) + 1
        finished = [rid for rid in range(r) if status[rid] in (_ON_TIME, _LATE)]
        latency = [self.done[rid] - self.arrival[rid] for rid in finished]
        ttft = [
            self.first_token[rid] - self.arrival[rid]
            for rid in finished
            if not math.isnan(self.first_token[rid])
        ]
        start = min(self.arrival, default=0.0)
        end = max([t for t in self.done if not math.isnan(t)], default=start)
        span = max(end - start, 1e-9)
        tokens = sum(self.output[rid] for rid in finished)
        power = self.instance.power_w.tolist()
        names = {_PENDING: "lost", _ON_TIME: "on_time", _LATE: "late", _REJECTED: "rejected"}
        return SimulationReport(
            requests=r,
            on_time=sum(1 for s in status if s == _ON_TIME),
            late=sum(1 for s in status if s == _LATE),
            rejected=sum(1 for s in status if s == _REJECTED),
            lost=sum(1 for s in status if s == _PENDING) if not violations else 0,
            rejected_by_reason=reasons,
            latency_p50_s=_percentile(latency, 50),
            latency_p95_s=_percentile(latency, 95),
            latency_p99_s=_percentile(latency, 99),
            ttft_p50_s=_percentile(ttft, 50),
            ttft_p95_s=_percentile(ttft, 95),
            tokens_per_s=tokens / span if finished else 0.0,
            node_utilisation=[b / span for b in self.busy_time],
            node_memory_peak_bytes=[
                max(self.kv_peak[k], self.network.weight_bytes[k])
                for k in range(self.instance.n_nodes)
            ],
            energy_j=sum(p * b for p, b in zip(power, self.busy_time, strict=True))
            + self.radio_energy,
            span_s=span,
            failovers=self.failovers,
            violations=violations,
            latency_s=np.array(latency),
            status=[names[s] for s in status],
        )


def simulate(
    instance: InferenceInstance,
    plan: Placement,
    stream: Stream,
    failures: tuple[Failure, ...] = (),
) -> SimulationReport:
    """Simulate ``plan`` over ``stream`` (with ``failures``) and report."""
    return Simulator(instance, plan, stream, failures).run()
