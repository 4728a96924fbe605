"""The edge-inference system's share of the command line: ``mecllm serve``, and the options it
adds to ``mecllm evaluate`` (its physics simulates a request stream: which stream, which
failures).

Only typer declarations and option checks: ``serve`` imports the runner (torch, gRPC) when it
runs, so that ``mecllm --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mecllm.core.commandline import ExtraOption, check_seed, err, guard, needs_extra, out
from mecllm.core.errors import InvalidInputError, SolverError
from mecllm.core.fileio import check_output_file, check_output_folder

#: What one names to make something fail, in ``evaluate`` and ``serve`` alike: a node.
FAIL_HELP = "NODE@SECONDS: node NODE fails then, every shard on it with it (repeatable)."

#: What this system adds to ``mecllm evaluate`` (given for another kind, each is refused).
OPTIONS = (
    ExtraOption(
        "evaluate",
        "trace",
        Annotated[
            Path | None,
            typer.Option("--trace", help="edge-inference: replay this request trace."),
        ],
    ),
    ExtraOption(
        "evaluate",
        "seed",
        Annotated[
            int | None,
            typer.Option("--seed", help="edge-inference: seed of the drawn request stream."),
        ],
    ),
    ExtraOption(
        "evaluate",
        "fail",
        Annotated[list[str] | None, typer.Option("--fail", help="edge-inference: " + FAIL_HELP)],
    ),
)


def serve_cmd(
    instance_path: Annotated[
        Path | None, typer.Argument(metavar="INSTANCE", help="Edge-inference instance JSON.")
    ] = None,
    plan_path: Annotated[
        Path | None, typer.Argument(metavar="PLAN", help="Its solution (placement) JSON.")
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", help="Serve the stream's first K requests.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Total demand, requests/s (default: the instance's)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stream and prompts.")] = 0,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Replay this request trace (CSV or JSON).")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration", help="Calibration file (default: calibrate in service, --warmup)."
        ),
    ] = None,
    warmup: Annotated[
        int,
        typer.Option("--warmup", help="Requests of the warm-up that calibrates in service."),
    ] = 40,
    core_share: Annotated[
        float,
        typer.Option("--core-share", help="Share of a core the fastest node runs at, (0, 1]."),
    ] = 0.5,
    fail: Annotated[list[str] | None, typer.Option("--fail", help=FAIL_HELP)] = None,
    kill: Annotated[
        list[str] | None,
        typer.Option(
            "--kill",
            help="SHARD@SECONDS: SIGKILL one shard (a server index of the plan) then; kept for "
            "older command lines, --fail names nodes as `mecllm evaluate` does (repeatable).",
        ),
    ] = None,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Folder for logs, stream and records.")
    ] = None,
    records: Annotated[
        Path | None, typer.Option("--records", help="Per-request records (JSON lines).")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Write measured and predicted figures.")
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option("--calibrate", help="Only measure step times and fit node speeds."),
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="With --calibrate: the calibration file.")
    ] = Path("calibration.json"),
) -> None:
    """Serve an edge-inference plan for real: shard processes of MiniLM, a gateway, a load
    generator; measured figures beside the simulator's (needs the train extra)."""

    def run() -> None:
        check_seed(seed)
        if logs is not None:
            check_output_folder(logs, "--logs")
        for path, name in ((records, "--records"), (as_json, "--json")):
            if path is not None:
                check_output_file(path, name)
        with needs_extra("train", "mecllm serve"):
            from mecllm.systems.inference.serve.command import (
                ServeRequest,
                calibrate_files,
                serve_files,
            )
        if calibrate:
            check_output_file(output, "--output")
            if plan_path is not None and instance_path is None:
                raise InvalidInputError("give the INSTANCE of the PLAN")
            calibrate_files(instance_path, plan_path, output, out, err)
            return
        if instance_path is None or plan_path is None:
            raise InvalidInputError("mecllm serve needs INSTANCE and PLAN (or --calibrate)")
        request = ServeRequest(
            requests=requests,
            rate=rate,
            seed=seed,
            trace=trace,
            calibration=calibration,
            warmup=warmup,
            core_share=core_share,
            failures=tuple(fail or ()),
            kills=tuple(kill or ()),
            logs=logs,
            records=records,
            as_json=as_json,
        )
        result = serve_files(instance_path, plan_path, request, out, err)
        if result.lost:
            raise SolverError(f"{result.lost} requests ended with neither an answer nor a reason")

    guard(run)


def register(app: typer.Typer) -> None:
    """Add this system's commands to the ``mecllm`` app."""
    app.command("serve")(serve_cmd)
