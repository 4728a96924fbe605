"""What a training run needs from a model: the contract both encoders keep.

A run trains an *adapted encoder*: a frozen pretrained network cut into ``L`` blocks, small
trainable adapters in every block, mean pooling and a frozen prototype head (each class is the
pooled embedding of a short description of it; the logits are scaled cosine similarities).
Two encoders keep this contract:

- :class:`mecllm.models.minilm.AdaptedMiniLM`, the packaged MiniLM written in plain PyTorch with
  a bottleneck adapter after every block (the default);
- :class:`mecllm.models.hf_model.HFAdapted`, any local model directory loaded through
  Hugging Face ``transformers`` with ``peft`` LoRA adapters (``--model-dir``).

A subclass says how the embeddings and blocks ``[0, k)`` run (:meth:`bottom`), how blocks
``[k, L)`` and whatever follows them run on a hidden state (:meth:`last_hidden`), which
parameters are adapters and which block each parameter belongs to. Everything the user, the
server and the profiler call is built here on those four.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, Protocol

import torch
from torch import nn
from torch.nn import functional as F

#: Where a parameter sits: before the blocks (the embeddings), in block ``i`` (an int), or after
#: them (final norms, poolers).
Place = Literal["before", "after"] | int

#: The prototype head's logit scale (cosine similarity x 20).
LOGIT_SCALE = 20.0


class TextTokenizer(Protocol):
    """Texts to token ids and attention mask, both shape (len(texts), max_len)."""

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


class AdaptedEncoder(nn.Module, ABC):
    """A frozen encoder with adapters in every block and a frozen prototype head."""

    prototypes: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(0))
        self.scale = LOGIT_SCALE

    # ------------------------------------------------------------------ what a subclass says
    @property
    @abstractmethod
    def n_blocks(self) -> int:
        """The number of blocks ``L``."""

    @property
    @abstractmethod
    def width(self) -> int:
        """The hidden width ``w`` (what a split-mode user sends per token)."""

    @abstractmethod
    def bottom(self, ids: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        """The embeddings and blocks ``[0, k)``: hidden states, shape (batch, seq, width)."""

    @abstractmethod
    def last_hidden(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        """Blocks ``[k, L)`` (and any final norm) on ``hidden``: shape (batch, seq, width)."""

    @abstractmethod
    def block(self, i: int) -> nn.Module:
        """Block ``i`` (for hooks: the profiler times it)."""

    @abstractmethod
    def place(self, name: str) -> Place:
        """Where parameter ``name`` sits (see :data:`Place`)."""

    @abstractmethod
    def is_adapter(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to an adapter."""

    # ------------------------------------------------------------------ the head
    def pooled(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        """Blocks ``[k, L)`` on ``hidden``, then mean pooling over the attended tokens and L2
        normalisation: shape (batch, width)."""
        x = self.last_hidden(hidden, attention, k)
        weights = attention[..., None].to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)

    def top(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        """Blocks ``[k, L)`` and the head on ``hidden``: class logits (what a split-mode server
        computes), shape (batch, classes)."""
        logits: torch.Tensor = self.scale * self.pooled(hidden, attention, k) @ self.prototypes.T
        return logits

    def embed(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings, shape (batch, width)."""
        last = self.n_blocks
        return self.pooled(self.bottom(ids, attention, last), attention, last)

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (batch, classes)."""
        last = self.n_blocks
        return self.top(self.bottom(ids, attention, last), attention, last)

    # ------------------------------------------------------------------ parameters
    def part_parameters(self, user: bool, k: int) -> list[nn.Parameter]:
        """Every parameter of one side of a split at ``k`` (the user: the embeddings and blocks
        ``[0, k)``; the server: blocks ``[k, L)`` and what follows them), made trainable; the
        others frozen."""
        chosen = []
        for name, p in self.named_parameters():
            where = self.place(name)
            if where == "before":
                mine = user
            elif where == "after":
                mine = not user
            else:
                mine = (where < k) if user else (where >= k)
            p.requires_grad_(mine)
            if mine:
                chosen.append(p)
        return chosen

    def adapter_names(self, layers: range) -> list[str]:
        """Parameter names of the adapters of ``layers``, in the model's order."""
        wanted = set(layers)
        return [
            name
            for name, _ in self.named_parameters()
            if self.is_adapter(name) and self.place(name) in wanted
        ]

    def adapter_params(self, layers: range) -> int:
        """How many adapter parameters ``layers`` hold."""
        wanted = set(self.adapter_names(layers))
        return sum(p.numel() for name, p in self.named_parameters() if name in wanted)

    def adapter_state(self, layers: range) -> dict[str, torch.Tensor]:
        """Copies of the adapter tensors of ``layers``."""
        params = dict(self.named_parameters())
        return {name: params[name].detach().clone() for name in self.adapter_names(layers)}

    def load_adapters(self, tensors: dict[str, torch.Tensor]) -> None:
        """Overwrite adapter tensors (names and shapes must match)."""
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in tensors.items():
                params[name].copy_(value)

    def train_only(self, layers: range) -> list[nn.Parameter]:
        """Freeze everything except the adapters of ``layers``; return those parameters."""
        wanted = set(self.adapter_names(layers))
        chosen = []
        for name, p in self.named_parameters():
            p.requires_grad_(name in wanted)
            if name in wanted:
                chosen.append(p)
        return chosen
