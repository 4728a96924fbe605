"""A fine-tuning scenario too large to hold whole: drawn per user, channels computed on demand.

A dense :class:`~mecllm.systems.finetune.instance.Instance` of 100,000 users and 1,000 servers
would hold 10^8 channel gains (0.8 GB, and about 30 GB as JSON). A :class:`Field` holds only
what grows with N + M: the positions and the per-user draws, made from one seeded generator in
the order of :func:`~mecllm.systems.finetune.scenario.generate`. The gain of any user-server
pair is a pure function of the pair and the seed (path loss of the distance, times Rayleigh
fading and log-normal shadowing drawn by a counter-based hash of ``(seed, user, server)``), so
any block of users x servers is the same whichever process computes it, in whatever order:
:meth:`Field.instance` builds the dense instance of any block (all of it when it fits).

A field file is a few hundred bytes of JSON: the scenario settings and the seed
(docs/regions.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text, read_json
from mecllm.core.radio import dbm_per_hz_to_w_per_hz, path_loss_db
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.scenario import PRESETS, ScenarioSettings, scenario_instance

#: The value of the ``kind`` field of a field file.
FIELD_KIND = "edge-llm-field"

_U64 = np.uint64
#: SplitMix64 constants (Steele, Lea and Flood 2014).
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
#: Independent streams of the pair hash.
_FADING, _SHADOW_R, _SHADOW_A = 1, 2, 3


def _mix(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    out: np.ndarray = z ^ (z >> _U64(31))
    return out


def pair_uniform(seed: int, stream: int, index: np.ndarray) -> FloatArray:
    """Uniform draws in the open interval (0, 1), one per entry of ``index`` (uint64 pair
    numbers), a pure function of ``(seed, stream, index)``."""
    key = _mix(np.array([seed * 4 + stream], dtype=_U64) * _GOLDEN + _GOLDEN)[0]
    with np.errstate(over="ignore"):
        z = _mix(index.astype(_U64) * _GOLDEN + key)
    out: FloatArray = ((z >> _U64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return out


@dataclass(frozen=True)
class Field:
    """A scenario of ``settings`` drawn with ``seed``, its channels computed on demand.

    Attributes
    ----------
    settings : ScenarioSettings
        N, M and every physical setting.
    seed : int
        Fixes the positions, the per-user draws and every pair's fading and shadowing.
    """

    settings: ScenarioSettings
    seed: int

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**62:
            raise InvalidInputError(f"seed must be in [0, 2^62), got {self.seed}")
        self.settings.validate(dense=False)

    @property
    def n_users(self) -> int:
        """N."""
        return self.settings.n_users

    @property
    def n_servers(self) -> int:
        """M."""
        return self.settings.n_servers

    @cached_property
    def _draws(self) -> dict[str, FloatArray]:
        """Positions (m), adapter sizes and token bits, in :func:`generate`'s order."""
        s, rng = self.settings, np.random.default_rng(self.seed)
        server_xy = rng.uniform(0.0, s.area_m, size=(s.n_servers, 2))
        user_xy = rng.uniform(0.0, s.area_m, size=(s.n_users, 2))
        d = rng.uniform(s.adapter_params_min, s.adapter_params_max, size=s.n_users)
        bits = rng.uniform(s.token_bits_min, s.token_bits_max, size=s.n_users)
        return {"server_xy": server_xy, "user_xy": user_xy, "d": d, "token_bits": bits}

    @property
    def server_position_m(self) -> FloatArray:
        """(M, 2) server positions, m."""
        return self._draws["server_xy"]

    @property
    def user_position_m(self) -> FloatArray:
        """(N, 2) user positions, m."""
        return self._draws["user_xy"]

    @property
    def adapter_params(self) -> FloatArray:
        """(N,) d_n."""
        return self._draws["d"]

    @property
    def noise_psd_w_per_hz(self) -> float:
        """sigma^2, W/Hz."""
        return dbm_per_hz_to_w_per_hz(self.settings.noise_dbm_per_hz)

    @property
    def user_max_power_w(self) -> FloatArray:
        """(N,) p_max^(n), W."""
        return np.full(self.n_users, self.settings.user_max_power_w)

    @property
    def server_bandwidth_hz(self) -> float:
        """b_max^(m) of every server, Hz."""
        return self.settings.bandwidth_hz

    @property
    def bits_per_param(self) -> float:
        """omega_b."""
        return self.settings.bits_per_param

    @property
    def weight_delay(self) -> float:
        """omega_t, per s."""
        return self.settings.weight_delay

    @property
    def weight_energy(self) -> float:
        """omega_e, per J."""
        return self.settings.weight_energy

    def gains(self, users: IntArray, servers: IntArray) -> FloatArray:
        """(len(users), len(servers)) linear power gains of the block."""
        users = np.asarray(users, dtype=np.int64)
        servers = np.asarray(servers, dtype=np.int64)
        index = users[:, None].astype(_U64) * _U64(self.n_servers) + servers[None, :].astype(_U64)
        fading = -np.log(pair_uniform(self.seed, _FADING, index))
        distance = np.linalg.norm(
            self.user_position_m[users][:, None, :] - self.server_position_m[servers][None, :, :],
            axis=2,
        )
        loss_db = path_loss_db(distance)
        sd = self.settings.shadowing_db
        if sd > 0:
            radius = np.sqrt(-2.0 * np.log(pair_uniform(self.seed, _SHADOW_R, index)))
            angle = 2.0 * np.pi * pair_uniform(self.seed, _SHADOW_A, index)
            loss_db = loss_db + sd * radius * np.cos(angle)
        out: FloatArray = 10.0 ** (-loss_db / 10.0) * fading
        return out

    def instance(
        self,
        users: IntArray | None = None,
        servers: IntArray | None = None,
        weight_delay: float | None = None,
    ) -> Instance:
        """The dense instance of a block (all users and servers by default); ``weight_delay``
        replaces omega_t (the regions' share of it, docs/regions.md)."""
        u = np.arange(self.n_users) if users is None else np.asarray(users, dtype=np.int64)
        m = np.arange(self.n_servers) if servers is None else np.asarray(servers, dtype=np.int64)
        if u.size == 0 or m.size == 0:
            raise InvalidInputError("a block of a field needs at least one user and one server")
        return scenario_instance(
            self.settings,
            self.user_position_m[u],
            self.server_position_m[m],
            self.adapter_params[u],
            self._draws["token_bits"][u],
            self.gains(u, m),
            weight_delay,
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "edge-llm-field", "seed": ..., "settings": {...}}``."""
        return {
            "kind": FIELD_KIND,
            "seed": self.seed,
            "settings": dataclasses.asdict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: object) -> Field:
        """Validate a field mapping (unknown settings are refused by name)."""
        if not isinstance(data, Mapping) or data.get("kind") != FIELD_KIND:
            raise InvalidInputError(f'a field file is a JSON object with "kind": "{FIELD_KIND}"')
        unknown = set(data) - {"kind", "seed", "settings"}
        if unknown:
            raise InvalidInputError(f"unknown field key(s): {', '.join(sorted(unknown))}")
        seed = data.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidInputError(f"field seed must be an integer, got {seed!r}")
        settings = data.get("settings", {})
        if not isinstance(settings, Mapping):
            raise InvalidInputError("field settings must be a JSON object")
        return cls(PRESETS["paper"].replace(**dict(settings)), seed)

    @staticmethod
    def is_field(data: object) -> bool:
        """True for the raw JSON of a field file."""
        return isinstance(data, Mapping) and data.get("kind") == FIELD_KIND

    @classmethod
    def load(cls, path: str | Path) -> Field:
        """Read a field file."""
        return cls.from_dict(read_json(path, "field"))

    def save(self, path: str | Path) -> None:
        """Write the field file atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
