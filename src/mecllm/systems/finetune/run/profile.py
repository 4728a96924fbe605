"""``mecllm profile``: what a training step of the model ``mecllm train`` uses really costs, by
where the adapters being trained sit (docs/train.md, "Profiled costs").

For a sequence length and a batch size it measures, on this machine (PyTorch's
``FlopCounterMode`` for FLOPs, the median of repeated runs for seconds, one thread):

- the frozen model's forward pass, whole and block by block;
- for every split ``k`` (0..L), one training step of the adapters of blocks ``[0, k)`` (the
  user's side) and one of blocks ``[k, L)`` (the server's side): forward through the whole
  model, backward down to the lowest trained block, the optimiser's update.

The paper's work model charges ``6 x tokens`` FLOPs per trained adapter parameter, linear in the
share the side trains. The measurement shows what the run pays: the whole forward pass whatever
the split, a backward pass that depends on where the lowest trained adapter is, and a small
term per adapter parameter. The file it writes is the measured basis for a profiled work model
(issue 20; the instance does not read it yet).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mecllm.core.conditions import measure as measure_conditions
from mecllm.core.fileio import atomic_write_text
from mecllm.core.processes import die_with_parent
from mecllm.core.timing import median_seconds
from mecllm.models.encoder import AdaptedEncoder
from mecllm.systems.finetune.run.loop import Settings, build, output
from mecllm.systems.finetune.run.tasks import Batch, Task

#: Most competing processes the loaded measurement starts.
MAX_BURNERS = 7


@dataclass(frozen=True)
class Costs:
    """One step's FLOPs and seconds (per step of ``batch x seq_len`` tokens)."""

    flops: int
    seconds: float


def _flops(run: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return int(counter.get_total_flops())


def train_step_cost(
    model: AdaptedEncoder,
    task: Task,
    batch: Batch,
    layers: range,
    repeats: int,
) -> Costs:
    """One AdamW step on the adapters of ``layers`` (the rest frozen); zero if there are none."""
    params = model.train_only(layers)
    if not params:
        return Costs(0, 0.0)
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    model.train()

    def step() -> None:
        loss = task.loss(output(model, batch), batch.target)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()

    costs = Costs(_flops(step), median_seconds(step, repeats))
    model.eval()
    return costs


def profile(
    seq_len: int,
    batch: int,
    bottleneck: int,
    repeats: int,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    model_dir: str | None = None,
    csi: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Measure (see the module docstring); the cost file's content. ``model_dir``: a local
    model directory (through transformers/peft, LoRA of rank ``bottleneck``); None, the
    packaged MiniLM. ``csi``: (data folder, ``lm`` checkpoint) of the CSI task, whose
    sequence is the predictor's history (``seq_len`` is then ignored)."""
    conditions = measure_conditions()  # before any process of the profile's own runs
    torch.set_num_threads(1)
    settings = Settings(
        bottleneck=bottleneck,
        seed=seed,
        max_len=seq_len,
        model_dir=model_dir,
        task="csi" if csi else "text",
        csi_data=csi[0] if csi else None,
        csi_model=csi[1] if csi else None,
    )
    model, task = build(settings)
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    sample = task.sample(batch, seq_len, generator)
    ids, att = sample.inputs, sample.attention
    seq_len = sample.tokens_per_example
    blocks = model.n_blocks
    tokens = batch * seq_len

    with torch.no_grad():

        def forward() -> None:
            output(model, sample)

        whole = Costs(_flops(forward), median_seconds(forward, repeats))
        per_block = _per_block_forward(model, sample, repeats)
    embeddings = _embeddings_cost(model, ids, att, 0, repeats)
    with_first_block = _embeddings_cost(model, ids, att, 1, repeats)
    full_block = Costs(
        with_first_block.flops - embeddings.flops,
        max(with_first_block.seconds - embeddings.seconds, 0.0),
    )
    loaded = _loaded_step_cost(model, task, sample, settings, repeats, progress)
    steps = []
    for k in range(blocks + 1):
        if progress:
            progress(f"profiling: split {k} of {blocks}")
        user = train_step_cost(model, task, sample, range(k), repeats)
        server = train_step_cost(model, task, sample, range(k, blocks), repeats)
        trained_user = sum(p.numel() for p in _adapters(model, range(k)))
        trained_server = sum(p.numel() for p in _adapters(model, range(k, blocks)))
        steps.append(
            {
                "split": k,
                "user": {"flops": user.flops, "seconds": user.seconds, "params": trained_user},
                "server": {
                    "flops": server.flops,
                    "seconds": server.seconds,
                    "params": trained_server,
                },
            }
        )
    if csi:
        name = f"the channel predictor {csi[1]} (MiniLM-L6 body) with bottleneck adapters"
    elif model_dir is None:
        name = "all-MiniLM-L6-v2 with bottleneck adapters"
    else:
        name = f"{model_dir} with LoRA adapters ({getattr(model, 'targets', '')})"
    return {
        "kind": "train-cost",
        "task": task.name,
        "model": name,
        "model_dir": model_dir,
        "width": model.width,
        "blocks": blocks,
        "seq_len": seq_len,
        "batch": batch,
        "tokens_per_step": tokens,
        "bottleneck": bottleneck,
        "forward": {"flops": whole.flops, "seconds": whole.seconds},
        "forward_per_block": [{"flops": c.flops, "seconds": c.seconds} for c in per_block],
        "train_steps": steps,
        "full_block": {"flops": full_block.flops, "seconds": full_block.seconds},
        "embeddings": {"flops": embeddings.flops, "seconds": embeddings.seconds},
        "loaded": loaded,
        "conditions": conditions.to_dict(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": str(torch.__version__),
            "torch_threads": 1,
            "repeats": repeats,
        },
    }


def _per_block_forward(model: AdaptedEncoder, sample: Batch, repeats: int) -> list[Costs]:
    """Each block's share of the frozen forward pass: FLOPs as the difference of the passes
    cut after and before it (exact: FLOPs depend on shapes only), seconds timed by hooks around
    the block in whole passes (the median of ``repeats``)."""

    def cut_at(k: int) -> Callable[[], object]:
        return lambda: model.bottom(sample.inputs, sample.attention, k)

    cut = [_flops(cut_at(k)) for k in range(model.n_blocks + 1)]
    times: list[list[float]] = [[] for _ in range(model.n_blocks)]
    started: dict[int, float] = {}
    handles = []
    for i in range(model.n_blocks):

        def begin(_m: Any, _a: Any, i: int = i) -> None:
            started[i] = time.perf_counter()

        def end(_m: Any, _a: Any, _o: Any, i: int = i) -> None:
            times[i].append(time.perf_counter() - started[i])

        handles.append(model.block(i).register_forward_pre_hook(begin))
        handles.append(model.block(i).register_forward_hook(end))
    try:
        for _ in range(max(repeats, 1)):
            output(model, sample)
    finally:
        for handle in handles:
            handle.remove()
    return [
        Costs(cut[i + 1] - cut[i], float(statistics.median(times[i])))
        for i in range(model.n_blocks)
    ]


def _embeddings_cost(
    model: AdaptedEncoder, ids: torch.Tensor, att: torch.Tensor, k: int, repeats: int
) -> Costs:
    """The embeddings and blocks ``[0, k)`` trained whole (split mode's user side): forward,
    backward and the optimiser's update of every parameter. At ``k = 0`` the embeddings
    alone (split mode's user always holds them); the step at ``k = 1`` less that one is one
    block trained whole, the input's gradient included (the unit of split mode's work,
    docs/train.md "Split mode")."""
    params = model.part_parameters(user=True, k=k)
    optimiser = torch.optim.AdamW(params, lr=1e-5)
    saved = [p.detach().clone() for p in params]

    def step() -> None:
        optimiser.zero_grad()
        model.bottom(ids, att, k).sum().backward()  # type: ignore[no-untyped-call]
        optimiser.step()

    cost = Costs(_flops(step), median_seconds(step, repeats))
    with torch.no_grad():  # the profile leaves the model as it found it
        for p, value in zip(params, saved, strict=True):
            p.copy_(value)
    for p in params:
        p.grad = None
        p.requires_grad_(False)
    return cost


def _burn(settings: dict[str, Any], shape: tuple[int, int], ready: Any, stop: Any) -> None:
    """A competing process: train every adapter, step after step, until told to stop."""
    die_with_parent()
    torch.set_num_threads(1)
    model, task = build(Settings(**settings))
    generator = torch.Generator().manual_seed(int(settings["seed"]) + 1)
    sample = task.sample(shape[0], shape[1], generator)
    params = model.train_only(range(model.n_blocks))
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    ready.set()
    while not stop.is_set():
        loss = task.loss(output(model, sample), sample.target)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()


def _loaded_step_cost(
    model: AdaptedEncoder,
    task: Task,
    batch: Batch,
    settings: Settings,
    repeats: int,
    progress: Callable[[str], None] | None,
) -> dict[str, Any] | None:
    """The step that trains every adapter, timed while every other core trains too.

    A ``mecllm train`` run computes on all cores at once (users and servers side by side);
    one thread is then slower than alone (measured 5-25 % on a 2-core machine: shared caches
    and memory). The profiled model's machine speed is this loaded speed. None on one core.
    """
    others = min((os.cpu_count() or 1) - 1, MAX_BURNERS)
    if others < 1:
        return None
    if progress:
        progress(f"profiling: the whole step with {others} other core(s) busy")
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    burners = []
    try:
        for _ in range(others):
            ready = context.Event()
            burner = context.Process(
                target=_burn,
                args=(
                    dataclasses.asdict(settings),
                    (len(batch), batch.tokens_per_example),
                    ready,
                    stop,
                ),
                daemon=True,
            )
            burner.start()
            burners.append((burner, ready))
        for _, ready in burners:
            if not ready.wait(timeout=120):
                raise RuntimeError("a competing process did not start within 120 s")
        cost = train_step_cost(model, task, batch, range(model.n_blocks), repeats)
    finally:
        stop.set()
        for burner, _ in burners:
            burner.join(timeout=10)
            if burner.is_alive():
                burner.kill()
                burner.join()
    return {
        "other_busy_cores": others,
        "flops": cost.flops,
        "seconds": cost.seconds,
        "flops_per_s": cost.flops / cost.seconds,
    }


def _adapters(model: AdaptedEncoder, layers: range) -> list[torch.nn.Parameter]:
    names = set(model.adapter_names(layers))
    return [p for name, p in model.named_parameters() if name in names]


def save(costs: dict[str, Any], path: Path) -> None:
    """Write the cost file atomically."""
    atomic_write_text(path, json.dumps(costs, indent=1) + "\n")
