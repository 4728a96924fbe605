"""Confidence intervals of means, for tables and error bars."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval (0 with fewer than two values)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1)
    return float(data.mean()), float(half / math.sqrt(data.size))
