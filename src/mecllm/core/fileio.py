"""Files: atomic writes (a crash or Ctrl-C never leaves a half-written result) and JSON reading
with one-line errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mecllm.core.errors import InvalidInputError


def _file_mode() -> int:
    """The mode a new file gets from ``open`` under the process's umask (0o666 & ~umask);
    temporary files are created 0600, so the finished file is given this one."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), _file_mode())
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


def check_output_file(path: str | Path, what: str) -> Path:
    """Refuse, before any work, an output file that cannot be written.

    The file may not exist yet, and neither may its folders; what exists on the way must be a
    writable folder, and the file itself, if it exists, a writable file. Returns the path.

    Raises
    ------
    InvalidInputError
        Naming the option's ``what``, the path and the reason.
    """
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"{what} {target} is a folder; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise InvalidInputError(f"{what} {target} exists and is not writable")
    _check_folder_reachable(target.parent, what, target)
    return target


def check_output_folder(path: str | Path, what: str) -> Path:
    """Refuse, before any work, an output folder that cannot be created or written."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{what} {target} is a file, not a folder")
    _check_folder_reachable(target, what, target)
    return target


def _check_folder_reachable(folder: Path, what: str, target: Path) -> None:
    """``folder`` exists as a writable folder, or its nearest existing ancestor does."""
    current = folder if str(folder) else Path(".")
    while not current.exists():
        parent = current.parent
        if parent == current:
            break
        current = parent
    if not current.is_dir():
        raise InvalidInputError(f"{what} {target} cannot be created: {current} is a file")
    # Permission bits do not tell the whole story (root ignores them; a read-only mount or a
    # pseudo file system does not), so try: create and remove one empty file there.
    try:
        fd, probe = tempfile.mkstemp(prefix=".mecllm-write-check.", dir=current)
    except OSError as exc:
        raise InvalidInputError(
            f"{what} {target} cannot be written: {current} refuses new files ({exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)
