"""The edge server process: trains the adapters a user did not, over gRPC on loopback.

Started by ``mecllm train`` as ``python -m mecllm.systems.finetune.run.server --settings JSON``
with the run's token in the environment variable ``MECLLM_TRAIN_TOKEN`` (never on the command
line). It prints ``PORT <n>`` once it listens on 127.0.0.1 and serves, through
:mod:`mecllm.transport.rpc` (deadlines, size limits, the token, an answer and a log line for
every request):

- ``Exchange`` (streaming, what ``mecllm train`` uses): the user's upload arrives in chunks
  (paced by the user to its uplink rate); the server trains, holding the user's compute share
  by time slicing (:mod:`mecllm.systems.finetune.run.pacing`), and sends the reply in chunks
  paced to the downlink rate (:mod:`mecllm.transport.shaping`). Users are served at the same
  time, each on its own copy of the adapters (the frozen base weights are shared).
- ``Train`` (one message each way, unpaced): the same work, for a quick exchange and tests.
- ``Prepare``: a user's training data built before the run starts (from its data seed), kept
  for its exchange, so that the server's measured phase is its training alone.
- ``Health``.

A request is a :mod:`mecllm.transport.tensors` message whose header says which user, how many
leading adapter layers the user trained (``split``), the seed of the user's shared data and,
optionally, its size (``examples``), the server's ``epochs``, the plan's ``server_flops`` and
``down_rate_bps`` and the machine's ``machine_flops``; its tensors must be exactly those
layers' adapters. The reply holds the other layers' adapters and, in its header, the server's
measurements and its clock (``time.monotonic``, shared by the processes of one machine) when the
upload was complete and when the reply began. It dies with its parent and stops cleanly on
SIGTERM.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from mecllm.models.encoder import AdaptedEncoder
from mecllm.systems.finetune.run.loop import (
    Settings,
    build,
    flops_per_sequence,
    train_layers,
    warm_up,
)
from mecllm.systems.finetune.run.pacing import Pace
from mecllm.systems.finetune.run.tasks import Batch, Task, TextTask
from mecllm.transport.rpc import MAX_MESSAGE_BYTES, log, serve
from mecllm.transport.service import serve_until_signal, service_token
from mecllm.transport.shaping import framed_chunks, messages, paced_chunks
from mecllm.transport.tensors import (
    WireError,
    decode,
    encode,
    expect,
    positive_number,
    whole_number,
)

TOKEN_ENV = "MECLLM_TRAIN_TOKEN"
SERVICE = "mecllm.Train"
#: Largest data size and epochs a request may ask the server to train on.
MAX_EXAMPLES = 100_000
MAX_EPOCHS = 100
#: Users' training data a server keeps prepared at once (the oldest is dropped).
MAX_PREPARED = 256


def _copy_sharing_base(model: AdaptedEncoder) -> AdaptedEncoder:
    """A copy whose adapters are its own and whose frozen base tensors are the original's."""
    adapters = set(model.adapter_names(range(model.n_blocks)))
    shared = {id(p): p for name, p in model.named_parameters() if name not in adapters}
    return copy.deepcopy(model, memo=shared)


def trainer(
    settings: Settings, base: AdaptedEncoder, task: Task
) -> tuple[Callable[[bytes], bytes], Callable[..., Iterator[bytes]], Callable[[bytes], bytes]]:
    """The ``Train``, ``Exchange`` and ``Prepare`` methods bound to the loaded model ``base``
    (each request trains a copy of its adapters).

    ``Prepare`` (header ``data_seed``, ``examples``) builds a user's training data before the
    run starts and keeps it for the user's exchange, so that the server's phase T3 is its
    training (a CSI user's drops take 0.2-2 s to read and tokenise; the text task's
    sentences a few milliseconds)."""
    layers = base.n_blocks
    core = (
        threading.Lock()
    )  # the users' steps take turns on one core (mecllm.systems.finetune.run.pacing)
    # One sequence's FLOPs for the server's part at every split, counted once at start-up (on
    # a copy: counting marks adapters trainable), so that no request pays for counting.
    probe, sample = copy.deepcopy(base), task.data(0, 1, 0)[0]
    sequence_flops = [
        flops_per_sequence(probe, task, sample, range(k, layers)) for k in range(layers + 1)
    ]
    del probe
    prepared: dict[tuple[int, int], Batch] = {}
    prepared_lock = threading.Lock()

    def examples_of(header: dict[str, object]) -> int:
        if "examples" in header:
            return whole_number(header, "examples", 1, MAX_EXAMPLES)
        return settings.n_train

    def training_data(seed: int, examples: int) -> Batch:
        with prepared_lock:
            ready = prepared.pop((seed, examples), None)
        return ready if ready is not None else task.data(seed, examples, settings.n_test)[0]

    def prepare(request: bytes) -> bytes:
        header = decode(request).header
        seed = whole_number(header, "data_seed", 0, 2**63 - 1)
        examples = examples_of(header)
        data = task.data(seed, examples, settings.n_test)[0]
        with prepared_lock:
            if len(prepared) >= MAX_PREPARED:
                prepared.pop(next(iter(prepared)))
            prepared[(seed, examples)] = data
        log(f"prepared {examples} examples of data seed {seed}")
        reply, _ = encode({"prepared": examples}, {})
        return reply

    def work(request: bytes, received_at: float, paced: bool) -> tuple[bytes, float]:
        message = decode(request)
        header = message.header
        user = whole_number(header, "user")
        split = whole_number(header, "split", 0, layers)
        seed = whole_number(header, "data_seed", 0, 2**63 - 1)
        examples = examples_of(header)
        epochs = (
            whole_number(header, "epochs", 1, MAX_EPOCHS) if "epochs" in header else settings.epochs
        )
        down_rate = positive_number(header, "down_rate_bps", math.inf) if paced else math.inf
        if split == layers:
            down_rate = math.inf  # nothing to send back: the reply is a header alone
        pace = None
        if paced and "server_flops" in header:
            pace = Pace(
                positive_number(header, "server_flops"),
                positive_number(header, "machine_flops"),
                core=core,
            )
        model = _copy_sharing_base(base)
        user_part = range(split)
        shapes = {n: tuple(t.shape) for n, t in model.adapter_state(user_part).items()}
        expect({n: t.shape for n, t in message.tensors.items()}, shapes)
        model.load_adapters({n: torch.from_numpy(v) for n, v in message.tensors.items()})
        train_set = training_data(seed, examples)
        server_part = range(split, layers)
        mine = dataclasses.replace(settings, n_train=examples, epochs=epochs)
        stats = train_layers(model, task, train_set, server_part, mine, pace, sequence_flops[split])
        log(f"user {user}: trained layers {split}..{layers - 1} in {stats.seconds:.2f} s")
        reply, _ = encode(
            {
                "user": user,
                "server_seconds": stats.seconds,
                "server_tokens": stats.tokens,
                "server_steps": [list(step) for step in stats.steps],
                "server_cpu_seconds": stats.cpu_seconds,
                "server_pace_reachable": pace.reachable if pace else True,
                "server_pace_overrun": pace.overrun if pace else 1.0,
                "received_at": received_at,
                "trained_at": stats.ended_at,
                "send_at": time.monotonic(),
            },
            {n: t.numpy() for n, t in model.adapter_state(server_part).items()},
        )
        return reply, down_rate

    def train(request: bytes) -> bytes:
        reply, _ = work(request, time.monotonic(), paced=False)
        return reply

    def exchange(chunks: Iterator[bytes]) -> Iterator[bytes]:
        request = b"".join(chunks)
        reply, rate = work(request, time.monotonic(), paced=True)
        yield from paced_chunks(reply, rate)

    return train, exchange, prepare


#: Largest batch and sequence a split-mode message may carry.
MAX_BATCH, MAX_SEQ = 1024, 512


def splitter(settings: Settings, base: AdaptedEncoder) -> Callable[..., Iterator[bytes]]:
    """The ``Split`` method: full-parameter split training (docs/train.md, "Split mode").

    The stream's first message is a header (``user``, ``split`` k, optionally
    ``server_flops``, ``machine_flops``, ``down_rate_bps``); every later message is one batch:
    ``hidden`` (B, S, width), ``mask`` (B, S), ``labels`` (B) with a header ``kind`` of
    ``train`` (the server runs blocks ``[k, L)`` and the head, steps its optimiser and returns
    ``grad``, the loss's gradient with respect to ``hidden``, and the loss) or ``eval``
    (returns ``logits``). Messages travel as frames (:func:`mecllm.transport.shaping.messages`);
    replies are paced to the downlink rate.
    """
    layers, width = base.n_blocks, base.width
    turn = threading.Lock()

    def split(frames: Iterator[bytes]) -> Iterator[bytes]:
        incoming = messages(frames, MAX_MESSAGE_BYTES)
        try:
            header = decode(next(incoming)).header
        except StopIteration:
            raise WireError("the stream ended before its header") from None
        user = whole_number(header, "user")
        k = whole_number(header, "split", 0, layers)
        down_rate = positive_number(header, "down_rate_bps", math.inf)
        pace = None
        if "server_flops" in header:
            pace = Pace(
                positive_number(header, "server_flops"),
                positive_number(header, "machine_flops"),
                core=turn,
            )
        model = copy.deepcopy(base)
        params = model.part_parameters(user=False, k=k)
        optimiser = torch.optim.AdamW(params, lr=settings.full_lr) if params else None
        model.train()
        batches = 0
        try:
            for raw in incoming:
                message = decode(raw)
                kind = message.header.get("kind")
                if kind not in ("train", "eval"):
                    raise WireError(f"kind must be 'train' or 'eval', got {str(kind)[:20]!r}")
                batch = whole_number(message.header, "batch", 1, MAX_BATCH)
                seq = whole_number(message.header, "seq", 1, MAX_SEQ)
                expect(
                    {n: t.shape for n, t in message.tensors.items()},
                    {"hidden": (batch, seq, width), "mask": (batch, seq), "labels": (batch,)},
                )
                mask = torch.from_numpy(message.tensors["mask"])
                labels = torch.from_numpy(message.tensors["labels"]).long()
                if not bool(((mask == 0) | (mask == 1)).all()) or labels.min() < 0:
                    raise WireError("mask must hold 0 and 1 and labels must be classes")
                hidden = torch.from_numpy(message.tensors["hidden"])
                if kind == "eval":
                    with torch.no_grad():
                        logits = model.top(hidden, mask, k)
                    reply, _ = encode({"user": user}, {"logits": logits.numpy()})
                else:
                    started = time.monotonic()
                    if pace is not None:
                        pace.restart()
                    with pace.core if pace is not None else nullcontext():
                        hidden.requires_grad_(True)
                        loss = F.cross_entropy(model.top(hidden, mask, k), labels)
                        if optimiser is not None:
                            optimiser.zero_grad()
                        loss.backward()  # type: ignore[no-untyped-call]
                        if optimiser is not None:
                            optimiser.step()
                    if pace is not None:
                        pace.step()
                    assert hidden.grad is not None
                    batches += 1
                    reply, _ = encode(
                        {
                            "user": user,
                            "loss": float(loss.detach()),
                            "server_s": time.monotonic() - started,
                        },
                        {"grad": hidden.grad.numpy()},
                    )
                # Evaluation is not part of the plan: its replies go unpaced.
                yield from framed_chunks(reply, down_rate if kind == "train" else math.inf)
        except ValueError as exc:  # a malformed frame: the client's error
            raise WireError(str(exc)) from None
        log(f"user {user}: split at {k}, {batches} batches trained")

    return split


def main() -> None:
    parser = argparse.ArgumentParser(description="mecllm edge-server training process")
    parser.add_argument(
        "--settings", required=True, help="JSON of mecllm.systems.finetune.run.loop.Settings"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    token = service_token(TOKEN_ENV)
    settings = Settings(**json.loads(args.settings))
    torch.set_num_threads(1)  # one thread per user served: shares are slices of one core each
    base, task = build(settings)  # one model: each request trains its own copy
    warm_up(base, task, task.data(0, settings.batch, 0)[0], settings.batch)
    train, exchange, prepare = trainer(settings, base, task)
    streams = {"Exchange": exchange}
    if isinstance(task, TextTask):  # split mode trains the text task only
        streams["Split"] = splitter(settings, base)
    server = serve(
        SERVICE,
        {"Train": train, "Prepare": prepare},
        token,
        streams=streams,
        host=args.host,
        port=args.port,
        workers=8,
    )
    serve_until_signal(server)
    log("stopping")
    server.stop()


if __name__ == "__main__":
    main()
