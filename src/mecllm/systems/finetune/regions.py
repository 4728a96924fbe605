"""Solving a fine-tuning scenario by regions (docs/regions.md).

Servers are cut into regions by position (recursive coordinate bisection: equal-sized,
compact regions); each user joins one region, chosen by price so that every region carries a
share of the users in proportion to its servers (a user goes where its channel is best unless
that region is full; the prices decide who crosses a boundary, see :func:`assign_users`).
Each region is then an ordinary dense instance, solved on its own by any algorithm, and the
regional plans are stitched into one plan of the whole scenario. :func:`solve_regions` holds
the order of the rounds (first solves, re-solves of the slowest regions at a higher delay
price, the optional relaxation, the stitch) with a plain serial map of each round's regions;
the runner (:mod:`mecllm.systems.finetune.run.regions`) maps them on Dask or a process pool and
saves every finished region. The scene is a :class:`~mecllm.systems.finetune.field.Field`
(channels on demand, any size) or a dense instance (:class:`InstanceScene`; the registered
algorithm ``dashf-regions``). Every constraint of the model is per user or per server, so the
stitched plan is feasible when every regional plan is; its service and energy are the regions'
sums and its delay the largest region's.

A region solves the ratio of its own service to ``omega_t (N_r / N) T_r + omega_e E_r``: the
delay weight is shared out in proportion to the users, so that, when every region ends at the
same delay, the regions' costs add up to the whole's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from mecllm.core.algorithms import Algorithm
from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.instance import SERVER_FIELDS, USER_FIELDS, Instance
from mecllm.systems.finetune.physics import evaluate, weighted_cost
from mecllm.systems.finetune.solution import Plan, SolveResult

#: Finds a registered algorithm by name (the system's ``get_algorithm``, passed in so that this
#: module needs no registry; a module-level function, so that it travels to worker processes).
Lookup = Callable[[str], Algorithm[Instance, SolveResult]]

#: Regions each user is priced for (its best few by channel).
NEAR_REGIONS = 4
#: Users whose gains are computed at once (memory: this x M x 8 bytes a temporary).
_CHUNK_USERS = 2048
#: Price updates of the balancing (each O(N x NEAR_REGIONS)).
_PRICE_ROUNDS = 400
#: Step of the price update (log units per unit of relative overload).
_PRICE_STEP = 0.05

#: Part 2's stopping tolerance in a region (relative gain of a fractional-programming
#: iteration; 1e-4 for a whole solve). Measured on a 2,500 x 25 block of a field: the same
#: SCR to 0.05 % in 24 % less time.
REGION_INNER_TOLERANCE = 1e-3
#: The barrier allocation's growth per centring in a region (x20 in a whole solve). Measured
#: with dashf-scale on a 2,500 x 25 block of the 100,000 x 1,000 field: 12.1 s at x50, 14.4 s
#: at x30, 18.6 s at x20, the same SCR to 7 digits; on the dense 1000x20 instance of seed 0 it
#: is the other way round (6.5 s at x50, 3.8 s at x20), so only regions use it.
REGION_BARRIER_GROWTH = 50.0
#: A region's first solve starts from a plan made at this multiple of its delay weight
#: (``dashf-scale`` only; 1 turns it off). Solved cold, a region of the 10,000 x 100 field
#: (seed 0) settles in a poorer local optimum than the whole solve finds for the same users
#: (docs/regions.md section 5); a short solve at a higher delay price first moves more users
#: to training on the device (phi = 1), and the region's own solve from there ends higher:
#: two regions of 50 servers, 0.973 of the whole solve's SCR cold, 0.985 from starts at x4
#: (0.976 at x2, 20 iterations).
DELAY_START_FACTOR = 4.0
#: AO iterations of that start's solve. Measured at x4 on the two regions above: 20, 3 and 2
#: give the same stitched SCR to 0.04 % (0.9843, 0.9844, 0.9847 of the whole), the regions
#: taking 59.1, 46.1 and 34.1 s (two regions one after the other; 38.7 s cold); 1 iteration
#: is far worse (0.729: the region's solve does not recover from that start).
DELAY_START_ITERATIONS = 2
#: A region is re-solved at a higher delay price when its delay exceeds the median region's by
#: more than this share ...
REPRICE_MARGIN = 0.03
#: ... with its delay weight multiplied by (its delay / the median) to this power, at most
#: :data:`REPRICE_MAX_FACTOR` (measured on one region: the delay falls about as the weight to
#: the power -0.18, so this aims at the median).
REPRICE_POWER = 5.0
REPRICE_MAX_FACTOR = 10.0
#: AO iterations of a re-solve (it starts from the region's first plan).
REPRICE_ITERATIONS = 2

#: Plan fields carried per user besides the assignment.
#: Relaxation (round 2): regions faster than the stitched delay by more than this share are
#: re-split with that delay as a floor.
RELAX_MARGIN = 0.01
#: Dinkelbach iterations of the relaxation (one part-2 solve each).
RELAX_ITERATIONS = 2
PLAN_FIELDS = tuple(f.name for f in dataclasses.fields(Plan) if f.name != "assignment")

#: "solved": a feasible plan (every algorithm returns only feasible plans, or raises);
#: "failed": the solve raised (its message says why).
RegionStatus = Literal["solved", "failed"]


class Scene(Protocol):
    """What solving by regions reads of a scenario: a field or a dense instance."""

    @property
    def n_users(self) -> int: ...
    @property
    def n_servers(self) -> int: ...
    @property
    def server_position_m(self) -> FloatArray: ...
    @property
    def adapter_params(self) -> FloatArray: ...
    @property
    def user_max_power_w(self) -> FloatArray: ...
    @property
    def server_bandwidth_hz(self) -> float: ...
    @property
    def bits_per_param(self) -> float: ...
    @property
    def noise_psd_w_per_hz(self) -> float: ...
    @property
    def weight_delay(self) -> float: ...
    @property
    def weight_energy(self) -> float: ...

    def gains(self, users: IntArray, servers: IntArray) -> FloatArray:
        """(len(users), len(servers)) linear power gains."""
        ...

    def instance(
        self,
        users: IntArray | None = None,
        servers: IntArray | None = None,
        weight_delay: float | None = None,
    ) -> Instance:
        """The dense instance of a block; ``weight_delay`` replaces omega_t."""
        ...


@dataclass(frozen=True)
class InstanceScene:
    """A dense instance seen as a scene: its blocks are sub-instances (users and servers kept,
    their gains sliced). Its servers need positions (every generated instance has them)."""

    whole: Instance

    def __post_init__(self) -> None:
        if self.whole.server_position_m is None:
            raise InvalidInputError(
                "solving by regions cuts the servers by position: the instance has no "
                "servers.position_m (a generated instance has them)"
            )
        if self.whole.work_model != "paper":
            raise InvalidInputError(
                "solving by regions is for the paper's work model; a profiled instance "
                "describes a small real run: solve it whole"
            )

    @property
    def n_users(self) -> int:
        return self.whole.n_users

    @property
    def n_servers(self) -> int:
        return self.whole.n_servers

    @property
    def server_position_m(self) -> FloatArray:
        assert self.whole.server_position_m is not None  # checked at construction
        return self.whole.server_position_m

    @property
    def adapter_params(self) -> FloatArray:
        return self.whole.adapter_params

    @property
    def user_max_power_w(self) -> FloatArray:
        return self.whole.user_max_power_w

    @property
    def server_bandwidth_hz(self) -> float:
        return float(np.mean(self.whole.bandwidth_hz))

    @property
    def bits_per_param(self) -> float:
        return self.whole.bits_per_param

    @property
    def noise_psd_w_per_hz(self) -> float:
        return self.whole.noise_psd_w_per_hz

    @property
    def weight_delay(self) -> float:
        return self.whole.weight_delay

    @property
    def weight_energy(self) -> float:
        return self.whole.weight_energy

    def gains(self, users: IntArray, servers: IntArray) -> FloatArray:
        out: FloatArray = self.whole.channel_gain[np.ix_(users, servers)]
        return out

    def instance(
        self,
        users: IntArray | None = None,
        servers: IntArray | None = None,
        weight_delay: float | None = None,
    ) -> Instance:
        whole = self.whole
        u = np.arange(whole.n_users) if users is None else np.asarray(users, dtype=np.int64)
        m = np.arange(whole.n_servers) if servers is None else np.asarray(servers, dtype=np.int64)
        changes: dict[str, Any] = {name: getattr(whole, name)[u] for name in USER_FIELDS}
        changes.update({name: getattr(whole, name)[m] for name in SERVER_FIELDS})
        changes["channel_gain"] = whole.channel_gain[np.ix_(u, m)]
        changes["server_position_m"] = self.server_position_m[m]
        if whole.user_position_m is not None:
            changes["user_position_m"] = whole.user_position_m[u]
        if weight_delay is not None:
            changes["weight_delay"] = weight_delay
        return whole.with_settings(**changes)


def partition_servers(positions: FloatArray, regions: int) -> IntArray:
    """(M,) region of each server: ``regions`` compact groups of (nearly) equal size, by
    recursive bisection of the positions along their wider side.

    Parameters
    ----------
    positions : (M, 2) float, m
    regions : int
        1 <= regions <= M.
    """
    m = positions.shape[0]
    if not 1 <= regions <= m:
        raise InvalidInputError(f"regions must be between 1 and the {m} servers, got {regions}")
    label = np.zeros(m, dtype=np.int64)

    def split(members: IntArray, first: int, count: int) -> None:
        if count == 1:
            label[members] = first
            return
        left = count // 2
        xy = positions[members]
        axis = int(np.argmax(xy.max(axis=0) - xy.min(axis=0)))
        order = members[np.argsort(xy[:, axis], kind="stable")]
        cut = round(members.size * left / count)
        split(order[:cut], first, left)
        split(order[cut:], first + left, count - left)

    split(np.arange(m), 0, regions)
    return label


def best_gains(field: Scene, server_region: IntArray, regions: int) -> FloatArray:
    """(N, R) each user's largest channel gain to a server of each region (computed in chunks
    of users, so memory stays O(chunk x M + N x R))."""
    order = np.argsort(server_region, kind="stable")
    starts = np.searchsorted(server_region[order], np.arange(regions))
    out = np.empty((field.n_users, regions))
    for lo in range(0, field.n_users, _CHUNK_USERS):
        users = np.arange(lo, min(lo + _CHUNK_USERS, field.n_users))
        out[users] = np.maximum.reduceat(field.gains(users, order), starts, axis=1)
    return out


def assign_users(
    field: Scene, server_region: IntArray, regions: int
) -> tuple[IntArray, dict[str, float]]:
    """(N,) region of each user, and a summary of the balancing.

    Each user is priced for its :data:`NEAR_REGIONS` best regions by the log of the bandwidth
    it would need there (adapter bits over the spectral efficiency of its best server in the
    region at an equal share of that server's bandwidth). A price per region is raised while the
    region holds more than its share of the users (its share of the servers) and lowered
    otherwise; each user joins the region where its log need plus the price is least.
    """
    gains = best_gains(field, server_region, regions)
    near = np.argsort(-gains, axis=1)[:, :NEAR_REGIONS]
    rows = np.arange(field.n_users)[:, None]
    nominal_hz = field.server_bandwidth_hz * field.n_servers / field.n_users
    snr = (
        field.user_max_power_w[:, None]
        * gains[rows, near]
        / (field.noise_psd_w_per_hz * nominal_hz)
    )
    log_need = np.log(field.adapter_params[:, None] * field.bits_per_param) - np.log(
        np.log2(1 + snr)
    )
    servers = np.bincount(server_region, minlength=regions).astype(float)
    target = field.n_users * servers / servers.sum()
    price = np.zeros(regions)
    choice = near[:, 0]
    for _ in range(_PRICE_ROUNDS):
        choice = near[rows[:, 0], np.argmin(log_need + price[near], axis=1)]
        load = np.bincount(choice, minlength=regions)
        price += _PRICE_STEP * (load / target - 1.0)
    load = np.bincount(choice, minlength=regions)
    return choice, {
        "moved_from_best_region": float(np.mean(choice != near[:, 0])),
        "largest_load_over_share": float(np.max(load / target)),
        "smallest_load_over_share": float(np.min(load / target)),
    }


@dataclass(frozen=True)
class RegionTask:
    """One region to solve: its users and servers (indices into the field), the delay weight
    it solves with, the algorithm and the options."""

    region: int
    users: IntArray
    servers: IntArray
    weight_delay: float
    algorithm: str
    options: SolveOptions
    #: 0: the first solve; 1: the re-solve of a slow region at a higher delay price.
    round: int = 0
    #: A plan to start from (``assignment`` as indices into ``servers``, and the
    #: :data:`PLAN_FIELDS`), used when the algorithm is ``dashf-scale``.
    start: dict[str, np.ndarray] | None = None
    #: Round 2 (the relaxation): the stitched delay, s, below which this region's resources
    #: are re-split with no gain for being faster (:func:`relax_below_floor`).
    delay_floor_s: float | None = None
    #: A first solve without ``start`` begins from a plan made at this multiple of the delay
    #: weight (:data:`DELAY_START_FACTOR`; 1: from the algorithm's own start).
    delay_start: float = 1.0


@dataclass(frozen=True)
class RegionResult:
    """A solved region: its plan in the field's indices (``assignment`` holds field server
    indices) and its figures (service, energy in J, delay in s)."""

    region: int
    users: IntArray
    servers: IntArray
    assignment: IntArray
    values: dict[str, FloatArray]
    status: RegionStatus
    service: float
    energy_j: float
    delay_s: float
    scr: float
    wall_time_s: float
    message: str
    round: int = 0
    weight_delay: float = 0.0


def check_delay_start(factor: float) -> None:
    """Refuse a delay start factor below 1 (or not finite)."""
    if not (math.isfinite(factor) and factor >= 1.0):
        raise InvalidInputError(f"--delay-start must be a number >= 1 (1: off), got {factor:g}")


def plan_tasks(
    field: Scene,
    servers_per_region: int,
    algorithm: str,
    options: SolveOptions,
    delay_start: float = DELAY_START_FACTOR,
) -> tuple[list[RegionTask], dict[str, float]]:
    """Cut ``field`` into regions of about ``servers_per_region`` servers and price its users
    into them; one task per region (largest first, so the longest runs start first).
    ``delay_start``: see :data:`DELAY_START_FACTOR`."""
    check_delay_start(delay_start)
    if servers_per_region < 1:
        raise InvalidInputError(f"servers per region must be >= 1, got {servers_per_region}")
    regions = max(1, math.ceil(field.n_servers / servers_per_region))
    server_region = partition_servers(field.server_position_m, regions)
    if regions == 1:
        user_region = np.zeros(field.n_users, dtype=np.int64)
        summary = {"moved_from_best_region": 0.0}
    else:
        user_region, summary = assign_users(field, server_region, regions)
    options = dataclasses.replace(
        options,
        inner_tolerance=max(options.inner_tolerance, REGION_INNER_TOLERANCE),
        barrier_growth=REGION_BARRIER_GROWTH,
    )
    tasks = []
    for r in range(regions):
        users = np.flatnonzero(user_region == r)
        servers = np.flatnonzero(server_region == r)
        if users.size == 0:
            continue
        weight = field.weight_delay * users.size / field.n_users
        tasks.append(
            RegionTask(r, users, servers, weight, algorithm, options, delay_start=delay_start)
        )
    tasks.sort(key=lambda t: -t.users.size)
    return tasks, {"regions": float(regions), **summary}


def solve_region(field: Scene, lookup: Lookup, task: RegionTask) -> RegionResult:
    """Build the region's instance from the scene and solve it with the algorithm ``lookup``
    finds (runs on a worker)."""
    started = time.perf_counter()
    instance = field.instance(task.users, task.servers, weight_delay=task.weight_delay)
    try:
        if task.delay_floor_s is not None and task.start is not None:
            from mecllm.systems.finetune.solvers.result import finish

            relaxed = relax_below_floor(instance, Plan(**task.start), task.delay_floor_s)
            result = finish(
                instance, "relaxation", relaxed, started, message="relaxed below the floor"
            )
        elif task.start is not None and task.algorithm == "dashf-scale":
            from mecllm.systems.finetune.solvers.search.scale import dashf_scale

            start = Plan(**task.start)
            result = dashf_scale(instance, task.options.with_deadline(), start)
        elif task.delay_start > 1.0 and task.algorithm == "dashf-scale":
            result = _solve_from_delay_start(task, instance)
        else:
            result = lookup(task.algorithm).run(instance, task.options)
    except Exception as exc:  # a region's failure is reported, never hidden
        return RegionResult(
            task.region,
            task.users,
            task.servers,
            np.zeros(0, np.int64),
            {},
            "failed",
            0.0,
            0.0,
            math.inf,
            0.0,
            time.perf_counter() - started,
            f"{type(exc).__name__}: {exc}",
            task.round,
            task.weight_delay,
        )
    plan = result.plan
    return RegionResult(
        region=task.region,
        users=task.users,
        servers=task.servers,
        assignment=task.servers[plan.assignment],
        values={name: np.asarray(getattr(plan, name)) for name in PLAN_FIELDS},
        status="solved",
        service=result.service,
        energy_j=result.energy_j,
        delay_s=result.delay_s,
        scr=result.scr,
        wall_time_s=time.perf_counter() - started,
        message=result.message,
        round=task.round,
        weight_delay=task.weight_delay,
    )


def _solve_from_delay_start(task: RegionTask, instance: Instance) -> SolveResult:
    """``dashf-scale`` on the region from the plan of a short solve at ``task.delay_start``
    times its delay weight (:data:`DELAY_START_FACTOR`). The weights are only in the
    objective, so that plan is feasible here."""
    from mecllm.systems.finetune.solvers.search.scale import dashf_scale

    options = task.options.with_deadline()  # one time limit for both solves
    pricier = instance.with_settings(weight_delay=task.weight_delay * task.delay_start)
    first = dashf_scale(
        pricier, dataclasses.replace(options, max_iterations=DELAY_START_ITERATIONS)
    )
    result = dashf_scale(instance, options, first.plan)
    message = f"from a start at x{task.delay_start:g} the delay weight: {result.message}"
    return dataclasses.replace(result, message=message)


def reprice_tasks(tasks: list[RegionTask], results: list[RegionResult]) -> list[RegionTask]:
    """Second-round tasks for the regions whose delay sets the stitched delay.

    The stitched delay is the largest region's, so a region much slower than the others pays
    for all of them: its share of the delay weight (``omega_t N_r / N``) undervalues its delay.
    Every solved region slower than the median by more than :data:`REPRICE_MARGIN` is solved
    again with its weight raised by ``(delay / median) ** REPRICE_POWER`` (capped), starting
    from its first plan, for :data:`REPRICE_ITERATIONS` AO iterations; :func:`choose` keeps,
    per region, whichever solve makes the stitched plan better.
    """
    solved = [r for r in results if r.status == "solved" and r.round == 0]
    if len(solved) < 2:
        return []
    median = float(np.median([r.delay_s for r in solved]))
    by_region = {t.region: t for t in tasks}
    out = []
    for r in solved:
        if r.delay_s > (1 + REPRICE_MARGIN) * median and r.region in by_region:
            factor = min((r.delay_s / median) ** REPRICE_POWER, REPRICE_MAX_FACTOR)
            task = by_region[r.region]
            start = {"assignment": np.searchsorted(task.servers, r.assignment), **r.values}
            out.append(
                dataclasses.replace(
                    task,
                    weight_delay=task.weight_delay * factor,
                    round=1,
                    start=start,
                    options=dataclasses.replace(task.options, max_iterations=REPRICE_ITERATIONS),
                )
            )
    return out


def relax_below_floor(
    instance: Instance, plan: Plan, floor_s: float, iterations: int = RELAX_ITERATIONS
) -> Plan:
    """``plan``'s resources re-split for the ratio ``service / (w_t max(T, floor_s) + w_e E)``:
    a region whose delay is not the stitched one gains nothing by being faster, and spends
    the slack on energy and service. Association and phi stay; the best plan by that ratio is
    returned (``plan`` itself if nothing beats it)."""

    def ratio(candidate: Plan) -> float:
        report = evaluate(instance, candidate)
        cost = float(weighted_cost(instance, max(report.delay_s, floor_s), report.energy_j))
        return report.service / cost if report.feasible and cost > 0 else -math.inf

    from mecllm.systems.finetune.solvers.allocation.engines import optimise_resources

    best, best_ratio = plan, ratio(plan)
    for _ in range(iterations):
        found = optimise_resources(
            instance,
            best,
            best_ratio,
            tolerance=REGION_INNER_TOLERANCE,
            engine="barrier",
            growth=REGION_BARRIER_GROWTH,
            delay_floor_s=floor_s,
        ).plan
        value = ratio(found)
        if value <= best_ratio * (1 + 1e-9):
            break
        best, best_ratio = found, value
    return best


def relax_tasks(tasks: list[RegionTask], chosen: list[RegionResult]) -> list[RegionTask]:
    """Round-2 tasks: every chosen region faster than the stitched delay by more than
    :data:`RELAX_MARGIN`, its plan re-split with that delay as a floor."""
    solved = [r for r in chosen if r.status == "solved"]
    if len(solved) < 2:
        return []
    stitched = max(r.delay_s for r in solved)
    by_region = {t.region: t for t in tasks}
    out = []
    for r in solved:
        if r.delay_s < (1 - RELAX_MARGIN) * stitched and r.region in by_region:
            task = by_region[r.region]
            start = {"assignment": np.searchsorted(task.servers, r.assignment), **r.values}
            out.append(
                dataclasses.replace(
                    task, weight_delay=r.weight_delay, round=2, start=start, delay_floor_s=stitched
                )
            )
    return out


def choose_relaxed(
    field: Scene, chosen: list[RegionResult], relaxed: list[RegionResult]
) -> list[RegionResult]:
    """``chosen`` with each relaxed region swapped in where that raises the stitched SCR (one
    at a time, largest energy saving first)."""
    current = {r.region: r for r in chosen}
    saving = sorted(
        (r for r in relaxed if r.status == "solved" and r.region in current),
        key=lambda r: r.energy_j - current[r.region].energy_j,
    )
    best = _scr(field, list(current.values()))
    for r in saving:
        trial = {**current, r.region: r}
        value = _scr(field, list(trial.values()))
        if value > best:
            current, best = trial, value
    return [current[k] for k in sorted(current)]


def choose(field: Scene, results: list[RegionResult]) -> list[RegionResult]:
    """One result per region: the first solve, with later ones (of a higher round) swapped in
    where that raises the stitched plan's SCR.

    Swapping one slow region's re-solve in gains nothing while another region is as slow, so
    the re-solves are tried as prefixes (the slowest k regions' re-solves together, for every
    k), the best prefix kept, then each swap undone alone if that is better still.
    """
    first = {r.region: r for r in results if r.round == 0}
    later = sorted(
        (r for r in results if r.round > 0 and r.status == "solved" and r.region in first),
        key=lambda r: -first[r.region].delay_s,
    )

    def with_swaps(swaps: list[RegionResult]) -> dict[int, RegionResult]:
        return {**first, **{r.region: r for r in swaps}}

    best = max(
        range(len(later) + 1), key=lambda k: _scr(field, list(with_swaps(later[:k]).values()))
    )
    swaps = later[:best]
    for candidate in list(swaps):
        fewer = [r for r in swaps if r is not candidate]
        if _scr(field, list(with_swaps(fewer).values())) > _scr(
            field, list(with_swaps(swaps).values())
        ):
            swaps = fewer
    chosen = with_swaps(swaps)
    return [chosen[k] for k in sorted(chosen)]


def _totals(field: Scene, results: list[RegionResult]) -> tuple[float, float, float, float, float]:
    """(service, energy J, delay s, cost, SCR) of the regions together: sums, the largest
    delay, and the SCR (0 if any region is not solved)."""
    service = float(sum(r.service for r in results))
    energy = float(sum(r.energy_j for r in results))
    delay = float(max(r.delay_s for r in results))
    cost = field.weight_delay * delay + field.weight_energy * energy
    solved = all(r.status == "solved" for r in results)
    scr = service / cost if solved and math.isfinite(cost) and cost > 0 else 0.0
    return service, energy, delay, cost, scr


def _scr(field: Scene, results: list[RegionResult]) -> float:
    """The stitched SCR of ``results`` (0 if any region is not solved)."""
    return _totals(field, results)[4]


@dataclass(frozen=True)
class Stitched:
    """The regions' plans as one plan of the field, and its figures."""

    plan: Plan
    feasible: bool
    service: float
    energy_j: float
    delay_s: float
    cost: float
    scr: float


def stitch(field: Scene, results: list[RegionResult]) -> Stitched:
    """One plan from every region's (each user in exactly one region)."""
    n = field.n_users
    assignment = np.full(n, -1, dtype=np.int64)
    values = {name: np.zeros(n) for name in PLAN_FIELDS}
    for r in results:
        if r.status == "failed":
            continue
        assignment[r.users] = r.assignment
        for name in PLAN_FIELDS:
            values[name][r.users] = r.values[name]
    feasible = all(r.status == "solved" for r in results) and bool(np.all(assignment >= 0))
    service, energy, delay, cost, scr = _totals(field, results)
    scr = scr if feasible else 0.0
    plan = Plan(assignment=np.maximum(assignment, 0), **values)
    return Stitched(plan, feasible, service, energy, delay, cost, scr)


#: Runs one round's tasks and returns their results and how many were reused (saved by an
#: earlier run); ``what`` names the round for progress lines ("regions", "re-solves", ...).
RoundRunner = Callable[[list[RegionTask], str], tuple[list[RegionResult], int]]
Progress = Callable[[str], None]


@dataclass
class Regional:
    """What :func:`solve_regions` did: the stitched plan, every region's result (the chosen
    ones), the balancing summary, the seconds spent cutting and solving, and how many region
    solves were reused."""

    stitched: Stitched
    results: list[RegionResult]
    balance: dict[str, float]
    plan_s: float
    solve_s: float
    reused: int


def serial_rounds(field: Scene, lookup: Lookup) -> RoundRunner:
    """The default round runner: each task solved in turn, in this process."""

    def run(tasks: list[RegionTask], what: str) -> tuple[list[RegionResult], int]:
        del what
        return [solve_region(field, lookup, task) for task in tasks], 0

    return run


def solve_regions(
    field: Scene,
    lookup: Lookup,
    *,
    servers_per_region: int = 50,
    algorithm: str = "dashf-scale",
    options: SolveOptions | None = None,
    reprice: bool = True,
    relax: bool = False,
    delay_start: float = DELAY_START_FACTOR,
    run_round: RoundRunner | None = None,
    progress: Progress | None = None,
) -> Regional:
    """Cut ``field`` into regions, solve them (``run_round``; serially by default), re-solve the
    slowest at a higher delay price (``reprice``), re-split the faster ones below the stitched
    delay (``relax``) and stitch one plan (docs/regions.md).

    Raises
    ------
    InvalidInputError
        For a bad region size or delay start, before any work.
    """
    options = options or SolveOptions()
    say = progress or (lambda text: None)
    started = time.perf_counter()
    runner = run_round or serial_rounds(field, lookup)
    tasks, balance = plan_tasks(field, servers_per_region, algorithm, options, delay_start)
    plan_s = time.perf_counter() - started
    say(
        f"{len(tasks)} regions of about {servers_per_region} servers and "
        f"{field.n_users // max(len(tasks), 1)} users; users priced out of their best region: "
        f"{balance.get('moved_from_best_region', 0.0):.1%} ({plan_s:.1f} s)"
    )
    solve_started = time.perf_counter()
    results, reused = runner(tasks, "regions")
    again = reprice_tasks(tasks, results) if reprice else []
    if again:
        say(
            f"{len(again)} regions slower than the median by over "
            f"{REPRICE_MARGIN:.0%} are solved again at a higher delay price"
        )
        second, reused_again = runner(again, "re-solves")
        reused += reused_again
        results = results + second
    results = choose(field, results)
    relaxing = relax_tasks(tasks, results) if relax else []
    if relaxing:
        say(
            f"{len(relaxing)} regions faster than the stitched delay by over "
            f"{RELAX_MARGIN:.0%} are re-split with it as a floor"
        )
        third, reused_third = runner(relaxing, "relaxations")
        reused += reused_third
        results = choose_relaxed(field, results, third)
    solve_s = time.perf_counter() - solve_started
    return Regional(stitch(field, results), results, balance, plan_s, solve_s, reused)
