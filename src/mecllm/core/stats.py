"""Means and their 95% intervals, for tables, CSV files and error bars.

The interval is a percentile bootstrap of the mean (10,000 resamples from a fixed seed, so it
is reproducible): it needs no normality assumption and always lies within the range of the
data, so a metric that is positive in every trial never gets an interval reaching below zero.
Below :data:`mecllm.core.experiment.MIN_TRIALS_FOR_VERDICT` trials an interval says little,
and reports say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples of one interval.
_RESAMPLES = 10_000


@dataclass(frozen=True)
class MeanInterval:
    """A sample mean and its 95% interval (``low <= mean <= high``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def minus(self) -> float:
        """Distance from the mean down to the low end (for error bars)."""
        return self.mean - self.low

    @property
    def plus(self) -> float:
        """Distance from the mean up to the high end (for error bars)."""
        return self.high - self.mean


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval:
    """Mean of the finite values and the percentile-bootstrap interval of the mean."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return MeanInterval(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return MeanInterval(mean, mean, mean, int(data.size))
    rng = np.random.default_rng(0)
    resampled = data[rng.integers(0, data.size, size=(_RESAMPLES, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return MeanInterval(mean, min(float(low), mean), max(float(high), mean), int(data.size))
