"""Fields (channels on demand) and the solve by regions as the system holds it: the cut, the
prices, the choice of re-solves, the rounds on a field or an instance (``dashf-regions``), the
stitched plan a real, feasible plan of the whole scenario. The runner (checkpoints, Dask) is
tested in ``run/test_regions_runner.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mecllm
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.algorithms import get_algorithm
from mecllm.systems.finetune.field import Field, pair_uniform
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.regions import (
    InstanceScene,
    RegionResult,
    assign_users,
    choose,
    partition_servers,
    solve_regions,
)
from mecllm.systems.finetune.scenario import preset

runner = CliRunner()


def _field(n: int, m: int, seed: int = 0, **settings: float) -> Field:
    return Field(preset("paper", n_users=n, n_servers=m, **settings), seed)


def test_a_block_of_gains_is_the_same_whichever_block_it_is_computed_in() -> None:
    fld = _field(60, 7, shadowing_db=6.0)
    whole = fld.gains(np.arange(60), np.arange(7))
    users, servers = np.array([59, 3, 17]), np.array([6, 0])
    assert np.array_equal(fld.gains(users, servers), whole[np.ix_(users, servers)])
    assert np.array_equal(fld.instance().channel_gain, whole)
    other_seed = _field(60, 7, seed=1, shadowing_db=6.0).gains(np.arange(60), np.arange(7))
    assert not np.allclose(other_seed, whole)


def test_the_pair_hash_draws_uniforms_and_rayleigh_power_has_mean_one() -> None:
    u = pair_uniform(3, 1, np.arange(200_000, dtype=np.uint64))
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    fading = -np.log(u)
    assert abs(fading.mean() - 1.0) < 0.01 and abs(fading.var() - 1.0) < 0.03
    assert not np.array_equal(u, pair_uniform(3, 2, np.arange(200_000, dtype=np.uint64)))


def test_a_field_file_round_trips_and_bad_ones_are_refused(tmp_path: Path) -> None:
    fld = _field(100_000, 1_000)  # far too large to be dense: a field is only its settings
    fld.save(tmp_path / "f.json")
    assert Field.load(tmp_path / "f.json") == fld
    data = fld.to_dict()
    with pytest.raises(InvalidInputError, match="unknown field key"):
        Field.from_dict({**data, "extra": 1})
    with pytest.raises(InvalidInputError, match="seed must be an integer"):
        Field.from_dict({**data, "seed": "x"})
    with pytest.raises(InvalidInputError, match="n_users"):
        Field.from_dict({**data, "settings": {"n_users": 0}})
    with pytest.raises(InvalidInputError, match="kind"):
        Field.from_dict({"seed": 0})


def test_servers_are_cut_into_compact_regions_of_equal_size() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, size=(103, 2))
    label = partition_servers(xy, 8)
    sizes = np.bincount(label, minlength=8)
    assert sizes.sum() == 103 and sizes.max() - sizes.min() <= 1
    # compact: a region's servers are closer to their own centre than the area's spread
    spread = np.mean([xy[label == r].std(axis=0).mean() for r in range(8)])
    assert spread < 0.5 * xy.std(axis=0).mean()
    assert np.array_equal(partition_servers(xy, 1), np.zeros(103, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="regions must be"):
        partition_servers(xy, 104)


def test_prices_balance_the_users_over_the_regions() -> None:
    fld = _field(3000, 24)
    label = partition_servers(fld.server_position_m, 6)
    users, summary = assign_users(fld, label, 6)
    load = np.bincount(users, minlength=6) / (3000 / 6)
    assert np.all(np.abs(load - 1.0) < 0.05), load
    assert summary["moved_from_best_region"] < 0.5


def _result(region: int, delay: float, energy: float, round_: int) -> RegionResult:
    empty = np.zeros(0, dtype=np.int64)
    return RegionResult(
        region, empty, empty, empty, {}, "solved", 100.0, energy, delay, 0.0, 0.0, "", round_
    )


def test_equally_slow_regions_are_swapped_together_or_not_at_all() -> None:
    fld = _field(10, 3)  # only its weights matter here (0.5 per s, 0.005 per J)
    first = [_result(0, 100.0, 10.0, 0), _result(1, 100.0, 10.0, 0), _result(2, 50.0, 10.0, 0)]
    # each re-solve alone leaves the other region at 100 s: a worse plan; both together win
    faster = [_result(0, 60.0, 20.0, 1), _result(1, 60.0, 20.0, 1)]
    chosen = choose(fld, first + faster)
    assert [r.round for r in chosen] == [1, 1, 0]
    # a re-solve that costs more energy than its delay saves is not kept
    costly = [_result(0, 99.0, 5000.0, 1), _result(1, 99.0, 5000.0, 1)]
    assert [r.round for r in choose(fld, first + costly)] == [0, 0, 0]


def test_the_rounds_on_a_field_give_a_feasible_plan_of_the_whole_scenario() -> None:
    fld = _field(60, 4, seed=3)
    said: list[str] = []
    solved = solve_regions(fld, get_algorithm, servers_per_region=2, progress=said.append)
    dense = evaluate(fld.instance(), solved.stitched.plan)
    assert dense.feasible and solved.stitched.feasible
    # the stitched figures are sums and a maximum of the regions': the same numbers up to
    # rounding of the sums (1e-9 relative)
    assert dense.scr == pytest.approx(solved.stitched.scr, rel=1e-9)
    assert solved.reused == 0 and said and "2 regions" in said[0]
    for r in solved.results:
        assert set(solved.stitched.plan.assignment[r.users]) <= set(r.servers)


def test_dashf_regions_solves_an_instance_from_the_api_and_refuses_what_it_cannot_cut() -> None:
    instance = mecllm.generate(seed=4, n_users=40, n_servers=4)
    result = mecllm.solve(instance, "dashf-regions", extra={"servers_per_region": 2})
    assert evaluate(instance, result.plan).feasible and result.algorithm == "dashf-regions"
    assert "2 regions" in result.message and result.scr > 0
    whole = mecllm.solve(instance, "dashf-regions")  # 4 servers, one region of 50
    assert "1 regions" in whole.message and evaluate(instance, whole.plan).feasible
    with pytest.raises(InvalidInputError, match="servers_per_region"):
        mecllm.solve(instance, "dashf-regions", extra={"servers_per_region": 0})
    data = instance.to_dict()
    del data["servers"]["position_m"]
    bare = mecllm.Instance.from_dict(data)
    with pytest.raises(InvalidInputError, match=r"no servers\.position_m"):
        InstanceScene(bare)


def test_a_sub_instance_keeps_its_users_and_servers_values() -> None:
    instance = mecllm.generate(seed=5, n_users=7, n_servers=3)
    users, servers = np.array([1, 4, 6]), np.array([0, 2])
    block = InstanceScene(instance).instance(users, servers, weight_delay=0.25)
    assert block.weight_delay == 0.25 and block.n_users == 3 and block.n_servers == 2
    assert np.array_equal(block.channel_gain, instance.channel_gain[np.ix_(users, servers)])
    assert np.array_equal(block.adapter_params, instance.adapter_params[users])
    assert np.array_equal(block.bandwidth_hz, instance.bandwidth_hz[servers])
