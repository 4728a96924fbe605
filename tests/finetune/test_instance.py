"""Instance files: round trip and every bad-input rule, in the API and through the CLI."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.scenario import generate, preset

from factories import hand_instance_dict

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[key]
        del node[last]

    return edit


BAD_INPUTS: list[tuple[str, Edit, str]] = [
    ("missing section", _delete("servers"), "servers is missing"),
    ("missing field", _delete("users.max_flops"), "users.max_flops is missing"),
    ("missing scalar", _delete("noise_psd_w_per_hz"), "noise_psd_w_per_hz is missing"),
    (
        "string for number",
        _set("users.adapter_params.1", "2e6"),
        "users.adapter_params[1] must be a number",
    ),
    ("bool for number", _set("servers.epochs.0", True), "servers.epochs[0] must be a number"),
    ("string for list", _set("users.kappa", "1e-20"), "users.kappa must be a list"),
    ("wrong length", _set("users.epochs", [1, 1, 1]), "users.epochs must have 2 entries, got 3"),
    ("wrong gain rows", _set("channel_gain", [[1e-13]]), "channel_gain must have 2 rows"),
    (
        "wrong gain cols",
        _set("channel_gain", [[1e-13, 1e-13], [1e-13, 1e-13]]),
        "channel_gain[0] must have 1 entries",
    ),
    ("infinite", _set("servers.max_flops.0", math.inf), "servers.max_flops[0] must be finite"),
    ("nan", _set("users.max_power_w.0", math.nan), "users.max_power_w[0] must be finite"),
    ("zero cap", _set("servers.bandwidth_hz.0", 0.0), "servers.bandwidth_hz[0] must be > 0"),
    (
        "negative cap",
        _set("servers.bandwidth_hz.0", -5.0),
        "servers.bandwidth_hz[0] must be > 0, got -5.0",
    ),
    ("negative kappa", _set("users.kappa.1", -1e-20), "users.kappa[1] must be >= 0"),
    ("zero gain", _set("channel_gain.1.0", 0.0), "channel_gain[1][0] must be > 0"),
    ("zero noise", _set("noise_psd_w_per_hz", 0.0), "noise_psd_w_per_hz must be >= 1e-35"),
    (
        "no users",
        lambda d: d["users"].update({k: [] for k in d["users"]}),
        "users.adapter_params must list at least one user",
    ),
    (
        "no servers",
        lambda d: d["servers"].update({k: [] for k in d["servers"]}),
        "servers.bandwidth_hz must list at least one server",
    ),
    ("absurd flops", _set("servers.max_flops.0", 1e300), "servers.max_flops[0] must be <="),
    ("absurd power", _set("users.max_power_w.0", 1e40), "users.max_power_w[0] must be <="),
    (
        "absurdly small cap",
        _set("servers.max_flops.0", 1e-300),
        "servers.max_flops[0] must be >= 1 (smaller is not a physical value)",
    ),
    ("absurd kappa", _set("servers.kappa.0", 1.0), "servers.kappa[0] must be <= 0.001"),
    ("unknown field", _set("users.max_flop", [1, 1]), "users.max_flop is not a known field"),
    ("unknown top", _set("weight", 1), "weight is not a known field"),
    ("negative weight", _set("weights.energy", -0.1), "weights.energy must be >= 0"),
    (
        "both weights zero",
        lambda d: d["weights"].update(delay=0, energy=0),
        "weights.delay and weights.energy must not both be 0",
    ),
    ("bad count_idle", _set("service.count_idle", "no"), "service.count_idle must be true"),
    ("section not object", _set("weights", [0.5, 0.005]), "weights must be an object"),
]


@pytest.mark.parametrize(("label", "edit", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_rejected_with_a_named_field(label: str, edit: Edit, message: str) -> None:
    data = copy.deepcopy(hand_instance_dict())
    edit(data)
    with pytest.raises(InvalidInputError) as info:
        Instance.from_dict(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("label", "edit", "message"), BAD_INPUTS[::3], ids=[b[0] for b in BAD_INPUTS[::3]]
)
def test_cli_rejects_bad_instance_with_status_2_and_one_line(
    tmp_path: Path, label: str, edit: Edit, message: str
) -> None:
    data = copy.deepcopy(hand_instance_dict())
    edit(data)
    path = tmp_path / "bad.json"
    # allow_nan: write NaN/Infinity the way a careless tool would
    path.write_text(json.dumps(data, allow_nan=True))
    out = tmp_path / "sol.json"
    result = CliRunner().invoke(app, ["solve", str(path), "--algorithm", "gucaa", "-o", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message.split("[")[0].split(" ")[0] in lines[0]
    assert result.stdout == ""
    assert not out.exists()


def test_unparsable_and_missing_files_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "absent.json"):
        result = CliRunner().invoke(app, ["evaluate", str(path), str(path)])
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    original = generate(preset("paper", n_users=5, n_servers=3), np.random.default_rng(3))
    path = tmp_path / "i.json"
    original.save(path)
    loaded = Instance.load(path)
    assert loaded.to_dict() == original.to_dict()
    data = json.loads(path.read_text())
    assert set(data["users"]) == {
        "adapter_params",
        "flops_per_param",
        "epochs",
        "max_power_w",
        "max_flops",
        "kappa",
        "position_m",
    }
    assert set(data["servers"]) == {
        "bandwidth_hz",
        "max_power_w",
        "max_flops",
        "kappa",
        "epochs",
        "position_m",
    }


def test_instance_is_immutable(hand_instance: Instance) -> None:
    with pytest.raises(ValueError):
        hand_instance.adapter_params[0] = 5.0
    with pytest.raises(AttributeError):
        hand_instance.noise_psd_w_per_hz = 1.0  # type: ignore[misc]


def test_construction_in_python_is_validated(hand_instance: Instance) -> None:
    with pytest.raises(InvalidInputError, match="bandwidth_hz\\[0\\] must be > 0"):
        hand_instance.with_settings(bandwidth_hz=np.array([-1.0]))


def test_generator_is_reproducible_and_presets_differ() -> None:
    a = generate(preset("paper"), np.random.default_rng(7))
    b = generate(preset("paper"), np.random.default_rng(7))
    c = generate(preset("paper-literal"), np.random.default_rng(7))
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.channel_gain, c.channel_gain)
    assert c.noise_psd_w_per_hz / a.noise_psd_w_per_hz == pytest.approx(1e4)
    assert a.user_position_m is not None and a.user_position_m.shape == (10, 2)
    assert 1.2e6 <= a.adapter_params.min() and a.adapter_params.max() <= 14e6
    # t_n = 6 FLOPs x tokens, tokens = [10, 50] Mbit / 16 bit
    assert 6 * 10e6 / 16 <= a.flops_per_param.min() <= a.flops_per_param.max() <= 6 * 50e6 / 16


def test_generator_overrides_and_unknown_setting() -> None:
    inst = generate(
        preset("paper", n_users=3, n_servers=4, bandwidth_hz=20e6), np.random.default_rng(0)
    )
    assert inst.n_users == 3 and inst.n_servers == 4
    assert np.all(inst.bandwidth_hz == 20e6)
    with pytest.raises(InvalidInputError, match="does not exist"):
        preset("paper", n_user=3)
    with pytest.raises(InvalidInputError, match="preset must be one of"):
        preset("nope")
