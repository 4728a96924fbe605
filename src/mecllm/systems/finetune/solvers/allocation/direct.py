"""The part-2 surrogate as a cone program written directly for Clarabel (no modelling layer).

The generic route (:class:`modelled.ConicSurrogate`) states the surrogate of
:class:`surrogate.SurrogateTerms` in cvxpy, which canonicalises the problem anew
for every (x, phi, y): about 90 ms at 20 users, several times the solves themselves. This
module writes the same problem straight into Clarabel's standard form

    minimise 1/2 v^T P v + c^T v   subject to   b - A v in K

with, per user (only the terms its phases use):

* ``r_up <= beta log2(1 + gamma_up pi / beta)`` as the exponential cone
  ``(ln2 r_up, beta, beta + gamma_up pi)``, likewise ``r_dn`` with kappa;
* ``u >= 1 / r`` for each rate, ``v >= 1 / f`` and ``w >= 1 / sigma`` for the compute
  times, each the rotated cone ``u r >= 1`` written as the second-order cone
  ``|(u - r, 2)| <= u + r``;
* ``h <= log(1 + norm (beta + kappa + sigma))`` as the exponential cone
  ``(h, 1, 1 + norm (beta + kappa + sigma))``;
* the delay ``k1 v + k2 u_up + k3 w + k4 u_dn <= tau``, the box and the server caps as
  linear inequalities;

and the objective ``-service sum h + delay_price tau + sum (eps1 f^2 + eps3 sigma^2
+ a_up pi^2 + c_up u_up^2 + a_dn kappa^2 + c_dn u_dn^2)`` (the FP term ``c / rho^2`` is
``c u^2`` at ``u = 1 / rho``, where the optimum puts u). Each epigraph variable is pushed onto
its bound by the objective or the delay row, so the optimum is the surrogate's. Shares whose
upper bound is 0 are left out (fixed at 0). Only the FP weights change from one
quadratic-transform iteration to the next; the constraints are built once per (x, phi, y).
Where Clarabel stops without a solution, the barrier method of
:mod:`barrier` solves the same problem instead.
"""

from __future__ import annotations

import math

import clarabel
import numpy as np

from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.compressed import CscMatrix
from mecllm.systems.finetune.solvers.allocation.barrier import BarrierSurrogate
from mecllm.systems.finetune.solvers.allocation.surrogate import Shares, SurrogateTerms

_LN2 = math.log(2.0)
#: Shares whose upper bound is below this are fixed at 0 (no variable).
_FIXED = 1e-12
#: Clarabel's default tolerances.
_TOLERANCE = 1e-8
#: Positions of the shares in a user's row of the column table.
_BETA, _PI, _KAPPA, _F, _SIGMA = range(5)

#: One term of a cone entry: (cone instance of each coefficient, column, coefficient).
Term = tuple[IntArray, IntArray, FloatArray]


class _Program:
    """Columns and cone rows of a Clarabel problem, added block by block (``b - A v in K``)."""

    def __init__(self) -> None:
        self.width = 0
        self.rows: list[IntArray] = []
        self.cols: list[IntArray] = []
        self.values: list[FloatArray] = []
        self.rhs: list[FloatArray] = []
        self.cones: list[object] = []
        self.height = 0

    def new(self, count: int) -> IntArray:
        """``count`` new variables: their columns."""
        out = np.arange(self.width, self.width + count, dtype=np.int64)
        self.width += count
        return out

    def add(self, kind: str, entries: list[tuple[list[Term], FloatArray]]) -> None:
        """``len(constant)`` cones of ``kind`` ("nonneg": each entry a row >= 0, "soc" or
        "exp": three entries per cone). ``entries[j] = (terms, constant)``: entry j of cone i
        is ``constant[i] + sum of coefficient * v[column]`` over the terms at instance i."""
        dim = len(entries)
        count = entries[0][1].size
        rhs = np.empty(count * dim)
        for j, (terms, constant) in enumerate(entries):
            rhs[j::dim] = constant
            for instance, col, coef in terms:
                keep = col >= 0
                self.rows.append(self.height + instance[keep] * dim + j)
                self.cols.append(col[keep])
                self.values.append(-coef[keep])  # s = b - A v
        self.rhs.append(rhs)
        self.height += count * dim
        if kind == "nonneg":
            self.cones.append(clarabel.NonnegativeConeT(count))
        elif kind == "soc":
            self.cones += [clarabel.SecondOrderConeT(3) for _ in range(count)]
        else:
            self.cones += [clarabel.ExponentialConeT() for _ in range(count)]

    def matrix(self) -> tuple[CscMatrix, FloatArray]:
        """``A`` (CSC) and ``b`` of every block added so far."""
        a = CscMatrix.from_coo(
            np.concatenate(self.rows),
            np.concatenate(self.cols),
            np.concatenate(self.values),
            (self.height, self.width),
        )
        return a, np.concatenate(self.rhs)


def _each(count: int) -> IntArray:
    """Cone instances 0 .. count - 1 (one term per cone)."""
    return np.arange(count, dtype=np.int64)


class DirectConicSurrogate:
    """The surrogate of one (x, phi, y) as a Clarabel cone program, solved for each FP weight
    set (same interface as the cvxpy and barrier engines)."""

    def __init__(self, terms: SurrogateTerms, tolerance: float | None = None):
        """``terms``: the surrogate; ``tolerance``: Clarabel's gap, feasibility and KKT-ratio
        tolerances (``None``: its default 1e-8; tighter ones cost about half as many
        iterations again and end "AlmostSolved" more often, so they are for a final polish)."""
        self.terms = terms
        n = terms.phi.shape[0]
        upper = np.stack(
            [np.ones(n), np.ones(n), terms.server_upper, np.ones(n), terms.server_upper], axis=1
        ).astype(float)
        free = upper > _FIXED
        prog = _Program()
        share = np.full((n, 5), -1, dtype=np.int64)
        share[free] = prog.new(int(free.sum()))
        self.share = share
        self.tau = int(prog.new(1)[0])
        up, dn = np.flatnonzero(terms.up), np.flatnonzero(terms.dn)
        uses_f, uses_sigma = np.flatnonzero(terms.k1 > 0), np.flatnonzero(terms.k3 > 0)
        # Epigraph variables: rates, inverse rates, inverse computes, log hypographs.
        r_up, u_up = prog.new(up.size), prog.new(up.size)
        r_dn, u_dn = prog.new(dn.size), prog.new(dn.size)
        v_f, w_sigma = prog.new(uses_f.size), prog.new(uses_sigma.size)
        h = prog.new(n)
        self.u_up, self.u_dn, self.up, self.dn = u_up, u_dn, up, dn
        ones = np.ones(n)
        # -- linear rows (>= 0): box, caps, delays
        rows, cols = np.nonzero(free)
        k = rows.size
        idx = share[rows, cols]
        box_low = ([(_each(k), idx, np.ones(k))], np.zeros(k))
        box_high = ([(_each(k), idx, -np.ones(k))], upper[rows, cols])
        delay_terms: list[Term] = [(_each(n), np.full(n, self.tau), ones)]
        for users, col, coef in (
            (uses_f, v_f, terms.k1),
            (up, u_up, terms.k2),
            (uses_sigma, w_sigma, terms.k3),
            (dn, u_dn, terms.k4),
        ):
            delay_terms.append((users, col, -coef[users]))
        prog.add("nonneg", [box_low])
        prog.add("nonneg", [box_high])
        m = terms.n_servers
        for column in (_BETA, _KAPPA, _SIGMA):
            prog.add("nonneg", [([(terms.assignment, share[:, column], -ones)], np.ones(m))])
        prog.add("nonneg", [(delay_terms, np.zeros(n))])
        # -- u >= 1 / r for rates and computes: |(u - r, 2)| <= u + r
        for u, r in (
            (u_up, r_up),
            (u_dn, r_dn),
            (v_f, share[uses_f, _F]),
            (w_sigma, share[uses_sigma, _SIGMA]),
        ):
            c = u.size
            if c == 0:
                continue
            e = _each(c)
            prog.add(
                "soc",
                [
                    ([(e, u, np.ones(c)), (e, r, np.ones(c))], np.zeros(c)),
                    ([(e, u, np.ones(c)), (e, r, -np.ones(c))], np.zeros(c)),
                    ([], np.full(c, 2.0)),
                ],
            )
        # -- rates: (ln2 r, beta, beta + gamma power) in the exponential cone
        for users, r, power, gamma in (
            (up, r_up, _PI, terms.gamma_up),
            (dn, r_dn, _KAPPA, terms.gamma_dn),
        ):
            c = users.size
            if c == 0:
                continue
            e = _each(c)
            beta = share[users, _BETA]
            prog.add(
                "exp",
                [
                    ([(e, r, np.full(c, _LN2))], np.zeros(c)),
                    ([(e, beta, np.ones(c))], np.zeros(c)),
                    ([(e, beta, np.ones(c)), (e, share[users, power], gamma[users])], np.zeros(c)),
                ],
            )
        # -- service: (h, 1, 1 + norm (beta + kappa + sigma)) in the exponential cone
        e = _each(n)
        norm = np.full(n, terms.norm)
        prog.add(
            "exp",
            [
                ([(e, h, ones)], np.zeros(n)),
                ([], ones),
                ([(e, share[:, j], norm) for j in (_BETA, _KAPPA, _SIGMA)], ones),
            ],
        )
        self.a, self.b = prog.matrix()
        self.cones = prog.cones
        self.c = np.zeros(prog.width)
        self.c[h] = -terms.service
        self.c[self.tau] = terms.delay_price
        # Fixed quadratic weights (energy of computing): 1/2 P means twice the coefficient.
        self.quadratic_fixed = np.zeros(prog.width)
        self.quadratic_fixed[share[uses_f, _F]] += 2 * terms.eps1[uses_f]
        sigma_cols = share[:, _SIGMA]
        has_sigma = sigma_cols >= 0
        self.quadratic_fixed[sigma_cols[has_sigma]] += 2 * terms.eps3[has_sigma]
        self.settings = clarabel.DefaultSettings()
        self.settings.verbose = False
        self.settings.max_threads = 1
        # Measured on 736 surrogates from dashf-scale runs (10x2 to 50x5): with the default
        # equilibration and step fraction 0.99, 60 ended in InsufficientProgress; without
        # equilibration and with steps of at most 0.9 of the way to the boundary, 1 did.
        self.settings.equilibrate_enable = False
        self.settings.max_step_fraction = 0.9
        for name in ("tol_gap_abs", "tol_gap_rel", "tol_feas", "tol_ktratio"):
            setattr(self.settings, name, _TOLERANCE if tolerance is None else tolerance)
        self.fallback: BarrierSurrogate | None = None

    def solve(self, weights: tuple[FloatArray, ...], start: Shares) -> tuple[Shares | None, str]:
        """One Clarabel solve for the FP weights ``(a_up, c_up, a_dn, c_dn)`` (where
        Clarabel starts from its own point; ``start`` is used only by the fallback)."""
        a_up, c_up, a_dn, c_dn = weights
        diagonal = self.quadratic_fixed.copy()
        up, dn = self.up, self.dn
        diagonal[self.share[up, _PI]] += 2 * a_up[up]
        diagonal[self.u_up] += 2 * c_up[up]
        kappa = self.share[dn, _KAPPA]
        diagonal[kappa] += 2 * a_dn[dn]
        diagonal[self.u_dn] += 2 * c_dn[dn]
        p = CscMatrix.diagonal(diagonal)
        solver = clarabel.DefaultSolver(p, self.c, self.a, self.b, self.cones, self.settings)
        solution = solver.solve()
        if solution.status == clarabel.SolverStatus.Solved:
            status = "optimal"
        elif solution.status == clarabel.SolverStatus.AlmostSolved:
            status = "inaccurate"
        else:  # Clarabel stopped: the barrier method solves the same problem from ``start``
            if self.fallback is None:
                self.fallback = BarrierSurrogate(self.terms)
            return self.fallback.solve(weights, start)
        v = np.asarray(solution.x, dtype=float)
        values = np.where(self.share >= 0, v[np.maximum(self.share, 0)], 0.0)
        return Shares(*(values[:, j] for j in range(5))), status
