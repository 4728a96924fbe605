"""Request/response over gRPC on loopback: the run's token, deadlines, size and concurrency
limits, an answer and one log line for every request.

gRPC's core (C, event-driven) reads connections: a client that trickles bytes or holds a
connection idle occupies no worker thread, so it cannot delay anyone else. Requests are raw
bytes (no generated code): each method is a function ``bytes -> bytes``. Around every method
this module puts, in order:

- a refusal budget per peer (a token bucket; beyond it, ``RESOURCE_EXHAUSTED``), so that a
  client hammering with bad requests cannot fill the log;
- the token check (``authorization: Bearer <token>``, compared in constant time), else
  ``UNAUTHENTICATED``;
- methods marked *exclusive* run one at a time (a lock; training holds the server's one model),
  while the others (health) are answered at once;
- :class:`BadRequest` (and :class:`~mecllm.transport.tensors.WireError`) become
  ``INVALID_ARGUMENT`` with the reason; any other exception ``INTERNAL``;
- one log line per request: method, peer, status, seconds, reason, with control characters
  escaped, so no field can forge a line.

Message sizes are capped by gRPC itself (``grpc.max_receive_message_length``); the caller of
:func:`call` gives every request a deadline.
"""

from __future__ import annotations

import hmac
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from mecllm.transport.tensors import WireError

#: Largest message either way, bytes.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: Refused requests a peer may send per second (sustained) and at once (burst).
REFUSALS_PER_S = 5.0
REFUSAL_BURST = 20
#: gRPC status codes of client errors (the 4xx of HTTP).
CLIENT_ERRORS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
)

Method = Callable[[bytes], bytes]
#: A streaming method: the request's chunks in, the reply's chunks out (bidirectional).
StreamMethod = Callable[[Iterator[bytes]], Iterator[bytes]]


class BadRequest(ValueError):
    """A request the method refuses: the reason goes back to the client (INVALID_ARGUMENT)."""


class TransferError(RuntimeError):
    """A call that did not get a successful answer: the status and the reason."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail


def escaped(text: object, limit: int = 200) -> str:
    """``text`` with control characters escaped and cut to ``limit`` characters (log-safe)."""
    value = str(text)
    shown = value.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def log(message: str) -> None:
    """One line on stderr (the orchestrator keeps it in the process's log file)."""
    print(
        f"[{os.path.basename(sys.argv[0])} pid {os.getpid()}] {message}",
        file=sys.stderr,
        flush=True,
    )


@dataclass
class _Bucket:
    """Refusals left for one peer, refilled at :data:`REFUSALS_PER_S`."""

    tokens: float = float(REFUSAL_BURST)
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(REFUSAL_BURST, self.tokens + (now - self.stamp) * REFUSALS_PER_S)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Guard:
    """The token, the exclusive lock and the refusal budgets shared by a server's methods."""

    def __init__(self, token: str) -> None:
        self.token = f"Bearer {token}".encode()
        self.exclusive = threading.Lock()
        self.buckets: dict[str, _Bucket] = {}
        self.buckets_lock = threading.Lock()

    def authorised(self, context: grpc.ServicerContext) -> bool:
        given = dict(context.invocation_metadata()).get("authorization", "")
        value = given.encode() if isinstance(given, str) else bytes(given)
        return hmac.compare_digest(value, self.token)

    def may_refuse(self, peer: str) -> bool:
        host = peer.rsplit(":", 1)[0]
        with self.buckets_lock:
            return self.buckets.setdefault(host, _Bucket()).take()


def _answer(
    name: str,
    peer: str,
    started: float,
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    """The request's log line; and, for anything but OK, its status and reason."""
    log(
        f"{name} from {escaped(peer, 60)}: {code.name} in "
        f"{time.perf_counter() - started:.3f} s" + (f": {escaped(reason)}" if reason else "")
    )
    if code != grpc.StatusCode.OK:
        context.abort(code, reason[:500])


def _wrap(name: str, method: Method, guard: _Guard, exclusive: bool) -> grpc.RpcMethodHandler:
    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        peer = context.peer()

        def finish(code: grpc.StatusCode, reason: str) -> bytes:
            _answer(name, peer, started, context, code, reason)
            return b""

        if not guard.authorised(context):
            if not guard.may_refuse(peer):
                return finish(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many refused requests")
            return finish(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
        try:
            if exclusive:
                with guard.exclusive:
                    reply = method(request)
            else:
                reply = method(request)
        except (BadRequest, WireError) as exc:
            if not guard.may_refuse(peer):
                return finish(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many refused requests")
            return finish(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # every request gets an answer, whatever went wrong
            return finish(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finish(grpc.StatusCode.OK, "")
        return reply

    return grpc.unary_unary_rpc_method_handler(handle)


def _capped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The request's chunks, refused once they add up to more than :data:`MAX_MESSAGE_BYTES`."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_MESSAGE_BYTES:
            raise BadRequest(f"the request's chunks exceed {MAX_MESSAGE_BYTES} bytes")
        yield chunk


def _wrap_stream(name: str, method: StreamMethod, guard: _Guard) -> grpc.RpcMethodHandler:
    """A streaming method behind the same token, refusal budget, statuses and log line."""

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        started = time.perf_counter()
        peer = context.peer()

        def finish(code: grpc.StatusCode, reason: str) -> None:
            _answer(name, peer, started, context, code, reason)

        if not guard.authorised(context):
            if not guard.may_refuse(peer):
                finish(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many refused requests")
            finish(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
            return
        try:
            yield from method(_capped(requests))
        except (BadRequest, WireError) as exc:
            if not guard.may_refuse(peer):
                finish(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many refused requests")
            finish(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        except Exception as exc:  # every request gets an answer, whatever went wrong
            finish(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        finish(grpc.StatusCode.OK, "")

    return grpc.stream_stream_rpc_method_handler(handle)


def _health(_: bytes) -> bytes:
    return b"ok"


@dataclass
class Server:
    """A running server and the port it listens on."""

    server: grpc.Server
    port: int

    def stop(self, grace_s: float = 2.0) -> None:
        """Stop accepting, let running requests end within ``grace_s``, then cut them."""
        self.server.stop(grace_s).wait(grace_s + 1.0)


def serve(
    service: str,
    methods: Mapping[str, Method],
    token: str,
    *,
    exclusive: frozenset[str] = frozenset(),
    streams: Mapping[str, StreamMethod] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 4,
) -> Server:
    """Start a server for ``methods`` (plus ``Health``) and the streaming ``streams`` under
    ``service`` on ``host``."""
    if len(token) < 16:
        raise ValueError("the run's token must have at least 16 characters")
    guard = _Guard(token)
    handlers = {
        name: _wrap(name, method, guard, name in exclusive)
        for name, method in {**methods, "Health": _health}.items()
    }
    for name, stream in (streams or {}).items():
        handlers[name] = _wrap_stream(name, stream, guard)
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        handlers=[grpc.method_handlers_generic_handler(service, handlers)],
        options=options,
        maximum_concurrent_rpcs=4 * workers,
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return Server(server, bound)


def _transfer_error(exc: grpc.RpcError) -> TransferError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    return TransferError(code, str(detail))


class Client:
    """Calls to one server: a channel, the token and a deadline on every call."""

    def __init__(self, address: str, service: str, token: str) -> None:
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self.service = service
        self.metadata = (("authorization", f"Bearer {token}"),)

    def connect(self, timeout_s: float) -> None:
        """Open the connection now (TCP and HTTP/2 set-up), so that a timed call that follows
        pays only its own stream; raises :class:`TransferError` if it is not up in time."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise TransferError(
                grpc.StatusCode.UNAVAILABLE, f"could not connect within {timeout_s:g} s"
            ) from None

    def call(self, method: str, request: bytes, timeout_s: float) -> bytes:
        """One request; raises :class:`TransferError` for anything but success."""
        stub = self.channel.unary_unary(f"/{self.service}/{method}")
        try:
            reply: bytes = stub(request, timeout=timeout_s, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _transfer_error(exc) from None
        return reply

    def stream(self, method: str, chunks: Iterator[bytes], timeout_s: float) -> Iterator[bytes]:
        """A bidirectional call: ``chunks`` go up as the caller yields them, the reply's chunks
        come back as they arrive; raises :class:`TransferError` for anything but success."""
        stub = self.channel.stream_stream(f"/{self.service}/{method}")
        try:
            yield from stub(chunks, timeout=timeout_s, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _transfer_error(exc) from None

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
