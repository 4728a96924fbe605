"""Predictors and scores on the tiny preset (NumPy CDL-C, 10-100 km/h): the anchors' facts
that must hold, the scores' own invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecllm.core.options import SolveOptions
from mecllm.systems.air import scoring
from mecllm.systems.air.algorithms import solve_air
from mecllm.systems.air.dataset import AirData
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.predictors import CLASSIC, stabilise


@pytest.fixture(scope="module")
def nmse(tiny_data: AirData) -> dict[str, np.ndarray]:
    history, noise = tiny_data.history("test")
    true = tiny_data.target("test")
    out = {}
    for name, cls in CLASSIC.items():
        predictor = cls(tiny_data.settings)
        predictor.fit(tiny_data)
        out[name] = scoring.nmse_db(true, predictor.predict(history, noise))
    return out


def test_outdated_lands_in_the_independently_measured_range(nmse: dict[str, np.ndarray]) -> None:
    # MODEL_AIR.md: repeating the last slot at 0.5 ms, CDL-C, 10-100 km/h: -11 to -15 dB.
    assert -15.5 < nmse["outdated"][0] < -11.0
    assert np.all(np.diff(nmse["outdated"]) > 0)  # it only gets worse with the horizon


def test_least_squares_ar_beats_outdated_at_every_step(nmse: dict[str, np.ndarray]) -> None:
    assert np.all(nmse["ls-ar"] < nmse["outdated"])


def test_every_fitted_predictor_beats_outdated_on_the_mean(nmse: dict[str, np.ndarray]) -> None:
    mean = {k: float(np.mean(v)) for k, v in nmse.items()}
    for name in ("ls-ar", "wiener", "pad", "ar-kalman"):
        assert mean[name] < mean["outdated"], (name, mean)


@given(st.lists(st.complex_numbers(max_magnitude=3, allow_nan=False), min_size=2, max_size=8))
@settings(max_examples=50, deadline=None)
def test_stabilised_filters_have_no_pole_outside_the_unit_circle(coef: list[complex]) -> None:
    c = stabilise(np.array([coef], dtype=np.complex128))
    p = len(coef)
    companion = np.zeros((p, p), dtype=np.complex128)
    companion[0] = c[0]
    companion[np.arange(1, p), np.arange(p - 1)] = 1
    assert np.max(np.abs(np.linalg.eigvals(companion))) <= 1 + 1e-6


def test_perfect_csi_bounds_the_spectral_efficiency(tiny_data: AirData) -> None:
    true = tiny_data.target("test")
    history, _ = tiny_data.history("test")
    outdated = np.repeat(history[:, -1:], true.shape[1], axis=1)
    assert scoring.se_mrt(true, true) >= scoring.se_mrt(true, outdated)
    groups = scoring.user_groups(true.shape[0], 4, np.random.default_rng(0))
    for kind in scoring.PRECODERS:
        assert scoring.se_multiuser(true, true, groups, kind, 10) >= scoring.se_multiuser(
            true, outdated, groups, kind, 10
        )
    zf = scoring.se_multiuser(true, true, groups, "zf", 10)
    assert scoring.se_multiuser(true, true, groups, "wmmse", 10) >= zf - 1e-6
    assert scoring.nmse_db(true, true)[0] == pytest.approx(-300)
    top1, top3, loss = scoring.beam_scores(true, true, 4, 4)
    assert top1 == 1.0 and top3 == 1.0 and loss == 0.0


def test_precoders_use_the_power_budget(tiny_data: AirData) -> None:
    true = tiny_data.target("test")
    groups = scoring.user_groups(true.shape[0], 4, np.random.default_rng(0))
    h = np.transpose(true[groups], (0, 2, 4, 1, 3)).astype(np.complex128)[:, 0, :2]
    for kind in scoring.PRECODERS:
        w = scoring.precoders(h, kind, noise=0.1)
        power = np.sum(np.abs(w) ** 2, axis=(-2, -1))
        assert np.all(power <= 1 + 1e-6) and np.all(power > 0.5)


def test_a_network_trains_caches_and_reloads(tiny: AirInstance) -> None:
    from dataclasses import replace

    quick = replace(tiny, settings=replace(tiny.settings, epochs=2))
    first = solve_air(quick, "air-gru", SolveOptions(seed=3, time_limit_s=60))
    weights = list((Path(quick.folder) / "weights").glob("gru-drop-outdated-*-seed3.pt"))
    assert len(weights) == 1 and first.cost.epochs == 2
    again = solve_air(quick, "air-gru", SolveOptions(seed=3, time_limit_s=60))
    assert again.cost.fit_s == first.cost.fit_s  # loaded, not trained again
    assert np.array_equal(again.plan.predictions, first.plan.predictions)
    assert first.cost.trained_parameters == first.cost.parameters > 0
    # Another training share is another training: its own checkpoint, not this one.
    few = replace(quick, settings=replace(quick.settings, train_fraction=0.5))
    solve_air(few, "air-gru", SolveOptions(seed=3, time_limit_s=60))
    assert len(list((Path(quick.folder) / "weights").glob("gru-*-seed3.pt"))) == 2


def test_lm_freezes_the_backbone(tiny: AirInstance) -> None:
    from dataclasses import replace

    from mecllm.systems.air.networks import NetworkPredictor, TrainingPlan

    lm = NetworkPredictor("lm", tiny.settings, TrainingPlan(epochs=1))
    total, trained = lm.parameters()
    assert 0 < trained < total / 2
    frozen = [n for n, p in lm.net.named_parameters() if not p.requires_grad]
    assert any("query" in n for n in frozen) and any("ff_in" in n for n in frozen)
    del replace


@pytest.mark.parametrize("layout", ["drop", "antenna", "subcarrier"])
def test_tokens_round_trip(tiny_data: AirData, layout: str) -> None:
    from mecllm.systems.air.networks import from_tokens, to_tokens

    target = tiny_data.target("test")
    _, f, a, k = target.shape
    with_delay = to_tokens(target, layout, delay=True)
    assert (
        with_delay.shape[-1] == {"drop": 4 * a * k, "antenna": 4 * k, "subcarrier": 4 * a}[layout]
    )
    plain = to_tokens(target, layout).numpy()
    assert np.allclose(from_tokens(plain, layout, (f, a, k)), target, atol=1e-6)


def test_few_shot_uses_the_first_share_of_the_training_drops(tiny: AirInstance) -> None:
    from dataclasses import replace

    few = replace(tiny, settings=replace(tiny.settings, train_fraction=0.1))
    data = few.data()
    assert data.target("train").shape[0] == 16
    assert np.array_equal(data.target("train"), tiny.data().target("train")[:16])
    assert np.array_equal(data.target("test"), tiny.data().target("test"))


def test_zero_shot_draws_only_the_test_drops_from_the_other_profile(tmp_path: Path) -> None:
    from mecllm.systems.air.settings import air_preset

    base = air_preset("tiny", train_drops=4, val_drops=2, test_drops=4)
    other = air_preset("tiny", train_drops=4, val_drops=2, test_drops=4, test_cdl_model="A")
    a = AirInstance(settings=base, seed=1, data_dir=str(tmp_path / "a")).data()
    b = AirInstance(settings=other, seed=1, data_dir=str(tmp_path / "b")).data()
    assert np.array_equal(a.target("train"), b.target("train"))
    assert not np.allclose(a.target("test"), b.target("test"))


def test_lora_starts_as_the_frozen_model_and_trains_only_its_update(tiny: AirInstance) -> None:
    from dataclasses import replace

    import torch

    from mecllm.systems.air.networks import LoRALinear, NetworkPredictor, TrainingPlan

    plain = NetworkPredictor("lm", tiny.settings, TrainingPlan(epochs=1, seed=4))
    lora = NetworkPredictor("lm", replace(tiny.settings, lora_rank=4), TrainingPlan(seed=4))
    block = lora.net.body.lm.blocks[0]
    assert isinstance(block.query, LoRALinear) and not block.query.base.weight.requires_grad
    assert block.query.up.weight.requires_grad
    x = torch.randn(3, tiny.settings.history, plain.net.inputs)
    base = torch.zeros(3, tiny.settings.horizon, plain.net.outputs)
    assert torch.allclose(plain.net(x, base), lora.net(x, base), atol=1e-5)
    assert lora.parameters()[1] > plain.parameters()[1]


def test_an_interrupted_training_resumes_from_its_checkpoint(tiny: AirInstance) -> None:
    import torch

    from mecllm.systems.air.networks import NetworkPredictor, TrainingPlan

    folder = Path(tiny.folder) / "resume"
    first = NetworkPredictor("gru", tiny.settings, TrainingPlan(epochs=1, seed=9))
    first.fit(tiny.data(), folder)
    path = first.checkpoint_path(folder)
    saved = torch.load(path, weights_only=True)
    saved["finished"] = False  # as if the process had been killed after its first epoch
    torch.save(saved, path)
    again = NetworkPredictor("gru", tiny.settings, TrainingPlan(epochs=2, seed=9))
    again.fit(tiny.data(), folder)
    assert again.epochs == 2  # one more epoch, not two from scratch
    assert torch.load(path, weights_only=True)["finished"]
