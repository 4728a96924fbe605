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

import json
import multiprocessing
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from mecllm.core.fileio import atomic_write_text
from mecllm.core.processes import die_with_parent
from mecllm.core.timing import median_seconds
from mecllm.train.loop import Settings, build
from mecllm.train.model import AdaptedMiniLM

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
    model: AdaptedMiniLM,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    layers: range,
    repeats: int,
) -> Costs:
    """One AdamW step on the adapters of ``layers`` (the rest frozen); zero if there are none."""
    params = model.train_only(layers)
    if not params:
        return Costs(0, 0.0)
    ids, att, labels = batch
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(ids, att), labels)
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
) -> dict[str, Any]:
    """Measure (see the module docstring); the cost file's content."""
    torch.set_num_threads(1)
    model, _ = build(Settings(bottleneck=bottleneck, seed=seed))
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, seq_len), generator=generator)
    att = torch.ones_like(ids)
    prototypes: torch.Tensor = model.prototypes  # type: ignore[assignment]
    labels = torch.randint(0, int(prototypes.shape[0]), (batch,), generator=generator)
    blocks = len(model.blocks)
    tokens = batch * seq_len

    with torch.no_grad():

        def forward() -> None:
            model(ids, att)

        whole = Costs(_flops(forward), median_seconds(forward, repeats))
        positions = torch.arange(seq_len)
        hidden = model.embed_norm(
            model.word(ids)
            + model.position(positions)[None]
            + model.token_type(torch.zeros_like(ids))
        )
        mask = (1.0 - att[:, None, None, :].float()) * -1e4
        per_block = []
        for block in model.blocks:

            def one(block: Any = block, hidden: torch.Tensor = hidden) -> torch.Tensor:
                out: torch.Tensor = block(hidden, mask)
                return out

            per_block.append(Costs(_flops(one), median_seconds(one, repeats)))
            hidden = one()
    full_block = _full_block_cost(model, hidden, mask, repeats)
    embeddings = _embeddings_cost(model, ids, att, repeats)
    loaded = _loaded_step_cost(model, (ids, att, labels), bottleneck, seed, repeats, progress)
    steps = []
    for k in range(blocks + 1):
        if progress:
            progress(f"profiling: split {k} of {blocks}")
        user = train_step_cost(model, (ids, att, labels), range(k), repeats)
        server = train_step_cost(model, (ids, att, labels), range(k, blocks), repeats)
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
    return {
        "kind": "train-cost",
        "model": "all-MiniLM-L6-v2 with bottleneck adapters",
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
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": str(torch.__version__),
            "torch_threads": 1,
            "repeats": repeats,
        },
    }


def _full_block_cost(
    model: AdaptedMiniLM, hidden: torch.Tensor, mask: torch.Tensor, repeats: int
) -> Costs:
    """One block trained whole (every parameter, the input's gradient too): forward, backward
    and the optimiser's update, the unit of the split mode's work (docs/train.md, "Split
    mode")."""
    block = model.blocks[0]
    params = list(block.parameters())
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=1e-5)
    x = hidden.detach().clone().requires_grad_(True)

    def step() -> None:
        optimiser.zero_grad()
        block(x, mask).sum().backward()
        optimiser.step()
        x.grad = None

    cost = Costs(_flops(step), median_seconds(step, repeats))
    for p in params:
        p.requires_grad_(False)
    return cost


def _embeddings_cost(
    model: AdaptedMiniLM, ids: torch.Tensor, att: torch.Tensor, repeats: int
) -> Costs:
    """The embeddings trained whole (split mode's user always holds them): forward, backward
    and the optimiser's update of their 11.9 million parameters."""
    params = model.part_parameters(user=True, k=0)
    optimiser = torch.optim.AdamW(params, lr=1e-5)

    def step() -> None:
        optimiser.zero_grad()
        model.bottom(ids, att, 0).sum().backward()  # type: ignore[no-untyped-call]
        optimiser.step()

    cost = Costs(_flops(step), median_seconds(step, repeats))
    for p in params:
        p.requires_grad_(False)
    return cost


def _burn(bottleneck: int, seed: int, shape: tuple[int, int], ready: Any, stop: Any) -> None:
    """A competing process: train every adapter, step after step, until told to stop."""
    die_with_parent()
    torch.set_num_threads(1)
    model, _ = build(Settings(bottleneck=bottleneck, seed=seed))
    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(1000, 30000, shape, generator=generator)
    att = torch.ones_like(ids)
    labels = torch.zeros(shape[0], dtype=torch.long)
    params = model.train_only(range(len(model.blocks)))
    optimiser = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    ready.set()
    while not stop.is_set():
        loss = F.cross_entropy(model(ids, att), labels)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()


def _loaded_step_cost(
    model: AdaptedMiniLM,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    bottleneck: int,
    seed: int,
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
                args=(bottleneck, seed, tuple(batch[0].shape), ready, stop),
                daemon=True,
            )
            burner.start()
            burners.append((burner, ready))
        for _, ready in burners:
            if not ready.wait(timeout=120):
                raise RuntimeError("a competing process did not start within 120 s")
        cost = train_step_cost(model, batch, range(len(model.blocks)), repeats)
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


def _adapters(model: AdaptedMiniLM, layers: range) -> list[torch.nn.Parameter]:
    names = set(model.adapter_names(layers))
    return [p for name, p in model.named_parameters() if name in names]


def save(costs: dict[str, Any], path: Path) -> None:
    """Write the cost file atomically."""
    atomic_write_text(path, json.dumps(costs, indent=1) + "\n")
