"""The air system's experiments (docs/air.md section 7): predictors side by side, NMSE against
speed, sum SE against SNR. Each trial generates (or reuses) the data set of its seed, fits or
trains one predictor and scores it."""

from __future__ import annotations

import numpy as np

from mecllm.core.experiment import Claim, Experiment, Row, Setting, Summary, TrialSpec
from mecllm.core.options import SolveOptions
from mecllm.systems.air.algorithms import solve_air
from mecllm.systems.air.evaluation import evaluate_air
from mecllm.systems.air.instance import KIND, AirInstance
from mecllm.systems.air.settings import air_preset

#: The predictors of the sweeps (the networks are named explicitly in a TOML sweep: they
#: train for minutes each).
ALGORITHM_NAMES = ("air-outdated", "air-ls-ar", "air-wiener", "air-ar-kalman", "air-pad")
_SNRS = (0.0, 5.0, 10.0, 15.0, 20.0)
_SPEEDS = ((10.0, 30.0), (30.0, 50.0), (50.0, 70.0), (70.0, 90.0), (90.0, 110.0))


def _builtin() -> dict[str, Experiment]:
    return {
        "air-methods": Experiment(
            name="air-methods",
            title="Channel prediction: NMSE, SE and beams of every predictor",
            settings=(Setting("default", {}, 0),),
            algorithms=ALGORITHM_NAMES,
            metrics=("nmse_mean_db", "nmse_step1_db", "se_mrt", "se_zf", "beam_top1"),
            kind="bars",
            system=KIND,
        ),
        "air-nmse-speed": Experiment(
            name="air-nmse-speed",
            title="Channel prediction: mean NMSE against the users' speed",
            settings=tuple(
                Setting(
                    f"{lo:g}-{hi:g} km/h",
                    {"speed_min_kmh": lo, "speed_max_kmh": hi},
                    (lo + hi) / 2,
                )
                for lo, hi in _SPEEDS
            ),
            algorithms=ALGORITHM_NAMES,
            metrics=("nmse_mean_db", "nmse_step1_db"),
            x_label="speed (km/h, centre of the range)",
            system=KIND,
        ),
        "air-se-snr": Experiment(
            name="air-se-snr",
            title="Multi-user sum SE against SNR: predicted, outdated and perfect CSI",
            settings=tuple(Setting(f"{s:g} dB", {"bf_snr_db": s}, s) for s in _SNRS),
            algorithms=("air-perfect", *ALGORITHM_NAMES),
            metrics=("se_zf", "se_wmmse", "se_mrt_mu"),
            x_label="SNR (dB)",
            system=KIND,
        ),
        "air-fewshot": Experiment(
            name="air-fewshot",
            title="Channel prediction with all or 10% of the training drops",
            settings=(
                Setting("full", {}, 1.0),
                Setting("10%", {"train_fraction": 0.1}, 0.1),
            ),
            algorithms=ALGORITHM_NAMES,
            metrics=("nmse_mean_db", "nmse_step1_db", "se_zf"),
            kind="bars",
            system=KIND,
        ),
        "air-zeroshot": Experiment(
            name="air-zeroshot",
            title="Channel prediction trained on CDL-C, tested on other profiles",
            settings=tuple(
                Setting(f"CDL-{m}", {"test_cdl_model": m}, i)
                for i, m in enumerate(("C", "A", "D", "E"))
            ),
            algorithms=ALGORITHM_NAMES,
            metrics=("nmse_mean_db", "nmse_step1_db", "se_zf"),
            kind="bars",
            system=KIND,
        ),
    }


#: The built-in experiments; ``mecllm reproduce air`` runs every one.
EXPERIMENTS: dict[str, Experiment] = _builtin()
GROUPS: dict[str, tuple[str, ...]] = {"air": tuple(EXPERIMENTS)}


def run_trial(spec: TrialSpec, rng: np.random.Generator) -> Row:
    """One predictor on the data set of ``spec.seed`` (``rng`` is not needed: the data set is
    drawn from its seed, so that every predictor of a seed sees the same drops)."""
    del rng
    settings = air_preset(spec.preset, **dict(spec.overrides))
    instance = AirInstance(settings=settings, seed=spec.seed, preset=spec.preset)
    result = solve_air(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    report = evaluate_air(instance, result.plan, snrs=(settings.bf_snr_db,), bounds=False)
    snr = f"{settings.bf_snr_db:g}"
    zf, wmmse, mrt = (report.se_sum[k][snr] for k in ("zf", "wmmse", "mrt"))
    return {
        **spec.base_row(),
        "nmse_mean_db": report.nmse_db_mean,
        "nmse_step1_db": report.nmse_db[0],
        "nmse_last_db": report.nmse_db[-1],
        "se_mrt": report.se_mrt,
        "se_zf": zf,
        "se_wmmse": wmmse,
        "se_mrt_mu": mrt,
        "beam_top1": report.beam_top1,
        "fit_s": result.cost.fit_s,
        "iterations": result.cost.epochs,
        "wall_time_s": result.wall_time_s,
        "status": result.status,
    }


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """Checks of the anchors' baselines: a fitted linear predictor beats no prediction."""
    del summary
    if experiment.name != "air-methods":
        return []
    by = {(r["algorithm"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    pairs = [(by.get(("air-ls-ar", s)), by.get(("air-outdated", s))) for s in seeds]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    wins = sum(1 for a, b in pairs if a and b and a["nmse_mean_db"] < b["nmse_mean_db"])
    return [
        Claim(
            "air-methods",
            "ls-ar predicts better than repeating the last slot (mean NMSE)",
            bool(pairs) and wins == len(pairs),
            f"{wins}/{len(pairs)} seeds",
        )
    ]
