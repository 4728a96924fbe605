"""Processes that die with the run: a parent-death signal for children, SIGTERM as a clean stop.

A command that starts processes (sweep workers, training servers) must leave none behind,
whether it ends normally, by Ctrl-C, by SIGTERM or by SIGKILL. Two mechanisms cover that:

- :func:`die_with_parent` (run in each child) asks the Linux kernel to send the child SIGKILL
  when its parent dies, whatever kills the parent;
- :func:`stop_on_sigterm` (run in the command's own process) turns SIGTERM into
  :class:`Terminated`, an exception, so that ``finally`` blocks and context managers shut
  children down and write what is finished, as they do for Ctrl-C.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from types import FrameType

#: ``prctl`` option: the signal the kernel sends this process when its parent exits.
_PR_SET_PDEATHSIG = 1


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (a BaseException, like
    KeyboardInterrupt, so that ``except Exception`` blocks do not swallow it)."""

    exit_code = 128 + signal.SIGTERM


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make the kernel kill this process (SIGKILL) when its parent dies (Linux only; a no-op
    elsewhere). If ``parent_pid`` is given and the parent is already gone, exit at once.

    SIGTERM gets its default action back: a forked child inherits the parent's
    :func:`stop_on_sigterm` handler, which would turn the parent's ``terminate()`` into an
    exception the worker reports and survives, instead of stopping it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the signal was armed


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise Terminated()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this (main) thread."""
    signal.signal(signal.SIGTERM, _raise_terminated)
