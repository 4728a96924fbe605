"""The air system's experiments (docs/air.md section 7): predictors side by side, NMSE against
speed, sum SE against SNR. Each trial generates (or reuses) the data set of its seed, fits or
trains one predictor and scores it."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mecllm.core.experiment import Claim, Experiment, Row, Setting, Summary, TrialSpec
from mecllm.core.options import SolveOptions
from mecllm.systems.air.algorithms import solve_air
from mecllm.systems.air.evaluation import evaluate_air
from mecllm.systems.air.instance import KIND, AirInstance
from mecllm.systems.air.settings import air_preset
from mecllm.systems.air.to_finetune import finetune_scores

#: The predictors of the sweeps (the networks are named explicitly in a TOML sweep: they
#: train for minutes each).
ALGORITHM_NAMES = ("air-outdated", "air-ls-ar", "air-wiener", "air-ar-kalman", "air-pad")
#: The large model's comparison (``mecllm reproduce air-lm``: minutes of training per trial).
NETWORK_COMPARISON = ("air-ls-ar", "air-wiener", "air-transformer", "air-lm-random", "air-lm")
#: The CSI sources of ``air-to-finetune`` (perfect first: the reference).
FINETUNE_SOURCES = ("air-perfect", "air-outdated", "air-ls-ar", "air-wiener", "air-pad")
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
        "air-networks": Experiment(
            name="air-networks",
            title="Does the large model help? lm against ls-ar, wiener, a transformer and "
            "lm with random weights, with all and 10% of the training drops",
            settings=(
                Setting("full", {}, 1.0),
                Setting("10%", {"train_fraction": 0.1}, 0.1),
            ),
            algorithms=NETWORK_COMPARISON,
            metrics=("nmse_mean_db", "nmse_step1_db", "se_zf", "fit_s"),
            kind="bars",
            system=KIND,
        ),
        "air-to-finetune": Experiment(
            name="air-to-finetune",
            title="What prediction is worth to fine-tuning: plans made on perfect, outdated or "
            "predicted CSI, scored on the true channels",
            settings=(Setting("default", {}, 0),),
            algorithms=FINETUNE_SOURCES,
            metrics=(
                "scr_true",
                "scr_below_perfect_pct",
                "scr_loss_pct",
                "overrun_pct",
                "late_users_pct",
                "scr_true_calibrated",
                "overrun_calibrated_pct",
                "gain_error_db",
                "beam_loss_db",
            ),
            kind="bars",
            system=KIND,
        ),
    }


#: The built-in experiments; ``mecllm reproduce air`` runs every one.
EXPERIMENTS: dict[str, Experiment] = _builtin()
GROUPS: dict[str, tuple[str, ...]] = {
    "air": tuple(e for e in EXPERIMENTS if e != "air-networks"),
    "air-lm": ("air-networks",),
}


def run_trial(spec: TrialSpec, rng: np.random.Generator) -> Row:
    """One predictor on the data set of ``spec.seed`` (``rng`` is not needed: the data set is
    drawn from its seed, so that every predictor of a seed sees the same drops)."""
    del rng
    settings = air_preset(spec.preset, **dict(spec.overrides))
    instance = AirInstance(settings=settings, seed=spec.seed, preset=spec.preset)
    started = time.perf_counter()
    result = solve_air(instance, spec.algorithm, SolveOptions(seed=spec.seed))
    if spec.experiment == "air-to-finetune":
        scores = finetune_scores(instance, result.plan.predictions, SolveOptions(seed=spec.seed))
        return {
            **spec.base_row(),
            **scores,
            "nmse_mean_db": result.nmse_db_mean,
            "iterations": result.cost.epochs,
            "wall_time_s": time.perf_counter() - started,
            "status": result.status,
        }
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


def _beats(rows: list[Row], ours: str, other: str, setting: str) -> tuple[int, int]:
    """(seeds where ``ours`` has the lower mean NMSE, seeds with both) in one setting."""
    by = {(r["algorithm"], r["seed"]): r for r in rows if r["setting"] == setting}
    seeds = sorted({s for _, s in by})
    pairs = [(by.get((ours, s)), by.get((other, s))) for s in seeds]
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    return sum(1 for a, b in both if a["nmse_mean_db"] < b["nmse_mean_db"]), len(both)


def _network_claims(rows: list[Row]) -> list[Claim]:
    """LLM4CP's claim (the language model beats every baseline, full and few-shot) and its
    ablation (pretraining matters), per seed."""
    claims = []
    for setting in ("full", "10%"):
        for other, text in (
            ("air-ls-ar", "beats the least-squares AR predictor"),
            ("air-wiener", "beats the space-time Wiener predictor"),
            ("air-transformer", "beats a transformer trained from scratch"),
            ("air-lm-random", "beats itself with random frozen weights (pretraining matters)"),
        ):
            wins, total = _beats(rows, "air-lm", other, setting)
            claims.append(
                Claim(
                    "air-networks",
                    f"lm {text} ({'all' if setting == 'full' else setting} of the training "
                    "drops, mean NMSE)",
                    total > 0 and wins == total,
                    f"{wins}/{total} seeds",
                )
            )
    return claims


def _per_seed(rows: list[Row], test: Callable[[dict[str, Row]], bool]) -> tuple[int, int]:
    """(seeds where ``test`` holds, seeds): ``test`` sees one seed's rows by algorithm."""
    seeds = sorted({r["seed"] for r in rows})
    by_seed = [{r["algorithm"]: r for r in rows if r["seed"] == s} for s in seeds]
    outcomes = []
    for rows_of in by_seed:
        try:
            outcomes.append(test(rows_of))
        except KeyError:  # an algorithm missing on this seed: not counted
            continue
    return sum(outcomes), len(outcomes)


def _finetune_claims(rows: list[Row]) -> list[Claim]:
    """What the plans on each CSI source deliver on the true channels, per seed."""
    checks: list[tuple[str, Callable[[dict[str, Row]], bool]]] = [
        (
            "a plan on perfect CSI delivers the makespan it promises",
            lambda r: abs(r["air-perfect"]["overrun_pct"]) < 1e-6,
        ),
        (
            "a plan on outdated CSI finishes later than it promises",
            lambda r: r["air-outdated"]["overrun_pct"] > 0,
        ),
        (
            "plans on Wiener-predicted CSI keep more SCR on the true channels than on outdated CSI",
            lambda r: r["air-wiener"]["scr_true"] > r["air-outdated"]["scr_true"],
        ),
        (
            "plans on Wiener-predicted CSI keep more SCR than on ls-ar-predicted CSI",
            lambda r: r["air-wiener"]["scr_true"] > r["air-ls-ar"]["scr_true"],
        ),
        (
            "calibrating the believed gain on other users' drops shrinks the outdated plan's "
            "overrun",
            lambda r: (
                r["air-outdated"]["overrun_calibrated_pct"] < r["air-outdated"]["overrun_pct"]
            ),
        ),
    ]
    claims = []
    for text, test in checks:
        wins, total = _per_seed(rows, test)
        claims.append(
            Claim("air-to-finetune", text, total > 0 and wins == total, f"{wins}/{total} seeds")
        )
    return claims


def check_claims(experiment: Experiment, rows: list[Row], summary: list[Summary]) -> list[Claim]:
    """Checks of the anchors' claims: a fitted linear predictor beats no prediction; the
    language model beats the rest."""
    del summary
    if experiment.name == "air-networks":
        return _network_claims(rows)
    if experiment.name == "air-to-finetune":
        return _finetune_claims(rows)
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
