"""The NumPy CDL and the data sets: shapes, power, seeds, splits, physics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mecllm.core.errors import InvalidInputError
from mecllm.systems.air.cdl import cdl_drops, cdl_table
from mecllm.systems.air.dataset import AirData, materialise
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.settings import air_preset, settings_from_dict


def _lag1(h: np.ndarray) -> float:
    """|E[h_{t+1} h_t^*]| / E|h|^2 over drops, antennas and subcarriers."""
    num = np.mean(h[:, 1:] * h[:, :-1].conj())
    return float(abs(num) / np.mean(np.abs(h) ** 2))


def test_tables_hold_the_five_profiles_with_unit_power() -> None:
    for model in "ABCDE":
        table = cdl_table(model)
        assert table.powers.sum() == pytest.approx(1.0)
        assert table.delays.size == table.aod.size == table.zoa.size
    assert cdl_table("C").delays.size == 24 and not cdl_table("C").los and cdl_table("D").los


def test_drops_have_the_layout_and_unit_power() -> None:
    s = air_preset("tiny")
    h, speeds = cdl_drops(s, 8, np.random.default_rng(1))
    assert h.shape == (8, 20, 32, 32) and h.dtype == np.complex64
    assert np.allclose(np.mean(np.abs(h) ** 2, axis=(1, 2, 3)), 1.0, rtol=1e-4)
    assert np.all((speeds >= 10) & (speeds <= 100))


def test_faster_users_decorrelate_faster() -> None:
    slow = air_preset("tiny", speed_min_kmh=5.0, speed_max_kmh=10.0)
    fast = air_preset("tiny", speed_min_kmh=90.0, speed_max_kmh=100.0)
    h_slow, _ = cdl_drops(slow, 30, np.random.default_rng(2))
    h_fast, _ = cdl_drops(fast, 30, np.random.default_rng(2))
    assert _lag1(h_slow) > 0.97 > _lag1(h_fast)


def test_a_longer_delay_spread_decorrelates_the_band() -> None:
    def adjacent(h: np.ndarray) -> float:
        return float(abs(np.mean(h[..., 1:] * h[..., :-1].conj())))

    short = air_preset("tiny", delay_spread_ns=30.0)
    long = air_preset("tiny", delay_spread_ns=1000.0)
    h_short, _ = cdl_drops(short, 20, np.random.default_rng(3))
    h_long, _ = cdl_drops(long, 20, np.random.default_rng(3))
    assert adjacent(h_short) > 0.99
    assert adjacent(h_long) < adjacent(h_short) - 0.02


def test_the_los_profiles_generate() -> None:
    for model in ("D", "E"):
        h, _ = cdl_drops(air_preset("tiny", cdl_model=model), 3, np.random.default_rng(4))
        assert np.all(np.isfinite(h.view(np.float32)))


def test_data_sets_are_made_once_from_their_seed_and_split_by_drop(tmp_path: Path) -> None:
    s = air_preset("tiny", train_drops=6, val_drops=2, test_drops=3, users=2)
    a = materialise(s, 7, tmp_path / "a")
    b = materialise(s, 7, tmp_path / "b")
    assert np.array_equal(np.load(a / "channels.npy"), np.load(b / "channels.npy"))
    # The test drops come from their own stream: more training drops leave them unchanged.
    bigger = air_preset("tiny", train_drops=9, val_drops=2, test_drops=3, users=2)
    c = materialise(bigger, 7, tmp_path / "c")
    data_s, data_big = AirData.open(s, 7, a), AirData.open(bigger, 7, c)
    assert np.array_equal(data_s.target("test"), data_big.target("test"))
    assert not (tmp_path / "a" / "channels.npy.partial").exists()
    meta = json.loads((a / "meta.json").read_text())
    assert meta["seed"] == 7
    with pytest.raises(InvalidInputError, match="other settings"):
        materialise(s, 8, tmp_path / "a")


def test_history_is_noisy_at_its_snr_and_target_is_clean(tiny_data: AirData) -> None:
    noisy, variance = tiny_data.history("test")
    clean = tiny_data.clean_history("test")
    measured = np.mean(np.abs(noisy - clean) ** 2, axis=(1, 2, 3))
    assert np.allclose(measured, variance, rtol=0.1)
    power = np.mean(np.abs(clean) ** 2, axis=(1, 2, 3))
    assert np.allclose(10 * np.log10(power / variance), 18.0)
    again, _ = tiny_data.history("test")
    assert np.array_equal(noisy, again)  # the test noise is fixed: every predictor sees it


def test_fdd_targets_the_downlink_band(tiny: AirInstance, tmp_path: Path) -> None:
    s = air_preset("tiny", mode="fdd", train_drops=4, val_drops=1, test_drops=2, users=2)
    data = AirInstance(settings=s, seed=0, data_dir=str(tmp_path)).data()
    k = s.subcarriers
    assert np.array_equal(data.target("test"), data.channels[-2:, s.history :, :, k:])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "xdd"}, "mode must be one of tdd, fdd"),
        ({"subcarriers": 0}, "subcarriers must be an integer >= 1"),
        ({"speed_min_kmh": 50.0, "speed_max_kmh": 10.0}, "speed_min_kmh <= speed_max_kmh"),
        ({"antenna": 3}, "does not exist"),
        ({"users": 50}, "must not exceed test_drops"),
    ],
)
def test_bad_settings_are_refused_by_name(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        air_preset("tiny", **changes)


def test_instance_files_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="unknown fields"):
        AirInstance.from_dict({"kind": "edge-air", "settings": {}, "extra": 1})
    with pytest.raises(InvalidInputError, match="seed must be"):
        AirInstance.from_dict({"kind": "edge-air", "settings": {}, "seed": -1})
    with pytest.raises(InvalidInputError, match="unknown settings"):
        settings_from_dict({"nope": 1})


def test_parallel_generations_of_one_folder_wait_for_each_other(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s = air_preset("tiny", train_drops=40, val_drops=4, test_drops=4)
    with ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: materialise(s, 3, tmp_path / "d"), range(3)))
    assert folders == [tmp_path / "d"] * 3
    assert AirData.open(s, 3, tmp_path / "d").channels.shape[0] == 48
