"""The air experiments' claims, checked on rows whose answer is known."""

from __future__ import annotations

from mecllm.systems.air.experiments import EXPERIMENTS, GROUPS, check_claims


def _rows(means: dict[str, float], seeds: int = 2) -> list[dict[str, object]]:
    return [
        {"algorithm": a, "seed": s, "setting": setting, "nmse_mean_db": v}
        for s in range(seeds)
        for setting in ("full", "10%")
        for a, v in means.items()
    ]


def test_the_network_claims_follow_the_numbers() -> None:
    rows = _rows(
        {
            "air-lm": -5.0,
            "air-ls-ar": -6.0,
            "air-wiener": -9.0,
            "air-transformer": -4.0,
            "air-lm-random": -5.5,
        }
    )
    claims = check_claims(EXPERIMENTS["air-networks"], rows, [])
    verdicts = {c.text.split(" (")[0]: c.passed for c in claims}
    assert verdicts["lm beats a transformer trained from scratch"]
    assert not verdicts["lm beats the least-squares AR predictor"]
    assert not verdicts["lm beats itself with random frozen weights"]
    assert all(c.evidence.endswith("/2 seeds") for c in claims)
    assert len(claims) == 8


def test_reproduce_air_leaves_the_long_comparison_to_its_own_group() -> None:
    assert "air-networks" not in GROUPS["air"] and GROUPS["air-lm"] == ("air-networks",)
