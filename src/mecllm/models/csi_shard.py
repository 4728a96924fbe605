"""A shard of the channel predictor (:mod:`mecllm.models.csi`) for serving: blocks ``[start,
end)``, the CSI embedding on the first shard and the regression head on the last.

A prediction is not generated token by token: the whole history (``P`` tokens) goes through
every block once and the last shard returns the ``F`` predicted slots. So a shard keeps no
cache, and one :meth:`PredictorShard.step` runs every waiting request's history as one batch
(``(B, P, width)``). The interface is :class:`mecllm.models.causal.ShardModel`'s, so that the
shard service's batcher serves either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from mecllm.models.causal import CacheError, WorkItem
from mecllm.models.csi import CsiPredictor, load_predictor


class PredictorShard:
    """Blocks ``[start, end)`` of a trained channel predictor (adapters as trained: the
    checkpoint's are zero, so the served model is the edge-air ``lm`` network)."""

    def __init__(self, checkpoint: Path, start: int, end: int) -> None:
        self.model: CsiPredictor = load_predictor(checkpoint, bottleneck=16)
        self.model.eval()
        blocks = self.model.n_blocks
        if not 0 <= start < end <= blocks:
            raise ValueError(f"a shard needs 0 <= start < end <= {blocks}, got [{start}, {end})")
        self.start, self.end = start, end
        self.first, self.last = start == 0, end == blocks
        self.width = self.model.width
        self.past, self.future, self.features = (
            self.model.past,
            self.model.future,
            self.model.features,
        )
        self.caches: dict[int, object] = {}  # none: every request is one pass

    @property
    def max_positions(self) -> int:
        """Tokens of a request: the history."""
        return self.past

    @property
    def input_width(self) -> int:
        """Numbers per input row: ``2 A K`` on the first shard, the hidden width after."""
        return self.features if self.first else self.width

    def weight_bytes(self) -> int:
        """Bytes of the weights this shard uses."""
        names = [f"lm.blocks.{i}." for i in range(self.start, self.end)]
        if self.first:
            names += ["csi_in.", "lm.position.", "lm.embed_norm."]
        if self.last:
            names.append("head.")
        return 4 * sum(
            p.numel()
            for n, p in self.model.named_parameters()
            if any(n.startswith(prefix) for prefix in names)
        )

    def cache_bytes(self) -> int:
        return 0

    def release(self, rid: int) -> bool:
        del rid
        return False

    def drop_idle(self, idle_s: float) -> list[int]:
        del idle_s
        return []

    def check(self, item: WorkItem) -> None:
        """Raise :class:`~mecllm.models.causal.CacheError` unless ``item`` is a whole history
        of this shard's input width."""
        if item.position != 0:
            raise CacheError(f"request {item.rid}: a prediction is one pass (position 0)")
        if item.hidden is None:
            raise CacheError(f"request {item.rid}: the predictor takes tensors, not token ids")
        if item.hidden.shape != (self.past, self.input_width):
            raise CacheError(
                f"request {item.rid}: input must have shape ({self.past}, {self.input_width}), "
                f"got {tuple(item.hidden.shape)}"
            )

    @torch.inference_mode()
    def step(self, items: list[WorkItem]) -> list[NDArray[np.float32] | int]:
        """Run the requests' histories as one batch: per item, the output activations
        ``(P, width)``, or on the last shard the prediction ``(F, 2 A K)``."""
        x = torch.from_numpy(
            np.stack([np.asarray(item.hidden, dtype=np.float32) for item in items])
        )
        if self.first:
            x = self.model.embed_csi(x)
        mask = torch.zeros(x.shape[0], 1, 1, x.shape[1])
        for block in self.model.lm.blocks[self.start : self.end]:
            x = block(x, mask)
        if self.last:
            x = self.model.head(x)
        return [row.numpy().copy() for row in x]
