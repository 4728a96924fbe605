"""`mecllm generate --work-model`: the profiled instance, its paper twin, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.systems.finetune.instance import Instance

from factories import synthetic_cost


def _generate(tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps(synthetic_cost()))
    out = tmp_path / "i.json"
    args = ["generate", "--users", "3", "--servers", "2", "--seed", "4", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--work-model", str(cost), *extra])
    return result.exit_code, result.output, out


def test_generate_writes_a_profiled_instance_and_its_paper_twin(tmp_path: Path) -> None:
    code, output, out = _generate(tmp_path)
    assert code == 0, output
    profiled = Instance.load(out)
    assert profiled.work_model == "profiled" and profiled.profile is not None
    tokens = profiled.profile.tokens_per_epoch
    assert all(t % (16 * 24) == 0 and 48 * 24 <= t <= 144 * 24 for t in tokens)
    assert list(profiled.flops_per_param) == [6.0 * t for t in tokens]
    machine = profiled.profile.machine_flops_per_s
    assert all(0.1 * machine <= f <= 0.2 * machine for f in profiled.user_max_flops)
    (tmp_path / "twin").mkdir()
    code, output, twin_path = _generate(tmp_path / "twin", "--plan-model", "paper")
    assert code == 0, output
    twin = Instance.load(twin_path)
    assert twin.work_model == "paper" and twin.work.linear
    assert list(twin.profile.tokens_per_epoch) == list(tokens)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--plan-model", "guess"], "--plan-model must be 'profiled' or 'paper'"),
        (["--field"], "--work-model writes a dense instance"),
        (["--system", "secure-offsite"], "--work-model does not apply to secure-offsite instances"),
    ],
)
def test_bad_work_model_options_are_refused(tmp_path: Path, extra: list[str], message: str) -> None:
    code, output, _ = _generate(tmp_path, *extra)
    assert code == 2 and message in output


def test_a_file_that_is_not_a_cost_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "edge-llm"}))
    result = CliRunner().invoke(
        app, ["generate", "--work-model", str(bad), "-o", str(tmp_path / "i.json")]
    )
    assert result.exit_code == 2
    assert "must be a cost file written by `mecllm profile -o FILE`" in result.output
