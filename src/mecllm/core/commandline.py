"""What every command of the command line shares, the generic ones and those a system brings:
the two consoles, the guard that turns the project's errors into one line and an exit status,
the checks of common options and the progress printer of ``--verbose``.

Light on purpose (typer and rich only): every system's command module imports it when
``mecllm`` starts, so nothing here may pull in a solver, a model or NumPy.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from mecllm.core.errors import InvalidInputError, MecllmError, SolverError
from mecllm.core.options import SolveOptions
from mecllm.core.processes import Terminated

# Tables are wide: when output goes to a file or pipe, do not squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)

T = TypeVar("T")

#: click's base exception class as typer uses it (typer may bundle its own copy of click).
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class OneLineErrors(TyperGroup):
    """Every error the command line itself finds (an unknown option, a missing argument, a value
    of the wrong type) is one line on stderr and exit status 2, like the project's own errors."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _CLICK_ERROR as exc:
            message = exc.format_message()  # type: ignore[attr-defined]
            err.print(f"error: {message}", markup=False, highlight=False)
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        except typer.Abort:
            err.print("interrupted", highlight=False)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides of scenario settings: whole numbers, numbers and true/false are
    converted; anything else stays text, so the system names an unknown setting before it
    judges the value."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"--set must look like KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        text = raw.strip()
        value: Any = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for convert in (int, float):
                try:
                    value = convert(text)
                    break
                except ValueError:
                    continue
        result[key.strip()] = value
    return result


# Options several commands take, the same way everywhere.
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of randomised algorithms.")]
TimeLimitOpt = Annotated[
    float, typer.Option("--time-limit", help="Wall-clock budget of each solve, s.")
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Print each iteration as it happens.", metavar=""),
]
BackendOpt = Annotated[str, typer.Option("--backend", help="local (process pool) or dask.")]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="Parallel workers (local pool or LocalCluster).")
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler.")
]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Forget finished trials.", metavar="")]

#: Exit statuses: 1 a solver (or a run) failed or a plan is infeasible, 2 bad input.
EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


def say(text: str) -> None:
    """One progress line on stderr, as printed (no markup)."""
    err.print(text, highlight=False, markup=False)


@dataclass(frozen=True)
class ExtraOption:
    """An option a system adds to one of the generic commands (``generate`` or ``evaluate``),
    declared in the system's ``cli`` module (``OPTIONS``; :mod:`mecllm.systems.registry`).

    The CLI adds it to the command's signature as typer would read it; what the user gave
    reaches the system in the request's ``extra``, keyed by ``name``. Given for an instance of
    another system, it is refused by name.

    Attributes
    ----------
    command : the generic command it belongs to.
    name : the Python name of the value (``work_model``); the key in ``extra``.
    annotation : the typer annotation, ``Annotated[type, typer.Option("--work-model", ...)]``.
    default : the value when the option is not given (not passed on in ``extra``).
    """

    command: Literal["generate", "evaluate"]
    name: str
    annotation: Any
    default: Any = None

    @property
    def flag(self) -> str:
        """The option's long name as typed (``--work-model``)."""
        return "--" + self.name.replace("_", "-")


def with_extra_options(
    options: Sequence[ExtraOption],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a generic command's body so that typer also sees ``options`` (those the systems
    add to the command): its signature gains them, and the given ones reach the body as its
    keyword ``extra`` (name -> value). An option two systems declare is added once."""

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        own = [
            p
            for p in inspect.signature(body, eval_str=True).parameters.values()
            if p.name != "extra"
        ]
        added: dict[str, Any] = {}
        params = list(own)
        for option in options:
            if option.name in added:
                continue  # two systems share the option
            added[option.name] = option.default
            params.append(
                inspect.Parameter(
                    option.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=option.default,
                    annotation=option.annotation,
                )
            )

        def command_with_options(**values: Any) -> None:
            given = {}
            for name, default in added.items():
                value = values.pop(name)
                if value is not None and value != default:
                    given[name] = value
            body(**values, extra=given)

        command_with_options.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command_with_options.__annotations__ = {p.name: p.annotation for p in params}
        command_with_options.__doc__ = body.__doc__
        command_with_options.__name__ = body.__name__
        return command_with_options

    return decorate


def guard(action: Callable[[], T]) -> T:
    """Run ``action``; turn project errors into one stderr line and the right exit status."""
    try:
        return action()
    except InvalidInputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except SolverError as exc:
        err.print(f"solver failure: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except MecllmError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except OSError as exc:
        # A file or folder the checks could not foresee (a full disk, a read-only mount).
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        err.print("interrupted; finished work is kept", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Terminated:
        err.print("terminated; finished work is kept", highlight=False)
        raise typer.Exit(Terminated.exit_code) from None


@contextmanager
def needs_extra(extras: str, what: str) -> Iterator[None]:
    """Turn a missing optional dependency, met while importing what ``what`` runs on, into
    bad input that says which extras (comma-separated) to install."""
    try:
        yield
    except ImportError:
        named = " and ".join(extras.split(","))
        plural = "s" if "," in extras else ""
        raise InvalidInputError(
            f"{what} needs the {named} extra{plural}: pip install -e '.[{extras}]'"
        ) from None


def check_seed(seed: int, option: str = "--seed") -> None:
    """Refuse a negative seed."""
    if seed < 0:
        raise InvalidInputError(f"{option} must be >= 0, got {seed}")


def check_time_limit(seconds: float) -> None:
    """Refuse a time limit that is not a positive, finite number of seconds."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"--time-limit must be a positive number of seconds, got {seconds}")


def check_range(option: str, value: int, low: int, high: int) -> None:
    """Refuse a whole number outside ``low..high``."""
    if not low <= value <= high:
        raise InvalidInputError(f"{option} must be in {low}..{high}, got {value}")


def names(text: str | None, option: str = "--algorithms") -> list[str]:
    """A comma-separated list of names; ``None`` (not given) means the command's default."""
    if text is None:
        return []
    listed = [a.strip() for a in text.split(",") if a.strip()]
    if not listed:
        raise InvalidInputError(f"{option} must name at least one algorithm, got {text!r}")
    return listed


def progress_printer(algorithm: str) -> Callable[[dict[str, Any]], None]:
    """``--verbose``: one stderr line per record of a solve's history."""

    def show(record: dict[str, Any]) -> None:
        where = record.get("stage", f"iter {record.get('iteration', '?')}")
        parts = [f"[{algorithm}] {where}", f"y = {record.get('y', float('nan')):.6g}"]
        if "moved_user" in record:
            parts.append(f"user {record['moved_user']} -> server {record['to_server']}")
        for key, value in record.items():
            if key.endswith("_s") and isinstance(value, float):
                parts.append(f"{key[:-2]} {value:.2f}s")
        for key in ("inner_iterations", "moves_screened", "moves_improving", "moves_taken", "note"):
            if key in record:
                parts.append(f"{key.replace('_', ' ')} {record[key]}")
        say(", ".join(parts))

    return show


def options_for(seed: int, time_limit: float, verbose: bool) -> Callable[[str], SolveOptions]:
    """Solve options for a named algorithm (a progress printer per name with ``--verbose``)."""

    def make(name: str) -> SolveOptions:
        return SolveOptions(
            seed=seed,
            time_limit_s=time_limit,
            progress=progress_printer(name) if verbose else None,
        )

    return make
