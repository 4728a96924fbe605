"""Settings of a channel-prediction data set (docs/air.md section 3) and its presets.

An ``edge-air`` instance is a recipe, not data: these settings and a seed. The channels are
generated from them into memory-mapped files on first use (:mod:`mecllm.systems.air.dataset`)
and never stored in the instance file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from mecllm.core.errors import InvalidInputError
from mecllm.core.settings import replace_settings

Generator = Literal["numpy", "sionna", "sionna-uma"]
TokenLayout = Literal["drop", "antenna", "subcarrier"]
Base = Literal["outdated", "wiener"]
Mode = Literal["tdd", "fdd"]
CdlModel = Literal["A", "B", "C", "D", "E"]

GENERATORS: tuple[Generator, ...] = ("numpy", "sionna", "sionna-uma")
#: Users of one UMa sector (``sionna-uma``: consecutive drops of a split share a sector).
UMA_USERS_PER_SECTOR = 10
MODES: tuple[Mode, ...] = ("tdd", "fdd")
CDL_MODELS: tuple[CdlModel, ...] = ("A", "B", "C", "D", "E")
TOKEN_LAYOUTS: tuple[TokenLayout, ...] = ("drop", "antenna", "subcarrier")
BASES: tuple[Base, ...] = ("outdated", "wiener")


@dataclass(frozen=True)
class AirSettings:
    """One data set: the channel model, the array, the time and frequency grid, the split.

    Attributes
    ----------
    generator : "numpy", "sionna" or "sionna-uma"
        The NumPy CDL of this package (no extra install), Sionna's 38.901 CDL, or users of
        Sionna's 38.901 UMa sectors with their large-scale gains (``pip install
        'mecllm[air]'`` for both Sionna ones).
    cdl_model : "A" .. "E"
        The 38.901 CDL profile (C: NLOS, the training default).
    test_cdl_model : "" or "A" .. "E"
        Another profile for the test drops only (zero-shot: train on one, test on another);
        empty: the same as ``cdl_model``.
    delay_spread_ns : float, ns
        The RMS delay spread the normalised CDL delays are scaled by.
    carrier_hz : float, Hz
    subcarrier_hz : float, Hz
        Subcarrier spacing.
    subcarriers : int
        K, subcarriers per link; the data hold 2K (K uplink, then K downlink).
    rows, cols : int
        The base station's UPA (dual cross-polarised: ``2 rows cols`` antennas).
    history, horizon : int
        Past slots seen, future slots predicted.
    slot_s : float, s
    speed_min_kmh, speed_max_kmh : float, km/h
        Each drop's speed is uniform in this range (direction random, as Sionna draws it).
    train_drops, val_drops, test_drops : int
        Drops (one user trajectory each) per split; each split has its own seed stream.
    train_snr_min_db, train_snr_max_db : float, dB
        History noise of a training drop, uniform in this range.
    test_snr_db : float, dB
        History noise of validation and test drops.
    mode : "tdd" or "fdd"
        The target is the uplink band (tdd) or the downlink band next to it (fdd).
    users : int
        Users served at once in the multi-user beamforming score (drawn from test drops).
    train_fraction : float
        The share of the training drops predictors learn from (the first ones; few-shot: 0.1).
    bf_snr_db : float, dB
        An SNR of the multi-user score beside 0, 10 and 20 dB (the SNR sweep's axis).
    epochs, batch, learning_rate, adapters :
        Training of the neural predictors (at most ``epochs`` passes, ``batch`` drops a step,
        Adam's rate; ``adapters``: ``lm``'s bottleneck adapters train too). They do not change
        the data (:meth:`data_dict`).
    lora_rank : int
        ``lm`` / ``lm-random``: rank of a trained LoRA update of every block's query and value
        projections (0: none).
    epoch_sequences : int
        Token sequences a network trains on per epoch, drawn afresh each epoch (0: all).
    token_layout, preprocessor, base :
        How the networks read the history and what they correct (docs/air.md section 4):
        ``drop``, ``antenna`` or ``subcarrier`` tokens, a transformed copy of each token, and
        the base prediction the network's output is added to (``outdated`` or ``wiener``).
    """

    generator: Generator = "numpy"
    cdl_model: CdlModel = "C"
    test_cdl_model: str = ""
    delay_spread_ns: float = 300.0
    carrier_hz: float = 2.4e9
    subcarrier_hz: float = 180e3
    subcarriers: int = 48
    rows: int = 4
    cols: int = 4
    history: int = 16
    horizon: int = 4
    slot_s: float = 0.5e-3
    speed_min_kmh: float = 10.0
    speed_max_kmh: float = 100.0
    train_drops: int = 1600
    val_drops: int = 200
    test_drops: int = 200
    train_snr_min_db: float = 5.0
    train_snr_max_db: float = 20.0
    test_snr_db: float = 18.0
    mode: Mode = "tdd"
    users: int = 4
    train_fraction: float = 1.0
    bf_snr_db: float = 10.0
    epochs: int = 30
    batch: int = 32
    learning_rate: float = 1e-3
    adapters: bool = False
    lora_rank: int = 0
    epoch_sequences: int = 0
    token_layout: TokenLayout = "drop"
    preprocessor: bool = False
    base: Base = "outdated"

    @property
    def antennas(self) -> int:
        """A, base-station antennas (two polarisations per element)."""
        return 2 * self.rows * self.cols

    @property
    def slots(self) -> int:
        """Slots per drop: history then horizon."""
        return self.history + self.horizon

    @property
    def used_train_drops(self) -> int:
        """Training drops the predictors learn from (``train_fraction`` of them, at least 2)."""
        return max(2, round(self.train_fraction * self.train_drops))

    @property
    def drops(self) -> int:
        """All drops of the three splits."""
        return self.train_drops + self.val_drops + self.test_drops

    def validate(self) -> None:
        """Refuse out-of-range values with one line naming the setting."""
        if self.generator not in GENERATORS:
            raise InvalidInputError(f"generator must be one of {', '.join(GENERATORS)}")
        if self.cdl_model not in CDL_MODELS:
            raise InvalidInputError(f"cdl_model must be one of {', '.join(CDL_MODELS)}")
        if self.mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}")
        positive = (
            "delay_spread_ns",
            "carrier_hz",
            "subcarrier_hz",
            "slot_s",
        )
        for name in positive:
            if not float(getattr(self, name)) > 0:
                raise InvalidInputError(f"{name} must be > 0, got {getattr(self, name)}")
        for name, low in (
            ("subcarriers", 1),
            ("rows", 1),
            ("cols", 1),
            ("history", 2),
            ("horizon", 1),
            ("train_drops", 2),
            ("val_drops", 1),
            ("test_drops", 1),
            ("users", 1),
            ("epochs", 1),
            ("batch", 1),
            ("lora_rank", 0),
            ("epoch_sequences", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= self.speed_min_kmh <= self.speed_max_kmh:
            raise InvalidInputError("need 0 <= speed_min_kmh <= speed_max_kmh")
        if self.test_cdl_model not in ("", *CDL_MODELS):
            raise InvalidInputError(
                f"test_cdl_model must be empty or one of {', '.join(CDL_MODELS)}"
            )
        if not 0 < self.train_fraction <= 1:
            raise InvalidInputError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if not 0 < self.learning_rate < 1:
            raise InvalidInputError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.train_snr_min_db > self.train_snr_max_db:
            raise InvalidInputError("need train_snr_min_db <= train_snr_max_db")
        if self.users > self.test_drops:
            raise InvalidInputError(
                f"users ({self.users}) must not exceed test_drops ({self.test_drops})"
            )
        size = self.drops * self.slots * self.antennas * 2 * self.subcarriers * 8
        if size > 64 * 2**30:
            raise InvalidInputError(
                f"the data set would take {size / 2**30:.1f} GiB (limit 64): fewer drops, "
                "antennas or subcarriers"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def data_dict(self) -> dict[str, Any]:
        """The settings the channels depend on (what names a data folder)."""
        training = {
            "epochs", "batch", "learning_rate", "adapters", "users", "bf_snr_db",
            "token_layout", "preprocessor", "base", "train_fraction", "lora_rank",
            "epoch_sequences",
        }  # fmt: skip
        return {k: v for k, v in asdict(self).items() if k not in training}


#: The presets (docs/air.md section 3): ``tiny`` for unit tests without Sionna, ``small`` for
#: the docs' tables, ``default`` for the reproduction.
PRESETS: dict[str, AirSettings] = {
    "tiny": AirSettings(
        subcarriers=16, train_drops=160, val_drops=20, test_drops=20, generator="numpy"
    ),
    "small": AirSettings(train_drops=1600, val_drops=200, test_drops=200, generator="sionna"),
    "small-numpy": AirSettings(train_drops=1600, val_drops=200, test_drops=200, generator="numpy"),
    "default": AirSettings(train_drops=8000, val_drops=1000, test_drops=1000, generator="sionna"),
    "uma-cell": AirSettings(
        train_drops=1600, val_drops=200, test_drops=200, generator="sionna-uma"
    ),
}


def air_preset(name: str, **overrides: Any) -> AirSettings:
    """The named preset with ``overrides`` (unknown names and settings refused)."""
    if name not in PRESETS:
        raise InvalidInputError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    settings = with_changes(PRESETS[name], overrides)
    settings.validate()
    return settings


#: The settings that take a name, with the names they take.
_CHOICES: dict[str, tuple[str, ...]] = {
    "generator": GENERATORS,
    "cdl_model": CDL_MODELS,
    "mode": MODES,
    "token_layout": TOKEN_LAYOUTS,
    "test_cdl_model": ("", *CDL_MODELS),
    "base": BASES,
}


def with_changes(settings: AirSettings, changes: dict[str, Any]) -> AirSettings:
    """``settings`` with ``changes``: numbers checked by :func:`replace_settings`, names
    against their choices."""
    numbers = {k: v for k, v in changes.items() if k not in _CHOICES}
    named: dict[str, Any] = {}
    for key in set(changes) & set(_CHOICES):
        value = changes[key]
        if value not in _CHOICES[key]:
            raise InvalidInputError(
                f"{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}"
            )
        named[key] = value
    return replace(replace_settings(settings, numbers), **named)


def settings_from_dict(data: object) -> AirSettings:
    """Settings from JSON (every field optional; unknown names refused)."""
    if not isinstance(data, dict):
        raise InvalidInputError("settings must be an object")
    known = {f.name for f in fields(AirSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(f"unknown settings: {', '.join(unknown)}")
    settings = with_changes(AirSettings(), data)
    settings.validate()
    return settings
