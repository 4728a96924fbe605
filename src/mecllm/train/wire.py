"""Framing of tensors on the wire: ``[4-byte header length][JSON header][float32 payload]``.

The payload is the tensors' float32 values back to back (little-endian), in the order the
header lists them, so its size is exactly ``4 x parameters`` bytes (32 bits per parameter, the
model's ``omega_b``); everything else (the header and HTTP's own lines) is *framing* and is
counted separately.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


class WireError(ValueError):
    """A message that does not parse or does not match what was expected."""


@dataclass(frozen=True)
class Message:
    """A decoded message: its header, its tensors, and its byte counts."""

    header: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    payload_bytes: int
    framing_bytes: int


def encode(header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> tuple[bytes, int]:
    """The message bytes and the payload's share of them."""
    names = list(tensors)
    meta = dict(header)
    meta["names"] = names
    meta["shapes"] = [list(tensors[n].shape) for n in names]
    head = json.dumps(meta).encode()
    payload = b"".join(
        tensors[n].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        for n in names
    )
    return struct.pack(">I", len(head)) + head + payload, len(payload)


def decode(data: bytes) -> Message:
    """Parse a message; raises :class:`WireError` when it is malformed or truncated."""
    if len(data) < 4:
        raise WireError("message shorter than its length prefix")
    (size,) = struct.unpack(">I", data[:4])
    if size > 1_000_000 or 4 + size > len(data):
        raise WireError("header length out of range")
    try:
        header = json.loads(data[4 : 4 + size])
        names, shapes = header["names"], header["shapes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"header is not valid: {exc}") from None
    if not isinstance(names, list) or not isinstance(shapes, list) or len(names) != len(shapes):
        raise WireError("header names and shapes must be lists of equal length")
    counts = []
    for shape in shapes:
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise WireError(f"bad shape {shape!r}")
        counts.append(int(np.prod(shape)) if shape else 1)
    payload = data[4 + size :]
    if len(payload) != 4 * sum(counts):
        raise WireError(f"payload has {len(payload)} bytes, the header announces {4 * sum(counts)}")
    values = np.frombuffer(payload, dtype="<f4")
    tensors, start = {}, 0
    for name, shape, count in zip(names, shapes, counts, strict=True):
        tensors[name] = torch.from_numpy(values[start : start + count].copy()).reshape(shape)
        start += count
    return Message(header, tensors, len(payload), 4 + size)


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Size]) -> None:
    """Raise :class:`WireError` unless ``tensors`` has exactly the expected names and shapes."""
    if list(tensors) != list(expected):
        raise WireError(
            f"expected tensors {list(expected)[:3]}... ({len(expected)}), got "
            f"{list(tensors)[:3]}... ({len(tensors)})"
        )
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise WireError(
                f"{name} has shape {tuple(tensors[name].shape)}, expected {tuple(shape)}"
            )
