"""Markdown pieces the quality benchmarks share: each method's ratio to the best SCR of an
instance, and the summary per method (median, worst, mean time)."""

from __future__ import annotations

from typing import Any

import numpy as np


def ratio_cells(
    row: dict[str, Any], columns: list[str], ratios: dict[str, list[float]]
) -> list[str]:
    """One instance's cells (``""`` where a method did not run); appends each ratio."""
    best = max(row["scr"].values())
    cells = []
    for name in columns:
        if name in row["scr"]:
            ratios[name].append(row["scr"][name] / best)
            cells.append(f"{row['scr'][name] / best:.3f}")
        else:
            cells.append("")
    return cells


def print_summary(
    part: list[dict[str, Any]], columns: list[str], ratios: dict[str, list[float]]
) -> None:
    """The per-method table of the instances in ``part``."""
    print("\n| method | instances | median ratio to best | worst ratio | mean time (s) |")
    print("|---|---|---|---|---|")
    for name in columns:
        if not ratios[name]:
            continue
        times = [r["seconds"][name] for r in part if name in r["seconds"]]
        print(
            f"| {name} | {len(ratios[name])} | {np.median(ratios[name]):.4f} | "
            f"{min(ratios[name]):.4f} | {np.mean(times):.2f} |"
        )
