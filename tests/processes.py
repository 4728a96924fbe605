"""Helpers for tests that check no process outlives a command: a process's children and
whether a pid is alive (from /proc, Linux)."""

from __future__ import annotations

import signal
from pathlib import Path


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def interruptible() -> None:
    """``preexec_fn`` of a command a test will stop with SIGINT: the default disposition back.
    A shell that starts a job in the background (``.ci/run &``, ``nohup``) makes it ignore
    SIGINT, every child inherits that, and Python then installs no KeyboardInterrupt
    handler, so the command would (rightly) run on through the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
