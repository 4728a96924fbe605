"""The edge server process: trains the adapters a user did not, over HTTP on loopback.

Started by ``mecllm train`` as ``python -m mecllm.train.server --settings JSON [--host H]``
with the run's token in the environment variable ``MECLLM_TRAIN_TOKEN``. It prints
``PORT <n>`` once it listens, then serves ``POST /train`` requests one at a time: the body is a
:mod:`mecllm.train.wire` message whose header says which user, how many leading adapter layers
the user trained (``split``) and the seed of the user's shared data; its tensors must be exactly
those layers' adapters. The server trains the remaining adapters on the user's data and answers
with them. A request without the token, with tensors of the wrong names, shapes or size, or cut
off mid-transfer is refused and logged on stderr; the server goes on serving.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from mecllm.train.loop import Settings, build, train_layers
from mecllm.train.task import make_split
from mecllm.train.wire import WireError, check_tensors, decode, encode

TOKEN_ENV = "MECLLM_TRAIN_TOKEN"
MAX_BODY = 64 * 1024 * 1024


def log(message: str) -> None:
    """One line on stderr (the orchestrator keeps it in the server's log file)."""
    print(f"[server pid {os.getpid()}] {message}", file=sys.stderr, flush=True)


def make_handler(settings: Settings, token: str) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one model and token."""
    model, tok = build(settings)
    layers = len(model.blocks)
    initial = model.adapter_state(range(layers))

    class Handler(BaseHTTPRequestHandler):
        timeout = 60

        def log_message(self, format: str, *args: object) -> None:
            log(format % args)

        def _refuse(self, code: int, why: str) -> None:
            log(f"refused {self.client_address[0]}: {why}")
            body = json.dumps({"error": why}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path != "/train":
                self._refuse(404, f"unknown path {self.path}")
                return
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._refuse(401, "missing or wrong token")
                return
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._refuse(400, f"bad Content-Length {self.headers.get('Content-Length')}")
                return
            body = self.rfile.read(length)
            if len(body) < length:
                log(f"client disconnected mid-transfer ({len(body)} of {length} bytes)")
                self.close_connection = True
                return
            try:
                message = decode(body)
                split = message.header.get("split")
                seed = message.header.get("data_seed")
                if not isinstance(split, int) or not 0 <= split <= layers:
                    raise WireError(f"split must be a whole number in 0..{layers}, got {split!r}")
                if not isinstance(seed, int):
                    raise WireError(f"data_seed must be a whole number, got {seed!r}")
                user_part = range(split)
                shapes = {n: t.shape for n, t in model.adapter_state(user_part).items()}
                check_tensors(message.tensors, shapes)
            except WireError as exc:
                self._refuse(400, str(exc))
                return
            model.load_adapters(initial)
            model.load_adapters(message.tensors)
            train, _ = make_split(seed, settings.n_train, settings.n_test)
            server_part = range(split, layers)
            stats = train_layers(model, tok, train, server_part, settings)
            reply, _ = encode(
                {
                    "user": message.header.get("user"),
                    "server_seconds": stats.seconds,
                    "server_flops": stats.flops,
                    "server_tokens": stats.tokens,
                },
                model.adapter_state(server_part),
            )
            log(
                f"user {message.header.get('user')}: trained layers {split}..{layers - 1} in "
                f"{stats.seconds:.2f} s"
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="mecllm edge-server training process")
    parser.add_argument("--settings", required=True, help="JSON of mecllm.train.loop.Settings")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        sys.exit(f"{TOKEN_ENV} must hold the run's token (16+ characters)")
    settings = Settings(**json.loads(args.settings))
    server = HTTPServer((args.host, args.port), make_handler(settings, token))
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass


if __name__ == "__main__":
    main()
