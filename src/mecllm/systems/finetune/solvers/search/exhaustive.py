"""A reference for small instances: every association, the continuous problem multi-started.

For each of the M^N associations a cheap score is computed first (phi solved exactly by LP
under the equal split); the best-scoring associations are then solved as continuous problems
(phi and every resource, Dinkelbach over alternating phi-LP and fractional-programming steps)
from four fixed starts each. The result reports the best plan, how many associations were
enumerated and solved, and how many starts agreed on the best value.

It takes no other method's plan as a start, so it is a reference independent of the registered
optimisers (it may end below them). It is not a certificate: the continuous problem is
non-convex (docs/quality.md has the certified bound).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from mecllm.core.arrays import IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import SolveResult
from mecllm.systems.finetune.solvers.result import finish
from mecllm.systems.finetune.solvers.search.fixed_association import (
    cheap_score,
    continuous,
    multistarts,
)

#: Largest number of associations (M^N) the reference enumerates.
MAX_ASSOCIATIONS = 6561
#: Associations solved in full after the cheap screening.
FULL_SOLVES = 24


def screen(instance: Instance, options: SolveOptions | None = None) -> list[tuple[float, IntArray]]:
    """Every association with its :func:`cheap_score`, best first (those scored before the
    options' deadline, if it passes first)."""
    n, m = instance.n_users, instance.n_servers
    scored = []
    for combo in itertools.product(range(m), repeat=n):
        assignment = np.array(combo, dtype=np.int64)
        scored.append((cheap_score(instance, assignment), assignment))
        if options is not None and options.expired():
            break
    scored.sort(key=lambda item: -item[0])
    return scored


def check_size(instance: Instance) -> int:
    """The number of associations M^N; refuses (invalid input) above the limit."""
    n, m = instance.n_users, instance.n_servers
    count: int = m**n
    if count > MAX_ASSOCIATIONS:
        raise InvalidInputError(
            f"exhaustive enumerates every association and handles at most "
            f"{MAX_ASSOCIATIONS} (M^N); this instance has {m}^{n} = {count}. "
            "Use dashf-plus for larger instances"
        )
    return count


def exhaustive(instance: Instance, options: SolveOptions) -> SolveResult:
    """The reference solve (see the module docstring)."""
    count = check_size(instance)
    started = time.perf_counter()
    options = options.with_deadline()
    rng = options.rng()
    scored = screen(instance, options)
    chosen: list[IntArray] = [a for _, a in scored[:FULL_SOLVES]]
    best: SolveResult | None = None
    finals: dict[bytes, list[float]] = {}
    solved = 0
    for assignment in chosen:
        if best is not None and options.expired():
            break
        solved += 1
        for start in multistarts(instance, assignment, rng):
            result = continuous(instance, start, options)
            finals.setdefault(assignment.tobytes(), []).append(result.scr)
            if best is None or result.scr > best.scr:
                best = result
    assert best is not None
    cut = len(scored) < count or solved < len(chosen)
    on_best = finals[best.plan.assignment.tobytes()]
    agree = sum(abs(v - best.scr) <= 1e-3 * best.scr for v in on_best)
    info: dict[str, Any] = {
        "associations": count,
        "screened": len(scored),
        "fully_solved": solved,
        "starts_per_association": 4,
        "starts_agreeing_on_best": int(agree),
    }
    return finish(
        instance,
        "exhaustive",
        best.plan,
        started,
        status="time_limit" if cut else "converged",
        message=(
            f"{len(scored)} of {count} associations screened, {solved} solved from 4 starts "
            f"each; {agree} of {len(on_best)} starts on the best association reached the best "
            "value" + ("; the time limit cut the search short" if cut else "")
        ),
        iterations=best.iterations,
        history=[info],
    )
