"""Training and evaluation shared by the user and the server (same data, same schedule)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from mecllm.train.model import AdaptedMiniLM, Tokenizer, load_pretrained
from mecllm.train.task import CLASS_TEXTS, Example


@dataclass(frozen=True)
class Settings:
    """What a run trains: adapter bottleneck, sequence length, data sizes, schedule."""

    bottleneck: int = 16
    max_len: int = 24
    n_train: int = 192
    n_test: int = 160
    batch: int = 16
    epochs: int = 2
    lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class TrainStats:
    """Measured work of one side: seconds, FLOPs (PyTorch's counter), tokens processed."""

    seconds: float
    flops: int
    tokens: int


def build(settings: Settings) -> tuple[AdaptedMiniLM, Tokenizer]:
    """The model with its prototype head and the tokenizer."""
    model = load_pretrained(settings.bottleneck, seed=settings.seed)
    tok = Tokenizer(settings.max_len)
    with torch.no_grad():
        ids, att = tok(list(CLASS_TEXTS))
        model.prototypes = model.embed(ids, att)
    return model, tok


def evaluate(model: AdaptedMiniLM, tok: Tokenizer, data: list[Example]) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy on ``data``."""
    model.eval()
    ids, att = tok([e.text for e in data])
    labels = torch.tensor([e.label for e in data])
    with torch.no_grad():
        logits = model(ids, att)
        loss = float(F.cross_entropy(logits, labels))
        accuracy = float((logits.argmax(-1) == labels).float().mean())
    return loss, accuracy


def train_layers(
    model: AdaptedMiniLM,
    tok: Tokenizer,
    data: list[Example],
    layers: range,
    settings: Settings,
) -> TrainStats:
    """Train the adapters of ``layers`` (everything else frozen) on ``data``; count FLOPs."""
    params = model.train_only(layers)
    if not params:
        return TrainStats(0.0, 0, 0)
    optimiser = torch.optim.AdamW(params, lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    ids, att = tok([e.text for e in data])
    labels = torch.tensor([e.label for e in data])
    model.train()
    tokens = 0
    counter = FlopCounterMode(display=False)
    started = time.perf_counter()
    with counter:
        for _ in range(settings.epochs):
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(data), settings.batch):
                pick = order[start : start + settings.batch]
                loss = F.cross_entropy(model(ids[pick], att[pick]), labels[pick])
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                tokens += int(pick.numel()) * ids.shape[1]
    seconds = time.perf_counter() - started
    model.eval()
    return TrainStats(seconds, int(counter.get_total_flops()), tokens)
