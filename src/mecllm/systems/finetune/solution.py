"""A plan (the decision variables) and a solve result (plan + figures + how it was found).

JSON form: docs/formats.md. Per-user values refer to the user's own server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.result import Result, finite_or_none
from mecllm.systems.finetune.instance import KIND


@dataclass(frozen=True, eq=False)
class Plan:
    """Values of every decision variable (docs/finetune.md section 3), one entry per user.

    Attributes
    ----------
    assignment : (N,) int
        Server index of each user (x_{n,m} = 1 iff assignment[n] == m).
    phi : (N,) float in [0, 1]
        Share of the adapter trained on the device.
    bandwidth_hz : (N,) float, Hz
        b_n, given by the user's server (shared by uplink and downlink).
    user_power_w : (N,) float, W
        p_n, uplink transmit power.
    server_power_w : (N,) float, W
        q_n, downlink power the server spends on the user.
    user_flops : (N,) float, FLOP/s
        f_n, the user's compute speed.
    server_flops : (N,) float, FLOP/s
        s_n, compute speed the server gives the user.
    """

    assignment: IntArray
    phi: FloatArray
    bandwidth_hz: FloatArray
    user_power_w: FloatArray
    server_power_w: FloatArray
    user_flops: FloatArray
    server_flops: FloatArray

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            dtype = np.int64 if name == "assignment" else float
            value = np.array(getattr(self, name), dtype=dtype, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_users(self) -> int:
        """N."""
        return int(self.assignment.shape[0])

    def replace(self, **changes: Any) -> Plan:
        """A copy with some variables replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The decision-variable part of the section-10 JSON form."""
        return {
            "assignment": [int(a) for a in self.assignment],
            "phi": [float(v) for v in self.phi],
            "bandwidth_hz": [float(v) for v in self.bandwidth_hz],
            "user_power_w": [float(v) for v in self.user_power_w],
            "server_power_w": [float(v) for v in self.server_power_w],
            "user_flops": [float(v) for v in self.user_flops],
            "server_flops": [float(v) for v in self.server_flops],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_users: int, n_servers: int) -> Plan:
        """Read the decision variables of a solution mapping, checking types and lengths.

        Bounds and capacities are not checked here: that is the feasibility report of
        :func:`mecllm.systems.finetune.physics.evaluate`, which names every violation.
        """
        raw = data.get("assignment")
        if not isinstance(raw, list):
            raise checks.fail("assignment", "must be a list of server indices", type(raw).__name__)
        if len(raw) != n_users:
            raise InvalidInputError(f"assignment must have {n_users} entries, got {len(raw)}")
        for i, a in enumerate(raw):
            if isinstance(a, bool) or not isinstance(a, int | float) or a != int(a):
                raise checks.fail(f"assignment[{i}]", "must be a whole number", a)
            if not 0 <= int(a) < n_servers:
                raise checks.fail(f"assignment[{i}]", f"must be in 0..{n_servers - 1}", a)
        values = {
            key: checks.vector(data, key, "solution", n_users)
            for key in (
                "phi",
                "bandwidth_hz",
                "user_power_w",
                "server_power_w",
                "user_flops",
                "server_flops",
            )
        }
        return cls(assignment=np.array(raw, dtype=np.int64), **values)


@dataclass(frozen=True, eq=False, kw_only=True)
class SolveResult(Result[Plan]):
    """What a solver returns: the plan, its figures and how it was found
    (:class:`~mecllm.core.result.Result`).

    Attributes
    ----------
    scr, delay_s, energy_j, service : float
        Service-cost ratio, total delay (s), total energy (J) and total service score of the
        plan, as computed by :func:`mecllm.systems.finetune.physics.evaluate`.
    """

    kind: ClassVar[str] = KIND

    scr: float
    delay_s: float
    energy_j: float
    service: float

    def figures(self) -> dict[str, Any]:
        """The plan's figures (the solution JSON of docs/formats.md)."""
        return {
            "scr": finite_or_none(self.scr),
            "delay_s": finite_or_none(self.delay_s),
            "energy_j": finite_or_none(self.energy_j),
            "service": finite_or_none(self.service),
        }
