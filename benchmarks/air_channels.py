"""The NumPy CDL against Sionna's CDL: the statistics a channel predictor depends on.

Both generators draw the same settings; printed: lag-1 temporal correlation (one 0.5 ms slot),
frequency correlation at 1 and 8 subcarriers (the delay spread's trace), correlation of
horizontally and vertically adjacent elements of one polarisation (the angular spread's trace)
and the power of the -45 deg polarisation over the +45 deg one. Usage::

    python benchmarks/air_channels.py [--drops 400] [--models C,A,D] [--speeds 10-100,60-60]
"""

from __future__ import annotations

import argparse

import numpy as np

from mecllm.systems.air.cdl import cdl_drops
from mecllm.systems.air.settings import air_preset
from mecllm.systems.air.sionna_channels import sionna_drops

from machine import calibration_line


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.mean(a * b.conj())) / np.sqrt(np.mean(abs(a) ** 2) * np.mean(abs(b) ** 2)))


def statistics(h: np.ndarray, rows: int, cols: int) -> dict[str, float]:
    """h: (drops, slots, antennas (row, col, pol), K)."""
    grid = h.reshape(h.shape[0], h.shape[1], rows, cols, 2, h.shape[-1])
    return {
        "lag-1 time": correlation(h[:, 1:], h[:, :-1]),
        "freq +1": correlation(h[..., 1:], h[..., :-1]),
        "freq +8": correlation(h[..., 8:], h[..., :-8]),
        "horiz +1": correlation(grid[:, :, :, 1:], grid[:, :, :, :-1]),
        "vert +1": correlation(grid[:, :, 1:], grid[:, :, :-1]),
        "pol -45/+45": float(
            np.mean(abs(grid[..., 1, :]) ** 2) / np.mean(abs(grid[..., 0, :]) ** 2)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=400)
    parser.add_argument("--models", default="C,A,D")
    parser.add_argument("--speeds", default="10-100,60-60")
    args = parser.parse_args()
    print(calibration_line())
    names = list(statistics(np.ones((1, 2, 32, 9), complex), 4, 4))
    print("| CDL | speed (km/h) | generator | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for model in args.models.split(","):
        for band in args.speeds.split(","):
            lo, hi = (float(v) for v in band.split("-"))
            s = air_preset("small", cdl_model=model, speed_min_kmh=lo, speed_max_kmh=hi)
            for name, draw in (("numpy", cdl_drops), ("sionna", sionna_drops)):
                h, _ = draw(s, args.drops, np.random.default_rng(11))
                stats = statistics(h, s.rows, s.cols)
                cells = " | ".join(f"{v:.3f}" for v in stats.values())
                print(f"| {model} | {band} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
