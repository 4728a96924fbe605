"""The one algorithm registry every system uses: names, refusals, the shared deadline."""

from __future__ import annotations

import time

import pytest

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.errors import InvalidInputError
from mecllm.core.options import SolveOptions
from mecllm.systems.registry import all_systems


def test_a_name_is_registered_once_and_looked_up_without_case_or_spaces() -> None:
    registry: AlgorithmRegistry[int, float] = AlgorithmRegistry("toy")

    @registry.register("twice", "doubles")
    def twice(instance: int, options: SolveOptions) -> float:
        return 2.0 * instance

    assert registry.lookup("  TWICE ").run(3, SolveOptions()) == 6.0
    assert registry.solve(4, "twice") == 8.0
    assert list(registry) == ["twice"] and registry["twice"].description == "doubles"
    with pytest.raises(ValueError, match="registered twice for toy"):
        registry.add("twice", "again", twice)
    with pytest.raises(ValueError, match="lower case"):
        registry.add("Twice", "capitals", twice)
    with pytest.raises(InvalidInputError, match=r"one of twice for toy instances, got 'thrice'"):
        registry.lookup("thrice")


def test_every_run_starts_its_own_deadline_from_the_time_limit() -> None:
    registry: AlgorithmRegistry[None, float | None] = AlgorithmRegistry("toy")
    seen: list[float | None] = []

    @registry.register("look", "records the deadline it was given")
    def look(instance: None, options: SolveOptions) -> float | None:
        seen.append(options.deadline)
        return options.deadline

    before = time.perf_counter()
    registry.solve(None, "look", SolveOptions(time_limit_s=7.0))
    assert seen[0] is not None and before + 7.0 <= seen[0] <= time.perf_counter() + 7.0
    fixed = SolveOptions().with_deadline()
    assert registry.solve(None, "look", fixed) == fixed.deadline  # a deadline set is kept


def test_every_system_lists_its_algorithms_through_the_same_registry() -> None:
    for system in all_systems():
        registry = system.algorithms()
        assert isinstance(registry, AlgorithmRegistry) and registry.kind == system.kind
        assert len(registry) >= 3
        with pytest.raises(InvalidInputError, match=f"for {system.kind} instances"):
            system.check_algorithms(["no-such-method"])
