"""The gateway of a served plan: tier-2 routing, admission with KV-cache reservations, the relay
of every request's tokens and activations through its route's shards, and fail-over.

Each request is driven by its own thread: the prompt is prefilled through the route's shards in
order (the gateway passes each shard's output to the next), then one token at a time goes round
the ring until the answer has all its tokens. Shards batch whatever reaches them together, so
concurrent requests share steps. Routes, estimates and the admission rule are the simulator's,
from one module (:mod:`mecllm.systems.inference.routing`; docs/inference.md section 3):

- a request is admitted on the slowest route whose estimated finish leaves
  :data:`~mecllm.systems.inference.routing.SLACK_SHARE` of its time to the deadline unused
  (else the fastest), and rejected at once when no route can meet its deadline;
- it reserves KV memory for its whole context on every node of its route; when no alive route
  has room it waits, and is rejected when its deadline has passed;
- when a shard fails (its calls fail with ``UNAVAILABLE``, or the run saw its process die), the
  requests on it move to a route without it, where their prompt and the tokens so far are
  prefilled again; with no such route they end with that reason.

The estimate is the simulator's without the wait for a node's current step and the prefill
stretch, which the gateway cannot see. Every request ends with a :class:`Record`: an answer
(on time or late) or a reason (rejected or failed); none is lost.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import grpc
import numpy as np

from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.routing import (
    TOKEN_ID_BITS,
    WAITED_PAST_DEADLINE,
    Decision,
    Network,
    RecentPrefills,
    admit,
    route_estimate,
)
from mecllm.systems.inference.serve.shard import SERVICE
from mecllm.systems.inference.solution import Placement
from mecllm.transport.rpc import Client, TransferError
from mecllm.transport.tensors import decode, encode

Outcome = Literal["on_time", "late", "rejected", "failed"]
#: Deadline of one Step call, s (a shard that does not answer in this time has failed).
STEP_TIMEOUT_S = 30.0
#: Status codes that mean the shard is gone (its process died or stopped answering).
_GONE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


@dataclass
class Record:
    """One request from arrival to its end; times in seconds from the start of the run."""

    rid: int
    user: int
    task: int
    prompt_tokens: int
    output_tokens: int
    deadline_s: float
    arrival_s: float
    outcome: Outcome = "failed"
    reason: str = ""
    admitted_s: float = math.nan
    first_token_s: float = math.nan
    finish_s: float = math.nan
    route: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    failovers: int = 0

    @property
    def latency_s(self) -> float:
        """Finish minus arrival (NaN without an answer)."""
        return self.finish_s - self.arrival_s

    def to_dict(self) -> dict[str, Any]:
        """JSON form (NaN as null)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        out["latency_s"] = None if math.isnan(self.latency_s) else self.latency_s
        return out


class _Failed(Exception):
    """A shard of the route failed; ``server`` is the one that did."""

    def __init__(self, server: int, detail: str) -> None:
        super().__init__(detail)
        self.server = server


class Gateway:
    """Routes and drives requests over a plan's shards (see the module docstring).

    Parameters
    ----------
    instance : the instance whose node speeds the estimates use (the calibrated one).
    plan : the placement being served (routing by chains).
    addresses : server index -> ``host:port`` of its shard service.
    token : the run's token.
    clock : seconds since the start of the run.
    """

    def __init__(
        self,
        instance: InferenceInstance,
        plan: Placement,
        addresses: dict[int, str],
        token: str,
        clock: Callable[[], float],
    ) -> None:
        if plan.routing != "chains":
            raise ValueError("mecllm serve runs plans routed by chains")
        self.instance = instance
        self.plan = plan
        self.clock = clock
        self.clients = {k: Client(a, SERVICE, token) for k, a in addresses.items()}
        self.lock = threading.Condition()
        self.dead: set[int] = set()
        network = Network(instance, plan)
        self.routes = [network.routes[r] for r in network.plan_routes]
        self.chains = [route.stages for route in self.routes]
        self.kv_free = list(network.kv_room)
        self.flops = network.flops
        self.active = [0] * instance.n_nodes
        self.prefills = RecentPrefills(instance.n_nodes)
        #: Per Step call: its time outside the shard (the round trip through the gateway), s.
        self.trips: list[float] = []

    # ------------------------------------------------------------------ admission
    def _alive_chains(self) -> list[int]:
        return [
            c
            for c, stages in enumerate(self.chains)
            if not any(s.server in self.dead for s in stages)
        ]

    def _reserve_per_node(self, chain: int, context: int) -> dict[int, float]:
        per_token = self.routes[chain].reserve_per_token
        return {node: context * bytes_ for node, bytes_ in per_token.items()}

    def _estimate(self, chain: int, tokens: int, left: int, answer_s: float, now: float) -> float:
        prefill, period = route_estimate(
            self.chains[chain], tokens, self.flops, self.active, self.prefills, now
        )
        return prefill + left * period + answer_s

    def _admit(self, record: Record, tokens: int, left: int, failover: bool) -> Decision:
        """Under the lock: the decision of the admission rule, and the reservation of an
        admitted request's KV memory on its route."""
        context = record.prompt_tokens + record.output_tokens
        answer = self._answer_s(record)
        now = self.clock()
        decision = admit(
            self._alive_chains(),
            lambda c: all(
                self.kv_free[node] >= need
                for node, need in self._reserve_per_node(c, context).items()
            ),
            lambda c: self._estimate(c, tokens, left, answer, now),
            record.arrival_s + record.deadline_s - now,
            failover=failover,
        )
        if decision.outcome != "admitted":
            return decision
        chain = decision.route
        for node, need in self._reserve_per_node(chain, context).items():
            self.kv_free[node] -= need
            self.active[node] += 1
        for stage in self.chains[chain]:
            self.prefills.note(
                stage.node, stage.prefill_flops(tokens) / self.flops[stage.node], now
            )
        return decision

    def _release(self, chain: int, record: Record) -> None:
        with self.lock:
            context = record.prompt_tokens + record.output_tokens
            for node, need in self._reserve_per_node(chain, context).items():
                self.kv_free[node] += need
                self.active[node] -= 1
            self.lock.notify_all()

    def _answer_s(self, record: Record) -> float:
        """Emulated radio: the answer's token ids down the user's downlink."""
        return record.output_tokens * TOKEN_ID_BITS / float(self.instance.downlink_bps[record.user])

    def mark_dead(self, server: int) -> None:
        """The run saw shard ``server``'s process end: no new request is routed through it."""
        with self.lock:
            self.dead.add(server)

    # ------------------------------------------------------------------ a request
    def serve(self, record: Record, prompt: list[int]) -> Record:
        """Drive one request to its end (blocking); fills and returns ``record``."""
        inst = self.instance
        bits = inst.tasks[record.task].input_bits_per_token * record.prompt_tokens
        _sleep_until(record.arrival_s + bits / float(inst.uplink_bps[record.user]), self.clock)
        failover = False
        while True:
            with self.lock:
                tokens = record.prompt_tokens + len(record.tokens)
                left = record.output_tokens - max(len(record.tokens), 1)
                while True:
                    decision = self._admit(record, tokens, left, failover)
                    if decision.outcome != "no room":
                        break
                    wait = record.arrival_s + record.deadline_s - self.clock()
                    if wait <= 0:
                        decision = Decision("rejected", reason=WAITED_PAST_DEADLINE)
                        break
                    self.lock.wait(timeout=min(wait, 0.5))
            if decision.outcome == "rejected":
                record.outcome = "rejected"
                record.reason = decision.reason
                record.finish_s = self.clock()
                return record
            chain = decision.route
            if math.isnan(record.admitted_s):
                record.admitted_s = self.clock()
            record.route = [s.server for s in self.chains[chain]]
            try:
                self._generate(chain, record, prompt)
            except _Failed as exc:
                self._release(chain, record)
                self.mark_dead(exc.server)
                self._drop_caches(chain, record.rid, skip=exc.server)
                record.failovers += 1
                failover = True
                continue
            except TransferError as exc:  # a refusal: a bug, not a failure of the shard
                self._release(chain, record)
                self._drop_caches(chain, record.rid)
                record.outcome = "failed"
                record.reason = f"a shard refused the request: {exc}"
                record.finish_s = self.clock()
                return record
            self._release(chain, record)
            _sleep_until(self.clock() + self._answer_s(record), self.clock)
            record.finish_s = self.clock()
            late = record.finish_s - record.arrival_s > record.deadline_s
            record.outcome = "late" if late else "on_time"
            self._drop_caches(chain, record.rid)
            return record

    def _generate(self, chain: int, record: Record, prompt: list[int]) -> None:
        """Prefill the prompt and the tokens so far, then decode the rest on ``chain``."""
        stages = self.chains[chain]
        inputs: list[int] = prompt + record.tokens
        position = 0
        while len(record.tokens) < record.output_tokens:
            hidden: np.ndarray | None = None
            token = -1
            for stage in stages:
                if hidden is None:
                    message, _ = encode(
                        {"rid": record.rid, "position": position, "tokens": inputs}, {}
                    )
                else:
                    message, _ = encode(
                        {"rid": record.rid, "position": position}, {"hidden": hidden}
                    )
                called = time.perf_counter()
                reply = self._call(stage.server, "Step", message)
                answer = decode(reply)
                inside = answer.header.get("inside_s")
                if isinstance(inside, float):
                    self.trips.append(time.perf_counter() - called - inside)
                if "hidden" in answer.tensors:
                    hidden = answer.tensors["hidden"]
                else:
                    token = int(answer.header["token"])
            position += len(inputs)
            record.tokens.append(token)
            if math.isnan(record.first_token_s):
                downlink = TOKEN_ID_BITS / float(self.instance.downlink_bps[record.user])
                record.first_token_s = self.clock() + downlink
            inputs = [token]

    def _call(self, server: int, method: str, message: bytes) -> bytes:
        if server in self.dead:
            raise _Failed(server, "the shard failed")
        try:
            return self.clients[server].call(method, message, STEP_TIMEOUT_S)
        except TransferError as exc:
            if exc.code in _GONE:
                raise _Failed(server, str(exc)) from None
            raise

    def _drop_caches(self, chain: int, rid: int, skip: int = -1) -> None:
        """Best effort: free the request's KV caches on the route's alive shards."""
        message, _ = encode({"rid": rid}, {})
        for stage in self.chains[chain]:
            if stage.server == skip or stage.server in self.dead:
                continue
            try:
                self.clients[stage.server].call("Release", message, 2.0)
            except TransferError:
                pass  # the shard drops idle caches itself

    def close(self) -> None:
        """Close every channel."""
        for client in self.clients.values():
            client.close()


def _sleep_until(when: float, clock: Callable[[], float]) -> None:
    pause = when - clock()
    if pause > 0:
        time.sleep(pause)
