"""A service process on loopback: started with the run's token in its environment, its address
read from the ``PORT <n>`` line it prints, its log in a file, tied to this process (it dies with
it), stopped with SIGTERM (SIGKILL after a grace period). :class:`ServiceProcess` is the parent's
side; :func:`service_token` and :func:`serve_until_signal` the service's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from mecllm.core.processes import die_with_parent
from mecllm.transport.rpc import Server


class ServiceError(RuntimeError):
    """A service process that did not start: what it logged."""


class ServiceProcess:
    """``python -m module *args`` serving on 127.0.0.1; :attr:`address` once it listens."""

    def __init__(
        self,
        module: str,
        args: list[str],
        token_env: str,
        token: str,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        env = dict(
            os.environ,
            **(extra_env or {}),
            **{token_env: token, "MECLLM_PARENT_PID": str(os.getpid())},
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise ServiceError(
                f"{module} did not start (see {log_path}): {log_path.read_text()[-300:]}"
            )
        self.port = int(line.split()[1])
        self.address = f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id."""
        return int(self.process.pid)

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (the service stops cleanly), SIGKILL after ``grace_s``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def service_token(token_env: str) -> str:
    """In a service process: die with the parent, and return the run's token from
    ``token_env`` (exit with a message if it is missing or shorter than 16 characters)."""
    die_with_parent(int(os.environ.get("MECLLM_PARENT_PID", os.getppid())))
    token = os.environ.get(token_env, "")
    if len(token) < 16:
        sys.exit(f"{token_env} must hold the run's token (16+ characters)")
    return token


def serve_until_signal(server: Server) -> None:
    """In a service process: announce ``PORT <n>`` and block until SIGTERM or SIGINT (the
    caller then stops the server)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"PORT {server.port}", flush=True)
    stop.wait()
