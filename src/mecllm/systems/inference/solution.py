"""A placement plan: shards of the model placed on nodes, the chains that route requests
through them, and the demand's split across chains (docs/inference.md section 3).

A *server* is one shard, blocks ``[start, end)``, on one node. A *chain* lists servers whose
block ranges follow each other from block 0 to block L: a request's route. ``fractions`` split
the long-term demand across chains (tier 1); the simulator's router (tier 2) picks a chain per
request from the current backlogs. With ``routing = "shortest-path"`` the plan has no chains:
every request is routed by Dijkstra over all servers (Petals-style).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from mecllm.core import checks
from mecllm.core.errors import InvalidInputError
from mecllm.core.result import Result
from mecllm.systems.inference.instance import KIND

Routing = Literal["chains", "shortest-path"]


@dataclass(frozen=True)
class Server:
    """Blocks ``[start, end)`` of the model held by ``node``."""

    node: int
    start: int
    end: int

    @property
    def blocks(self) -> int:
        """How many blocks it holds."""
        return self.end - self.start


@dataclass(frozen=True)
class Placement:
    """The decision of tier 1 (see the module docstring)."""

    servers: tuple[Server, ...]
    chains: tuple[tuple[int, ...], ...] = ()
    fractions: tuple[float, ...] = ()
    routing: Routing = "chains"

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the decisions."""
        return {
            "servers": [{"node": s.node, "start": s.start, "end": s.end} for s in self.servers],
            "chains": [list(c) for c in self.chains],
            "fractions": list(self.fractions),
            "routing": self.routing,
        }

    def nodes_of(self, chain: int) -> list[int]:
        """The nodes a chain visits, in order."""
        return [self.servers[k].node for k in self.chains[chain]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_nodes: int, blocks: int) -> Placement:
        """Read and check a plan's decisions (structure; memory is the simulator's check)."""
        raw = data.get("servers")
        if not isinstance(raw, list) or not raw:
            raise checks.fail("servers", "must be a non-empty list", type(raw).__name__)
        servers = []
        for k, item in enumerate(raw):
            where = f"servers[{k}]"
            if not isinstance(item, Mapping) or set(item) != {"node", "start", "end"}:
                raise checks.fail(where, "must be {node, start, end}", item)
            node, start, end = item["node"], item["start"], item["end"]
            for name, value in (("node", node), ("start", start), ("end", end)):
                if type(value) is not int:
                    raise checks.fail(f"{where}.{name}", "must be a whole number", value)
            if not 0 <= node < n_nodes:
                raise checks.fail(f"{where}.node", f"must be in 0..{n_nodes - 1}", node)
            if not 0 <= start < end <= blocks:
                raise checks.fail(where, f"must have 0 <= start < end <= {blocks}", item)
            servers.append(Server(node, start, end))
        routing = data.get("routing", "chains")
        if routing not in ("chains", "shortest-path"):
            raise checks.fail("routing", "must be chains or shortest-path", routing)
        chains_raw = data.get("chains", [])
        fractions_raw = data.get("fractions", [])
        if not isinstance(chains_raw, list) or not isinstance(fractions_raw, list):
            raise InvalidInputError("chains and fractions must be lists")
        chains = []
        for k, chain in enumerate(chains_raw):
            where = f"chains[{k}]"
            if not isinstance(chain, list) or not chain:
                raise checks.fail(where, "must be a non-empty list of server indices", chain)
            position = 0
            for item in chain:
                if type(item) is not int or not 0 <= item < len(servers):
                    rule = f"must hold server indices 0..{len(servers) - 1}"
                    raise checks.fail(where, rule, item)
                if servers[item].start != position:
                    raise checks.fail(where, "must cover blocks in order from 0", chain)
                position = servers[item].end
            if position != blocks:
                raise checks.fail(where, f"must end at block {blocks}", chain)
            chains.append(tuple(chain))
        fractions = [checks.number(f, f"fractions[{k}]") for k, f in enumerate(fractions_raw)]
        if routing == "chains":
            if not chains:
                raise InvalidInputError("a plan routed by chains needs at least one chain")
            if len(fractions) != len(chains):
                raise InvalidInputError(
                    f"fractions must have {len(chains)} entries (one per chain), "
                    f"got {len(fractions)}"
                )
            if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, rel_tol=1e-6):
                raise InvalidInputError("fractions must be >= 0 and sum to 1")
        return cls(tuple(servers), tuple(chains), tuple(fractions), routing)


@dataclass(frozen=True, eq=False, kw_only=True)
class InferenceResult(Result[Placement]):
    """What a planner returns: the plan and how it was found (the simulator scores it;
    :class:`~mecllm.core.result.Result`). ``details``: what the planner reports beyond its
    message (candidates, unserved share)."""

    kind: ClassVar[str] = KIND

    details: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The planner's details (the figures are the simulator's: ``mecllm evaluate``)."""
        return {"details": self.details}
