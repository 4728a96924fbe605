"""The conditions a measurement was taken under, and how another moment's differ.

``mecllm profile`` records them in its cost file (and ``generate --work-model`` carries them
into the instance); ``mecllm train`` compares them with its own before it starts and says what
differs, since a plan made from a profile assumes the profile's machine: the processor, how many
cores the process may use, and how busy they were.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mecllm.core import checks

#: Load (runnable processes per usable core, 1-minute average) beyond the recorded one that is
#: reported as a difference: half a core's worth of other work per core.
LOAD_MARGIN = 0.5


@dataclass(frozen=True)
class Conditions:
    """Where and under what load something was measured.

    Attributes
    ----------
    cpu_model : str
        The processor's name (``/proc/cpuinfo``'s ``model name``, else the platform's).
    cpus : int
        Logical CPUs of the machine.
    usable_cpus : int
        CPUs this process may run on (its affinity; ``taskset -c 0`` gives 1).
    load_per_cpu : float
        The 1-minute load average over ``usable_cpus`` (runnable processes per core).
    """

    cpu_model: str
    cpus: int
    usable_cpus: int
    load_per_cpu: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON object of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "conditions") -> Conditions:
        """Validate a recorded object; raises InvalidInputError naming the field."""
        if not isinstance(data, Mapping):
            raise checks.fail(where, "must be a JSON object", type(data).__name__)
        checks.reject_unknown(data, {"cpu_model", "cpus", "usable_cpus", "load_per_cpu"}, where)
        model = data.get("cpu_model")
        if not isinstance(model, str):
            raise checks.fail(f"{where}.cpu_model", "must be a string", model)
        counts = []
        for key in ("cpus", "usable_cpus"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise checks.fail(f"{where}.{key}", "must be a whole number >= 1", value)
            counts.append(value)
        load = checks.scalar(data, "load_per_cpu", where, low=0, low_inclusive=True, high=1e6)
        return cls(model, counts[0], counts[1], load)

    def differences(self, now: Conditions) -> list[str]:
        """What differs at ``now`` from these (recorded) conditions, one phrase each; empty
        when nothing that moves a measured speed does."""
        found = []
        if now.cpu_model != self.cpu_model:
            found.append(f"processor {now.cpu_model!r}, profiled on {self.cpu_model!r}")
        if now.usable_cpus < self.usable_cpus:
            found.append(
                f"{now.usable_cpus} usable cores, profiled with {self.usable_cpus} "
                "(an affinity such as taskset limits this process)"
            )
        if now.load_per_cpu > self.load_per_cpu + LOAD_MARGIN:
            found.append(
                f"load {now.load_per_cpu:.2f} per core, profiled at {self.load_per_cpu:.2f} "
                "(other processes are running)"
            )
        return found


def measure() -> Conditions:
    """This process's conditions now."""
    cpus = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return Conditions(_cpu_model(), cpus, usable, round(load / max(usable, 1), 3))


def _cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"
