"""Scenario settings: frozen dataclasses whose copies with changes are checked by name and type
(every system's presets use this)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from mecllm.core.errors import InvalidInputError

S = TypeVar("S")


def replace_settings(settings: S, changes: dict[str, Any], what: str = "scenario setting") -> S:
    """A copy of the dataclass ``settings`` with ``changes``, each checked against its field.

    Unknown names are refused with the known ones listed; a ``bool`` field takes only
    ``True``/``False``; an ``int`` field takes a whole number (``2.0`` becomes 2, ``2.5`` is
    refused); a ``float`` field takes a finite real number (not a bool). Ranges are each
    system's business (it checks them when it draws the scenario).
    """
    known = {f.name: f for f in dataclasses.fields(settings)}  # type: ignore[arg-type]
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in known:
            raise InvalidInputError(
                f"{what} {key!r} does not exist (known: {', '.join(sorted(known))})"
            )
        kind = known[key].type
        kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        clean[key] = _typed(key, value, kind_name)
    return dataclasses.replace(settings, **clean)  # type: ignore[type-var]


def _typed(key: str, value: Any, kind: str) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidInputError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidInputError(f"{key} must be finite, got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            raise InvalidInputError(f"{key} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def check_bounds(
    settings: object, bounds: dict[str, tuple[float, float, bool]], what: str = "setting"
) -> None:
    """Refuse the first field of ``settings`` outside its ``(low, high, low_inclusive)`` range.

    The message names the setting, the rule and the value, as everywhere else.
    """
    for name, (low, high, inclusive) in bounds.items():
        value = float(getattr(settings, name))
        below = value < low if inclusive else value <= low
        if below:
            rule = ">=" if inclusive else ">"
            raise InvalidInputError(f"{what} {name} must be {rule} {low:g}, got {value:g}")
        if value > high:
            raise InvalidInputError(
                f"{what} {name} must be <= {high:g} (larger is not a physical value), got {value:g}"
            )


def check_ordered(settings: object, low_name: str, high_name: str, what: str = "setting") -> None:
    """Refuse a range whose lower end is above its upper end."""
    low, high = getattr(settings, low_name), getattr(settings, high_name)
    if low > high:
        raise InvalidInputError(
            f"{what} {low_name} ({low:g}) must not exceed {high_name} ({high:g})"
        )
