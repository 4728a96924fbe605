"""Plans of the edge-inference system served for real (`mecllm serve`), measured beside the
calibrated simulator's prediction: the acceptance runs of docs/serving.md section 5.

1. **fidelity**: the planner's plan of the ``small`` preset (3 nodes) at the preset's demand;
2. **planner vs exo**: both plans at a demand where the simulator says the planner's plan
   meets more deadlines;
3. **fail-over**: the R = 2 plan with one shard killed mid-run (SIGKILL), its requests'
   records.

Every run goes through the command a user types (``python -m mecllm.cli serve ... --json``),
calibrates in service (a warm-up stream), and writes its records. Results go to
``benchmarks/results/serving.md`` and ``serving.json``.

Usage::

    python benchmarks/serving.py [--requests 240] [--rate 2] [--busy-rate 6]
        [--busy-requests 200] [--seed 0] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import calibration_line as machine_line

FIGURES = (
    ("on_time_ratio", "on-time ratio", "{:.3f}"),
    ("p50_latency_s", "latency p50 (s)", "{:.3f}"),
    ("p95_latency_s", "latency p95 (s)", "{:.3f}"),
    ("p50_ttft_s", "time to first token p50 (s)", "{:.3f}"),
    ("tokens_per_s", "tokens/s", "{:.1f}"),
    ("rejected", "rejected", "{}"),
    ("late", "late", "{}"),
    ("lost", "lost", "{}"),
)


def mecllm(*args: str) -> None:
    """Run a mecllm command as a user would; stop on failure."""
    command = [sys.executable, "-m", "mecllm.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")


def serve(folder: Path, plan: str, name: str, *options: str) -> dict[str, Any]:
    """One `mecllm serve` run; its JSON, with its wall time."""
    out = folder / f"{name}.json"
    started = time.perf_counter()
    mecllm(
        "serve",
        str(folder / "instance.json"),
        str(folder / f"{plan}.json"),
        "--json",
        str(out),
        "--logs",
        str(folder / f"logs-{name}"),
        *options,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - started
    print(f"{name}: {result['measured']['requests']} requests in {result['wall_s']:.0f} s")
    return result


def table(result: dict[str, Any]) -> list[str]:
    """Measured beside predicted."""
    lines = ["| figure | measured | predicted | measured / predicted |", "|---|---:|---:|---:|"]
    for key, name, form in FIGURES:
        m, p = result["measured"][key], result["predicted"][key]
        ratio = f"{m / p:.3f}" if isinstance(m, float) and isinstance(p, float) and p else "-"
        lines.append(f"| {name} | {form.format(m)} | {form.format(p)} | {ratio} |")
    return lines


def calibration_line(result: dict[str, Any]) -> str:
    c = result["calibration"]
    nodes = ", ".join(
        f"node {v}: F {n['flops_per_s'] / 1e9:.3g} GFLOP/s, M {n['memory_bandwidth_bps'] / 1e9:.3g}"
        f" GB/s, c {n['block_overhead_s'] * 1e3:.3g} ms"
        for v, n in sorted(c["nodes"].items())
    )
    return (
        f"In-service calibration (per core of this machine; each node runs at its share): {nodes};"
        f" hop {c['hop_latency_s'] * 1e3:.2f} ms."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--busy-rate", type=float, default=6.0)
    parser.add_argument("--busy-requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mecllm-serving-"))
    mecllm(
        "generate",
        "--system",
        "edge-inference",
        "--preset",
        "small",
        "--seed",
        str(args.seed),
        "-o",
        str(folder / "instance.json"),
    )
    for plan in ("infer-planner", "infer-planner-r2", "infer-exo"):
        mecllm(
            "solve", str(folder / "instance.json"), "-a", plan, "-o", str(folder / f"{plan}.json")
        )
    seed = ["--seed", str(args.seed)]
    results: dict[str, Any] = {}
    results["fidelity"] = serve(
        folder,
        "infer-planner",
        "fidelity",
        "--requests",
        str(args.requests),
        "--rate",
        str(args.rate),
        *seed,
    )
    for plan in ("infer-planner", "infer-exo"):
        results[f"busy-{plan}"] = serve(
            folder,
            plan,
            f"busy-{plan}",
            "--requests",
            str(args.busy_requests),
            "--rate",
            str(args.busy_rate),
            *seed,
        )
    results["failover"] = serve(
        folder,
        "infer-planner-r2",
        "failover",
        "--requests",
        "120",
        "--rate",
        str(args.busy_rate),
        "--kill",
        "1@8",
        *seed,
    )
    moved = [
        r
        for r in map(json.loads, Path(results["failover"]["records"]).read_text().splitlines())
        if r["failovers"]
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=1) + "\n")
    command = (
        f"python benchmarks/serving.py --requests {args.requests} --rate {args.rate:g} "
        f"--busy-rate {args.busy_rate:g} --busy-requests {args.busy_requests} --seed {args.seed}"
    )
    fid = results["fidelity"]
    lines = [
        "# Plans served for real: measured beside the calibrated simulator",
        "",
        f"Produced by `{command}` (docs/serving.md section 5). The `small` preset, seed "
        f"{args.seed}; 2 cores; every node a share of one core (the fastest 0.5).",
        "",
        f"## 1. The planner's plan, {fid['measured']['requests']} requests at {args.rate:g}/s",
        "",
        calibration_line(fid),
        "",
        *table(fid),
        "",
        f"## 2. Planner vs exo at {args.busy_rate:g} requests/s ({args.busy_requests} requests)",
        "",
        "| plan | measured on-time | predicted on-time | measured p50 (s) | predicted p50 (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for plan in ("infer-planner", "infer-exo"):
        r = results[f"busy-{plan}"]
        lines.append(
            f"| {plan} | {r['measured']['on_time_ratio']:.3f} | "
            f"{r['predicted']['on_time_ratio']:.3f} | {r['measured']['p50_latency_s']:.3f} | "
            f"{r['predicted']['p50_latency_s']:.3f} |"
        )
    fo = results["failover"]
    lines += [
        "",
        f"## 3. Fail-over: the R = 2 plan, shard 1 killed (SIGKILL) 8 s into "
        f"{fo['measured']['requests']} requests at {args.busy_rate:g}/s",
        "",
        *table(fo),
        "",
        "Requests that were on the killed shard:",
        "",
        "| request | arrival (s) | route at the end | outcome | tokens | failovers | latency (s) |",
        "|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in moved:
        lines.append(
            f"| {r['rid']} | {r['arrival_s']:.2f} | {r['route']} | {r['outcome']} | "
            f"{len(r['tokens'])}/{r['output_tokens']} | {r['failovers']} | "
            f"{r['latency_s']:.3f} |"
        )
    (args.out / "serving.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    print(machine_line(), flush=True)
    main()
