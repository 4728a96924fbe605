"""The channel predictor fine-tuned per user by ``mecllm train`` (docs/train.md, "The CSI
task"): profile the predictor on this machine, draw a profiled 4-user plan, solve it and run
it, then print each user's NMSE before and after and every phase planned and measured.
Usage::

    python benchmarks/train_csi.py --csi-data FOLDER --csi-model CHECKPOINT \
        [--users 4] [--servers 1] [--seed 0] [--algorithm dashf] [--out DIR]

Every step is the command a user runs (``mecllm profile``, ``generate``, ``solve``, ``train``);
the run's records are kept in ``DIR/run.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import calibration_line


def _mecllm(*args: str) -> None:
    command = [sys.executable, "-m", "mecllm.cli", *args]
    print("$ mecllm " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csi-data", required=True)
    parser.add_argument("--csi-model", required=True)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algorithm", default="dashf")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(calibration_line(), flush=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="train-csi-"))
    out.mkdir(parents=True, exist_ok=True)
    csi = ["--csi-data", args.csi_data, "--csi-model", args.csi_model]
    cost, instance, plan, run = (out / n for n in ("cost.json", "i.json", "s.json", "run.json"))
    _mecllm("profile", *csi, "-o", str(cost))
    _mecllm(
        "generate",
        "--users",
        str(args.users),
        "--servers",
        str(args.servers),
        "--seed",
        str(args.seed),
        "--work-model",
        str(cost),
        "-o",
        str(instance),
    )
    _mecllm("solve", str(instance), "-a", args.algorithm, "-o", str(plan))
    _mecllm("train", str(instance), str(plan), *csi, "--predict", "--json", str(run))
    records = json.loads(run.read_text())
    print("\n| user | phi | NMSE before (dB) | after (dB) | T1 run/plan | T2 | T3 | T4 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in records["users"]:
        if "error" in r:
            print(f"| {r['user']} | failed: {r['error']} |")
            continue
        ratios = []
        for phase in ("T1_s", "T2_s", "T3_s", "T4_s"):
            planned, measured = r["predicted"].get(phase), r["measured"].get(phase)
            ratios.append(
                f"{measured / planned:.2f} ({measured:.2f}/{planned:.2f} s)"
                if planned
                else f"- ({measured:.2f}/0 s)"
            )
        print(
            f"| {r['user']} | {r['phi_realised']:.3f} | {r['nmse_db_before']:.2f} | "
            f"{r['nmse_db_after']:.2f} | " + " | ".join(ratios) + " |"
        )
    span = records["makespan_s"]
    if span["measured"] is not None and span["predicted"]:
        print(
            f"\nmakespan: planned {span['predicted']:.2f} s, measured {span['measured']:.2f} s "
            f"(run/plan {span['measured'] / span['predicted']:.2f})"
        )
    print(f"files in {out}")


if __name__ == "__main__":
    main()
