"""An upper bound on the on-time ratio of *any* plan, beside the planner's measured ratio.

A request cannot be answered faster than its upload, plus the prefill of its prompt at the
fastest compute any node has (``I x 2 P L / max F``, and no less than reading every block once
at the fastest memory bandwidth), plus ``O - 1`` decode turns each reading every block's
weights at the fastest memory bandwidth (``L x block bytes / max M``), plus its download. This
holds for every placement, batch and route (no queueing, no hops, ideal hardware), so the share
of requests whose deadline is at least that time bounds every plan's on-time ratio. It shares
nothing with the planner.

Usage::

    python benchmarks/inference_bound.py [--loads 2 4 8 12 16 24 32] [--seeds 10]
"""

from __future__ import annotations

import argparse

import numpy as np

from mecllm.core.options import SolveOptions
from mecllm.systems.inference.algorithms import solve
from mecllm.systems.inference.instance import InferenceInstance
from mecllm.systems.inference.requests import Stream, draw
from mecllm.systems.inference.scenario import generate, preset
from mecllm.systems.inference.simulator import TOKEN_ID_BITS, simulate

from machine import calibration_line


def best_case_latency_s(instance: InferenceInstance, stream: Stream) -> np.ndarray:
    """Each request's latency on ideal hardware with nothing else running, s (shape (R,))."""
    f_max = float(instance.flops.max())
    m_max = float(instance.memory_bandwidth_bps.max())
    model_bytes = instance.blocks * instance.block_bytes
    flops_per_token = 2.0 * instance.params_per_block * instance.blocks
    bits = np.array([t.input_bits_per_token for t in instance.tasks])[stream.task]
    upload = stream.prompt_tokens * bits / instance.uplink_bps[stream.user]
    prefill = np.maximum(stream.prompt_tokens * flops_per_token / f_max, model_bytes / m_max)
    decode = (stream.output_tokens - 1) * np.maximum(flops_per_token / f_max, model_bytes / m_max)
    download = stream.output_tokens * TOKEN_ID_BITS / instance.downlink_bps[stream.user]
    return np.asarray(upload + prefill + decode + download, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[2, 4, 8, 12, 16, 24, 32])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print("| load (req/s) | bound on any plan | infer-planner | planner / bound |")
    print("|---:|---:|---:|---:|")
    for load in args.loads:
        bounds, planner = [], []
        for seed in range(args.seeds):
            instance = generate(
                preset("default", total_rate_per_s=load), np.random.default_rng(seed)
            )
            stream = draw(instance, np.random.default_rng(seed + 1000))
            ideal = best_case_latency_s(instance, stream)
            bounds.append(float(np.mean(ideal <= stream.deadline_s)))
            plan = solve(instance, "infer-planner", SolveOptions(seed=seed)).plan
            planner.append(simulate(instance, plan, stream).on_time_ratio)
        b, p = float(np.mean(bounds)), float(np.mean(planner))
        print(f"| {load:g} | {b:.4f} | {p:.4f} | {p / b:.3f} |", flush=True)


if __name__ == "__main__":
    print(calibration_line(), flush=True)
    main()
