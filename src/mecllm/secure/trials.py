"""One trial of a secure experiment: generate the instance of (setting, seed), solve it with one
secure algorithm, keep the figures (the sweep engine of :mod:`mecllm.experiments` calls this)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mecllm.errors import MecllmError
from mecllm.secure.physics import evaluate_secure, service_status
from mecllm.secure.scenario import generate_secure, secure_preset
from mecllm.secure.solvers import solve_secure
from mecllm.solvers.base import SolveOptions

if TYPE_CHECKING:
    from mecllm.experiments.trials import TrialSpec


def run_secure_trial(spec: TrialSpec, rng: np.random.Generator) -> dict[str, Any]:
    """The row of one secure trial (figures of the real instance; see ``secure-blind``)."""
    settings = secure_preset(spec.preset, **dict(spec.overrides))
    instance = generate_secure(settings, rng)
    try:
        result = solve_secure(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    except MecllmError as exc:
        # For example U <= 0 at every phi (a small rho with few, low-value owners): the trial
        # is kept with its reason, and the means skip it (NaN).
        nan = math.nan
        return {
            "experiment": spec.experiment,
            "setting": spec.setting,
            "x": spec.x,
            "seed": spec.seed,
            "algorithm": spec.algorithm,
            "n_users": instance.n_users,
            "served_securely": int(service_status(instance).secure.sum()),
            **dict.fromkeys(
                ("us_ratio", "utility", "delay_s", "energy_j", "mean_secrecy_mbps"), nan
            ),
            "min_secrecy_mbps": nan,
            "floor_violations": nan,
            "feasible": False,
            "believed_us_ratio": "",
            "iterations": 0,
            "status": f"error: {exc}",
            "wall_time_s": 0.0,
            "y_history": [],
        }
    report = evaluate_secure(instance, result.plan)
    secure = report.status.secure
    rates = report.secrecy_rate_bps[secure]
    return {
        "experiment": spec.experiment,
        "setting": spec.setting,
        "x": spec.x,
        "seed": spec.seed,
        "algorithm": spec.algorithm,
        "n_users": instance.n_users,
        "served_securely": int(secure.sum()),
        "us_ratio": result.ratio,
        "utility": result.utility,
        "delay_s": result.delay_s,
        "energy_j": result.energy_j,
        "mean_secrecy_mbps": float(rates.mean() / 1e6) if rates.size else 0.0,
        "min_secrecy_mbps": float(rates.min() / 1e6) if rates.size else 0.0,
        "floor_violations": len(result.floor_violations),
        "feasible": result.feasible,
        "believed_us_ratio": result.believed_ratio if result.believed_ratio is not None else "",
        "iterations": result.iterations,
        "status": result.status,
        "wall_time_s": result.wall_time_s,
        "y_history": [h["y"] for h in result.history],
    }
