"""``mecllm train INSTANCE SOLUTION``: run a plan's split fine-tuning for real, on loopback.

One server process per edge server the plan uses, one process per user (run one after another
so that timings are not shared), a fresh token per run. Returns one record per user with what
was measured and what the paper's work model predicts for the same work.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
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

#: The paper's work model, t_n = 6 x tokens (docs/finetune.md section 8): FLOPs per trained
#: parameter per token.
MODEL_FLOPS_PER_PARAM_PER_TOKEN = 6.0


def check_plan(instance: Instance, plan: Plan) -> None:
    """Refuse plans the run cannot carry out (phi outside [0, 1])."""
    for n, phi in enumerate(plan.phi):
        if not 0.0 <= phi <= 1.0:
            raise InvalidInputError(f"solution phi[{n}] must be in [0, 1], got {phi:g}")


class ServerProcess:
    """A running ``mecllm.train.server`` and its log file."""

    def __init__(self, server: int, settings: Settings, token: str, log_dir: Path) -> None:
        self.server = server
        self.log_path = log_dir / f"server-{server}.log"
        self._log = self.log_path.open("w")
        env = dict(os.environ, **{TOKEN_ENV: token})
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mecllm.train.server",
                "--settings",
                json.dumps(dataclasses.asdict(settings)),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise SolverError(
                f"edge server {server} did not start (see {self.log_path}): "
                f"{self.log_path.read_text()[-300:]}"
            )
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        """Terminate the process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
        self._log.close()


def run_user(job: dict[str, Any], token: str) -> dict[str, Any]:
    """One user process; its JSON record (or a SolverError with its message)."""
    env = dict(os.environ, **{TOKEN_ENV: token})
    done = subprocess.run(
        [sys.executable, "-m", "mecllm.train.user"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        detail = lines[-1] if lines else done.stderr.strip()[-400:]
        raise SolverError(f"user {job['user']} failed: {detail}")
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def train_plan(
    instance: Instance,
    plan: Plan,
    settings: Settings,
    *,
    log_dir: Path | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Run every user of ``plan`` on its assigned server; one record per user."""
    check_plan(instance, plan)
    token = secrets.token_urlsafe(24)
    folder = log_dir or Path(tempfile.mkdtemp(prefix="mecllm-train-"))
    folder.mkdir(parents=True, exist_ok=True)
    used = sorted({int(m) for m in plan.assignment})
    servers: dict[int, ServerProcess] = {}
    records = []
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
                "server_url": servers[m].url,
                "data_seed": settings.seed * 1000 + n,
                "settings": dataclasses.asdict(settings),
            }
            record = run_user(job, token)
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
