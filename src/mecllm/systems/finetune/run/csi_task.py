"""The CSI task of ``mecllm train --task csi``: each user fine-tunes the channel predictor's
adapters on its own drops (docs/train.md, "The CSI task").

The drops come from an edge-air data folder (``mecllm generate --system edge-air``), read
through its file format (docs/formats.md: ``channels.npy``, ``speeds.npy``, ``meta.json``),
never through the edge-air system's code. The pool is the folder's test split (drops the
predictor was not trained on). A user is a terminal moving at its own speed: its seed draws a
speed in the pool's range and the user holds the ``n_train + n_test`` drops closest to it,
shuffled into its training and held-out examples; its history is observed at the folder's test
SNR with noise drawn from the same seed (the server draws the same). Tokens are the edge-air
``drop`` layout (one token per past slot: the real then the imaginary parts of the ``A x K``
uplink band), the target is the future minus the last observed slot (the predictor learns the
correction to ``outdated``), and the score is the NMSE of the prediction in dB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mecllm.core.errors import InvalidInputError
from mecllm.systems.finetune.run.tasks import Batch, TaskName


def _tokens(h: np.ndarray) -> torch.Tensor:
    """(n, T, A, K) complex -> (n, T, 2 A K) float32: real parts, then imaginary parts."""
    flat = h.reshape(h.shape[0], h.shape[1], -1)
    return torch.from_numpy(np.concatenate((flat.real, flat.imag), axis=-1).astype(np.float32))


class CsiTask:
    """A user's own drops from an edge-air data folder (see the module docstring)."""

    name: TaskName = "csi"
    metric = "nmse_db"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text())
            settings = meta["settings"]
            self.history = int(settings["history"])
            self.horizon = int(settings["horizon"])
            self.subcarriers = int(settings["subcarriers"])
            self.mode = str(settings["mode"])
            self.snr_db = float(settings["test_snr_db"])
            before = int(settings["train_drops"]) + int(settings["val_drops"])
            test = int(settings["test_drops"])
            self.channels = np.load(self.folder / "channels.npy", mmap_mode="r")
            self.speeds = np.load(self.folder / "speeds.npy")
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"--csi-data {self.folder} is not an edge-air data folder ({exc}); make one "
                "with `mecllm generate --system edge-air`"
            ) from None
        if self.mode not in ("tdd", "fdd") or self.channels.ndim != 4:
            raise InvalidInputError(f"--csi-data {self.folder}: unknown layout or mode")
        self.pool = np.arange(before, before + test)
        self.antennas = int(self.channels.shape[2])
        self.features = 2 * self.antennas * self.subcarriers

    def data(self, seed: int, n_train: int, n_test: int) -> tuple[Batch, Batch]:
        need = n_train + n_test
        if need > self.pool.size:
            raise InvalidInputError(
                f"a user needs {need} drops ({n_train} training, {n_test} held out) but the "
                f"data folder's test split holds {self.pool.size}: generate it with more "
                "test_drops"
            )
        rng = np.random.default_rng([seed, 31])
        speeds = self.speeds[self.pool]
        centre = rng.uniform(float(speeds.min()), float(speeds.max()))
        mine = self.pool[np.argsort(np.abs(speeds - centre), kind="stable")[:need]]
        mine = mine[rng.permutation(need)]
        batch = self._batch(np.sort(mine), rng)
        order = torch.from_numpy(np.argsort(np.argsort(mine)))  # back to the shuffled order
        shuffled = batch[order]
        return shuffled[:n_train], shuffled[n_train:]

    def _batch(self, rows: np.ndarray, rng: np.random.Generator) -> Batch:
        k, p = self.subcarriers, self.history
        drops = np.asarray(self.channels[rows], dtype=np.complex64)
        clean = drops[:, :p, :, :k]
        band = slice(0, k) if self.mode == "tdd" else slice(k, 2 * k)
        future = drops[:, p:, :, band]
        power = np.mean(np.abs(clean) ** 2, axis=(1, 2, 3))
        variance = power * 10.0 ** (-self.snr_db / 10.0)
        noise = rng.standard_normal((*clean.shape, 2)).astype(np.float32)
        scale = np.sqrt(variance / 2).astype(np.float32)[:, None, None, None]
        noisy = clean + scale * (noise[..., 0] + 1j * noise[..., 1])
        x = _tokens(noisy)
        y = _tokens(future)
        base = x[:, -1:, :].expand(-1, self.horizon, -1)
        n = len(rows)
        return Batch(
            x,
            torch.ones(n, p, dtype=torch.long),
            (y - base).contiguous(),
            (y**2).sum(dim=(1, 2)),
        )

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared error of the correction over the batch (the NMSE's numerator, normalised
        by the target's size: the drops have unit mean power)."""
        return torch.mean((out - target) ** 2)

    def score(self, out: torch.Tensor, batch: Batch) -> float:
        """NMSE of the predicted channel (last slot + correction) in dB."""
        error = float(torch.sum((out - batch.target) ** 2))
        return 10.0 * float(np.log10(error / float(torch.sum(batch.reference))))

    def sample(self, batch: int, seq_len: int, generator: torch.Generator) -> Batch:
        """Random tokens of the task's shapes (``seq_len`` is the history, P)."""
        del seq_len
        x = torch.randn(batch, self.history, self.features, generator=generator)
        target = torch.randn(batch, self.horizon, self.features, generator=generator)
        return Batch(
            x, torch.ones(batch, self.history, dtype=torch.long), target, torch.ones(batch)
        )
