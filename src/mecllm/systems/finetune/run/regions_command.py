"""``mecllm solve-regions FIELD``: the CLI's side of :mod:`mecllm.systems.finetune.run.regions`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import read_json
from mecllm.core.options import SolveOptions
from mecllm.systems.finetune.field import Field
from mecllm.systems.finetune.regions import DELAY_START_FACTOR
from mecllm.systems.finetune.run.regions import solve_by_regions


def solve_regions_file(
    field_path: Path,
    out_dir: Path,
    servers_per_region: int,
    algorithm: str,
    options: SolveOptions,
    backend: str,
    workers: int,
    scheduler: str | None,
    out: Console,
    err: Console,
    relax: bool = False,
    delay_start: float = DELAY_START_FACTOR,
) -> None:
    """Solve the field in ``field_path`` by regions; print the regions and the totals."""
    data = read_json(field_path, "field")
    if not Field.is_field(data):
        raise InvalidInputError(
            f"{field_path} is not a field file (write one with `mecllm generate --field`); "
            "a dense instance is solved whole by `mecllm solve`"
        )
    fld = Field.from_dict(data)
    run = solve_by_regions(
        fld,
        out_dir,
        servers_per_region=servers_per_region,
        algorithm=algorithm,
        options=options,
        backend=backend,
        workers=workers,
        scheduler=scheduler,
        relax=relax,
        delay_start=delay_start,
        progress=lambda text: err.print(text, highlight=False, markup=False),
    )
    table = Table(title=f"{fld.n_users} users x {fld.n_servers} servers by regions ({algorithm})")
    for column in ("region", "users", "servers", "status", "SCR", "delay (s)", "energy (J)", "s"):
        table.add_column(column, justify="left" if column == "status" else "right")
    for r in sorted(run.results, key=lambda r: r.region):
        table.add_row(
            str(r.region),
            str(r.users.size),
            str(r.servers.size),
            r.status,
            f"{r.scr:.6g}",
            f"{r.delay_s:.4g}",
            f"{r.energy_j:.6g}",
            f"{r.wall_time_s:.1f}",
        )
    out.print(table)
    s = run.stitched
    out.print(
        f"stitched plan: {'feasible' if s.feasible else 'NOT feasible'}, SCR {s.scr:.6g}, "
        f"delay {s.delay_s:.4g} s, energy {s.energy_j:.6g} J; {run.wall_time_s:.1f} s in all "
        f"(regions {run.solve_s:.1f} s), peak memory {run.peak_memory_bytes / 2**30:.2f} GiB "
        f"(this process and its workers) -> {out_dir}/plan.npz, {out_dir}/summary.json",
        highlight=False,
    )
