"""The machine a benchmark ran on, and a calibration figure of it: fixed workloads timed the
same way everywhere, so that a timing measured here can be compared with one measured on
another machine as a ratio (docs/benchmarks.md, "Machines").

``python benchmarks/machine.py`` prints the figure alone; every benchmark prints it first.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from mecllm.core.options import SolveOptions
from mecllm.core.timing import median_seconds
from mecllm.systems.finetune.algorithms import solve
from mecllm.systems.finetune.scenario import generate, preset


@dataclass(frozen=True)
class Calibration:
    """Seconds of three fixed workloads on this machine (medians of 5, after a warm-up).

    Attributes
    ----------
    python_s : a pure-Python loop of 2 million float additions and comparisons (the
        interpreter: the simulator, the loops around the solvers).
    numpy_s : 20 products of two 400 x 400 float64 matrices (BLAS, 2.56 GFLOP).
    solve_s : ``dashf-scale`` on the paper's preset at 20 users x 3 servers, seed 0 (the
        project's own mix of NumPy, numba and conic solves).
    """

    cpu: str
    cores: int
    python_s: float
    numpy_s: float
    solve_s: float

    def line(self) -> str:
        """One line for a benchmark's output."""
        return (
            f"machine: {self.cpu}, {self.cores} cores; calibration: python {self.python_s:.3f} s, "
            f"numpy {self.numpy_s:.3f} s, reference solve {self.solve_s:.3f} s "
            "(benchmarks/machine.py)"
        )


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _python_loop() -> float:
    total = 0.0
    for i in range(2_000_000):
        total += 0.5 if i & 1 else -0.25
    return total


def calibrate() -> Calibration:
    """Time the three workloads (about 10 s in all on a 2-core machine)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((400, 400)), rng.random((400, 400))
    instance = generate(preset("paper", n_users=20, n_servers=3), np.random.default_rng(0))
    solve(instance, "dashf-scale", SolveOptions(seed=0))  # compile the kernels once
    return Calibration(
        cpu=_cpu(),
        cores=os.cpu_count() or 1,
        python_s=median_seconds(_python_loop, 5),
        numpy_s=median_seconds(lambda: [a @ b for _ in range(20)], 5),
        solve_s=median_seconds(lambda: solve(instance, "dashf-scale", SolveOptions(seed=0)), 5),
    )


def calibration_line() -> str:
    """Calibrate and return the line every benchmark prints first."""
    started = time.perf_counter()
    line = calibrate().line()
    return f"{line}; {time.perf_counter() - started:.1f} s to measure"


if __name__ == "__main__":
    print(calibration_line())
