"""Tier 2 as one rule for the simulator and the served gateway: the roofline step and admission."""

from __future__ import annotations

import pytest

from mecllm.systems.inference.routing import (
    DEADLINE_UNREACHABLE,
    FAILOVER_NO_ROOM,
    FAILOVER_NO_ROUTE,
    NO_ALIVE_ROUTE,
    SLACK_SHARE,
    WAITED_PAST_DEADLINE,
    Decision,
    admit,
    step_seconds,
)

ESTIMATES = {0: 1.0, 1: 3.0, 2: 6.0}  # route -> seconds to the answer


def decide(time_left: float, *, fits: set[int] | None = None, **kwargs: bool) -> Decision:
    room = set(ESTIMATES) if fits is None else fits
    return admit(list(ESTIMATES), room.__contains__, ESTIMATES.__getitem__, time_left, **kwargs)


def test_the_step_is_the_roofline_plus_the_requests_overhead() -> None:
    assert step_seconds(4e9, 1e9, 2e9, 1e9) == pytest.approx(2.0)  # compute-bound
    assert step_seconds(1e9, 3e9, 2e9, 1e9, 0.25) == pytest.approx(3.25)  # memory-bound


def test_the_slowest_route_that_leaves_the_slack_unused_is_taken() -> None:
    assert SLACK_SHARE == 0.5
    decision = decide(10.0)  # budget 5 s: routes 0 (1 s) and 1 (3 s) fit; the slower is taken
    assert (decision.outcome, decision.route) == ("admitted", 1)
    decision = decide(12.5)  # budget 6.25 s: all fit, route 2 is the slowest
    assert (decision.outcome, decision.route) == ("admitted", 2)
    decision = decide(1.5)  # nothing within the budget: the fastest, which still makes it
    assert (decision.outcome, decision.route) == ("admitted", 0)


def test_a_request_that_cannot_make_its_deadline_is_rejected_with_its_reason() -> None:
    assert decide(0.5).reason == DEADLINE_UNREACHABLE
    assert decide(0.5, waited=True).reason == WAITED_PAST_DEADLINE


def test_routes_without_room_wait_and_a_failover_takes_the_fastest_whatever_its_deadline() -> None:
    assert decide(10.0, fits=set()).outcome == "no room"
    decision = decide(10.0, fits={1, 2})
    assert decision.route == 1
    failover = decide(0.5, failover=True)
    assert (failover.outcome, failover.route) == ("admitted", 0)
    assert decide(10.0, fits=set(), failover=True).reason == FAILOVER_NO_ROOM
    empty = admit([], lambda c: True, lambda c: 0.0, 10.0)
    assert (empty.outcome, empty.reason) == ("rejected", NO_ALIVE_ROUTE)
    assert admit([], lambda c: True, lambda c: 0.0, 10.0, failover=True).reason == FAILOVER_NO_ROUTE
