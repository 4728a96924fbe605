"""Random scenarios of docs/finetune.md section 8, reproducible from one ``numpy.random.Generator``.

Two presets: ``paper`` (thermal noise -174 dBm/Hz, the default) and ``paper-literal`` (the
paper's printed -134 dBm read as a PSD, kept for reproduction). Every setting can be overridden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError
from mecllm.core.radio import dbm_per_hz_to_w_per_hz, path_loss_db
from mecllm.core.settings import replace_settings
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
        """A copy with some settings replaced, checked by name and type."""
        return replace_settings(self, changes, "scenario setting")


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
    if settings.n_users < 1:
        raise InvalidInputError(f"users must be >= 1, got {settings.n_users}")
    if settings.n_servers < 1:
        raise InvalidInputError(f"servers must be >= 1, got {settings.n_servers}")
    if not settings.area_m > 0:
        raise InvalidInputError(f"area_m must be > 0, got {settings.area_m}")
    if settings.shadowing_db < 0:
        raise InvalidInputError(f"shadowing_db must be >= 0, got {settings.shadowing_db}")
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
    tokens = token_bits / settings.bits_per_token
    return Instance(
        adapter_params=d,
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
        weight_delay=settings.weight_delay,
        weight_energy=settings.weight_energy,
        service_scale=settings.service_scale,
        service_norm=settings.service_norm,
        count_idle=settings.count_idle,
        user_position_m=user_xy,
        server_position_m=server_xy,
    )
