"""Random edge-inference scenarios from one ``numpy.random.Generator`` (docs/inference.md
section 5).

Presets: ``default`` (the 9-node, 13B-model scenario) and ``small`` (3 nodes and a model of
MiniLM's size, small enough to serve for real on one machine). Every setting can be overridden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from mecllm.core.errors import InvalidInputError
from mecllm.core.radio import dbm_per_hz_to_w_per_hz, path_loss_db, shannon_rate
from mecllm.core.resources import check_memory
from mecllm.core.settings import check_bounds, replace_settings
from mecllm.systems.inference.instance import InferenceInstance, TaskType


@dataclass(frozen=True)
class InferenceSettings:
    """Settings of a random edge-inference scenario (defaults: the ``default`` preset).

    Node classes are given as ``strong``, ``medium`` and ``weak`` counts with their memory
    (bytes), compute (FLOP/s), memory bandwidth (bytes/s) and busy power (W). The strong node
    sits at the centre of the area, the others on a ring around it. Users are uniform in the
    area and attach to their nearest node; the node's band is shared equally among them.
    """

    area_m: float = 1000.0
    n_strong: int = 1
    n_medium: int = 4
    n_weak: int = 4
    strong_memory_bytes: float = 80e9
    strong_flops: float = 312e12
    strong_memory_bandwidth_bps: float = 2.0e12
    strong_power_w: float = 700.0
    medium_memory_bytes: float = 24e9
    medium_flops: float = 165e12
    medium_memory_bandwidth_bps: float = 1.0e12
    medium_power_w: float = 350.0
    weak_memory_bytes: float = 16e9
    weak_flops: float = 10e12
    weak_memory_bandwidth_bps: float = 0.2e12
    weak_power_w: float = 60.0
    backhaul_bps: float = 10e9
    backhaul_latency_s: float = 0.5e-3
    n_users: int = 60
    access_band_hz: float = 20e6
    user_power_w: float = 0.2
    node_radio_power_w: float = 10.0
    noise_dbm_per_hz: float = -174.0
    blocks: int = 40
    params_per_block: float = 3.17e8
    hidden: int = 5120
    weight_bits: float = 16.0
    activation_bits: float = 16.0
    head_params: float = 1.64e8
    prompt_min: int = 128
    prompt_max: int = 1024
    output_min: int = 32
    output_max: int = 256
    deadline_min_s: float = 2.0
    deadline_max_s: float = 20.0
    total_rate_per_s: float = 12.0
    horizon_s: float = 600.0
    max_batch: int = 64

    def replace(self, **changes: Any) -> InferenceSettings:
        """A copy with some settings replaced, checked by name, type and range."""
        settings = replace_settings(self, changes, "inference scenario setting")
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values outside physical ranges and sizes that cannot fit in memory."""
        check_bounds(self, _BOUNDS)
        if self.n_strong + self.n_medium + self.n_weak < 1:
            raise InvalidInputError("setting n_strong + n_medium + n_weak must be >= 1, got 0")
        for low, high in (
            ("prompt_min", "prompt_max"),
            ("output_min", "output_max"),
            ("deadline_min_s", "deadline_max_s"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise InvalidInputError(f"setting {low} must not exceed {high}")
        nodes = self.n_strong + self.n_medium + self.n_weak
        check_memory(120.0 * nodes * nodes + 2000.0 * self.n_users + 2e8, "this scenario")


_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "area_m": (0.0, 1e6, False),
    "n_strong": (0, 10_000, True),
    "n_medium": (0, 10_000, True),
    "n_weak": (0, 100_000, True),
    "backhaul_bps": (0.0, 1e15, False),
    "backhaul_latency_s": (0.0, 10.0, True),
    "n_users": (1, 10_000_000, True),
    "access_band_hz": (1.0, 1e12, True),
    "user_power_w": (1e-9, 1e3, True),
    "node_radio_power_w": (1e-9, 1e4, True),
    "noise_dbm_per_hz": (-320.0, 0.0, True),
    "blocks": (1, 10_000, True),
    "params_per_block": (1.0, 1e12, True),
    "hidden": (1, 1_000_000, True),
    "weight_bits": (1.0, 64.0, True),
    "activation_bits": (1.0, 64.0, True),
    "head_params": (0.0, 1e12, True),
    "prompt_min": (1, 1_000_000, True),
    "prompt_max": (1, 1_000_000, True),
    "output_min": (1, 1_000_000, True),
    "output_max": (1, 1_000_000, True),
    "deadline_min_s": (1e-6, 1e6, True),
    "deadline_max_s": (1e-6, 1e6, True),
    "total_rate_per_s": (0.0, 1e6, True),
    "horizon_s": (0.0, 1e7, False),
    "max_batch": (1, 100_000, True),
    **{
        f"{kind}_{field}": bounds
        for kind in ("strong", "medium", "weak")
        for field, bounds in (
            ("memory_bytes", (1.0, 1e15, True)),
            ("flops", (1.0, 1e19, True)),
            ("memory_bandwidth_bps", (1.0, 1e15, True)),
            ("power_w", (0.0, 1e6, True)),
        )
    },
}

#: ``small``: 3 nodes of a few CPU cores each and a 6-block model of MiniLM's size (float32),
#: served for real by ``mecllm serve``; node speeds are meant to be replaced by calibrated ones.
PRESETS: dict[str, InferenceSettings] = {
    "default": InferenceSettings(),
    "small": InferenceSettings(
        area_m=100.0,
        n_strong=1,
        n_medium=2,
        n_weak=0,
        strong_memory_bytes=400e6,
        strong_flops=4e10,
        strong_memory_bandwidth_bps=8e9,
        strong_power_w=30.0,
        medium_memory_bytes=200e6,
        medium_flops=2e10,
        medium_memory_bandwidth_bps=4e9,
        medium_power_w=15.0,
        backhaul_bps=1e9,
        backhaul_latency_s=1e-4,
        n_users=6,
        blocks=6,
        params_per_block=1.77e6,
        hidden=384,
        weight_bits=32.0,
        activation_bits=32.0,
        head_params=1.17e7,
        prompt_min=16,
        prompt_max=64,
        output_min=8,
        output_max=32,
        deadline_min_s=1.0,
        deadline_max_s=5.0,
        total_rate_per_s=2.0,
        horizon_s=120.0,
        max_batch=16,
    ),
}


def preset(name: str, **overrides: Any) -> InferenceSettings:
    """The settings of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise InvalidInputError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name].replace(**overrides)


def generate(settings: InferenceSettings, rng: np.random.Generator) -> InferenceInstance:
    """Draw one instance: user positions and fading (node positions are fixed by the preset).

    The draws are made in a fixed order from ``rng`` alone, so a seed fixes the instance.
    """
    settings.validate()
    s = settings
    kinds = ["strong"] * s.n_strong + ["medium"] * s.n_medium + ["weak"] * s.n_weak
    v = len(kinds)

    def per_node(field: str) -> np.ndarray:
        return np.array([getattr(s, f"{kind}_{field}") for kind in kinds], dtype=float)

    centre = np.array([s.area_m / 2, s.area_m / 2])
    angles = 2 * math.pi * np.arange(v) / max(v - 1, 1)
    ring = s.area_m * 0.35
    positions = np.array(
        [
            centre if k == 0 else centre + ring * np.array([math.cos(a), math.sin(a)])
            for k, a in enumerate(angles)
        ]
    )
    users = rng.uniform(0.0, s.area_m, size=(s.n_users, 2))
    fading = rng.exponential(1.0, size=s.n_users)
    nearest, access_raw = cKDTree(positions).query(users)
    access = np.asarray(access_raw, dtype=np.int64).reshape(s.n_users)
    nearest = np.asarray(nearest, dtype=float).reshape(s.n_users)
    gain = 10.0 ** (-path_loss_db(nearest) / 10.0) * fading
    attached = np.bincount(access, minlength=v)[access].astype(float)
    band = s.access_band_hz / attached
    gain_over_noise = gain / dbm_per_hz_to_w_per_hz(s.noise_dbm_per_hz)
    uplink = shannon_rate(band, np.full(s.n_users, s.user_power_w), gain_over_noise)
    downlink = shannon_rate(band, s.node_radio_power_w / attached, gain_over_noise)
    task = TaskType(
        "chat",
        1.0,
        (s.prompt_min, s.prompt_max),
        (s.output_min, s.output_max),
        (s.deadline_min_s, s.deadline_max_s),
    )
    return InferenceInstance(
        memory_bytes=per_node("memory_bytes"),
        flops=per_node("flops"),
        memory_bandwidth_bps=per_node("memory_bandwidth_bps"),
        power_w=per_node("power_w"),
        backhaul_bps=np.full((v, v), s.backhaul_bps) - np.diag(np.full(v, s.backhaul_bps)),
        backhaul_latency_s=np.full((v, v), s.backhaul_latency_s) * (1 - np.eye(v)),
        access_node=access,
        uplink_bps=np.maximum(uplink, 1.0),
        downlink_bps=np.maximum(downlink, 1.0),
        radio_power_w=np.full(s.n_users, s.user_power_w),
        arrival_rate_per_s=np.full(s.n_users, s.total_rate_per_s / s.n_users),
        blocks=s.blocks,
        params_per_block=s.params_per_block,
        hidden=s.hidden,
        weight_bits=s.weight_bits,
        activation_bits=s.activation_bits,
        head_params=s.head_params,
        tasks=(task,),
        horizon_s=s.horizon_s,
        max_batch=s.max_batch,
        node_position_m=positions,
        user_position_m=users,
    )
