"""Solvers of the secure system: the Dinkelbach / alternating optimiser and the baselines of
docs/secure.md section 4, registered by name.

``secure-ao``
    Dinkelbach on U/S, alternating subproblem 1 (phi by KKT, T by 1-D search; y updated from
    the ratio) and subproblem 2 (FP + SCA convex steps). It runs from the equal split at the
    midpoint phi and from the two one-sided optimisers' plans below, and returns the best:
    the ratio never decreases along an alternation, so the result is at least as good as every
    start.
``secure-equal``
    Equal resources (the secrecy floors' bandwidth first), phi at the midpoint of its range.
``secure-fixed-phi``
    Optimised resources (subproblem 2), phi fixed at the midpoint.
``secure-phi-only``
    Optimised phi (Dinkelbach on subproblem 1), equal resources.
``secure-blind``
    ``secure-ao`` on the same instance with the eavesdroppers removed (h = 0): the plan of an
    operator who ignores them. Its figures are those of the real instance, where it may break
    the secrecy floor; ``believed_ratio`` is what it thought it reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mecllm.core.algorithms import AlgorithmRegistry
from mecllm.core.dinkelbach import LoopOutcome, NamedStep, dinkelbach
from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.core.options import SolveOptions
from mecllm.core.status import SolveStatus
from mecllm.systems.secure.instance import KIND, SecureInstance
from mecllm.systems.secure.physics import evaluate_secure, service_status, utility
from mecllm.systems.secure.solution import SecurePlan, SecureResult
from mecllm.systems.secure.subproblems import equal_resources, phi_step, resources_step

SecureRunner = Callable[[SecureInstance, SolveOptions], SecureResult]


#: The registered algorithms of the secure system.
SECURE_ALGORITHMS: AlgorithmRegistry[SecureInstance, SecureResult] = AlgorithmRegistry(KIND)
_register = SECURE_ALGORITHMS.register
#: The algorithm of a name; unknown names list the known ones.
get_secure_algorithm = SECURE_ALGORITHMS.lookup
#: Solve a secure instance with the named algorithm.
solve_secure = SECURE_ALGORITHMS.solve


def _check_positive_utility(instance: SecureInstance) -> None:
    served = service_status(instance).served
    if not served.any():
        return
    best = float(np.sum(utility(instance, np.full(instance.n_users, instance.phi_max))[served]))
    if best <= 0:
        raise InvalidInputError(
            f"the utility U is {best:.4g} <= 0 even with every phi at phi_max (gamma ln rho "
            "outweighs the adapters' value): U/S has no positive value to maximise"
        )


def finish_secure(
    instance: SecureInstance,
    algorithm: str,
    plan: SecurePlan,
    started: float,
    *,
    status: SolveStatus = "converged",
    message: str = "",
    iterations: int = 0,
    history: list[dict[str, Any]] | None = None,
    believed_ratio: float | None = None,
    must_be_feasible: bool = True,
    floor_violations: list[int] | None = None,
) -> SecureResult:
    """Score ``plan`` on the real instance and wrap it; an infeasible plan is a bug unless
    the algorithm is allowed to produce one (the security-blind baseline)."""
    report = evaluate_secure(instance, plan)
    if must_be_feasible and not report.feasible:
        raise SolverError(
            f"{algorithm} produced an infeasible plan ({report.violations[0].message}); this is "
            "a bug, please report it with the instance file"
        )
    return SecureResult(
        algorithm=algorithm,
        plan=plan,
        ratio=report.ratio,
        utility=report.utility,
        delay_s=report.delay_s,
        energy_j=report.energy_j,
        feasible=report.feasible and not floor_violations,
        floor_violations=report.floor_violations if floor_violations is None else floor_violations,
        status=status,
        message=message,
        iterations=iterations,
        history=history or [],
        wall_time_s=time.perf_counter() - started,
        believed_ratio=believed_ratio,
    )


def _ratio(instance: SecureInstance, plan: SecurePlan) -> float:
    return evaluate_secure(instance, plan).ratio


def alternate(
    instance: SecureInstance,
    start: SecurePlan,
    options: SolveOptions,
    *,
    optimise_phi: bool = True,
    optimise_resources: bool = True,
    deadline: float | None = None,
) -> LoopOutcome[SecurePlan]:
    """Dinkelbach iterations from ``start`` (the generic loop of :mod:`mecllm.core.dinkelbach`):
    y = U/S, subproblem 1 (phi), subproblem 2 (resources), until y stops rising by more than
    the tolerance. A phi step that would leave the plan infeasible is not taken."""
    start_y = _ratio(instance, start)
    if not service_status(instance).served.any():
        # Nobody can be served: nothing to optimise.
        return LoopOutcome(start, start_y, [], "converged")
    steps: list[NamedStep[SecurePlan]] = []
    if optimise_phi:

        def subproblem1(plan: SecurePlan, y: float) -> tuple[SecurePlan, dict[str, Any]]:
            t0 = time.perf_counter()
            new = phi_step(instance, plan, y)
            record = {"subproblem1_s": time.perf_counter() - t0}
            return (new if evaluate_secure(instance, new).feasible else plan), record

        steps.append(NamedStep("subproblem1", subproblem1))
    if optimise_resources:

        def subproblem2(plan: SecurePlan, y: float) -> tuple[SecurePlan, dict[str, Any]]:
            del y  # the FP-SCA step minimises the cost at fixed utility (docs/secure.md)
            step = resources_step(instance, plan)
            return step.plan, {
                "subproblem2_s": step.seconds,
                "inner_iterations": len(step.costs) - 1,
                "subproblem2_status": step.status,
            }

        steps.append(NamedStep("subproblem2", subproblem2))
    return dinkelbach(
        lambda plan: _ratio(instance, plan),
        start,
        steps,
        options,
        start_value=start_y,
        deadline=deadline,
    )


@_register("secure-ao", "Dinkelbach + alternating KKT phi / FP-SCA resources (the paper's route)")
def secure_ao(instance: SecureInstance, options: SolveOptions) -> SecureResult:
    """The optimiser (module docstring)."""
    started = time.perf_counter()
    _check_positive_utility(instance)
    deadline = options.with_deadline().deadline
    equal = equal_resources(instance, np.full(instance.n_users, instance.phi_mid))
    starts = {
        "equal split": equal,
        "optimised phi on the equal split": alternate(
            instance, equal, options, optimise_resources=False, deadline=deadline
        ).best,
        "optimised resources at the midpoint phi": alternate(
            instance, equal, options, optimise_phi=False, deadline=deadline
        ).best,
    }
    best: tuple[float, LoopOutcome[SecurePlan], str] | None = None
    for label, plan in starts.items():
        outcome = alternate(instance, plan, options, deadline=deadline)
        value = _ratio(instance, outcome.best)
        if best is None or value > best[0]:
            best = (value, outcome, label)
    assert best is not None
    _, outcome, label = best
    return finish_secure(
        instance,
        "secure-ao",
        outcome.best,
        started,
        status=outcome.status,
        message=f"best of 3 starts: from the {label}; {outcome.iterations} iterations",
        iterations=outcome.iterations,
        history=outcome.history,
    )


@_register("secure-equal", "equal shares of band, power, compute; phi at its midpoint")
def secure_equal(instance: SecureInstance, options: SolveOptions) -> SecureResult:
    """Baseline: equal resources, midpoint phi."""
    started = time.perf_counter()
    plan = equal_resources(instance, np.full(instance.n_users, instance.phi_mid))
    return finish_secure(instance, "secure-equal", plan, started, status="heuristic")


def _one_sided(
    instance: SecureInstance, options: SolveOptions, name: str, *, optimise_phi: bool
) -> SecureResult:
    """Baselines that optimise one block from the equal split at the midpoint phi: phi alone
    (subproblem 1, resources equal) or the resources alone (subproblem 2, phi fixed)."""
    started = time.perf_counter()
    _check_positive_utility(instance)
    equal = equal_resources(instance, np.full(instance.n_users, instance.phi_mid))
    outcome = alternate(
        instance, equal, options, optimise_phi=optimise_phi, optimise_resources=not optimise_phi
    )
    return finish_secure(
        instance,
        name,
        outcome.best,
        started,
        status=outcome.status,
        iterations=outcome.iterations,
        history=outcome.history,
    )


@_register("secure-fixed-phi", "optimised resources (FP-SCA), phi fixed at its midpoint")
def secure_fixed_phi(instance: SecureInstance, options: SolveOptions) -> SecureResult:
    """Baseline: subproblem 2 only."""
    return _one_sided(instance, options, "secure-fixed-phi", optimise_phi=False)


@_register("secure-phi-only", "optimised phi (KKT), equal resources")
def secure_phi_only(instance: SecureInstance, options: SolveOptions) -> SecureResult:
    """Baseline: subproblem 1 only."""
    return _one_sided(instance, options, "secure-phi-only", optimise_phi=True)


@_register("secure-blind", "secure-ao with the eavesdroppers ignored (the price of security)")
def secure_blind(instance: SecureInstance, options: SolveOptions) -> SecureResult:
    """Baseline: plan as if no eavesdropper listened, scored on the real instance."""
    started = time.perf_counter()
    blind_instance = instance.with_settings(eavesdropper_gain=np.zeros(instance.n_users))
    believed = secure_ao(blind_instance, options)
    # Carried out on the real instance, the blind plan also serves owners who cannot be
    # served securely (their adapters leak) and may run others below the floor: those are
    # its floor violations. Its figures are those of the owners it can serve securely.
    leaks = evaluate_secure(instance, believed.plan).floor_violations
    served = service_status(instance).served.astype(float)
    plan = SecurePlan(
        **{k: getattr(believed.plan, k) * served for k in SecurePlan.__dataclass_fields__}
    )
    return finish_secure(
        instance,
        "secure-blind",
        plan,
        started,
        status=believed.status,
        message="planned with the eavesdroppers ignored; figures are for the real instance",
        iterations=believed.iterations,
        history=believed.history,
        believed_ratio=believed.ratio,
        must_be_feasible=False,
        floor_violations=leaks,
    )
