"""Refusing work that cannot fit: an estimate of the memory a request needs, checked against
what the machine has free, before anything is allocated."""

from __future__ import annotations

import os
from pathlib import Path

from mecllm.core.errors import InvalidInputError

#: Share of the available memory a single request may plan to use.
_USABLE_SHARE = 0.8
_GB = 1024**3


def available_memory_bytes() -> int:
    """Memory the kernel says is available now (``MemAvailable``), in bytes."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(needed_bytes: float, what: str) -> None:
    """Refuse ``what`` if it needs more than the usable share of the available memory.

    Raises
    ------
    InvalidInputError
        Naming the estimate, the limit and what to change.
    """
    limit = _USABLE_SHARE * available_memory_bytes()
    if needed_bytes > limit:
        raise InvalidInputError(
            f"{what} needs about {needed_bytes / _GB:.1f} GB of memory and this machine has "
            f"{limit / _GB:.1f} GB to give ({_USABLE_SHARE:.0%} of what is free); "
            "make it smaller"
        )
