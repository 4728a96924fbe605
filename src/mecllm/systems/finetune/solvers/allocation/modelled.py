"""AO part 2's surrogate as one cvxpy problem (the generic route, the paper's DASHF): built once
per (x, phi, y) and re-solved for each z of the quadratic transform (Clarabel, SCS as
fallback)."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from mecllm.core.arrays import FloatArray
from mecllm.core.fractional import SOLVER_OPTIONS, solve_with_fallback
from mecllm.core.status import StepStatus
from mecllm.systems.finetune.solvers.allocation.surrogate import Shares, SurrogateTerms

_LN2 = math.log(2.0)


class ConicSurrogate:
    """The surrogate as one cvxpy problem, built once per (x, phi, y) and re-solved for each z."""

    def __init__(self, terms: SurrogateTerms):
        n = terms.phi.shape[0]
        self.terms = terms
        up, dn = np.flatnonzero(terms.up), np.flatnonzero(terms.dn)
        self.up, self.dn = up, dn
        self.bs = cp.Variable(n, nonneg=True)
        self.ps = cp.Variable(n, nonneg=True)
        self.qs = cp.Variable(n, nonneg=True)
        self.fs = cp.Variable(n, nonneg=True)
        self.ss = cp.Variable(n, nonneg=True)
        self.tau = cp.Variable(nonneg=True)
        member = sp.csr_matrix(
            (np.ones(n), (terms.assignment, np.arange(n))), shape=(terms.n_servers, n)
        )
        rho_up = (
            -cp.rel_entr(self.bs[up], self.bs[up] + cp.multiply(terms.gamma_up[up], self.ps[up]))
            / _LN2
        )
        rho_dn = (
            -cp.rel_entr(self.bs[dn], self.bs[dn] + cp.multiply(terms.gamma_dn[dn], self.qs[dn]))
            / _LN2
        )
        self.a_up = cp.Parameter(len(up), nonneg=True)  # k_up z
        self.c_up = cp.Parameter(len(up), nonneg=True)  # k_up / (4 z)
        self.a_dn = cp.Parameter(len(dn), nonneg=True)
        self.c_dn = cp.Parameter(len(dn), nonneg=True)

        user_delay: list[cp.Expression] = [cp.Constant(np.zeros(n))]
        # Sparse selections put each group's terms back at its users' rows.
        rows_up = sp.csr_matrix((np.ones(len(up)), (up, np.arange(len(up)))), shape=(n, len(up)))
        rows_dn = sp.csr_matrix((np.ones(len(dn)), (dn, np.arange(len(dn)))), shape=(n, len(dn)))
        energy: cp.Expression | int = 0
        if len(up):
            user_delay.append(
                rows_up
                @ (
                    cp.multiply(terms.k1[up], cp.inv_pos(self.fs[up]))
                    + cp.multiply(terms.k2[up], cp.inv_pos(rho_up))
                )
            )
            energy = cp.sum(
                cp.multiply(terms.eps1[up], cp.square(self.fs[up]))
                + cp.multiply(self.a_up, cp.square(self.ps[up]))
                + cp.multiply(self.c_up, cp.power(rho_up, -2))
            )
        if len(dn):
            user_delay.append(
                rows_dn
                @ (
                    cp.multiply(terms.k3[dn], cp.inv_pos(self.ss[dn]))
                    + cp.multiply(terms.k4[dn], cp.inv_pos(rho_dn))
                )
            )
            energy = energy + cp.sum(
                cp.multiply(terms.eps3[dn], cp.square(self.ss[dn]))
                + cp.multiply(self.a_dn, cp.square(self.qs[dn]))
                + cp.multiply(self.c_dn, cp.power(rho_dn, -2))
            )
        service = cp.sum(terms.service * cp.log1p(terms.norm * (self.bs + self.qs + self.ss)))
        constraints = [
            sum(user_delay[1:], user_delay[0]) <= self.tau,
            member @ self.bs <= 1,
            member @ self.qs <= 1,
            member @ self.ss <= 1,
            self.ps <= 1,
            self.fs <= 1,
            self.qs <= terms.server_upper,
            self.ss <= terms.server_upper,
        ]
        self.problem = cp.Problem(
            cp.Maximize(service - terms.delay_price * self.tau - energy), constraints
        )

    def solve(
        self, weights: tuple[FloatArray, ...], start: Shares
    ) -> tuple[Shares | None, StepStatus]:
        """One convex solve for the FP weights ``(a_up, c_up, a_dn, c_dn)`` (``start`` unused:
        the interior-point solver starts from its own point)."""
        del start
        a_up, c_up, a_dn, c_dn = weights
        if len(self.up):
            self.a_up.value, self.c_up.value = a_up[self.up], c_up[self.up]
        if len(self.dn):
            self.a_dn.value, self.c_dn.value = a_dn[self.dn], c_dn[self.dn]
        status = solve_with_fallback(self.problem, self.bs, SOLVER_OPTIONS)
        if status == "failed":
            return None, status
        values = (
            np.asarray(v.value, dtype=float) for v in (self.bs, self.ps, self.qs, self.fs, self.ss)
        )
        return Shares(*values), status
