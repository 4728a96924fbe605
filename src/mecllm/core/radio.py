"""Radio: the FDMA Shannon rate, the path-loss model and power units (docs/finetune.md
sections 4 and 8)."""

from __future__ import annotations

import numpy as np

from mecllm.core.arrays import FloatArray


def shannon_rate(
    bandwidth_hz: FloatArray, power_w: FloatArray, gain_over_noise: FloatArray
) -> FloatArray:
    """FDMA link rate ``b log2(1 + (g / sigma^2) p / b)`` in bit/s, shape of the inputs.

    Zero bandwidth or zero power gives rate 0 (the limit), not a NaN.
    """
    b = np.asarray(bandwidth_hz, dtype=float)
    p = np.asarray(power_w, dtype=float)
    ok = (b > 0) & (p > 0)
    snr = np.divide(gain_over_noise * p, b, out=np.zeros(np.broadcast(b, p).shape), where=ok)
    rate: FloatArray = np.where(ok, b * np.log2(np.where(ok, snr, 0.0) + 1.0), 0.0)
    return rate


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """128.1 + 37.6 log10(distance in km); distances below 1 m count as 1 m."""
    km = np.maximum(distance_m, 1.0) / 1000.0
    result: np.ndarray = 128.1 + 37.6 * np.log10(km)
    return result


def dbm_per_hz_to_w_per_hz(dbm: float) -> float:
    """Convert a PSD in dBm/Hz to W/Hz."""
    return float(10.0 ** ((dbm - 30.0) / 10.0))
