"""The fine-tuning instance: users, servers, channels and objective constants (docs/finetune.md).

An :class:`Instance` is validated once, when it is built, and is immutable afterwards: every
array is read-only. All quantities are in SI units. JSON files use exactly the field names of
docs/formats.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.systems.finetune.work_model import (
    WORK_MODELS,
    Profile,
    WorkCoefficients,
    WorkModelName,
    paper_coefficients,
    profiled_coefficients,
)

# Upper bounds beyond which a value is not physical and the physics would overflow float64
# (energies scale like kappa * d * t * F^2). They are generous: ten orders of magnitude above
# today's hardware where that is possible.
_MAX_PARAMS = 1e13
_MAX_FLOPS_PER_PARAM = 1e16
_MAX_EPOCHS = 1e6
_MAX_POWER_W = 1e6
_MAX_FLOPS = 1e21
_MAX_KAPPA = 1e-3
# Lower bounds on positive quantities: a cap of 1e-300 would make times overflow to infinity.
# Together with the upper bounds they keep every time, rate and energy far inside float64.
_MIN_PARAMS = 1.0
_MIN_FLOPS_PER_PARAM = 1e-6
_MIN_EPOCHS = 1e-6
_MIN_POWER_W = 1e-15
_MIN_FLOPS = 1.0
_MIN_BANDWIDTH_HZ = 1.0
_MIN_GAIN = 1e-30
_MAX_BANDWIDTH_HZ = 1e13
_MAX_GAIN = 1e3
_MAX_POSITION_M = 1e8

#: The value of the JSON ``kind`` field of this system (optional in its files).
KIND = "edge-llm"

_USER_FIELDS = {
    "adapter_params",
    "flops_per_param",
    "epochs",
    "max_power_w",
    "max_flops",
    "kappa",
    "position_m",
}
_SERVER_FIELDS = {"bandwidth_hz", "max_power_w", "max_flops", "kappa", "epochs", "position_m"}
_TOP_FIELDS = {
    "users",
    "servers",
    "channel_gain",
    "noise_psd_w_per_hz",
    "bits_per_param",
    "weights",
    "service",
    "kind",
    "name",
    "work_model",
    "profile",
}


#: True while from_dict builds an instance from values it has just validated.
_VALIDATED: ContextVar[bool] = ContextVar("mecllm_instance_validated", default=False)


def _frozen(values: FloatArray) -> FloatArray:
    out = np.array(values, dtype=float, copy=True)
    out.setflags(write=False)
    return out


#: The per-user vectors of an instance ((N,) each) and the per-server ones ((M,) each).
USER_FIELDS = (
    "adapter_params",
    "flops_per_param",
    "user_epochs",
    "user_max_power_w",
    "user_max_flops",
    "user_kappa",
)
SERVER_FIELDS = (
    "bandwidth_hz",
    "server_max_power_w",
    "server_max_flops",
    "server_kappa",
    "server_epochs",
)


@dataclass(frozen=True, eq=False)
class Instance:
    """One scenario of N users and M edge servers (all SI units).

    Attributes
    ----------
    adapter_params : (N,) float
        d_n, adapter parameter count of each user.
    flops_per_param : (N,) float
        t_n, FLOPs per adapter parameter for one epoch over all of the user's tokens.
    user_epochs : (N,) float
        e_n, local training epochs.
    user_max_power_w : (N,) float, W
        p_max^(n), uplink transmit power cap.
    user_max_flops : (N,) float, FLOP/s
        F_max^(n), effective compute speed cap of the user.
    user_kappa : (N,) float
        kappa_n, effective switched capacitance of the user's GPUs.
    bandwidth_hz : (M,) float, Hz
        b_max^(m), total bandwidth of each server.
    server_max_power_w : (M,) float, W
        p_max^(m), total downlink power of each server.
    server_max_flops : (M,) float, FLOP/s
        F_max^(m), total effective compute of each server.
    server_kappa : (M,) float
        kappa_m.
    server_epochs : (M,) float
        e_m, server training epochs.
    channel_gain : (N, M) float
        g_{n,m}, linear power gain.
    noise_psd_w_per_hz : float, W/Hz
        sigma^2, noise power spectral density.
    bits_per_param : float
        omega_b.
    weight_delay, weight_energy : float
        omega_t (per second) and omega_e (per joule).
    service_scale, service_norm : float
        varpi_1 and varpi_2 of the service score.
    count_idle : bool
        True (the paper): server compute and downlink power given to a user with no server work
        still earn service score. False: they must follow the work,
        ``s_n <= (1 - phi_n) F_max^(m)`` and ``q_n <= (1 - phi_n) p_max^(m)``.
    user_position_m, server_position_m : (N, 2) and (M, 2) float or None, m
        Optional positions, for plots.
    work_model : "paper" or "profiled"
        How training work depends on phi (:mod:`~mecllm.systems.finetune.work_model`).
    profile : Profile or None
        The profiled model's costs and the run's data sizes; required by ``"profiled"``,
        optional with ``"paper"`` (then it only describes the data ``mecllm train`` runs).
    """

    adapter_params: FloatArray
    flops_per_param: FloatArray
    user_epochs: FloatArray
    user_max_power_w: FloatArray
    user_max_flops: FloatArray
    user_kappa: FloatArray
    bandwidth_hz: FloatArray
    server_max_power_w: FloatArray
    server_max_flops: FloatArray
    server_kappa: FloatArray
    server_epochs: FloatArray
    channel_gain: FloatArray
    noise_psd_w_per_hz: float
    bits_per_param: float = 32.0
    weight_delay: float = 0.5
    weight_energy: float = 0.005
    service_scale: float = 10000.0 / np.log(2.0)
    service_norm: float = 1.0 / 3.0
    count_idle: bool = True
    user_position_m: FloatArray | None = field(default=None)
    server_position_m: FloatArray | None = field(default=None)
    work_model: WorkModelName = "paper"
    profile: Profile | None = field(default=None)
    #: The system this instance belongs to (the registry's key).
    kind: ClassVar[str] = KIND

    def __post_init__(self) -> None:
        # Construction from Python goes through the same rules as a JSON file: one gate. Values
        # that from_dict has just checked are not checked a second time.
        if not _VALIDATED.get():
            Instance.from_dict(self.to_dict(), _build=False)
        for name in (
            *USER_FIELDS,
            *SERVER_FIELDS,
            "channel_gain",
            "user_position_m",
            "server_position_m",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        """N, the number of users."""
        return int(self.adapter_params.shape[0])

    @property
    def n_servers(self) -> int:
        """M, the number of edge servers."""
        return int(self.bandwidth_hz.shape[0])

    @cached_property
    def work(self) -> WorkCoefficients:
        """FLOPs per epoch of each user's work on either side, by the instance's work model."""
        if self.work_model == "profiled" and self.profile is not None:
            return profiled_coefficients(self.profile)
        return paper_coefficients(self.flops_per_param, self.adapter_params)

    @property
    def gain_over_noise(self) -> FloatArray:
        """g_{n,m} / sigma^2, shape (N, M), in 1/(W/Hz): SNR per watt per hertz⁻¹."""
        return self.channel_gain / self.noise_psd_w_per_hz

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The section-10 JSON form (plain Python lists and floats)."""
        users: dict[str, Any] = {
            "adapter_params": _list(self.adapter_params),
            "flops_per_param": _list(self.flops_per_param),
            "epochs": _list(self.user_epochs),
            "max_power_w": _list(self.user_max_power_w),
            "max_flops": _list(self.user_max_flops),
            "kappa": _list(self.user_kappa),
        }
        servers: dict[str, Any] = {
            "bandwidth_hz": _list(self.bandwidth_hz),
            "max_power_w": _list(self.server_max_power_w),
            "max_flops": _list(self.server_max_flops),
            "kappa": _list(self.server_kappa),
            "epochs": _list(self.server_epochs),
        }
        if self.user_position_m is not None:
            users["position_m"] = np.asarray(self.user_position_m, dtype=float).tolist()
        if self.server_position_m is not None:
            servers["position_m"] = np.asarray(self.server_position_m, dtype=float).tolist()
        extra: dict[str, Any] = {}
        if self.work_model != "paper" or self.profile is not None:
            extra["work_model"] = self.work_model
        if self.profile is not None:
            extra["profile"] = self.profile.to_dict()
        return {
            "users": users,
            "servers": servers,
            "channel_gain": np.asarray(self.channel_gain, dtype=float).tolist(),
            "noise_psd_w_per_hz": float(self.noise_psd_w_per_hz),
            "bits_per_param": float(self.bits_per_param),
            "weights": {"delay": float(self.weight_delay), "energy": float(self.weight_energy)},
            "service": {
                "scale": float(self.service_scale),
                "norm": float(self.service_norm),
                "count_idle": bool(self.count_idle),
            },
            **extra,
        }

    @classmethod
    def from_dict(cls, data: object, *, _build: bool = True) -> Instance:
        """Validate a section-10 mapping and build the instance.

        Raises
        ------
        InvalidInputError
            For the first rule the data breaks, naming the field, the rule and the value.
        """
        if not isinstance(data, Mapping):
            raise checks.fail("instance", "must be a JSON object", type(data).__name__)
        checks.reject_unknown(data, _TOP_FIELDS)
        if "kind" in data and data["kind"] != KIND:
            raise checks.fail("kind", f"must be {KIND!r} for this system", data["kind"])
        users = checks.section(data, "users")
        servers = checks.section(data, "servers")
        checks.reject_unknown(users, _USER_FIELDS, "users")
        checks.reject_unknown(servers, _SERVER_FIELDS, "servers")

        d = checks.vector(
            users, "adapter_params", "users", None, low=0, high=_MAX_PARAMS, floor=_MIN_PARAMS
        )
        n = d.shape[0]
        if n == 0:
            raise InvalidInputError("users.adapter_params must list at least one user, got 0")
        bw = checks.vector(
            servers,
            "bandwidth_hz",
            "servers",
            None,
            low=0,
            high=_MAX_BANDWIDTH_HZ,
            floor=_MIN_BANDWIDTH_HZ,
        )
        m = bw.shape[0]
        if m == 0:
            raise InvalidInputError("servers.bandwidth_hz must list at least one server, got 0")

        uvec = partial(_section_vector, users, "users", n)
        svec = partial(_section_vector, servers, "servers", m)

        t = uvec("flops_per_param", low=0, high=_MAX_FLOPS_PER_PARAM, floor=_MIN_FLOPS_PER_PARAM)
        e_n = uvec("epochs", low=0, high=_MAX_EPOCHS, floor=_MIN_EPOCHS)
        p_n = uvec("max_power_w", low=0, high=_MAX_POWER_W, floor=_MIN_POWER_W)
        f_n = uvec("max_flops", low=0, high=_MAX_FLOPS, floor=_MIN_FLOPS)
        k_n = uvec("kappa", low=0, high=_MAX_KAPPA, inclusive=True)
        p_m = svec("max_power_w", low=0, high=_MAX_POWER_W, floor=_MIN_POWER_W)
        f_m = svec("max_flops", low=0, high=_MAX_FLOPS, floor=_MIN_FLOPS)
        k_m = svec("kappa", low=0, high=_MAX_KAPPA, inclusive=True)
        e_m = svec("epochs", low=0, high=_MAX_EPOCHS, floor=_MIN_EPOCHS)
        gain = checks.matrix(data, "channel_gain", n, m, low=0, high=_MAX_GAIN, floor=_MIN_GAIN)
        noise = checks.scalar(
            data, "noise_psd_w_per_hz", "", low=1e-35, low_inclusive=True, high=1e-3
        )
        bits = checks.scalar(data, "bits_per_param", "", low=0, high=1024)
        weights = checks.section(data, "weights")
        checks.reject_unknown(weights, {"delay", "energy"}, "weights")
        w_t = checks.scalar(weights, "delay", "weights", low=0, low_inclusive=True, high=1e12)
        w_e = checks.scalar(weights, "energy", "weights", low=0, low_inclusive=True, high=1e12)
        if w_t == 0 and w_e == 0:
            raise InvalidInputError(
                "weights.delay and weights.energy must not both be 0 (the cost would vanish), "
                "got 0 and 0"
            )
        service = checks.section(data, "service")
        checks.reject_unknown(service, {"scale", "norm", "count_idle"}, "service")
        scale = checks.scalar(service, "scale", "service", low=0, high=1e15)
        norm = checks.scalar(service, "norm", "service", low=0, high=1e6)
        count_idle = service.get("count_idle", True)
        if not isinstance(count_idle, bool):
            raise checks.fail("service.count_idle", "must be true or false", count_idle)
        pos_u = _positions(users, "users", n)
        pos_s = _positions(servers, "servers", m)
        work_model = data.get("work_model", "paper")
        if work_model not in WORK_MODELS:
            raise checks.fail("work_model", f"must be one of {', '.join(WORK_MODELS)}", work_model)
        profile = Profile.from_dict(data["profile"], n) if "profile" in data else None
        if work_model == "profiled" and profile is None:
            raise InvalidInputError(
                "work_model 'profiled' needs a profile section (write one with "
                "`mecllm generate ... --work-model cost.json`)"
            )
        if not _build:
            return cls.__new__(cls)
        token = _VALIDATED.set(True)
        try:
            return cls(
                adapter_params=d,
                flops_per_param=t,
                user_epochs=e_n,
                user_max_power_w=p_n,
                user_max_flops=f_n,
                user_kappa=k_n,
                bandwidth_hz=bw,
                server_max_power_w=p_m,
                server_max_flops=f_m,
                server_kappa=k_m,
                server_epochs=e_m,
                channel_gain=gain,
                noise_psd_w_per_hz=noise,
                bits_per_param=bits,
                weight_delay=w_t,
                weight_energy=w_e,
                service_scale=scale,
                service_norm=norm,
                count_idle=count_idle,
                user_position_m=pos_u,
                server_position_m=pos_s,
                work_model=work_model,
                profile=profile,
            )
        finally:
            _VALIDATED.reset(token)

    @classmethod
    def load(cls, path: str | Path) -> Instance:
        """Read and validate an instance JSON file."""
        return cls.from_dict(read_json(path, "instance"))

    def save(self, path: str | Path) -> None:
        """Write the section-10 JSON file atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def with_settings(self, **changes: Any) -> Instance:
        """A copy with some fields replaced (validated again)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(changes)
        return Instance(**values)


def _section_vector(
    data: Mapping[str, Any],
    path: str,
    count: int,
    key: str,
    *,
    low: float,
    high: float,
    inclusive: bool = False,
    floor: float | None = None,
) -> FloatArray:
    return checks.vector(
        data, key, path, count, low=low, low_inclusive=inclusive, high=high, floor=floor
    )


def _positions(data: Mapping[str, Any], path: str, count: int) -> FloatArray | None:
    if "position_m" not in data:
        return None
    return checks.matrix(
        data,
        "position_m",
        count,
        2,
        low=-_MAX_POSITION_M,
        low_inclusive=True,
        high=_MAX_POSITION_M,
        path=path,
    )


def _list(values: FloatArray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float)]
