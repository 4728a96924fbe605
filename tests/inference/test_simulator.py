"""The edge-inference simulator against cases computed by hand from docs/inference.md."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mecllm.systems.inference.failures import Failure
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.requests import Stream
from mecllm.systems.inference.routing import TOKEN_ID_BITS
from mecllm.systems.inference.simulator import simulate
from mecllm.systems.inference.solution import Placement, Server

P, H, L = 1e6, 256, 2  # parameters per block, width, blocks
BITS = 16.0
F, M = 1e12, 1e10  # FLOP/s, bytes/s
UP, DOWN = 1e8, 2e8  # radio bit/s
BLOCK_BYTES = P * BITS / 8
KV = 2 * H * BITS / 8  # KV bytes per token per block


def tiny(
    nodes: int = 1,
    memory: float = 1e9,
    latency: float = 1e-3,
    link: float = 1e9,
    max_batch: int = 8,
) -> InferenceInstance:
    data: dict[str, Any] = {
        "kind": "edge-inference",
        "nodes": {
            "memory_bytes": [memory] * nodes,
            "flops": [F] * nodes,
            "memory_bandwidth_bps": [M] * nodes,
            "power_w": [100.0] * nodes,
        },
        "backhaul": {"bandwidth_bps": link, "latency_s": latency},
        "users": {
            "access_node": [0, 0],
            "uplink_bps": [UP, UP],
            "downlink_bps": [DOWN, DOWN],
            "radio_power_w": [0.1, 0.1],
            "arrival_rate_per_s": [1.0, 1.0],
        },
        "model": {
            "blocks": L,
            "params_per_block": P,
            "hidden": H,
            "weight_bits": BITS,
            "activation_bits": BITS,
            "head_params": 0.0,
        },
        "tasks": [
            {
                "name": "t",
                "share": 1,
                "prompt_tokens": [1, 100],
                "output_tokens": [1, 10],
                "deadline_s": [1, 100],
            }
        ],
        "horizon_s": 10.0,
        "max_batch": max_batch,
    }
    return InferenceInstance.from_dict(data)


def stream(arrivals: list[float], prompt: int, output: int, deadline: float = 100.0) -> Stream:
    n = len(arrivals)
    return Stream(
        np.array(arrivals),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(n, prompt, dtype=np.int64),
        np.full(n, output, dtype=np.int64),
        np.full(n, deadline),
    )


def roofline(flops: float, bytes_read: float) -> float:
    return max(flops / F, bytes_read / M)


ONE_NODE = Placement((Server(0, 0, L),), ((0,),), (1.0,))


def test_one_request_on_one_node_takes_the_roofline_time() -> None:
    prompt, output = 50, 4
    upload = prompt * 16 / UP
    prefill = roofline(prompt * 2 * P * L, L * BLOCK_BYTES + prompt * L * KV)
    decode = sum(
        roofline(2 * P * L, L * BLOCK_BYTES + (prompt + g) * L * KV) for g in range(1, output)
    )
    download = output * TOKEN_ID_BITS / DOWN
    report = simulate(tiny(), ONE_NODE, stream([0.0], prompt, output))
    assert report.on_time == 1 and report.lost == 0
    assert report.latency_s is not None
    assert report.latency_s[0] == pytest.approx(upload + prefill + decode + download, rel=1e-12)
    assert report.ttft_p50_s == pytest.approx(upload + prefill + TOKEN_ID_BITS / DOWN, rel=1e-12)


def test_two_requests_arriving_together_share_every_step() -> None:
    prompt, output = 50, 4
    upload = prompt * 16 / UP
    prefill = roofline(2 * prompt * 2 * P * L, L * BLOCK_BYTES + 2 * prompt * L * KV)
    decode = sum(
        roofline(2 * 2 * P * L, L * BLOCK_BYTES + 2 * (prompt + g) * L * KV)
        for g in range(1, output)
    )
    download = output * TOKEN_ID_BITS / DOWN
    report = simulate(tiny(), ONE_NODE, stream([0.0, 0.0], prompt, output))
    assert report.latency_s is not None
    expected = upload + prefill + decode + download
    assert report.latency_s.tolist() == pytest.approx([expected, expected], rel=1e-12)
    # One batch of two reads the weights once per step: faster than two requests in turn.
    single = simulate(tiny(), ONE_NODE, stream([0.0], prompt, output))
    assert single.latency_s is not None and expected < 2 * single.latency_s[0]


def test_a_hop_between_two_shards_adds_the_link_time_both_ways() -> None:
    prompt, output, latency, link = 20, 3, 2e-3, 1e8
    instance = tiny(nodes=2, latency=latency, link=link)
    plan = Placement((Server(0, 0, 1), Server(1, 1, 2)), ((0, 1),), (1.0,))
    act = H * BITS  # bits per token between shards

    def stage(tokens: int, context: int) -> float:
        return roofline(tokens * 2 * P, BLOCK_BYTES + context * KV)

    upload = prompt * 16 / UP
    prefill = 2 * stage(prompt, prompt) + latency + prompt * act / link
    back = latency + TOKEN_ID_BITS / link  # the token id returns to the first shard
    decode = sum(2 * stage(1, prompt + g) + latency + act / link + back for g in range(1, output))
    download = output * TOKEN_ID_BITS / DOWN
    report = simulate(instance, plan, stream([0.0], prompt, output))
    assert report.latency_s is not None
    answer = latency + output * TOKEN_ID_BITS / link  # from the last shard to the access node
    assert report.latency_s[0] == pytest.approx(
        upload + prefill + back + decode + answer + download - back, rel=1e-9
    )


def test_a_request_that_does_not_fit_waits_for_memory_then_runs() -> None:
    prompt, output = 50, 4
    need = (prompt + output) * L * KV
    instance = tiny(memory=L * BLOCK_BYTES + 1.5 * need)  # room for one request's KV
    report = simulate(instance, ONE_NODE, stream([0.0, 0.0], prompt, output))
    assert report.on_time == 2 and report.rejected == 0 and report.lost == 0
    assert report.latency_s is not None
    first, second = sorted(report.latency_s)
    assert second > 1.9 * first - 2 * prompt * 16 / UP  # it ran after the first one


def test_a_waiting_request_is_rejected_with_its_reason_when_its_deadline_passes() -> None:
    prompt, output = 50, 200
    need = (prompt + output) * L * KV
    instance = tiny(memory=L * BLOCK_BYTES + 1.5 * need)
    single = simulate(instance, ONE_NODE, stream([0.0], prompt, output, deadline=100.0))
    assert single.latency_s is not None
    deadline = 1.5 * single.latency_s[0]  # enough alone, not after waiting for the first
    report = simulate(instance, ONE_NODE, stream([0.0, 0.0], prompt, output, deadline))
    assert report.on_time == 1 and report.rejected == 1 and report.lost == 0
    assert list(report.rejected_by_reason) == ["waited for memory past its deadline"]


def test_a_failure_without_replica_rejects_and_with_replica_fails_over() -> None:
    prompt, output = 50, 50
    instance = tiny(nodes=2)
    one = simulate(instance, ONE_NODE, stream([0.0], prompt, output))
    assert one.latency_s is not None
    halfway = 0.5 * one.latency_s[0]
    lost = simulate(instance, ONE_NODE, stream([0.0], prompt, output), (Failure(0, halfway),))
    assert lost.rejected == 1 and lost.lost == 0
    assert "no replica" in next(iter(lost.rejected_by_reason))
    replicated = Placement((Server(0, 0, L), Server(1, 0, L)), ((0,), (1,)), (0.5, 0.5))
    calm = simulate(instance, replicated, stream([0.0], prompt, output))
    used = int(np.argmax(calm.node_utilisation))  # the replica the request was routed to
    assert calm.latency_s is not None
    half = 0.5 * float(calm.latency_s[0])
    moved = simulate(instance, replicated, stream([0.0], prompt, output), (Failure(used, half),))
    assert moved.on_time == 1 and moved.failovers == 1 and moved.lost == 0
    assert moved.latency_s is not None
    # The other node prefills the prompt and the tokens made so far again: later than if the
    # request had gone there in the first place.
    other = Placement((Server(1 - used, 0, L),), ((0,),), (1.0,))
    direct = simulate(instance, other, stream([0.0], prompt, output))
    assert direct.latency_s is not None
    assert moved.latency_s[0] > direct.latency_s[0]
    assert moved.node_utilisation[1 - used] > 0


def test_the_simulator_is_deterministic_and_never_loses_a_request() -> None:
    from mecllm.systems.inference.requests import draw
    from mecllm.systems.inference.scenario import generate, preset

    instance = generate(preset("default", horizon_s=60.0), np.random.default_rng(3))
    requests = draw(instance, np.random.default_rng(4))
    plan = Placement(
        (Server(0, 0, 40), Server(1, 0, 20), Server(2, 20, 40)), ((0,), (1, 2)), (0.5, 0.5)
    )
    first = simulate(instance, plan, requests, (Failure(1, 20.0),))
    second = simulate(instance, plan, requests, (Failure(1, 20.0),))
    assert first.to_dict() == second.to_dict()
    assert first.lost == 0
    assert first.on_time + first.late + first.rejected == first.requests == len(requests)
    assert math.isfinite(first.latency_p95_s)


def test_tier_two_keeps_the_fast_route_for_urgent_requests() -> None:
    """Two whole-model replicas, the second one hop away: a request with time to spare takes
    the slower route, an urgent one the faster."""
    prompt, output = 50, 4
    instance = tiny(nodes=2, latency=0.05)
    both = Placement((Server(0, 0, L), Server(1, 0, L)), ((0,), (1,)), (0.5, 0.5))
    alone = simulate(instance, ONE_NODE, stream([0.0], prompt, output))
    assert alone.latency_s is not None
    fast = float(alone.latency_s[0])
    relaxed = simulate(instance, both, stream([0.0], prompt, output, deadline=100.0))
    urgent = simulate(instance, both, stream([0.0], prompt, output, deadline=1.5 * fast))
    assert relaxed.latency_s is not None and urgent.latency_s is not None
    assert urgent.latency_s[0] == pytest.approx(fast, rel=1e-12)
    assert relaxed.latency_s[0] > fast + 0.05  # the hop to node 1 and back to the user's node
    assert relaxed.on_time == urgent.on_time == 1
