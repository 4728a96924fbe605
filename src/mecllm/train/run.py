"""``mecllm train INSTANCE SOLUTION``: run a plan's split fine-tuning for real, on loopback.

One server process per edge server the plan uses, one process per user (run one after another
so that timings are not shared), a fresh token per run, every process tied to this one (they
die with it). Returns one record per user with what was measured and what the paper's work
model predicts for the same work, or the reason the user failed.
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
import time
from pathlib import Path
from typing import Any

import numpy as np

from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import Plan
from mecllm.train.loop import Settings
from mecllm.train.server import TOKEN_ENV
from mecllm.transport.service import ServiceError, ServiceProcess

#: Longest a user's part may take before it is stopped (loading, training, the exchange), s.
USER_TIMEOUT_S = 3600.0
#: The paper's work model, t_n = 6 x tokens (docs/finetune.md section 8): FLOPs per trained
#: parameter per token.
MODEL_FLOPS_PER_PARAM_PER_TOKEN = 6.0


def check_plan(instance: Instance, plan: Plan) -> None:
    """Refuse plans the run cannot carry out (phi outside [0, 1])."""
    for n, phi in enumerate(plan.phi):
        if not 0.0 <= phi <= 1.0:
            raise InvalidInputError(f"solution phi[{n}] must be in [0, 1], got {phi:g}")


class ServerProcess(ServiceProcess):
    """A running ``mecllm.train.server`` and its log file (it dies with this process)."""

    def __init__(self, server: int, settings: Settings, token: str, log_dir: Path) -> None:
        self.server = server
        try:
            super().__init__(
                "mecllm.train.server",
                ["--settings", json.dumps(dataclasses.asdict(settings))],
                TOKEN_ENV,
                token,
                log_dir / f"server-{server}.log",
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


def run_user(job: dict[str, Any], token: str, timeout_s: float = USER_TIMEOUT_S) -> dict[str, Any]:
    """One user process; its JSON record, or a SolverError naming what happened and where."""
    env = dict(os.environ, **{TOKEN_ENV: token, "MECLLM_PARENT_PID": str(os.getpid())})
    process = subprocess.Popen(
        [sys.executable, "-m", "mecllm.train.user"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        stdout, stderr = process.communicate(json.dumps(job), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        where = _last_phase(stderr)
        raise SolverError(
            f"user {job['user']} took more than {timeout_s:g} s and was stopped during {where}"
        ) from None
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): the user process goes with us.
        process.kill()
        process.wait()
        raise
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        where = _last_phase(stderr)
        if lines and "error" in json.loads(lines[-1]):
            detail = json.loads(lines[-1])["error"]
            raise SolverError(f"user {job['user']} failed during {where}: {detail}")
        tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        raise SolverError(
            f"user {job['user']} {_death(process.returncode)} during {where}"
            + (f" ({tail[0][:200]})" if tail and not tail[0].startswith("phase:") else "")
        )
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def _last_phase(stderr: str) -> str:
    """The last ``phase: ...`` line a user process wrote (where it was)."""
    phases = [line[7:].strip() for line in stderr.splitlines() if line.startswith("phase: ")]
    return phases[-1] if phases else "start-up"


def train_plan(
    instance: Instance,
    plan: Plan,
    settings: Settings,
    *,
    log_dir: Path | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Run every user of ``plan`` on its assigned server; one record per user.

    A user that fails (its process dies, times out or is refused) gets a record with its
    ``error``, and the others still run. Every process started here ends before this returns,
    also when it is interrupted.
    """
    check_plan(instance, plan)
    token = secrets.token_urlsafe(24)
    folder = log_dir or Path(tempfile.mkdtemp(prefix="mecllm-train-"))
    folder.mkdir(parents=True, exist_ok=True)
    used = sorted({int(m) for m in plan.assignment})
    servers: dict[int, ServerProcess] = {}
    records: list[dict[str, Any]] = []
    try:
        for m in used:
            servers[m] = ServerProcess(m, settings, token, folder)
        for n in range(plan.n_users):
            m = int(plan.assignment[n])
            if progress:
                progress(f"user {n} -> server {m} (phi {plan.phi[n]:.3f}) ...")
            started = time.perf_counter()
            job = {
                "user": n,
                "server": m,
                "phi": float(plan.phi[n]),
                "server_address": servers[m].address,
                "data_seed": settings.seed * 1000 + n,
                "settings": dataclasses.asdict(settings),
            }
            try:
                record = run_user(job, token)
            except SolverError as exc:
                if progress:
                    progress(f"user {n}: {exc}")
                records.append({"user": n, "server": m, "error": str(exc)})
                continue
            record["wall_seconds"] = time.perf_counter() - started
            records.append(add_predictions(instance, plan, record))
    finally:
        for server in servers.values():
            server.stop()
    return records


def add_predictions(instance: Instance, plan: Plan, record: dict[str, Any]) -> dict[str, Any]:
    """The paper model's FLOPs and times for the same work: ``6 x tokens x trained parameters``,
    at the plan's speeds (T1 = FLOPs / f_n on the user, T3 = FLOPs / s_n on the server)."""
    n = record["user"]
    k = MODEL_FLOPS_PER_PARAM_PER_TOKEN
    user_pred = k * record["user_tokens"] * record["params_up"]
    server_pred = k * record["server_tokens"] * record["params_down"]
    record["predicted_user_flops"] = user_pred
    record["predicted_server_flops"] = server_pred
    f_n, s_n = float(plan.user_flops[n]), float(plan.server_flops[n])
    record["predicted_t1_s"] = user_pred / f_n if f_n > 0 else (0.0 if user_pred == 0 else np.inf)
    record["predicted_t3_s"] = (
        server_pred / s_n if s_n > 0 else (0.0 if server_pred == 0 else np.inf)
    )
    for side, params in (("user", "params_up"), ("server", "params_down")):
        tokens, flops = record[f"{side}_tokens"], record[f"{side}_flops"]
        record[f"{side}_flops_per_param_token"] = (
            flops / (tokens * record[params]) if tokens and record[params] else 0.0
        )
    return record
