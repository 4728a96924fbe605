"""Compute shares enforced by time slicing (docs/train.md, "Concurrent run").

A plan gives a user ``f_n`` FLOP/s and a server's user ``s_n`` FLOP/s. A :class:`Pace` lets the
calling thread compute at full speed and then sleep, after every training step, until the wall
time is the work done so far at the plan's speed: ``FLOPs / speed``, the FLOPs counted by the
run itself (:func:`~mecllm.systems.finetune.run.loop.flops_per_sequence`). This is calibration
in service: the thread holds the plan's speed on whatever machine it runs, and whatever speed
``mecllm profile`` measured there (a profile taken under other conditions once put every
compute phase at 0.6 of the plan on another machine). Without the step's FLOPs the pace falls
back to stretching the thread's CPU time by ``machine / speed`` (``machine``: the profile's
FLOP/s of one thread), which holds only where the profile's speed is the run's. It can slow a
thread down, never speed one up: a plan faster than the machine runs at the machine's speed
(``reachable`` is then false, judged against the profile's speed).

Threads that serve several users in one process (an edge server) share one ``core`` lock: a
step computes only while it holds it, so the server's users take turns on one core, each
within its share, as the plan's compute split of one server means. (Measured: three training
threads running at once in one process used 28-49 % more CPU per FLOP than one alone.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pace:
    """Slows the calling thread to ``speed_flops`` on a ``machine_flops`` thread (both FLOP/s)."""

    def __init__(
        self,
        speed_flops: float,
        machine_flops: float,
        *,
        core: threading.Lock | None = None,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (speed_flops > 0 and machine_flops > 0):
            raise ValueError(
                f"speeds must be > 0 FLOP/s, got {speed_flops!r} and {machine_flops!r}"
            )
        #: Held while a step computes: the threads that share it take turns on one core.
        self.core = core or threading.Lock()
        self.speed_flops = speed_flops
        self.stretch = max(machine_flops / speed_flops, 1.0)
        self.reachable = speed_flops <= machine_flops
        self._cpu_clock, self._wall_clock, self._sleep = cpu_clock, wall_clock, sleep
        self._cpu0 = cpu_clock()
        self._wall0 = wall_clock()
        self._flops = 0.0
        self.slept_s = 0.0
        self._due_s = 0.0
        self._elapsed_s = 0.0

    @property
    def overrun(self) -> float:
        """Wall time to the plan's time at the last step (1.0: on time; 1.2: the thread ran
        20 % behind its planned speed, because the machine is slower or busier than the plan
        assumes). Measured in service, whatever the profile said."""
        if self._due_s <= 0.0:
            return 1.0
        return max(self._elapsed_s / self._due_s, 1.0)

    def restart(self) -> None:
        """Count from now (call when the paced work begins)."""
        self._cpu0 = self._cpu_clock()
        self._wall0 = self._wall_clock()
        self._flops = 0.0
        self.slept_s = 0.0
        self._due_s = 0.0
        self._elapsed_s = 0.0

    def step(self, flops: float | None = None) -> None:
        """Sleep until the wall time since :meth:`restart` is the work done at the plan's
        speed: this step's ``flops`` added to the count; without them, the stretched CPU
        time."""
        if flops is not None:
            self._flops += flops
            due = self._flops / self.speed_flops
        else:
            due = (self._cpu_clock() - self._cpu0) * self.stretch
        elapsed = self._wall_clock() - self._wall0
        self._due_s, self._elapsed_s = due, elapsed
        wait = due - elapsed
        if wait > 0:
            self._sleep(wait)
            self.slept_s += wait
