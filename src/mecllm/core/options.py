"""The knobs every solver of every system takes, and the progress callback."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Called with one history record after each outer iteration (for ``--verbose``).
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class SolveOptions:
    """Knobs common to all algorithms.

    Attributes
    ----------
    seed : int
        Seed of the one ``numpy.random.Generator`` a randomised algorithm uses.
    tolerance : float
        Relative change of the Dinkelbach ratio y that stops the outer loop (epsilon).
    max_iterations : int
        Cap on outer iterations.
    inner_tolerance : float
        Relative change that stops inner loops (the FP z-loop).
    max_inner_iterations : int
        Cap on inner iterations.
    barrier_growth : float
        Factor the barrier allocation (``dashf-scale`` above 50 users) raises its parameter by
        after each centring; larger is faster on some instances and slower on others
        (docs/regions.md).
    time_limit_s : float
        Wall-clock budget of one solve; the best plan so far is returned when it runs out.
    progress : ProgressCallback or None
        Receives each outer iteration's record as it finishes.
    deadline : float or None
        Absolute ``time.perf_counter()`` time by which the whole solve ends (set from
        ``time_limit_s`` when a registered algorithm starts, so that every stage and inner loop
        of one solve shares one budget).
    """

    seed: int = 0
    tolerance: float = 1e-4
    max_iterations: int = 20
    inner_tolerance: float = 1e-4
    max_inner_iterations: int = 15
    barrier_growth: float = 20.0
    time_limit_s: float = 600.0
    progress: ProgressCallback | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None

    def rng(self) -> np.random.Generator:
        """The generator for this solve."""
        return np.random.default_rng(self.seed)

    def with_deadline(self) -> SolveOptions:
        """These options with an absolute deadline: the one set, or now + ``time_limit_s``."""
        if self.deadline is not None:
            return self
        return dataclasses.replace(self, deadline=time.perf_counter() + self.time_limit_s)

    def expired(self) -> bool:
        """Whether the deadline (if any) has passed."""
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def seconds_left(self) -> float:
        """Seconds to the deadline (``time_limit_s`` when none is set), never negative."""
        if self.deadline is None:
            return self.time_limit_s
        return max(0.0, self.deadline - time.perf_counter())
