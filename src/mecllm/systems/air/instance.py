"""The ``edge-air`` instance: a channel-prediction data set named by its settings and seed.

JSON::

    {"kind": "edge-air", "name": "...", "preset": "tiny", "seed": 0,
     "settings": {...every AirSettings field...}, "data_dir": null}

The channels are not in the file: they are generated from (settings, seed) into ``data_dir``
on first use, by default a folder under ``$MECLLM_AIR_DATA`` (or ``~/.cache/mecllm/air``) named
by a digest of the settings and seed, so that every command on the same instance shares them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_text
from mecllm.systems.air.dataset import AirData, materialise
from mecllm.systems.air.settings import AirSettings, settings_from_dict

#: The value of the JSON ``kind`` field of this system.
KIND = "edge-air"
_FIELDS = {"kind", "name", "preset", "seed", "settings", "data_dir"}


def data_root() -> Path:
    """Where data sets go when an instance names no ``data_dir``."""
    root = os.environ.get("MECLLM_AIR_DATA")
    return Path(root) if root else Path.home() / ".cache" / "mecllm" / "air"


@dataclass(frozen=True)
class AirInstance:
    """A data set recipe: settings, seed and where its channels live."""

    settings: AirSettings
    seed: int = 0
    name: str = ""
    preset: str = ""
    data_dir: str | None = None
    kind: str = KIND

    @property
    def digest(self) -> str:
        """16 hex digits naming (settings, seed)."""
        text = json.dumps(
            {"settings": self.settings.data_dict(), "seed": self.seed}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def folder(self) -> Path:
        """The data folder of this instance."""
        if self.data_dir:
            return Path(self.data_dir)
        return data_root() / self.digest

    def data(self, progress: Callable[[int, int], None] | None = None) -> AirData:
        """The channels, generated first if the folder has none."""
        materialise(self.settings, self.seed, self.folder, progress)
        return AirData.open(self.settings, self.seed, self.folder)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "name": self.name,
            "preset": self.preset,
            "seed": self.seed,
            "settings": self.settings.to_dict(),
            "data_dir": self.data_dir,
        }

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: object) -> AirInstance:
        if not isinstance(data, dict):
            raise InvalidInputError("an edge-air instance must be a JSON object")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise InvalidInputError(
                f"unknown fields in the edge-air instance: {', '.join(unknown)}"
            )
        if data.get("kind", KIND) != KIND:
            raise InvalidInputError(f"kind must be {KIND!r}")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
        if "settings" not in data:
            raise InvalidInputError("the edge-air instance has no settings")
        data_dir = data.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise InvalidInputError("data_dir must be a string or null")
        for key in ("name", "preset"):
            if not isinstance(data.get(key, ""), str):
                raise InvalidInputError(f"{key} must be a string")
        return cls(
            settings=settings_from_dict(data["settings"]),
            seed=seed,
            name=data.get("name", ""),
            preset=data.get("preset", ""),
            data_dir=data_dir,
        )
