"""The runner of the solve by regions (``mecllm solve-regions``): the regions in parallel on a
process pool or Dask, every finished region saved, a killed run keeping them and a re-run
skipping them, bad input refused before any work."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.field import Field
from mecllm.systems.finetune.physics import evaluate
from mecllm.systems.finetune.run.regions import solve_by_regions
from mecllm.systems.finetune.scenario import preset
from processes import alive, children

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

runner = CliRunner()


def _field(n: int, m: int, seed: int = 0, **settings: float) -> Field:
    return Field(preset("paper", n_users=n, n_servers=m, **settings), seed)


def test_the_stitched_plan_is_a_feasible_plan_of_the_whole_scenario(tmp_path: Path) -> None:
    fld = _field(120, 6)
    run = solve_by_regions(fld, tmp_path / "out", servers_per_region=2, backend="local", workers=1)
    assert len(run.results) == 3 and all(r.status == "solved" for r in run.results)
    dense = evaluate(fld.instance(), run.stitched.plan)
    assert dense.feasible and run.stitched.feasible
    assert dense.scr == pytest.approx(run.stitched.scr, rel=1e-9)
    assert dense.delay_s == pytest.approx(run.stitched.delay_s, rel=1e-12)
    # every user on a server of its own region
    for r in run.results:
        assert set(run.stitched.plan.assignment[r.users]) <= set(r.servers)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scr"] == pytest.approx(run.stitched.scr) and summary["feasible"]
    with np.load(tmp_path / "out" / "plan.npz") as plan:
        assert np.array_equal(plan["assignment"], run.stitched.plan.assignment)


def test_a_rerun_keeps_finished_regions_and_solves_only_the_missing(tmp_path: Path) -> None:
    fld = _field(90, 6)
    out = tmp_path / "out"
    first = solve_by_regions(fld, out, servers_per_region=2, backend="local", reprice=False)
    (out / "regions" / "region-1.npz").unlink()  # as if the run was killed before region 1
    again = solve_by_regions(fld, out, servers_per_region=2, backend="local", reprice=False)
    assert again.reused == 2
    assert again.stitched.scr == pytest.approx(first.stitched.scr, rel=1e-9)
    with pytest.raises(InvalidInputError, match="another run"):
        solve_by_regions(fld, out, servers_per_region=3, backend="local", workers=1)


def test_slow_regions_are_solved_again_at_a_higher_price_and_kept_only_if_better(
    tmp_path: Path,
) -> None:
    fld = _field(240, 12, seed=2)
    plain = solve_by_regions(fld, tmp_path / "a", servers_per_region=2, reprice=False)
    priced = solve_by_regions(fld, tmp_path / "b", servers_per_region=2, workers=2)
    delays = [r.delay_s for r in plain.results]
    slow = {r.region for r in plain.results if r.delay_s > 1.03 * float(np.median(delays))}
    assert slow, "this field has regions slower than the median (else the test shows nothing)"
    files = {p.name for p in (tmp_path / "b" / "regions").iterdir()}
    assert {f"region-{r}-round1.npz" for r in slow} <= files
    for r in slow:  # re-solves start from the first plan and run two AO iterations
        message = json.loads((tmp_path / "b" / "regions" / f"region-{r}-round1.json").read_text())
        assert re.search(r"after [12] iterations", message["message"]), message
    assert priced.stitched.scr >= plain.stitched.scr
    for r in priced.results:
        if r.round == 1:
            first = next(p for p in plain.results if p.region == r.region)
            assert r.weight_delay > first.weight_delay
    assert evaluate(fld.instance(), priced.stitched.plan).scr == pytest.approx(
        priced.stitched.scr, rel=1e-9
    )


def test_the_dask_backend_gives_the_local_backends_plan(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    fld = _field(80, 4)
    local = solve_by_regions(fld, tmp_path / "a", servers_per_region=2, backend="local")
    dask = solve_by_regions(fld, tmp_path / "b", servers_per_region=2, backend="dask", workers=2)
    assert np.array_equal(local.stitched.plan.assignment, dask.stitched.plan.assignment)
    assert dask.stitched.scr == pytest.approx(local.stitched.scr, rel=1e-9)
    assert dask.peak_memory_bytes > 0


def test_the_command_line_generates_a_field_and_solves_it_by_regions(tmp_path: Path) -> None:
    fld = tmp_path / "f.json"
    r = runner.invoke(
        app, ["generate", "--field", "--users", "60", "--servers", "4", "-o", str(fld)]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        [
            *("solve-regions", str(fld), "--out", str(out), "--servers-per-region", "2"),
            *("--backend", "local", "--workers", "1"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "stitched plan: feasible" in r.stdout
    assert json.loads((out / "summary.json").read_text())["n_users"] == 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--servers-per-region", "0"], "servers per region must be >= 1"),
        (["--backend", "spark"], "backend"),
        (["--workers", "0"], "workers"),
        (["-a", "nope"], "nope"),
        (["--delay-start", "0.5"], "--delay-start must be a number >= 1"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    tmp_path: Path, args: list[str], message: str
) -> None:
    fld = tmp_path / "f.json"
    _field(40, 4).save(fld)
    r = runner.invoke(app, ["solve-regions", str(fld), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code != 0
    assert message in r.output
    assert not (tmp_path / "o" / "regions").exists() or not list(
        (tmp_path / "o" / "regions").iterdir()
    )


def test_a_dense_instance_or_another_system_is_refused(tmp_path: Path) -> None:
    dense = tmp_path / "i.json"
    assert runner.invoke(app, ["generate", "--users", "4", "-o", str(dense)]).exit_code == 0
    r = runner.invoke(app, ["solve-regions", str(dense), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "not a field file" in r.output
    r = runner.invoke(
        app, ["generate", "--system", "edge-inference", "--field", "-o", str(tmp_path / "x.json")]
    )
    assert r.exit_code == 2 and "--field does not apply to edge-inference instances" in r.output


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.parametrize(
    ("backend", "how"),
    [("local", signal.SIGTERM), ("dask", signal.SIGTERM), ("dask", signal.SIGKILL)],
)
def test_a_stopped_run_leaves_no_worker_and_keeps_finished_regions(
    tmp_path: Path, backend: str, how: signal.Signals
) -> None:
    if backend == "dask":
        pytest.importorskip("dask.distributed")
    fld = tmp_path / "f.json"
    _field(2400, 24).save(fld)  # 12 regions of 200 users: a few seconds each
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mecllm.cli", "solve-regions", str(fld), "--out", str(out)]
    command += ["--servers-per-region", "2", "--backend", backend, "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and process.poll() is None:
        if len(list((out / "regions").glob("region-*.npz"))) >= 2:
            break
        time.sleep(0.2)
    workers = _descendants(process.pid)
    assert workers, "the workers never started"
    process.send_signal(how)
    process.wait(timeout=30)
    assert process.returncode == (128 + signal.SIGTERM if how == signal.SIGTERM else -how)
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)], "a worker outlived solve-regions"
    kept = list((out / "regions").glob("region-*.npz"))
    assert len(kept) >= 2 and not (out / "summary.json").exists()
    for path in kept:  # every kept region is whole (written atomically)
        with np.load(path) as data:
            assert data["users"].size == data["value_phi"].size


def test_relaxing_the_faster_regions_below_the_stitched_delay_never_lowers_the_scr(
    tmp_path: Path,
) -> None:
    fld = _field(240, 12, seed=2)
    plain = solve_by_regions(fld, tmp_path / "a", servers_per_region=2, backend="local")
    relaxed = solve_by_regions(
        fld, tmp_path / "b", servers_per_region=2, backend="local", relax=True
    )
    stitched_delay = max(r.delay_s for r in plain.results)
    faster = [r for r in plain.results if r.delay_s < 0.99 * stitched_delay]
    assert faster, "this field has regions faster than the stitched delay"
    files = {p.name for p in (tmp_path / "b" / "regions").iterdir()}
    assert {f"region-{r.region}-round2.npz" for r in faster} <= files
    assert relaxed.stitched.scr >= plain.stitched.scr
    # Measured on this field: the kept relaxations save energy without raising the delay.
    assert relaxed.stitched.scr > plain.stitched.scr * 1.001
    assert relaxed.stitched.delay_s <= plain.stitched.delay_s * (1 + 1e-9)
    dense = evaluate(fld.instance(), relaxed.stitched.plan)
    assert dense.feasible and dense.scr == pytest.approx(relaxed.stitched.scr, rel=1e-9)
    # A relaxed region keeps its association and phi, and stays at or below the floor.
    for r in relaxed.results:
        if r.round == 2:
            assert r.delay_s <= stitched_delay * (1 + 1e-6)
            before = next(p for p in plain.results if p.region == r.region)
            assert np.array_equal(r.assignment, before.assignment)


def test_regions_start_from_a_pricier_delay_and_a_changed_factor_is_another_run(
    tmp_path: Path,
) -> None:
    fld = _field(120, 6)
    out = tmp_path / "out"
    run = solve_by_regions(fld, out, servers_per_region=2, backend="local", reprice=False)
    assert all(r.message.startswith("from a start at x4 the delay weight") for r in run.results)
    assert evaluate(fld.instance(), run.stitched.plan).feasible
    cold = solve_by_regions(
        fld, tmp_path / "cold", servers_per_region=2, backend="local", reprice=False, delay_start=1
    )
    assert not any("from a start" in r.message for r in cold.results)
    # The start changes the plans: a folder of one factor is not resumed with another.
    with pytest.raises(InvalidInputError, match="--delay-start"):
        solve_by_regions(
            fld, out, servers_per_region=2, backend="local", reprice=False, delay_start=2
        )
