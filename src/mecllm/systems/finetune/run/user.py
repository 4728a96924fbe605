"""The user process: trains its share of the adapters, sends them to its server, gets the rest.

Run by ``mecllm train`` as ``python -m mecllm.systems.finetune.run.user`` with a JSON job on stdin
and the run's token in ``MECLLM_TRAIN_TOKEN``; prints one JSON line with everything it measured. The
user trains the adapters of the first ``k = round(phi L)`` blocks (the realised phi is
``k / L``), uploads exactly those tensors, and receives exactly the other ``L - k`` blocks'
adapters back.

The job says what to train on (``examples``, ``epochs``) and, for a paced run, the plan's
speeds and rates: ``user_flops`` and ``machine_flops`` (the user holds its share of a core by
time slicing), ``up_rate_bps`` (the upload is released by a token bucket) and, for the server,
``server_flops``, ``server_epochs`` and ``down_rate_bps``. All users of a run start together:
each loads its model and data, touches its ``ready`` file and waits for the ``go`` file, which
holds the common start on the machine's monotonic clock. The timestamps it reports (T1 ends,
upload starts, the server's receipt and reply, the last byte back) are on that clock.

It reports each phase on stderr (``phase: upload``) so that the orchestrator can say where it
stopped if it dies, and it dies with its parent.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mecllm.core.processes import die_with_parent
from mecllm.systems.finetune.run.loop import (
    Settings,
    build,
    count_flops,
    evaluate,
    flops_per_sequence,
    train_layers,
    warm_up,
)
from mecllm.systems.finetune.run.pacing import Pace
from mecllm.systems.finetune.run.server import SERVICE, TOKEN_ENV
from mecllm.transport.rpc import Client, TransferError
from mecllm.transport.shaping import paced_chunks
from mecllm.transport.tensors import WireError, decode, encode

#: Deadline of the exchange with the server, s (training on the server is inside it).
EXCHANGE_TIMEOUT_S = 1800.0
#: Longest a user waits for the common start, s.
START_TIMEOUT_S = 600.0


def phase(name: str) -> None:
    """Tell the orchestrator where this process is (one line on stderr)."""
    print(f"phase: {name}", file=sys.stderr, flush=True)


def wait_for_start(job: dict[str, Any]) -> float:
    """Say ready and wait for the common start; its time on the monotonic clock."""
    if "go_file" not in job:
        return time.monotonic()
    Path(job["ready_file"]).touch()
    go = Path(job["go_file"])
    deadline = time.monotonic() + START_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no common start within {START_TIMEOUT_S:g} s")
        time.sleep(0.01)
    start = float(json.loads(go.read_text())["start_at"])
    time.sleep(max(start - time.monotonic(), 0.0))
    return start


def run(job: dict[str, Any], token: str) -> dict[str, Any]:
    """Do one user's part of the run and return its measurements."""
    settings = Settings(**job["settings"])
    settings = dataclasses.replace(
        settings,
        n_train=int(job.get("examples", settings.n_train)),
        epochs=int(job.get("epochs", settings.epochs)),
    )
    torch.set_num_threads(1)
    phase("loading the model")
    model, task = build(settings)
    layers = model.n_blocks
    split = round(float(job["phi"]) * layers)
    train, test = task.data(int(job["data_seed"]), settings.n_train, settings.n_test)
    loss0, score0 = evaluate(model, task, test)
    mine = range(split)
    paced = "machine_flops" in job
    pace = Pace(float(job["user_flops"]), float(job["machine_flops"])) if paced else None
    warm_up(model, task, train, settings.batch)
    # Counted before the common start: the pace holds the plan's speed by the run's own FLOPs.
    sequence_flops = flops_per_sequence(model, task, train, mine) if paced else None
    # The connection is made before the common start: the upload's time (T2) is the transfer,
    # not the TCP and HTTP/2 set-up the plan does not model (13-43 ms measured on loopback).
    with Client(job["server_address"], SERVICE, token) as client:
        client.connect(EXCHANGE_TIMEOUT_S)
        # The server builds this user's training data now, not inside its phase T3.
        prepare, _ = encode({"data_seed": job["data_seed"], "examples": settings.n_train}, {})
        client.call("Prepare", prepare, EXCHANGE_TIMEOUT_S)
        phase("waiting for the common start")
        go_at = wait_for_start(job)
        phase("local training")
        local = train_layers(model, task, train, mine, settings, pace, sequence_flops)
        trained_at = local.ended_at
        header: dict[str, Any] = {
            "user": job["user"],
            "split": split,
            "data_seed": job["data_seed"],
            "examples": settings.n_train,
            "epochs": int(job.get("server_epochs", settings.epochs)),
        }
        if paced:
            header.update(
                server_flops=float(job["server_flops"]),
                machine_flops=float(job["machine_flops"]),
                down_rate_bps=float(job["down_rate_bps"]),
            )
        upload, up_payload = encode(
            header, {n: t.numpy() for n, t in model.adapter_state(mine).items()}
        )
        phase("upload, server training and download")
        # Nothing to upload (k = 0): the message is a header alone, sent unpaced.
        up_rate = float(job["up_rate_bps"]) if paced and split > 0 else math.inf
        upload_at = time.monotonic()
        chunks = list(client.stream("Exchange", paced_chunks(upload, up_rate), EXCHANGE_TIMEOUT_S))
        done_at = time.monotonic()
        reply = b"".join(chunks)
        theirs = range(split, layers)
        expected = {n: tuple(t.shape) for n, t in model.adapter_state(theirs).items()}
        message = decode(reply, expected)
        model.load_adapters({n: torch.from_numpy(v) for n, v in message.tensors.items()})
        phase("evaluation")
        loss1, score1 = evaluate(model, task, test)
        server = message.header
        # FLOPs are counted after the timed run, here for both sides (same shapes as they ran).
        server_steps = tuple((int(size), int(count)) for size, count in server["server_steps"])
        user_flops = count_flops(model, task, train, mine, local.steps)
        server_flops = count_flops(model, task, train, theirs, server_steps)
        received_at, send_at = float(server["received_at"]), float(server["send_at"])
        server_trained_at = float(server["trained_at"])
        return {
            "user": job["user"],
            "server": job["server"],
            "phi_plan": float(job["phi"]),
            "phi_realised": split / layers,
            "blocks": layers,
            "adapter_params": model.adapter_params(range(layers)),
            "params_up": model.adapter_params(mine),
            "params_down": model.adapter_params(theirs),
            "payload_up_bytes": up_payload,
            "payload_down_bytes": message.payload_bytes,
            "framing_up_bytes": len(upload) - up_payload,
            "framing_down_bytes": message.framing_bytes,
            "examples": settings.n_train,
            "user_seconds": local.seconds,
            "user_cpu_seconds": local.cpu_seconds,
            "user_pace_reachable": pace.reachable if pace else True,
            "user_pace_overrun": pace.overrun if pace else 1.0,
            "user_flops": user_flops,
            "user_tokens": local.tokens,
            "server_seconds": server["server_seconds"],
            "server_cpu_seconds": server["server_cpu_seconds"],
            "server_pace_reachable": server["server_pace_reachable"],
            "server_pace_overrun": float(server.get("server_pace_overrun", 1.0)),
            "server_flops": server_flops,
            "server_tokens": server["server_tokens"],
            "paced": paced,
            "measured": {
                "T1_s": trained_at - go_at,
                "T2_s": received_at - upload_at,
                "T3_s": server_trained_at - received_at,
                "T4_s": done_at - send_at,
            },
            "finished_s": done_at - go_at,
            "task": task.name,
            "metric": task.metric,
            "loss_before": loss0,
            "loss_after": loss1,
            f"{task.metric}_before": score0,
            f"{task.metric}_after": score1,
        }


def run_job(work: Callable[[dict[str, Any], str], dict[str, Any]]) -> None:
    """A user process's life: tie it to its parent, read the job on stdin, do ``work`` and
    print its record (or the transfer error that stopped it) as one JSON line."""
    die_with_parent(int(os.environ.get("MECLLM_PARENT_PID", os.getppid())))
    token = os.environ.get(TOKEN_ENV, "")
    job = json.loads(sys.stdin.read())
    try:
        result = work(job, token)
    except (TransferError, WireError, TimeoutError) as exc:
        print(json.dumps({"user": job.get("user"), "error": str(exc)}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


def main() -> None:
    run_job(run)


if __name__ == "__main__":
    main()
