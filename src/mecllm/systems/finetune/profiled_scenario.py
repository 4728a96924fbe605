"""``mecllm generate --work-model cost.json``: a scenario that describes the run on this machine.

The radio (positions, channels, bandwidths, powers), the weights and the service score come from
the preset as usual. What the cost file measured replaces the rest (docs/finetune.md section 12):

- the adapter is the profiled model's (``d`` = every block's adapter), 32-bit parameters;
- each user's data is drawn: a whole number of batches between :data:`EXAMPLES` examples,
  ``seq_len`` tokens each; ``t_n`` stays the paper's ``6 x tokens``, so that the same file
  with ``"work_model": "paper"`` is the paper's view of the same run;
- speeds are shares of the profiled thread (``machine_flops_per_s``): users draw theirs from
  :data:`USER_SPEED_SHARE`, servers from :data:`SERVER_SPEED_SHARE`. ``mecllm train`` slows
  each process to its plan's speed by sleeping (it cannot speed one up), and with these shares
  four users and two busy servers need at most 1.6 of this machine's 2 cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.work_model import fit_profile

#: Smallest and largest number of training examples a user holds (drawn per user).
EXAMPLES = (48, 144)
#: Range of a user's speed, as a share of the profiled thread's FLOP/s.
USER_SPEED_SHARE = (0.1, 0.2)
#: Range of a server's speed, as a share of the profiled thread's FLOP/s.
SERVER_SPEED_SHARE = (0.4, 0.6)
#: Bits per adapter parameter on the wire (float32).
WIRE_BITS = 32.0


def profiled_instance(
    base: Instance, cost: Mapping[str, Any], rng: np.random.Generator, work_model: str
) -> Instance:
    """``base`` with the cost file's model, drawn data sizes and machine-relative speeds.

    ``work_model`` is ``"profiled"`` (plan with the measured costs) or ``"paper"`` (the same
    run, planned with ``6 x tokens``).
    """
    kind = cost.get("kind") if isinstance(cost, Mapping) else type(cost).__name__
    if kind != "train-cost":
        raise InvalidInputError(
            "--work-model must be a cost file written by `mecllm profile -o FILE` "
            f"(kind 'train-cost'), got kind {kind!r}"
        )
    n, m = base.n_users, base.n_servers
    batch, seq_len = int(cost["batch"]), int(cost["seq_len"])
    low, high = EXAMPLES
    batches = rng.integers(low // batch, high // batch + 1, size=n)
    tokens = (batches * batch * seq_len).astype(float)
    profile = fit_profile(cost, tokens)
    whole = max(cost["train_steps"], key=lambda s: int(s["split"]))
    adapter = float(whole["user"]["params"])
    machine = profile.machine_flops_per_s
    user_speed = machine * rng.uniform(*USER_SPEED_SHARE, size=n)
    server_speed = machine * rng.uniform(*SERVER_SPEED_SHARE, size=m)
    return base.with_settings(
        adapter_params=np.full(n, adapter),
        flops_per_param=6.0 * tokens,
        user_max_flops=user_speed,
        server_max_flops=server_speed,
        bits_per_param=WIRE_BITS,
        work_model=work_model,
        profile=profile,
    )
