"""What an ``edge-air`` solve produces: the predicted channels of the test drops, the
predictor's costs, and the files they are kept in.

A solution is two files: ``plan.json`` (figures, the predictor, the predictions' file name,
shape and SHA-256) and the predictions themselves beside it, ``plan.npy`` (complex64,
``(test drops, horizon, antennas, K)``). Both are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import atomic_write_bytes, atomic_write_text, read_json
from mecllm.core.result import Result
from mecllm.systems.air.cdl import ComplexArray
from mecllm.systems.air.instance import KIND, AirInstance


@dataclass(frozen=True)
class PredictorCost:
    """What a predictor costs on this machine (docs/air.md section 5).

    Attributes
    ----------
    parameters, trained_parameters : int
    fit_s : float, s
        Fitting or training time (0 when the weights came from the cache).
    epochs : int
        Training epochs run (0 for fitted predictors).
    ms_per_drop_batch1, ms_per_drop_batch256 : float, ms
        Prediction time per drop at batch size 1 and 256.
    threads : int
        torch / BLAS threads the times were taken with.
    """

    parameters: int = 0
    trained_parameters: int = 0
    fit_s: float = 0.0
    epochs: int = 0
    ms_per_drop_batch1: float = 0.0
    ms_per_drop_batch256: float = 0.0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class AirPlan:
    """Predictions of the test drops by one predictor: ``(test, horizon, antennas, K)``."""

    algorithm: str
    predictions: ComplexArray

    def to_dict(self) -> dict[str, Any]:
        """The plan's part of the solution JSON (the array itself goes to its own file)."""
        return {"shape": list(self.predictions.shape)}


@dataclass(frozen=True, eq=False, kw_only=True)
class AirResult(Result[AirPlan]):
    """A solve's outcome (:class:`~mecllm.core.result.Result`): the plan, its NMSE per step
    and over all steps (dB), and the predictor's costs."""

    kind: ClassVar[str] = KIND

    nmse_db: list[float] = field(default_factory=list)
    nmse_db_mean: float = 0.0
    cost: PredictorCost = field(default_factory=PredictorCost)

    def figures(self) -> dict[str, Any]:
        return {
            "nmse_db": self.nmse_db,
            "nmse_db_mean": self.nmse_db_mean,
            "cost": self.cost.to_dict(),
        }

    def save(self, path: str | Path) -> None:
        """Write the predictions beside ``path`` (``.npy``), then the solution JSON naming
        them with their SHA-256."""
        path = Path(path)
        array_path = path.with_suffix(".npy")
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(self.plan.predictions, dtype=np.complex64))
        raw = buffer.getvalue()
        atomic_write_bytes(array_path, raw)
        payload = self.to_dict()
        payload["predictions"] = array_path.name
        payload["sha256"] = hashlib.sha256(raw).hexdigest()
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def load_air_plan(path: Path, instance: AirInstance) -> AirPlan:
    """Read a solution and its predictions, checking the file's digest and the shape the
    instance implies."""
    stored = read_json(path, "solution")
    if not isinstance(stored, dict) or stored.get("system") != KIND:
        raise InvalidInputError(f"{path} is not an {KIND} solution")
    name = stored.get("predictions")
    if not isinstance(name, str):
        raise InvalidInputError(f"{path} names no predictions file")
    array_path = path.parent / name
    try:
        raw = array_path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"predictions file {array_path} cannot be read: {exc}") from None
    if hashlib.sha256(raw).hexdigest() != stored.get("sha256"):
        raise InvalidInputError(f"{array_path} does not match the digest in {path}")
    try:
        predictions = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise InvalidInputError(f"{array_path} is not a NumPy array file: {exc}") from None
    s = instance.settings
    want = (s.test_drops, s.horizon, s.antennas, s.subcarriers)
    if predictions.shape != want or predictions.dtype != np.complex64:
        raise InvalidInputError(
            f"{array_path} holds {predictions.dtype} {predictions.shape}; this instance needs "
            f"complex64 {want}"
        )
    if not np.all(np.isfinite(predictions.view(np.float32))):
        raise InvalidInputError(f"{array_path} holds non-finite values")
    return AirPlan(str(stored.get("algorithm", "")), predictions)
