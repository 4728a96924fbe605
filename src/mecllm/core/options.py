"""The knobs every solver of every system takes, and the progress callback."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mecllm.core.errors import InvalidInputError

if TYPE_CHECKING:
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

    def __post_init__(self) -> None:
        """Check every knob where options enter (the API and the CLI alike): one
        :class:`InvalidInputError` naming the field, the rule and the value."""
        _whole("seed", self.seed, 0)
        _whole("max_iterations", self.max_iterations, 1)
        _whole("max_inner_iterations", self.max_inner_iterations, 1)
        for name in ("tolerance", "inner_tolerance"):
            value = getattr(self, name)
            if not _real(value) or not 0.0 <= value < 1.0:
                raise InvalidInputError(f"solve option {name} must be in [0, 1), got {value!r}")
        if not _real(self.barrier_growth) or not 1.0 < self.barrier_growth < math.inf:
            raise InvalidInputError(
                "solve option barrier_growth must be a finite number > 1, "
                f"got {self.barrier_growth!r}"
            )
        if not _real(self.time_limit_s) or not self.time_limit_s > 0.0:
            raise InvalidInputError(
                "solve option time_limit_s must be a positive number of seconds (inf: no limit), "
                f"got {self.time_limit_s!r}"
            )
        if self.progress is not None and not callable(self.progress):
            raise InvalidInputError(
                f"solve option progress must be a function of one record, got {self.progress!r}"
            )
        if not isinstance(self.extra, dict):
            raise InvalidInputError(f"solve option extra must be a dict, got {self.extra!r}")
        if self.deadline is not None and not _real(self.deadline):
            raise InvalidInputError(
                f"solve option deadline must be a number, got {self.deadline!r}"
            )

    def rng(self) -> np.random.Generator:
        """The generator for this solve."""
        import numpy as np

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


def _real(value: object) -> bool:
    """A real number (not a bool), not NaN."""
    return not isinstance(value, bool) and isinstance(value, int | float) and not math.isnan(value)


def _whole(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(
            f"solve option {name} must be a whole number >= {low}, got {value!r}"
        )
