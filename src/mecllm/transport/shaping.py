"""Transfers shaped to a rate: a token bucket in the application (docs/train.md, "Concurrent run").

The sender cuts a message into chunks of :data:`CHUNK_BYTES` and releases chunk ``i`` only once
``rate`` bits per second have paid for every byte up to and including it, so the last byte
leaves ``8 x size / rate`` seconds after the first call: the transfer takes what the plan's
Shannon rate says it takes, on a loopback link that is thousands of times faster. The bucket
holds one chunk, so no burst runs ahead of the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

#: Bytes per chunk (16 KiB: a 300 kB adapter goes in about 19 chunks).
CHUNK_BYTES = 16 * 1024


def paced_chunks(
    data: bytes,
    rate_bps: float,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """``data`` in chunks, no faster than ``rate_bps`` bits per second (unpaced if infinite).

    An empty message is one empty chunk, sent at once.
    """
    if not rate_bps > 0:
        raise ValueError(f"rate_bps must be > 0, got {rate_bps!r}")
    started = clock()
    if not data:
        yield b""
        return
    for start in range(0, len(data), chunk_bytes):
        end = min(start + chunk_bytes, len(data))
        if math.isfinite(rate_bps):
            due = started + 8.0 * end / rate_bps
            wait = due - clock()
            if wait > 0:
                sleep(wait)
        yield data[start:end]


#: First byte of a frame: more frames of this message follow, or this is its last.
MORE, LAST = b"\x00", b"\x01"


def framed_chunks(data: bytes, rate_bps: float) -> Iterator[bytes]:
    """``data`` as paced frames of one streamed message: each frame is a flag byte
    (:data:`MORE` or :data:`LAST`) and a chunk, so that many messages can share one stream."""
    pending: bytes | None = None
    for chunk in paced_chunks(data, rate_bps):
        if pending is not None:
            yield MORE + pending
        pending = chunk
    yield LAST + (pending or b"")


def messages(frames: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """The messages of a stream of :func:`framed_chunks` frames, each at most ``limit`` bytes
    (raises ValueError beyond it, or for a frame without its flag byte)."""
    parts: list[bytes] = []
    size = 0
    for frame in frames:
        if not frame or frame[:1] not in (MORE, LAST):
            raise ValueError("a frame without its flag byte")
        size += len(frame) - 1
        if size > limit:
            raise ValueError(f"a streamed message exceeds {limit} bytes")
        parts.append(frame[1:])
        if frame[:1] == LAST:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        raise ValueError("the stream ended inside a message")
