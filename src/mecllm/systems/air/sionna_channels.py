"""Drops from Sionna's 3GPP TR 38.901 CDL (``pip install 'mecllm[air]'``, PyTorch backend).

The same layout as :func:`mecllm.systems.air.cdl.cdl_drops`: uplink from a single-antenna user
(``PanelArray`` 1x1, single V, omni) to the base station's ``rows x cols`` dual cross-polarised
``38.901`` panel, ``cir_to_ofdm_channel(..., normalize=True)`` on ``2K`` subcarriers, then each
drop scaled to unit mean power as the NumPy generator does. Sionna draws from its own global
seed, which is set from ``rng`` for every batch, and the users' velocities are drawn here
(as :func:`~mecllm.systems.air.cdl.velocities`), so a data set is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from mecllm.core.errors import InvalidInputError
from mecllm.systems.air.cdl import ComplexArray, velocities
from mecllm.systems.air.settings import UMA_USERS_PER_SECTOR, AirSettings

#: Drops generated per Sionna call (memory: about 0.5 MB a drop at K = 48).
BATCH = 250


def antenna_order(settings: AirSettings) -> NDArray[np.int64]:
    """Sionna's antenna index of each antenna in this package's order (row, column,
    polarisation): Sionna lists the first polarisation's elements column by column, then the
    second's."""
    r, c, p = np.meshgrid(
        np.arange(settings.rows), np.arange(settings.cols), np.arange(2), indexing="ij"
    )
    order = p * settings.rows * settings.cols + c * settings.rows + r
    return np.asarray(order.ravel(), dtype=np.int64)


def sionna_drops(
    settings: AirSettings,
    count: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> tuple[ComplexArray, NDArray[np.float64]]:
    """Draw ``count`` drops with Sionna; see :func:`mecllm.systems.air.cdl.cdl_drops`."""
    try:
        import sionna.phy as sn
        import torch
        from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
        from sionna.phy.channel.tr38901 import CDL
    except ImportError as exc:
        raise _missing("sionna") from exc
    bs, ut = _arrays(settings)
    freqs = subcarrier_frequencies(2 * settings.subcarriers, settings.subcarrier_hz)
    out, speeds = _empty(settings, count)
    done = 0
    with torch.no_grad():
        while done < count:
            size = min(BATCH, count - done)
            sn.config.seed = int(rng.integers(2**31 - 1))
            speed = rng.uniform(settings.speed_min_kmh, settings.speed_max_kmh, size)
            velocity = velocities(speed, rng)
            model = CDL(
                settings.cdl_model,
                settings.delay_spread_ns * 1e-9,
                settings.carrier_hz,
                ut_array=ut,
                bs_array=bs,
                direction="uplink",
                ut_velocity=torch.as_tensor(velocity, dtype=torch.float32),
            )
            a, tau = model(size, settings.slots, 1.0 / settings.slot_s)
            # a: [batch, rx, rx_ant, tx, tx_ant, paths, time]
            h = cir_to_ofdm_channel(freqs, a, tau, normalize=True)
            # h: [batch, rx, rx_ant, tx, tx_ant, time, subcarriers]
            grid = h[:, 0, :, 0, 0].permute(0, 2, 1, 3).cpu().numpy()  # (b, time, ant, k)
            grid = grid[:, :, antenna_order(settings)]
            power = np.mean(np.abs(grid) ** 2, axis=(1, 2, 3), keepdims=True)
            out[done : done + size] = (grid / np.sqrt(power)).astype(np.complex64)
            speeds[done : done + size] = speed
            done += size
            if progress is not None:
                progress(size)
    return out, speeds


def sionna_uma_drops(
    settings: AirSettings,
    count: int,
    rng: np.random.Generator,
) -> tuple[ComplexArray, NDArray[np.float64], NDArray[np.float64]]:
    """Draw ``count`` users of 3GPP UMa sectors (Sionna's ``UMa`` with path loss and shadow
    fading, ``gen_single_sector_topology``, 10 users a sector, O2I loss "low").

    Returns the channels (unit mean power per drop, as the CDL generators), the speeds (km/h)
    and each user's large-scale gain (dB): the mean channel power per antenna and subcarrier
    before the scaling (path loss, shadowing, antenna gains).
    """
    try:
        import sionna.phy as sn
        import torch
        from sionna.phy.channel import (
            cir_to_ofdm_channel,
            gen_single_sector_topology,
            subcarrier_frequencies,
        )
        from sionna.phy.channel.tr38901 import UMa
    except ImportError as exc:
        raise _missing("sionna-uma") from exc
    bs, ut = _arrays(settings)
    freqs = subcarrier_frequencies(2 * settings.subcarriers, settings.subcarrier_hz)
    out, speeds = _empty(settings, count)
    gains = np.empty(count)
    done = 0
    per = UMA_USERS_PER_SECTOR
    with torch.no_grad():
        while done < count:
            sectors = min(max(1, BATCH // per), -(-(count - done) // per))
            sn.config.seed = int(rng.integers(2**31 - 1))
            topology = gen_single_sector_topology(
                sectors,
                per,
                "uma",
                min_ut_velocity=settings.speed_min_kmh / 3.6,
                max_ut_velocity=settings.speed_max_kmh / 3.6,
            )
            model = UMa(settings.carrier_hz, "low", ut, bs, "uplink")
            model.set_topology(*topology)
            a, tau = model(settings.slots, 1.0 / settings.slot_s)
            # a: [sectors, rx=1, rx_ant, tx=users, tx_ant=1, paths, time]
            h = cir_to_ofdm_channel(freqs, a, tau, normalize=False)
            # h: [sectors, 1, ant, users, 1, time, k] -> (sectors users, time, ant, k)
            grid = (
                h[:, 0, :, :, 0]
                .permute(0, 2, 3, 1, 4)
                .reshape(sectors * per, settings.slots, settings.antennas, -1)
                .cpu()
                .numpy()
            )
            grid = grid[:, :, antenna_order(settings)]
            power = np.mean(np.abs(grid) ** 2, axis=(1, 2, 3))
            velocity = topology[4].reshape(sectors * per, 3).cpu().numpy()
            take = min(sectors * per, count - done)
            scaled = grid / np.sqrt(np.maximum(power, 1e-300))[:, None, None, None]
            out[done : done + take] = scaled[:take].astype(np.complex64)
            gains[done : done + take] = 10 * np.log10(np.maximum(power[:take], 1e-300))
            speeds[done : done + take] = np.linalg.norm(velocity[:take], axis=1) * 3.6
            done += take
    return out, speeds, gains


def _missing(generator: str) -> InvalidInputError:
    return InvalidInputError(
        f"generator {generator!r} needs Sionna: pip install -c requirements/constraints.txt "
        "-e '.[air]' (or use --set generator=numpy)"
    )


def _empty(settings: AirSettings, count: int) -> tuple[ComplexArray, NDArray[np.float64]]:
    """Room for ``count`` drops' channels and speeds."""
    shape = (count, settings.slots, settings.antennas, 2 * settings.subcarriers)
    return np.empty(shape, dtype=np.complex64), np.empty(count)


def _arrays(settings: AirSettings) -> tuple[object, object]:
    from sionna.phy.channel.tr38901 import PanelArray

    bs = PanelArray(
        num_rows_per_panel=settings.rows,
        num_cols_per_panel=settings.cols,
        polarization="dual",
        polarization_type="cross",
        antenna_pattern="38.901",
        carrier_frequency=settings.carrier_hz,
    )
    ut = PanelArray(
        num_rows_per_panel=1,
        num_cols_per_panel=1,
        polarization="single",
        polarization_type="V",
        antenna_pattern="omni",
        carrier_frequency=settings.carrier_hz,
    )
    return bs, ut
