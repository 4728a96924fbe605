"""The secure offsite-tuning instance (docs/secure.md): one edge server, N data owners, one
eavesdropper per owner's uplink.

A :class:`SecureInstance` is validated once, when it is built, and is immutable afterwards. JSON
files carry ``"kind": "secure-offsite"``; every field is listed in :data:`FIELDS_HELP` and in
docs/formats.md. All quantities are SI units.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mecllm.core import checks
from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json

BoolArray = NDArray[np.bool_]

#: The value of the JSON ``kind`` field of this system.
KIND = "secure-offsite"

_USER_FIELDS = {
    "flops_per_param",
    "epochs",
    "max_power_w",
    "max_flops",
    "kappa",
    "utility_weight",
    "channel_gain",
    "eavesdropper_gain",
    "accept_insecure",
    "position_m",
    "eavesdropper_position_m",
}
_SERVER_FIELDS = {"bandwidth_hz", "max_power_w", "max_flops", "kappa", "position_m"}
_MODEL_FIELDS = {
    "layers",
    "params_per_layer",
    "bits_per_param",
    "phi_min",
    "phi_max",
    "emulator_ratio",
    "distill_flops_per_param",
}
_TOP_FIELDS = {
    "kind",
    "name",
    "users",
    "server",
    "model",
    "utility",
    "noise_psd_w_per_hz",
    "secrecy_floor_bps",
    "weights",
}


def _frozen(values: Any, dtype: type = float) -> Any:
    out: np.ndarray = np.array(values, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class SecureInstance:
    """One secure offsite-tuning scenario (all SI units; per-user arrays have shape (N,)).

    Attributes
    ----------
    flops_per_param : t_n, FLOPs per trained parameter per epoch (6 x tokens).
    user_epochs : e_n.
    user_max_power_w : p_max^(n), W, uplink power cap.
    user_max_flops : F_max^(n), FLOP/s.
    user_kappa : kappa_n.
    utility_weight : alpha_n > 0, the value of user n's task.
    channel_gain : g_n, linear power gain between user n and the server.
    eavesdropper_gain : h_n >= 0, gain from user n to its eavesdropper (0: none).
    accept_insecure : (N,) bool; a user with no positive secrecy rate is served over a plain
        (insecure) uplink if True, excluded with a reason if False.
    bandwidth_hz : B, Hz, shared by every downlink and uplink (FDMA).
    server_max_power_w : Q_max, W, total downlink power.
    server_max_flops : F_max, FLOP/s, the server's GPUs.
    server_kappa : kappa_s.
    layers, params_per_layer : L and P of the base model.
    bits_per_param : omega_b.
    phi_min, phi_max : bounds of the adapter share phi_n.
    emulator_ratio : rho in (0, 1], layer-drop ratio of the emulator.
    distill_flops_per_param : c_e, FLOPs per emulator parameter to build it.
    beta, gamma : utility constants, ``u_n = alpha_n ln(1 + beta phi_n) + gamma ln(rho)``.
    noise_psd_w_per_hz : sigma^2, W/Hz.
    secrecy_floor_bps : R_min, bit/s.
    weight_delay, weight_energy : omega_t (1/s) and omega_e (1/J).
    user_position_m, eavesdropper_position_m : (N, 2) or None; server_position_m : (2,) or None.
    """

    flops_per_param: FloatArray
    user_epochs: FloatArray
    user_max_power_w: FloatArray
    user_max_flops: FloatArray
    user_kappa: FloatArray
    utility_weight: FloatArray
    channel_gain: FloatArray
    eavesdropper_gain: FloatArray
    bandwidth_hz: float
    server_max_power_w: float
    server_max_flops: float
    server_kappa: float
    layers: float
    params_per_layer: float
    noise_psd_w_per_hz: float
    accept_insecure: BoolArray | None = None
    bits_per_param: float = 16.0
    phi_min: float = 0.05
    phi_max: float = 0.5
    emulator_ratio: float = 0.5
    distill_flops_per_param: float = 6e5
    beta: float = 10.0
    gamma: float = 1.0
    secrecy_floor_bps: float = 1e6
    weight_delay: float = 0.5
    weight_energy: float = 0.005
    user_position_m: FloatArray | None = field(default=None)
    eavesdropper_position_m: FloatArray | None = field(default=None)
    server_position_m: FloatArray | None = field(default=None)
    #: The system this instance belongs to (the registry's key).
    kind: ClassVar[str] = KIND

    def __post_init__(self) -> None:
        if self.accept_insecure is None:
            object.__setattr__(
                self, "accept_insecure", np.zeros(np.shape(self.channel_gain)[0], dtype=bool)
            )
        SecureInstance.from_dict(self.to_dict(), _build=False)  # one gate for every route
        for name in (
            "flops_per_param",
            "user_epochs",
            "user_max_power_w",
            "user_max_flops",
            "user_kappa",
            "utility_weight",
            "channel_gain",
            "eavesdropper_gain",
            "user_position_m",
            "eavesdropper_position_m",
            "server_position_m",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))
        object.__setattr__(self, "accept_insecure", _frozen(self.accept_insecure, bool))

    # ------------------------------------------------------------------ derived
    @property
    def n_users(self) -> int:
        """N."""
        return int(self.channel_gain.shape[0])

    @property
    def model_params(self) -> float:
        """L x P, parameters of the base model."""
        return float(self.layers * self.params_per_layer)

    @property
    def phi_mid(self) -> float:
        """The midpoint of the phi range (the baselines' fixed split)."""
        return 0.5 * (self.phi_min + self.phi_max)

    def with_settings(self, **changes: Any) -> SecureInstance:
        """A copy with some fields replaced (validated again)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(changes)
        return SecureInstance(**values)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain lists and floats)."""
        assert self.accept_insecure is not None
        users: dict[str, Any] = {
            "flops_per_param": _list(self.flops_per_param),
            "epochs": _list(self.user_epochs),
            "max_power_w": _list(self.user_max_power_w),
            "max_flops": _list(self.user_max_flops),
            "kappa": _list(self.user_kappa),
            "utility_weight": _list(self.utility_weight),
            "channel_gain": _list(self.channel_gain),
            "eavesdropper_gain": _list(self.eavesdropper_gain),
            "accept_insecure": [bool(v) for v in self.accept_insecure],
        }
        for key, value in (
            ("position_m", self.user_position_m),
            ("eavesdropper_position_m", self.eavesdropper_position_m),
        ):
            if value is not None:
                users[key] = np.asarray(value, dtype=float).tolist()
        server: dict[str, Any] = {
            "bandwidth_hz": float(self.bandwidth_hz),
            "max_power_w": float(self.server_max_power_w),
            "max_flops": float(self.server_max_flops),
            "kappa": float(self.server_kappa),
        }
        if self.server_position_m is not None:
            server["position_m"] = np.asarray(self.server_position_m, dtype=float).tolist()
        return {
            "kind": KIND,
            "users": users,
            "server": server,
            "model": {
                "layers": float(self.layers),
                "params_per_layer": float(self.params_per_layer),
                "bits_per_param": float(self.bits_per_param),
                "phi_min": float(self.phi_min),
                "phi_max": float(self.phi_max),
                "emulator_ratio": float(self.emulator_ratio),
                "distill_flops_per_param": float(self.distill_flops_per_param),
            },
            "utility": {"beta": float(self.beta), "gamma": float(self.gamma)},
            "noise_psd_w_per_hz": float(self.noise_psd_w_per_hz),
            "secrecy_floor_bps": float(self.secrecy_floor_bps),
            "weights": {"delay": float(self.weight_delay), "energy": float(self.weight_energy)},
        }

    @classmethod
    def from_dict(cls, data: object, *, _build: bool = True) -> SecureInstance:
        """Validate a ``secure-offsite`` mapping and build the instance.

        Raises
        ------
        InvalidInputError
            For the first rule the data breaks, naming the field, the rule and the value.
        """
        if not isinstance(data, Mapping):
            raise checks.fail("instance", "must be a JSON object", type(data).__name__)
        checks.reject_unknown(data, _TOP_FIELDS)
        if data.get("kind") != KIND:
            raise checks.fail("kind", f"must be {KIND!r} for the secure system", data.get("kind"))
        users = checks.section(data, "users")
        server = checks.section(data, "server")
        model = checks.section(data, "model")
        utility = checks.section(data, "utility")
        weights = checks.section(data, "weights")
        checks.reject_unknown(users, _USER_FIELDS, "users")
        checks.reject_unknown(server, _SERVER_FIELDS, "server")
        checks.reject_unknown(model, _MODEL_FIELDS, "model")
        checks.reject_unknown(utility, {"beta", "gamma"}, "utility")
        checks.reject_unknown(weights, {"delay", "energy"}, "weights")

        g = checks.vector(users, "channel_gain", "users", None, low=0, high=1e3, floor=1e-30)
        n = g.shape[0]
        if n == 0:
            raise InvalidInputError("users.channel_gain must list at least one user, got 0")

        def uvec(
            key: str, high: float, floor: float | None = None, *, zero_ok: bool = False
        ) -> FloatArray:
            return checks.vector(
                users, key, "users", n, low=0, low_inclusive=zero_ok, high=high, floor=floor
            )

        values: dict[str, Any] = {
            "channel_gain": g,
            "eavesdropper_gain": uvec("eavesdropper_gain", 1e3, zero_ok=True),
            "flops_per_param": uvec("flops_per_param", 1e16, 1e-6),
            "user_epochs": uvec("epochs", 1e6, 1e-6),
            "user_max_power_w": uvec("max_power_w", 1e6, 1e-15),
            "user_max_flops": uvec("max_flops", 1e21, 1.0),
            "user_kappa": uvec("kappa", 1e-3, zero_ok=True),
            "utility_weight": uvec("utility_weight", 1e6),
        }
        raw = users.get("accept_insecure", [False] * n)
        if not isinstance(raw, list) or len(raw) != n:
            raise checks.fail("users.accept_insecure", f"must be a list of {n} true/false", raw)
        for i, flag in enumerate(raw):
            if not isinstance(flag, bool):
                raise checks.fail(f"users.accept_insecure[{i}]", "must be true or false", flag)
        values["accept_insecure"] = np.array(raw, dtype=bool)
        for key in ("position_m", "eavesdropper_position_m"):
            if key in users:
                values["user_" + key if key == "position_m" else key] = checks.matrix(
                    users, key, n, 2, low=-1e8, low_inclusive=True, high=1e8, path="users"
                )

        def scalar(
            section: Mapping[str, Any],
            key: str,
            path: str,
            low: float,
            high: float,
            inclusive: bool = False,
        ) -> float:
            return checks.scalar(section, key, path, low=low, low_inclusive=inclusive, high=high)

        values["bandwidth_hz"] = scalar(server, "bandwidth_hz", "server", 1.0, 1e13, True)
        values["server_max_power_w"] = scalar(server, "max_power_w", "server", 1e-15, 1e6, True)
        values["server_max_flops"] = scalar(server, "max_flops", "server", 1.0, 1e21, True)
        values["server_kappa"] = scalar(server, "kappa", "server", 0, 1e-3, True)
        if "position_m" in server:
            values["server_position_m"] = checks.vector(
                server, "position_m", "server", 2, low=-1e8, low_inclusive=True, high=1e8
            )
        values["layers"] = scalar(model, "layers", "model", 1.0, 1e6, True)
        values["params_per_layer"] = scalar(model, "params_per_layer", "model", 1.0, 1e13, True)
        values["bits_per_param"] = scalar(model, "bits_per_param", "model", 0, 1024)
        values["phi_min"] = scalar(model, "phi_min", "model", 0, 1)
        values["phi_max"] = scalar(model, "phi_max", "model", 0, 1)
        if values["phi_max"] >= 1:
            raise checks.fail(
                "model.phi_max", "must be < 1 (the emulator needs some layers)", values["phi_max"]
            )
        if values["phi_min"] > values["phi_max"]:
            raise InvalidInputError(
                f"model.phi_min must be <= model.phi_max, got {values['phi_min']:g} > "
                f"{values['phi_max']:g}"
            )
        values["emulator_ratio"] = scalar(model, "emulator_ratio", "model", 0, 1)
        values["distill_flops_per_param"] = scalar(
            model, "distill_flops_per_param", "model", 0, 1e16, True
        )
        values["beta"] = scalar(utility, "beta", "utility", 0, 1e6)
        values["gamma"] = scalar(utility, "gamma", "utility", 0, 1e6, True)
        values["noise_psd_w_per_hz"] = scalar(data, "noise_psd_w_per_hz", "", 1e-35, 1e-3, True)
        values["secrecy_floor_bps"] = scalar(data, "secrecy_floor_bps", "", 0, 1e13, True)
        values["weight_delay"] = scalar(weights, "delay", "weights", 0, 1e12, True)
        values["weight_energy"] = scalar(weights, "energy", "weights", 0, 1e12, True)
        if values["weight_delay"] == 0 and values["weight_energy"] == 0:
            raise InvalidInputError(
                "weights.delay and weights.energy must not both be 0 (the cost would vanish), "
                "got 0 and 0"
            )
        if not _build:
            return cls.__new__(cls)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> SecureInstance:
        """Read and validate a secure instance JSON file."""
        return cls.from_dict(read_json(path, "instance"))

    def save(self, path: str | Path) -> None:
        """Write the JSON file atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")


def _list(values: FloatArray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float)]
