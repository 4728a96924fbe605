"""The secure system's experiments: methods side by side, U/S against the eavesdropper's
distance and the emulator ratio, one trial, and the abstract's claims (docs/secure.md)."""

from __future__ import annotations

import math

import numpy as np

from mecllm.core.errors import MecllmError
from mecllm.core.experiment import Claim, Experiment, Row, Setting, Summary, TrialSpec
from mecllm.core.options import SolveOptions
from mecllm.systems.secure.algorithms import solve_secure
from mecllm.systems.secure.instance import KIND
from mecllm.systems.secure.physics import evaluate_secure, service_status
from mecllm.systems.secure.scenario import generate_secure, secure_preset

ALGORITHM_NAMES = (
    "secure-ao",
    "secure-equal",
    "secure-fixed-phi",
    "secure-phi-only",
    "secure-blind",
)


def _builtin() -> dict[str, Experiment]:
    distances = [50, 100, 200, 300, 400, 600]
    ratios = [0.35, 0.5, 0.65, 0.8, 1.0]
    return {
        "secure-methods": Experiment(
            name="secure-methods",
            title="Secure offsite-tuning: U/S, delay, energy and secrecy of every method",
            settings=(Setting("default", {}, 0),),
            algorithms=ALGORITHM_NAMES,
            metrics=("us_ratio", "delay_s", "energy_j", "mean_secrecy_mbps", "floor_violations"),
            kind="bars",
            system=KIND,
        ),
        "secure-eavesdropper": Experiment(
            name="secure-eavesdropper",
            title="Secure offsite-tuning: U/S vs eavesdropper distance",
            settings=tuple(
                Setting(f"{d}m", {"eavesdropper_distance_m": float(d)}, d) for d in distances
            ),
            algorithms=ALGORITHM_NAMES,
            metrics=("us_ratio", "served_securely"),
            x_label="eavesdropper distance from its owner (m)",
            system=KIND,
        ),
        "secure-rho": Experiment(
            name="secure-rho",
            title="Secure offsite-tuning: U/S vs emulator compression rho",
            settings=tuple(Setting(f"rho={r:g}", {"emulator_ratio": r}, r) for r in ratios),
            algorithms=ALGORITHM_NAMES,
            metrics=("us_ratio", "delay_s", "energy_j"),
            x_label="emulator layer-keep ratio rho",
            system=KIND,
        ),
    }


#: The built-in experiments; ``mecllm reproduce secure`` runs every one.
EXPERIMENTS: dict[str, Experiment] = _builtin()
GROUPS: dict[str, tuple[str, ...]] = {"secure": tuple(EXPERIMENTS)}


def run_trial(spec: TrialSpec, rng: np.random.Generator) -> Row:
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
            **spec.base_row(),
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
        **spec.base_row(),
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


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """The secure paper's claims that this experiment's numbers can confirm or refute."""
    del summary
    if experiment.name == "secure-methods":
        return _secure_claims(rows)
    return []


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _secure_claims(rows: list[Row]) -> list[Claim]:
    """The secure paper's abstract: the method "outperforms baselines in energy, delay, and the
    overall utility-cost ratio", checked per metric on the seeds' means and per seed."""
    ours = "secure-ao"
    baselines = sorted({r["algorithm"] for r in rows} - {ours})
    by_seed: dict[tuple[str, int], Row] = {(r["algorithm"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if r["algorithm"] == ours})
    claims = []
    for metric, better, word in (
        ("us_ratio", 1, "a higher U/S"),
        ("energy_j", -1, "a lower energy"),
        ("delay_s", -1, "a lower delay"),
    ):
        wins, total, lost = 0, 0, []
        for b in baselines:
            for seed in seeds:
                mine, theirs = by_seed.get((ours, seed)), by_seed.get((b, seed))
                if mine is None or theirs is None:
                    continue
                total += 1
                if better * (mine[metric] - theirs[metric]) >= -1e-9 * abs(theirs[metric]):
                    wins += 1
                elif b not in lost:
                    lost.append(b)
        mean = {a: float(np.mean([r[metric] for r in rows if r["algorithm"] == a])) for a in
                [ours, *baselines]}  # fmt: skip
        claims.append(
            Claim(
                "secure-methods",
                f"secure-ao has {word} than every baseline",
                wins == total and total > 0,
                f"{wins}/{total} (baseline, seed) pairs; means: "
                + ", ".join(f"{a} {_fmt(v)}" for a, v in mean.items())
                + (f"; loses to {', '.join(lost)} on some seeds" if lost else ""),
            )
        )
    blind = [r for r in rows if r["algorithm"] == "secure-blind"]
    mine_rows = [r for r in rows if r["algorithm"] == ours]
    leaks = sum(1 for r in blind if r["floor_violations"] > 0)
    claims.append(
        Claim(
            "secure-methods",
            "ignoring the eavesdropper breaks the secrecy floor; the secure plan never does",
            leaks > 0 and all(r["floor_violations"] == 0 for r in mine_rows),
            f"secure-blind breaks it on {leaks}/{len(blind)} seeds "
            f"({sum(r['floor_violations'] for r in blind)} owner-plans); secure-ao on "
            f"{sum(1 for r in mine_rows if r['floor_violations'] > 0)}/{len(mine_rows)}",
        )
    )
    return claims
