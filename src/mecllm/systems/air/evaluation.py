"""Score a plan (predicted test channels) on the instance's true channels
(docs/air.md section 5): the figures of ``mecllm evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.systems.air import scoring
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.predictors import Outdated
from mecllm.systems.air.solution import AirPlan

#: SNRs of the multi-user score, dB.
SE_SNRS_DB: tuple[float, ...] = (0.0, 10.0, 20.0)
#: Speed bins of the NMSE table.
SPEED_BINS = 10


@dataclass(frozen=True)
class AirEvaluation:
    """Every figure of one plan (dB for NMSE, bit/s/Hz for SE).

    ``se_sum[precoder][snr]`` is the cell's sum SE with precoders from the prediction;
    ``se_sum_perfect`` and ``se_sum_outdated`` are the same with the true channel and with the
    last observed slot: the bounds a predictor lies between.
    """

    algorithm: str
    nmse_db: list[float]
    nmse_db_mean: float
    nmse_speed_db: list[float | None]
    speed_edges_kmh: list[float]
    se_mrt: float
    se_mrt_perfect: float
    se_sum: dict[str, dict[str, float]]
    se_sum_perfect: dict[str, dict[str, float]]
    se_sum_outdated: dict[str, dict[str, float]]
    beam_top1: float
    beam_top3: float
    beam_gain_loss_db: float
    users: int
    test_drops: int

    @property
    def feasible(self) -> bool:
        """A prediction has no constraint to break; it is usable when its figures are finite."""
        return bool(np.isfinite(self.nmse_db_mean))

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["se_mrt_ratio"] = self.se_mrt / self.se_mrt_perfect
        return out


def _sum_se(
    true: np.ndarray, pred: np.ndarray, groups: np.ndarray, snrs: tuple[float, ...]
) -> dict[str, dict[str, float]]:
    return {
        kind: {f"{snr:g}": scoring.se_multiuser(true, pred, groups, kind, snr) for snr in snrs}
        for kind in scoring.PRECODERS
    }


def evaluate_air(
    instance: AirInstance,
    plan: AirPlan,
    snrs: tuple[float, ...] | None = None,
    bounds: bool = True,
) -> AirEvaluation:
    """Score ``plan`` on the true test channels of ``instance``.

    ``snrs``: the SNRs of the multi-user score (default 0, 10, 20 dB and the settings'
    ``bf_snr_db``); ``bounds=False`` skips the perfect and outdated bounds (left empty), as
    the experiments' trials do (``air-perfect`` and ``air-outdated`` are trials of their own).
    """
    s = instance.settings
    data = instance.data()
    true = data.target("test")
    pred = plan.predictions
    perfect: dict[str, dict[str, float]] = {}
    stale: dict[str, dict[str, float]] = {}
    groups = scoring.user_groups(true.shape[0], s.users, np.random.default_rng([instance.seed, 5]))
    edges = np.linspace(s.speed_min_kmh, s.speed_max_kmh, SPEED_BINS + 1)
    top1, top3, loss = scoring.beam_scores(true, pred, s.rows, s.cols)
    snrs = snrs or tuple(sorted({*SE_SNRS_DB, s.bf_snr_db}))
    if bounds:
        history, noise = data.history("test")
        perfect = _sum_se(true, true, groups, snrs)
        stale = _sum_se(true, Outdated(s).predict(history, noise), groups, snrs)
    return AirEvaluation(
        algorithm=plan.algorithm,
        nmse_db=[float(v) for v in scoring.nmse_db(true, pred)],
        nmse_db_mean=scoring.nmse_mean_db(true, pred),
        nmse_speed_db=scoring.nmse_by_speed(true, pred, data.speeds("test"), edges),
        speed_edges_kmh=[float(e) for e in edges],
        se_mrt=scoring.se_mrt(true, pred),
        se_mrt_perfect=scoring.se_mrt(true, true),
        se_sum=_sum_se(true, pred, groups, snrs),
        se_sum_perfect=perfect,
        se_sum_outdated=stale,
        beam_top1=top1,
        beam_top3=top3,
        beam_gain_loss_db=loss,
        users=s.users,
        test_drops=s.test_drops,
    )
