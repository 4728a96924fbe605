"""The channels of an instance, generated once into memory-mapped files, and the views the
predictors see (noisy history, clean target) split by drop.

Layout of a data folder::

    channels.npy   complex64 (drops, slots, antennas, 2K): train, then validation, then test
    speeds.npy     float64 (drops,), km/h
    gains_db.npy   float64 (drops,), dB: each drop's large-scale gain before its channels were
                   scaled to unit mean power (0 for CDL drops)
    meta.json      the settings and seed the files were made from (checked on every load)

Each split is drawn from its own seed stream (``[seed, split]``), so the test drops of a larger
training set are the same drops. Files are written under a temporary name and renamed when
complete: a killed generation leaves nothing that looks finished.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text
from mecllm.systems.air.cdl import ComplexArray, cdl_drops
from mecllm.systems.air.settings import AirSettings, CdlModel

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
#: Drops generated per step of the progress bar.
CHUNK = 250

Progress = Callable[[int, int], None]


def split_sizes(settings: AirSettings) -> dict[Split, int]:
    """Drops per split."""
    return {"train": settings.train_drops, "val": settings.val_drops, "test": settings.test_drops}


def split_range(settings: AirSettings, split: Split) -> slice:
    """The rows of ``split`` in the data files."""
    sizes = split_sizes(settings)
    start = 0
    for name in SPLITS:
        if name == split:
            return slice(start, start + sizes[name])
        start += sizes[name]
    raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def _meta(settings: AirSettings, seed: int) -> dict[str, object]:
    return {"settings": settings.data_dict(), "seed": seed, "format": 1}


def materialise(
    settings: AirSettings, seed: int, folder: Path, progress: Progress | None = None
) -> Path:
    """Make sure ``folder`` holds the channels of (settings, seed); generate them if not.

    Returns the folder. A folder made from other settings is refused, not overwritten.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # One generator per folder: trials of one seed running in parallel workers wait here for
    # the first to finish, then find its files.
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _materialise_locked(settings, seed, folder, progress)


def _materialise_locked(
    settings: AirSettings, seed: int, folder: Path, progress: Progress | None
) -> Path:
    meta_path = folder / "meta.json"
    want = _meta(settings, seed)
    if meta_path.exists():
        have = json.loads(meta_path.read_text())
        if have != want:
            raise InvalidInputError(
                f"{folder} holds channels of other settings or another seed; give another "
                "data folder (--set is not enough: the instance's data_dir)"
            )
        return folder
    shape = (settings.drops, settings.slots, settings.antennas, 2 * settings.subcarriers)
    partial = folder / "channels.npy.partial"
    channels = np.lib.format.open_memmap(partial, mode="w+", dtype=np.complex64, shape=shape)
    speeds = np.empty(settings.drops)
    gains = np.zeros(settings.drops)
    done = 0
    for index, split in enumerate(SPLITS):
        rows = split_range(settings, split)
        rng = np.random.default_rng([seed, index])
        start = rows.start
        while start < rows.stop:
            size = min(CHUNK, rows.stop - start)
            profile = settings
            if split == "test" and settings.test_cdl_model:
                profile = replace(settings, cdl_model=cast(CdlModel, settings.test_cdl_model))
            block, block_speeds, block_gains = _draw(profile, size, rng)
            channels[start : start + size] = block
            speeds[start : start + size] = block_speeds
            gains[start : start + size] = block_gains
            start += size
            done += size
            if progress is not None:
                progress(done, settings.drops)
    channels.flush()
    del channels
    for name, values in (("speeds", speeds), ("gains_db", gains)):
        np.save(folder / f"{name}.partial.npy", values)
        os.replace(folder / f"{name}.partial.npy", folder / f"{name}.npy")
    os.replace(partial, folder / "channels.npy")
    atomic_write_text(meta_path, json.dumps(want, indent=1) + "\n")
    return folder


def _draw(
    settings: AirSettings, size: int, rng: np.random.Generator
) -> tuple[ComplexArray, NDArray[np.float64], NDArray[np.float64]]:
    """Channels, speeds (km/h) and large-scale gains (dB; 0 for the CDL generators, whose
    channels carry no path loss)."""
    if settings.generator == "sionna-uma":
        from mecllm.systems.air.sionna_channels import sionna_uma_drops

        return sionna_uma_drops(settings, size, rng)
    if settings.generator == "sionna":
        from mecllm.systems.air.sionna_channels import sionna_drops

        channels, speeds = sionna_drops(settings, size, rng)
    else:
        channels, speeds = cdl_drops(settings, size, rng)
    return channels, speeds, np.zeros(size)


@dataclass(frozen=True)
class AirData:
    """The channels of one instance, opened read-only.

    Attributes
    ----------
    settings : AirSettings
    seed : int
    channels : complex64 memory map, shape (drops, slots, antennas, 2K)
    speeds_kmh : float array, shape (drops,)
    gains_db : float array, shape (drops,)
    """

    settings: AirSettings
    seed: int
    channels: ComplexArray
    speeds_kmh: NDArray[np.float64]
    gains_db: NDArray[np.float64]

    @classmethod
    def open(cls, settings: AirSettings, seed: int, folder: Path) -> AirData:
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise InvalidInputError(f"{folder} holds no channels yet (generate them first)")
        if json.loads(meta_path.read_text()) != _meta(settings, seed):
            raise InvalidInputError(f"{folder} holds channels of other settings or seed")
        channels = np.load(folder / "channels.npy", mmap_mode="r")
        speeds = np.load(folder / "speeds.npy")
        gains_path = folder / "gains_db.npy"
        # Folders made before gains were recorded hold CDL drops only: 0 dB.
        gains = np.load(gains_path) if gains_path.exists() else np.zeros(speeds.size)
        return cls(settings, seed, channels, speeds, gains)

    def rows(self, split: Split) -> slice:
        """The drops of ``split`` (for ``train``, the share predictors learn from)."""
        rows = split_range(self.settings, split)
        if split == "train":
            return slice(rows.start, rows.start + self.settings.used_train_drops)
        return rows

    def target(self, split: Split) -> ComplexArray:
        """Clean future channels, shape (n, horizon, antennas, K): the uplink band (tdd) or
        the downlink band (fdd)."""
        s = self.settings
        band = slice(0, s.subcarriers) if s.mode == "tdd" else slice(s.subcarriers, None)
        return np.ascontiguousarray(self.channels[self.rows(split), s.history :, :, band])

    def clean_history(self, split: Split) -> ComplexArray:
        """Clean past uplink channels, shape (n, history, antennas, K)."""
        s = self.settings
        return np.ascontiguousarray(
            self.channels[self.rows(split), : s.history, :, : s.subcarriers]
        )

    def snr_db(self, split: Split, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
        """Each drop's history SNR: uniform in the training range for ``train`` (drawn from
        ``rng``, default the split's own noise stream), the test SNR otherwise."""
        s = self.settings
        n = self.rows(split).stop - self.rows(split).start
        if split == "train":
            rng = rng or np.random.default_rng([self.seed, 10])
            return np.asarray(rng.uniform(s.train_snr_min_db, s.train_snr_max_db, n), dtype=float)
        return np.full(n, s.test_snr_db)

    def history(
        self, split: Split, rng: np.random.Generator | None = None
    ) -> tuple[ComplexArray, NDArray[np.float64]]:
        """Noisy past uplink channels (n, history, antennas, K) and each drop's noise
        variance (n,) relative to the drop's unit mean power.

        Without ``rng`` the noise is the split's fixed draw (stream ``[seed, 20 + split]``),
        so every predictor sees the same noisy test history.
        """
        clean = self.clean_history(split)
        index = SPLITS.index(split)
        noise_rng = rng or np.random.default_rng([self.seed, 20 + index])
        snr = self.snr_db(split, rng or np.random.default_rng([self.seed, 10]))
        power = np.mean(np.abs(clean) ** 2, axis=(1, 2, 3))
        variance = power * 10.0 ** (-snr / 10.0)
        noise = noise_rng.standard_normal((*clean.shape, 2), dtype=np.float32)
        scale = np.sqrt(variance / 2).astype(np.float32)[:, None, None, None]
        noisy = clean + scale * (noise[..., 0] + 1j * noise[..., 1])
        return noisy.astype(np.complex64), variance

    def speeds(self, split: Split) -> NDArray[np.float64]:
        return self.speeds_kmh[self.rows(split)]
