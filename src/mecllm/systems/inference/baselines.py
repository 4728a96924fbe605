"""The baselines (ours, after public systems; docs/inference.md section 3).

- **monolithic**: the whole model on the one node that holds it (the largest, if several);
- **exo-style**: one ring over every node, blocks in proportion to memory (exo's partitioning);
- **Petals-style**: each node, strongest first, serves the window of blocks where the served
  throughput is lowest so far (as large as its memory allows); requests are routed by Dijkstra
  over the servers at the current load (``routing: shortest-path``);
- **EdgeShard-style**: dynamic programming over node subsets and cut points for the single chain
  with the least per-token latency;
- **random**: a random set of nodes in random order, blocks in proportion to memory.
"""

from __future__ import annotations

import math

import numpy as np

from mecllm.core.errors import SolverError
from mecllm.systems.inference.chains import (
    Chain,
    block_room,
    fits_whole,
    per_token_s,
    placement,
    split,
)
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.routing import step_seconds
from mecllm.systems.inference.solution import Placement, Server

#: EdgeShard's dynamic programme enumerates subsets of at most this many nodes (the fastest).
DP_NODES = 10


def monolithic(instance: InferenceInstance) -> Placement:
    """The whole model on the largest node that holds it."""
    able = [v for v in range(instance.n_nodes) if fits_whole(instance, v)]
    if not able:
        raise SolverError("no node holds the whole model (monolithic needs one); use a split plan")
    node = max(able, key=lambda v: (instance.memory_bytes[v], instance.memory_bandwidth_bps[v]))
    return placement([Chain((node,), (instance.blocks,))], [1.0])


def exo_ring(instance: InferenceInstance) -> Placement:
    """One ring over every node, blocks in proportion to memory."""
    nodes = tuple(range(instance.n_nodes))
    chain = split(instance, nodes, instance.memory_bytes)
    if chain is None:
        raise SolverError("all nodes together cannot hold the model")
    used = [(v, b) for v, b in zip(chain.nodes, chain.blocks, strict=True) if b > 0]
    chain = Chain(tuple(v for v, _ in used), tuple(b for _, b in used))
    return placement([chain], [1.0])


def petals(instance: InferenceInstance) -> Placement:
    """Greedy block windows where served throughput is weakest; Dijkstra routing."""
    blocks = instance.blocks
    served = np.zeros(blocks)
    order = np.argsort(-instance.memory_bandwidth_bps, kind="stable")
    servers = []
    for node in order.tolist():
        size = min(block_room(instance, node), blocks)
        if size < 1:
            continue
        # The node's throughput contribution per block (memory-bound decode).
        rate = instance.memory_bandwidth_bps[node] / (size * instance.block_bytes)
        windows = [served[s : s + size].sum() for s in range(blocks - size + 1)]
        start = int(np.argmin(windows))
        served[start : start + size] += rate
        servers.append(Server(int(node), start, start + size))
    if np.any(served == 0):
        raise SolverError("the nodes' windows cannot cover every block")
    return Placement(tuple(servers), (), (), "shortest-path")


def edgeshard(instance: InferenceInstance) -> Placement:
    """The single chain of least per-token latency at batch 1 (dynamic programming over cut
    points; nodes taken in order of memory bandwidth, each at most once)."""
    fastest = np.argsort(-instance.memory_bandwidth_bps, kind="stable")[:DP_NODES].tolist()
    blocks = instance.blocks
    room = [min(block_room(instance, node), blocks) for node in fastest]

    def stage(node: int, count: int) -> float:
        return step_seconds(
            2.0 * instance.params_per_block * count,
            count * instance.block_bytes,
            float(instance.flops[node]),
            float(instance.memory_bandwidth_bps[node]),
        )

    # best[position][k]: least latency of a chain covering blocks [0, position) whose last
    # stage is on fastest[k] (k = -1: nothing yet), with the previous state and the count.
    best: list[dict[int, tuple[float, tuple[int, int] | None, int]]] = [
        {} for _ in range(blocks + 1)
    ]
    best[0][-1] = (0.0, None, 0)
    for position in range(blocks):
        for last, (cost, _, _) in list(best[position].items()):
            for k in range(last + 1, len(fastest)):
                node = fastest[k]
                hop = 0.0 if last < 0 else float(instance.route_latency_s[fastest[last], node])
                for count in range(1, min(room[k], blocks - position) + 1):
                    total = cost + hop + stage(node, count)
                    end = best[position + count]
                    if k not in end or total < end[k][0]:
                        end[k] = (total, (position, last), count)
    if not best[blocks]:
        raise SolverError(f"no chain over the {len(fastest)} fastest nodes holds the model")
    last = min(best[blocks], key=lambda k: best[blocks][k][0])
    nodes, counts = [], []
    state: tuple[int, int] | None = (blocks, last)
    while state is not None and state[1] >= 0:
        position, k = state
        _, previous, count = best[position][k]
        nodes.append(fastest[k])
        counts.append(count)
        state = previous
    return placement([Chain(tuple(reversed(nodes)), tuple(reversed(counts)))], [1.0])


def random_plan(instance: InferenceInstance, rng: np.random.Generator) -> Placement:
    """A random set of nodes in random order that holds the model, blocks by memory."""
    for _ in range(100):
        size = int(rng.integers(1, instance.n_nodes + 1))
        nodes = tuple(int(x) for x in rng.permutation(instance.n_nodes)[:size])
        chain = split(instance, nodes, instance.memory_bytes[list(nodes)])
        if chain is not None:
            return placement([chain], [1.0])
    raise SolverError("no random set of nodes held the model in 100 draws")


def per_token_of(instance: InferenceInstance, plan: Placement) -> float:
    """The per-token latency of the plan's first chain (for messages)."""
    if not plan.chains:
        return math.nan
    servers = [plan.servers[k] for k in plan.chains[0]]
    return per_token_s(
        instance, Chain(tuple(s.node for s in servers), tuple(s.blocks for s in servers))
    )
