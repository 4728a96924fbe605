"""The time and energy of one phase of work, safe at the edges (no work, no resource)."""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import FloatArray


def phase_time(work: FloatArray, speed: FloatArray) -> FloatArray:
    """``work / speed``: 0 when there is no work, infinite when there is work and no speed."""
    w = np.asarray(work, dtype=float)
    v = np.asarray(speed, dtype=float)
    out: FloatArray = np.where(
        w > 0, np.divide(w, v, out=np.full(np.broadcast(w, v).shape, np.inf), where=v > 0), 0.0
    )
    return out


def power_times(power: FloatArray, time: FloatArray) -> FloatArray:
    """``power x time``, J: 0 for a phase that takes no time, infinite (never NaN) for one that
    never finishes (0 x inf: no power, no rate)."""
    finite = np.isfinite(time)
    product = np.multiply(power, time, out=np.full(np.shape(time), np.inf), where=finite)
    out: FloatArray = np.where(time == 0, 0.0, product)
    return out
