"""A newcomer's bad inputs, by category: each is refused before any work with exit status 2 (1
for an infeasible plan) and exactly one line on stderr, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mecllm.cli import app

from factories import hand_instance_dict, hand_solution_dict

runner = CliRunner()


def one_line_error(result: Result, status: int = 2) -> str:
    """The single stderr line of a refused command."""
    assert result.exit_code == status, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(hand_instance_dict()))
    solution = tmp_path / "solution.json"
    solution.write_text(json.dumps(hand_solution_dict()))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return {"instance": instance, "solution": solution, "file": a_file, "dir": tmp_path}


# ----------------------------------------------------------------------------- output paths
@pytest.mark.parametrize("where", ["folder", "under a file", "refusing mount"])
@pytest.mark.parametrize("command", ["solve", "generate", "compare", "demo", "sweep", "train"])
def test_unwritable_outputs_are_refused_before_any_work(
    files: dict[str, Path], command: str, where: str
) -> None:
    target = {
        "folder": files["dir"],
        "under a file": files["file"] / "out",
        "refusing mount": Path("/proc/mecllm-out"),
    }[where]
    instance, solution = str(files["instance"]), str(files["solution"])
    args = {
        "solve": ["solve", instance, "-a", "gucaa", "-o", str(target)],
        "generate": ["generate", "-o", str(target)],
        "compare": ["compare", instance, "--algorithms", "gucaa", "--plot", str(target)],
        "demo": ["demo", "--out", str(target / "demo") if where == "folder" else str(target)],
        "sweep": ["sweep", "examples/sweep-area.toml", "--out", str(target)],
        "train": ["train", instance, solution, "--json", str(target)],
    }[command]
    if command in ("demo", "sweep") and where == "folder":
        target = files["file"]  # a folder is a fine output folder; a file is not
        args[-1] = str(target)
    line = one_line_error(runner.invoke(app, args))
    assert line.startswith("error: --")
    assert not list(files["dir"].glob("**/results.sqlite"))


# ----------------------------------------------------------------------------- sweep files
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('trials = "five"', "sweep.trials must be a whole number"),
        ("trials = 0", "sweep.trials must be >= 1"),
        ("[base]\nn_users = true", "n_users must be a number"),
        ("[base]\nn_users = 2.5", "n_users must be a whole number"),
        ("[base]\nn_users = 0", "n_users must be >= 1"),
        ('metrics = ["scr", "colour"]', "'colour' is not a metric"),
        ('algorithms = ["gucaa", "bogus"]', "got 'bogus'"),
        ('preset = "bogus"', "preset must be one of"),
        ('system = "bogus"', "kind must be one of"),
    ],
)
def test_bad_sweep_definitions_are_refused_before_any_trial(
    tmp_path: Path, body: str, message: str
) -> None:
    text = 'name = "s"\n' + body + "\n"
    sweep = "[sweep]\narea_m = [500, 1000]\n"
    file = tmp_path / "s.toml"
    file.write_text(text + sweep if "[base]" not in body else 'name = "s"\n' + sweep + body)
    out = tmp_path / "out"
    line = one_line_error(runner.invoke(app, ["sweep", str(file), "--out", str(out)]))
    assert message in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [("[inf]", "must be finite"), ("[0]", "area_m must be > 0"), ("[1e300]", "not a physical")],
)
def test_bad_swept_values_are_refused(tmp_path: Path, values: str, message: str) -> None:
    file = tmp_path / "s.toml"
    file.write_text(f'name = "s"\n[sweep]\narea_m = {values}\n')
    line = one_line_error(runner.invoke(app, ["sweep", str(file), "--out", str(tmp_path / "o")]))
    assert message in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1"),
        (["--backend", "spark"], "--backend must be local or dask"),
        (["--backend", "dask", "--scheduler", "nonsense"], "--scheduler must look like"),
        (["--scheduler", "tcp://h:1"], "--scheduler needs --backend dask"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_bad_run_options_are_refused_before_any_trial(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    args = ["reproduce", "baselines", "--out", str(out), *extra]
    assert message in one_line_error(runner.invoke(app, args))
    assert not out.exists()


def test_a_sweep_too_large_for_memory_is_refused_before_any_file(tmp_path: Path) -> None:
    file = tmp_path / "big.toml"
    file.write_text('name = "big"\ntrials = 1\n[base]\nn_servers = 100\n')
    file.write_text(file.read_text() + "[sweep]\nn_users = [10, 10000000]\n")
    out = tmp_path / "out"
    line = one_line_error(runner.invoke(app, ["sweep", str(file), "--out", str(out)]))
    assert "of memory" in line and "make it smaller" in line
    assert not out.exists()


def test_a_plot_is_written_only_under_a_png_name(tmp_path: Path) -> None:
    instance = tmp_path / "i.json"
    assert runner.invoke(app, ["generate", "--users", "3", "-o", str(instance)]).exit_code == 0
    plot = tmp_path / "out.xyz"
    args = ["compare", str(instance), "--algorithms", "gucaa", "--plot", str(plot)]
    assert "--plot writes a PNG" in one_line_error(runner.invoke(app, args))
    assert not plot.exists()


def test_a_folder_as_sweep_file_is_refused(tmp_path: Path) -> None:
    line = one_line_error(runner.invoke(app, ["sweep", str(tmp_path)]))
    assert "is a folder" in line


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("command", ["generate", "solve", "compare", "demo", "reproduce", "train"])
def test_negative_seeds_are_refused(files: dict[str, Path], command: str) -> None:
    instance, solution = str(files["instance"]), str(files["solution"])
    out = str(files["dir"] / "x")
    args = {
        "generate": ["generate", "-o", out],
        "solve": ["solve", instance, "-a", "gucaa", "-o", out],
        "compare": ["compare", instance],
        "demo": ["demo", "--out", out],
        "reproduce": ["reproduce", "baselines", "--out", out],
        "train": ["train", instance, solution],
    }[command]
    assert "--seed must be >= 0" in one_line_error(runner.invoke(app, [*args, "--seed", "-1"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-limit", "-1"], "--time-limit must be a positive number"),
        (["--time-limit", "nan"], "--time-limit must be a positive number"),
        (["--algorithm", "bogus"], "got 'bogus'"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_solve_options(files: dict[str, Path], args: list[str], message: str) -> None:
    base = ["solve", str(files["instance"]), "-o", str(files["dir"] / "s.json")]
    if "--algorithm" not in args:
        base += ["-a", "gucaa"]
    assert message in one_line_error(runner.invoke(app, [*base, *args]))
    assert not (files["dir"] / "s.json").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("n_users=2.5", "n_users must be a whole number"),
        ("colour=blue", "scenario setting 'colour' does not exist"),
        ("area_m=blue", "area_m must be a number"),
        ("adapter_params_min=2e7", "must not exceed adapter_params_max"),
        ("area_m=1e300", "not a physical value"),
        ("count_idle=3", "count_idle must be true or false"),
        ("n_users", "--set must look like KEY=VALUE"),
    ],
)
def test_bad_scenario_settings(tmp_path: Path, setting: str, message: str) -> None:
    out = tmp_path / "i.json"
    line = one_line_error(runner.invoke(app, ["generate", "--set", setting, "-o", str(out)]))
    assert message in line
    assert not out.exists()


def test_an_empty_algorithm_list_and_an_unknown_name_are_refused_before_solving(
    files: dict[str, Path],
) -> None:
    instance = str(files["instance"])
    line = one_line_error(runner.invoke(app, ["compare", instance, "--algorithms", ""]))
    assert "--algorithms must name at least one" in line
    result = runner.invoke(app, ["compare", instance, "--algorithms", "gucaa,bogus"])
    assert "got 'bogus'" in one_line_error(result)
    assert "solving with" not in result.stderr  # nothing ran before the name was checked
    demo = files["dir"] / "demo"
    result = runner.invoke(app, ["demo", "--algorithms", "bogus", "--out", str(demo)])
    assert "got 'bogus'" in one_line_error(result)
    assert not (demo / "instance.json").exists()


def test_train_refuses_an_infeasible_plan_with_status_1(files: dict[str, Path]) -> None:
    plan = hand_solution_dict()
    plan["user_power_w"][0] = -1.0
    plan["bandwidth_hz"][1] *= 10
    bad = files["dir"] / "bad.json"
    bad.write_text(json.dumps(plan))
    result = runner.invoke(app, ["train", str(files["instance"]), str(bad)])
    line = one_line_error(result, status=1)
    assert "infeasible" in line and "nothing was started" in line


# ----------------------------------------------------------------------------- sizes
def test_a_size_that_cannot_fit_is_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "huge.json"
    result = runner.invoke(
        app, ["generate", "--users", "10000000", "--servers", "1000", "-o", str(out)]
    )
    assert "GB of memory" in one_line_error(result)
    assert not out.exists()


# ----------------------------------------------------------------------------- polish
def test_help_is_readable_and_the_version_is_printed() -> None:
    for args in (["--help"], ["train", "--help"], ["generate", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        assert "needs )" not in result.stdout
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("mecllm ")


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "i.json"
        assert runner.invoke(app, ["generate", "--users", "2", "-o", str(out)]).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
