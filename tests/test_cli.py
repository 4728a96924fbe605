"""The command line as a user runs it: generate -> solve -> evaluate, compare, demo."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.systems.finetune.algorithms import ALGORITHMS
from mecllm.systems.finetune.commands import DEMO_ALGORITHMS

from factories import hand_instance_dict, hand_solution_dict

runner = CliRunner()


def test_algorithms_lists_name_system_description() -> None:
    result = runner.invoke(app, ["algorithms"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    names = [line.split("\t")[0] for line in lines if line.split("\t")[1] == "edge-llm"]
    assert names == list(ALGORITHMS)
    assert {"rucaa", "gucaa", "aauco", "gucro", "dashf"} <= set(names)
    secure = [line.split("\t")[0] for line in lines if line.split("\t")[1] == "secure-offsite"]
    assert {"secure-ao", "secure-blind"} <= set(secure)
    assert all(len(line.split("\t")) == 3 and line.split("\t")[2] for line in lines)


def test_generate_solve_evaluate_pipeline(tmp_path: Path) -> None:
    inst = tmp_path / "i.json"
    sol = tmp_path / "s.json"
    r = runner.invoke(
        app,
        [
            "generate",
            "--users",
            "4",
            "--servers",
            "2",
            "--seed",
            "3",
            "--bandwidth-mhz",
            "20",
            "--weights",
            "0.1",
            "0.009",
            "-o",
            str(inst),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(inst.read_text())
    assert data["servers"]["bandwidth_hz"] == [20e6, 20e6]
    assert data["weights"] == {"delay": 0.1, "energy": 0.009}
    r = runner.invoke(app, ["solve", str(inst), "--algorithm", "gucaa", "-o", str(sol)])
    assert r.exit_code == 0, r.output
    solution = json.loads(sol.read_text())
    for key in (
        "algorithm",
        "assignment",
        "phi",
        "bandwidth_hz",
        "user_power_w",
        "server_power_w",
        "user_flops",
        "server_flops",
        "scr",
        "delay_s",
        "energy_j",
        "service",
        "status",
        "iterations",
        "history",
        "wall_time_s",
    ):
        assert key in solution
    r = runner.invoke(app, ["evaluate", str(inst), str(sol), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["feasible"] is True
    assert abs(report["scr"] - solution["scr"]) <= 1e-9 * solution["scr"]
    assert report["reported_mismatch"] == []


def test_evaluate_reports_infeasible_plan_with_status_1(tmp_path: Path) -> None:
    inst, sol = tmp_path / "i.json", tmp_path / "s.json"
    inst.write_text(json.dumps(hand_instance_dict()))
    bad = hand_solution_dict()
    bad["bandwidth_hz"] = [3e6, 2e6]  # 5 MHz on a 4 MHz server
    sol.write_text(json.dumps(bad))
    r = runner.invoke(app, ["evaluate", str(inst), str(sol)])
    assert r.exit_code == 1
    assert "server_bandwidth_hz_total[0]" in r.stdout
    assert "feasible" in r.stdout


def test_evaluate_rejects_a_solution_of_the_wrong_size(tmp_path: Path) -> None:
    inst, sol = tmp_path / "i.json", tmp_path / "s.json"
    inst.write_text(json.dumps(hand_instance_dict()))
    bad = hand_solution_dict()
    bad["assignment"] = [0, 3]
    sol.write_text(json.dumps(bad))
    r = runner.invoke(app, ["evaluate", str(inst), str(sol)])
    assert r.exit_code == 2
    assert "assignment[1] must be in 0..0" in r.stderr


def test_unknown_algorithm_is_invalid_input(tmp_path: Path) -> None:
    inst = tmp_path / "i.json"
    inst.write_text(json.dumps(hand_instance_dict()))
    r = runner.invoke(app, ["solve", str(inst), "-a", "nope", "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 2
    assert "algorithm must be one of" in r.stderr


def test_compare_prints_every_algorithm(tmp_path: Path) -> None:
    inst = tmp_path / "i.json"
    runner.invoke(app, ["generate", "--users", "4", "--servers", "2", "-o", str(inst)])
    png = tmp_path / "c.png"
    r = runner.invoke(
        app, ["compare", str(inst), "--algorithms", "rucaa,gucaa,gucro", "--plot", str(png)]
    )
    assert r.exit_code == 0, r.output
    for name in ("rucaa", "gucaa", "gucro"):
        assert name in r.stdout
    assert png.stat().st_size > 10_000


def test_demo_prints_table_and_writes_png(tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for name in DEMO_ALGORITHMS:
        assert name in r.stdout
    assert {"rucaa", "gucaa", "aauco", "gucro", "dashf"} <= set(DEMO_ALGORITHMS)
    assert "SCR" in r.stdout
    png = tmp_path / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "solution-dashf.json").exists()
