"""Files: atomic writes (a crash or Ctrl-C never leaves a half-written result) and JSON reading
with one-line errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mecllm.core.errors import InvalidInputError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file; a missing or unparsable file is an :class:`InvalidInputError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{what} file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} file {file} cannot be read: {exc}") from None
    try:
        # NaN and Infinity are not JSON, but Python's parser reads them as floats: the
        # validation then names the field that holds them ("... must be finite").
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} file {file} is not valid JSON: {exc}") from None
