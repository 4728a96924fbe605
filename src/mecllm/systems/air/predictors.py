"""The channel predictors without a neural network (docs/air.md section 4).

Every predictor maps a noisy history ``(n, P, A, K)`` (P past slots, A antennas, K uplink
subcarriers) and each drop's noise variance ``(n,)`` to a prediction ``(n, F, A, K)`` of the
next F slots on the target band (the uplink band in TDD, the downlink band next to it in FDD).
Fitting sees only the training split.

``outdated``    the last slot repeated (in FDD: the last uplink slot).
``ls-ar``       one complex AR(8) filter per horizon step, shared by every antenna and
                subcarrier, least squares over the noisy training histories.
``wiener``      the space-time LMMSE predictor per subcarrier: the sample covariance of the
                clean training histories (all antennas x all past slots) and their cross
                covariance with the future, regularised by each drop's own noise variance.
``ar-kalman``   per drop, an AR(4) by Yule-Walker on the drop's own noisy history (pooled over
                its antennas and subcarriers, noise power removed), then a Kalman filter over
                the history and the AR recursion forward.
``pad``         Prony in the angle-delay domain: the history turned into angle-delay
                coefficients (a DFT over the array, an inverse DFT over the band), each
                coefficient's series extrapolated by its own linear predictor of order 8
                (least squares with a small ridge), then turned back on the target band.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from mecllm.systems.air.cdl import ComplexArray, subcarrier_offsets
from mecllm.systems.air.dataset import AirData
from mecllm.systems.air.settings import AirSettings

FloatArray = NDArray[np.float64]
#: Progress of a fit: (done, total, a short note).
FitProgress = Callable[[int, int, str], None]


class Predictor(ABC):
    """A channel predictor: fitted on the training split, then applied to any history."""

    name: str

    def __init__(self, settings: AirSettings) -> None:
        self.settings = settings

    def fit(self, data: AirData, progress: FitProgress | None = None) -> None:  # noqa: B027
        """Learn from ``data``'s training split (nothing to learn by default)."""

    @abstractmethod
    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        """Predictions ``(n, F, A, K)`` for histories ``(n, P, A, K)``."""


class Outdated(Predictor):
    name = "outdated"

    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        last = history[:, -1:]
        return np.repeat(last, self.settings.horizon, axis=1).astype(np.complex64)


def _lags(history: ComplexArray, order: int) -> ComplexArray:
    """The last ``order`` slots, newest first, as rows: shape (n A K, order)."""
    recent = history[:, -order:][:, ::-1]  # (n, order, A, K)
    return np.moveaxis(recent, 1, -1).reshape(-1, order)


class LeastSquaresAR(Predictor):
    name = "ls-ar"
    order = 8

    def fit(self, data: AirData, progress: FitProgress | None = None) -> None:
        history, _ = data.history("train")
        target = data.target("train")
        x = _lags(history, self.order)
        gram = x.conj().T @ x
        self.coef = np.empty((self.settings.horizon, self.order), dtype=np.complex128)
        for j in range(self.settings.horizon):
            y = target[:, j].reshape(-1)
            self.coef[j] = np.linalg.solve(gram, x.conj().T @ y)

    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        n, _, a, k = history.shape
        x = _lags(history, self.order)
        out = (x @ self.coef.T).reshape(n, a, k, -1)
        return np.moveaxis(out, -1, 1).astype(np.complex64)


def _space_time(history: ComplexArray) -> ComplexArray:
    """Per drop and subcarrier, the history as one vector: shape (n K, P A)."""
    n, p, a, k = history.shape
    return np.transpose(history, (0, 3, 1, 2)).reshape(n * k, p * a)


class Wiener(Predictor):
    name = "wiener"

    def fit(self, data: AirData, progress: FitProgress | None = None) -> None:
        x = _space_time(data.clean_history("train"))
        target = data.target("train")
        n, f, a, k = target.shape
        y = np.transpose(target, (0, 3, 1, 2)).reshape(n * k, f * a)
        cov = (x.conj().T @ x) / x.shape[0]  # E[x^H x] (P A, P A), Hermitian
        cross = (x.conj().T @ y) / x.shape[0]  # E[x^H y]  (P A, F A)
        # (C + s I)^-1 C_xy = U (L + s)^-1 U^H C_xy: one eigendecomposition serves every
        # drop's own noise variance s.
        values, self.vectors = np.linalg.eigh(cov)
        self.values = np.maximum(values, 0.0)
        self.projected = self.vectors.conj().T @ cross

    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        n, _, a, k = history.shape
        f = self.settings.horizon
        z = _space_time(history) @ self.vectors  # (n K, P A)
        scale = 1.0 / (self.values[None, :] + np.repeat(noise_var, k)[:, None])
        y = ((z * scale) @ self.projected).reshape(n, k, f, a)
        return np.asarray(np.transpose(y, (0, 2, 3, 1)), dtype=np.complex64)


class ArKalman(Predictor):
    name = "ar-kalman"
    order = 4

    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        n, length, a, k = history.shape
        p, f = self.order, self.settings.horizon
        out = np.empty((n, f, a, k), dtype=np.complex64)
        for d in range(n):
            series = history[d].reshape(length, a * k)  # (P, elements)
            coef = _yule_walker(series, p, float(noise_var[d]))
            out[d] = _kalman_forecast(series, coef, float(noise_var[d]), f).reshape(f, a, k)
        return out


def stabilise(coef: NDArray[np.complex128], radius: float = 1.0) -> NDArray[np.complex128]:
    """Linear-prediction filters ``x[t] = sum_i c_i x[t-1-i]`` (rows of ``coef``, shape
    (S, p)) with every pole moved inside the circle of ``radius``, so that running them
    forward never blows up; filters already stable are kept."""
    s, p = coef.shape
    companion = np.zeros((s, p, p), dtype=np.complex128)
    companion[:, 0, :] = coef
    companion[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    roots = np.linalg.eigvals(companion)  # (S, p)
    size = np.abs(roots)
    roots = np.where(size > radius, roots / np.maximum(size, 1e-30) * radius, roots)
    # Back to the monic polynomial prod (z - r) = z^p - c_1 z^(p-1) - ... - c_p.
    poly = np.zeros((s, p + 1), dtype=np.complex128)
    poly[:, 0] = 1.0
    for i in range(p):
        poly[:, 1 : i + 2] = poly[:, 1 : i + 2] - roots[:, i : i + 1] * poly[:, : i + 1]
    return np.asarray(-poly[:, 1:])


def _yule_walker(series: ComplexArray, order: int, noise: float) -> NDArray[np.complex128]:
    """AR coefficients (newest lag first) from the autocorrelation pooled over the columns of
    ``series`` (time along axis 0), with the noise power removed from lag 0."""
    length = series.shape[0]
    r = np.array(
        [np.mean(series[lag:] * series[: length - lag].conj()) for lag in range(order + 1)]
    )
    r0 = max(r[0].real - noise, 0.05 * r[0].real)
    toeplitz = np.empty((order, order), dtype=np.complex128)
    for i in range(order):
        for j in range(order):
            toeplitz[i, j] = r0 if i == j else (r[i - j] if i > j else r[j - i].conj())
    toeplitz += 1e-3 * r0 * np.eye(order)
    coef = np.asarray(np.linalg.solve(toeplitz, r[1 : order + 1]), dtype=np.complex128)
    return np.asarray(stabilise(coef[None, :])[0], dtype=np.complex128)


def _kalman_forecast(
    series: ComplexArray, coef: NDArray[np.complex128], noise: float, horizon: int
) -> ComplexArray:
    """Kalman-filter every column of ``series`` under the AR model ``coef`` (state: the last
    ``p`` values, newest first) with measurement noise ``noise``, then run the AR forward."""
    p = coef.size
    transition = np.zeros((p, p), dtype=np.complex128)
    transition[0] = coef
    transition[1:, :-1] = np.eye(p - 1)
    power = float(np.mean(np.abs(series) ** 2)) - noise
    power = max(power, 0.05 * float(np.mean(np.abs(series) ** 2)))
    # Driving noise so that the AR process keeps the observed power (clipped to stay positive).
    drive = max(power * (1 - float(np.real(np.vdot(coef, coef)))) * 0.5, 1e-3 * power)
    state = np.zeros((p, series.shape[1]), dtype=np.complex128)
    cov = power * np.eye(p, dtype=np.complex128)
    for t in range(series.shape[0]):
        state = transition @ state
        cov = transition @ cov @ transition.conj().T
        cov[0, 0] += drive
        gain = cov[:, 0] / (cov[0, 0].real + noise)
        state = state + np.outer(gain, series[t] - state[0])
        cov = cov - np.outer(gain, cov[0, :])
    out = np.empty((horizon, series.shape[1]), dtype=np.complex64)
    for j in range(horizon):
        state = transition @ state
        out[j] = state[0]
    return out


class AngleDelayProny(Predictor):
    name = "pad"
    order = 8
    ridge = 1e-2

    def _bases(self) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        s = self.settings
        freqs = subcarrier_offsets(s)
        k = s.subcarriers
        taus = np.arange(k) / (k * s.subcarrier_hz)
        band = freqs[:k] if s.mode == "tdd" else freqs[k:]
        uplink = np.exp(-2j * np.pi * np.outer(freqs[:k], taus))  # (K, D)
        target = np.exp(-2j * np.pi * np.outer(band, taus))
        return np.linalg.inv(uplink), target

    def _array_dft(self) -> NDArray[np.complex128]:
        """The unitary 2-D DFT over the array's rows and columns, per polarisation (A, A)."""
        s = self.settings
        dft_rows = np.fft.fft(np.eye(s.rows)) / np.sqrt(s.rows)
        dft_cols = np.fft.fft(np.eye(s.cols)) / np.sqrt(s.cols)
        return np.asarray(np.kron(np.kron(dft_rows, dft_cols), np.eye(2)), dtype=np.complex128)

    def predict(self, history: ComplexArray, noise_var: FloatArray) -> ComplexArray:
        to_delay, from_delay = self._bases()
        dft = self._array_dft()
        # Angle-delay coefficients per slot: (n, P, A, D).
        coeffs = np.einsum("ba,nPak,dk->nPbd", dft, history, to_delay, optimize=True)
        n, length, a, d = coeffs.shape
        series = np.moveaxis(coeffs, 1, -1).reshape(-1, length)  # (n A D, P)
        p = min(self.order, length - 1)
        # Per series: LS fit of x[t] = sum_i c_i x[t-1-i] on its own history.
        rows = np.stack([series[:, p - 1 - i : length - 1 - i] for i in range(p)], axis=-1)
        y = series[:, p:]  # (S, P - p)
        gram = np.einsum("sti,stj->sij", rows.conj(), rows)
        scale = np.mean(np.abs(series) ** 2, axis=1) + 1e-12
        gram += self.ridge * scale[:, None, None] * np.eye(p)
        rhs = np.einsum("stj,st->sj", rows.conj(), y)
        coef = stabilise(np.linalg.solve(gram, rhs[..., None])[..., 0])  # (S, p)
        window = series[:, -p:][:, ::-1].copy()  # newest first
        preds = np.empty((series.shape[0], self.settings.horizon), dtype=np.complex128)
        for j in range(self.settings.horizon):
            nxt = np.sum(coef * window, axis=1)
            preds[:, j] = nxt
            window = np.concatenate((nxt[:, None], window[:, :-1]), axis=1)
        ahead = np.moveaxis(preds.reshape(n, a, d, -1), -1, 1)  # (n, F, A, D)
        out = np.einsum("ab,nFbd,kd->nFak", dft.conj().T, ahead, from_delay, optimize=True)
        return np.asarray(out, dtype=np.complex64)


#: The predictors of this module by name.
CLASSIC: dict[str, type[Predictor]] = {
    cls.name: cls for cls in (Outdated, LeastSquaresAR, Wiener, ArKalman, AngleDelayProny)
}
