"""Constraint violations as data: every system's physics reports them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Relative slack allowed on every bound and capacity before it counts as violated.
FEASIBILITY_RTOL = 1e-6


@dataclass(frozen=True)
class Violation:
    """One constraint a plan breaks: which, for whom, and by how much (in the field's unit)."""

    constraint: str
    index: int
    amount: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "constraint": self.constraint,
            "index": self.index,
            "amount": self.amount,
            "message": self.message,
        }
