"""Record every registered algorithm's figures on a fixed set of small instances.

Run once before a refactor (``python tests/regression/record.py``); ``test_regression.py``
then checks that the same algorithms reproduce them. The instances are drawn from the presets
with fixed seeds, so the file holds numbers only, never instances.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.algorithms import ALGORITHMS, solve
from mecllm.systems.finetune.scenario import generate, preset
from mecllm.systems.secure.algorithms import SECURE_ALGORITHMS, solve_secure
from mecllm.systems.secure.scenario import generate_secure, secure_preset

HERE = Path(__file__).parent

#: (label, preset, seed, overrides) of the fine-tuning instances.
FINETUNE_CASES: list[tuple[str, str, int, dict[str, Any]]] = [
    ("paper-4x2-s11", "paper", 11, {"n_users": 4, "n_servers": 2}),
    ("literal-5x2-s12", "paper-literal", 12, {"n_users": 5, "n_servers": 2}),
    ("noidle-4x3-s13", "paper", 13, {"n_users": 4, "n_servers": 3, "count_idle": False}),
]
#: (label, preset, seed, overrides) of the secure instances.
SECURE_CASES: list[tuple[str, str, int, dict[str, Any]]] = [
    ("default-4-s21", "default", 21, {"n_users": 4}),
    ("balanced-5-s22", "balanced", 22, {"n_users": 5}),
]


def main() -> None:
    """Record every algorithm, or only those named on the command line (the others' recorded
    figures are kept)."""
    only = set(sys.argv[1:])
    file = HERE / "baseline.json"
    out: dict[str, Any] = (
        json.loads(file.read_text())
        if only and file.exists()
        else {"edge-llm": {}, "secure-offsite": {}}
    )
    for label, name, seed, overrides in FINETUNE_CASES:
        instance = generate(preset(name, **overrides), np.random.default_rng(seed))
        for algorithm in ALGORITHMS:
            if only and algorithm not in only:
                continue
            r = solve(instance, algorithm, SolveOptions(seed=seed))
            out["edge-llm"][f"{label}/{algorithm}"] = {
                "scr": r.scr,
                "delay_s": r.delay_s,
                "energy_j": r.energy_j,
            }
            print(label, algorithm, r.scr, f"{r.wall_time_s:.1f}s", flush=True)
    for label, name, seed, overrides in SECURE_CASES:
        instance = generate_secure(secure_preset(name, **overrides), np.random.default_rng(seed))
        for algorithm in SECURE_ALGORITHMS:
            if only and algorithm not in only:
                continue
            s = solve_secure(instance, algorithm, SolveOptions(seed=seed))
            out["secure-offsite"][f"{label}/{algorithm}"] = {
                "us_ratio": s.ratio,
                "delay_s": s.delay_s,
                "energy_j": s.energy_j,
                **({} if s.believed_ratio is None else {"believed_us_ratio": s.believed_ratio}),
            }
            print(label, algorithm, s.ratio, f"{s.wall_time_s:.1f}s", flush=True)
    file.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
