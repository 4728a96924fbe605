"""Figures: the topology of a plan and a bar chart of the algorithms' SCR."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mecllm.core.fileio import atomic_write_bytes
from mecllm.systems.finetune.instance import Instance
from mecllm.systems.finetune.solution import SolveResult


def draw_topology(ax: Axes, instance: Instance, result: SolveResult) -> None:
    """Users, servers and association lines of ``result`` (needs positions in the instance)."""
    if instance.user_position_m is None or instance.server_position_m is None:
        ax.text(
            0.5, 0.5, "instance has no positions", ha="center", va="center", transform=ax.transAxes
        )
        ax.set_axis_off()
        return
    users = instance.user_position_m
    servers = instance.server_position_m
    colors = plt.get_cmap("tab10")(np.arange(instance.n_servers) % 10)
    plan = result.plan
    for n, m in enumerate(plan.assignment):
        ax.plot(
            [users[n, 0], servers[m, 0]],
            [users[n, 1], servers[m, 1]],
            color=colors[m],
            lw=0.8,
            alpha=0.6,
            zorder=1,
        )
    sizes = 20 + 60 * instance.adapter_params / instance.adapter_params.max()
    ax.scatter(
        users[:, 0],
        users[:, 1],
        s=sizes,
        c=[colors[m] for m in plan.assignment],
        edgecolors="black",
        linewidths=0.5,
        zorder=2,
        label="user (size ~ adapter)",
    )
    for n in range(instance.n_users):
        ax.annotate(
            f"{plan.phi[n]:.2f}", users[n], textcoords="offset points", xytext=(4, 4), fontsize=7
        )
    ax.scatter(
        servers[:, 0],
        servers[:, 1],
        marker="s",
        s=140,
        c=colors,
        edgecolors="black",
        zorder=3,
        label="edge server",
    )
    ax.set_title(f"{result.algorithm.upper()} association (labels: phi)")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize=7, framealpha=0.8)


def draw_scr_bars(ax: Axes, results: Sequence[SolveResult]) -> None:
    """One bar per algorithm: its SCR."""
    names = [r.algorithm.upper() for r in results]
    values = [r.scr for r in results]
    bars = ax.bar(names, values, color="tab:blue")
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_ylabel("service-cost ratio SCR (1/(s + J), weighted)")
    ax.set_title("SCR by algorithm")
    ax.tick_params(axis="x", rotation=30)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_comparison(
    instance: Instance,
    results: Sequence[SolveResult],
    path: str | Path,
    topology_of: str | None = None,
) -> None:
    """The demo figure: topology of the best (or named) plan beside the SCR bar chart."""
    if not results:
        raise ValueError("no results to plot")
    chosen = next((r for r in results if r.algorithm == topology_of), None)
    if chosen is None:
        chosen = max(results, key=lambda r: r.scr)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    draw_topology(left, instance, chosen)
    draw_scr_bars(right, results)
    fig.suptitle(f"{instance.n_users} users, {instance.n_servers} servers")
    save_figure(fig, path)
