"""Compressed sparse matrices built from COO triplets with NumPy alone.

Solvers take sparse matrices in compressed form: HiGHS row-wise (:mod:`highs`), Clarabel
column-wise. ``scipy.sparse`` builds them too, but importing it costs about 0.09 s, a tenth of
the whole-process time of a small ``mecllm solve``; these few lines do the one conversion the
solve needs. Entries at the same place are summed and explicit zeros kept, as
``scipy.sparse.coo_matrix.tocsc`` does, so a solver sees the same pattern either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mecllm.core.arrays import FloatArray, IntArray


def compress(
    major: IntArray, minor: IntArray, values: FloatArray, n_major: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """COO triplets to compressed form along ``major`` (rows for CSR, columns for CSC):
    ``(start (n_major + 1,), index, value)``, indices sorted within each major line and
    repeated entries summed."""
    major = np.asarray(major, dtype=np.int64)
    minor = np.asarray(minor, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((minor, major))
    a, b, v = major[order], minor[order], values[order]
    if a.size:
        new = np.ones(a.size, dtype=bool)
        new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        first = np.flatnonzero(new)
        a, b, v = a[first], b[first], np.add.reduceat(v, first)
    start = np.zeros(n_major + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n_major), out=start[1:])
    return start, b, v


@dataclass(frozen=True)
class CscMatrix:
    """A matrix in compressed sparse columns, with the attributes Clarabel reads from a
    ``scipy.sparse.csc_matrix`` (``shape``, ``indptr``, ``indices``, ``data``,
    ``has_canonical_format``)."""

    shape: tuple[int, int]
    indptr: IntArray
    indices: IntArray
    data: FloatArray
    has_canonical_format: bool = True

    @classmethod
    def from_coo(
        cls, rows: IntArray, cols: IntArray, values: FloatArray, shape: tuple[int, int]
    ) -> CscMatrix:
        """The matrix with ``values`` at (``rows``, ``cols``); repeated places summed."""
        start, index, value = compress(cols, rows, values, shape[1])
        return cls(shape, start, index, value)

    @classmethod
    def diagonal(cls, values: FloatArray) -> CscMatrix:
        """The square diagonal matrix of ``values``; zeros are left out, as
        ``scipy.sparse.diags`` leaves them."""
        n = int(values.shape[0])
        where = np.flatnonzero(values)
        start = np.zeros(n + 1, dtype=np.int64)
        start[1:] = np.cumsum(values != 0)
        return cls((n, n), start, where, np.asarray(values, dtype=np.float64)[where])

    def toarray(self) -> FloatArray:
        """The dense matrix (for tests and small checks)."""
        out = np.zeros(self.shape)
        cols = np.repeat(np.arange(self.shape[1]), np.diff(self.indptr))
        out[self.indices, cols] = self.data
        return out
