"""The edge server process: trains the adapters a user did not, over gRPC on loopback.

Started by ``mecllm train`` as ``python -m mecllm.train.server --settings JSON`` with the run's
token in the environment variable ``MECLLM_TRAIN_TOKEN`` (never on the command line). It prints
``PORT <n>`` once it listens on 127.0.0.1, then serves ``Train`` (one at a time: the server
holds one model) and ``Health`` (at once) through :mod:`mecllm.transport.rpc`: deadlines,
size limits, the token, an answer and a log line for every request. A ``Train`` request is a
:mod:`mecllm.transport.tensors` message whose header says which user, how many leading adapter
layers the user trained (``split``) and the seed of the user's shared data; its tensors must be
exactly those layers' adapters. The server trains the remaining adapters on the user's data and
answers with them. It dies with its parent, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from mecllm.train.loop import Settings, build, train_layers
from mecllm.train.task import make_split
from mecllm.transport.rpc import log, serve
from mecllm.transport.service import serve_until_signal, service_token
from mecllm.transport.tensors import decode, encode, expect, whole_number

TOKEN_ENV = "MECLLM_TRAIN_TOKEN"
SERVICE = "mecllm.Train"


def trainer(settings: Settings) -> Any:
    """The ``Train`` method bound to one model (bytes in, bytes out)."""
    model, tok = build(settings)
    layers = len(model.blocks)
    initial = model.adapter_state(range(layers))

    def train(request: bytes) -> bytes:
        message = decode(request)
        user = whole_number(message.header, "user")
        split = whole_number(message.header, "split", 0, layers)
        seed = whole_number(message.header, "data_seed", 0, 2**63 - 1)
        user_part = range(split)
        shapes = {n: tuple(t.shape) for n, t in model.adapter_state(user_part).items()}
        expect({n: t.shape for n, t in message.tensors.items()}, shapes)
        model.load_adapters(initial)
        model.load_adapters({n: torch.from_numpy(v) for n, v in message.tensors.items()})
        train_set, _ = make_split(seed, settings.n_train, settings.n_test)
        server_part = range(split, layers)
        stats = train_layers(model, tok, train_set, server_part, settings)
        log(f"user {user}: trained layers {split}..{layers - 1} in {stats.seconds:.2f} s")
        reply, _ = encode(
            {
                "user": user,
                "server_seconds": stats.seconds,
                "server_flops": stats.flops,
                "server_tokens": stats.tokens,
            },
            {n: t.numpy() for n, t in model.adapter_state(server_part).items()},
        )
        return reply

    return train


def main() -> None:
    parser = argparse.ArgumentParser(description="mecllm edge-server training process")
    parser.add_argument("--settings", required=True, help="JSON of mecllm.train.loop.Settings")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    token = service_token(TOKEN_ENV)
    settings = Settings(**json.loads(args.settings))
    server = serve(
        SERVICE,
        {"Train": trainer(settings)},
        token,
        exclusive=frozenset({"Train"}),
        host=args.host,
        port=args.port,
    )
    serve_until_signal(server)
    log("stopping")
    server.stop()


if __name__ == "__main__":
    main()
