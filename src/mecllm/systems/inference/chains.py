"""Chains of shards as the planners build them: how blocks are split over a sequence of nodes,
and what a chain costs per token and can carry (the latency/load proxy of tier 1;
docs/inference.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.routing import step_seconds, typical_context
from mecllm.systems.inference.solution import Placement, Server

#: Share of a node's memory shards may take; the rest is kept for KV cache.
WEIGHT_SHARE = 0.75


@dataclass(frozen=True)
class Chain:
    """Nodes in order and the blocks each holds (a partition of the model, front to back)."""

    nodes: tuple[int, ...]
    blocks: tuple[int, ...]

    def servers(self) -> list[Server]:
        """The chain's shards as servers."""
        out, start = [], 0
        for node, count in zip(self.nodes, self.blocks, strict=True):
            out.append(Server(node, start, start + count))
            start += count
        return out


def block_room(instance: InferenceInstance, node: int) -> int:
    """Most blocks a node may hold (its weight share of memory)."""
    return int(WEIGHT_SHARE * instance.memory_bytes[node] // instance.block_bytes)


def split(instance: InferenceInstance, nodes: tuple[int, ...], weights: np.ndarray) -> Chain | None:
    """Blocks split over ``nodes`` in proportion to ``weights`` (largest remainder), each node
    at most its :func:`block_room` and at least one block; None if they cannot hold the model."""
    total = instance.blocks
    room = np.array([block_room(instance, v) for v in nodes])
    if room.sum() < total or np.any(room < 1):
        return None
    share = np.asarray(weights, dtype=float)
    counts = np.zeros(len(nodes), dtype=np.int64)
    left = total
    free = np.ones(len(nodes), dtype=bool)
    # Water-filling: give each node its proportional share, capped at its room, repeat.
    while left > 0 and free.any():
        ideal = share * free / (share * free).sum() * left
        give = np.minimum(np.floor(ideal).astype(np.int64), room - counts)
        if give.sum() == 0:
            order = np.argsort(-(ideal - np.floor(ideal)) * free)
            for k in order:
                if free[k] and counts[k] < room[k]:
                    counts[k] += 1
                    left -= 1
                    break
        else:
            counts += give
            left -= int(give.sum())
        free = counts < room
    if left > 0 or np.any(counts < 1):
        return None
    return Chain(tuple(nodes), tuple(int(c) for c in counts))


def per_token_s(instance: InferenceInstance, chain: Chain, batch: int = 1) -> float:
    """Decode time of one token through the chain at ``batch`` requests per step, s."""
    context = typical_context(instance)
    total = 0.0
    for k, (node, count) in enumerate(zip(chain.nodes, chain.blocks, strict=True)):
        total += step_seconds(
            batch * 2.0 * instance.params_per_block * count,
            count * (instance.block_bytes + batch * context * instance.kv_bytes_per_token_block),
            float(instance.flops[node]),
            float(instance.memory_bandwidth_bps[node]),
        )
        nxt = chain.nodes[(k + 1) % len(chain.nodes)]
        if nxt != node:
            total += float(instance.route_latency_s[node, nxt])
    return total


def prefill_s(instance: InferenceInstance, chain: Chain) -> float:
    """Prefill time of a typical prompt through the chain, s."""
    prompt = sum(t.share * sum(t.prompt_tokens) / 2 for t in instance.tasks)
    total = 0.0
    for node, count in zip(chain.nodes, chain.blocks, strict=True):
        total += step_seconds(
            prompt * 2.0 * instance.params_per_block * count,
            count * instance.block_bytes,
            float(instance.flops[node]),
            float(instance.memory_bandwidth_bps[node]),
        )
    return total


def capacity_tokens_per_s(instance: InferenceInstance, chain: Chain) -> float:
    """Tokens per second the chain decodes at full batches (one cohort around the ring)."""
    batch = instance.max_batch
    return batch / per_token_s(instance, chain, batch)


def typical_output(instance: InferenceInstance) -> float:
    """Mean output tokens of a request."""
    return sum(t.share * sum(t.output_tokens) / 2 for t in instance.tasks)


def placement(chains: list[Chain], fractions: list[float]) -> Placement:
    """A plan from chains (their servers de-duplicated) and the demand's split."""
    servers: list[Server] = []
    index: dict[Server, int] = {}
    routes = []
    for chain in chains:
        route = []
        for server in chain.servers():
            if server not in index:
                index[server] = len(servers)
                servers.append(server)
            route.append(index[server])
        routes.append(tuple(route))
    total = sum(fractions)
    share = (
        tuple(f / total for f in fractions)
        if total > 0
        else tuple(1.0 / len(chains) for _ in chains)
    )
    return Placement(tuple(servers), tuple(routes), share, "chains")


def latency_proxy_s(instance: InferenceInstance, chain: Chain) -> float:
    """Expected service time of a typical request on an idle chain, s."""
    return prefill_s(instance, chain) + typical_output(instance) * per_token_s(instance, chain)


def fits_whole(instance: InferenceInstance, node: int) -> bool:
    """Whether one node holds the whole model within its weight share."""
    return block_room(instance, node) >= instance.blocks
