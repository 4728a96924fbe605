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


def parse_failures(
    items: Sequence[str], n_nodes: int, option: str = "--fail"
) -> tuple[Failure, ...]:
    """``NODE@SECONDS`` items (``NODE`` in ``0..n_nodes - 1``) as failures."""
    out = []
    for item in items:
        node_text, _, time_text = item.partition("@")
        try:
            node, when = int(node_text), float(time_text)
        except ValueError:
            raise InvalidInputError(f"{option} must look like NODE@SECONDS, got {item!r}") from None
        if not 0 <= node < n_nodes:
            raise checks.fail(f"{option} node", f"must be in 0..{n_nodes - 1}", node)
        if not math.isfinite(when) or when < 0:
            raise checks.fail(f"{option} time", "must be a finite number of seconds >= 0", when)
        out.append(Failure(node, when))
    return tuple(out)
