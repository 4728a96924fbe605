"""Random scenarios of docs/finetune.md section 8, reproducible from one ``numpy.random.Generator``.

Two presets: ``paper`` (thermal noise -174 dBm/Hz, the default) and ``paper-literal`` (the
paper's printed -134 dBm read as a PSD, kept for reproduction). Every setting can be overridden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.radio import dbm_per_hz_to_w_per_hz, path_loss_db
from mecllm.core.resources import check_memory
from mecllm.core.settings import check_bounds, check_ordered, replace_settings
from mecllm.systems.finetune.instance import Instance


@dataclass(frozen=True)
class ScenarioSettings:
    """Settings of a random scenario (defaults: the paper's Section V-A, ``paper`` preset).

    Attributes
    ----------
    n_users, n_servers : int
        N and M.
    area_m : float, m
        Side of the square area; users and servers are placed uniformly in it.
    bandwidth_hz : float, Hz
        b_max of every server.
    user_max_power_w, server_max_power_w : float, W
    user_max_flops, server_max_flops : float, FLOP/s
        Effective speeds (GPU count x peak x utilisation, docs/finetune.md section 2).
    user_kappa, server_kappa : float
    adapter_params_min, adapter_params_max : float
        d_n is uniform in this range.
    token_bits_min, token_bits_max : float, bit
        Each user's token data is uniform in this range.
    bits_per_token : float
    flops_per_param_per_token : float
        t_n = this x tokens (6: forward and backward pass).
    noise_dbm_per_hz : float, dBm/Hz
    shadowing_db : float, dB
        Standard deviation of log-normal shadowing (0: none).
    weight_delay, weight_energy : float
    service_scale, service_norm : float
    bits_per_param : float
    user_epochs, server_epochs : float
    count_idle : bool
    """

    n_users: int = 10
    n_servers: int = 2
    area_m: float = 1000.0
    bandwidth_hz: float = 10e6
    user_max_power_w: float = 0.2
    server_max_power_w: float = 10.0
    user_max_flops: float = 19.58e12
    server_max_flops: float = 1372.8e12
    user_kappa: float = 1e-38
    server_kappa: float = 1e-38
    adapter_params_min: float = 1.2e6
    adapter_params_max: float = 14e6
    token_bits_min: float = 10e6
    token_bits_max: float = 50e6
    bits_per_token: float = 16.0
    flops_per_param_per_token: float = 6.0
    noise_dbm_per_hz: float = -174.0
    shadowing_db: float = 0.0
    weight_delay: float = 0.5
    weight_energy: float = 0.005
    service_scale: float = 10000.0 / math.log(2.0)
    service_norm: float = 1.0 / 3.0
    bits_per_param: float = 32.0
    user_epochs: float = 1.0
    server_epochs: float = 1.0
    count_idle: bool = True

    def replace(self, **changes: Any) -> ScenarioSettings:
        """A copy with some settings replaced, checked by name, type and range (the memory a
        dense instance of this size needs is checked when one is drawn)."""
        settings = replace_settings(self, changes, "scenario setting")
        settings.validate(dense=False)
        return settings

    def validate(self, dense: bool = True) -> None:
        """Refuse values outside physical ranges, empty ranges and (``dense``: for an instance
        with its whole N x M channel matrix) sizes that cannot fit in memory, before anything
        is drawn (the instance's own checks come after)."""
        check_bounds(self, _BOUNDS)
        check_ordered(self, "adapter_params_min", "adapter_params_max")
        check_ordered(self, "token_bits_min", "token_bits_max")
        if self.weight_delay == 0 and self.weight_energy == 0:
            raise InvalidInputError("setting weight_delay and weight_energy must not both be 0")
        work = self.flops_per_param_per_token * self.token_bits_max / self.bits_per_token
        if work > _MAX_FLOPS_PER_PARAM:
            raise InvalidInputError(
                f"setting flops_per_param_per_token x token_bits_max / bits_per_token = "
                f"{work:g} FLOPs per parameter exceeds {_MAX_FLOPS_PER_PARAM:g}"
            )
        if dense:
            check_memory(instance_bytes(self.n_users, self.n_servers), "an instance of this size")


#: (low, high, low inclusive) of each numeric setting: generous physical ranges, inside which
#: every time, rate and energy stays finite in float64.
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "n_users": (1, 10_000_000, True),
    "n_servers": (1, 100_000, True),
    "area_m": (0.0, 1e6, False),
    "bandwidth_hz": (1.0, 1e13, True),
    "user_max_power_w": (1e-15, 1e6, True),
    "server_max_power_w": (1e-15, 1e6, True),
    "user_max_flops": (1.0, 1e21, True),
    "server_max_flops": (1.0, 1e21, True),
    "user_kappa": (0.0, 1e-3, True),
    "server_kappa": (0.0, 1e-3, True),
    "adapter_params_min": (1.0, 1e13, True),
    "adapter_params_max": (1.0, 1e13, True),
    "token_bits_min": (0.0, 1e18, False),
    "token_bits_max": (0.0, 1e18, False),
    "bits_per_token": (0.0, 1e6, False),
    "flops_per_param_per_token": (0.0, 1e9, False),
    "noise_dbm_per_hz": (-320.0, 0.0, True),
    "shadowing_db": (0.0, 30.0, True),
    "weight_delay": (0.0, 1e12, True),
    "weight_energy": (0.0, 1e12, True),
    "service_scale": (0.0, 1e15, False),
    "service_norm": (0.0, 1e6, False),
    "bits_per_param": (0.0, 1024.0, False),
    "user_epochs": (1e-6, 1e6, True),
    "server_epochs": (1e-6, 1e6, True),
}
_MAX_FLOPS_PER_PARAM = 1e16


def instance_bytes(n_users: int, n_servers: int) -> float:
    """Peak memory of drawing, validating and writing an instance, bytes (measured: about 1.8 kB
    per user and 0.3 kB per user-server pair, mostly the JSON text and its Python lists)."""
    return 2000.0 * n_users + 300.0 * n_users * n_servers + 2e8


#: Named presets; ``paper`` is the default.
PRESETS: dict[str, ScenarioSettings] = {
    "paper": ScenarioSettings(),
    "paper-literal": ScenarioSettings(noise_dbm_per_hz=-134.0),
}


def preset(name: str, **overrides: Any) -> ScenarioSettings:
    """The settings of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise InvalidInputError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name].replace(**overrides)


def generate(settings: ScenarioSettings, rng: np.random.Generator) -> Instance:
    """Draw one instance: positions, adapter sizes, token data, path loss and Rayleigh fading.

    The draws are made in a fixed order from ``rng`` alone, so a seed fixes the instance.
    """
    settings.validate()
    n, m = settings.n_users, settings.n_servers
    server_xy = rng.uniform(0.0, settings.area_m, size=(m, 2))
    user_xy = rng.uniform(0.0, settings.area_m, size=(n, 2))
    d = rng.uniform(settings.adapter_params_min, settings.adapter_params_max, size=n)
    token_bits = rng.uniform(settings.token_bits_min, settings.token_bits_max, size=n)
    fading = rng.exponential(1.0, size=(n, m))
    shadow_db = (
        rng.normal(0.0, settings.shadowing_db, size=(n, m))
        if settings.shadowing_db > 0
        else np.zeros((n, m))
    )
    distance = np.linalg.norm(user_xy[:, None, :] - server_xy[None, :, :], axis=2)
    gain = 10.0 ** (-(path_loss_db(distance) + shadow_db) / 10.0) * fading
    return scenario_instance(settings, user_xy, server_xy, d, token_bits, gain)


def scenario_instance(
    settings: ScenarioSettings,
    user_xy: FloatArray,
    server_xy: FloatArray,
    adapter_params: FloatArray,
    token_bits: FloatArray,
    gain: FloatArray,
    weight_delay: float | None = None,
) -> Instance:
    """The instance of drawn users (positions (N, 2) m, adapter sizes, token bits) and servers
    (positions (M, 2) m) with channel gains ``gain`` (N, M), every other value from
    ``settings``; ``weight_delay`` replaces omega_t."""
    n, m = adapter_params.shape[0], server_xy.shape[0]
    tokens = token_bits / settings.bits_per_token
    return Instance(
        adapter_params=adapter_params,
        flops_per_param=settings.flops_per_param_per_token * tokens,
        user_epochs=np.full(n, settings.user_epochs),
        user_max_power_w=np.full(n, settings.user_max_power_w),
        user_max_flops=np.full(n, settings.user_max_flops),
        user_kappa=np.full(n, settings.user_kappa),
        bandwidth_hz=np.full(m, settings.bandwidth_hz),
        server_max_power_w=np.full(m, settings.server_max_power_w),
        server_max_flops=np.full(m, settings.server_max_flops),
        server_kappa=np.full(m, settings.server_kappa),
        server_epochs=np.full(m, settings.server_epochs),
        channel_gain=gain,
        noise_psd_w_per_hz=dbm_per_hz_to_w_per_hz(settings.noise_dbm_per_hz),
        bits_per_param=settings.bits_per_param,
        weight_delay=settings.weight_delay if weight_delay is None else weight_delay,
        weight_energy=settings.weight_energy,
        service_scale=settings.service_scale,
        service_norm=settings.service_norm,
        count_idle=settings.count_idle,
        user_position_m=user_xy,
        server_position_m=server_xy,
    )
