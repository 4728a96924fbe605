"""The fine-tuning system's share of the command line: ``mecllm train``, ``mecllm profile`` and
``mecllm solve-regions``, and the options it adds to ``mecllm generate``.

Only typer declarations and option checks: each command imports its work (the runner, the
solvers, torch) when it runs, so that ``mecllm --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from mecllm.core.commandline import (
    ExtraOption,
    SchedulerOpt,
    SeedOpt,
    WorkersOpt,
    check_range,
    check_seed,
    check_time_limit,
    err,
    guard,
    needs_extra,
    out,
    say,
)
from mecllm.core.errors import InvalidInputError
from mecllm.core.fileio import check_output_file, check_output_folder
from mecllm.core.options import SolveOptions

#: What this system adds to ``mecllm generate`` (given for another kind, each is refused).
OPTIONS = (
    ExtraOption(
        "generate",
        "shadowing_db",
        Annotated[
            float | None,
            typer.Option(
                "--shadowing-db", help="edge-llm: log-normal shadowing spread, dB (default none)."
            ),
        ],
    ),
    ExtraOption(
        "generate",
        "count_idle",
        Annotated[
            bool | None,
            typer.Option(
                "--count-idle/--no-count-idle",
                help="edge-llm: whether server resources of users with no server work earn "
                "service score.",
            ),
        ],
    ),
    ExtraOption(
        "generate",
        "field",
        Annotated[
            bool,
            typer.Option(
                "--field",
                help="edge-llm: write a field (settings and seed; channels computed on demand) "
                "for `mecllm solve-regions`, at any size.",
                metavar="",
            ),
        ],
        False,
    ),
    ExtraOption(
        "generate",
        "work_model",
        Annotated[
            Path | None,
            typer.Option(
                "--work-model",
                help="edge-llm: a cost file of `mecllm profile`; the instance then describes a "
                "`mecllm train` run on this machine (docs/finetune.md section 12).",
            ),
        ],
    ),
    ExtraOption(
        "generate",
        "plan_model",
        Annotated[
            str | None,
            typer.Option(
                "--plan-model",
                help="edge-llm, with --work-model: plan with the 'profiled' costs (default) or "
                "the 'paper' model.",
            ),
        ],
    ),
)

_MODEL_DIR_OPTION = typer.Option(
    "--model-dir",
    help="A local model directory (config, weights, tokenizer as save_pretrained writes them), "
    "loaded offline through transformers with peft LoRA adapters of rank --bottleneck (the hf "
    "extra). Default: the packaged MiniLM with bottleneck adapters.",
)
ModelDirOpt = Annotated[Path | None, _MODEL_DIR_OPTION]
BottleneckOpt = Annotated[
    int, typer.Option("--bottleneck", help="Adapter width r (the LoRA rank with --model-dir).")
]


CsiDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--csi-data",
        help="The CSI task: an edge-air data folder (`mecllm generate --system edge-air` "
        "prints it); each user fine-tunes on its own drops of its test split.",
    ),
]
CsiModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--csi-model",
        help="The CSI task: the trained predictor, an air-lm checkpoint "
        "(weights/lm-drop-outdated-*.pt in an edge-air data folder).",
    ),
]


def _csi(data: Path | None, model: Path | None) -> dict[str, Any]:
    """The run settings of the CSI task (none for the text task), checked before anything
    starts."""
    if data is None and model is None:
        return {}
    if data is None or model is None:
        raise InvalidInputError("the CSI task needs both --csi-data and --csi-model")
    if not (data / "meta.json").is_file():
        raise InvalidInputError(f"--csi-data {data}: not an edge-air data folder (no meta.json)")
    if not model.is_file():
        raise InvalidInputError(f"--csi-model {model}: no such file")
    return {"task": "csi", "csi_data": str(data.resolve()), "csi_model": str(model.resolve())}


def _train_mode(text: str) -> Literal["adapters", "split"]:
    if text == "adapters":
        return "adapters"
    if text == "split":
        return "split"
    raise InvalidInputError(f"--mode must be 'adapters' or 'split', got {text!r}")


def _splits(text: str | None, mode: str) -> list[int] | None:
    if text is None:
        return None
    if mode != "split":
        raise InvalidInputError("--splits needs --mode split")
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"--splits must list whole numbers, got {text!r}") from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise InvalidInputError(
            f"--splits must list distinct whole numbers 0..L (L the model's blocks), got {text!r}"
        )
    return values


def _model_dir(folder: Path | None) -> str | None:
    """The model directory as the run's settings hold it, checked before anything starts."""
    if folder is None:
        return None
    if not folder.is_dir():
        raise InvalidInputError(f"--model-dir {folder}: no such directory")
    with needs_extra("train,hf", "--model-dir"):
        from mecllm.models.hf_model import config_shape
    config_shape(folder)
    return str(folder.resolve())


def train_cmd(
    instance_path: Annotated[Path, typer.Argument(metavar="INSTANCE", help="Instance JSON.")],
    solution_path: Annotated[Path, typer.Argument(metavar="SOLUTION", help="Solution JSON.")],
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="Epochs on each side (default 2; a profiled instance sets its own)."
        ),
    ] = None,
    train_examples: Annotated[
        int | None,
        typer.Option(
            "--train-examples",
            help="Training sentences per user (default 160; a profiled instance sets its own).",
        ),
    ] = None,
    bottleneck: BottleneckOpt = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data and adapters.")] = 0,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Folder for the servers' logs.")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Also write the records (users, makespan).")
    ] = None,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict", help="Print each phase T1..T4 as planned and as measured.", metavar=""
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="adapters (the plan's adapter split) or split (full-parameter split training "
            "at k = round(6 phi), activations up and gradients down every batch).",
        ),
    ] = "adapters",
    splits: Annotated[
        str | None,
        typer.Option(
            "--splits",
            help="With --mode split: run every user at each of these cuts, e.g. 0,1,2,3,4,5,6, "
            "and compare the planner's recommended cut with the measured best.",
        ),
    ] = None,
    model_dir: ModelDirOpt = None,
    csi_data: CsiDataOpt = None,
    csi_model: CsiModelOpt = None,
) -> None:
    """Run a fine-tuning plan's split adapter training for real, all users at once (MiniLM,
    gRPC on loopback; needs the train extra)."""

    def run() -> None:
        check_seed(seed)
        if logs is not None:
            check_output_folder(logs, "--logs")
        if as_json is not None:
            check_output_file(as_json, "--json")
        for name, value in (("--epochs", epochs), ("--train-examples", train_examples)):
            if value is not None and value < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {value}")
        check_range("--bottleneck", bottleneck, 1, 384)
        with needs_extra("train", "mecllm train"):
            from mecllm.systems.finetune.run.command import train_files
            from mecllm.systems.finetune.run.loop import Settings
        csi = _csi(csi_data, csi_model)
        if csi and mode != "adapters":
            raise InvalidInputError("the CSI task runs in --mode adapters only")
        settings = Settings(
            bottleneck=bottleneck,
            n_train=160 if train_examples is None else train_examples,
            epochs=2 if epochs is None else epochs,
            seed=seed,
            model_dir=_model_dir(model_dir),
            **csi,
        )
        sizes = [n for n, v in (("--epochs", epochs), ("--train-examples", train_examples)) if v]
        train_files(
            instance_path,
            solution_path,
            settings,
            logs,
            as_json,
            out,
            err,
            predict=predict,
            sizes_given=sizes,
            mode=_train_mode(mode),
            splits=_splits(splits, mode),
        )

    guard(run)


def profile_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Cost file to write.")] = Path(
        "cost.json"
    ),
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")] = 24,
    batch: Annotated[int, typer.Option("--batch", help="Sequences per step.")] = 16,
    bottleneck: BottleneckOpt = 16,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs of each step.")] = 5,
    model_dir: ModelDirOpt = None,
    csi_data: CsiDataOpt = None,
    csi_model: CsiModelOpt = None,
) -> None:
    """Measure what a training step of `mecllm train`'s model costs by split (FLOPs and seconds,
    forward and backward) and write a cost file (needs the train extra)."""

    def run() -> None:
        check_output_file(output, "--output")
        check_range("--seq-len", seq_len, 1, 512)
        check_range("--batch", batch, 1, 4096)
        check_range("--repeats", repeats, 1, 1000)
        check_range("--bottleneck", bottleneck, 1, 384)
        with needs_extra("train", "mecllm profile"):
            from mecllm.systems.finetune.run.profile import profile, save
            from mecllm.systems.finetune.run.report import profile_table
        csi = _csi(csi_data, csi_model)
        if csi and model_dir is not None:
            raise InvalidInputError("--model-dir applies to the text task only")
        costs = profile(
            seq_len,
            batch,
            bottleneck,
            repeats,
            progress=say,
            model_dir=_model_dir(model_dir),
            csi=(csi["csi_data"], csi["csi_model"]) if csi else None,
        )
        save(costs, output)
        out.print(profile_table(costs))
        say(f"wrote {output}")

    guard(run)


def solve_regions_cmd(
    field_path: Annotated[
        Path, typer.Argument(metavar="FIELD", help="Field file (`mecllm generate --field`).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Output folder (re-running it skips solved regions).")
    ] = Path("regions-out"),
    servers_per_region: Annotated[
        int, typer.Option("--servers-per-region", help="Servers in each region (about).")
    ] = 50,
    algorithm: Annotated[
        str, typer.Option("--algorithm", "-a", help="Algorithm each region is solved by.")
    ] = "dashf-scale",
    backend: Annotated[
        str, typer.Option("--backend", help="dask (LocalCluster or --scheduler) or local.")
    ] = "dask",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    seed: SeedOpt = 0,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Wall-clock budget of each region, s.")
    ] = 600.0,
    relax: Annotated[
        bool,
        typer.Option(
            "--relax",
            help="Re-split the regions faster than the stitched delay with it as a floor "
            "(one more pass; docs/regions.md).",
        ),
    ] = False,
    delay_start: Annotated[
        float,
        typer.Option(
            "--delay-start",
            help="dashf-scale: start each region from a short solve at this multiple of its "
            "delay weight (1: off; docs/regions.md).",
        ),
    ] = 4.0,
) -> None:
    """Solve a large fine-tuning field by regions in parallel and stitch one plan
    (docs/regions.md)."""

    def run() -> None:
        from mecllm.systems.finetune.run.regions_command import solve_regions_file

        check_seed(seed)
        check_time_limit(time_limit)
        check_output_folder(out_dir, "--out")
        solve_regions_file(
            field_path,
            out_dir,
            servers_per_region,
            algorithm,
            SolveOptions(seed=seed, time_limit_s=time_limit),
            backend,
            workers,
            scheduler,
            out,
            err,
            relax,
            delay_start,
        )

    guard(run)


def register(app: typer.Typer) -> None:
    """Add this system's commands to the ``mecllm`` app."""
    app.command("train")(train_cmd)
    app.command("profile")(profile_cmd)
    app.command("solve-regions")(solve_regions_cmd)
