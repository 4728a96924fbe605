"""The user process: trains its share of the adapters, sends them to its server, gets the rest.

Run by ``mecllm train`` as ``python -m mecllm.train.user`` with a JSON job on stdin (user,
phi, server URL, data seed, settings) and the run's token in ``MECLLM_TRAIN_TOKEN``; prints one
JSON line with everything it measured. The user trains the adapters of the first
``k = round(phi L)`` blocks (the realised phi is ``k / L``), uploads exactly those tensors,
and receives exactly the other ``L - k`` blocks' adapters back.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from typing import Any
from urllib.parse import urlparse

from mecllm.train.loop import Settings, build, evaluate, train_layers
from mecllm.train.model import adapter_size
from mecllm.train.server import TOKEN_ENV
from mecllm.train.task import make_split
from mecllm.train.wire import check_tensors, decode, encode


class TransferError(RuntimeError):
    """The server refused the upload or the connection broke."""


def post(url: str, token: str, body: bytes, timeout: float = 600.0) -> tuple[bytes, int]:
    """POST ``body`` to ``url``/train; the reply body and the HTTP framing bytes both ways."""
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(body)),
    }
    request_line = f"POST /train HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
    head_bytes = len(request_line) + sum(len(f"{k}: {v}\r\n") for k, v in headers.items()) + 2
    try:
        conn.request("POST", "/train", body=body, headers=headers)
        response = conn.getresponse()
        reply = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"connection to {url} failed: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise TransferError(f"server refused the upload ({response.status}): {reply[:200]!r}")
    head_bytes += len(f"HTTP/1.0 {response.status} {response.reason}\r\n")
    head_bytes += sum(len(f"{k}: {v}\r\n") for k, v in response.getheaders()) + 2
    return reply, head_bytes


def run(job: dict[str, Any], token: str) -> dict[str, Any]:
    """Do one user's part of the run and return its measurements."""
    settings = Settings(**job["settings"])
    model, tok = build(settings)
    layers = len(model.blocks)
    split = round(float(job["phi"]) * layers)
    train, test = make_split(int(job["data_seed"]), settings.n_train, settings.n_test)
    loss0, acc0 = evaluate(model, tok, test)
    mine = range(split)
    local = train_layers(model, tok, train, mine, settings)
    upload, up_payload = encode(
        {"user": job["user"], "split": split, "data_seed": job["data_seed"]},
        model.adapter_state(mine),
    )
    reply, http_framing = post(job["server_url"], token, upload)
    message = decode(reply)
    theirs = range(split, layers)
    check_tensors(message.tensors, {n: t.shape for n, t in model.adapter_state(theirs).items()})
    model.load_adapters(message.tensors)
    loss1, acc1 = evaluate(model, tok, test)
    per_layer = adapter_size(model.cfg.hidden_size, settings.bottleneck)
    return {
        "user": job["user"],
        "server": job["server"],
        "phi_plan": float(job["phi"]),
        "phi_realised": split / layers,
        "adapter_params": per_layer * layers,
        "params_up": per_layer * split,
        "params_down": per_layer * (layers - split),
        "payload_up_bytes": up_payload,
        "payload_down_bytes": message.payload_bytes,
        "framing_up_bytes": len(upload) - up_payload,
        "framing_down_bytes": message.framing_bytes,
        "http_framing_bytes": http_framing,
        "user_seconds": local.seconds,
        "user_flops": local.flops,
        "user_tokens": local.tokens,
        "server_seconds": message.header["server_seconds"],
        "server_flops": message.header["server_flops"],
        "server_tokens": message.header["server_tokens"],
        "loss_before": loss0,
        "loss_after": loss1,
        "accuracy_before": acc0,
        "accuracy_after": acc1,
    }


def main() -> None:
    token = os.environ.get(TOKEN_ENV, "")
    job = json.loads(sys.stdin.read())
    try:
        result = run(job, token)
    except TransferError as exc:
        print(json.dumps({"user": job.get("user"), "error": str(exc)}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
