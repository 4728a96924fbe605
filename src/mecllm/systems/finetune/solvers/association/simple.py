"""Association steps: which server each user joins.

The simple rules of the paper's baselines live here; AO part 1 (the paper's SDR route and the
exact MILP) builds on :mod:`pricing`.
"""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.systems.finetune.instance import Instance


def random_association(instance: Instance, rng: np.random.Generator) -> IntArray:
    """Each user joins a server drawn uniformly at random (RUCAA)."""
    out: IntArray = rng.integers(0, instance.n_servers, size=instance.n_users).astype(np.int64)
    return out


def greedy_association(instance: Instance) -> IntArray:
    """Users in index order join the server with the fewest users so far; ties: lower index.

    With every server starting empty this is round robin: user n joins server n mod M.
    """
    counts = np.zeros(instance.n_servers, dtype=np.int64)
    out = np.empty(instance.n_users, dtype=np.int64)
    for n in range(instance.n_users):
        m = int(np.argmin(counts))  # argmin returns the lowest index among ties
        out[n] = m
        counts[m] += 1
    return out


def strongest_channel(instance: Instance) -> IntArray:
    """Each user joins the server with the largest channel gain."""
    out: IntArray = np.argmax(instance.channel_gain, axis=1).astype(np.int64)
    return out
