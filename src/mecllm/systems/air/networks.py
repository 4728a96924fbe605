"""The neural channel predictors (docs/air.md section 4), trained with PyTorch on the CPU.

Every network reads the noisy history one token per slot, embeds it to width 384, runs its
body over the 16 tokens, maps the 16 outputs to the ``F`` future steps with a linear layer over
time and each step back to a token with a linear layer over features, and adds a base
prediction: the network learns the correction to ``outdated`` (the last slot; default) or to
``wiener`` (setting ``base``). The same for every network.

Token layouts (setting ``token_layout``): ``drop`` (one sequence per drop, a token is the whole
array's band at one slot, ``2 A K`` numbers) or ``antenna`` (LLM4CP's: one sequence per
antenna, a token is that antenna's ``K`` subcarriers, ``2 K`` numbers; A times more, shorter
sequences). With ``preprocessor`` a token also carries its band in the delay domain (an inverse
DFT over the subcarriers; LLM4CP feeds both domains).

``gru``, ``lstm``   2 recurrent layers of width 384, all weights trained.
``transformer``     2 post-LN encoder layers of MiniLM's shape (width 384, 12 heads, FFN 1536),
                    learned positions, all weights trained from scratch.
``lm``              the packaged MiniLM-L6 (6 layers, pretrained): attention and feed-forward
                    frozen; layer norms, position embeddings, the CSI embedding and the head
                    trained; with ``adapters`` its bottleneck adapters train too, with
                    ``lora_rank`` > 0 a LoRA update of every query and value projection.
``lm-random``       ``lm`` with the same architecture and random frozen weights.

Training: NMSE loss, Adam, fresh history noise every epoch (training SNR range), early stopping
on the validation NMSE (patience 4), at most ``epochs`` epochs or the time budget. A checkpoint
is written after every epoch (atomically) in the data folder's ``weights/`` by (method, seed):
an interrupted training resumes there, a finished one is loaded instead of trained again.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mecllm.core.fileio import atomic_write_bytes
from mecllm.models.csi import CsiHead
from mecllm.systems.air.cdl import ComplexArray
from mecllm.systems.air.dataset import AirData
from mecllm.systems.air.predictors import Outdated, Predictor, Wiener
from mecllm.systems.air.settings import AirSettings

FitProgress = Callable[[int, int, str], None]
WIDTH = 384
PATIENCE = 4


@dataclass(frozen=True)
class TrainingPlan:
    """How long and how to train.

    Attributes
    ----------
    epochs : int
        At most this many passes over the training drops.
    time_limit_s : float, s
        Training stops after the epoch that crosses this budget.
    batch : int
        Drops per step.
    learning_rate : float
    adapters : bool
        ``lm`` / ``lm-random`` only: train the bottleneck adapters as well.
    seed : int
        Seeds the initial weights, the batch order and the training noise.
    """

    epochs: int = 30
    time_limit_s: float = 600.0
    batch: int = 32
    learning_rate: float = 1e-3
    adapters: bool = False
    seed: int = 0


def to_tokens(h: ComplexArray, layout: str, delay: bool = False) -> torch.Tensor:
    """(n, T, A, K) complex -> real tokens: (n, T, 2 A K) for ``drop``, (n A, T, 2 K) for
    ``antenna``, (n K, T, 2 A) for ``subcarrier``; with ``delay`` a transformed copy is
    appended (twice the features): the delay domain (an inverse DFT over the subcarriers), or
    for ``subcarrier`` tokens the angle domain (a DFT over the antennas)."""
    z = torch.from_numpy(np.ascontiguousarray(h))
    n, t, a, k = z.shape
    if layout == "antenna":
        z = z.permute(0, 2, 1, 3).reshape(n * a, t, 1, k)
    elif layout == "subcarrier":
        z = z.permute(0, 3, 1, 2).reshape(n * k, t, 1, a)
    parts = [z]
    if delay:
        transform = torch.fft.fft if layout == "subcarrier" else torch.fft.ifft
        parts.append(transform(z, dim=-1, norm="ortho"))
    flat = torch.cat([p.reshape(p.shape[0], p.shape[1], -1) for p in parts], dim=-1)
    return torch.cat((flat.real, flat.imag), dim=-1).float()


def from_tokens(y: np.ndarray, layout: str, shape: tuple[int, int, int]) -> ComplexArray:
    """Inverse of :func:`to_tokens` (frequency part only): (n, F, A, K) complex."""
    f, a, k = shape
    half = y.shape[-1] // 2
    z = y[..., :half] + 1j * y[..., half:]
    if layout == "antenna":
        n = z.shape[0] // a
        return np.asarray(z.reshape(n, a, f, k).transpose(0, 2, 1, 3), dtype=np.complex64)
    if layout == "subcarrier":
        n = z.shape[0] // k
        return np.asarray(z.reshape(n, k, f, a).transpose(0, 2, 3, 1), dtype=np.complex64)
    return np.asarray(z.reshape(z.shape[0], f, a, k), dtype=np.complex64)


def sequences_per_drop(settings: AirSettings) -> int:
    """How many token sequences one drop makes in the settings' layout."""
    return {"drop": 1, "antenna": settings.antennas, "subcarrier": settings.subcarriers}[
        settings.token_layout
    ]


class ChannelNet(nn.Module):
    """Embedding, a body over the tokens, the head, plus the base prediction."""

    def __init__(self, settings: AirSettings, body: nn.Module) -> None:
        super().__init__()
        per_slot = {
            "drop": settings.antennas * settings.subcarriers,
            "antenna": settings.subcarriers,
            "subcarrier": settings.antennas,
        }[settings.token_layout]
        self.outputs = 2 * per_slot
        self.inputs = self.outputs * (2 if settings.preprocessor else 1)
        self.embed = nn.Linear(self.inputs, WIDTH)
        self.body = body
        self.head = CsiHead(settings.history, settings.horizon, WIDTH, self.outputs)

    def forward(self, tokens: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Tokens (n, P, inputs) and the base prediction (n, F, outputs) -> (n, F, outputs)."""
        hidden = self.body(self.embed(tokens))
        out: torch.Tensor = self.head(hidden) + base
        return out


class Recurrent(nn.Module):
    def __init__(self, cell: type[nn.GRU] | type[nn.LSTM]) -> None:
        super().__init__()
        self.rnn = cell(WIDTH, WIDTH, num_layers=2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.rnn(x)[0]
        return out


class Scratch(nn.Module):
    """Two encoder layers of MiniLM's shape with learned positions."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, length, WIDTH))
        layer = nn.TransformerEncoderLayer(WIDTH, 12, 1536, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(x + self.position)
        return out


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trained low-rank update ``B A x`` (``B`` starts at zero,
    so the layer starts as the frozen one)."""

    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + self.up(self.down(x))
        return out


class LanguageBody(nn.Module):
    """MiniLM's position embeddings, embedding norm and blocks run on CSI tokens."""

    def __init__(self, pretrained: bool, adapters: bool, seed: int, lora_rank: int = 0) -> None:
        super().__init__()
        from mecllm.models.minilm import AdaptedMiniLM, BertConfig, load_pretrained, model_dir

        if pretrained:
            self.lm = load_pretrained(bottleneck=16, seed=seed)
        else:
            torch.manual_seed(seed)
            self.lm = AdaptedMiniLM(BertConfig.load(model_dir()), 16)
        for name, p in self.lm.named_parameters():
            trained = (
                "norm" in name or name.startswith("position") or (adapters and ".adapter." in name)
            )
            p.requires_grad_(trained)
        if lora_rank > 0:
            torch.manual_seed(seed + 2)
            for block in self.lm.blocks:
                for name in ("query", "value"):
                    layer = getattr(block, name)
                    if isinstance(layer, nn.Linear):
                        setattr(block, name, LoRALinear(layer, lora_rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1])
        h: torch.Tensor = self.lm.embed_norm(x + self.lm.position(positions)[None])
        mask = torch.zeros(x.shape[0], 1, 1, x.shape[1])
        for block in self.lm.blocks:
            h = block(h, mask)
        return h


def build(method: str, settings: AirSettings, plan: TrainingPlan) -> ChannelNet:
    """The untrained network of ``method`` (seeded)."""
    torch.manual_seed(plan.seed)
    body: nn.Module
    if method == "gru":
        body = Recurrent(nn.GRU)
    elif method == "lstm":
        body = Recurrent(nn.LSTM)
    elif method == "transformer":
        body = Scratch(settings.history)
    elif method in ("lm", "lm-random"):
        body = LanguageBody(method == "lm", plan.adapters, plan.seed, settings.lora_rank)
    else:
        raise ValueError(f"no network called {method!r}")
    torch.manual_seed(plan.seed + 1)
    return ChannelNet(settings, body)


def _nmse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss: torch.Tensor = torch.sum((pred - target) ** 2) / torch.sum(target**2)
    return loss


class NetworkPredictor:
    """A trained network behind the predictor interface of
    :mod:`mecllm.systems.air.predictors`."""

    def __init__(self, method: str, settings: AirSettings, plan: TrainingPlan) -> None:
        self.name = method
        self.settings = settings
        self.plan = plan
        self.net = build(method, settings, plan)
        self.epochs = 0
        self.fit_s = 0.0
        self.best_val_db = math.inf
        self.base: Predictor = (Wiener if settings.base == "wiener" else Outdated)(settings)

    def parameters(self) -> tuple[int, int]:
        """(all, trained) parameter counts."""
        total = sum(p.numel() for p in self.net.parameters())
        trained = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return total, trained

    def checkpoint_path(self, folder: Path) -> Path:
        """``weights/<method>-<layout>-<base>-<digest>-seed<S>.pt``: the digest covers every
        setting that changes what is trained (training share, options, rate, batch), so a
        few-shot or differently configured training never loads another's weights. The caps
        (epochs, time) are not in it: a larger cap continues a training that stopped at one."""
        s = self.settings
        recipe = {
            "method": self.name,
            "train_fraction": s.train_fraction,
            "token_layout": s.token_layout,
            "preprocessor": s.preprocessor,
            "base": s.base,
            "lora_rank": s.lora_rank,
            "epoch_sequences": s.epoch_sequences,
            "adapters": self.plan.adapters,
            "learning_rate": self.plan.learning_rate,
            "batch": self.plan.batch,
        }
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{self.name}-{s.token_layout}-{s.base}-{digest}-seed{self.plan.seed}.pt"
        return folder / "weights" / name

    def _tokens(self, history: ComplexArray) -> torch.Tensor:
        return to_tokens(history, self.settings.token_layout, self.settings.preprocessor)

    def _base(self, history: ComplexArray, noise: np.ndarray) -> torch.Tensor:
        return to_tokens(self.base.predict(history, noise), self.settings.token_layout)

    def fit(self, data: AirData, folder: Path, progress: FitProgress | None = None) -> None:
        """Train on ``data`` (or load / resume the checkpoint in ``folder``)."""
        self.base.fit(data)
        path = self.checkpoint_path(folder)
        trained = [p for p in self.net.parameters() if p.requires_grad]
        optimiser = torch.optim.Adam(trained, lr=self.plan.learning_rate)
        best_state = {k: v.clone() for k, v in self.net.state_dict().items()}
        stale = 0
        if path.exists():
            saved = torch.load(path, weights_only=True)
            self.net.load_state_dict(saved["model"])
            best_state = saved["best"]
            optimiser.load_state_dict(saved["optimiser"])
            self.epochs, stale = int(saved["epochs"]), int(saved["stale"])
            self.best_val_db, self.fit_s = float(saved["best_val_db"]), float(saved["fit_s"])
            if self._done(stale):
                self.net.load_state_dict(best_state)
                return
        layout = self.settings.token_layout
        val_history, val_noise = data.history("val")
        val_x, val_base = self._tokens(val_history), self._base(val_history, val_noise)
        val_y = to_tokens(data.target("val"), layout)
        train_y = to_tokens(data.target("train"), layout)
        n = train_y.shape[0]
        step = self.plan.batch * sequences_per_drop(self.settings)
        per_epoch = self.settings.epoch_sequences or n
        started = time.perf_counter() - self.fit_s
        finished = False
        while not finished:
            rng = np.random.default_rng([self.plan.seed, 1000 + self.epochs])
            history, noise = data.history("train", rng)
            train_x, train_base = self._tokens(history), self._base(history, noise)
            order = torch.from_numpy(rng.permutation(n)[:per_epoch])
            self.net.train()
            for start in range(0, order.shape[0], step):
                rows = order[start : start + step]
                optimiser.zero_grad()
                pred = self.net(train_x[rows], train_base[rows])
                loss = _nmse_loss(pred, train_y[rows])
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
            self.epochs += 1
            val_db = self.evaluate_db(val_x, val_base, val_y)
            if val_db < self.best_val_db - 0.01:
                self.best_val_db, stale = val_db, 0
                best_state = {k: v.clone() for k, v in self.net.state_dict().items()}
            else:
                stale += 1
            self.fit_s = time.perf_counter() - started
            finished = self._done(stale)
            self._save(path, best_state, optimiser, stale, finished)
            if progress is not None:
                progress(
                    self.epochs,
                    self.plan.epochs,
                    f"validation NMSE {val_db:.2f} dB (best {self.best_val_db:.2f}), "
                    f"{self.fit_s:.0f} s",
                )
        self.net.load_state_dict(best_state)

    def _done(self, stale: int) -> bool:
        """Early stopping, or a cap of this plan reached."""
        return (
            stale >= PATIENCE
            or self.epochs >= self.plan.epochs
            or self.fit_s >= self.plan.time_limit_s
        )

    def _save(
        self,
        path: Path,
        best: dict[str, torch.Tensor],
        optimiser: torch.optim.Optimizer,
        stale: int,
        finished: bool,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(
            {
                "model": self.net.state_dict(),
                "best": best,
                "optimiser": optimiser.state_dict(),
                "epochs": self.epochs,
                "stale": stale,
                "best_val_db": self.best_val_db,
                "fit_s": self.fit_s,
                "finished": finished,
            },
            buffer,
        )
        atomic_write_bytes(path, buffer.getvalue())

    @torch.no_grad()
    def _run(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        size = 256 * sequences_per_drop(self.settings)
        return torch.cat(
            [self.net(x[s : s + size], base[s : s + size]) for s in range(0, x.shape[0], size)]
        )

    def evaluate_db(self, x: torch.Tensor, base: torch.Tensor, y: torch.Tensor) -> float:
        err = float(torch.sum((self._run(x, base) - y) ** 2))
        return 10 * math.log10(err / float(torch.sum(y**2)))

    def predict(self, history: ComplexArray, noise_var: np.ndarray) -> ComplexArray:
        out = self._run(self._tokens(history), self._base(history, noise_var)).numpy()
        s = self.settings
        return from_tokens(out, s.token_layout, (s.horizon, s.antennas, s.subcarriers))

    def timing_ms(self, history: ComplexArray, noise_var: np.ndarray) -> tuple[float, float]:
        """Milliseconds per drop at batch 1 and at batch 256 (or all drops if fewer),
        the base prediction included."""
        self.predict(history[:1], noise_var[:1])
        t = time.perf_counter()
        for _ in range(5):
            self.predict(history[:1], noise_var[:1])
        single = (time.perf_counter() - t) / 5 * 1e3
        batch = min(256, history.shape[0])
        t = time.perf_counter()
        self.predict(history[:batch], noise_var[:batch])
        many = (time.perf_counter() - t) / batch * 1e3
        return single, many


def threads() -> int:
    """torch's intra-op threads (what timings were taken with)."""
    return int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))


NETWORKS: tuple[str, ...] = ("gru", "lstm", "transformer", "lm", "lm-random")
