"""Tables of a training run's records (measured vs predicted)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def records_table(records: list[dict[str, Any]]) -> list[Table]:
    """Transfer and quality per user; measured vs paper-model work per user."""
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
        "accuracy before -> after",
    ):
        transfer.add_column(name, justify="right")
    work = Table(title="Measured vs predicted work (FLOPs by PyTorch's counter; model: 6 x tokens)")
    for name in (
        "user",
        "user s",
        "user FLOPs",
        "predicted",
        "FLOPs/param/token",
        "server s",
        "server FLOPs",
        "predicted",
        "FLOPs/param/token",
        "T1 pred (s)",
        "T3 pred (s)",
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
            f"{r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}",
        )
        work.add_row(
            str(r["user"]),
            f"{r['user_seconds']:.1f}",
            f"{r['user_flops']:.3g}",
            f"{r['predicted_user_flops']:.3g}",
            f"{r['user_flops_per_param_token']:.0f}",
            f"{r['server_seconds']:.1f}",
            f"{r['server_flops']:.3g}",
            f"{r['predicted_server_flops']:.3g}",
            f"{r['server_flops_per_param_token']:.0f}",
            f"{r['predicted_t1_s']:.3g}",
            f"{r['predicted_t3_s']:.3g}",
        )
    return [transfer, work]
