"""Tensors on the wire in the safetensors format, with a JSON header in its metadata.

A message is exactly a safetensors file: 8 bytes of header length, a JSON header (each
tensor's dtype, shape and byte range, and ``__metadata__`` holding our own header as one JSON
string), then the tensors' bytes. Every field is checked *before* anything is allocated: the
header's length against a cap, its JSON against a nesting cap, names (unique strings), dtypes
(float32 only), shapes (whole numbers, sizes computed in Python integers against a cap), byte
ranges (contiguous, matching the shapes and the payload). Values must be finite. Nothing is
unpickled and nothing is executed.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

#: Largest JSON header accepted, bytes.
MAX_HEADER_BYTES = 1_000_000
#: Deepest JSON nesting accepted (ours is 3 deep).
MAX_DEPTH = 8
#: Largest number of values in one message.
MAX_VALUES = 256 * 1024 * 1024
_KEY = "mecllm"


class WireError(ValueError):
    """A message that does not parse, or does not match what was expected (a client error)."""


@dataclass(frozen=True)
class Message:
    """A decoded message: our header, the tensors, and its byte counts."""

    header: dict[str, Any]
    tensors: dict[str, NDArray[np.float32]]
    payload_bytes: int
    framing_bytes: int


def encode(header: dict[str, Any], tensors: dict[str, NDArray[np.float32]]) -> tuple[bytes, int]:
    """The message bytes and the payload's share of them (``4 x values``)."""
    arrays = {name: np.ascontiguousarray(value, dtype="<f4") for name, value in tensors.items()}
    data = save_safetensors(arrays, metadata={_KEY: json.dumps(header)})
    payload = sum(a.nbytes for a in arrays.values())
    return data, payload


def _json(text: bytes | str, what: str) -> Any:
    # Refuse deep nesting before parsing: the parser recurses once per level.
    raw = text if isinstance(text, str) else text.decode("utf-8", errors="strict")
    level = deepest = 0
    for char in raw:
        if char in "[{":
            level += 1
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                raise WireError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            level -= 1
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"{what} is not valid JSON: {str(exc)[:80]}") from None


def decode(data: bytes, expected: dict[str, tuple[int, ...]] | None = None) -> Message:
    """Parse and check a message; ``expected`` (name -> shape) if the receiver knows what must
    come (else call :func:`expect` once it does). Raises :class:`WireError` for anything
    malformed."""
    if len(data) < 8:
        raise WireError("message shorter than its 8-byte header length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise WireError(f"header length {size} out of range")
    try:
        header = _json(data[8 : 8 + size], "the safetensors header")
    except UnicodeDecodeError:
        raise WireError("the safetensors header is not UTF-8") from None
    if not isinstance(header, dict):
        raise WireError("the safetensors header must be a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not isinstance(meta.get(_KEY), str):
        raise WireError("the message carries no mecllm header")
    ours = _json(meta[_KEY], "the mecllm header")
    if not isinstance(ours, dict):
        raise WireError("the mecllm header must be a JSON object")
    payload = len(data) - 8 - size
    offset, total = 0, 0
    shapes: dict[str, tuple[int, ...]] = {}
    for name, info in header.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise WireError("tensor names must be non-empty strings of at most 200 characters")
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            raise WireError(f"tensor {name[:40]!r} must be float32")
        shape, span = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(
            type(d) is int and 0 <= d <= MAX_VALUES for d in shape
        ):
            raise WireError(f"tensor {name[:40]!r} has a bad shape")
        count = 1
        for d in shape:
            count *= d  # Python integers: no overflow
        total += count
        if total > MAX_VALUES:
            raise WireError(f"the message holds more than {MAX_VALUES} values")
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(type(v) is int for v in span)
            or span != [offset, offset + 4 * count]
        ):
            raise WireError(f"tensor {name[:40]!r} has byte range {span!r}, expected contiguous")
        offset += 4 * count
        shapes[name] = tuple(shape)
    if offset != payload:
        raise WireError(f"payload has {payload} bytes, the header announces {offset}")
    if expected is not None:
        expect(shapes, expected)
    tensors = load_safetensors(data) if shapes else {}
    ordered = {name: tensors[name] for name in shapes}
    for name, value in ordered.items():
        if not np.all(np.isfinite(value)):
            raise WireError(f"tensor {name[:40]!r} holds NaN or infinite values")
    return Message(ours, ordered, payload, len(data) - payload)


def expect(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    """Raise :class:`WireError` unless ``shapes`` has exactly the expected names and shapes."""
    if sorted(shapes) != sorted(expected):
        missing = sorted(set(expected) - set(shapes))[:3]
        extra = sorted(set(shapes) - set(expected))[:3]
        raise WireError(
            f"expected {len(expected)} tensors, got {len(shapes)} (missing {missing}, "
            f"unexpected {[n[:40] for n in extra]})"
        )
    for name, shape in expected.items():
        if tuple(shapes[name]) != tuple(shape):
            raise WireError(f"{name} has shape {tuple(shapes[name])}, expected {tuple(shape)}")


def whole_number(header: dict[str, Any], key: str, low: int = 0, high: int | None = None) -> int:
    """``header[key]`` as a whole number in ``[low, high]`` (booleans are not numbers)."""
    value = header.get(key)
    if type(value) is not int or value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"in {low}..{high}"
        raise WireError(f"{key} must be a whole number {rule}, got {str(value)[:40]!r}")
    return value


def positive_number(header: dict[str, Any], key: str, default: float | None = None) -> float:
    """``header[key]`` as a finite number > 0 (``default`` when it is absent and one is given)."""
    if key not in header and default is not None:
        return default
    value = header.get(key)
    number = float(value) if type(value) in (int, float) else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(number) and number > 0):
        raise WireError(f"{key} must be a finite number > 0, got {str(value)[:40]!r}")
    return number
