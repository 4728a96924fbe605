"""Tables of a training run's records (measured vs predicted)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def records_table(records: list[dict[str, Any]]) -> list[Table]:
    """Transfer and quality per user; measured work per user."""
    transfer = Table(title="Split fine-tuning run: transfers and task quality (held-out data)")
    for name in (
        "user",
        "server",
        "phi plan",
        "phi realised",
        "params up",
        "bytes up (+framing)",
        "params down",
        "bytes down (+framing)",
        "loss before -> after",
        f"{_metric(records)} before -> after",
    ):
        transfer.add_column(name, justify="right")
    work = Table(title="Measured work (FLOPs by PyTorch's counter, per trained adapter parameter)")
    for name in (
        "user",
        "user s",
        "user FLOPs",
        "FLOPs/param/token",
        "server s",
        "server FLOPs",
        "FLOPs/param/token",
    ):
        work.add_column(name, justify="right")
    for r in records:
        framing_up = r["framing_up_bytes"]
        framing_down = r["framing_down_bytes"]
        transfer.add_row(
            str(r["user"]),
            str(r["server"]),
            f"{r['phi_plan']:.3f}",
            f"{r['phi_realised']:.3f}",
            f"{r['params_up']:,}",
            f"{r['payload_up_bytes']:,} (+{framing_up})",
            f"{r['params_down']:,}",
            f"{r['payload_down_bytes']:,} (+{framing_down})",
            f"{r['loss_before']:.3f} -> {r['loss_after']:.3f}",
            _before_after(r),
        )
        work.add_row(
            str(r["user"]),
            f"{r['user_seconds']:.1f}",
            f"{r['user_flops']:.3g}",
            f"{r['user_flops_per_param_token']:.0f}",
            f"{r['server_seconds']:.1f}",
            f"{r['server_flops']:.3g}",
            f"{r['server_flops_per_param_token']:.0f}",
        )
    return [transfer, work]


def _seconds(value: float | None) -> str:
    return "inf" if value is None else f"{value:.3g}"


def _ratio(predicted: float | None, measured: float) -> str:
    if predicted is None:
        return "-"
    if predicted <= 0:
        return "-" if measured < 0.05 else "inf"
    return f"{measured / predicted:.3g}"


def phases_table(run: dict[str, Any]) -> Table:
    """Each user's T1..T4 as planned and as measured (and measured / planned), and the
    makespan."""
    model = run["instance_work_model"]
    title = f"Phases as planned ({model} work model, at the realised split) and as measured, s" + (
        ""
        if run["paced"]
        else " (unpaced: the instance has no profile, so its sizes and speeds describe its own "
        "scenario, not this run)"
    )
    table = Table(title=title)
    table.add_column("user", justify="right")
    for phase in ("T1", "T2", "T3", "T4", "total"):
        table.add_column(f"{phase} plan", justify="right")
        table.add_column(f"{phase} run", justify="right")
        table.add_column("run/plan", justify="right")
    for r in run["users"]:
        if "error" in r:
            continue
        cells = [str(r["user"])]
        predicted = [r["predicted"][f"{p}_s"] for p in ("T1", "T2", "T3", "T4")]
        measured = [r["measured"][f"{p}_s"] for p in ("T1", "T2", "T3", "T4")]
        total = None if None in predicted else sum(v for v in predicted if v is not None)
        for plan, got in [*zip(predicted, measured, strict=True), (total, r["finished_s"])]:
            cells += [_seconds(plan), f"{got:.3g}", _ratio(plan, got)]
        table.add_row(*cells)
    span = run["makespan_s"]
    if span["measured"] is not None:
        table.caption = (
            f"makespan: planned {_seconds(span['predicted'])} s, measured "
            f"{span['measured']:.3g} s (run/plan {_ratio(span['predicted'], span['measured'])})"
        )
    return table


def _metric(records: list[dict[str, Any]]) -> str:
    """The score the records report (``accuracy`` for the text task, ``nmse_db`` for CSI)."""
    return str(records[0].get("metric", "accuracy")) if records else "accuracy"


def _before_after(record: dict[str, Any]) -> str:
    metric = record.get("metric", "accuracy")
    return f"{record[f'{metric}_before']:.3f} -> {record[f'{metric}_after']:.3f}"


def split_table(run: dict[str, Any]) -> Table:
    """Split mode: bytes per batch against the formula, seconds per batch planned and
    measured, accuracy."""
    table = Table(title="Split mode: per batch, measured (planned); bytes = payload (+framing)")
    for name in (
        "user",
        "k",
        "batches",
        "bytes up / formula",
        "bytes down / formula",
        "user s",
        "up s",
        "server s",
        "down s",
        "accuracy before -> after",
    ):
        table.add_column(name, justify="right")
    for r in run["users"]:
        if "error" in r:
            continue
        batch, seq, width = r["batch_shapes"]
        up, down = 4 * batch * seq * (width + 1) + 4 * batch, 4 * batch * seq * width
        got_up, got_down = r["payload_up_bytes_per_batch"], r["payload_down_bytes_per_batch"]
        plan, measured = r["predicted"], r["seconds_per_batch"]
        table.add_row(
            str(r["user"]),
            str(r["split"]),
            str(r["batches"]),
            f"{max(got_up):,} (+{max(r['framing_up_bytes_per_batch'])}) / {up:,}",
            f"{max(got_down):,} (+{max(r['framing_down_bytes_per_batch'])}) / {down:,}",
            *(
                f"{measured[key]:.3g} ({_seconds(plan.get(key + '_s'))})"
                for key in ("user", "up", "server", "down")
            ),
            _before_after(r),
        )
    span = run["makespan_s"]
    if span["measured"] is not None:
        table.caption = (
            f"training: planned {_seconds(span['predicted'])} s, measured {span['measured']:.3g} s"
        )
    return table


def sweep_table(sweep: dict[str, Any]) -> Table:
    """Split mode at several cuts: planned and measured training time of each."""
    table = Table(title="Split mode by cut k (every user at k): longest training, s")
    for name in ("k", "planned", "measured", "run/plan"):
        table.add_column(name, justify="right")
    for row in sweep["splits"]:
        span = row["makespan_s"]
        measured = span["measured"]
        table.add_row(
            str(row["split"]),
            _seconds(span["predicted"]),
            "-" if measured is None else f"{measured:.3g}",
            "-" if measured is None else _ratio(span["predicted"], measured),
        )
    table.caption = (
        f"recommended by the planner's model: k = {sweep['recommended_split']}; "
        f"measured best: k = {sweep['measured_best_split']}"
    )
    return table


def profile_table(costs: dict[str, Any]) -> Table:
    """``mecllm profile``'s table: per split, each side's MFLOP per token, seconds per step and
    FLOP per trained parameter per token."""
    batch, seq_len = costs["batch"], costs["seq_len"]
    tokens = costs["tokens_per_step"]
    table = Table(
        title=(
            f"Training step costs, {batch} x {seq_len} tokens (forward of the frozen model: "
            f"{costs['forward']['flops'] / tokens / 1e6:.1f} MFLOP/token, "
            f"{costs['forward']['seconds'] * 1e3:.1f} ms)"
        )
    )
    for column in (
        "split k",
        "user MFLOP/token",
        "user s",
        "user FLOP/param/token",
        "server MFLOP/token",
        "server s",
        "server FLOP/param/token",
    ):
        table.add_column(column, justify="right")
    for step in costs["train_steps"]:
        cells = [str(step["split"])]
        for side in ("user", "server"):
            c = step[side]
            per_param = c["flops"] / tokens / c["params"] if c["params"] else 0.0
            cells += [f"{c['flops'] / tokens / 1e6:.2f}", f"{c['seconds']:.3f}", f"{per_param:.0f}"]
        table.add_row(*cells)
    return table
