"""The user process: trains its share of the adapters, sends them to its server, gets the rest.

Run by ``mecllm train`` as ``python -m mecllm.train.user`` with a JSON job on stdin (user,
phi, server address, data seed, settings) and the run's token in ``MECLLM_TRAIN_TOKEN``; prints
one JSON line with everything it measured. The user trains the adapters of the first
``k = round(phi L)`` blocks (the realised phi is ``k / L``), uploads exactly those tensors,
and receives exactly the other ``L - k`` blocks' adapters back. It reports each phase on stderr
(``phase: upload``) so that the orchestrator can say where it stopped if it dies, and it dies
with its parent.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

from mecllm.core.processes import die_with_parent
from mecllm.train.loop import Settings, build, evaluate, train_layers
from mecllm.train.model import adapter_size
from mecllm.train.server import SERVICE, TOKEN_ENV
from mecllm.train.task import make_split
from mecllm.transport.rpc import Client, TransferError
from mecllm.transport.tensors import WireError, decode, encode

#: Deadline of the exchange with the server, s (training on the server is inside it).
EXCHANGE_TIMEOUT_S = 1800.0


def phase(name: str) -> None:
    """Tell the orchestrator where this process is (one line on stderr)."""
    print(f"phase: {name}", file=sys.stderr, flush=True)


def run(job: dict[str, Any], token: str) -> dict[str, Any]:
    """Do one user's part of the run and return its measurements."""
    settings = Settings(**job["settings"])
    phase("loading the model")
    model, tok = build(settings)
    layers = len(model.blocks)
    split = round(float(job["phi"]) * layers)
    train, test = make_split(int(job["data_seed"]), settings.n_train, settings.n_test)
    loss0, acc0 = evaluate(model, tok, test)
    mine = range(split)
    phase("local training")
    local = train_layers(model, tok, train, mine, settings)
    upload, up_payload = encode(
        {"user": job["user"], "split": split, "data_seed": job["data_seed"]},
        {n: t.numpy() for n, t in model.adapter_state(mine).items()},
    )
    phase("upload, server training and download")
    with Client(job["server_address"], SERVICE, token) as client:
        reply = client.call("Train", upload, EXCHANGE_TIMEOUT_S)
    theirs = range(split, layers)
    expected = {n: tuple(t.shape) for n, t in model.adapter_state(theirs).items()}
    message = decode(reply, expected)
    model.load_adapters({n: torch.from_numpy(v) for n, v in message.tensors.items()})
    phase("evaluation")
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
    die_with_parent(int(os.environ.get("MECLLM_PARENT_PID", os.getppid())))
    token = os.environ.get(TOKEN_ENV, "")
    job = json.loads(sys.stdin.read())
    try:
        result = run(job, token)
    except (TransferError, WireError) as exc:
        print(json.dumps({"user": job.get("user"), "error": str(exc)}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
