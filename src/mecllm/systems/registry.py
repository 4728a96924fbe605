"""The systems by instance ``kind``. The CLI, the sweep engine and the public API reach systems
only through here; adding a system is one package and one line in :data:`SYSTEMS`.

Systems are imported on first use (their solvers pull in cvxpy, numba and more), so that
``mecllm --help`` and commands of one system do not pay for the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from mecllm.core.errors import InvalidInputError
from mecllm.core.experiment import Experiment
from mecllm.systems.protocol import System

#: kind -> module holding ``SYSTEM``. The first is the default (instances without a kind).
SYSTEMS: dict[str, str] = {
    "edge-llm": "mecllm.systems.finetune.system",
    "secure-offsite": "mecllm.systems.secure.system",
    "edge-inference": "mecllm.systems.inference.system",
}
#: The kind of an instance file without a ``kind`` field, and of ``mecllm demo``.
DEFAULT_KIND = next(iter(SYSTEMS))


def get_system(kind: str) -> System:
    """The system of ``kind``; an unknown kind lists the known ones."""
    if kind not in SYSTEMS:
        raise InvalidInputError(f"kind must be one of {', '.join(SYSTEMS)}, got {kind!r}")
    system: System = importlib.import_module(SYSTEMS[kind]).SYSTEM
    return system


def all_systems() -> list[System]:
    """Every registered system, in registry order."""
    return [get_system(kind) for kind in SYSTEMS]


def kind_of(data: object) -> str:
    """The ``kind`` of raw instance JSON (the default kind when absent)."""
    if isinstance(data, Mapping) and "kind" in data:
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in SYSTEMS:
            raise InvalidInputError(f"kind must be one of {', '.join(SYSTEMS)}, got {kind!r}")
        return kind
    return DEFAULT_KIND


def system_of(data: object) -> System:
    """The system of raw instance JSON."""
    return get_system(kind_of(data))


def system_of_instance(instance: Any) -> System:
    """The system of a built instance (its ``kind`` attribute)."""
    kind = getattr(instance, "kind", None)
    if not isinstance(kind, str):
        raise InvalidInputError(
            f"expected an instance of one of {', '.join(SYSTEMS)}, got {type(instance).__name__}"
        )
    return get_system(kind)


def experiments_named(name: str) -> list[Experiment]:
    """The built-in experiments a ``mecllm reproduce NAME`` runs: a group or one experiment,
    searched system by system."""
    known: list[str] = []
    for system in all_systems():
        if name in system.experiment_groups:
            return [system.experiments[e] for e in system.experiment_groups[name]]
        if name in system.experiments:
            return [system.experiments[name]]
        known += [*system.experiment_groups, *system.experiments]
    raise InvalidInputError(f"experiment must be one of {', '.join(known)}, got {name!r}")
