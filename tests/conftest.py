"""Shared fixtures: small instances built by hand and generated ones; the guard that makes
every test which starts a process (a subprocess, a pool or Dask worker, a server) carry the
``processes`` marker."""

from __future__ import annotations

import multiprocessing.process
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.scenario import generate, preset

from factories import hand_instance_dict


@pytest.fixture
def hand_instance() -> Instance:
    return Instance.from_dict(hand_instance_dict())


@pytest.fixture(scope="session")
def paper_instance() -> Instance:
    return generate(preset("paper"), np.random.default_rng(0))


@pytest.fixture(autouse=True)
def _starting_a_process_needs_the_marker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test without ``@pytest.mark.processes`` fails at its first process start, so the
    marker (``-m "not processes"``: the tests that need no process at all) is always true."""
    if request.node.get_closest_marker("processes") is None:

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError(
                f"{request.node.nodeid} starts a process: mark it @pytest.mark.processes"
            )

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
        monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    yield
