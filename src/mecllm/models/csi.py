"""The channel predictor as an adapted encoder: what ``mecllm train --task csi`` fine-tunes.

It is the edge-air system's ``lm`` network (docs/air.md section 4) in the form every training
run uses (:class:`~mecllm.models.encoder.AdaptedEncoder`): a linear CSI embedding (one token
per past slot, ``2 A K`` real numbers), MiniLM's position embeddings, embedding norm and six
blocks with their bottleneck adapters, and a head (linear over time ``P -> F``, then over
features ``width -> 2 A K``) whose output is the correction to the last observed slot. The
embedding, the norms and the head come from a trained ``lm`` checkpoint (``weights/lm-drop-
outdated-...pt`` in an edge-air data folder) and stay frozen; only the adapters train, as for
the text task.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mecllm.models.encoder import AdaptedEncoder, Place
from mecllm.models.minilm import AdaptedMiniLM, additive_mask, load_frozen, load_pretrained


class CsiHead(nn.Module):
    """Linear over time (P -> F), then over features (width -> features)."""

    def __init__(self, past: int, future: int, width: int, features: int) -> None:
        super().__init__()
        self.time = nn.Linear(past, future)
        self.out = nn.Linear(width, features)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        steps = self.time(hidden.transpose(1, 2)).transpose(1, 2)
        out: torch.Tensor = self.out(steps)
        return out


class CsiPredictor(AdaptedEncoder):
    """MiniLM's blocks on CSI tokens with a regression head.

    ``bottom(x, attention, k)``: ``x`` (batch, P, features) float tokens; ``top`` returns the
    predicted correction, shape (batch, F, features). The attention mask is all ones (every
    slot is observed); it is kept for the contract.
    """

    def __init__(self, lm: AdaptedMiniLM, past: int, future: int, features: int) -> None:
        super().__init__()
        self.lm = lm
        self.past, self.future, self.features = past, future, features
        self.csi_in = nn.Linear(features, lm.width)
        self.head = CsiHead(past, future, lm.width, features)

    @property
    def n_blocks(self) -> int:
        return self.lm.n_blocks

    @property
    def width(self) -> int:
        return self.lm.width

    def embed_csi(self, tokens: torch.Tensor) -> torch.Tensor:
        """CSI tokens (batch, P, features) -> embedded rows (batch, P, width): the linear
        embedding, MiniLM's position embeddings and its embedding norm."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        out: torch.Tensor = self.lm.embed_norm(
            self.csi_in(tokens) + self.lm.position(positions)[None]
        )
        return out

    def bottom(self, ids: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        x = self.embed_csi(ids)
        mask = additive_mask(attention)
        for block in self.lm.blocks[:k]:
            x = block(x, mask)
        out: torch.Tensor = x
        return out

    def last_hidden(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        return self.lm.last_hidden(hidden, attention, k)

    def top(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        """Blocks ``[k, L)`` and the head: the predicted correction (batch, F, features)."""
        out: torch.Tensor = self.head(self.last_hidden(hidden, attention, k))
        return out

    def block(self, i: int) -> nn.Module:
        return self.lm.block(i)

    def place(self, name: str) -> Place:
        if name.startswith("lm."):
            return self.lm.place(name.removeprefix("lm."))
        return "after" if name.startswith("head.") else "before"

    def is_adapter(self, name: str) -> bool:
        return ".adapter." in name


def checkpoint_shape(state: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(past P, future F, features) of an ``lm`` checkpoint's network."""
    try:
        features = int(state["embed.weight"].shape[1])
        future, past = (int(v) for v in state["head.time.weight"].shape)
    except KeyError as exc:
        raise ValueError(f"not a channel-predictor checkpoint (no {exc.args[0]})") from None
    return past, future, features


def load_predictor(path: Path, bottleneck: int, seed: int = 0) -> CsiPredictor:
    """The trained predictor of an edge-air ``lm`` checkpoint (its best weights) with fresh
    adapters of width ``bottleneck`` (seeded); every other weight frozen.

    Raises ``ValueError`` when the file is not such a checkpoint (another network, a token
    layout other than ``drop``, or a delay-domain preprocessor).
    """
    saved = torch.load(path, weights_only=True, map_location="cpu")
    state = saved.get("best", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict")
    past, future, features = checkpoint_shape(state)
    if not any(k.startswith("body.lm.") for k in state):
        raise ValueError(f"{path} is not an lm network (its body is not MiniLM)")
    model = CsiPredictor(load_pretrained(bottleneck, seed=seed), past, future, features)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("body.lm."):
            inner = key.removeprefix("body.lm.")
            if ".adapter." in inner:
                continue  # the checkpoint's adapters (16 wide, untrained by default) are not used
            mapped["lm." + inner] = value
        elif key.startswith("embed."):
            mapped["csi_in." + key.removeprefix("embed.")] = value
        elif key.startswith("head."):
            mapped[key] = value
    misfit = load_frozen(model, mapped)
    if misfit:
        raise ValueError(f"{path} does not fit the predictor: {misfit}")
    return model
