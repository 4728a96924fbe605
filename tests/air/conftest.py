"""Fixtures of the edge-air tests: the tiny preset's data set, generated once per session in a
temporary folder (never in the user's cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecllm.systems.air.dataset import AirData
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.settings import air_preset


@pytest.fixture(autouse=True)
def _air_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.getbasetemp() / "air-data"
    monkeypatch.setenv("MECLLM_AIR_DATA", str(root))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> AirInstance:
    folder: Path = tmp_path_factory.mktemp("tiny-data")
    return AirInstance(settings=air_preset("tiny"), seed=0, preset="tiny", data_dir=str(folder))


@pytest.fixture(scope="session")
def tiny_data(tiny: AirInstance) -> AirData:
    return tiny.data()
