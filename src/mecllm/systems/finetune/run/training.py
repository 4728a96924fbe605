"""``mecllm train INSTANCE SOLUTION``: run a plan's split fine-tuning for real, on loopback.

One server process per edge server the plan uses and one process per user, all users starting
together (docs/train.md, "Concurrent run"); a fresh token per run; every process tied to this
one (they die with it). When the instance carries a profile (``mecllm generate
--work-model``), the run holds every process to the plan's compute speeds by time slicing and
shapes every transfer to the plan's rates, so that each phase T1..T4 can be set beside the
plan's prediction. Returns one record per user (measured and predicted phases, transfers,
quality) or the reason the user failed, and the makespan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.core.fileio import atomic_write_text
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.physics import phases
from mecllm.systems.finetune.run.loop import Settings, model_shape
from mecllm.systems.finetune.run.server import TOKEN_ENV
from mecllm.systems.finetune.solution import Plan
from mecllm.transport.service import ServiceError, ServiceProcess

#: Longest a user's part may take before it is stopped (loading, training, the exchange), s.
USER_TIMEOUT_S = 3600.0
#: Longest the run waits for every user to have loaded its model and data, s.
START_TIMEOUT_S = 600.0
PHASES = ("T1_s", "T2_s", "T3_s", "T4_s")
#: The environment every training process starts with: glibc's malloc with one arena. A server
#: trains in gRPC's worker threads, and with an arena per thread its large activation buffers
#: were mapped and unmapped every step (page faults): measured, 11-27 % more CPU per FLOP than
#: the profile; with one arena 0.995-1.004 (docs/train.md).
ONE_ARENA = {"MALLOC_ARENA_MAX": "1"}
Mode = Literal["adapters", "split"]


def check_plan(instance: Instance, plan: Plan) -> None:
    """Refuse plans the run cannot carry out (phi outside [0, 1])."""
    for n, phi in enumerate(plan.phi):
        if not 0.0 <= phi <= 1.0:
            raise InvalidInputError(f"solution phi[{n}] must be in [0, 1], got {phi:g}")


class ServerProcess(ServiceProcess):
    """A running ``mecllm.systems.finetune.run.server`` and its log file (it dies with this
    process)."""

    def __init__(self, server: int, settings: Settings, token: str, log_dir: Path) -> None:
        self.server = server
        try:
            super().__init__(
                "mecllm.systems.finetune.run.server",
                ["--settings", json.dumps(dataclasses.asdict(settings))],
                TOKEN_ENV,
                token,
                log_dir / f"server-{server}.log",
                extra_env=ONE_ARENA,
            )
        except ServiceError as exc:
            raise SolverError(f"edge server {server}: {exc}") from None


def _death(returncode: int) -> str:
    """How a process ended, in words."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by signal {number} ({name})"
    return f"exited with status {returncode}"


def _last_phase(stderr: str) -> str:
    """The last ``phase: ...`` line a user process wrote (where it was)."""
    phases = [line[7:].strip() for line in stderr.splitlines() if line.startswith("phase: ")]
    return phases[-1] if phases else "start-up"


class UserProcess:
    """One running ``mecllm.systems.finetune.run.user``: started here (so that it dies with this
    process's main thread), its job on stdin, its output collected by a thread."""

    def __init__(
        self, job: dict[str, Any], token: str, module: str = "mecllm.systems.finetune.run.user"
    ) -> None:
        self.job = job
        env = dict(
            os.environ,
            **ONE_ARENA,
            **{TOKEN_ENV: token, "MECLLM_PARENT_PID": str(os.getpid())},
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout = self.stderr = ""
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        self.stdout, self.stderr = self.process.communicate(json.dumps(self.job))

    @property
    def ended(self) -> bool:
        """True once the process has exited and its output is read."""
        return not self._reader.is_alive()

    def kill(self) -> None:
        """Stop the process (if it still runs) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)

    def record(self, deadline: float) -> dict[str, Any]:
        """The user's JSON record, or a SolverError naming what happened and where."""
        user = self.job["user"]
        self._reader.join(timeout=max(deadline - time.monotonic(), 0.0))
        if self._reader.is_alive():
            self.kill()
            raise SolverError(
                f"user {user} took more than {USER_TIMEOUT_S:g} s and was stopped during "
                f"{_last_phase(self.stderr)}"
            )
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        returncode = self.process.returncode
        if returncode != 0 or not lines:
            where = _last_phase(self.stderr)
            if lines and "error" in json.loads(lines[-1]):
                detail = json.loads(lines[-1])["error"]
                raise SolverError(f"user {user} failed during {where}: {detail}")
            tail = self.stderr.strip().splitlines()[-1:] if self.stderr.strip() else []
            raise SolverError(
                f"user {user} {_death(returncode)} during {where}"
                + (f" ({tail[0][:200]})" if tail and not tail[0].startswith("phase:") else "")
            )
        record: dict[str, Any] = json.loads(lines[-1])
        return record


def _whole(value: float, what: str) -> int:
    if value < 1 or value != round(value):
        raise InvalidInputError(f"{what} must be a whole number >= 1 for a run, got {value:g}")
    return int(value)


def user_jobs(
    instance: Instance, plan: Plan, settings: Settings, addresses: dict[int, str], folder: Path
) -> list[dict[str, Any]]:
    """Every user's job: its split, data, server and, with a profile, the plan's speeds/rates."""
    report = phases(instance, plan)
    profile = instance.profile
    jobs = []
    for n in range(plan.n_users):
        m = int(plan.assignment[n])
        job: dict[str, Any] = {
            "user": n,
            "server": m,
            "phi": float(plan.phi[n]),
            "server_address": addresses[m],
            "data_seed": settings.seed * 1000 + n,
            "settings": dataclasses.asdict(settings),
            "ready_file": str(folder / f"ready-{n}"),
            "go_file": str(folder / "go"),
        }
        if profile is not None:
            machine = profile.machine_flops_per_s

            def speed(value: float, machine: float = machine) -> float:
                return value if value > 0 else machine  # no resource: no work to pace

            def rate(value: float) -> float:
                return value if value > 0 and np.isfinite(value) else float("inf")

            job.update(
                examples=_whole(
                    profile.tokens_per_epoch[n] / profile.seq_len, f"profile tokens[{n}] / seq_len"
                ),
                epochs=_whole(float(instance.user_epochs[n]), f"users.epochs[{n}]"),
                server_epochs=_whole(float(instance.server_epochs[m]), f"servers.epochs[{m}]"),
                machine_flops=machine,
                user_flops=speed(float(plan.user_flops[n])),
                server_flops=speed(float(plan.server_flops[n])),
                up_rate_bps=rate(float(report.r_up[n])),
                down_rate_bps=rate(float(report.r_dn[n])),
            )
        jobs.append(job)
    return jobs


def settings_for(instance: Instance, settings: Settings) -> Settings:
    """The run's settings: a profiled instance fixes the sequence length and adapter width."""
    profile = instance.profile
    if profile is None:
        return settings
    if profile.task != settings.task:
        need = (
            "give --csi-data and --csi-model"
            if profile.task == "csi"
            else "drop --csi-data and --csi-model"
        )
        raise InvalidInputError(
            f"this instance was profiled for the {profile.task} task and the run is set for the "
            f"{settings.task} task: {need}"
        )
    return dataclasses.replace(settings, max_len=profile.seq_len, bottleneck=profile.bottleneck)


def predicted_phases(instance: Instance, plan: Plan, blocks: int) -> list[dict[str, float | None]]:
    """Each user's T1..T4 by the instance's work model, at the realised split ``k / L`` of a
    model of ``blocks`` blocks."""
    realised = plan.replace(phi=np.round(plan.phi * blocks) / blocks)
    report = phases(instance, realised)
    return [
        {
            name: (float(t[n]) if np.isfinite(t[n]) else None)
            for name, t in zip(PHASES, report.t, strict=True)
        }
        for n in range(plan.n_users)
    ]


def _start_together(users: list[UserProcess], go: Path) -> None:
    """Wait until every live user is ready, then write the common start (atomically)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all(u.ended or Path(u.job["ready_file"]).exists() for u in users):
        if time.monotonic() > deadline:
            raise SolverError(f"the users were not ready within {START_TIMEOUT_S:g} s")
        time.sleep(0.02)
    atomic_write_text(go, json.dumps({"start_at": time.monotonic() + 0.05}))


def train_plan(
    instance: Instance,
    plan: Plan,
    settings: Settings,
    *,
    log_dir: Path | None = None,
    progress: Any = None,
    mode: Mode = "adapters",
) -> dict[str, Any]:
    """Run every user of ``plan`` on its assigned server, all at once.

    ``mode``: ``"adapters"`` (the plan's adapter split) or ``"split"`` (full-parameter split
    training at ``k = round(phi L)``, docs/train.md "Split mode"; predictions per batch).

    Returns ``{"users": [record, ...], "makespan_s": {"predicted", "measured"}, ...}``. A user
    that fails (its process dies, times out or is refused) gets a record with its ``error``,
    and the others still run. Every process started here ends before this returns, also when
    it is interrupted.
    """
    check_plan(instance, plan)
    settings = settings_for(instance, settings)
    blocks, width = model_shape(settings)
    if instance.profile is not None and instance.profile.blocks != blocks:
        raise InvalidInputError(
            f"the instance was profiled on a model of {instance.profile.blocks} blocks, but the "
            f"run's model has {blocks}: profile the same model (mecllm profile --model-dir)"
        )
    token = secrets.token_urlsafe(24)
    folder = log_dir or Path(tempfile.mkdtemp(prefix="mecllm-train-"))
    folder.mkdir(parents=True, exist_ok=True)
    barrier = Path(tempfile.mkdtemp(prefix="start-", dir=folder))
    used = sorted({int(m) for m in plan.assignment})
    servers: dict[int, ServerProcess] = {}
    users: list[UserProcess] = []
    predicted = (
        predicted_phases(instance, plan, blocks)
        if mode == "adapters"
        else split_predictions(instance, plan, width)
    )
    records: list[dict[str, Any]] = []
    try:
        for m in used:
            if progress:
                progress(f"starting edge server {m} ...")
            servers[m] = ServerProcess(m, settings, token, folder)
        addresses = {m: server.address for m, server in servers.items()}
        jobs = user_jobs(instance, plan, settings, addresses, barrier)
        if progress:
            paced = "paced to the plan's speeds and rates" if instance.profile else "unpaced"
            progress(f"starting {len(jobs)} users together ({paced}) ...")
        module = (
            "mecllm.systems.finetune.run.user"
            if mode == "adapters"
            else "mecllm.systems.finetune.run.split_user"
        )
        users = [UserProcess(job, token, module) for job in jobs]
        _start_together(users, barrier / "go")
        deadline = time.monotonic() + USER_TIMEOUT_S
        for user in users:
            n = user.job["user"]
            try:
                record = user.record(deadline)
            except SolverError as exc:
                if progress:
                    progress(f"user {n}: {exc}")
                records.append(
                    {
                        "user": n,
                        "server": user.job["server"],
                        "error": str(exc),
                        "predicted": predicted[n],
                    }
                )
                continue
            record["predicted"] = predicted[n]
            if progress:
                progress(f"user {n} done in {record['finished_s']:.1f} s")
            records.append(with_work_measures(record) if mode == "adapters" else record)
    finally:
        for user in users:
            user.kill()
        for server in servers.values():
            server.stop()
    return {
        "instance_work_model": instance.work_model,
        "paced": instance.profile is not None,
        "users": records,
        "makespan_s": makespan(predicted, records)
        if mode == "adapters"
        else split_makespan(predicted, records),
        "mode": mode,
    }


def makespan(
    predicted: list[dict[str, float | None]], records: list[dict[str, Any]]
) -> dict[str, float | None]:
    """The largest total delay, as planned (every user) and as measured (None if one failed)."""
    totals: list[float | None] = []
    for phases_s in predicted:
        known = [v for v in phases_s.values() if v is not None]
        totals.append(sum(known) if len(known) == len(phases_s) else None)
    return _longest(totals, records, "finished_s")


def _longest(
    planned: list[float | None], records: list[dict[str, Any]], measured_key: str
) -> dict[str, float | None]:
    """The largest of ``planned`` (None if one is) and of the records' ``measured_key`` (None if
    a user failed)."""
    known = [v for v in planned if v is not None]
    finished = [r[measured_key] for r in records if "error" not in r]
    return {
        "predicted": max(known) if known and len(known) == len(planned) else None,
        "measured": max(finished) if len(finished) == len(records) and finished else None,
    }


def with_work_measures(record: dict[str, Any]) -> dict[str, Any]:
    """Add the measured FLOPs per trained adapter parameter per token of each side."""
    for side, params in (("user", "params_up"), ("server", "params_down")):
        tokens, flops = record[f"{side}_tokens"], record[f"{side}_flops"]
        record[f"{side}_flops_per_param_token"] = (
            flops / (tokens * record[params]) if tokens and record[params] else 0.0
        )
    return record


# ---------------------------------------------------------------------- split mode
def split_bytes(batch: int, seq: int, width: int) -> tuple[int, int]:
    """Payload bytes of one split-mode batch (float32): up, the hidden states, the attention
    mask and the labels, ``4 B S (w + 1) + 4 B``; down, the gradient, ``4 B S w``."""
    return 4 * batch * seq * (width + 1) + 4 * batch, 4 * batch * seq * width


def split_predictions(instance: Instance, plan: Plan, width: int) -> list[dict[str, float | None]]:
    """Each user's split-mode training time by the planner's model for the mode: per batch,
    ``(e + k c) B S / f_n`` on the user, the upload, ``(L - k) c B S / s_n`` on the server and
    the download, ``c`` and ``e`` being the profile's work per token of one block and of the
    embeddings trained whole; None without a profile that has them. Batches run one after
    another (no pipelining)."""
    profile = instance.profile
    if (
        profile is None
        or profile.split_block_flops_per_token is None
        or profile.split_embeddings_flops_per_token is None
    ):
        return [{"per_batch_s": None, "training_s": None} for _ in range(plan.n_users)]
    report = phases(instance, plan)
    block = profile.split_block_flops_per_token
    embeddings = profile.split_embeddings_flops_per_token
    out: list[dict[str, float | None]] = []
    for n in range(plan.n_users):
        k = round(float(plan.phi[n]) * profile.blocks)
        examples = round(profile.tokens_per_epoch[n] / profile.seq_len)
        batches = -(-examples // profile.batch) * round(float(instance.user_epochs[n]))
        tokens = profile.batch * profile.seq_len
        up, down = split_bytes(profile.batch, profile.seq_len, width)
        parts = (
            (embeddings + k * block) * tokens / float(plan.user_flops[n]),
            8.0 * up / float(report.r_up[n]),
            (profile.blocks - k) * block * tokens / float(plan.server_flops[n])
            if k < profile.blocks
            else 0.0,
            8.0 * down / float(report.r_dn[n]),
        )
        per_batch = sum(parts)
        out.append(
            {
                "user_s": parts[0],
                "up_s": parts[1],
                "server_s": parts[2],
                "down_s": parts[3],
                "per_batch_s": per_batch if np.isfinite(per_batch) else None,
                "training_s": per_batch * batches if np.isfinite(per_batch) else None,
            }
        )
    return out


def split_makespan(
    predicted: list[dict[str, float | None]], records: list[dict[str, Any]]
) -> dict[str, float | None]:
    """The longest split-mode training, as planned and as measured (None if one failed)."""
    return _longest([p["training_s"] for p in predicted], records, "training_s")


def split_sweep(
    instance: Instance,
    plan: Plan,
    settings: Settings,
    splits: list[int],
    *,
    log_dir: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Split mode at each cut in ``splits`` (every user at the same k): the planned and the
    measured training time of each, the cut the planner's model recommends and the
    measured best."""
    blocks, _ = model_shape(settings)
    if any(not 0 <= k <= blocks for k in splits):
        raise InvalidInputError(f"--splits must be cuts in 0..{blocks} (the model's blocks)")
    rows = []
    for k in splits:
        if progress:
            progress(f"split mode, every user at k = {k} ...")
        folder = (log_dir or Path(tempfile.mkdtemp(prefix="mecllm-split-"))) / f"k{k}"
        run = train_plan(
            instance,
            plan.replace(phi=np.full(plan.n_users, k / blocks)),
            settings,
            log_dir=folder,
            progress=progress,
            mode="split",
        )
        rows.append({"split": k, **run})
    planned = [r["makespan_s"]["predicted"] for r in rows]
    measured = [r["makespan_s"]["measured"] for r in rows]
    return {
        "mode": "split",
        "splits": rows,
        "recommended_split": None
        if None in planned
        else rows[int(np.argmin(np.asarray(planned, dtype=float)))]["split"],
        "measured_best_split": None
        if None in measured
        else rows[int(np.argmin(np.asarray(measured, dtype=float)))]["split"],
    }
