"""A NumPy 3GPP TR 38.901 CDL channel (section 7.7.1) for an uplink with mobility.

One drop is one user trajectory: a single-antenna user (vertically polarised, omnidirectional)
moving at a constant velocity, sending to a base station with a ``rows x cols`` dual
cross-polarised (+-45 deg) uniform planar array of 38.901 elements (Table 7.3-1, 8 dBi) at half
a wavelength. Per drop: the ray angles of the CDL table with the intra-cluster offsets of Table
7.5-3, random coupling of rays (step 2), random initial phases and the table's XPR, the Doppler
of each ray from the user's velocity; the channel is evaluated on an OFDM grid of ``2K``
subcarriers (uplink then downlink) at every slot and normalised to unit mean power per drop.

What differs from Sionna's CDL (checked against it in docs/air.md section 3): no antenna
orientation other than Sionna's defaults is supported, and the LOS models' specular path is a
single ray carrying its table power (Sionna splits it by the K-factor; the powers are the same).
Sionna's velocity draw is copied: speed uniform in the range, azimuth uniform in [0, 2 pi),
elevation uniform in [0, pi].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from mecllm.systems.air.settings import AirSettings

ComplexArray = NDArray[np.complex64]

SPEED_OF_LIGHT = 299_792_458.0
#: Table 7.5-3: ray offset angles within a cluster (rays per cluster: 20).
RAY_OFFSETS = np.array(
    [0.0447, -0.0447, 0.1413, -0.1413, 0.2492, -0.2492, 0.3715, -0.3715, 0.5129, -0.5129,
     0.6797, -0.6797, 0.8844, -0.8844, 1.1481, -1.1481, 1.5195, -1.5195, 2.1551, -2.1551]
)  # fmt: skip
RAYS = RAY_OFFSETS.size


@dataclass(frozen=True)
class CdlTable:
    """One CDL profile (angles in degrees, powers linear and summing to one)."""

    los: bool
    delays: NDArray[np.float64]
    powers: NDArray[np.float64]
    aod: NDArray[np.float64]
    aoa: NDArray[np.float64]
    zod: NDArray[np.float64]
    zoa: NDArray[np.float64]
    c_asd: float
    c_asa: float
    c_zsd: float
    c_zsa: float
    xpr_db: float


@cache
def cdl_table(model: str) -> CdlTable:
    """The packaged CDL table of ``model`` ("A" .. "E")."""
    text = resources.files("mecllm.systems.air").joinpath("cdl_tables.json").read_text()
    raw = json.loads(text)["models"][model]
    powers = 10.0 ** (np.asarray(raw["powers"], dtype=float) / 10.0)
    return CdlTable(
        los=bool(raw["los"]),
        delays=np.asarray(raw["delays"], dtype=float),
        powers=powers / powers.sum(),
        aod=np.asarray(raw["aod"], dtype=float),
        aoa=np.asarray(raw["aoa"], dtype=float),
        zod=np.asarray(raw["zod"], dtype=float),
        zoa=np.asarray(raw["zoa"], dtype=float),
        c_asd=float(raw["cASD"]),
        c_asa=float(raw["cASA"]),
        c_zsd=float(raw["cZSD"]),
        c_zsa=float(raw["cZSA"]),
        xpr_db=float(raw["xpr"]),
    )


def unit_vector(zenith: NDArray[np.float64], azimuth: NDArray[np.float64]) -> NDArray[np.float64]:
    """Spherical unit vectors, shape ``zenith.shape + (3,)`` (angles in radians)."""
    return np.stack(
        (np.sin(zenith) * np.cos(azimuth), np.sin(zenith) * np.sin(azimuth), np.cos(zenith)),
        axis=-1,
    )


def element_field(
    zenith: NDArray[np.float64], azimuth: NDArray[np.float64], slant_rad: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The 38.901 element's field (Table 7.3-1, polarisation model 2) for slant angles.

    Returns ``(F_theta, F_phi)`` of shape ``zenith.shape + slant_rad.shape``.
    """
    theta_deg = np.degrees(zenith)
    phi_deg = (np.degrees(azimuth) + 180.0) % 360.0 - 180.0
    vertical = -np.minimum(12.0 * ((theta_deg - 90.0) / 65.0) ** 2, 30.0)
    horizontal = -np.minimum(12.0 * (phi_deg / 65.0) ** 2, 30.0)
    gain_db = 8.0 - np.minimum(-(vertical + horizontal), 30.0)
    amplitude = np.sqrt(10.0 ** (gain_db / 10.0))[..., None]
    return amplitude * np.cos(slant_rad), amplitude * np.sin(slant_rad)


def array_positions(rows: int, cols: int, wavelength: float) -> NDArray[np.float64]:
    """Element positions of the UPA in the y-z plane, shape ``(rows cols, 3)`` in m."""
    z, y = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    spacing = wavelength / 2
    return np.stack((np.zeros(rows * cols), y.ravel() * spacing, z.ravel() * spacing), axis=1)


def subcarrier_offsets(settings: AirSettings) -> NDArray[np.float64]:
    """Baseband frequencies of the ``2K`` subcarriers (uplink then downlink), Hz."""
    total = 2 * settings.subcarriers
    return np.asarray((np.arange(total) - (total - 1) / 2) * settings.subcarrier_hz, dtype=float)


def cdl_drops(
    settings: AirSettings, count: int, rng: np.random.Generator
) -> tuple[ComplexArray, NDArray[np.float64]]:
    """Draw ``count`` drops.

    Returns
    -------
    channels : complex64 array, shape (count, slots, antennas, 2K)
        Frequency response per slot, BS antenna and subcarrier, unit mean power per drop.
        Antennas are ordered (row, column, polarisation +45 then -45 deg).
    speeds_kmh : float array, shape (count,)
    """
    table = cdl_table(settings.cdl_model)
    wavelength = SPEED_OF_LIGHT / settings.carrier_hz
    positions = array_positions(settings.rows, settings.cols, wavelength)  # (E, 3)
    slants = np.radians([45.0, -45.0])
    times = np.arange(settings.slots) * settings.slot_s
    freqs = subcarrier_offsets(settings)
    delays = table.delays * settings.delay_spread_ns * 1e-9
    # Clusters x rays; the specular path of a LOS model is one ray.
    n_clusters = table.delays.size
    ray_weight = np.full((n_clusters, RAYS), 1.0 / RAYS)
    offsets = np.broadcast_to(RAY_OFFSETS, (n_clusters, RAYS)).copy()
    if table.los:
        ray_weight[0] = 0.0
        ray_weight[0, 0] = 1.0
        offsets[0] = 0.0
    amplitude = np.sqrt(table.powers[:, None] * ray_weight)  # (C, R)
    xpr = 10.0 ** (table.xpr_db / 10.0)
    # Per-cluster delay phases over the grid: (C, 2K).
    delay_phase = np.exp(-2j * np.pi * delays[:, None] * freqs[None, :])
    out = np.empty((count, settings.slots, settings.antennas, freqs.size), dtype=np.complex64)
    speeds = rng.uniform(settings.speed_min_kmh, settings.speed_max_kmh, count)
    for d in range(count):
        # Uplink: the BS receives at the table's departure angles, the user sends at its
        # arrival angles; ray angles coupled at random within each cluster.
        bs_az = table.aod[:, None] + table.c_asd * _coupled(offsets, rng)
        bs_ze = table.zod[:, None] + table.c_zsd * _coupled(offsets, rng)
        ut_az = table.aoa[:, None] + table.c_asa * offsets
        ut_ze = table.zoa[:, None] + table.c_zsa * _coupled(offsets, rng)
        bs_az, bs_ze, ut_az, ut_ze = (np.radians(a) for a in (bs_az, bs_ze, ut_az, ut_ze))
        f_theta, f_phi = element_field(bs_ze, bs_az, slants)  # (C, R, 2)
        phases = rng.uniform(-np.pi, np.pi, (2, n_clusters, RAYS))
        # The user's field is vertical: [1, 0]; the polarisation matrix's first column.
        pol = f_theta * np.exp(1j * phases[0])[..., None] + f_phi * (
            np.exp(1j * phases[1])[..., None] / np.sqrt(xpr)
        )  # (C, R, 2)
        if table.los:
            # 38.901 (7.5-29): the specular path's polarisation matrix is diag(1, -1).
            los_phase = np.exp(1j * rng.uniform(-np.pi, np.pi))
            pol[0, 0] = f_theta[0, 0] * los_phase
        bs_dir = unit_vector(bs_ze, bs_az)  # (C, R, 3)
        steering = np.exp(2j * np.pi * (bs_dir @ positions.T) / wavelength)  # (C, R, E)
        velocity = velocities(speeds[d : d + 1], rng)[0]
        doppler = unit_vector(ut_ze, ut_az) @ velocity / wavelength  # (C, R) Hz
        time_phase = np.exp(2j * np.pi * doppler[..., None] * times)  # (C, R, T)
        # Per cluster, slot, element, polarisation: sum over rays.
        per_cluster = np.einsum(
            "cr,crp,cre,crt->ctep", amplitude, pol, steering, time_phase, optimize=True
        )
        per_cluster = per_cluster.reshape(n_clusters, settings.slots, settings.antennas)
        grid = np.einsum("cta,ck->tak", per_cluster, delay_phase, optimize=True)
        grid /= np.sqrt(np.mean(np.abs(grid) ** 2))
        out[d] = grid.astype(np.complex64)
    return out, speeds


def velocities(speeds_kmh: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """Velocity vectors (m/s), shape ``speeds.shape + (3,)``, drawn as Sionna's CDL draws them:
    azimuth uniform in [0, 2 pi), zenith uniform in [0, pi]."""
    azimuth = rng.uniform(0, 2 * np.pi, np.shape(speeds_kmh))
    zenith = rng.uniform(0, np.pi, np.shape(speeds_kmh))
    return (np.asarray(speeds_kmh) / 3.6)[..., None] * unit_vector(zenith, azimuth)


def _coupled(offsets: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """The ray offsets permuted independently within each cluster (38.901 7.7.1 step 2)."""
    return rng.permuted(offsets, axis=1)
