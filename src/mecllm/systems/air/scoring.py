"""Scores of a prediction on the true channels (docs/air.md section 5): NMSE, the
single-user MRT spectral efficiency, multi-user MRT / regularised ZF / WMMSE sum spectral
efficiency, and DFT-codebook beam accuracy.

Every precoder is built from the predicted channel and scored on the true one. Shapes: ``true``
and ``pred`` are ``(n, F, A, K)`` (drops, horizon steps, antennas, subcarriers).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mecllm.systems.air.cdl import ComplexArray

FloatArray = NDArray[np.float64]
Precoder = Literal["mrt", "zf", "wmmse"]
PRECODERS: tuple[Precoder, ...] = ("mrt", "zf", "wmmse")
#: The SNR of the single-user MRT score (LLM4CP's definition), dB.
MRT_SNR_DB = 10.0
#: WMMSE stops after this many iterations or a relative change of the sum rate below 1e-4.
WMMSE_ITERATIONS = 50
WMMSE_TOLERANCE = 1e-4


def nmse_db(true: ComplexArray, pred: ComplexArray) -> FloatArray:
    """NMSE per horizon step (dB): ``10 log10(sum |pred - true|^2 / sum |true|^2)`` over
    drops, antennas and subcarriers, floored at -300 dB (an exact prediction); shape (F,)."""
    err = np.sum(np.abs(pred - true) ** 2, axis=(0, 2, 3))
    ref = np.sum(np.abs(true) ** 2, axis=(0, 2, 3))
    return np.asarray(10 * np.log10(np.maximum(err / ref, 1e-30)))


def nmse_mean_db(true: ComplexArray, pred: ComplexArray) -> float:
    """NMSE over every step at once (dB)."""
    err = np.sum(np.abs(pred - true) ** 2)
    return float(10 * np.log10(max(err / np.sum(np.abs(true) ** 2), 1e-30)))


def nmse_by_speed(
    true: ComplexArray, pred: ComplexArray, speeds: FloatArray, edges: FloatArray
) -> list[float | None]:
    """Mean NMSE (dB) of the drops in each speed bin ``[edges[i], edges[i+1])`` (``None`` for
    an empty bin)."""
    out: list[float | None] = []
    for i in range(edges.size - 1):
        last = i == edges.size - 2
        rows = (speeds >= edges[i]) & (
            (speeds <= edges[i + 1]) if last else (speeds < edges[i + 1])
        )
        out.append(nmse_mean_db(true[rows], pred[rows]) if rows.any() else None)
    return out


def se_mrt(true: ComplexArray, pred: ComplexArray, snr_db: float = MRT_SNR_DB) -> float:
    """LLM4CP's single-user MRT spectral efficiency (bit/s/Hz), mean over drops, steps and
    subcarriers: ``w = pred / |pred|`` per subcarrier, ``SE = log2(1 + |w^H h|^2 / s2)`` with
    ``s2 = |h|^2 / A 10^(-SNR/10)``."""
    a = true.shape[2]
    gain = np.abs(np.sum(pred.conj() * true, axis=2)) ** 2 / np.maximum(
        np.sum(np.abs(pred) ** 2, axis=2), 1e-30
    )
    noise = np.sum(np.abs(true) ** 2, axis=2) / a * 10 ** (-snr_db / 10)
    return float(np.mean(np.log2(1 + gain / noise)))


def user_groups(n: int, users: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Drops grouped into cells of ``users`` (a seeded permutation, leftovers dropped);
    shape (groups, users)."""
    order = rng.permutation(n)
    groups = n // users
    return order[: groups * users].reshape(groups, users)


def _cell_channels(h: ComplexArray, groups: NDArray[np.int64]) -> NDArray[np.complex128]:
    """(groups, F, K, U, A): the users' channels of each cell per step and subcarrier."""
    cell = h[groups]  # (G, U, F, A, K)
    return np.transpose(cell, (0, 2, 4, 1, 3)).astype(np.complex128)


def _normalise(w: NDArray[np.complex128], power: float) -> NDArray[np.complex128]:
    norm = np.sqrt(np.sum(np.abs(w) ** 2, axis=(-2, -1), keepdims=True))
    return np.asarray(w * np.sqrt(power) / np.maximum(norm, 1e-30), dtype=np.complex128)


def precoders(
    estimate: NDArray[np.complex128], kind: Precoder, noise: float, power: float = 1.0
) -> NDArray[np.complex128]:
    """Precoders (..., A, U) from channel estimates (..., U, A) with total power ``power``."""
    h_h = np.conj(np.swapaxes(estimate, -1, -2))  # (..., A, U)
    if kind == "mrt":
        return _normalise(h_h, power)
    users = estimate.shape[-2]
    reg = users * noise / power
    gram = estimate @ h_h + reg * np.eye(users)
    zf = _normalise(h_h @ np.linalg.inv(gram), power)
    if kind == "zf":
        return zf
    return _wmmse(estimate, zf, noise, power)


def _rates(h: NDArray[np.complex128], w: NDArray[np.complex128], noise: float) -> FloatArray:
    """Per-user rates (..., U) of precoders ``w`` (..., A, U) on channels ``h`` (..., U, A)."""
    g = np.abs(h @ w) ** 2  # (..., U, U): user row, stream column
    signal = np.diagonal(g, axis1=-2, axis2=-1)
    interference = np.sum(g, axis=-1) - signal
    return np.asarray(np.log2(1 + signal / (interference + noise)))


def _wmmse(
    h: NDArray[np.complex128], w: NDArray[np.complex128], noise: float, power: float
) -> NDArray[np.complex128]:
    """WMMSE (Shi, Razaviyayn, Luo, He 2011) for the sum rate, single-antenna users, started
    from ``w``; the power constraint met by bisection on the multiplier."""
    a = h.shape[-1]
    previous = np.sum(_rates(h, w, noise), axis=-1)
    for _ in range(WMMSE_ITERATIONS):
        hw = h @ w  # (..., U, U)
        received = np.sum(np.abs(hw) ** 2, axis=-1) + noise  # (..., U)
        u = np.diagonal(hw, axis1=-2, axis2=-1) / received  # receive filters
        e = 1 - np.real(np.conj(u) * np.diagonal(hw, axis1=-2, axis2=-1))
        weight = 1 / np.maximum(e, 1e-12)
        coef = weight * np.abs(u) ** 2  # (..., U)
        h_h = np.conj(np.swapaxes(h, -1, -2))  # (..., A, U)
        gram = (h_h * coef[..., None, :]) @ h  # (..., A, A)
        rhs = h_h * (weight * u)[..., None, :]  # (..., A, U)
        w = _power_bisection(gram, rhs, power, a)
        current = np.sum(_rates(h, w, noise), axis=-1)
        change = np.max(np.abs(current - previous) / np.maximum(np.abs(previous), 1e-12))
        previous = current
        if change < WMMSE_TOLERANCE:
            break
    return w


def _power_bisection(
    gram: NDArray[np.complex128], rhs: NDArray[np.complex128], power: float, a: int
) -> NDArray[np.complex128]:
    """``w = (gram + mu I)^-1 rhs`` with the smallest ``mu >= 0`` keeping the power budget,
    through the eigendecomposition of ``gram``."""
    values, vectors = np.linalg.eigh(gram)
    proj = np.conj(np.swapaxes(vectors, -1, -2)) @ rhs  # (..., A, U)
    mass = np.sum(np.abs(proj) ** 2, axis=-1)  # (..., A)

    def used(mu: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.sum(mass / (values + mu[..., None]) ** 2, axis=-1))

    low = np.zeros(gram.shape[:-2])
    high = np.sqrt(np.sum(mass, axis=-1) / power) + 1e-12
    free = (values[..., 0] > 1e-9) & (used(np.full(low.shape, 1e-12)) <= power)
    for _ in range(60):
        mid = (low + high) / 2
        too_much = used(mid) > power
        low = np.where(too_much, mid, low)
        high = np.where(too_much, high, mid)
    mu = np.where(free, 0.0, high)
    scaled = proj / (values + mu[..., None])[..., None]
    return np.asarray(vectors @ scaled)


def se_multiuser(
    true: ComplexArray,
    pred: ComplexArray,
    groups: NDArray[np.int64],
    kind: Precoder,
    snr_db: float,
) -> float:
    """Sum spectral efficiency of a cell (bit/s/Hz, summed over its users), mean over cells,
    steps and subcarriers; precoders from ``pred``, rates on ``true``, total power 1, noise
    ``10^(-SNR/10)`` (channels have unit mean power per antenna)."""
    noise = 10 ** (-snr_db / 10)
    h = _cell_channels(true, groups)
    estimate = _cell_channels(pred, groups)
    w = precoders(estimate, kind, noise)
    return float(np.mean(np.sum(_rates(h, w, noise), axis=-1)))


def dft_codebook(rows: int, cols: int, oversampling: int = 2) -> NDArray[np.complex128]:
    """The 2-D DFT beams of a ``rows x cols`` array, oversampled: (rows cols, beams), unit
    norm columns. Beam ``b`` on a dual-polarised array is applied to both polarisations."""

    def grid(size: int) -> NDArray[np.complex128]:
        n = size * oversampling
        k = np.arange(size)[:, None] * np.arange(n)[None, :]
        return np.asarray(np.exp(2j * np.pi * k / n) / np.sqrt(size), dtype=np.complex128)

    return np.asarray(np.kron(grid(rows), grid(cols)), dtype=np.complex128)


def beam_scores(
    true: ComplexArray, pred: ComplexArray, rows: int, cols: int
) -> tuple[float, float, float]:
    """Top-1 and top-3 accuracy of the beam chosen on ``pred`` against the best beam on
    ``true`` (gain summed over both polarisations and the band, per drop and step), and the
    mean gain lost (dB) by using the predicted top-1 beam."""
    book = dft_codebook(rows, cols)  # (E, B)

    def gains(h: ComplexArray) -> FloatArray:
        n, f, _a, k = h.shape
        per_pol = h.reshape(n, f, rows * cols, 2, k)
        proj = np.einsum("eb,nfepk->nfbpk", book.conj(), per_pol, optimize=True)
        return np.asarray(np.sum(np.abs(proj) ** 2, axis=(-2, -1)))  # (n, F, B)

    g_true, g_pred = gains(true), gains(pred)
    best = np.argmax(g_true, axis=-1)
    top3 = np.argsort(-g_pred, axis=-1)[..., :3]
    top1 = top3[..., 0]
    chosen = np.take_along_axis(g_true, top1[..., None], axis=-1)[..., 0]
    loss = 10 * np.log10(np.max(g_true, axis=-1) / np.maximum(chosen, 1e-30))
    return (
        float(np.mean(top1 == best)),
        float(np.mean(np.any(top3 == best[..., None], axis=-1))),
        float(np.mean(loss)),
    )
