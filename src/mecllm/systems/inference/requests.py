"""Request streams: drawn from an instance's demand (Poisson per user) or read from a trace.

A stream is five arrays sorted by arrival: arrival time (s), user, prompt tokens I, output
tokens O and deadline D (s), plus the task index. Drawn streams come from one seeded
``numpy.random.Generator`` in a fixed order, so a seed fixes the stream.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mecllm.core import checks
from mecllm.core.arrays import FloatArray, IntArray
from mecllm.core.errors import InvalidInputError
from mecllm.systems.inference.instance import InferenceInstance

#: Most requests one stream may hold.
MAX_REQUESTS = 5_000_000
_COLUMNS = ("arrival_s", "user", "task", "prompt_tokens", "output_tokens", "deadline_s")


@dataclass(frozen=True)
class Stream:
    """Requests sorted by arrival time (all arrays of shape (R,))."""

    arrival_s: FloatArray
    user: IntArray
    task: IntArray
    prompt_tokens: IntArray
    output_tokens: IntArray
    deadline_s: FloatArray

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def draw(instance: InferenceInstance, rng: np.random.Generator) -> Stream:
    """Poisson arrivals of every user over the horizon, task types by their shares."""
    total = instance.total_rate_per_s
    expected = total * instance.horizon_s
    if expected > MAX_REQUESTS:
        raise InvalidInputError(
            f"the demand asks for about {expected:.0f} requests, more than {MAX_REQUESTS}; "
            "lower the rates or the horizon"
        )
    count = int(rng.poisson(expected)) if expected > 0 else 0
    arrival = np.sort(rng.uniform(0.0, instance.horizon_s, size=count))
    user = (
        rng.choice(instance.n_users, size=count, p=instance.arrival_rate_per_s / total)
        if (count)
        else np.zeros(0, dtype=np.int64)
    )
    shares = np.array([t.share for t in instance.tasks])
    task = rng.choice(len(instance.tasks), size=count, p=shares / shares.sum())
    prompt = np.empty(count, dtype=np.int64)
    output = np.empty(count, dtype=np.int64)
    deadline = np.empty(count)
    uniform = rng.uniform(size=(3, count))
    for k, t in enumerate(instance.tasks):
        mine = task == k
        lo, hi = t.prompt_tokens
        prompt[mine] = lo + np.floor(uniform[0, mine] * (hi - lo + 1)).astype(np.int64)
        lo, hi = t.output_tokens
        output[mine] = lo + np.floor(uniform[1, mine] * (hi - lo + 1)).astype(np.int64)
        lo_d, hi_d = t.deadline_s
        deadline[mine] = lo_d + uniform[2, mine] * (hi_d - lo_d)
    return Stream(arrival, user.astype(np.int64), task.astype(np.int64), prompt, output, deadline)


def read_trace(path: str | Path, instance: InferenceInstance) -> Stream:
    """A stream from a CSV (header ``arrival_s,user,task,prompt_tokens,output_tokens,
    deadline_s``) or a JSON list of objects with those fields; ``task`` is an index."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"trace file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"trace file {file} cannot be read: {exc}") from None
    rows: list[dict[str, object]]
    if text.lstrip().startswith("["):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"trace file {file} is not valid JSON: {exc}") from None
        if not isinstance(loaded, list):
            raise InvalidInputError(f"trace file {file} must hold a list of requests")
        rows = loaded
    else:
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or set(reader.fieldnames) != set(_COLUMNS):
            raise InvalidInputError(
                f"trace file {file} must have the columns {', '.join(_COLUMNS)}"
            )
        rows = [dict(r) for r in reader]
    if len(rows) > MAX_REQUESTS:
        raise InvalidInputError(f"trace file {file} holds more than {MAX_REQUESTS} requests")
    values: dict[str, list[float]] = {c: [] for c in _COLUMNS}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(_COLUMNS):
            raise InvalidInputError(f"trace[{i}] must have exactly {', '.join(_COLUMNS)}")
        for column in _COLUMNS:
            raw = row[column]
            try:
                number = float(raw) if isinstance(raw, str) else checks.number(raw, column)
            except ValueError:
                raise checks.fail(f"trace[{i}].{column}", "must be a number", raw) from None
            values[column].append(number)
    arrival = np.array(values["arrival_s"], dtype=float)
    user = np.array(values["user"], dtype=float)
    task = np.array(values["task"], dtype=float)
    prompt = np.array(values["prompt_tokens"], dtype=float)
    output = np.array(values["output_tokens"], dtype=float)
    deadline = np.array(values["deadline_s"], dtype=float)
    for name, array, low, high in (
        ("arrival_s", arrival, 0.0, 1e9),
        ("user", user, 0.0, instance.n_users - 1),
        ("task", task, 0.0, len(instance.tasks) - 1),
        ("prompt_tokens", prompt, 1.0, 1e7),
        ("output_tokens", output, 1.0, 1e7),
        ("deadline_s", deadline, 1e-9, 1e9),
    ):
        bad = ~np.isfinite(array) | (array < low) | (array > high)
        if name in ("user", "task", "prompt_tokens", "output_tokens"):
            bad |= array != np.floor(array)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise checks.fail(f"trace[{k}].{name}", f"must be in {low:g}..{high:g}", array[k])
    order = np.argsort(arrival, kind="stable")
    return Stream(
        arrival[order],
        user[order].astype(np.int64),
        task[order].astype(np.int64),
        prompt[order].astype(np.int64),
        output[order].astype(np.int64),
        deadline[order],
    )
