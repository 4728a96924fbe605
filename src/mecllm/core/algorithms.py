"""One algorithm registry for every system: names, one-line descriptions and the functions that
run them, with the same rules everywhere (cvxpy and scipy.optimize style).

- a name is registered once (a second registration is a programming error, refused at import);
- names are looked up without regard to case or surrounding spaces, and an unknown name is
  refused with the known ones listed (:class:`~mecllm.core.errors.InvalidInputError`);
- every run fixes the solve's deadline when it starts (``SolveOptions.with_deadline``), so
  that every stage and inner loop of one solve shares one time budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from mecllm.core.errors import InvalidInputError
from mecllm.core.options import SolveOptions

InstanceT = TypeVar("InstanceT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Algorithm(Generic[InstanceT, ResultT]):
    """A registered algorithm: name, one-line description and the function that runs it (with
    its deadline fixed)."""

    name: str
    description: str
    run: Callable[[InstanceT, SolveOptions], ResultT]


class AlgorithmRegistry(Mapping[str, Algorithm[InstanceT, ResultT]]):
    """The algorithms of one system (``kind``), by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._algorithms: dict[str, Algorithm[InstanceT, ResultT]] = {}

    def add(
        self, name: str, description: str, run: Callable[[InstanceT, SolveOptions], ResultT]
    ) -> None:
        """Register ``run`` under ``name``."""
        if name != name.strip().lower() or not name:
            raise ValueError(f"algorithm names are lower case without spaces, got {name!r}")
        if name in self._algorithms:
            raise ValueError(f"algorithm {name!r} registered twice for {self.kind}")

        def timed(instance: InstanceT, options: SolveOptions) -> ResultT:
            return run(instance, options.with_deadline())

        self._algorithms[name] = Algorithm(name, description, timed)

    def register(
        self, name: str, description: str
    ) -> Callable[
        [Callable[[InstanceT, SolveOptions], ResultT]], Callable[[InstanceT, SolveOptions], ResultT]
    ]:
        """Decorator form of :meth:`add` (returns the function unchanged)."""

        def decorate(
            run: Callable[[InstanceT, SolveOptions], ResultT],
        ) -> Callable[[InstanceT, SolveOptions], ResultT]:
            self.add(name, description, run)
            return run

        return decorate

    def lookup(self, name: str) -> Algorithm[InstanceT, ResultT]:
        """The algorithm called ``name``; an unknown name lists the known ones."""
        key = name.strip().lower() if isinstance(name, str) else name
        if key not in self._algorithms:
            raise InvalidInputError(
                f"algorithm must be one of {', '.join(self._algorithms)} for {self.kind} "
                f"instances, got {name!r}"
            )
        return self._algorithms[key]

    def solve(self, instance: InstanceT, name: str, options: SolveOptions | None = None) -> ResultT:
        """Solve ``instance`` with the named algorithm (the one entry point, scipy style)."""
        return self.lookup(name).run(instance, options or SolveOptions())

    def __getitem__(self, name: str) -> Algorithm[InstanceT, ResultT]:
        return self._algorithms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._algorithms)

    def __len__(self) -> int:
        return len(self._algorithms)
