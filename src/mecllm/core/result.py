"""What every algorithm of every system returns: one result type (scipy.optimize style) with
the plan, how the solve ended and how long it took; each system adds its figures.

The solution JSON of every system has the same frame: ``system``, ``algorithm``, the plan's
fields, the system's figures (:meth:`Result.figures`), then ``status``, ``message``,
``iterations``, ``history`` and ``wall_time_s``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from mecllm.core.fileio import atomic_write_text
from mecllm.core.status import SolveStatus


class PlanLike(Protocol):
    """A plan: it writes its decision variables as JSON."""

    def to_dict(self) -> dict[str, Any]: ...


PlanT = TypeVar("PlanT", bound=PlanLike)


def finite_or_none(value: float) -> float | None:
    """A number for JSON: non-finite values (an infinite delay, a NaN) become null."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, eq=False, kw_only=True)
class Result(Generic[PlanT]):
    """A solve's outcome.

    Attributes
    ----------
    algorithm : str
        Registered name of the algorithm.
    plan : the system's plan (the decision variables).
    status : str
        One of :data:`mecllm.core.status.SolveStatus`.
    message : str
        A sentence on how the solve ended (fallbacks used, limits hit).
    iterations : int
        Outer iterations; 0 for one-shot rules.
    history : list of dict
        One record per outer iteration (y, step times, inner iteration counts, ...).
    wall_time_s : float
        Wall-clock time of the solve, s.
    """

    #: The system's ``kind``, written as the solution file's ``system``.
    kind: ClassVar[str]

    algorithm: str
    plan: PlanT
    status: SolveStatus = "heuristic"
    message: str = ""
    iterations: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        """The system's figures of the plan, as JSON values (none by default)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The solution JSON (docs/formats.md)."""
        out: dict[str, Any] = {"system": self.kind, "algorithm": self.algorithm}
        out.update(self.plan.to_dict())
        out.update(self.figures())
        out.update(
            {
                "status": self.status,
                "message": self.message,
                "iterations": int(self.iterations),
                "history": self.history,
                "wall_time_s": float(self.wall_time_s),
            }
        )
        return out

    def save(self, path: str | Path) -> None:
        """Write the solution JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
