"""Instances for tests: built by hand (every figure easy to check) and generated (small)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.scenario import generate, preset


def hand_instance_dict() -> dict[str, Any]:
    """Two users on one server, numbers chosen so every figure is easy by hand (see test)."""
    return {
        "users": {
            "adapter_params": [1e6, 2e6],
            "flops_per_param": [10.0, 10.0],
            "epochs": [1, 1],
            "max_power_w": [0.2, 0.2],
            "max_flops": [2e6, 2e6],
            "kappa": [1e-20, 1e-20],
        },
        "servers": {
            "bandwidth_hz": [4e6],
            "max_power_w": [1.0],
            "max_flops": [4e6],
            "kappa": [1e-19],
            "epochs": [1],
        },
        "channel_gain": [[3e-13], [3e-13]],
        "noise_psd_w_per_hz": 1e-20,
        "bits_per_param": 32,
        "weights": {"delay": 0.5, "energy": 0.1},
        "service": {"scale": 1 / math.log(2), "norm": 0.8},
    }


def hand_solution_dict() -> dict[str, Any]:
    """User 0 splits half/half; user 1 trains everything on its device (phi = 1)."""
    return {
        "algorithm": "hand",
        "assignment": [0, 0],
        "phi": [0.5, 1.0],
        "bandwidth_hz": [1e6, 2e6],
        "user_power_w": [0.1, 0.2],
        "server_power_w": [0.5, 0.25],
        "user_flops": [1e6, 2e6],
        "server_flops": [2e6, 1e6],
    }


def small_instance(
    seed: int, n_users: int = 6, n_servers: int = 2, preset_name: str = "paper", **overrides: Any
) -> Instance:
    """A small generated instance (fast to solve)."""
    return generate(
        preset(preset_name, n_users=n_users, n_servers=n_servers, **overrides),
        np.random.default_rng(seed),
    )
