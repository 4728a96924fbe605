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


def synthetic_cost(
    blocks: int = 6,
    user: tuple[float, float] = (39.8e6, 0.12e6),
    server: tuple[float, float] = (21.6e6, 18.3e6),
    tokens_per_step: int = 384,
    flops_per_s: float = 8e10,
    adapter_per_block: int = 12_688,
) -> dict[str, Any]:
    """A cost file shaped like `mecllm profile`'s, with exactly affine costs per token:
    ``user = a + b k / L`` for k >= 1 and ``server = a + b (L - k) / L`` for k < L."""
    steps = []
    for k in range(blocks + 1):
        u = (user[0] + user[1] * k / blocks) * tokens_per_step if k > 0 else 0.0
        s = (server[0] + server[1] * (blocks - k) / blocks) * tokens_per_step if k < blocks else 0.0
        steps.append(
            {
                "split": k,
                "user": {"flops": u, "seconds": u / flops_per_s, "params": adapter_per_block * k},
                "server": {
                    "flops": s,
                    "seconds": s / flops_per_s,
                    "params": adapter_per_block * (blocks - k),
                },
            }
        )
    return {
        "kind": "train-cost",
        "blocks": blocks,
        "seq_len": 24,
        "batch": 16,
        "tokens_per_step": tokens_per_step,
        "bottleneck": 16,
        "train_steps": steps,
    }


def profiled_instance_for_tests(
    seed: int, n_users: int = 4, n_servers: int = 2, plan_model: str = "profiled"
) -> Instance:
    """A small instance with the profiled work model of :func:`synthetic_cost`."""
    from mecllm.systems.finetune.profiled_scenario import profiled_instance

    rng = np.random.default_rng(seed)
    base = generate(preset("paper", n_users=n_users, n_servers=n_servers), rng)
    return profiled_instance(base, synthetic_cost(), rng, plan_model)
