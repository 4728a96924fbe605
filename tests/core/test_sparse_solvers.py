"""HiGHS through highspy and the compressed matrices, against scipy (which the solve path no
longer imports, for its start-up cost, but which is the reference here)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

from mecllm.core import highs
from mecllm.core.compressed import CscMatrix, compress


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compressed_matrices_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, 7, 60), rng.integers(0, 5, 60)  # many repeated places
    values = rng.normal(size=60)
    values[:5] = 0.0
    reference = sp.csc_matrix((values, (rows, cols)), shape=(7, 5))
    mine = CscMatrix.from_coo(rows, cols, values, (7, 5))
    np.testing.assert_array_equal(mine.indptr, reference.indptr)
    np.testing.assert_array_equal(mine.indices, reference.indices)
    np.testing.assert_allclose(mine.data, reference.data, rtol=1e-15)
    np.testing.assert_allclose(mine.toarray(), reference.toarray(), rtol=1e-15)
    start, index, value = compress(rows, cols, values, 7)
    by_rows = sp.csr_matrix((values, (rows, cols)), shape=(7, 5))
    np.testing.assert_array_equal(start, by_rows.indptr)
    np.testing.assert_array_equal(index, by_rows.indices)
    np.testing.assert_allclose(value, by_rows.data, rtol=1e-15)
    diagonal = np.array([1.0, 0.0, 3.0, 0.0, 2.0])
    expected = sp.diags(diagonal, format="csc")
    got = CscMatrix.diagonal(diagonal)
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.data, expected.data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_highs_lp_and_mip_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 12, 8
    a = rng.uniform(-1, 2, (m, n)) * (rng.uniform(size=(m, n)) < 0.6)
    upper = a @ rng.uniform(0, 1, n) + 1.0  # a feasible point exists
    cost = rng.normal(size=n)
    rows, cols = np.nonzero(a)
    triplets = (rows, cols, a[rows, cols])
    box = (np.zeros(n), np.full(n, 3.0))
    lp = highs.solve(cost, triplets, (np.full(m, -np.inf), upper), box)
    ref = so.linprog(cost, A_ub=a, b_ub=upper, bounds=list(zip(*box, strict=True)))
    assert lp.status == "optimal" and lp.x is not None
    assert lp.objective == pytest.approx(ref.fun, rel=1e-9, abs=1e-9)
    assert np.all(a @ lp.x <= upper + 1e-9)
    integer = np.arange(n) < n // 2
    mip = highs.solve(cost, triplets, (np.full(m, -np.inf), upper), box, integer=integer)
    ref_mip = so.milp(
        cost,
        constraints=so.LinearConstraint(a, -np.inf, upper),
        integrality=integer.astype(int),
        bounds=so.Bounds(*box),
    )
    assert mip.status == "optimal" and mip.x is not None
    assert mip.objective == pytest.approx(ref_mip.fun, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(mip.x[integer], np.round(mip.x[integer]), atol=1e-9)
    assert mip.dual_bound <= mip.objective + 1e-9


def test_highs_reports_an_infeasible_program_as_failed() -> None:
    # x >= 2 and x <= 1
    result = highs.solve(
        np.array([1.0]),
        (np.array([0]), np.array([0]), np.array([1.0])),
        (np.array([2.0]), np.array([np.inf])),
        (np.array([0.0]), np.array([1.0])),
    )
    assert result.status == "failed" and result.x is None


def _small_mip() -> str:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (10, 30))
    rows, cols = np.nonzero(a)
    result = highs.solve(
        -rng.uniform(size=30),
        (rows, cols, a[rows, cols]),
        (np.full(10, -np.inf), np.full(10, 3.0)),
        (np.zeros(30), np.ones(30)),
        integer=np.ones(30, dtype=bool),
    )
    return result.status


@pytest.mark.processes
def test_a_child_forked_after_a_solve_can_solve() -> None:
    # HiGHS's thread scheduler does not survive a fork: without the reset the child spins.
    assert _small_mip() == "optimal"
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        assert pool.apply_async(_small_mip).get(timeout=30) == "optimal"
