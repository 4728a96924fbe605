"""The sweep engine: an end-to-end reproduce run, resume after SIGKILL, local vs Dask."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.core.errors import InvalidInputError
from mecllm.experiments.definitions import load_sweep
from mecllm.experiments.store import ResultsStore
from processes import alive, children

runner = CliRunner()

SWEEP = """
name = "area"
algorithms = ["rucaa", "gucaa", "gucro"]
metrics = ["scr", "delay_s"]
[base]
n_users = 5
n_servers = 2
[sweep]
area_m = [300, 1000]
"""


def _trial_rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / f"{name}-trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.pop("wall_time_s")
    return sorted(rows, key=lambda r: (r["setting"], int(r["seed"]), r["algorithm"]))


def test_reproduce_baselines_end_to_end(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["reproduce", "baselines", "--trials", "2", "--workers", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    for name in ("baselines.csv", "baselines-trials.csv", "baselines.png", "REPORT.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "REPORT.md").read_text()
    assert "SCR order DASHF > AAUCO > GUCRO" in report
    # Two trials are too few for a verdict: the numbers are shown, PASS/FAIL is not.
    assert "no verdict (2 trials; 5 needed)" in report
    assert "| PASS |" not in report and "| FAIL |" not in report
    assert len(_trial_rows(tmp_path, "baselines")) == 2 * 5
    again = runner.invoke(
        app, ["reproduce", "baselines", "--trials", "2", "--workers", "1", "--out", str(tmp_path)]
    )
    assert again.exit_code == 0
    assert "10 already finished (skipped), 0 to run" in again.stderr


def test_sweep_file_errors_are_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SWEEP.replace("area_m", "area_km"))
    with pytest.raises(InvalidInputError, match="area_km"):
        load_sweep(bad)
    bad.write_text(SWEEP.replace('"gucro"', '"nope"'))
    result = runner.invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "algorithm must be one of" in result.stderr


@pytest.mark.processes
def test_resume_after_sigkill_recomputes_nothing(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "mecllm.cli",
        "sweep",
        str(sweep),
        "--trials",
        "8",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    database = out / "results.sqlite"
    deadline = time.time() + 120
    finished = 0
    while time.time() < deadline and process.poll() is None:
        if database.exists():
            try:
                with sqlite3.connect(database) as db:
                    finished = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            except sqlite3.OperationalError:  # created but the table is not there yet
                finished = 0
            if finished >= 6:
                break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    store = ResultsStore(out)
    with sqlite3.connect(database) as db:
        keys = [
            tuple(r)
            for r in db.execute(
                "SELECT experiment, setting, seed, algorithm, preset, code_version FROM trials"
            )
        ]
    before = store.finished_times(keys)  # type: ignore[arg-type]
    store.close()
    total = 2 * 8 * 3
    assert 6 <= len(before) < total
    result = runner.invoke(
        app, ["sweep", str(sweep), "--trials", "8", "--workers", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{len(before)} already finished (skipped), {total - len(before)} to run" in result.stderr
    )
    store = ResultsStore(out)
    after = store.finished_times(keys)  # type: ignore[arg-type]
    store.close()
    assert after == before  # nothing finished was recomputed
    clean = tmp_path / "clean"
    runner.invoke(
        app, ["sweep", str(sweep), "--trials", "8", "--workers", "1", "--out", str(clean)]
    )
    assert _trial_rows(out, "area") == _trial_rows(clean, "area")

    def means(folder: Path) -> list[str]:
        lines = (folder / "area.csv").read_text().splitlines()
        return [line for line in lines if ",wall_time_s," not in line]

    assert means(out) == means(clean)


@pytest.mark.processes
def test_dask_local_cluster_gives_the_same_rows_as_local(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    for backend in ("local", "dask"):
        result = runner.invoke(
            app,
            [
                "sweep",
                str(sweep),
                "--trials",
                "3",
                "--workers",
                "2",
                "--backend",
                backend,
                "--out",
                str(tmp_path / backend),
            ],
        )
        assert result.exit_code == 0, result.output
    assert _trial_rows(tmp_path / "local", "area") == _trial_rows(tmp_path / "dask", "area")


@pytest.mark.processes
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_sweep_leaves_no_worker_behind(tmp_path: Path, how: signal.Signals) -> None:
    sweep = tmp_path / "sweep.toml"
    # Trials long enough (DASHF at 20x3) that the workers are busy when the signal comes.
    sweep.write_text(
        'name = "slow"\nalgorithms = ["dashf"]\n[base]\nn_users = 20\nn_servers = 3\n'
        "[sweep]\narea_m = [500, 1000, 2000]\n"
    )
    command = [sys.executable, "-m", "mecllm.cli", "sweep", str(sweep), "--trials", "20"]
    command += ["--workers", "2", "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2 and process.poll() is None:
        workers = children(process.pid)
        time.sleep(0.1)
    assert len(workers) >= 2, "the workers never started"
    time.sleep(1.0)
    os.kill(process.pid, how)
    # It stops at once: its workers must not survive (or delay) the pool's terminate().
    process.wait(timeout=5)
    if how == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM
        assert process.stderr is not None and "terminated" in process.stderr.read().decode()
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "a worker outlived the sweep"
