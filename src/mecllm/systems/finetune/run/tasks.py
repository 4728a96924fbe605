"""What a training run learns: the task contract the user, the server and the profiler share.

A task turns a user's data seed into tensors (:class:`Batch`: the model's inputs and attention
mask, the target, and what the score is normalised by), says the loss the adapters are trained
on and the score a user reports before and after training. Two tasks keep it:

- ``text`` (:class:`TextTask`): the review-sentiment sentences of
  :mod:`mecllm.systems.finetune.run.task`, cross-entropy, accuracy;
- ``csi`` (:class:`mecllm.systems.finetune.run.csi_task.CsiTask`): a user's own channel drops
  from an edge-air data folder, the predictor's correction to the last observed slot, NMSE
  (docs/train.md, "The CSI task").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch.nn import functional as F

from mecllm.models.encoder import TextTokenizer
from mecllm.systems.finetune.run.task import CLASS_TEXTS, make_split

TaskName = Literal["text", "csi"]
TASKS: tuple[TaskName, ...] = ("text", "csi")


@dataclass(frozen=True)
class Batch:
    """Examples as tensors (the first dimension is the example).

    Attributes
    ----------
    inputs : (n, S) long token ids, or (n, S, f) float CSI tokens
    attention : (n, S) long, 1 for attended positions
    target : (n,) long class labels, or (n, F, f) float corrections
    reference : (n,) float
        The score's per-example normaliser (CSI: the true future channel's energy); zeros for
        text.
    """

    inputs: torch.Tensor
    attention: torch.Tensor
    target: torch.Tensor
    reference: torch.Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, pick: torch.Tensor | slice) -> Batch:
        return Batch(
            self.inputs[pick], self.attention[pick], self.target[pick], self.reference[pick]
        )

    @property
    def tokens_per_example(self) -> int:
        """S, the sequence length every example is padded to."""
        return int(self.inputs.shape[1])


class Task(Protocol):
    """The contract (see the module docstring)."""

    name: TaskName
    #: What :meth:`score` measures: ``accuracy`` (higher is better) or ``nmse_db`` (lower).
    metric: str

    def data(self, seed: int, n_train: int, n_test: int) -> tuple[Batch, Batch]:
        """A user's training and held-out examples, drawn from ``seed`` alone."""
        ...

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of the model's output (``model.top``) against ``target``."""
        ...

    def score(self, out: torch.Tensor, batch: Batch) -> float:
        """The reported score of the output on ``batch``."""
        ...

    def sample(self, batch: int, seq_len: int, generator: torch.Generator) -> Batch:
        """A batch of the task's shapes for the profiler (costs depend on shapes only)."""
        ...


class TextTask:
    """Review sentiment: token ids of the packaged tokenizer, class labels."""

    name: TaskName = "text"
    metric = "accuracy"

    def __init__(self, tok: TextTokenizer) -> None:
        self.tok = tok

    def encode(self, texts: list[str], labels: list[int]) -> Batch:
        if not texts:  # some tokenizers refuse an empty batch
            empty = torch.zeros(0, 0, dtype=torch.long)
            return Batch(empty, empty, torch.zeros(0, dtype=torch.long), torch.zeros(0))
        ids, att = self.tok(texts)
        return Batch(ids, att, torch.tensor(labels), torch.zeros(len(texts)))

    def data(self, seed: int, n_train: int, n_test: int) -> tuple[Batch, Batch]:
        train, test = make_split(seed, n_train, n_test)
        return (
            self.encode([e.text for e in train], [e.label for e in train]),
            self.encode([e.text for e in test], [e.label for e in test]),
        )

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target)

    def score(self, out: torch.Tensor, batch: Batch) -> float:
        return float((out.argmax(-1) == batch.target).float().mean())

    def sample(self, batch: int, seq_len: int, generator: torch.Generator) -> Batch:
        """Long sentences (several joined) cut to ``seq_len``, every position attended, random
        labels."""
        seeds = torch.randint(0, 1 << 30, (batch,), generator=generator).tolist()
        texts = [" ".join(e.text for e in make_split(int(s), 8, 0)[0]) for s in seeds]
        ids, _ = self.tok(texts)
        ids = ids[:, :seq_len]
        labels = torch.randint(0, len(CLASS_TEXTS), (batch,), generator=generator)
        return Batch(ids, torch.ones_like(ids), labels, torch.zeros(batch))
