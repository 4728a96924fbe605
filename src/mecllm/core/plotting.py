"""Writing matplotlib figures: PNG, atomically, without a screen."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from mecllm.core.fileio import atomic_write_bytes


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
