"""The edge-air system through the command line, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from mecllm.cli import app

runner = CliRunner()


def test_generate_solve_evaluate_json(tmp_path: Path) -> None:
    inst, plan = tmp_path / "air.json", tmp_path / "plan.json"
    made = runner.invoke(
        app, ["generate", "--system", "edge-air", "--preset", "tiny", "-o", str(inst)]
    )
    assert made.exit_code == 0, made.output
    solved = runner.invoke(app, ["solve", str(inst), "-a", "air-ls-ar", "-o", str(plan)])
    assert solved.exit_code == 0, solved.output
    assert plan.with_suffix(".npy").exists()
    result = runner.invoke(app, ["evaluate", str(inst), str(plan), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("nmse_db", "nmse_db_mean", "se_mrt", "se_sum", "beam_top1"):
        assert key in report
    assert len(report["nmse_db"]) == 4
    assert set(report["se_sum"]) == {"mrt", "zf", "wmmse"}
    assert report["se_sum"]["zf"]["10"] <= report["se_sum_perfect"]["zf"]["10"]
    listed = runner.invoke(app, ["algorithms"])
    air = [line.split("\t")[0] for line in listed.stdout.splitlines() if "\tedge-air\t" in line]
    assert {"air-outdated", "air-ls-ar", "air-lm", "air-lm-random", "air-pad"} <= set(air)


def test_bad_input_is_refused_with_one_line(tmp_path: Path) -> None:
    inst, plan = tmp_path / "air.json", tmp_path / "plan.json"
    bad = runner.invoke(
        app,
        [
            "generate",
            "--system",
            "edge-air",
            "--preset",
            "tiny",
            "--set",
            "mode=xdd",
            "-o",
            str(inst),
        ],
    )
    assert bad.exit_code == 2 and "mode must be one of" in bad.output
    servers = runner.invoke(
        app, ["generate", "--system", "edge-air", "--servers", "3", "-o", str(inst)]
    )
    assert servers.exit_code == 2 and "--servers does not apply" in servers.output
    runner.invoke(app, ["generate", "--system", "edge-air", "--preset", "tiny", "-o", str(inst)])
    runner.invoke(app, ["solve", str(inst), "-a", "air-outdated", "-o", str(plan)])
    # A predictions file of the wrong shape (or edited after the solve) is refused.
    np.save(plan.with_suffix(".npy"), np.zeros((3, 4, 32, 16), dtype=np.complex64))
    edited = runner.invoke(app, ["evaluate", str(inst), str(plan)])
    assert edited.exit_code == 2 and "does not match the digest" in edited.output
    unknown = runner.invoke(app, ["solve", str(inst), "-a", "air-nope", "-o", str(plan)])
    assert unknown.exit_code == 2 and "algorithm must be one of" in unknown.output
