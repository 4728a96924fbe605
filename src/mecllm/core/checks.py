"""Validation of raw (JSON-like) input, with messages that name the field, the rule and the value.

Every function here takes the value found at ``path`` (a dotted field name such as
``servers.bandwidth_hz``) and either returns a clean NumPy value or raises
:class:`~mecllm.core.errors.InvalidInputError` with one sentence such as
``servers.bandwidth_hz[1] must be > 0, got -5.0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mecllm.core.arrays import FloatArray
from mecllm.core.errors import InvalidInputError


def fail(path: str, rule: str, value: object) -> InvalidInputError:
    """Build the error for ``path`` breaking ``rule`` with ``value`` (caller raises it)."""
    return InvalidInputError(f"{path} {rule}, got {_show(value)}")


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def section(data: Mapping[str, Any], key: str, path: str = "") -> Mapping[str, Any]:
    """Return the mapping ``data[key]``; raise if it is missing or not an object."""
    where = f"{path}.{key}" if path else key
    if key not in data:
        raise InvalidInputError(f"{where} is missing (required object)")
    value = data[key]
    if not isinstance(value, Mapping):
        raise fail(where, "must be an object", type(value).__name__)
    return value


def reject_unknown(data: Mapping[str, Any], allowed: set[str], path: str = "") -> None:
    """Raise for the first key of ``data`` that is not in ``allowed`` (typos must not pass)."""
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise InvalidInputError(
                f"{where} is not a known field (allowed: {', '.join(sorted(allowed))})"
            )


def number(value: object, path: str) -> float:
    """A finite real number (bool and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(path, "must be a number", value)
    result = float(value)
    if not math.isfinite(result):
        raise fail(path, "must be finite", value)
    return result


def scalar(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    low: float | None = None,
    low_inclusive: bool = False,
    high: float | None = None,
    default: float | None = None,
) -> float:
    """Read ``data[key]`` as a number in the given range."""
    where = f"{path}.{key}" if path else key
    if key not in data:
        if default is not None:
            return default
        raise InvalidInputError(f"{where} is missing (required number)")
    result = number(data[key], where)
    check_range(
        np.array([result]), where, low=low, low_inclusive=low_inclusive, high=high, scalar=True
    )
    return result


def vector(
    data: Mapping[str, Any],
    key: str,
    path: str,
    length: int | None,
    *,
    low: float | None = None,
    low_inclusive: bool = False,
    high: float | None = None,
    floor: float | None = None,
) -> FloatArray:
    """Read ``data[key]`` as a list of numbers of the given length and range."""
    where = f"{path}.{key}"
    if key not in data:
        raise InvalidInputError(f"{where} is missing (required list of numbers)")
    raw = data[key]
    if not isinstance(raw, list | tuple):
        raise fail(where, "must be a list of numbers", type(raw).__name__)
    if length is not None and len(raw) != length:
        raise InvalidInputError(f"{where} must have {length} entries, got {len(raw)}")
    values = _numbers(raw, where)
    check_range(values, where, low=low, low_inclusive=low_inclusive, high=high, floor=floor)
    return values


def matrix(
    data: Mapping[str, Any],
    key: str,
    rows: int,
    cols: int,
    *,
    low: float | None = None,
    low_inclusive: bool = False,
    high: float | None = None,
    path: str = "",
    floor: float | None = None,
) -> FloatArray:
    """Read ``data[key]`` as a ``rows`` x ``cols`` nested list of numbers."""
    where = f"{path}.{key}" if path else key
    if key not in data:
        raise InvalidInputError(f"{where} is missing (required {rows} x {cols} list of lists)")
    raw = data[key]
    if not isinstance(raw, list | tuple):
        raise fail(where, "must be a list of lists", type(raw).__name__)
    if len(raw) != rows:
        raise InvalidInputError(f"{where} must have {rows} rows, got {len(raw)}")
    out = np.empty((rows, cols), dtype=float)
    for i, row in enumerate(raw):
        if not isinstance(row, list | tuple):
            raise fail(f"{where}[{i}]", "must be a list of numbers", type(row).__name__)
        if len(row) != cols:
            raise InvalidInputError(f"{where}[{i}] must have {cols} entries, got {len(row)}")
        out[i, :] = _numbers(row, f"{where}[{i}]")
    check_range(out, where, low=low, low_inclusive=low_inclusive, high=high, floor=floor)
    return out


def _numbers(raw: list[Any] | tuple[Any, ...], where: str) -> FloatArray:
    """Convert a list to floats; only real numbers pass (no bool, no numeric strings)."""
    if all(type(v) is float or type(v) is int for v in raw):
        return np.array(raw, dtype=float)
    return np.array([number(v, f"{where}[{i}]") for i, v in enumerate(raw)], dtype=float)


def check_range(
    values: FloatArray,
    path: str,
    *,
    low: float | None = None,
    low_inclusive: bool = False,
    high: float | None = None,
    scalar: bool = False,
    floor: float | None = None,
) -> None:
    """Raise for the first entry of ``values`` outside ``[low, high]`` (or ``(low, high]``).

    ``floor`` is a smallest physical magnitude, checked after ``low``: a cap of 1e-300 passes
    "> 0" but would make times overflow.
    """
    flat = values.reshape(-1)
    bad = ~np.isfinite(flat)
    if low is not None:
        bad |= (flat < low) if low_inclusive else (flat <= low)
    if high is not None:
        bad |= flat > high
    if floor is not None:
        bad |= flat < floor
    if not bad.any():
        return
    k = int(np.flatnonzero(bad)[0])
    v = float(flat[k])
    where = path if scalar else path + _index(values.shape, k)
    if not math.isfinite(v):
        raise fail(where, "must be finite", v)
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise fail(where, f"must be {'>=' if low_inclusive else '>'} {low:g}", v)
    if floor is not None and v < floor:
        raise fail(where, f"must be >= {floor:g} (smaller is not a physical value)", v)
    raise fail(where, f"must be <= {high:g} (larger is not a physical value)", v)


def _index(shape: tuple[int, ...], flat_index: int) -> str:
    return "".join(f"[{i}]" for i in np.unravel_index(flat_index, shape))
