"""Training and evaluation shared by the user and the server (same data, same schedule)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mecllm.core.errors import InvalidInputError
from mecllm.models.encoder import AdaptedEncoder, TextTokenizer
from mecllm.models.minilm import BertConfig, Tokenizer, load_pretrained
from mecllm.models.minilm import model_dir as packaged_model_dir
from mecllm.systems.finetune.run.pacing import Pace
from mecllm.systems.finetune.run.task import CLASS_TEXTS
from mecllm.systems.finetune.run.tasks import TASKS, Batch, Task, TaskName, TextTask


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
    #: Learning rate of split mode, where every parameter of the model trains (not adapters).
    full_lr: float = 5e-5
    seed: int = 0
    #: A local model directory loaded through transformers/peft (LoRA of rank ``bottleneck``);
    #: None: the packaged MiniLM with bottleneck adapters.
    model_dir: str | None = None
    #: What is learnt (:mod:`mecllm.systems.finetune.run.tasks`): ``text`` or ``csi``.
    task: TaskName = "text"
    #: The CSI task's edge-air data folder and trained ``lm`` checkpoint.
    csi_data: str | None = None
    csi_model: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "csi":
            if not self.csi_data or not self.csi_model:
                raise InvalidInputError(
                    "the csi task needs --csi-data (an edge-air data folder) and --csi-model "
                    "(a trained air-lm checkpoint, weights/lm-drop-outdated-*.pt in such a folder)"
                )
            if self.model_dir is not None:
                raise InvalidInputError("--model-dir applies to the text task only")


@dataclass(frozen=True)
class TrainStats:
    """Measured work of one side: seconds, tokens processed, when it ended, steps by size."""

    seconds: float
    tokens: int
    #: When the training loop ended (``time.monotonic``).
    ended_at: float = 0.0
    #: CPU seconds of the training loop's thread (without the pacing's sleeps).
    cpu_seconds: float = 0.0
    #: (batch size, steps of that size), for :func:`count_flops`.
    steps: tuple[tuple[int, int], ...] = ()


def build(settings: Settings) -> tuple[AdaptedEncoder, Task]:
    """The model (adapters fresh, everything else frozen) and its task."""
    if settings.task == "csi":
        return _build_csi(settings)
    model: AdaptedEncoder
    tok: TextTokenizer
    if settings.model_dir is None:
        model = load_pretrained(settings.bottleneck, seed=settings.seed)
        tok = Tokenizer(settings.max_len)
    else:
        from mecllm.models.hf_model import HFTokenizer, load_hf

        folder = Path(settings.model_dir)
        model = load_hf(folder, settings.bottleneck, seed=settings.seed)
        tok = HFTokenizer(folder, settings.max_len)
    with torch.no_grad():
        ids, att = tok(list(CLASS_TEXTS))
        model.prototypes = model.embed(ids, att)
    return model, TextTask(tok)


def _build_csi(settings: Settings) -> tuple[AdaptedEncoder, Task]:
    from mecllm.models.csi import load_predictor
    from mecllm.systems.finetune.run.csi_task import CsiTask

    task = CsiTask(str(settings.csi_data))
    path = Path(str(settings.csi_model))
    try:
        model = load_predictor(path, settings.bottleneck, seed=settings.seed)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"--csi-model {path}: {exc}") from None
    if (model.past, model.future, model.features) != (task.history, task.horizon, task.features):
        raise InvalidInputError(
            f"--csi-model {path} predicts {model.future} slots from {model.past} of "
            f"{model.features} numbers; the data in {task.folder} has {task.horizon} from "
            f"{task.history} of {task.features}"
        )
    return model, task


def model_shape(settings: Settings) -> tuple[int, int]:
    """``(blocks, width)`` of the run's model, from its config (nothing is loaded)."""
    if settings.model_dir is None:  # the packaged MiniLM, also the CSI predictor's body
        cfg = BertConfig.load(packaged_model_dir())
        return cfg.num_hidden_layers, cfg.hidden_size
    from mecllm.models.hf_model import config_shape

    return config_shape(Path(settings.model_dir))


def output(model: AdaptedEncoder, batch: Batch) -> torch.Tensor:
    """The model's output on ``batch`` (logits, or the CSI correction)."""
    out: torch.Tensor = model(batch.inputs, batch.attention)
    return out


def warm_up(model: AdaptedEncoder, task: Task, data: Batch, batch: int) -> None:
    """Pay PyTorch's one-off costs before anything is timed: the first optimiser of a process
    takes about 0.9 s to build (lazy imports) and the model's first backward pass allocates
    its buffers. One step on ``data`` with every adapter trainable; nothing is kept."""
    params = model.train_only(range(model.n_blocks))
    optimiser = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    part = data[:batch]
    model.train()
    task.loss(output(model, part), part.target).backward()  # type: ignore[no-untyped-call]
    model.eval()
    optimiser.zero_grad()
    for p in params:
        p.grad = None
        p.requires_grad_(False)


def evaluate(model: AdaptedEncoder, task: Task, data: Batch) -> tuple[float, float]:
    """The task's loss and score on ``data``."""
    model.eval()
    with torch.no_grad():
        out = output(model, data)
        return float(task.loss(out, data.target)), task.score(out, data)


def train_layers(
    model: AdaptedEncoder,
    task: Task,
    data: Batch,
    layers: range,
    settings: Settings,
    pace: Pace | None = None,
    sequence_flops: float | None = None,
) -> TrainStats:
    """Train the adapters of ``layers`` (everything else frozen) on ``data``.

    With ``pace``, every step is followed by the pause that holds the thread to its speed
    (:mod:`mecllm.systems.finetune.run.pacing`): by the step's FLOPs when ``sequence_flops``
    (:func:`flops_per_sequence`, counted before the run) is given, else by its CPU time;
    ``seconds`` is then the paced wall time. The run's FLOPs are counted apart, by
    :func:`count_flops` (PyTorch's counter slows every operation it counts).
    """
    params = model.train_only(layers)
    if not params:
        return TrainStats(0.0, 0, time.monotonic())
    optimiser = torch.optim.AdamW(params, lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    tokens = 0
    steps: dict[int, int] = {}  # batch size -> steps of that size
    if pace is not None:
        pace.restart()
    started = time.perf_counter()
    cpu_started = time.thread_time()
    for _ in range(settings.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), settings.batch):
            pick = order[start : start + settings.batch]
            part = data[pick]
            with pace.core if pace is not None else nullcontext():
                loss = task.loss(output(model, part), part.target)
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
            tokens += int(pick.numel()) * data.tokens_per_example
            steps[int(pick.numel())] = steps.get(int(pick.numel()), 0) + 1
            if pace is not None:
                pace.step(None if sequence_flops is None else sequence_flops * int(pick.numel()))
    seconds = time.perf_counter() - started
    ended_at = time.monotonic()
    cpu_seconds = time.thread_time() - cpu_started
    model.eval()
    return TrainStats(seconds, tokens, ended_at, cpu_seconds, tuple(sorted(steps.items())))


def flops_per_sequence(model: AdaptedEncoder, task: Task, data: Batch, layers: range) -> float:
    """FLOPs of one sequence's training step on the adapters of ``layers``: a step of B
    sequences costs B times this (every sequence is padded to the tokenizer's fixed length and
    every counted operation is linear in the batch). Counted once, before a paced run."""
    return float(count_flops(model, task, data[:1], layers, ((1, 1),)))


def count_flops(
    model: AdaptedEncoder,
    task: Task,
    data: Batch,
    layers: range,
    steps: tuple[tuple[int, int], ...],
) -> int:
    """FLOPs of a training run that made ``steps`` (batch size, count) on the adapters of
    ``layers``: one counted forward and backward pass per batch size (PyTorch's counter; the
    FLOPs depend on shapes, not on values). Gradients are discarded, nothing else changes."""
    params = model.train_only(layers)
    if not params:
        return 0
    total = 0
    for size, count in steps:
        counter = FlopCounterMode(display=False)
        part = data[:size]
        with counter:
            loss = task.loss(output(model, part), part.target)
            loss.backward()  # type: ignore[no-untyped-call]
        total += count * int(counter.get_total_flops())
    for p in params:
        p.grad = None
    return total
