"""The NumPy CDL against Sionna's (skipped where Sionna is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from mecllm.systems.air.cdl import cdl_drops
from mecllm.systems.air.settings import air_preset

pytest.importorskip("sionna.phy", reason="Sionna is not installed (pip install -e '.[air]')")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    num = abs(np.mean(a * b.conj()))
    return float(num / np.sqrt(np.mean(abs(a) ** 2) * np.mean(abs(b) ** 2)))


def _statistics(h: np.ndarray) -> np.ndarray:
    grid = h.reshape(h.shape[0], h.shape[1], 4, 4, 2, h.shape[-1])
    return np.array(
        [
            _correlation(h[:, 1:], h[:, :-1]),  # lag-1 in time
            _correlation(h[..., 8:], h[..., :-8]),  # 8 subcarriers apart
            _correlation(grid[:, :, :, 1:], grid[:, :, :, :-1]),  # horizontal neighbours
            _correlation(grid[:, :, 1:], grid[:, :, :-1]),  # vertical neighbours
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["C", "A", "D"])
def test_numpy_cdl_matches_sionna(model: str) -> None:
    from mecllm.systems.air.sionna_channels import sionna_drops

    s = air_preset("small", cdl_model=model, subcarriers=24)
    ours, _ = cdl_drops(s, 150, np.random.default_rng(1))
    theirs, _ = sionna_drops(s, 150, np.random.default_rng(2))
    assert np.allclose(_statistics(ours), _statistics(theirs), atol=0.03)


@pytest.mark.slow
def test_uma_users_carry_their_large_scale_gain(tmp_path: object) -> None:
    from mecllm.systems.air.sionna_channels import sionna_uma_drops

    s = air_preset("uma-cell", subcarriers=8)
    h, speeds, gains = sionna_uma_drops(s, 20, np.random.default_rng(3))
    assert h.shape == (20, 20, 32, 16)
    assert np.allclose(np.mean(np.abs(h) ** 2, axis=(1, 2, 3)), 1.0, rtol=1e-3)
    assert np.all((gains > -180) & (gains < -60)) and np.std(gains) > 3
    assert np.all((speeds >= 10 - 1e-3) & (speeds <= 100 + 1e-3))


@pytest.mark.slow
def test_sionna_data_sets_are_reproducible_from_their_seed() -> None:
    from mecllm.systems.air.sionna_channels import sionna_drops, sionna_uma_drops

    s = air_preset("small", subcarriers=8)
    first, _ = sionna_drops(s, 6, np.random.default_rng(5))
    again, _ = sionna_drops(s, 6, np.random.default_rng(5))
    assert np.array_equal(first, again)
    u = air_preset("uma-cell", subcarriers=8)
    first, _, gains = sionna_uma_drops(u, 10, np.random.default_rng(5))
    again, _, gains_again = sionna_uma_drops(u, 10, np.random.default_rng(5))
    assert np.array_equal(first, again) and np.array_equal(gains, gains_again)
