"""The secure system's plan (decision variables) and solve result, and their JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.result import Result, finite_or_none
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


@dataclass(frozen=True, eq=False, kw_only=True)
class SecureResult(Result[SecurePlan]):
    """What a secure solver returns: plan, figures (true instance), history
    (:class:`~mecllm.core.result.Result`).

    ``believed_ratio`` differs from ``ratio`` only for the security-blind baseline: it is the
    U/S the blind optimiser thought it reached (the eavesdropper ignored).
    """

    kind: ClassVar[str] = KIND

    ratio: float
    utility: float
    delay_s: float
    energy_j: float
    feasible: bool
    floor_violations: list[int]
    status: SolveStatus = "converged"
    believed_ratio: float | None = None

    def figures(self) -> dict[str, Any]:
        """The plan's figures on the real instance."""
        out: dict[str, Any] = {
            "us_ratio": finite_or_none(self.ratio),
            "utility": finite_or_none(self.utility),
            "delay_s": finite_or_none(self.delay_s),
            "energy_j": finite_or_none(self.energy_j),
            "feasible": self.feasible,
            "floor_violations": self.floor_violations,
        }
        if self.believed_ratio is not None:
            out["believed_us_ratio"] = finite_or_none(self.believed_ratio)
        return out


def load_secure_plan(data: object, instance: SecureInstance) -> SecurePlan:
    """The plan of a secure solution mapping."""
    if not isinstance(data, Mapping):
        raise InvalidInputError("solution file must hold a JSON object")
    return SecurePlan.from_dict(data, instance.n_users)
