"""mecllm: plan large models at the wireless edge.

Every system follows the same nouns: an *instance* (who is where, what each node can do), an
*algorithm* that turns it into a *plan*, the *physics* that scores any plan, and the
*experiments* that run many algorithms over many instances. The systems, by instance ``kind``:

- ``"edge-llm"``: collaborative adapter fine-tuning (the main paper, DASHF);
- ``"secure-offsite"``: secure offsite-tuning with a wiretap-protected uplink;
- ``"edge-inference"``: a large model split into shard services on edge nodes; its physics is
  a discrete-event simulation of the plan over a request stream.

The stable Python API is the five functions below and the types they return; they dispatch
through the systems registry, so they work the same for every system::

    import mecllm

    instance = mecllm.generate("edge-llm", preset="paper", seed=0, n_users=8)
    result = mecllm.solve(instance, "dashf-scale", seed=0)
    report = mecllm.evaluate(instance, result.plan)
    print(result.scr, report.feasible)

See docs/api.md for the worked example and every type's fields.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecllm.core.errors import InvalidInputError, MecllmError, SolverError
from mecllm.core.fileio import read_json
from mecllm.core.options import SolveOptions
from mecllm.systems.registry import (
    DEFAULT_KIND,
    SYSTEMS,
    get_system,
    system_of,
    system_of_instance,
)

if TYPE_CHECKING:
    from mecllm.systems.finetune.instance import Instance
    from mecllm.systems.finetune.solution import Plan, SolveResult
    from mecllm.systems.secure.instance import SecureInstance
    from mecllm.systems.secure.solution import SecurePlan, SecureResult

#: The systems' types the API re-exports, imported on first use (they pull in NumPy and the
#: solvers, which ``import mecllm`` and the command line need not load).
_LAZY = {
    "Instance": "mecllm.systems.finetune.instance",
    "Plan": "mecllm.systems.finetune.solution",
    "SolveResult": "mecllm.systems.finetune.solution",
    "SecureInstance": "mecllm.systems.secure.instance",
    "SecurePlan": "mecllm.systems.secure.solution",
    "SecureResult": "mecllm.systems.secure.solution",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mecllm' has no attribute {name!r}")


__all__ = [
    "SYSTEMS",
    "Instance",
    "InvalidInputError",
    "MecllmError",
    "Plan",
    "SecureInstance",
    "SecurePlan",
    "SecureResult",
    "SolveOptions",
    "SolveResult",
    "SolverError",
    "algorithms",
    "evaluate",
    "generate",
    "load_instance",
    "solve",
]
__version__ = "0.2.0"


def generate(
    kind: str = DEFAULT_KIND, *, preset: str | None = None, seed: int = 0, **settings: Any
) -> Any:
    """Draw a random instance of system ``kind`` from one seeded generator.

    Parameters
    ----------
    kind : a key of :data:`SYSTEMS` (default: the fine-tuning system).
    preset : a scenario preset of that system (default: its first).
    seed : seed of the ``numpy.random.Generator`` the draw uses; the same seed gives the same
        instance.
    **settings : scenario settings to override, by name (for the fine-tuning system, the
        fields of ``mecllm.systems.finetune.scenario.ScenarioSettings``: ``n_users``,
        ``n_servers``, ``bandwidth_hz``, ...).

    Raises
    ------
    InvalidInputError : an unknown kind, preset or setting, or a value out of range.
    """
    import numpy as np

    system = get_system(kind)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be a whole number >= 0, got {seed!r}")
    return system.generate(preset or system.default_preset, settings, np.random.default_rng(seed))


def load_instance(path: str | Path) -> Any:
    """Read and validate an instance file of any system (its ``kind`` field chooses)."""
    data = read_json(path, "instance")
    return system_of(data).load_instance(data)


def solve(instance: Any, algorithm: str, **options: Any) -> Any:
    """Solve ``instance`` with a registered algorithm of its system.

    ``options`` are fields of :class:`SolveOptions` (``seed``, ``time_limit_s``,
    ``tolerance``, ``max_iterations``, ``progress``, ...). Returns the system's result: for the
    fine-tuning system a :class:`SolveResult` (``plan``, ``scr``, ``delay_s``, ``energy_j``,
    ``status``, ``history``, ``wall_time_s``), for the secure system a :class:`SecureResult`.

    Raises
    ------
    InvalidInputError : an unknown algorithm or option.
    SolverError : the algorithm could not return a feasible plan.
    """
    known = set(SolveOptions.__dataclass_fields__)
    for key in options:
        if key not in known:
            raise InvalidInputError(
                f"solve option {key!r} does not exist (known: {', '.join(sorted(known))})"
            )
    return system_of_instance(instance).solve(instance, algorithm, SolveOptions(**options))


def evaluate(instance: Any, plan: Any) -> Any:
    """Score any plan with its system's physics: every figure and a feasibility report
    (``.feasible``, ``.violations``)."""
    return system_of_instance(instance).evaluate(instance, plan)


def algorithms(kind: str = DEFAULT_KIND) -> dict[str, str]:
    """The registered algorithms of system ``kind``: name -> one-line description."""
    return {name: info.description for name, info in get_system(kind).algorithms().items()}
