"""What fails in an edge-inference run, named the same way in ``mecllm evaluate`` (the
simulator) and ``mecllm serve`` (the real run): a node, at a time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mecllm.core import checks
from mecllm.core.errors import InvalidInputError


@dataclass(frozen=True)
class Failure:
    """Node ``node`` stops at ``time_s`` (for good), every shard on it with it."""

    node: int
    time_s: float


def parse_times(
    items: Sequence[str], option: str, what: str, count: int
) -> list[tuple[int, float]]:
    """``INDEX@SECONDS`` items, ``INDEX`` in ``0..count - 1`` (``what``: NODE or SHARD), as
    (index, seconds) pairs; the first bad one refused, naming ``option``."""
    out = []
    for item in items:
        index_text, _, time_text = item.partition("@")
        try:
            index, when = int(index_text), float(time_text)
        except ValueError:
            raise InvalidInputError(
                f"{option} must look like {what}@SECONDS, got {item!r}"
            ) from None
        if not 0 <= index < count:
            raise checks.fail(f"{option} {what.lower()}", f"must be in 0..{count - 1}", index)
        if not math.isfinite(when) or when < 0:
            raise checks.fail(f"{option} time", "must be a finite number of seconds >= 0", when)
        out.append((index, when))
    return out


def parse_failures(
    items: Sequence[str], n_nodes: int, option: str = "--fail"
) -> tuple[Failure, ...]:
    """``NODE@SECONDS`` items (``NODE`` in ``0..n_nodes - 1``) as failures."""
    return tuple(Failure(node, when) for node, when in parse_times(items, option, "NODE", n_nodes))
