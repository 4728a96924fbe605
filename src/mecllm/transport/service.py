"""A service process on loopback: started with the run's token in its environment, its address
read from the ``PORT <n>`` line it prints, its log in a file, tied to this process (it dies with
it), stopped with SIGTERM (SIGKILL after a grace period)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class ServiceError(RuntimeError):
    """A service process that did not start: what it logged."""


class ServiceProcess:
    """``python -m module *args`` serving on 127.0.0.1; :attr:`address` once it listens."""

    def __init__(
        self, module: str, args: list[str], token_env: str, token: str, log_path: Path
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        env = dict(os.environ, **{token_env: token, "MECLLM_PARENT_PID": str(os.getpid())})
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
