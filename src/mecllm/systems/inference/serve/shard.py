"""A shard service: one OS process holding blocks ``[start, end)`` of the served model.

Started by ``mecllm serve`` as ``python -m mecllm.systems.inference.serve.shard --start S --end
E ...`` with the run's token in ``MECLLM_SERVE_TOKEN`` (never on the command line). It prints
``PORT <n>`` once it listens on 127.0.0.1 and serves, through :mod:`mecllm.transport.rpc` (the
token, deadlines, size limits, an answer and a log line for every request):

- ``Step``: one request's tokens (first shard: ids in the header) or activations (a float32
  tensor ``hidden`` of shape (T, H)) at a position of its cache. Requests waiting together are
  served by **one batched step** (iteration-level batching, up to ``--max-batch``); the answer
  is the output activations, or on the last shard the next token id in the header.
- ``Release``: drop a request's KV cache (the gateway sends it when a request ends).
- ``Health``.

**Pace**: a node slower than this machine's core is emulated by stretching each step to
``cpu seconds / share`` (the step's CPU time measured on the stepping thread, the rest slept), so
that a node with ``--share 0.25`` runs at a quarter of a core's speed (docs/serving.md section 2).
Caches idle for :data:`IDLE_CACHE_S` are dropped (a gateway that vanished). The process dies with
its parent and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, NamedTuple

import numpy as np

from mecllm.transport.rpc import BadRequest, log, serve
from mecllm.transport.service import serve_until_signal, service_token
from mecllm.transport.tensors import decode, encode, whole_number

TOKEN_ENV = "MECLLM_SERVE_TOKEN"
SERVICE = "mecllm.Shard"
#: A request's cache unused this long is dropped, s.
IDLE_CACHE_S = 120.0
#: Longest a Step request waits for its batch to run, s.
STEP_WAIT_S = 60.0
#: Longest a step waits for the previous step's requests to come back, s.
GATHER_S = 0.006
#: A request whose last return to this shard took less than this is waited for, s.
QUICK_RETURN_S = 0.010
#: Most requests whose caches a shard keeps at once.
MAX_CACHES = 4096


class Batcher:
    """The shard's model and the loop that serves waiting items one batched step at a time."""

    def __init__(self, model: Any, max_batch: int, share: float) -> None:
        self.model = model
        self.max_batch = max_batch
        self.share = share
        self.waiting: queue.Queue[tuple[Any, Future[Any]]] = queue.Queue()
        self.lock = threading.Lock()  # the model's caches: steps, releases and checks
        self.steps = 0
        self.previous: set[int] = set()  # the requests of the last step
        self.ended = time.monotonic()  # when the last step (with its pause) ended
        self.log: list[StepRecord] = []  # since the last Stats request
        self.log_lock = threading.Lock()
        self.history: list[StepRecord] = []  # steps already handed out by Stats
        self.sent: dict[int, float] = {}  # when each request's last step here ended
        self.returned: dict[int, float] = {}  # how long its last return here took, s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self.thread.start()

    def submit(self, item: Any) -> Any:
        """Queue ``item`` for the next step and wait for its output."""
        from mecllm.models.causal import CacheError

        with self.lock:
            try:
                self.model.check(item)
            except CacheError as exc:
                raise BadRequest(str(exc)) from None
            if item.rid not in self.model.caches and len(self.model.caches) >= MAX_CACHES:
                raise BadRequest(f"the shard holds {MAX_CACHES} requests' caches already")
        future: Future[Any] = Future()
        with self.lock:
            left = self.sent.get(item.rid)
            if left is not None:
                self.returned[item.rid] = time.monotonic() - left
        self.waiting.put((item, future))
        return future.result(timeout=STEP_WAIT_S)

    def release(self, rid: int) -> bool:
        with self.lock:
            self.sent.pop(rid, None)
            self.returned.pop(rid, None)
            return bool(self.model.release(rid))

    def _loop(self) -> None:
        import torch

        torch.set_num_threads(1)
        last_sweep = time.monotonic()
        while not self.stop.is_set():
            try:
                first = self.waiting.get(timeout=0.5)
            except queue.Empty:
                first = None
            if time.monotonic() - last_sweep > 10.0:
                with self.lock:
                    dropped = self.model.drop_idle(IDLE_CACHE_S)
                    for rid in dropped:
                        self.sent.pop(rid, None)
                        self.returned.pop(rid, None)
                if dropped:
                    log(f"dropped {len(dropped)} idle caches")
                last_sweep = time.monotonic()
            if first is None:
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            self._gather(batch)
            self.previous = {item.rid for item, _ in batch}
            self._run(batch)

    def _gather(self, batch: list[tuple[Any, Future[Any]]]) -> None:
        """Wait up to :data:`GATHER_S` for the requests of the previous step that have not come
        back yet but come back quickly (their last return took less than
        :data:`QUICK_RETURN_S`: a route with
        this shard alone, whose next token is one round trip through the gateway away); a step
        that left without them would make them wait a whole step (docs/serving.md section 2).
        Requests of longer routes are elsewhere on their ring: nobody waits for them."""
        here = {item.rid for item, _ in batch}
        with self.lock:
            missing = {
                rid
                for rid in self.previous - here
                if rid in self.model.caches and self.returned.get(rid, math.inf) < QUICK_RETURN_S
            }
        deadline = time.monotonic() + GATHER_S
        while missing and len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                entry = self.waiting.get(timeout=left)
            except queue.Empty:
                return
            batch.append(entry)
            missing.discard(entry[0].rid)

    def _run(self, batch: list[tuple[Any, Future[Any]]]) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        items = [item for item, _ in batch]
        try:
            with self.lock:
                outputs = self.model.step(items)
        except Exception as exc:  # every waiting request gets an answer
            for _, future in batch:
                future.set_exception(exc)
            return
        self.steps += 1
        used = time.thread_time() - cpu
        decoding = sum(1 for item in items if item.length == 1)
        prefill = [item.length for item in items if item.length > 1]
        context = sum(item.position + item.length for item in items)
        with self.log_lock:
            self.log.append(
                StepRecord(
                    decoding, sum(prefill), len(prefill), context, used, started - self.ended
                )
            )
        if self.share < 1.0:
            # Emulate a slower node: the step lasts its CPU time over the node's share.
            target = started + used / self.share
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        self.ended = time.monotonic()
        with self.lock:
            for item in items:
                self.sent[item.rid] = self.ended
        for (_, future), output in zip(batch, outputs, strict=True):
            future.set_result(output)


class StepRecord(NamedTuple):
    """One step: decoding requests, prefill tokens and prefills, tokens of KV cache the step
    read (every item's context), CPU seconds of the step, seconds the shard waited since its
    last step."""

    decoding: int
    prefill_tokens: int
    prefills: int
    context: int
    cpu_s: float
    gap_s: float


def step_summary(steps: list[StepRecord]) -> str:
    """``decode b: count x median CPU ms`` and ``prefill+b: ...`` for a run's steps."""
    groups: dict[str, list[float]] = {}
    for step in steps:
        key = f"prefill+{step.decoding}" if step.prefills else f"decode {step.decoding}"
        groups.setdefault(key, []).append(step.cpu_s)
    return ", ".join(
        f"{key}: {len(v)} x {1e3 * sorted(v)[len(v) // 2]:.2f} ms"
        for key, v in sorted(groups.items())
    )


def methods(batcher: Batcher, width: int, first: bool, last: bool) -> dict[str, Any]:
    """The ``Step`` and ``Release`` methods (bytes in, bytes out)."""
    from mecllm.models.causal import WorkItem

    def step(request: bytes) -> bytes:
        received = time.perf_counter()
        message = decode(request)
        rid = whole_number(message.header, "rid", 0, 2**62)
        position = whole_number(message.header, "position", 0, 1_000_000)
        if first:
            tokens = message.header.get("tokens")
            if (
                not isinstance(tokens, list)
                or not tokens
                or not all(type(t) is int for t in tokens)
            ):
                raise BadRequest("the first shard needs 'tokens': a non-empty list of token ids")
            if message.tensors:
                raise BadRequest("the first shard takes token ids, not tensors")
            item = WorkItem(rid, position, tokens=tokens)
        else:
            if set(message.tensors) != {"hidden"}:
                raise BadRequest("this shard needs exactly one tensor, 'hidden' (T, H)")
            hidden = message.tensors["hidden"]
            if hidden.ndim != 2 or hidden.shape[1] != width or hidden.shape[0] < 1:
                raise BadRequest(f"'hidden' must have shape (T, {width}), got {hidden.shape}")
            item = WorkItem(rid, position, hidden=hidden)
        output = batcher.submit(item)
        # The time the request spent here (the gateway subtracts it from the call's: the rest
        # is the round trip, which the calibration reads as the hop latency).
        inside = time.perf_counter() - received
        if last:
            reply, _ = encode({"rid": rid, "token": int(output), "inside_s": inside}, {})
        else:
            reply, _ = encode(
                {"rid": rid, "inside_s": inside}, {"hidden": np.asarray(output, dtype=np.float32)}
            )
        return reply

    def stats(request: bytes) -> bytes:
        """The steps since the last Stats request (then forgotten), for in-service calibration."""
        decode(request)
        with batcher.log_lock:
            steps, batcher.log = batcher.log, []
        batcher.history.extend(steps)
        reply, _ = encode({"steps": [list(s) for s in steps]}, {})
        return reply

    def release(request: bytes) -> bytes:
        message = decode(request)
        rid = whole_number(message.header, "rid", 0, 2**62)
        reply, _ = encode({"rid": rid, "released": batcher.release(rid)}, {})
        return reply

    return {"Step": step, "Release": release, "Stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description="mecllm shard service (one model shard)")
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--blocks", type=int, required=True, help="blocks of the whole model")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--share", type=float, default=1.0, help="share of a core, (0, 1]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    token = service_token(TOKEN_ENV)
    if not 0.0 < args.share <= 1.0:
        sys.exit(f"--share must be in (0, 1], got {args.share}")
    import torch

    torch.set_num_threads(1)
    from mecllm.models.causal import ShardModel

    model = ShardModel(args.start, args.end, args.blocks)
    batcher = Batcher(model, args.max_batch, args.share)
    server = serve(
        SERVICE,
        methods(batcher, model.width, model.first, model.last),
        token,
        host=args.host,
        port=args.port,
        workers=2 * args.max_batch + 4,
    )
    log(
        f"blocks [{args.start}, {args.end}) of {args.blocks}, "
        f"{model.weight_bytes() / 1e6:.1f} MB of weights, share {args.share:g}"
    )
    serve_until_signal(server)
    log(f"stopping after {batcher.steps} steps")
    log("steps: " + step_summary(batcher.history + batcher.log))
    batcher.stop.set()
    server.stop()


if __name__ == "__main__":
    main()
