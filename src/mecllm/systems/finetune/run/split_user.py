"""The user process of split mode: full-parameter split training (docs/train.md, "Split mode").

Run by ``mecllm train --mode split`` as ``python -m mecllm.systems.finetune.run.split_user``
with the same job as :mod:`mecllm.systems.finetune.run.user`. The user holds the embeddings and
blocks ``[0, k)``, every one of their parameters trainable; its server holds blocks ``[k, L)``
and the head. For every batch the user computes its hidden states and sends them up (with the
attention mask and the labels), the server finishes the forward pass, steps its optimiser and
sends back the gradient of the loss with respect to those hidden states, and the user finishes
the backward pass and steps its own. Before and after training the held-out set goes through the
same two halves (no gradient) for the accuracy. Every message is counted in bytes; with a paced
job, compute is held to the plan's speeds and every message to the plan's rates."""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mecllm.systems.finetune.run.loop import Settings, build, warm_up
from mecllm.systems.finetune.run.pacing import Pace
from mecllm.systems.finetune.run.server import SERVICE
from mecllm.systems.finetune.run.tasks import Batch, Task
from mecllm.systems.finetune.run.user import EXCHANGE_TIMEOUT_S, phase, run_job, wait_for_start
from mecllm.transport.rpc import MAX_MESSAGE_BYTES, Client
from mecllm.transport.shaping import framed_chunks, messages
from mecllm.transport.tensors import WireError, decode, encode

_END = object()


class SplitLink:
    """One ``Split`` stream: messages up (paced frames, produced on the caller's thread, so the
    caller waits out the rate) and replies down, one per message."""

    def __init__(self, client: Client, up_rate: float) -> None:
        self._outbox: queue.Queue[object] = queue.Queue()
        self.up_rate = up_rate
        self._replies = messages(
            client.stream("Split", self._requests(), EXCHANGE_TIMEOUT_S), MAX_MESSAGE_BYTES
        )

    def _requests(self) -> Iterator[bytes]:
        while True:
            item = self._outbox.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    def send(self, message: bytes, paced: bool = True) -> None:
        """Send one message, paced to the uplink rate unless ``paced`` is false (returns once its
        last frame left)."""
        for frame in framed_chunks(message, self.up_rate if paced else math.inf):
            self._outbox.put(frame)

    def receive(self) -> bytes:
        """The next reply."""
        try:
            return next(self._replies)
        except StopIteration:
            raise WireError("the server ended the stream early") from None

    def close(self) -> None:
        """End the stream and read what is left of it."""
        self._outbox.put(_END)
        for _ in self._replies:
            pass


def _batch_message(
    kind: str, hidden: torch.Tensor, att: torch.Tensor, labels: torch.Tensor
) -> tuple[bytes, int]:
    b, s = int(att.shape[0]), int(att.shape[1])
    return encode(
        {"kind": kind, "batch": b, "seq": s},
        {
            "hidden": hidden.detach().numpy().astype(np.float32),
            "mask": att.numpy().astype(np.float32),
            "labels": labels.numpy().astype(np.float32),
        },
    )


def _evaluate(
    model: Any, task: Task, data: Batch, k: int, link: SplitLink, batch: int
) -> tuple[float, float]:
    """Loss and score of the split model (both halves) on ``data``."""
    ids, att, labels = data.inputs, data.attention, data.target
    model.eval()
    logits = []
    for start in range(0, len(data), batch):
        sl = slice(start, start + batch)
        with torch.no_grad():
            hidden = model.bottom(ids[sl], att[sl], k)
        message, _ = _batch_message("eval", hidden, att[sl], labels[sl])
        link.send(message, paced=False)  # evaluation is not part of the plan
        reply = decode(link.receive())
        logits.append(torch.from_numpy(reply.tensors["logits"]))
    out = torch.cat(logits)
    return float(task.loss(out, labels)), task.score(out, data)


def run(job: dict[str, Any], token: str) -> dict[str, Any]:
    """One user's split-mode run; its measurements."""
    settings = Settings(**job["settings"])
    examples = int(job.get("examples", settings.n_train))
    epochs = int(job.get("epochs", settings.epochs))
    torch.set_num_threads(1)
    phase("loading the model")
    model, task = build(settings)
    layers = model.n_blocks
    k = round(float(job["phi"]) * layers)
    train, test = task.data(int(job["data_seed"]), examples, settings.n_test)
    warm_up(model, task, train, settings.batch)
    params = model.part_parameters(user=True, k=k)
    optimiser = torch.optim.AdamW(params, lr=settings.full_lr)
    paced = "machine_flops" in job
    pace = Pace(float(job["user_flops"]), float(job["machine_flops"])) if paced else None
    header: dict[str, Any] = {"user": job["user"], "split": k}
    if paced:
        header.update(
            server_flops=float(job["server_flops"]),
            machine_flops=float(job["machine_flops"]),
            down_rate_bps=float(job["down_rate_bps"]),
        )
    up_rate = float(job["up_rate_bps"]) if paced else math.inf
    with Client(job["server_address"], SERVICE, token) as client:
        client.connect(EXCHANGE_TIMEOUT_S)  # before the start: the set-up is not a transfer
        phase("waiting for the common start")
        go_at = wait_for_start(job)
        link = SplitLink(client, up_rate)
        link.send(encode(header, {})[0])
        phase("evaluation before training")
        loss0, acc0 = _evaluate(model, task, test, k, link, settings.batch)
        phase("split training")
        ids, att, labels = train.inputs, train.attention, train.target
        generator = torch.Generator().manual_seed(settings.seed)
        up_bytes, down_bytes, framing_up, framing_down = [], [], [], []
        times: dict[str, list[float]] = {"user": [], "up": [], "server": [], "down": []}
        trained_at = time.monotonic()
        for _ in range(epochs):
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), settings.batch):
                pick = order[start : start + settings.batch]
                model.train()
                t0 = time.monotonic()
                if pace is not None:
                    pace.restart()
                hidden = model.bottom(ids[pick], att[pick], k)
                if pace is not None:
                    pace.step()
                t1 = time.monotonic()
                message, payload = _batch_message("train", hidden, att[pick], labels[pick])
                link.send(message)
                t2 = time.monotonic()
                raw = link.receive()
                t3 = time.monotonic()
                reply = decode(raw)
                grad = torch.from_numpy(reply.tensors["grad"])
                if pace is not None:
                    pace.restart()
                optimiser.zero_grad()
                hidden.backward(grad)  # type: ignore[no-untyped-call]
                optimiser.step()
                if pace is not None:
                    pace.step()
                t4 = time.monotonic()
                server_s = float(reply.header["server_s"])
                times["user"].append((t1 - t0) + (t4 - t3))
                times["up"].append(t2 - t1)
                times["server"].append(server_s)
                times["down"].append(max(t3 - t2 - server_s, 0.0))
                up_bytes.append(payload)
                framing_up.append(len(message) - payload)
                down_bytes.append(reply.payload_bytes)
                framing_down.append(reply.framing_bytes)
        trained_s = time.monotonic() - trained_at
        phase("evaluation after training")
        loss1, acc1 = _evaluate(model, task, test, k, link, settings.batch)
        link.close()
    done_at = time.monotonic()
    return {
        "user": job["user"],
        "server": job["server"],
        "mode": "split",
        "split": k,
        "phi_plan": float(job["phi"]),
        "batches": len(up_bytes),
        "batch_shapes": [settings.batch, int(ids.shape[1]), model.width],
        "payload_up_bytes_per_batch": up_bytes,
        "payload_down_bytes_per_batch": down_bytes,
        "framing_up_bytes_per_batch": framing_up,
        "framing_down_bytes_per_batch": framing_down,
        "user_params": sum(p.numel() for p in params),
        "seconds_per_batch": {name: float(np.mean(v)) for name, v in times.items() if v},
        "training_s": trained_s,
        "finished_s": done_at - go_at,
        "paced": paced,
        "examples": examples,
        "epochs": epochs,
        "loss_before": loss0,
        "loss_after": loss1,
        "task": task.name,
        "metric": task.metric,
        f"{task.metric}_before": acc0,
        f"{task.metric}_after": acc1,
    }


def main() -> None:
    run_job(run)


if __name__ == "__main__":
    main()
