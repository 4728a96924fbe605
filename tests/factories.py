"""Instances for tests: built by hand (every figure easy to check) and generated (small)."""

from __future__ import annotations

import math
from pathlib import Path
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
        # Split mode's units (per step of tokens_per_step tokens).
        "full_block": {"flops": 4.1e9, "seconds": 0.06},
        "embeddings": {"flops": 0, "seconds": 0.05},
    }


def profiled_instance_for_tests(
    seed: int, n_users: int = 4, n_servers: int = 2, plan_model: str = "profiled"
) -> Instance:
    """A small instance with the profiled work model of :func:`synthetic_cost`."""
    from mecllm.systems.finetune.profiled_scenario import profiled_instance

    rng = np.random.default_rng(seed)
    base = generate(preset("paper", n_users=n_users, n_servers=n_servers), rng)
    return profiled_instance(base, synthetic_cost(), rng, plan_model)


def tiny_profiled_files(
    tmp_path: Path, slow_links: bool = True, phi: tuple[float, float] = (0.5, 0.0)
) -> tuple[Path, Path]:
    """A 2-user, 1-server profiled instance with one batch of data each, and a plan (files)."""
    import json

    from mecllm.models.minilm import adapter_size
    from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
    from mecllm.systems.finetune.work_model import fit_profile

    base = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    cost = synthetic_cost(flops_per_s=8e10)
    profile = fit_profile(cost, np.full(2, 16.0 * 24))
    machine = profile.machine_flops_per_s
    instance = base.with_settings(
        adapter_params=np.full(2, 6.0 * adapter_size(384, 16)),
        flops_per_param=np.full(2, 6.0 * 16 * 24),
        user_max_flops=np.full(2, machine / 2),
        server_max_flops=np.full(1, machine / 2),
        bits_per_param=32.0,
        work_model="profiled",
        profile=profile,
        # Fast links: both users get the better user's channel.
        channel_gain=base.channel_gain
        if slow_links
        else np.full_like(base.channel_gain, base.channel_gain.max()),
    )
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array(phi))
    # Slow links: the upload of user 0 (3 blocks, 0.9 Mbit) takes a measurable time.
    if slow_links:
        plan = plan.replace(bandwidth_hz=plan.bandwidth_hz * 1e-2)
    inst_path, sol_path = tmp_path / "i.json", tmp_path / "s.json"
    instance.save(inst_path)
    sol_path.write_text(json.dumps(plan.to_dict()))
    return inst_path, sol_path


def tiny_model_dir(folder: Path, family: str = "bert", layers: int = 3) -> Path:
    """A small randomly initialised model of ``family`` saved as ``save_pretrained`` writes it,
    with the packaged MiniLM's tokenizer files (made here: nothing is downloaded)."""
    import shutil

    import torch
    import transformers

    from mecllm.models.minilm import model_dir

    special = {"bos_token_id": 101, "eos_token_id": 102, "pad_token_id": 0}
    configs = {
        "bert": lambda: transformers.BertConfig(
            hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64,
        ),
        "llama": lambda: transformers.LlamaConfig(
            vocab_size=30522, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=128, **special,
        ),
        "gpt2": lambda: transformers.GPT2Config(
            vocab_size=30522, n_embd=64, n_layer=layers, n_head=4, n_positions=64, **special
        ),
        "distilbert": lambda: transformers.DistilBertConfig(
            dim=64, n_layers=layers, n_heads=4, hidden_dim=128, max_position_embeddings=64
        ),
    }  # fmt: skip
    torch.manual_seed(0)
    transformers.AutoModel.from_config(configs[family]()).save_pretrained(folder)
    source = model_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder
