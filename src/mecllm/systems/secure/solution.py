"""The secure system's plan (decision variables) and solve result, and their JSON form."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text
from mecllm.core.status import SolveStatus
from mecllm.systems.secure.instance import KIND, SecureInstance


@dataclass(frozen=True, eq=False)
class SecurePlan:
    """Decision variables, one entry per owner (SI units).

    Attributes
    ----------
    phi : adapter share phi_n.
    bandwidth_hz : b_n, used by the owner's downlink and uplink (FDMA).
    user_power_w : p_n, uplink power.
    server_power_w : q_n, downlink power the server spends on owner n.
    user_flops : f_n, the owner's compute speed.
    server_flops : s_n, the server's speed building owner n's emulator.
    """

    phi: FloatArray
    bandwidth_hz: FloatArray
    user_power_w: FloatArray
    server_power_w: FloatArray
    user_flops: FloatArray
    server_flops: FloatArray

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = np.array(getattr(self, name), dtype=float, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> SecurePlan:
        """A copy with some variables replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The decision-variable part of the solution JSON."""
        return {k: [float(v) for v in getattr(self, k)] for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_users: int) -> SecurePlan:
        """Read the variables of a solution mapping (types and lengths; bounds are the
        feasibility report's job)."""
        return cls(
            **{k: checks.vector(data, k, "solution", n_users) for k in cls.__dataclass_fields__}
        )


@dataclass(frozen=True)
class SecureResult:
    """What a secure solver returns: plan, figures (true instance), history.

    ``believed_ratio`` differs from ``ratio`` only for the security-blind baseline: it is the
    U/S the blind optimiser thought it reached (the eavesdropper ignored).
    """

    algorithm: str
    plan: SecurePlan
    ratio: float
    utility: float
    delay_s: float
    energy_j: float
    feasible: bool
    floor_violations: list[int]
    status: SolveStatus = "converged"
    message: str = ""
    iterations: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    believed_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Solution JSON."""
        out: dict[str, Any] = {"system": KIND, "algorithm": self.algorithm}
        out.update(self.plan.to_dict())
        out.update(
            {
                "us_ratio": _num(self.ratio),
                "utility": _num(self.utility),
                "delay_s": _num(self.delay_s),
                "energy_j": _num(self.energy_j),
                "feasible": self.feasible,
                "floor_violations": self.floor_violations,
                "status": self.status,
                "message": self.message,
                "iterations": self.iterations,
                "history": self.history,
                "wall_time_s": self.wall_time_s,
            }
        )
        if self.believed_ratio is not None:
            out["believed_us_ratio"] = _num(self.believed_ratio)
        return out

    def save(self, path: str | Path) -> None:
        """Write the solution JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")


def load_secure_plan(data: object, instance: SecureInstance) -> SecurePlan:
    """The plan of a secure solution mapping."""
    if not isinstance(data, Mapping):
        raise InvalidInputError("solution file must hold a JSON object")
    return SecurePlan.from_dict(data, instance.n_users)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
