"""Random secure offsite-tuning scenarios (docs/secure.md section 5), from one Generator.

Presets: ``default`` (docs/secure.md section 5 exactly) and ``balanced`` (our proposal, see
:data:`PRESETS`: at the section-5 values the server's emulator build dominates the energy at the
equal split, docs/secure.md section 6). Every setting can be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError
from mecllm.core.radio import dbm_per_hz_to_w_per_hz, path_loss_db
from mecllm.core.resources import check_memory
from mecllm.core.settings import check_bounds, check_ordered, replace_settings
from mecllm.systems.secure.instance import SecureInstance


@dataclass(frozen=True)
class SecureSettings:
    """Settings of a random secure scenario (defaults: docs/secure.md section 5).

    Attributes
    ----------
    n_users : int
        N data owners (one eavesdropper each).
    area_m : float, m
        Side of the square; the server sits at its centre, owners are uniform in it.
    eavesdropper_distance_m : float
        0 (default): eavesdroppers are uniform in the area like the owners; > 0: each sits at
        this distance from its owner in a uniformly random direction.
    bandwidth_hz, server_max_power_w, server_max_flops, server_kappa : server resources.
    user_max_power_w, user_max_flops, user_kappa : every owner's device.
    layers, params_per_layer, bits_per_param : the base model.
    phi_min, phi_max, emulator_ratio, distill_flops_per_param : offsite-tuning constants.
    tokens_min, tokens_max : each owner's tokens are uniform in this range.
    flops_per_param_per_token : t_n = this x tokens.
    user_epochs : e_n.
    alpha_min, alpha_max : alpha_n is uniform in this range.
    beta, gamma : utility constants.
    noise_dbm_per_hz : float, dBm/Hz.
    secrecy_floor_bps : R_min, bit/s.
    weight_delay, weight_energy : omega_t and omega_e.
    accept_insecure : bool
        Whether owners with no positive secrecy rate accept a plain uplink (default: no, they
        are excluded with a reason).
    """

    n_users: int = 10
    area_m: float = 500.0
    eavesdropper_distance_m: float = 0.0
    bandwidth_hz: float = 100e6
    server_max_power_w: float = 10.0
    server_max_flops: float = 1372.8e12
    server_kappa: float = 1e-38
    user_max_power_w: float = 0.2
    user_max_flops: float = 19.58e12
    user_kappa: float = 1e-38
    layers: float = 24.0
    params_per_layer: float = 5.2e7
    bits_per_param: float = 16.0
    phi_min: float = 0.05
    phi_max: float = 0.5
    emulator_ratio: float = 0.5
    distill_flops_per_param: float = 6e5
    tokens_min: float = 0.5e6
    tokens_max: float = 2e6
    flops_per_param_per_token: float = 6.0
    user_epochs: float = 1.0
    alpha_min: float = 0.5
    alpha_max: float = 1.5
    beta: float = 10.0
    gamma: float = 1.0
    noise_dbm_per_hz: float = -174.0
    secrecy_floor_bps: float = 1e6
    weight_delay: float = 0.5
    weight_energy: float = 0.005
    accept_insecure: bool = False

    def replace(self, **changes: Any) -> SecureSettings:
        """A copy with some settings replaced, checked by name, type and range."""
        settings = replace_settings(self, changes, "secure scenario setting")
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values outside physical ranges, empty ranges and sizes that cannot fit in
        memory, before anything is drawn (the instance's own checks come after)."""
        check_bounds(self, _BOUNDS)
        for low, high in (
            ("phi_min", "phi_max"),
            ("tokens_min", "tokens_max"),
            ("alpha_min", "alpha_max"),
        ):
            check_ordered(self, low, high)
        if self.weight_delay == 0 and self.weight_energy == 0:
            raise InvalidInputError("setting weight_delay and weight_energy must not both be 0")
        # One server: about 2 kB per owner for the draw, the validation and the JSON text.
        check_memory(2000.0 * self.n_users + 2e8, "an instance of this size")


#: (low, high, low inclusive) of each numeric setting (generous physical ranges).
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "n_users": (1, 10_000_000, True),
    "area_m": (0.0, 1e6, False),
    "eavesdropper_distance_m": (0.0, 1e6, True),
    "bandwidth_hz": (1.0, 1e13, True),
    "server_max_power_w": (1e-15, 1e6, True),
    "server_max_flops": (1.0, 1e21, True),
    "server_kappa": (0.0, 1e-3, True),
    "user_max_power_w": (1e-15, 1e6, True),
    "user_max_flops": (1.0, 1e21, True),
    "user_kappa": (0.0, 1e-3, True),
    "layers": (1.0, 1e6, True),
    "params_per_layer": (1.0, 1e13, True),
    "bits_per_param": (0.0, 1024.0, False),
    "phi_min": (0.0, 1.0, False),
    "phi_max": (0.0, 1.0, False),
    "emulator_ratio": (0.0, 1.0, False),
    "distill_flops_per_param": (0.0, 1e16, True),
    "tokens_min": (0.0, 1e15, False),
    "tokens_max": (0.0, 1e15, False),
    "flops_per_param_per_token": (0.0, 1e9, False),
    "user_epochs": (1e-6, 1e6, True),
    "alpha_min": (0.0, 1e6, False),
    "alpha_max": (0.0, 1e6, False),
    "beta": (0.0, 1e6, False),
    "gamma": (0.0, 1e6, True),
    "noise_dbm_per_hz": (-320.0, 0.0, True),
    "secrecy_floor_bps": (0.0, 1e13, True),
    "weight_delay": (0.0, 1e12, True),
    "weight_energy": (0.0, 1e12, True),
}


#: ``default`` is docs/secure.md section 5. ``balanced`` is our proposal where no phase
#: dominates by orders of magnitude (``python benchmarks/secure_phases.py``): kappa = 1e-38
#: prices a FLOP at kappa f^2 = 3.8e-12 J on the device at full speed (0.26 GFLOP/J) and
#: 5e-10 J on a server share, far above real GPUs, so the emulator build and local training
#: swamp the radio energies. Here kappa_n = 1e-40 (26 GFLOP/J on the device), kappa_s = 1e-42,
#: and the emulator distillation runs over 3 million tokens (c_e = 6 x 3e6, the size of one
#: owner's data) instead of 1e5, so that it takes seconds to a minute per owner, not 1 s.
PRESETS: dict[str, SecureSettings] = {
    "default": SecureSettings(),
    "balanced": SecureSettings(user_kappa=1e-40, server_kappa=1e-42, distill_flops_per_param=1.8e7),
}


def secure_preset(name: str, **overrides: Any) -> SecureSettings:
    """The settings of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise InvalidInputError(f"secure preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name].replace(**overrides)


def generate_secure(settings: SecureSettings, rng: np.random.Generator) -> SecureInstance:
    """Draw one secure instance: positions, tokens, task values, path loss, Rayleigh fading.

    Draws are made in a fixed order from ``rng`` alone, so a seed fixes the instance; the
    eavesdropper distance only changes where the eavesdroppers are, not the owners' draws.
    """
    settings.validate()
    n = settings.n_users
    server_xy = np.full(2, settings.area_m / 2.0)
    user_xy = rng.uniform(0.0, settings.area_m, size=(n, 2))
    uniform_eve = rng.uniform(0.0, settings.area_m, size=(n, 2))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    tokens = rng.uniform(settings.tokens_min, settings.tokens_max, size=n)
    alpha = rng.uniform(settings.alpha_min, settings.alpha_max, size=n)
    fading = rng.exponential(1.0, size=n)
    fading_eve = rng.exponential(1.0, size=n)
    if settings.eavesdropper_distance_m > 0:
        offset = settings.eavesdropper_distance_m * np.column_stack([np.cos(angle), np.sin(angle)])
        eve_xy = user_xy + offset
    else:
        eve_xy = uniform_eve
    # The eavesdropper listens to the owner's uplink: its gain is over the owner-eve distance.
    g = 10.0 ** (-path_loss_db(np.linalg.norm(user_xy - server_xy, axis=1)) / 10.0) * fading
    h = 10.0 ** (-path_loss_db(np.linalg.norm(user_xy - eve_xy, axis=1)) / 10.0) * fading_eve
    s = settings
    return SecureInstance(
        flops_per_param=s.flops_per_param_per_token * tokens,
        user_epochs=np.full(n, s.user_epochs),
        user_max_power_w=np.full(n, s.user_max_power_w),
        user_max_flops=np.full(n, s.user_max_flops),
        user_kappa=np.full(n, s.user_kappa),
        utility_weight=alpha,
        channel_gain=g,
        eavesdropper_gain=h,
        accept_insecure=np.full(n, s.accept_insecure),
        bandwidth_hz=s.bandwidth_hz,
        server_max_power_w=s.server_max_power_w,
        server_max_flops=s.server_max_flops,
        server_kappa=s.server_kappa,
        layers=s.layers,
        params_per_layer=s.params_per_layer,
        bits_per_param=s.bits_per_param,
        phi_min=s.phi_min,
        phi_max=s.phi_max,
        emulator_ratio=s.emulator_ratio,
        distill_flops_per_param=s.distill_flops_per_param,
        beta=s.beta,
        gamma=s.gamma,
        noise_psd_w_per_hz=dbm_per_hz_to_w_per_hz(s.noise_dbm_per_hz),
        secrecy_floor_bps=s.secrecy_floor_bps,
        weight_delay=s.weight_delay,
        weight_energy=s.weight_energy,
        user_position_m=user_xy,
        eavesdropper_position_m=eve_xy,
        server_position_m=server_xy,
    )
