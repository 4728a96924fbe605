"""Linear and mixed-integer programs solved by HiGHS through ``highspy``, without scipy.

``scipy.optimize`` wraps the same solver, but importing it costs about 0.25 s, a quarter of the
whole-process time of a small ``mecllm solve``; ``highspy`` imports in about 0.01 s. The
constraint matrix comes as COO triplets (row, column, value), compressed by
:func:`mecllm.core.compressed.compress`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import highspy
import numpy as np

from mecllm.core.arrays import BoolArray, FloatArray, IntArray
from mecllm.core.compressed import compress

#: How a HiGHS run ended: solved to its tolerances, stopped by its time limit with a feasible
#: point in hand, or without a usable point.
HighsStatus = Literal["optimal", "time_limit", "failed"]


@dataclass(frozen=True)
class HighsResult:
    """A HiGHS run: the point ``x`` (None when ``status`` is "failed"), its objective, and for a
    MIP the dual bound and relative gap (for an LP: the objective and 0)."""

    x: FloatArray | None
    status: HighsStatus
    objective: float
    dual_bound: float
    gap: float


def _reset_after_fork() -> None:
    """Drop HiGHS's thread scheduler in a forked child. Its worker threads do not survive a
    fork, and a child that solves with the parent's scheduler spins forever (measured: a MIP
    in a child forked after the parent had solved one never returned; the sweep engine's
    local pool and the region runner fork). The child's next solve starts a fresh one."""
    base = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)
    base.resetGlobalScheduler(False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _new_highs() -> Any:
    """A HiGHS instance that prints nothing. ``highspy.Highs()`` prints a banner to the C-level
    standard output as it enables its Python callbacks, whatever the options; the compiled base
    class it wraps does not, and has every method used here."""
    core = getattr(highspy, "_core", None)
    base = getattr(core, "_Highs", None)
    return base() if base is not None else highspy.Highs()


def solve(
    cost: FloatArray,
    matrix: tuple[IntArray, IntArray, FloatArray],
    row_bounds: tuple[FloatArray, FloatArray],
    col_bounds: tuple[FloatArray, FloatArray],
    integer: BoolArray | None = None,
    options: dict[str, float | bool | str] | None = None,
) -> HighsResult:
    """Minimise ``cost @ x`` subject to ``row_lower <= A x <= row_upper`` and ``col_lower <= x
    <= col_upper``, with the entries of ``integer`` (bool, (n,)) integral.

    ``matrix`` holds A as COO triplets ``(rows, cols, values)``; ``+-inf`` bounds are free.
    ``options`` are HiGHS options (``time_limit``, ``mip_rel_gap``, ``presolve`` as a bool...).
    """
    n = int(cost.shape[0])
    lower, upper = (np.asarray(b, dtype=np.float64) for b in row_bounds)
    n_rows = int(lower.shape[0])
    start, index, value = compress(*matrix, n_rows)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = n_rows
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.asarray(col_bounds[0], dtype=np.float64)
    lp.col_upper_ = np.asarray(col_bounds[1], dtype=np.float64)
    lp.row_lower_ = lower
    lp.row_upper_ = upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    mip = integer is not None and bool(np.any(integer))
    if mip:
        assert integer is not None
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in integer.tolist()
        ]
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    for key, setting in (options or {}).items():
        if key == "presolve" and isinstance(setting, bool):
            setting = "on" if setting else "off"
        h.setOptionValue(key, setting)
    h.passModel(lp)
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    has_point = info.primal_solution_status == 2  # feasible
    if model_status == highspy.HighsModelStatus.kOptimal:
        status: HighsStatus = "optimal"
    elif model_status == highspy.HighsModelStatus.kTimeLimit and has_point:
        status = "time_limit"
    else:
        return HighsResult(None, "failed", float("nan"), float("nan"), float("inf"))
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    objective = float(info.objective_function_value)
    if mip:
        return HighsResult(x, status, objective, float(info.mip_dual_bound), float(info.mip_gap))
    return HighsResult(x, status, objective, objective, 0.0)
