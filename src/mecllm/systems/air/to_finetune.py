"""What channel prediction is worth to the fine-tuning system (docs/air.md section 11).

The fine-tuning system plans its uploads and downloads on a known gain per user and server.
Here that gain comes from the air interface: a cell of ``CELL_USERS`` test drops (one UMa
sector with ``uma-cell``) is one fine-tuning instance with one edge server at the base
station, and each user's gain is

    g_n = L_n * b_n,

``L_n`` the large-scale gain (Sionna UMa's path loss, shadowing and antenna gains with
``uma-cell``; for CDL presets, which have none, the gain the fine-tuning scenario draws for the
user) and ``b_n`` the beamforming gain of maximum-ratio beams built from a CSI source
(perfect, outdated or predicted), averaged over the horizon's slots and the subcarriers:

- the planner **believes** ``b_n = mean ||h_hat||^2`` (it takes its CSI for the channel);
- the link **achieves** ``b_n = mean |h^H h_hat|^2 / ||h_hat||^2`` on the true channel ``h``.

For perfect CSI both are ``mean ||h||^2``. The plan (``PLANNER``) is made on the believed
gains and scored on the achieved ones; a *calibrated* plan is made on the believed gains
scaled by the ratio of achieved to believed gain measured on the test drops no cell uses
(other users, whose channels the base station has since seen); ``oracle`` is the plan made on
the achieved gains (what the same beams allow if their gain were known).

The two systems do not import each other: the fine-tuning system is reached through the
registry, its instances are built from its documented JSON form (docs/formats.md) and its
scores read from its evaluation's JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.core.options import SolveOptions
from mecllm.systems.air.cdl import ComplexArray
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.settings import UMA_USERS_PER_SECTOR
from mecllm.systems.registry import get_system

#: Users of one fine-tuning instance: one UMa sector's users.
CELL_USERS = UMA_USERS_PER_SECTOR
#: At most this many cells (fine-tuning instances) per trial.
MAX_CELLS = 8
#: The fine-tuning system, its scenario preset (users' data and compute) and its planner.
FINETUNE_KIND = "edge-llm"
FINETUNE_PRESET = "paper"
PLANNER = "dashf"
#: A user is late when its true completion exceeds the promised makespan by more than this.
LATE_RTOL = 1e-6


def beam_gains(true: ComplexArray, csi: ComplexArray) -> tuple[FloatArray, FloatArray]:
    """Believed and achieved maximum-ratio beamforming gains per drop.

    Parameters
    ----------
    true, csi : complex, shape (n, F, A, K)
        The true future channels and the CSI the beams are built from (unit mean power per
        antenna and subcarrier, as the data sets hold them).

    Returns
    -------
    believed, achieved : float, shape (n,)
        ``mean ||csi||^2`` and ``mean |h^H csi|^2 / ||csi||^2`` over slots and subcarriers
        (linear; ``A`` for a perfect beam on a unit-power channel).
    """
    h = np.asarray(true, dtype=np.complex128)
    w = np.asarray(csi, dtype=np.complex128)
    norm = np.sum(np.abs(w) ** 2, axis=2)  # (n, F, K)
    inner = np.abs(np.sum(np.conj(h) * w, axis=2)) ** 2
    achieved = np.where(norm > 0, inner / np.maximum(norm, 1e-300), 0.0)
    return norm.mean(axis=(1, 2)), achieved.mean(axis=(1, 2))


@dataclass(frozen=True)
class CellScore:
    """One cell's plan, promised and delivered (SCR in the fine-tuning system's units)."""

    scr_promised: float
    scr_true: float
    makespan_promised_s: float
    makespan_true_s: float
    late_users: int
    users: int


def score_cell(
    frame: dict[str, Any],
    believed: FloatArray,
    achieved: FloatArray,
    options: SolveOptions,
) -> CellScore:
    """Plan one fine-tuning instance on ``believed`` gains (N,) and score it on ``achieved``.

    ``frame`` is the instance's JSON form with one server; its ``channel_gain`` is replaced.
    """
    system = get_system(FINETUNE_KIND)

    def with_gains(gains: FloatArray) -> Any:
        return system.load_instance({**frame, "channel_gain": gains[:, None].tolist()})

    planned, real = with_gains(believed), with_gains(achieved)
    plan = system.solve(planned, PLANNER, options).plan
    promised = system.evaluate(planned, plan).to_dict()
    delivered = system.evaluate(real, plan).to_dict()
    user_delay = np.array(delivered["per_user"]["delay_s"], dtype=float)
    limit = float(promised["delay_s"]) * (1 + LATE_RTOL)
    return CellScore(
        scr_promised=float(promised["scr"]),
        scr_true=float(delivered["scr"]),
        makespan_promised_s=float(promised["delay_s"]),
        makespan_true_s=float(delivered["delay_s"]),
        late_users=int(np.sum(~(user_delay <= limit))),
        users=int(user_delay.size),
    )


def oracle_scr(frame: dict[str, Any], achieved: FloatArray, options: SolveOptions) -> float:
    """The SCR of the plan made on the achieved gains themselves (what the beams allow)."""
    system = get_system(FINETUNE_KIND)
    real = system.load_instance({**frame, "channel_gain": achieved[:, None].tolist()})
    return float(system.evaluate(real, system.solve(real, PLANNER, options).plan).to_dict()["scr"])


def cells_of(instance: AirInstance) -> int:
    """How many cells a trial plans: whole groups of ``CELL_USERS`` test drops, at most
    ``MAX_CELLS``, leaving at least one group to calibrate on."""
    return min(MAX_CELLS, instance.settings.test_drops // CELL_USERS - 1)


def finetune_scores(
    instance: AirInstance, csi: ComplexArray, options: SolveOptions
) -> dict[str, float]:
    """Plan every cell of ``instance`` on the gains ``csi`` implies and score the plans.

    Parameters
    ----------
    instance : AirInstance
        Its test drops are the users; its seed fixes the fine-tuning scenarios (the same for
        every CSI source: common random numbers).
    csi : complex, shape (test drops, F, A, K)
        The CSI the beams are built from (a predictor's output, or the true channels).

    Returns
    -------
    dict
        Means over cells, for the plan on the believed gains: ``scr_true``, ``scr_promised``,
        ``scr_loss_pct`` (100 (1 - true / oracle)), ``overrun_pct`` (true makespan over
        promised, in %), ``late_users_pct``; the same with ``_calibrated`` for the plan on
        the believed gains scaled by the calibration factor (the ratio of achieved to believed
        gain on the test drops no cell uses: what the base station measured on other users,
        ``calibration_db``); ``scr_oracle``; ``scr_perfect`` (the plan on perfect CSI, the
        same cells) and ``scr_below_perfect_pct`` (100 (1 - true / perfect): what the CSI
        source costs the fine-tuning system); ``gain_error_db`` (believed over achieved gain,
        dB, mean over users), ``beam_loss_db`` (achieved over perfect beamforming gain) and
        ``cells``.
    """
    cells = cells_of(instance)
    if cells < 1:
        raise ValueError(
            f"air-to-finetune needs at least {2 * CELL_USERS} test drops (a cell and a "
            f"calibration group), got {instance.settings.test_drops}"
        )
    data = instance.data()
    users = cells * CELL_USERS
    target = data.target("test")
    believed_all, achieved_all = beam_gains(target, np.asarray(csi))
    believed, achieved = believed_all[:users], achieved_all[:users]
    factor = float(np.sum(achieved_all[users:]) / max(np.sum(believed_all[users:]), 1e-300))
    perfect, _ = beam_gains(target[:users], target[:users])
    uma = instance.settings.generator == "sionna-uma"
    large_uma = 10.0 ** (data.gains_db[data.rows("test")][:users] / 10.0)
    system = get_system(FINETUNE_KIND)
    scores, calibrated, oracle, best = [], [], [], []
    for c in range(cells):
        rows = slice(c * CELL_USERS, (c + 1) * CELL_USERS)
        drawn = system.generate(
            FINETUNE_PRESET,
            {"n_users": CELL_USERS, "n_servers": 1},
            np.random.default_rng([instance.seed, 7_000, c]),
        )
        frame: dict[str, Any] = drawn.to_dict()
        large = large_uma[rows] if uma else np.asarray(frame["channel_gain"], float)[:, 0]
        real = large * achieved[rows]
        oracle.append(oracle_scr(frame, real, options))
        best.append(oracle_scr(frame, large * perfect[rows], options))
        scores.append(score_cell(frame, large * believed[rows], real, options))
        calibrated.append(score_cell(frame, factor * large * believed[rows], real, options))
    return {
        **_summary(scores, oracle, users, ""),
        **_summary(calibrated, oracle, users, "_calibrated"),
        "scr_oracle": float(np.mean(oracle)),
        "scr_perfect": float(np.mean(best)),
        "scr_below_perfect_pct": float(
            np.mean([100 * (1 - s.scr_true / b) for s, b in zip(scores, best, strict=True)])
        ),
        "calibration_db": float(_db(np.array([factor]))[0]),
        "gain_error_db": float(np.mean(_db(believed) - _db(achieved))),
        "beam_loss_db": float(np.mean(_db(achieved) - _db(perfect))),
        "cells": float(cells),
    }


def _summary(
    scores: list[CellScore], oracle: list[float], users: int, suffix: str
) -> dict[str, float]:
    """Means over cells of one way of planning (metric names end with ``suffix``)."""
    return {
        f"scr_true{suffix}": float(np.mean([s.scr_true for s in scores])),
        f"scr_promised{suffix}": float(np.mean([s.scr_promised for s in scores])),
        f"scr_loss{suffix}_pct": float(
            np.mean([100 * (1 - s.scr_true / o) for s, o in zip(scores, oracle, strict=True)])
        ),
        f"overrun{suffix}_pct": float(
            np.mean([100 * (s.makespan_true_s / s.makespan_promised_s - 1) for s in scores])
        ),
        f"late_users{suffix}_pct": float(100 * sum(s.late_users for s in scores) / users),
    }


def _db(x: FloatArray) -> FloatArray:
    return np.asarray(10 * np.log10(np.maximum(x, 1e-300)), dtype=float)
