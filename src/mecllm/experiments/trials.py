"""Running one trial wherever the backend puts it: the spec names its system, the registry
finds the system, the system generates, solves and summarises. A pure function of the spec, so
results do not depend on the worker or the backend."""

from __future__ import annotations

from mecllm.core.experiment import Row, TrialKey, TrialSpec, trial_rng
from mecllm.systems.registry import get_system


def run_trial(spec: TrialSpec) -> tuple[TrialKey, Row]:
    """The key and row of one trial."""
    system = get_system(spec.system)
    return spec.key, system.run_trial(spec, trial_rng(spec.base_seed, spec.seed))
