"""Every channel predictor on one preset over several seeds: NMSE per step, SE and beams with
95% intervals (Student t over seeds), and costs. Usage::

    python benchmarks/air_predictors.py [--preset small] [--seeds 0,1,2]
        [--algorithms air-outdated,air-ls-ar,...] [--time-limit 600] [--set epochs=30]

Data sets and trained weights go to $MECLLM_AIR_DATA (default ~/.cache/mecllm/air).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from scipy import stats

from mecllm.core.options import SolveOptions
from mecllm.systems.air.algorithms import solve_air
from mecllm.systems.air.evaluation import evaluate_air
from mecllm.systems.air.instance import AirInstance
from mecllm.systems.air.settings import air_preset

from machine import calibration_line

DEFAULT = (
    "air-outdated,air-ls-ar,air-wiener,air-ar-kalman,air-pad,"
    "air-gru,air-lstm,air-transformer,air-lm-random,air-lm"
)


def interval(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return f"{v.mean():.2f}"
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.2f} ± {half:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--algorithms", default=DEFAULT)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--set", action="append", default=[], help="setting=value")
    parser.add_argument("--json", help="also write every row here")
    args = parser.parse_args()
    print(calibration_line(), flush=True)
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    settings = air_preset(args.preset, **overrides)
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        instance = AirInstance(settings=settings, seed=seed, preset=args.preset)
        for name in args.algorithms.split(","):
            result = solve_air(
                instance, name, SolveOptions(seed=seed, time_limit_s=args.time_limit)
            )
            report = evaluate_air(instance, result.plan)
            row = {**report.to_dict(), "cost": result.cost.to_dict(), "seed": seed}
            rows.setdefault(name, []).append(row)
            print(
                f"seed {seed} {name}: NMSE {[round(v, 2) for v in report.nmse_db]}, "
                f"fit {result.cost.fit_s:.1f} s, epochs {result.cost.epochs}",
                flush=True,
            )
    s = settings
    print(
        f"\n{args.preset}: {s.generator} CDL-{s.cdl_model}, "
        f"{s.speed_min_kmh:g}-{s.speed_max_kmh:g} km/h, "
        f"{s.train_drops}/{s.val_drops}/{s.test_drops} drops, {s.antennas} antennas x "
        f"{s.subcarriers} subcarriers, {s.mode}, seeds {args.seeds}; 95% intervals over seeds\n"
    )
    steps = len(next(iter(rows.values()))[0]["nmse_db"])
    head = [f"NMSE {j + 1}" for j in range(steps)] + [
        "NMSE mean", "MRT SE 10 dB", "ZF sum SE 10 dB", "WMMSE sum SE 10 dB", "top-1",
        "fit (s)", "epochs", "trained params", "ms/drop b1", "ms/drop b256",
    ]  # fmt: skip
    print("| predictor | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    for name, rs in rows.items():
        cells = [interval([r["nmse_db"][j] for r in rs]) for j in range(steps)]
        cells += [
            interval([r["nmse_db_mean"] for r in rs]),
            interval([r["se_mrt"] for r in rs]),
            interval([r["se_sum"]["zf"]["10"] for r in rs]),
            interval([r["se_sum"]["wmmse"]["10"] for r in rs]),
            interval([r["beam_top1"] for r in rs]),
            f"{np.mean([r['cost']['fit_s'] for r in rs]):.1f}",
            f"{np.mean([r['cost']['epochs'] for r in rs]):.0f}",
            f"{rs[0]['cost']['trained_parameters']}",
            f"{np.mean([r['cost']['ms_per_drop_batch1'] for r in rs]):.3g}",
            f"{np.mean([r['cost']['ms_per_drop_batch256'] for r in rs]):.3g}",
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    first = next(iter(rows.values()))
    print(
        f"\nbounds: MRT SE perfect {interval([r['se_mrt_perfect'] for r in first])}; ZF sum SE "
        f"10 dB outdated {interval([r['se_sum_outdated']['zf']['10'] for r in first])}, perfect "
        f"{interval([r['se_sum_perfect']['zf']['10'] for r in first])}; WMMSE 10 dB perfect "
        f"{interval([r['se_sum_perfect']['wmmse']['10'] for r in first])}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)


if __name__ == "__main__":
    main()
