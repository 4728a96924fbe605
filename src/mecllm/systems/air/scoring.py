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


def precoders(
    estimate: NDArray[np.complex128], kind: Precoder, noise: float, power: float = 1.0
) -> NDArray[np.complex128]:
    """Precoders (..., A, U) from channel estimates (..., U, A) with total power ``power``.

    Every precoder here lies in the span of the estimated channels, ``w = H^H X`` with ``X``
    of size U x U, so it is computed there (a user count, not an antenna count, sets the cost):
    MRT ``X = I``, regularised ZF ``X = (H H^H + U noise / P I)^-1``, WMMSE iterated on ``X``.
    """
    h_h = np.conj(np.swapaxes(estimate, -1, -2))  # (..., A, U)
    gram = estimate @ h_h  # (..., U, U)
    users = estimate.shape[-2]
    eye = np.broadcast_to(np.eye(users), gram.shape)
    if kind == "mrt":
        x = _scaled(gram, eye.astype(np.complex128), power)
    else:
        x = _scaled(gram, np.linalg.inv(gram + users * noise / power * eye), power)
        if kind == "wmmse":
            x = _wmmse(gram, x, noise, power)
    return np.asarray(h_h @ x, dtype=np.complex128)


def _power(gram: NDArray[np.complex128], x: NDArray[np.complex128]) -> FloatArray:
    """Total power ``tr(X^H G X)`` of ``w = H^H X``."""
    return np.asarray(np.real(np.einsum("...ji,...jk,...ki->...", x.conj(), gram, x)))


def _scaled(
    gram: NDArray[np.complex128], x: NDArray[np.complex128], power: float
) -> NDArray[np.complex128]:
    used = np.maximum(_power(gram, x), 1e-30)
    return np.asarray(x * np.sqrt(power / used)[..., None, None], dtype=np.complex128)


def _rates(g: NDArray[np.complex128], noise: float) -> FloatArray:
    """Per-user rates (..., U) from the effective channel ``g = H w`` (..., U, U): user row,
    stream column."""
    gain = np.abs(g) ** 2
    signal = np.diagonal(gain, axis1=-2, axis2=-1)
    interference = np.sum(gain, axis=-1) - signal
    return np.asarray(np.log2(1 + signal / (interference + noise)))


def _power_at(values: FloatArray, mass: FloatArray, mu: FloatArray) -> FloatArray:
    """``sum_i L_i |B_i|^2 / (L_i + mu)^2`` (see :func:`_wmmse`)."""
    denominator = (values + mu[..., None]) ** 2
    terms = np.divide(values * mass, denominator, out=np.zeros_like(values), where=denominator > 0)
    return np.asarray(np.sum(terms, axis=-1))


def _wmmse(
    gram: NDArray[np.complex128], x: NDArray[np.complex128], noise: float, power: float
) -> NDArray[np.complex128]:
    """WMMSE (Shi, Razaviyayn, Luo, He 2011) for the sum rate with single-antenna users,
    started from ``x``: receive filters, MSE weights, then the precoder
    ``X = (C G + mu I)^-1 D`` (C = diag(weight |u|^2), D = diag(weight u), G = H H^H) with
    the smallest ``mu >= 0`` that keeps the power budget (bisection on a closed form)."""
    previous = np.sum(_rates(gram @ x, noise), axis=-1)
    for _ in range(WMMSE_ITERATIONS):
        hw = gram @ x  # H w: (..., U, U)
        received = np.sum(np.abs(hw) ** 2, axis=-1) + noise
        direct = np.diagonal(hw, axis1=-2, axis2=-1)
        u = direct / received
        e = 1 - np.real(np.conj(u) * direct)
        weight = 1 / np.maximum(e, 1e-12)
        # X = (C G + mu I)^-1 D = C^1/2 V (L + mu)^-1 B with C^1/2 G C^1/2 = V L V^H and
        # B = V^H C^-1/2 D; its power is sum_i L_i |B_i|^2 / (L_i + mu)^2, so mu is found by
        # bisection on that closed form.
        root = np.sqrt(np.maximum(weight * np.abs(u) ** 2, 1e-30))  # C^1/2
        m = root[..., :, None] * gram * root[..., None, :]
        values, vectors = np.linalg.eigh(m)
        values = np.maximum(values, 0.0)
        b = (
            np.conj(np.swapaxes(vectors, -1, -2))
            * (np.sqrt(weight) * u / np.abs(u).clip(1e-15))[..., None, :]
        )
        mass = np.sum(np.abs(b) ** 2, axis=-1)  # (..., U)

        fits = (values[..., 0] > 1e-12 * np.maximum(values[..., -1], 1e-30)) & (
            _power_at(values, mass, np.zeros(values.shape[:-1])) <= power
        )
        low = np.zeros(values.shape[:-1])
        high = np.sqrt(np.sum(values * mass, axis=-1) / power) + 1e-12
        for _ in range(60):
            mid = (low + high) / 2
            over = _power_at(values, mass, mid) > power
            low, high = np.where(over, mid, low), np.where(over, high, mid)
        mu = np.where(fits, 0.0, high)
        scale = np.divide(1.0, values + mu[..., None], out=np.zeros_like(values),
                          where=values + mu[..., None] > 0)  # fmt: skip
        candidate = root[..., :, None] * (vectors @ (b * scale[..., :, None]))
        current = np.sum(_rates(gram @ candidate, noise), axis=-1)
        # WMMSE never lowers the sum rate; a step that does (round-off) or is not finite is
        # not taken for that problem.
        better = np.isfinite(current) & (current >= previous)
        x = np.where(better[..., None, None], candidate, x)
        current = np.where(better, current, previous)
        change = np.max(np.abs(current - previous) / np.maximum(np.abs(previous), 1e-12))
        previous = current
        if change < WMMSE_TOLERANCE:
            break
    return x


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
    return float(np.mean(np.sum(_rates(h @ w, noise), axis=-1)))


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
