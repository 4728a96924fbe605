"""Shared fixtures: small instances built by hand and generated ones."""

from __future__ import annotations

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
